"""The judge stage on files: samples (+ prompts) -> verdicts, one per (sample, judge), resumable and parallel.

    posttrain judge --samples samples.jsonl --prompts prompts.jsonl --judges ifeval,math,refusal --out verdicts.jsonl

Everything the user can get wrong is checked before the first verdict is written (unknown judges and options,
samples whose prompt is missing, constraints with bad kwargs, missing gold answers), so bad input leaves no file.
Verdicts are appended to `<out>.partial` and renamed at the end (`RecordWriter`); a rerun skips every verdict id
already there. CPU-bound rule judges (ifeval, math, refusal) run in worker processes when there is enough work to
pay for starting them (see bench/judge_speed.py); the code judge runs its sandboxes on threads; model judges run
batched in this process.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment, check_options, get_judge, judge_class
from posttrain.judges.ifeval import IFEvalJudge
from posttrain.judges.verdicts import verdict_id
from posttrain.models.backend import available_cores
from posttrain.records import Prompt, RecordWriter, Sample, Verdict, iter_jsonl_rows, iter_records, parse_row

ANY_TASK = "*"


@dataclass
class JudgeRunConfig:
    """`judges`: verdict name -> options (`type:` picks the registry judge, default the name itself).
    `tasks`: CGPO's per-task judge sets, task -> judge names (`"*"` for tasks not listed); without it every
    judge sees every sample."""

    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, list[str]] | None = None
    workers: int | None = None  # processes for rule judges (default: all cores)
    chunk_size: int = 64  # samples per worker task / per model batch group
    min_parallel: int = 256  # fewer rule-judge samples than this run in-process (worker start-up costs ~2 s)


@dataclass
class Located:
    """A record and where it came from, for `file:line` errors."""

    record: Any
    path: str
    line: int | None


def read_located(path: str | Path, kind: type[Any]) -> list[Located]:
    path = Path(path)
    if path.suffix == ".parquet":
        return [Located(r, str(path), None) for r in iter_records(path, kind)]
    return [Located(parse_row(row, kind, path, line), str(path), line) for line, row in iter_jsonl_rows(path)]


@dataclass
class Plan:
    """Which judge sees which samples, after every check passed."""

    judges: dict[str, tuple[str, dict[str, Any]]]  # name -> (registry type, options)
    work: dict[str, list[tuple[Sample, Item]]]  # name -> samples to judge

    def without(self, done: set[str]) -> tuple[Plan, int]:
        """The plan minus verdicts already written (by id), and how many that skips."""
        work = {name: [(s, i) for s, i in rows if verdict_id(s.id, name) not in done] for name, rows in self.work.items()}
        skipped = sum(len(rows) for rows in self.work.values()) - sum(len(rows) for rows in work.values())
        return Plan(self.judges, work), skipped

    @property
    def total(self) -> int:
        return sum(len(rows) for rows in self.work.values())


def judge_spec(name: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(registry type, options) of a configured judge; unknown judges and options are InputErrors."""
    options = dict(options or {})
    kind = str(options.pop("type", name))
    check_options(kind, options, name)  # unknown judge (closest name suggested), unknown or missing options
    return kind, options


def plan(samples: list[Located], prompts: list[Located] | None, cfg: JudgeRunConfig) -> Plan:
    if not cfg.judges:
        raise InputError("no judges given: use --judges ifeval,math,... or a config with a 'judges' mapping")
    specs = {name: judge_spec(name, options) for name, options in cfg.judges.items()}
    if cfg.tasks:
        for task, names in cfg.tasks.items():
            for name in names:
                if name not in specs:
                    raise InputError(f"task '{task}' lists judge '{name}', which is not configured under 'judges'")
    by_id: dict[str, Located] = {}
    for located in prompts or []:
        by_id.setdefault(located.record.id, located)
    constraint_checker = IFEvalJudge()
    validated: set[tuple[str, str]] = set()  # (prompt id, judge): a prompt's n samples are checked once
    work: dict[str, list[tuple[Sample, Item]]] = {name: [] for name in specs}
    for s in samples:
        sample: Sample = s.record
        where = f"{s.path}:{s.line}" if s.line else s.path
        if prompts is not None and sample.prompt_id not in by_id:
            raise InputError(f"prompt_id '{sample.prompt_id}' is not in {prompts[0].path if prompts else 'the prompts'}", where)
        found = by_id.get(sample.prompt_id)
        prompt: Prompt = found.record if found else Prompt(prompt=sample.prompt)
        names = _judges_for(prompt.task, cfg.tasks, list(specs))
        for name in names:
            if (prompt.id, name) not in validated:
                _check_inputs(name, *specs[name], found, constraint_checker)
                validated.add((prompt.id, name))
            work[name].append((sample, Item(prompt, sample.completion, prompt.gold)))
    return Plan(specs, work)


def _check_inputs(name: str, kind: str, options: dict[str, Any], found: Located | None, checker: IFEvalJudge) -> None:
    """What judge `name` needs from a sample's prompt record: constraints that validate, a gold answer."""
    cls = judge_class(kind)
    if cls is IFEvalJudge:
        if found is None:
            raise InputError(f"judge '{name}' reads each prompt's constraints: pass --prompts")
        _validate_constraints(checker, options, found)
    if cls.requires_gold or _needs_gold(kind, options):
        if found is None:
            raise InputError(f"judge '{name}' compares with each prompt's gold answer: pass --prompts")
        if found.record.gold in (None, ""):
            raise InputError(f"prompt {found.record.id} has no 'gold', which judge '{name}' needs", found.path, found.line)


def _judges_for(task: str, tasks: dict[str, list[str]] | None, every: list[str]) -> list[str]:
    if not tasks:
        return every
    return tasks.get(task, tasks.get(ANY_TASK, []))


def _needs_gold(kind: str, options: dict[str, Any]) -> bool:
    if kind != "llm_prob":
        return False
    from posttrain.judges.llm_prob import TEMPLATES

    text = options.get("text") or TEMPLATES.get(options.get("template", "factuality"), TEMPLATES["factuality"]).text
    return "{gold}" in text


def _validate_constraints(checker: IFEvalJudge, options: dict[str, Any], located: Located) -> None:
    checker.mode = options.get("mode", "fixed")
    try:
        checker.validate(located.record)
    except InputError as err:
        raise InputError(f"prompt {located.record.id}: {err.what}", located.path, located.line) from None


# -------------------------------------------------------------------------------------------- execution

_WORKER_JUDGES: dict[str, Judge] = {}


def _init_worker(specs: dict[str, tuple[str, dict[str, Any]]]) -> None:
    for name, (kind, options) in specs.items():
        judge = get_judge(kind, **options)
        judge.name = name
        _WORKER_JUDGES[name] = judge


def _judge_chunk(name: str, items: list[Item]) -> list[Judgment]:
    return _WORKER_JUDGES[name].judge_items(items)


def execute(
    run_plan: Plan,
    writer: RecordWriter,
    cfg: JudgeRunConfig,
    advance: Callable[[str, int], None] = lambda _name, _n: None,
) -> None:
    """Judge everything in the plan and write the verdicts as they come. Rule judges go first, so their worker
    processes can be forked before a model judge loads torch (see `_mp_context`)."""
    names = [name for name in run_plan.judges if run_plan.work[name]]
    rule = [name for name in names if judge_class(run_plan.judges[name][0]).cpu_bound]
    rule_items = sum(len(run_plan.work[n]) for n in rule)
    workers = min(cfg.workers or available_cores(), max(1, rule_items // cfg.chunk_size))
    inline = names
    if rule and workers > 1 and rule_items >= cfg.min_parallel:
        _run_in_processes({n: run_plan.judges[n] for n in rule}, run_plan, writer, cfg, workers, advance)
        inline = [name for name in names if name not in rule]
    for name in sorted(inline, key=lambda n: n not in rule):
        judge = _build(name, *run_plan.judges[name])  # a model judge loads its model only now
        for chunk in _chunks(run_plan.work[name], cfg.chunk_size):
            judgments = judge.judge_items([item for _, item in chunk])
            for (sample, _), j in zip(chunk, judgments, strict=True):
                writer.write(j.to_verdict(sample.id, name, sample.prompt_id))
            advance(name, len(chunk))


def judge_files(
    samples: str | Path,
    prompts: str | Path | None,
    out: Path,
    cfg: JudgeRunConfig,
    progress: Callable[[Plan], Any] | None = None,
) -> tuple[Plan, Plan, int]:
    """The judge stage, as `posttrain judge` and `posttrain run` both run it: every input checked before `out` is
    opened, then the verdicts not yet in `out` (resume) written. `progress(plan)` may return a context manager
    whose value is the `advance(judge, n)` callback. Returns (the full plan, what was judged now, how many verdicts
    were already there)."""
    import contextlib

    full_plan = plan(read_located(samples, Sample), read_located(prompts, Prompt) if prompts else None, cfg)
    with RecordWriter(out) as writer:
        todo, skipped = full_plan.without(writer.done)
        if todo.total:
            with progress(todo) if progress else contextlib.nullcontext(None) as advance:
                execute(todo, writer, cfg, advance or (lambda _name, _n: None))
    return full_plan, todo, skipped


def _build(name: str, kind: str, options: dict[str, Any]) -> Judge:
    judge = get_judge(kind, **options)
    judge.name = name
    return judge


def _mp_context() -> Any:
    """fork when it is safe (Linux, this process has one thread and no torch): workers start in milliseconds and
    inherit the imported judges. Otherwise spawn: a forked child would inherit locks held by other threads
    (torch's pools, a progress thread) and could hang; spawned workers re-import (~2 s each)."""
    if sys.platform == "linux" and threading.active_count() == 1 and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _run_in_processes(
    specs: dict[str, tuple[str, dict[str, Any]]],
    run_plan: Plan,
    writer: RecordWriter,
    cfg: JudgeRunConfig,
    workers: int,
    advance: Callable[[str, int], None],
) -> None:
    with ProcessPoolExecutor(workers, mp_context=_mp_context(), initializer=_init_worker, initargs=(specs,)) as pool:
        futures = {
            pool.submit(_judge_chunk, name, [item for _, item in chunk]): (name, chunk)
            for name in specs
            for chunk in _chunks(run_plan.work[name], cfg.chunk_size)
        }
        for future in as_completed(futures):
            name, chunk = futures[future]
            for (sample, _), judgment in zip(chunk, future.result(), strict=True):
                writer.write(judgment.to_verdict(sample.id, name, sample.prompt_id))
            advance(name, len(chunk))


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# ---------------------------------------------------------------------------------------------- summary


@dataclass
class JudgeSummary:
    judge: str
    counts: Counter[Any]  # value (1, 0, -1) -> how many
    mean_score: float | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summarize(verdicts: list[Verdict], reward_kinds: set[str] | None = None) -> list[JudgeSummary]:
    """Per judge: how many 1 / 0 / -1 and the mean score; plus the AND of the constraint judges per sample."""
    by_judge: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_judge[v.judge].append(v)
    rows = []
    for name, vs in by_judge.items():
        scores = [v.score for v in vs if v.score is not None]
        rows.append(JudgeSummary(name, Counter(v.value for v in vs), sum(scores) / len(scores) if scores else None))
    constraint_names = [n for n in by_judge if n not in (reward_kinds or set())]
    if len(constraint_names) > 1:
        per_sample: dict[str, list[int]] = defaultdict(list)
        for v in verdicts:
            if v.judge in constraint_names:
                per_sample[v.sample_id].append(v.value)
        from posttrain.judges.mixture import all_true

        anded = Counter(all_true(values) for values in per_sample.values())
        rows.append(JudgeSummary("AND (mixture)", anded, None))
    return rows
