"""Any judge or mixture as the reward hook of TRL, OpenRLHF or verl.

- TRL (`GRPOTrainer(reward_funcs=[...])`): `trl_reward_func(judge)` returns `f(prompts, completions, **kwargs) ->
  list[float | None]`. Dataset columns arrive as kwargs lists (one value per completion): `instruction_id_list`,
  `kwargs`, `task`, `gold` (or the column named by `gold_column`), `baseline`. Completions may be conversational
  (`[{"role": "assistant", "content": ...}]`). A judge failure (-1) returns None, which TRL turns into NaN and
  leaves out of the advantage.
- OpenRLHF (`--reward.remote_url reward.py`, a file defining `reward_func`): `openrlhf_reward_func(judge)` returns
  `reward_func(queries, prompts, labels, **kwargs) -> {"rewards": tensor, "scores": tensor, "extra_logs": {...}}`.
  `queries` are prompt + response; `labels` come from `--label_key` (the gold, or a JSON object of `Prompt` fields).
- verl (`custom_reward_function.path/name`): `verl_compute_score(judge)` returns
  `compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float`; `data_source` selects a
  mixture's task when it has one of that name, `extra_info` may carry `Prompt` fields.

The reward of one completion: a mixture's constrained calibrated reward (CGPO's R_cr) or, without a reward model,
its AND (1.0 / 0.0); a plain judge's value (1.0 / 0.0), or its score with `use_score=True` (e.g. IFEval's partial
credit, a reward model's raw score). OpenRLHF and verl cannot take a missing reward, so failures become
`failure_reward` (0.0) there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from posttrain.judges.base import Judge, Judgment
from posttrain.judges.mixture import MixtureOfJudges

PROMPT_COLUMNS = ("instruction_id_list", "kwargs", "task", "gold", "baseline", "difficulty")


def rewards(
    judge: Judge, prompts: Sequence[Any], completions: Sequence[Any], use_score: bool = False
) -> tuple[list[float | None], list[Judgment] | None]:
    """Per-completion rewards (None = judge failure) and, for plain judges, the judgments behind them."""
    if isinstance(judge, MixtureOfJudges):
        return [r.constrained_reward for r in judge.evaluate(prompts, completions)], None
    judgments = judge.judge(prompts, completions)
    return [_reward(j, use_score) for j in judgments], judgments


def _reward(j: Judgment, use_score: bool) -> float | None:
    if j.value == -1:
        return None
    if use_score and j.score is not None:
        return float(j.score)
    return float(j.value)


# -------------------------------------------------------------------------------------------------- TRL


def trl_reward_func(
    judge: Judge, use_score: bool = False, gold_column: str = "gold", name: str | None = None
) -> Callable[..., list[float | None]]:
    def reward_func(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        columns = {key: kwargs[key] for key in PROMPT_COLUMNS if key in kwargs and key != "gold"}
        if gold_column in kwargs:
            columns["gold"] = kwargs[gold_column]
        rows = [{"prompt": p, **{k: v[i] for k, v in columns.items()}} for i, p in enumerate(prompts)]
        return rewards(judge, rows, completions, use_score)[0]

    reward_func.__name__ = name or f"{judge.name}_reward"  # TRL logs each reward under its function's name
    return reward_func


# --------------------------------------------------------------------------------------------- OpenRLHF


def openrlhf_reward_func(
    judge: Judge, use_score: bool = False, failure_reward: float = 0.0
) -> Callable[..., dict[str, Any]]:
    def reward_func(queries: list[str], prompts: list[str], labels: list[Any], **kwargs: Any) -> dict[str, Any]:
        import torch

        responses = [q[len(p) :] if q.startswith(p) else q for q, p in zip(queries, prompts, strict=True)]
        rows = [_row_from_label(p, label) for p, label in zip(prompts, labels, strict=True)]
        values, judgments = rewards(judge, rows, responses, use_score)
        filled = [failure_reward if v is None else v for v in values]
        tensor = torch.tensor(filled, dtype=torch.float32)
        logs = {f"{judge.name}/failures": torch.tensor(float(sum(v is None for v in values)))}
        if judgments is not None:
            logs[f"{judge.name}/satisfied"] = torch.tensor([float(j.value == 1) for j in judgments]).mean()
        return {"rewards": tensor, "scores": tensor.clamp(0.0, 1.0), "extra_logs": logs}

    return reward_func


def _row_from_label(prompt: str, label: Any) -> dict[str, Any]:
    """A label is a gold answer, or a JSON object of Prompt fields (`instruction_id_list`, `kwargs`, `gold`...)."""
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            parsed = json.loads(label)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and set(parsed) & set(PROMPT_COLUMNS):
            return {"prompt": prompt, **{k: v for k, v in parsed.items() if k in PROMPT_COLUMNS}}
    if isinstance(label, dict):
        return {"prompt": prompt, **{k: v for k, v in label.items() if k in PROMPT_COLUMNS}}
    return {"prompt": prompt, "gold": label}


# ------------------------------------------------------------------------------------------------- verl


def verl_compute_score(
    judge: Judge, use_score: bool = False, failure_reward: float = 0.0
) -> Callable[..., float]:
    def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None = None) -> float:
        info = dict(extra_info or {})
        row = _row_from_label(str(info.get("question", info.get("prompt", ""))), ground_truth)
        row.update({k: v for k, v in info.items() if k in PROMPT_COLUMNS})
        if isinstance(judge, MixtureOfJudges) and data_source in judge.tasks:
            row["task"] = data_source
        value = rewards(judge, [row], [solution_str], use_score)[0][0]
        return failure_reward if value is None else value

    return compute_score
