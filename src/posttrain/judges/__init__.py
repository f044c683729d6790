"""Judges: rule-based (IFEval constraints, math answers, code in a sandbox, refusal phrases) and model-based (a
reward model, token-probability LLM judges, Llama Guard), CGPO's Mixture of Judges, and adapters that make any of
them a TRL, OpenRLHF or verl reward.

>>> from posttrain.judges import get_judge
>>> [j.value for j in get_judge("math").judge([{"prompt": "1+1?", "gold": "2"}], ["The final answer is 2."])]
[1]

`import posttrain.judges` stays light: a judge's module (and torch) is imported when the judge is first built.
"""

from posttrain.judges.base import (
    JUDGES,
    Item,
    Judge,
    Judgment,
    as_prompt,
    completion_text,
    get_judge,
    judge_class,
    judge_options,
)
from posttrain.judges.mixture import MixtureOfJudges, MixtureResult, TaskJudges, all_true
from posttrain.judges.verdicts import judge_samples

__all__ = [
    "JUDGES",
    "Item",
    "Judge",
    "Judgment",
    "MixtureOfJudges",
    "MixtureResult",
    "TaskJudges",
    "all_true",
    "as_prompt",
    "completion_text",
    "get_judge",
    "judge_class",
    "judge_options",
    "judge_samples",
]
