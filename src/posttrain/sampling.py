"""Sampling prompts into a file of Sample records, resumably: the sample stage of every pipeline.

Deterministic under resume: prompts are cut into batches with fixed boundaries, every (prompt, index) has its own
seed, and the writer skips sample ids already in `<out>.partial`. A run killed at any point and rerun gives the same
file as an uninterrupted run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from posttrain.errors import InputError
from posttrain.models.backend import Backend, Completion, SamplingParams
from posttrain.records import Prompt, RecordWriter, Sample


def written_rows(out: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of the records with a prompt_id that a previous run left: `<out>.partial`, else a
    finished `<out>`."""
    partial = out.with_name(out.name + ".partial")
    source = partial if partial.exists() else out
    if not source.exists() or source.suffix == ".parquet":
        return []
    rows = []
    for line_no, line in enumerate(source.read_bytes().splitlines(), start=1):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn last line: the writer drops it too
        if isinstance(row, dict) and "prompt_id" in row:
            rows.append((line_no, row))
    return rows


def check_resumable(out: Path, model: str, params: SamplingParams) -> None:
    """Refuse to resume into samples of another configuration: resume counts samples per prompt, so their rows
    would pass for this run's."""
    expected = json.loads(json.dumps(asdict(params)))  # as it reads back from JSON (tuples become lists)
    partial = out.with_name(out.name + ".partial")
    for line_no, row in written_rows(out):
        if row.get("model") != model or row.get("sampling") != expected:
            raise InputError(
                f"holds samples of a run with other options (model {row.get('model')!r}, sampling "
                f"{row.get('sampling')}): remove it or choose another --out",
                partial if partial.exists() else out,
                line_no,
            )


def pending_batches(prompts: list[Prompt], batch_size: int, n: int, out: Path) -> list[list[Prompt]]:
    """Batches with a sample still missing. Boundaries are fixed over the whole prompt list, so a resumed run
    regenerates exactly the batch it was in and the writer drops the samples already written."""
    have = Counter(str(row["prompt_id"]) for _, row in written_rows(out))
    batches = [prompts[i : i + batch_size] for i in range(0, len(prompts), batch_size)]
    return [b for b in batches if any(have[p.id] < n for p in b)]


def to_sample(
    prompt: Prompt, completion: Completion, model: str, params: SamplingParams, index: int
) -> Sample:
    return Sample(
        prompt_id=prompt.id, prompt=prompt.prompt, completion=completion.text, model=model, index=index,
        seed=params.seed, sampling=asdict(params), prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens, finish_reason=completion.finish_reason,
    )  # fmt: skip


def sample_prompts(
    backend: Backend,
    prompts: list[Prompt],
    out: Path,
    n: int,
    params: SamplingParams,
    model: str,
    batch_size: int,
    on_batch: Callable[[int, int], None] = lambda prompts, tokens: None,
) -> tuple[int, int]:
    """Sample every prompt n times into `out`, resuming from `<out>.partial`. Returns (written now, total)."""
    check_resumable(out, model, params)
    with RecordWriter(out) as writer:
        before = writer.written
        todo = pending_batches(prompts, batch_size, n, out)
        on_batch(len(prompts) - sum(len(b) for b in todo), 0)
        for batch in todo:
            rows = backend.generate([p.prompt for p in batch], n, params)
            for p, row in zip(batch, rows, strict=True):
                for index, completion in enumerate(row):
                    writer.write(to_sample(p, completion, model, params, index))
            on_batch(len(batch), sum(c.completion_tokens for row in rows for c in row))
    return writer.written - before, writer.written
