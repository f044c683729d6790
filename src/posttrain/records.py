"""The records every stage reads and writes, and the IO that keeps them safe.

Each arrow of the loop (prompts -> samples -> verdicts -> pairs) is a JSONL (or Parquet) file of one record type.
Every record carries a stable content id, so a rerun recognises what it already wrote.

Reading validates every row and reports `file:line: what is wrong` as an `InputError`.
Writing goes to `<out>.partial`, one flushed line per record; only a finished stage renames it to `<out>`, so the
output is never half-written and an interrupted stage resumes from the ids already in the partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from posttrain.errors import InputError

__all__ = ["InputError"]

MAX_LINE_BYTES = 8 * 1024 * 1024  # a longer "line" is almost always a file without newlines, not a record


def content_id(*parts: Any) -> str:
    """A short, stable hash of JSON-serialisable content (order of dict keys does not matter)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str


Text = str | list[Message]  # plain text or conversational messages, as TRL's dataset formats


def as_text(value: Text) -> str:
    """The content of a plain or conversational field (the last message for conversations)."""
    return value if isinstance(value, str) else (value[-1].content if value else "")


class Record(BaseModel):
    """Base of every record: unknown fields are kept (provenance survives the loop), `id` is derived if absent."""

    model_config = ConfigDict(extra="allow", strict=False)
    id: str = ""
    _id_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _derive_id(self) -> Record:
        if not self.id:
            self.id = content_id(*[_plain(getattr(self, name)) for name in self._id_fields])
        return self


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class Prompt(Record):
    """A prompt, with IFEval-format verifiable constraints (`instruction_id_list` + one kwargs dict per id)."""

    prompt: Text
    instruction_id_list: list[str] = Field(default_factory=list)
    kwargs: list[dict[str, Any]] = Field(default_factory=list)
    task: str = "instruction_following"  # CGPO task, selects judges / optimizer in multi-task training
    difficulty: float | None = None
    gold: str | None = None  # gold answer (math) or baseline response (CGPO's calibrated reward)
    source: str | None = None
    _id_fields: ClassVar[tuple[str, ...]] = ("prompt", "instruction_id_list", "kwargs")

    @model_validator(mode="before")
    @classmethod
    def _kwargs_match(cls, data: Any) -> Any:
        # Runs before the id is derived, so `kwargs: []` and `kwargs: [{}, ...]` give the same id.
        if not isinstance(data, dict):
            return data
        ids, kwargs = data.get("instruction_id_list") or [], data.get("kwargs")
        if isinstance(ids, list) and not kwargs:
            data = {**data, "kwargs": [{} for _ in ids]}
        elif isinstance(ids, list) and isinstance(kwargs, list) and len(kwargs) != len(ids):
            raise ValueError(
                f"kwargs has {len(kwargs)} entries but instruction_id_list has {len(ids)}; "
                "give one kwargs dict per instruction"
            )
        return data

    @property
    def text(self) -> str:
        return as_text(self.prompt)


class Sample(Record):
    """One completion of one prompt by one model."""

    prompt_id: str
    prompt: Text
    completion: str
    model: str = ""
    index: int = 0  # which of the n samples drawn for this prompt
    seed: int | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop" (EOS / stop string) or "length"
    _id_fields: ClassVar[tuple[str, ...]] = ("prompt_id", "completion", "model", "index", "seed")


class Verdict(Record):
    """A judge's verdict on one sample: 1 satisfied, 0 violated, -1 the judge itself failed."""

    sample_id: str
    judge: str
    value: Literal[1, 0, -1]
    score: float | None = None
    detail: str = ""
    prompt_id: str | None = None
    _id_fields: ClassVar[tuple[str, ...]] = ("sample_id", "judge")


class Pair(Record):
    """A preference pair in TRL's format (`prompt`, `chosen`, `rejected`), with its provenance."""

    prompt: Text
    chosen: Text
    rejected: Text
    prompt_id: str | None = None
    method: str = "rs"
    chosen_score: float | None = None
    rejected_score: float | None = None
    shared_prefix_chars: int = 0
    difficulty: float | None = None
    contrast: str | None = None
    chosen_satisfied: bool | None = None
    rejected_satisfied: bool | None = None
    chosen_sample_id: str | None = None
    rejected_sample_id: str | None = None
    rejected_truncated: bool = False  # the rejected response was cut off by the token budget: it has no end of turn
    _id_fields: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")

    @model_validator(mode="after")
    def _non_empty(self) -> Pair:
        for side in ("chosen", "rejected"):
            if not as_text(getattr(self, side)).strip():
                raise ValueError(f"'{side}' is empty")
        return self


class GroupPair(Record):
    """K chosen vs K rejected responses to one prompt, for the multi-sample losses mDPO / mIPO (a `Pair` is the
    case K = 1). The record allows sides of different sizes; a loss that compares equal-sized groups says so."""

    prompt: Text
    chosen: list[Text]
    rejected: list[Text]
    prompt_id: str | None = None
    method: str = "group"
    chosen_scores: list[float] = Field(default_factory=list)
    rejected_scores: list[float] = Field(default_factory=list)
    chosen_sample_ids: list[str] = Field(default_factory=list)
    rejected_sample_ids: list[str] = Field(default_factory=list)
    difficulty: float | None = None
    _id_fields: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")

    @model_validator(mode="after")
    def _non_empty(self) -> GroupPair:
        for side in ("chosen", "rejected"):
            responses = getattr(self, side)
            if not responses:
                raise ValueError(f"'{side}' holds no responses; a group needs at least one on each side")
            empty = next((k for k, r in enumerate(responses, start=1) if not as_text(r).strip()), None)
            if empty is not None:
                raise ValueError(f"'{side}' response {empty} of {len(responses)} is empty")
        return self


R = TypeVar("R", bound=BaseModel)


# ---------------------------------------------------------------------------------------------------- reading


_UNION_HINTS = {"str": "a string", "list[Message]": "a list of {role, content} messages"}


def _describe_validation_error(err: ValidationError) -> str:
    """Pydantic's errors in a user's words: one clause per field, union alternatives merged."""
    by_field: dict[str, list[str]] = {}
    for e in err.errors():
        path = [str(x) for x in e["loc"]]
        # the union's branch follows the field (`chosen`) or a list index in it (a group's `chosen.2`)
        at = next((k for k in range(1, len(path)) if path[k] in _UNION_HINTS), None)
        alternative = path.pop(at) if at is not None else None
        field = ".".join(path) or "record"
        if e["type"] == "missing":
            by_field.setdefault(field, []).append("missing")
        elif alternative is not None:
            by_field.setdefault(field, []).append(f"expected {_UNION_HINTS[alternative]}")
        else:
            by_field.setdefault(field, []).append(e["msg"].removeprefix("Value error, "))
    parts = []
    for field, msgs in list(by_field.items())[:3]:
        if msgs == ["missing"]:
            parts.append(f"missing field '{field}'")
        elif field == "record":
            parts.append("; ".join(msgs))
        else:
            text = " or ".join(dict.fromkeys(msgs)).replace(" or expected ", " or ")
            parts.append(f"field '{field}': {text}")
    more = len(by_field) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_row(row: Any, kind: type[R], path: str | Path, line: int) -> R:
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {type(row).__name__}", path, line)
    try:
        return kind.model_validate(row)
    except ValidationError as err:
        raise InputError(f"invalid {kind.__name__}: {_describe_validation_error(err)}", path, line) from None


def iter_jsonl_rows(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line; bad bytes, bad JSON and huge lines are InputErrors."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, expected a JSONL file", path)
    seen_any = False
    with path.open("rb") as handle:
        line_no = 0
        while True:
            raw = handle.readline(max_line_bytes + 1)
            if not raw:
                break
            line_no += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise InputError(
                    f"line is longer than {max_line_bytes // (1024 * 1024)} MiB; "
                    "is this a JSONL file with one record per line?",
                    path,
                    line_no,
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = raw[err.start : err.start + 1].hex()
                raise InputError(
                    f"not valid UTF-8 (byte 0x{bad} at byte {err.start + 1})", path, line_no
                ) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError(f"malformed JSON: {err.msg} (column {err.colno})", path, line_no) from None
            seen_any = True
            yield line_no, row
    if not seen_any:
        raise InputError("file is empty: expected one JSON record per line", path)


def iter_records(path: str | Path, kind: type[R]) -> Iterator[R]:
    """Validated records from a .jsonl or .parquet file."""
    path = Path(path)
    if path.suffix == ".parquet":
        yield from _iter_parquet(path, kind)
        return
    for line_no, row in iter_jsonl_rows(path):
        yield parse_row(row, kind, path, line_no)


def read_records(path: str | Path, kind: type[R]) -> list[R]:
    return list(iter_records(path, kind))


def _iter_parquet(path: Path, kind: type[R]) -> Iterator[R]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise InputError("file not found", path)
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise InputError(f"not a readable Parquet file: {err}", path) from None
    if table.num_rows == 0:
        raise InputError("file is empty: no rows", path)
    meta = table.schema.metadata or {}
    json_columns = json.loads(meta.get(PARQUET_JSON_COLUMNS_KEY, b"[]"))
    for row_no, row in enumerate(table.to_pylist(), start=1):
        for column in json_columns:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
        yield parse_row(row, kind, f"{path} row", row_no)


# Parquet cannot hold empty structs, and struct columns fill absent keys with nulls (which would change kwargs
# and so content ids): mappings other than chat messages are stored as JSON text, listed in the schema metadata.
PARQUET_JSON_COLUMNS_KEY = b"posttrain_json_columns"
_MESSAGE_COLUMNS = {"prompt", "chosen", "rejected", "completion", "messages"}


def _parquet_json_columns(rows: list[dict[str, Any]]) -> list[str]:
    def holds_mapping(value: Any) -> bool:
        return isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, dict) for v in value)
        )

    return sorted(
        {k for row in rows for k, v in row.items() if k not in _MESSAGE_COLUMNS and holds_mapping(v)}
    )


# ---------------------------------------------------------------------------------------------------- writing


def to_json_line(record: BaseModel) -> str:
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n"


def write_records(path: str | Path, records: Iterable[BaseModel]) -> int:
    """Write all records atomically (JSONL, or Parquet by suffix). Returns the count."""
    with RecordWriter(path, fresh=True) as writer:
        for record in records:
            writer.write(record)
    return writer.written


class RecordWriter:
    """Append records to `<out>.partial`, rename to `<out>` on success; resume from what a crash left.

    `writer.done` holds the ids already written (from an earlier finished or interrupted run), so a stage can
    skip work it has done. A torn last line left by `kill -9` is dropped on resume.
    """

    def __init__(self, path: str | Path, fresh: bool = False):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.fresh = fresh
        self.done: set[str] = set()
        self.written = 0
        self._handle: Any = None

    def __enter__(self) -> RecordWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            self.partial.unlink(missing_ok=True)
        elif not self.partial.exists() and self.path.exists() and self.path.suffix != ".parquet":
            # A finished output: continue from it (nothing new -> the same file again).
            self.partial.write_bytes(self.path.read_bytes())
        if self.partial.exists():
            self._recover_partial()
        self._handle = self.partial.open("a", encoding="utf-8")
        return self

    def _recover_partial(self) -> None:
        data = self.partial.read_bytes()
        keep = data[: data.rfind(b"\n") + 1]  # drop a torn last line
        if len(keep) != len(data):
            self.partial.write_bytes(keep)
        for raw in keep.splitlines():
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(row, dict) and row.get("id"):
                self.done.add(row["id"])
                self.written += 1

    def write(self, record: BaseModel) -> bool:
        """Write unless a record with the same id is already there. Returns whether it was written."""
        record_id = getattr(record, "id", "")
        if record_id and record_id in self.done:
            return False
        self._handle.write(to_json_line(record))
        self._handle.flush()
        if record_id:
            self.done.add(record_id)
        self.written += 1
        return True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        if exc_type is not None:
            return  # keep the partial file: the next run resumes from it
        if self.path.suffix == ".parquet":
            self._finish_parquet()
        else:
            os.replace(self.partial, self.path)

    def _finish_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [json.loads(line) for line in self.partial.read_text(encoding="utf-8").splitlines() if line]
        json_columns = _parquet_json_columns(rows)
        for row in rows:
            for column in json_columns:
                if column in row:
                    row[column] = json.dumps(row[column], ensure_ascii=False)
        table = pa.Table.from_pylist(rows)
        table = table.replace_schema_metadata({PARQUET_JSON_COLUMNS_KEY: json.dumps(json_columns).encode()})
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.path)
        self.partial.unlink()
