"""Judges as TRL `reward_funcs`, an OpenRLHF `reward_func` and a verl `compute_score`, called with the argument
shapes those libraries use (GRPOTrainer passes dataset columns as kwargs lists plus its own extras; OpenRLHF passes
prompt+response strings and `--label_key` labels; verl passes one solution string at a time)."""

from __future__ import annotations

import inspect
import json

import pytest
import torch

from posttrain.judges import Judge, Judgment, MixtureOfJudges, get_judge
from posttrain.judges.adapters import openrlhf_reward_func, trl_reward_func, verl_compute_score

NO_COMMA = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


def trl_extras(n: int) -> dict:
    """What GRPOTrainer adds besides the dataset columns (trl/trainer/grpo_trainer.py, _calculate_rewards)."""
    return {"completion_ids": [[1, 2]] * n, "trainer_state": object(), "log_extra": lambda *a: None,
            "log_metric": lambda *a: None}  # fmt: skip


def test_trl_standard_format_with_dataset_columns():
    func = trl_reward_func(get_judge("ifeval"))
    prompts = ["Write without commas."] * 3
    completions = ["no commas here", "one, two", "<think>a, b</think>clean"]
    rewards = func(prompts=prompts, completions=completions, instruction_id_list=[NO_COMMA["instruction_id_list"]] * 3,
                   kwargs=[[{}]] * 3, **trl_extras(3))  # fmt: skip
    assert rewards == [1.0, 0.0, 1.0]
    assert func.__name__ == "ifeval_reward"
    assert list(inspect.signature(func).parameters) == ["prompts", "completions", "kwargs"]


def test_trl_conversational_format_and_gold_column():
    func = trl_reward_func(get_judge("math"), gold_column="solution")
    prompts = [[{"role": "user", "content": "1+1?"}]] * 2
    completions = [[{"role": "assistant", "content": "The final answer is 2."}],
                   [{"role": "assistant", "content": "The final answer is 3."}]]  # fmt: skip
    assert func(prompts=prompts, completions=completions, solution=["2", "2"], **trl_extras(2)) == [1.0, 0.0]


def test_trl_partial_credit_and_failures_as_none():
    func = trl_reward_func(get_judge("ifeval"), use_score=True)
    ids = [["punctuation:no_comma", "change_case:english_lowercase"], ["length_constraints:number_words"]]
    out = func(prompts=["p", "q"], completions=["Hello world", "x"], instruction_id_list=ids,
               kwargs=[[{}, {}], [{"bogus": 1}]])  # fmt: skip
    assert out == [0.5, None]  # None: TRL turns it into NaN and leaves it out of the advantage


def test_trl_mixture_reward_is_the_constrained_calibrated_reward():
    class Words(Judge):  # r(s, a) = number of words
        name, kind = "words", "reward"

        def judge_one(self, item):
            return Judgment(1, float(len(item.completion.split())))

    func = trl_reward_func(MixtureOfJudges([get_judge("refusal")], reward=Words()))
    out = func(prompts=["q", "q"], completions=["a b c", "I can't help"], baseline=["a b c", "a b c"], **trl_extras(2))
    assert out == [pytest.approx(0.5), 0.0]


def test_openrlhf_reward_func():
    reward_func = openrlhf_reward_func(get_judge("math"))
    prompts = ["<|user|>1+1?<|assistant|>", "<|user|>2+2?<|assistant|>"]
    queries = [prompts[0] + "The final answer is 2.", prompts[1] + "The final answer is 5."]
    out = reward_func(queries, prompts, ["2", "4"])
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert torch.equal(out["rewards"], torch.tensor([1.0, 0.0]))
    assert out["scores"].dtype == torch.float32
    assert out["extra_logs"]["math/satisfied"].item() == pytest.approx(0.5)


def test_openrlhf_labels_may_carry_prompt_fields_as_json():
    reward_func = openrlhf_reward_func(get_judge("ifeval"))
    label = json.dumps(NO_COMMA)
    out = reward_func(["P: a b", "P: a, b"], ["P: ", "P: "], [label, label])
    assert out["rewards"].tolist() == [1.0, 0.0]


def test_verl_compute_score():
    compute_score = verl_compute_score(get_judge("math"))
    assert compute_score("openai/gsm8k", "... so the answer is \\boxed{72}", "72") == 1.0
    assert compute_score("openai/gsm8k", "The final answer is 71.", "72", extra_info={"index": 0}) == 0.0
    ifeval_score = verl_compute_score(get_judge("ifeval"))
    assert ifeval_score("ifeval", "a b c", None, extra_info=NO_COMMA) == 1.0


def test_verl_data_source_selects_the_mixture_task():
    mixture = MixtureOfJudges(tasks={"math": [get_judge("math")], "*": [get_judge("refusal")]})
    compute_score = verl_compute_score(mixture)
    assert compute_score("math", "The final answer is 4.", "4") == 1.0
    assert compute_score("math", "I can't help with that.", "4") == 0.0
    assert compute_score("chat", "I can't help with that.", "") == 0.0
    assert compute_score("chat", "Sure, here you go.", "") == 1.0
