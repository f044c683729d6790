"""The judge stage on Ray: rule judges (ifeval, math, refusal, the code sandbox) as Ray tasks over batches of
samples; model judges stay in this process, as in `posttrain.judges.runner`, whose checks, plan and writer these
are: the same verdicts with the same ids, resumable by id, in the same order as the single-process stage writes
them in-process (batch by batch, judge by judge). A task whose worker died is retried by Ray (`max_retries`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from posttrain.distributed.cluster import RaySection, connect
from posttrain.distributed.work import ordered_results
from posttrain.judges.base import Item, Judge, Judgment, get_judge, judge_class
from posttrain.judges.code_exec import CodeJudge
from posttrain.judges.runner import JudgeRunConfig, Plan, execute, plan, read_located
from posttrain.records import Prompt, RecordWriter, Sample

_JUDGES_IN_WORKER: dict[str, Judge] = {}  # a worker process builds each judge once, then reuses it across tasks


def judge_batch(name: str, kind: str, options: dict[str, Any], items: list[Item]) -> list[Judgment]:
    """One Ray task: a batch of samples through one rule judge."""
    key = json.dumps([name, kind, options], sort_keys=True, default=str)
    if key not in _JUDGES_IN_WORKER:
        if issubclass(judge_class(kind), CodeJudge):
            # Ray runs a task per CPU it has: a sandbox per task, not one per core in every task at once.
            options = {"workers": 1, **options}
        judge = get_judge(kind, **options)
        judge.name = name
        _JUDGES_IN_WORKER[key] = judge
    return _JUDGES_IN_WORKER[key].judge_items(items)


def runs_as_tasks(kind: str) -> bool:
    """Judges that need no model: cheap to start anywhere, so they spread over the cluster's cores."""
    cls = judge_class(kind)
    return cls.cpu_bound or issubclass(cls, CodeJudge)


def judge_files_on_ray(
    samples: str | Path,
    prompts: str | Path | None,
    out: Path,
    cfg: JudgeRunConfig,
    section: RaySection,
    advance: Callable[[str, int], None] = lambda _name, _n: None,
) -> tuple[Plan, Plan, int]:
    """`judges.runner.judge_files` with the rule judges on Ray. Returns (the full plan, what was judged now, how
    many verdicts were already there)."""
    full_plan = plan(read_located(samples, Sample), read_located(prompts, Prompt) if prompts else None, cfg)
    connect(section.address)
    with RecordWriter(out) as writer:
        todo, skipped = full_plan.without(writer.done)
        on_ray = [name for name, (kind, _) in todo.judges.items() if todo.work[name] and runs_as_tasks(kind)]
        if on_ray:
            _judge_on_ray(todo, on_ray, writer, section, advance)
        in_process = {name: spec for name, spec in todo.judges.items() if name not in on_ray}
        if in_process:  # model judges: loaded once, here, and batched as the single-process stage does
            rest = Plan(in_process, {name: todo.work[name] for name in in_process})
            execute(rest, writer, replace(cfg, min_parallel=rest.total + 1), advance)
    return full_plan, todo, skipped


def _judge_on_ray(
    todo: Plan, names: list[str], writer: RecordWriter, section: RaySection, advance: Callable[[str, int], None]
) -> None:
    import ray

    task = ray.remote(judge_batch).options(num_cpus=1, max_retries=section.max_retries)
    batches = [
        (name, rows[start : start + section.judge_batch])
        for name in names
        for rows in [todo.work[name]]
        for start in range(0, len(rows), section.judge_batch)
    ]
    window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))  # keep every core busy, no more in flight

    def submit(_slot: int, batch: tuple[str, list[tuple[Sample, Item]]]) -> Any:
        name, rows = batch
        kind, options = todo.judges[name]
        return task.remote(name, kind, options, [item for _, item in rows])

    def describe(batch: tuple[str, list[tuple[Sample, Item]]]) -> str:
        name, rows = batch
        return f"judge '{name}' on the samples {', '.join(s.id for s, _ in rows[:3])}" + (
            f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        )

    for (name, rows), judgments in ordered_results(batches, submit, window, describe):
        for (sample, _), judgment in zip(rows, judgments, strict=True):
            writer.write(judgment.to_verdict(sample.id, name, sample.prompt_id))
        advance(name, len(rows))
