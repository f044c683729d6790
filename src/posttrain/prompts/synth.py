"""Synthetic verifiable instruction-following prompts: a base task + k compatible constraints, phrased naturally.

The recipe (CGPO App. A; Kim et al. 2024 scale it to 48k prompts over 23 constraint types), one prompt at a time:

1. draw k in [min, max] and k mutually compatible constraint ids (`combos.py`: IFEval's conflict table plus ours);
2. draw a base task they fit: a topic x task-type template from `inventory.py` ("Write a poem about coral
   reefs."), skipping task types that avoid one of the ids; or a line of the user's seed-task file (then the ids
   are drawn among those that fit it);
3. draw each constraint's kwargs from the constraint library, then fit counts and words to the task and to each
   other (`fit.py`), so a good answer can satisfy all of them;
4. describe each constraint with the library's varied templates, shuffle them, and join them to the task with
   one of several frames (inline, a rules list, rules first);
5. drop exact and near duplicates (`dedup.py`); score difficulty (`difficulty.py`).

Every draw uses `random.Random(f"{seed}:{attempt}")`, so a run is reproducible and `--n 100` is a prefix of
`--n 1000` with the same seed. The optional LLM rewrite (`rewrite.py`) runs on the result.
"""

from __future__ import annotations

import difflib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.constraint_ids import CGPO_23, REPEAT_CHANGE, REPEAT_PROMPT, REPEAT_SPAN, RESPONSE_LANGUAGE
from posttrain.constraints import Constraint, get_constraint
from posttrain.errors import InputError
from posttrain.prompts import combos
from posttrain.prompts.dedup import Deduplicator
from posttrain.prompts.difficulty import difficulty
from posttrain.prompts.fit import fit_kwargs, make_plan
from posttrain.prompts.inventory import (
    TASK_TYPES,
    TASKS_BY_NAME,
    TOPICS,
    TaskType,
    infer_task_type,
    topic_words_of,
)
from posttrain.records import Prompt, iter_jsonl_rows

# Constraints whose kwargs quote the request itself (IFEval's repeat_prompt, IFBench's repeat_change / repeat_span).
REPEATS = (REPEAT_PROMPT, REPEAT_CHANGE, REPEAT_SPAN)


def repeat_kwargs(rng: random.Random, cid: str, request: str) -> dict[str, Any]:
    """Kwargs of a repeat constraint for `request`; repeat_span also gets a word span inside it."""
    if cid != REPEAT_SPAN:
        return {"prompt_to_repeat": request}
    size = len(request.split())
    start = rng.randint(1, size - 2)
    return {"prompt_to_repeat": request, "n_start": start, "n_end": rng.randint(start + 1, size - 1)}


@dataclass
class SynthConfig:
    n: int = 1000
    constraints: str = "1-3"  # constraints per prompt: "3" or a range "1-5"
    seed: int = 0
    ids: list[str] | None = None  # constraint ids to draw from; default: CGPO's 23 (constraint_ids.CGPO_23)
    exclude: list[str] = field(default_factory=list)
    # id -> relative weight of drawing it (ids not named weigh 1): more prompts with the types a model fails most
    weights: dict[str, float] | None = None
    seed_tasks: str | None = None  # .txt (one task per line) or .jsonl ({"prompt"|"task": ..., "task_type": ...})
    seed_fraction: float = 1.0  # share of prompts built on seed tasks when a seed file is given
    near_dup: float | None = 0.9  # MinHash Jaccard threshold for near duplicates; None or 0 disables
    max_attempts_per_prompt: int = 20  # give up (InputError) after n * this many candidates


@dataclass(frozen=True)
class SeedTask:
    text: str
    task: TaskType
    topic_words: tuple[str, ...]


@dataclass
class Candidate:
    """A prompt before it becomes a record: what the rewrite step and the stats need besides the text."""

    text: str
    base_task: str
    descriptions: list[str]
    ids: list[str]
    kwargs: list[dict[str, Any]]
    task_type: str
    topic: str


# ------------------------------------------------------------------------------------------------ seed tasks


def read_seed_tasks(path: str | Path) -> list[SeedTask]:
    """Seed tasks from a .txt file (one per line, `#` comments) or a .jsonl file; every problem an InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError("seed task file not found", path)
    tasks: list[SeedTask] = []
    if path.suffix == ".jsonl":
        for line, row in iter_jsonl_rows(path):
            text = row.get("prompt") or row.get("task") if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise InputError("expected an object with a non-empty 'prompt' (or 'task') string", path, line)
            task_type = row.get("task_type")
            if task_type is not None and task_type not in TASKS_BY_NAME:
                close = difflib.get_close_matches(str(task_type), TASKS_BY_NAME, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(TASKS_BY_NAME)}"
                raise InputError(f"unknown task_type '{task_type}'{hint}", path, line)
            task = TASKS_BY_NAME[task_type] if task_type else infer_task_type(text)
            tasks.append(SeedTask(text.strip(), task, topic_words_of(text)))
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError("not valid UTF-8", path) from None
        for raw in lines:
            text = raw.strip()
            if text and not text.startswith("#"):
                tasks.append(SeedTask(text, infer_task_type(text), topic_words_of(text)))
    if not tasks:
        raise InputError("seed task file has no tasks (one task per line, or JSONL with 'prompt')", path)
    return tasks


# ------------------------------------------------------------------------------------------------ phrasing

_FRAMES = (
    "{task} {rules}",
    "{task}\n\n{rules}",
    "{task}\n\nRequirements:\n{bullets}",
    "{task} Please follow these rules: {rules}",
    "{lead} {task} {rules}",
    "{rules}\n\nWith that in mind: {task}",
    "{task}\n\nConstraints:\n{numbered}",
)
_LEADS = ("I need your help with something.", "Here is my request.", "Quick favor:", "Hi!", "Hello.",
          "Can you help me out?", "I have a writing task for you.")  # fmt: skip


def compose(rng: random.Random, task_text: str, descriptions: list[str]) -> str:
    if not descriptions:
        return task_text
    frame = rng.choice(_FRAMES)
    if any("\n" in d for d in descriptions) and ("{bullets}" in frame or "{numbered}" in frame):
        frame = _FRAMES[1]  # a multi-line description (a bullet example) would break a list of rules
    return frame.format(
        task=task_text,
        rules=" ".join(descriptions),
        bullets="\n".join(f"- {d}" for d in descriptions),
        numbered="\n".join(f"{i}. {d}" for i, d in enumerate(descriptions, 1)),
        lead=rng.choice(_LEADS),
    )


def phrase(rng: random.Random, base: str, ids: list[str], kwargs: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The request's text and its constraint descriptions: each constraint phrased with one of its templates, in
    shuffled order, joined to the base task by `compose`. A repeat constraint's kwargs (the request to repeat) are
    filled in `kwargs` here, as they quote the text."""
    order = [i for i in range(len(ids)) if ids[i] not in REPEATS]
    rng.shuffle(order)
    descriptions = [get_constraint(ids[i]).describe(kwargs[i], rng) for i in order]
    text = compose(rng, base, descriptions)
    for i in (i for i in range(len(ids)) if ids[i] in REPEATS):  # at most one: they conflict with each other
        kwargs[i] = repeat_kwargs(rng, ids[i], text)  # the request to repeat: all but this instruction
        repeat = get_constraint(ids[i]).describe(kwargs[i], rng)
        descriptions.append(repeat)
        text = f"{text} {repeat}"
    return text, descriptions


# ------------------------------------------------------------------------------------------------ synthesis


class Synthesizer:
    """Draws candidates one attempt at a time; `run(n)` keeps the first n unique ones."""

    def __init__(self, config: SynthConfig, seed_tasks: list[SeedTask] | None = None):
        self.config = config
        self.k_min, self.k_max = combos.parse_range(config.constraints)
        if config.n < 1:
            raise InputError(f"--n must be at least 1 (got {config.n})")
        if not 0.0 <= config.seed_fraction <= 1.0:
            raise InputError(f"seed_fraction must be in [0, 1] (got {config.seed_fraction})")
        if config.near_dup is not None and not 0.0 <= config.near_dup <= 1.0:
            raise InputError(f"near_dup must be in (0, 1], or 0 to disable (got {config.near_dup})")
        wanted = list(config.ids) if config.ids else list(CGPO_23)
        self.constraints: dict[str, Constraint] = {}
        for cid in wanted + list(config.exclude):
            self.constraints[cid] = get_constraint(cid)  # InputError for an unknown id
        self.pool = [cid for cid in dict.fromkeys(wanted) if cid not in set(config.exclude)]
        self.table = combos.conflict_table({cid: c.conflicts for cid, c in self.constraints.items()})
        combos.check_feasible(self.pool, self.table, self.k_max)
        for cid, weight in (config.weights or {}).items():
            if cid not in self.pool:
                raise InputError(f"weights: '{cid}' is not one of the constraint ids drawn from")
            if not weight > 0:
                raise InputError(f"weights: '{cid}' has weight {weight}; weights must be positive")
        self.seed_tasks = seed_tasks or []
        self.rejected: Counter[str] = Counter()
        self.tasks_for = {cid: {t.name for t in TASK_TYPES if self.fits(cid, t)} for cid in self.pool}

    def fits(self, cid: str, task: TaskType) -> bool:
        return cid not in task.avoid and task.name in combos.ONLY_FOR.get(cid, frozenset({task.name}))

    def draw(self, attempt: int) -> Candidate | None:
        rng = random.Random(f"{self.config.seed}:{attempt}")
        k = rng.randint(self.k_min, self.k_max)
        if self.seed_tasks and rng.random() < self.config.seed_fraction:
            # A seed task is given: draw constraints that fit it.
            seed = rng.choice(self.seed_tasks)
            task, base, topic_name, topic_words = seed.task, seed.text, "seed", seed.topic_words
            ids = combos.sample_combination(rng, [c for c in self.pool if self.fits(c, task)], k, self.table,
                                              weights=self.config.weights)  # fmt: skip
        else:
            # Constraints first, then a task type they fit: each id's share then does not depend on which
            # task types avoid it (a yes/no answer format would otherwise only ever meet the question task).
            ids = combos.sample_combination(rng, self.pool, k, self.table, weights=self.config.weights)
            names = set.intersection(*(self.tasks_for[c] for c in ids)) if ids else set()
            tasks = [t for t in TASK_TYPES if t.name in names]
            task = rng.choice(tasks) if tasks else TASK_TYPES[0]
            topic = rng.choice(TOPICS)
            base = rng.choice(task.templates).format(subject=rng.choice(topic.subjects))
            topic_name, topic_words = topic.name, topic.words
            if not tasks:
                ids = None
        if ids is None:
            self.rejected["no_compatible_combination"] += 1
            return None
        sampled = [self.constraints[cid].sample_kwargs(rng) for cid in ids]
        kwargs = fit_kwargs(rng, ids, sampled, make_plan(rng, task, topic_words))
        text, descriptions = phrase(rng, base, ids, kwargs)
        return Candidate(text, base, descriptions, ids, kwargs, task.name, topic_name)

    def run(self, n: int | None = None) -> list[Candidate]:
        n = self.config.n if n is None else n
        dedup = Deduplicator(self.config.near_dup or None, seed=self.config.seed)
        kept: list[Candidate] = []
        attempt = 0
        limit = n * self.config.max_attempts_per_prompt
        while len(kept) < n:
            if attempt >= limit:
                raise InputError(
                    f"only {len(kept)} unique prompts after {attempt} candidates ({dict(self.rejected)}); "
                    "the task/constraint space is too small for --n: add seed tasks or ids, widen --constraints, "
                    "or raise --near-dup"
                )
            candidate = self.draw(attempt)
            attempt += 1
            if candidate is not None and dedup.add(candidate.text):
                kept.append(candidate)
        self.rejected["exact_duplicate"] = dedup.exact_rejected
        self.rejected["near_duplicate"] = dedup.near_rejected
        self.attempts = attempt
        return kept


def unverifiable(candidates: list[Candidate]) -> list[int]:
    """Indices of candidates for which the witness builder finds no response passing every checker.

    Empty unless the conflict table or `fit.py` has a bug (or a new constraint type the builder does not know).
    """
    from posttrain.constraints import check_all
    from posttrain.prompts.witness import satisfying_response

    bad = []
    for i, c in enumerate(candidates):
        if RESPONSE_LANGUAGE in c.ids:
            continue  # the witness writes English only
        response = satisfying_response(c.ids, c.kwargs, random.Random(i))
        if not all(check_all(response, c.ids, c.kwargs)):
            bad.append(i)
    return bad


def to_record(candidate: Candidate, **extra: Any) -> Prompt:
    return Prompt.model_validate(
        {
            "prompt": candidate.text,
            "instruction_id_list": candidate.ids,
            "kwargs": candidate.kwargs,
            "difficulty": difficulty(candidate.ids, candidate.kwargs),
            "source": "synth",
            "task_type": candidate.task_type,  # provenance, kept as extra fields of the record
            "topic": candidate.topic,
            "base_task": candidate.base_task,
            **extra,
        }
    )


def synthesize(config: SynthConfig) -> tuple[list[Prompt], dict[str, Any]]:
    """The template-only path: records plus generation counters (no model, no network)."""
    seed_tasks = read_seed_tasks(config.seed_tasks) if config.seed_tasks else None
    synth = Synthesizer(config, seed_tasks)
    candidates = synth.run()
    counters = {"attempts": synth.attempts, "rejected": dict(synth.rejected), "config": json.loads(
        json.dumps(config.__dict__, default=str))}  # fmt: skip
    return [to_record(c) for c in candidates], counters
