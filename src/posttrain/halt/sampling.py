"""The model's answers to HALT problems, through `posttrain.sampling` (resumable, one seed per sample); the
model loads only when a sample is still missing."""

from __future__ import annotations

from pathlib import Path

from posttrain.models.backend import SamplingParams
from posttrain.records import Prompt


def sample_answers(
    problems: list[Prompt],
    out: Path,
    model: str,
    params: SamplingParams,
    n: int = 1,
    batch_size: int = 8,
    threads: int | None = None,
    dtype: str = "auto",
) -> tuple[int, int]:
    """Sample n answers per problem into `out` (Sample records). Returns (sampled now, total)."""
    from posttrain.sampling import check_resumable, pending_batches, sample_prompts

    check_resumable(out, model, params)
    if not pending_batches(problems, batch_size, n, out):
        partial = out.with_name(out.name + ".partial")
        if partial.exists():  # every sample is in the partial file: finish it without loading the model
            partial.replace(out)
        return 0, sum(1 for line in out.read_bytes().splitlines() if line.strip())
    from posttrain.models import load_backend
    from posttrain.progress import generation_progress

    backend = load_backend(model, threads=threads, dtype=dtype)
    with generation_progress("sample", len(problems)) as bar:
        return sample_prompts(backend, problems, out, n, params, model, batch_size, bar.advance)
