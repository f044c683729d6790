"""The Critic-RM judge as a judge: registry and options (as `posttrain judge` configs check them), refusals of a
directory that is not a Critic-RM model, batch-independent rewards, and use as the reward of a Mixture of Judges.
Training and the trained model's scores are in tests/train/test_critic_rm.py."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from posttrain.errors import InputError
from posttrain.judges import JUDGES, MixtureOfJudges, get_judge, judge_class
from posttrain.judges.base import check_options
from posttrain.judges.critic_rm import CriticRMJudge
from posttrain.models.backend import Completion, SamplingParams, as_messages


class FixedCritic:
    """Every critique request gets the same answers, with the score given by the response's length."""

    name = "fixed"

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        out = []
        for prompt in prompts:
            response = as_messages(prompt)[-1]["content"].split("[Assistant response]\n", 1)[1]
            score = min(10, 1 + len(response) // 4)
            out.append([Completion(f"Critique {j}. Score: {score}/10", 5, 5, "stop") for j in range(n)])
        return out

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        raise NotImplementedError("a scripted generator: it only writes text, it scores nothing")


@pytest.fixture
def judge(tiny_causal_lm, tokenizer) -> CriticRMJudge:
    torch.manual_seed(1)
    head = torch.nn.Linear(tiny_causal_lm.config.hidden_size, 1, bias=False)
    built = CriticRMJudge(
        model=(tiny_causal_lm, head, tokenizer, {"max_length": 256}), critiques=2, batch_size=2
    )
    built.backend = FixedCritic()
    return built


def test_registered_as_a_reward_judge_with_checked_options():
    assert "critic_rm" in JUDGES and judge_class("critic_rm").kind == "reward"
    check_options("critic_rm", {"model": "runs/critic_rm/model", "critiques": 4, "on_unparseable": "skip"})
    with pytest.raises(InputError, match="has no option 'critique'.*did you mean 'critiques'"):
        check_options("critic_rm", {"model": "x", "critique": 4})
    with pytest.raises(InputError, match="needs the option 'model'"):
        check_options("critic_rm", {})


def test_refuses_what_is_not_a_critic_rm_directory(tmp_path, tiny_causal_lm, tokenizer):
    with pytest.raises(InputError, match="not a local model directory"):
        get_judge("critic_rm", model=str(tmp_path / "missing"))
    tiny_causal_lm.save_pretrained(tmp_path / "plain")
    with pytest.raises(InputError, match="reward_head.safetensors is missing"):
        get_judge("critic_rm", model=str(tmp_path / "plain"))
    with pytest.raises(InputError, match="several critiques need temperature > 0"):
        get_judge("critic_rm", model=str(tmp_path / "plain"), critiques=2, temperature=0)


def test_rewards_do_not_depend_on_the_batch(judge):
    prompts = ["Say hi.", "Name a colour, please, in one word.", "Count to three."]
    responses = ["hi", "Blue.", "one, two, three"]
    together = judge.judge(prompts, responses)
    alone = [judge.judge([p], [r])[0] for p, r in zip(prompts, responses, strict=True)]
    assert all(j.value == 1 for j in together)
    for a, b in zip(together, alone, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)
    assert judge.counts["critiques"] == 12 and judge.counts["unparseable"] == 0


def test_reward_of_a_mixture_of_judges(judge):
    moj = MixtureOfJudges([get_judge("refusal")], reward=judge)
    [result] = moj.evaluate(["Name a colour."], ["Blue, like the sky."], baseline=["Red."])
    reward, base = result.reward, judge.judge(["Name a colour."], ["Red."])[0].score
    assert result.value == 1 and result.calibrated == pytest.approx(1 / (1 + math.exp(-(reward - base))))
