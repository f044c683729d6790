"""CGPO's Mixture of Judges: the AND of constraint judges, plus a calibrated reward, per task.

Constraint AND, exactly TRL's `AllTrueJudge` (PR #2159): -1 if any judge failed (even when another one says 0),
else 1 if every judge says 1, else 0; any other value is a ValueError.

Calibrated reward (CGPO §4.1): with a baseline response ā for each prompt (a golden answer, or a response of the
reference policy sampled before RLHF), `R_calib(s, a) = σ(r(s, a) − r(s, ā))`, about P(a ≻ ā | s), in [0, 1]
and comparable across prompts. The constrained reward is R_calib when every constraint holds, else 0 (CRPG's R_cr);
a judge failure gives no reward at all (None), so a trainer can skip the sample instead of learning from noise.

Multi-task (CGPO Alg. 2): prompts carry a `task` (the `Prompt.task` field); each task has its own judges and reward
model. `"*"` is the set for tasks without their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment, Value, make_items

ANY_TASK = "*"


def all_true(values: Sequence[int]) -> Value:
    """TRL AllTrueJudge's rule for one sample's judge values."""
    if any(v not in (0, 1, -1) for v in values):
        raise ValueError(f"Invalid binary judgment: {tuple(values)}, expected list of values in {{0, 1, -1}}.")
    if -1 in values:
        return -1
    return 1 if all(v == 1 for v in values) else 0


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


@dataclass
class TaskJudges:
    constraints: list[Judge] = field(default_factory=list)
    reward: Judge | None = None


@dataclass
class MixtureResult:
    """Everything the mixture knows about one completion."""

    value: Value  # AND of the constraints (1, 0, -1); 1 when the task has no constraints
    judgments: dict[str, Judgment]  # one per constraint judge
    reward_judgment: Judgment | None = None
    reward: float | None = None  # r(s, a)
    baseline_reward: float | None = None  # r(s, ā)
    calibrated: float | None = None  # σ(r(s, a) − r(s, ā))

    @property
    def constrained_reward(self) -> float | None:
        """CRPG's R_cr: the calibrated reward if every constraint holds, 0 if one is violated, None on failure.
        Without a reward judge: the AND itself (1.0 / 0.0)."""
        if self.value == -1 or (self.reward_judgment is not None and self.reward_judgment.value == -1):
            return None
        if self.value == 0:
            return 0.0
        return self.calibrated if self.reward is not None else 1.0


class MixtureOfJudges(Judge):
    """`MixtureOfJudges([ifeval, refusal], reward=rm)` for one task, or `MixtureOfJudges(tasks={...})`."""

    name = "mixture"

    def __init__(
        self,
        judges: Sequence[Judge] | None = None,
        reward: Judge | None = None,
        tasks: Mapping[str, TaskJudges | Sequence[Judge]] | None = None,
    ) -> None:
        self.tasks: dict[str, TaskJudges] = {}
        for task, spec in (tasks or {}).items():
            self.tasks[task] = spec if isinstance(spec, TaskJudges) else TaskJudges(list(spec))
        if judges is not None or reward is not None:
            self.tasks[ANY_TASK] = TaskJudges(list(judges or []), reward)
        if not self.tasks:
            raise InputError("a mixture needs judges (or a reward) for at least one task")
        for task, spec in self.tasks.items():
            if any(j.kind == "reward" for j in spec.constraints):
                raise InputError(f"task '{task}': a reward judge goes in `reward=`, not among the constraints")

    def task_judges(self, task: str) -> TaskJudges:
        if task in self.tasks:
            return self.tasks[task]
        if ANY_TASK in self.tasks:
            return self.tasks[ANY_TASK]
        raise InputError(f"no judges for task '{task}'; tasks with judges: {', '.join(self.tasks)}")

    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        """The AND of each sample's constraint judges as a judgment (score = fraction of constraints met)."""
        out = []
        for result in self.evaluate_items(items, with_reward=False):
            verdicts = [j.value for j in result.judgments.values()]
            met = sum(v == 1 for v in verdicts)
            failed = [name for name, j in result.judgments.items() if j.value != 1]
            detail = "all constraints met" if not failed else "not met: " + ", ".join(failed)
            out.append(Judgment(result.value, met / len(verdicts) if verdicts else 1.0, detail))
        return out

    def evaluate(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        gold: Sequence[Any] | None = None,
        baseline: Sequence[str | None] | None = None,
    ) -> list[MixtureResult]:
        """Constraints, reward and calibrated reward for each completion. Baselines default to each prompt's
        `baseline` field (an extra `Prompt` column)."""
        items = make_items(prompts, completions, gold)
        if baseline is not None and len(baseline) != len(items):
            raise InputError(f"{len(baseline)} baselines but {len(items)} completions; give one per completion")
        baselines = list(baseline) if baseline is not None else [getattr(i.prompt, "baseline", None) for i in items]
        return self.evaluate_items(items, baselines)

    def evaluate_items(
        self,
        items: Sequence[Item],
        baselines: Sequence[str | None] | None = None,
        with_reward: bool = True,
        calibrate: bool = True,
    ) -> list[MixtureResult]:
        """`calibrate=False`: the reward r(s, a) without the baseline's σ(r(a) − r(ā)) (group methods need no ā)."""
        results: list[MixtureResult | None] = [None] * len(items)
        by_task: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_task.setdefault(item.prompt.task, []).append(i)
        for task, idx in by_task.items():
            spec = self.task_judges(task)
            group = [items[i] for i in idx]
            per_judge = {judge.name: _checked(judge, group) for judge in spec.constraints}
            rewards = _checked(spec.reward, group) if with_reward and spec.reward is not None else None
            base_scores = None
            if rewards is not None and spec.reward is not None and calibrate:
                base_scores = self._baseline_scores(spec.reward, group, [baselines[i] if baselines else None for i in idx])
            for k, i in enumerate(idx):
                judgments = {name: js[k] for name, js in per_judge.items()}
                value = all_true([j.value for j in judgments.values()]) if judgments else 1
                result = MixtureResult(value, judgments)
                if rewards is not None:
                    result.reward_judgment, result.reward = rewards[k], rewards[k].score
                if rewards is not None and base_scores is not None:
                    result.baseline_reward = base_scores[k]
                    if result.reward is not None and result.baseline_reward is not None:
                        result.calibrated = sigmoid(result.reward - result.baseline_reward)
                results[i] = result
        return [r for r in results if r is not None]

    def _baseline_scores(self, reward: Judge, group: list[Item], baselines: list[str | None]) -> list[float | None]:
        missing = [k for k, b in enumerate(baselines) if not b]
        if missing:
            raise InputError(
                f"CGPO's calibrated reward needs a baseline response for every prompt (a golden answer or a "
                f"reference-policy sample); {len(missing)} of {len(baselines)} have none. Pass baseline= or give "
                "prompts a 'baseline' field"
            )
        unique: dict[tuple[str, str], Item] = {}  # GRPO repeats each prompt: score each (prompt, ā) once
        for item, b in zip(group, baselines, strict=True):
            unique.setdefault((item.prompt.id, str(b)), Item(item.prompt, str(b)))
        scored = dict(zip(unique, _checked(reward, list(unique.values())), strict=True))
        return [scored[(item.prompt.id, str(b))].score for item, b in zip(group, baselines, strict=True)]


def _checked(judge: Judge, items: list[Item]) -> list[Judgment]:
    """A judge's judgments for `items`, with TRL's check that each value is 1, 0 or -1."""
    if judge.requires_gold:
        missing = [k for k, item in enumerate(items) if item.gold is None or item.gold == ""]
        if missing:
            raise InputError(f"the '{judge.name}' judge needs a gold answer; {len(missing)} samples have none")
    out = judge.judge_items(items)
    if len(out) != len(items):
        raise ValueError(f"judge '{judge.name}' returned {len(out)} judgments for {len(items)} samples")
    for j in out:
        if j.value not in (0, 1, -1):
            raise ValueError(f"Invalid binary judgment from '{judge.name}': {j.value}, expected 0, 1 or -1.")
    return out
