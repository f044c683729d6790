"""The pool a selector picks from: SFT rows read and validated as `SFTExample`s, kept verbatim for the output.

A row is `prompt` + `completion` or `messages` ending with the assistant's response (train/sft.py's SFTExample),
with any extra fields. The subset is written with the input rows unchanged (same keys, same values), in selection
order by default (a greedy selector's first m picks are its best m-subset) or in input order; through a temp file
and a rename, so a crash never leaves half a subset.

Optional per-row signals used by Llama 3's semantic dedup: `quality` (else `score`, else `chosen_score`) and
`difficulty`; absent ones count as 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.records import content_id, iter_jsonl_rows, parse_row

ORDERS = ("selection", "input")


@dataclass
class Pool:
    path: str
    rows: list[dict[str, Any]]
    lines: list[int]
    prompts: list[str]
    responses: list[str]
    quality: np.ndarray
    difficulty: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def texts(self) -> list[str]:
        """What the model reads to get an example's features: the instruction and its response."""
        return [f"{p}\n\n{r}" for p, r in zip(self.prompts, self.responses, strict=True)]

    @property
    def lengths(self) -> np.ndarray:
        """Response length in characters: the 'longest' baseline's key (Yang et al.: longest response)."""
        return np.array([len(r) for r in self.responses], dtype=np.int64)

    @property
    def key(self) -> str:
        """A content hash of the pool, keying every cache built from it."""
        return content_id(self.ids)


def _flatten(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(f"{m.role}: {m.content}" if hasattr(m, "role") else str(m) for m in value)


def _signal(row: dict[str, Any], names: tuple[str, ...], path: str, line: int) -> float:
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise InputError(f"field '{name}' must be a finite number, got {value!r}", path, line)
        return float(value)
    return 1.0


def read_pool(path: str | Path) -> Pool:
    """Read and validate every row first (InputError `file:line: what`), so bad input leaves no output."""
    from posttrain.train.sft import SFTExample

    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.exists():
            raise InputError("file not found", path)
        numbered = list(enumerate(pq.read_table(path).to_pylist(), start=1))
        if not numbered:
            raise InputError("file is empty: no rows", path)
    else:
        numbered = list(iter_jsonl_rows(path))
    rows, lines, prompts, responses, quality, difficulty, ids = [], [], [], [], [], [], []
    for line, row in numbered:
        example = parse_row(row, SFTExample, path, line)
        prompt, response = example.prompt_and_response()
        rows.append(row)
        lines.append(line)
        prompts.append(_flatten(prompt))
        responses.append(_flatten(response))
        quality.append(_signal(row, ("quality", "score", "chosen_score"), str(path), line))
        difficulty.append(_signal(row, ("difficulty",), str(path), line))
        ids.append(example.id)
    return Pool(str(path), rows, lines, prompts, responses, np.array(quality), np.array(difficulty), ids)


def check_budget(pool: Pool, budget: int) -> None:
    if budget < 1:
        raise InputError(f"--budget must be >= 1, got {budget}")
    if budget > len(pool):
        raise InputError(f"budget {budget} is larger than the pool ({len(pool)} examples)", pool.path)


def write_subset(out: str | Path, pool: Pool, picks: list[int], order: str = "selection") -> None:
    if order not in ORDERS:
        raise InputError(f"unknown order '{order}'; choose one of {', '.join(ORDERS)}")
    if Path(out).suffix not in (".jsonl", ".json"):
        raise InputError("the subset is written as JSONL: give an output path ending in .jsonl", out)
    chosen = sorted(picks) if order == "input" else list(picks)
    text = "".join(json.dumps(pool.rows[i], ensure_ascii=False) + "\n" for i in chosen)
    atomic_write_text(out, text)
