"""CGPO's Mixture of Judges: TRL AllTrueJudge's AND, the calibrated reward, per-task judge sets."""

from __future__ import annotations

import itertools
import math

import pytest

from posttrain.errors import InputError
from posttrain.judges import Judge, Judgment, MixtureOfJudges, TaskJudges, all_true, get_judge
from posttrain.judges.base import Item


class Fixed(Judge):
    """A judge whose answers are given up front (a real Judge subclass, used to drive the truth table)."""

    def __init__(self, name: str, values: list[int]):
        self.name, self.values = name, list(values)

    def judge_one(self, item: Item) -> Judgment:
        return Judgment(self.values.pop(0))  # type: ignore[arg-type]


class LengthReward(Judge):
    """r(s, a) = number of words: a transparent stand-in reward model that needs no weights."""

    name, kind = "length", "reward"

    def judge_one(self, item: Item) -> Judgment:
        return Judgment(1, float(len(item.completion.split())))


def trl_all_true(values):
    """TRL's AllTrueJudge.judge body (trl b5eabbeb0, trl/judges/judges.py), for one sample."""
    if any(v not in {0, 1, -1} for v in values):
        raise ValueError
    if -1 in values:
        return -1
    if all(v == 1 for v in values):
        return 1
    return 0


def test_and_matches_trl_all_true_on_every_combination():
    for values in itertools.product([1, 0, -1], repeat=3):
        assert all_true(list(values)) == trl_all_true(values), values
    assert all_true([0, -1]) == -1  # a failure outranks a violation, as in TRL
    with pytest.raises(ValueError, match="Invalid binary judgment"):
        all_true([1, 2])


def test_mixture_judge_is_the_and_over_its_constraints():
    combos = list(itertools.product([1, 0, -1], repeat=2))
    a, b = Fixed("a", [x for x, _ in combos]), Fixed("b", [y for _, y in combos])
    out = MixtureOfJudges([a, b]).judge(["p"] * len(combos), ["c"] * len(combos))
    assert [j.value for j in out] == [trl_all_true(c) for c in combos]
    assert out[0].detail == "all constraints met" and out[1].detail == "not met: b"


def test_real_judges_combined():
    mixture = MixtureOfJudges([get_judge("ifeval"), get_judge("refusal")])
    prompt = {"prompt": "no commas please", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    out = mixture.judge([prompt] * 3, ["Sure thing here it is", "Sure, here", "I can't help with that"])
    assert [j.value for j in out] == [1, 0, 0]


def test_calibrated_reward_is_sigmoid_of_the_reward_difference():
    mixture = MixtureOfJudges([get_judge("refusal")], reward=LengthReward())
    results = mixture.evaluate(["q", "q", "q"], ["one two three", "one", "I can't help with that"],
                               baseline=["one two", "one two", "one two"])  # fmt: skip
    assert [r.reward for r in results] == [3.0, 1.0, 5.0]
    assert all(r.baseline_reward == 2.0 for r in results)
    assert results[0].calibrated == pytest.approx(1 / (1 + math.exp(-1)))
    assert results[1].calibrated == pytest.approx(1 / (1 + math.exp(1)))
    # R_cr: calibrated when every constraint holds, 0 when one is violated (the refusal here)
    assert [r.constrained_reward for r in results] == [results[0].calibrated, results[1].calibrated, 0.0]


def test_baselines_come_from_the_prompt_records_and_are_required():
    mixture = MixtureOfJudges(reward=LengthReward())
    (r,) = mixture.evaluate([{"prompt": "q", "baseline": "a b c d"}], ["a b"])
    assert r.calibrated == pytest.approx(1 / (1 + math.exp(2)))
    with pytest.raises(InputError, match="needs a baseline response for every prompt"):
        mixture.evaluate(["q"], ["a"])


def test_a_failed_constraint_gives_no_reward_at_all():
    mixture = MixtureOfJudges([Fixed("flaky", [-1])], reward=LengthReward())
    (r,) = mixture.evaluate(["q"], ["a b"], baseline=["a"])
    assert r.value == -1 and r.constrained_reward is None


def test_per_task_judge_sets():
    mixture = MixtureOfJudges(tasks={
        "math": TaskJudges([get_judge("math")]),
        "instruction_following": [get_judge("ifeval")],
        "*": [get_judge("refusal")],
    })  # fmt: skip
    prompts = [
        {"prompt": "1+1?", "gold": "2", "task": "math"},
        {"prompt": "no commas", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"prompt": "chat", "task": "general_chat"},
    ]
    results = mixture.evaluate(prompts, ["The final answer is 3.", "a, b", "Sure!"])
    assert [list(r.judgments) for r in results] == [["math"], ["ifeval"], ["refusal"]]
    assert [r.value for r in results] == [0, 0, 1]
    with pytest.raises(InputError, match="no judges for task 'other'"):
        MixtureOfJudges(tasks={"math": [get_judge("math")]}).judge([{"prompt": "x", "task": "other"}], ["y"])


def test_a_reward_judge_is_not_a_constraint():
    with pytest.raises(InputError, match="goes in `reward=`"):
        MixtureOfJudges([LengthReward()])
