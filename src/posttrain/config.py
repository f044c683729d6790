"""Dataclass configs from YAML files plus dotted `key=value` overrides, as torchtune's `tune run … key=value`.

    cfg = load_config(DPOConfig, "recipes/dpo.yaml", ["train.lr=1e-6", "lora.r=16"])

Unknown keys are errors that name the key and suggest the closest valid one; values are validated against the
field types (pydantic), so `train.lr=fast` fails before any work starts, and a `Literal[...]` field names its
allowed values (`train.scheduler=cosin`: "Input should be 'cosine', 'linear' or 'constant'").
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from posttrain.errors import InputError

C = TypeVar("C")


class _Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. PyYAML follows YAML 1.1, where `no`, `off`, `yes` and `on` are booleans
    too, so `train.mixed_precision=no` reached the config as False and failed its `Literal["no", ...]`."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506  # a SafeLoader subclass


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError("config file not found", path)
    try:
        data = _load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("not valid UTF-8", path) from None
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise InputError(f"invalid YAML: {err.problem}", path, line) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping of config keys, got {type(data).__name__}", path)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=1e-5` -> (["a", "b"], 1e-05). Values are read as YAML scalars/lists (`[1, 2]`, `true`, `null`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"override '{text}' is not of the form key=value (e.g. train.lr=1e-5)")
    try:
        value = _load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _looks_like_float(value):
        value = float(value)  # YAML 1.1 reads "1e-5" as a string
    return key.strip().split("."), value


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return any(c.isdigit() for c in text)


def apply_override(data: dict[str, Any], dotted: list[str], value: Any) -> None:
    node = data
    for part in dotted[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[dotted[-1]] = value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            return arg
    return None


def check_keys(cls: type, data: dict[str, Any], source: str | Path | None, prefix: str = "") -> None:
    """Raise InputError for the first key that `cls` does not have, with the closest valid spelling."""
    types = _field_types(cls)
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in types:
            valid = [f"{prefix}{name}" for name in types]
            close = difflib.get_close_matches(full, valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(valid)}"
            raise InputError(f"unknown config key '{full}'{hint}", source)
        nested = _dataclass_in(types[key])
        if nested is not None and isinstance(value, dict):
            check_keys(nested, value, source, prefix=f"{full}.")


def build(cls: type[C], data: dict[str, Any], source: str | Path | None = None, prefix: str = "") -> C:
    """`cls` from `data`; `prefix` is where `data` sits in the whole config (e.g. "tasks.chat."), for messages."""
    check_keys(cls, data, source, prefix)
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = prefix + _dotted(first["loc"])
        raise InputError(f"config key '{key}': {first['msg']} (got {first.get('input')!r})", source) from None


def _dotted(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as a key path, list indices in brackets: ("train", "report_to", 0) -> train.report_to[0]."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """The config of type `cls` from an optional YAML file and `key=value` overrides (applied in order)."""
    data = read_yaml(path) if path else {}
    for text in overrides or []:
        dotted, value = parse_override(text)
        apply_override(data, dotted, value)
    return build(cls, data, path)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
