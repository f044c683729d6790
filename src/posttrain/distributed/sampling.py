"""The sample stage on Ray: a pool of actors, each holding one backend, sampling the same batches as
`posttrain.sampling.sample_prompts` and writing the same records in the same order.

The batches, the per-(prompt, index) seeds and the writer are the single-process stage's own, so the file is the
same for the same seed (given the same torch threads per actor as the single-process run had: float sums can
round differently across thread counts), a rerun skips finished batches, and a batch whose actor died is rerun
by Ray on the restarted actor (`max_restarts`, `max_task_retries`). An `openai:` spec makes each actor a client of
that endpoint, so the endpoint's load is spread over the actors' connections.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from posttrain.distributed.cluster import RaySection, actor_count, connect
from posttrain.distributed.work import ordered_results
from posttrain.models.backend import Backend, Completion, SamplingParams
from posttrain.records import Prompt, RecordWriter
from posttrain.sampling import check_resumable, pending_batches, to_sample

BackendFactory = Callable[[], Backend]


class SamplerActor:
    """One backend in one Ray worker process (made a Ray actor class by `sampler_pool`)."""

    def __init__(self, spec: str, threads: int, dtype: Any, rows: int, factory: BackendFactory | None = None) -> None:
        from posttrain.models import load_backend

        self.backend = factory() if factory else load_backend(spec, threads=threads, dtype=dtype, rows=rows)

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        return self.backend.generate(prompts, n, params)


def sampler_pool(
    spec: str, dtype: Any, rows: int, section: RaySection, size: int, factory: BackendFactory | None
) -> list[Any]:
    import ray

    actor_class = ray.remote(SamplerActor).options(
        num_cpus=section.cpus_per_actor,
        num_gpus=section.gpus_per_actor,
        max_restarts=section.max_retries,
        max_task_retries=section.max_retries,
    )
    return [actor_class.remote(spec, section.cpus_per_actor, dtype, rows, factory) for _ in range(size)]


def sample_prompts_on_ray(
    spec: str,
    prompts: list[Prompt],
    out: Path,
    n: int,
    params: SamplingParams,
    batch_size: int,
    section: RaySection,
    dtype: Any = None,
    on_batch: Callable[[int, int], None] = lambda prompts, tokens: None,
    factory: BackendFactory | None = None,
) -> tuple[int, int]:
    """`sample_prompts` with the batches on a pool of Ray actors loading `spec` (`factory` instead, in tests).
    Returns (written now, total)."""
    check_resumable(out, spec, params)
    connect(section.address)
    todo = pending_batches(prompts, batch_size, n, out)
    with RecordWriter(out) as writer:
        before = writer.written
        on_batch(len(prompts) - sum(len(b) for b in todo), 0)
        if todo:
            actors = sampler_pool(spec, dtype, batch_size * n, section, min(actor_count(section), len(todo)), factory)
            try:
                results = ordered_results(
                    todo,
                    lambda slot, batch: actors[slot].generate.remote([p.prompt for p in batch], n, params),
                    len(actors),
                    lambda batch: f"sampling the batch of prompts {', '.join(p.id for p in batch[:3])}"
                    + (f" and {len(batch) - 3} more" if len(batch) > 3 else ""),
                )
                for batch, rows in results:
                    for prompt, row in zip(batch, rows, strict=True):
                        for index, completion in enumerate(row):
                            writer.write(to_sample(prompt, completion, spec, params, index))
                    on_batch(len(batch), sum(c.completion_tokens for row in rows for c in row))
            finally:
                release(actors)
    return writer.written - before, writer.written


def release(actors: list[Any]) -> None:
    """End the actors now: each holds a model's memory and its cores, which the next stage wants."""
    import ray

    for actor in actors:
        ray.kill(actor)
