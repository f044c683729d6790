"""The constraint contract and the registry keyed by IFEval's own instruction ids.

A constraint is stateless: its parameters travel as an IFEval-format kwargs dict (`{"num_words": 120, "relation":
"less than"}`), so a `Prompt` row, IFEval's `input_data.jsonl` and a judge all speak the same language. Two check
modes exist because the reference checkers have known bugs: `"ifeval"` reproduces google-research's verdicts
exactly (for evaluation numbers comparable with published ones), `"fixed"` repairs them (for training rewards).
"""

from __future__ import annotations

import difflib
import random
from typing import Any, ClassVar

from posttrain.constraint_ids import LESS_THAN, RELATIONS
from posttrain.errors import InputError

MODES = ("ifeval", "fixed")

REGISTRY: dict[str, type[Constraint]] = {}


class Constraint:
    """One verifiable instruction. Subclasses set `id`, `required` / `optional` kwargs and implement `_check`."""

    id: ClassVar[str]
    conflicts: ClassVar[frozenset[str]] = frozenset()  # filled in by `conflicts.py` once all classes exist
    required: ClassVar[tuple[str, ...]] = ()  # kwargs a check cannot run without
    optional: ClassVar[tuple[str, ...]] = ()  # kwargs that are accepted (IFEval's names) but have a default

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "id" in cls.__dict__:
            REGISTRY[cls.id] = cls

    # --- the public interface -------------------------------------------------------------------------------------
    def sample_kwargs(self, rng: random.Random) -> dict[str, Any]:
        """Kwargs in IFEval format drawn from sensible ranges (the reference's own ranges where it has them)."""
        return {}

    def describe(self, kwargs: dict[str, Any], rng: random.Random) -> str:
        """One of several natural phrasings of the instruction, chosen with `rng`."""
        kwargs = self.validate(kwargs)
        return rng.choice(self.phrasings(kwargs))

    def check(self, response: str, mode: str = "ifeval", **kwargs: Any) -> bool:
        """Strict verdict on `response` (no loose variants, no thinking stripped; see `check_all` for those)."""
        if mode not in MODES:
            raise InputError(f"unknown check mode {mode!r}; valid modes: {', '.join(MODES)}")
        return self._check(response, self.validate(kwargs, mode), mode)

    # --- for subclasses -------------------------------------------------------------------------------------------
    def phrasings(self, kwargs: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def _check(self, response: str, kwargs: dict[str, Any], mode: str) -> bool:
        raise NotImplementedError

    def validate(self, kwargs: dict[str, Any], mode: str = "ifeval") -> dict[str, Any]:
        """Drop `None` values (HF-format rows pad every kwarg with null), reject unknown and missing names.

        Only `None` is dropped, never other falsy values: lm-eval's `if v` filter turns `0` into "unset" and the
        reference then draws a random value, which is never what a user meant.
        """
        given = {k: v for k, v in (kwargs or {}).items() if v is not None}
        allowed = set(self.required) | set(self.optional)
        for name in given:
            if name not in allowed:
                hint = difflib.get_close_matches(name, sorted(allowed), n=1)
                raise InputError(
                    f"{self.id}: unknown kwarg {name!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; accepted: {', '.join(sorted(allowed)) or 'none'}"
                )
        missing = [name for name in self.required if name not in given]
        if missing:
            raise InputError(f"{self.id}: missing kwarg(s) {', '.join(missing)}")
        return self.normalize(given, mode)

    def normalize(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        """Type checks and the reference's own normalisation (e.g. `.strip()`); InputError on bad values (some
        depend on `mode`: a keyword must be a valid regex only where the reference uses it as one)."""
        return kwargs


# --- kwargs helpers shared by the constraint modules --------------------------------------------------------------
def need_int(cid: str, kwargs: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = kwargs[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{cid}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def need_str(cid: str, kwargs: dict[str, Any], name: str) -> str:
    value = kwargs[name]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{cid}: {name} must be a non-empty string, got {value!r}")
    return value


def need_relation(cid: str, kwargs: dict[str, Any], name: str) -> str:
    value = kwargs[name]
    if value not in RELATIONS:
        raise InputError(f"{cid}: {name} must be one of {RELATIONS}, got {value!r}")
    return str(value)


def need_str_list(cid: str, kwargs: dict[str, Any], name: str) -> list[str]:
    value = kwargs[name]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{cid}: {name} must be a non-empty list of non-empty strings, got {value!r}")
    return list(value)


def compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == LESS_THAN else count >= threshold


def get_constraint(constraint_id: str) -> Constraint:
    """An instance of the registered constraint; InputError naming the id and the closest valid one."""
    cls = REGISTRY.get(constraint_id)
    if cls is None:
        hint = difflib.get_close_matches(str(constraint_id), sorted(REGISTRY), n=1, cutoff=0.0)
        raise InputError(
            f"unknown constraint id {constraint_id!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    return _instance(cls)


_INSTANCES: dict[type[Constraint], Constraint] = {}


def _instance(cls: type[Constraint]) -> Constraint:
    # Constraints are stateless, so one shared instance per class is enough.
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]
