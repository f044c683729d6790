"""Critic-RM: critique parsing, filtering by the label, refinement, the λ schedule and the joint loss by hand, a few
training steps whose model the judge loads and scores with, resume, and bad input. The critic of stage 1 is a
scripted backend (a real Backend whose answers are given up front); training runs on a tiny random Llama."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.judges import get_judge
from posttrain.judges.critic_rm import critique_messages, read_critique_score
from posttrain.models.backend import Completion, SamplingParams, as_messages
from posttrain.records import Pair
from posttrain.train import losses
from posttrain.train.critic_rm import (
    CriticRMConfig,
    CritiqueAndReward,
    agreeing,
    rank_by_rating,
    train_critic_rm,
    write_critiques,
)
from posttrain.train.data import collate, render


class ScriptedCritic:
    """Critiques by rule: a response with "fine" in it scores 8 (or 7), any other 3 (or 4); the last of every n
    critiques has no score line when `broken`. Ratings (rank) prefer longer critiques; summaries score 9."""

    name = "scripted"

    def __init__(self, broken: bool = False, fail_after: int | None = None):
        self.broken, self.fail_after = broken, fail_after
        self.requests: list[str] = []

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        if self.fail_after is not None and len(self.requests) >= self.fail_after:
            raise RuntimeError("the critic crashed")
        out = []
        for prompt in prompts:
            text = as_messages(prompt)[-1]["content"]
            self.requests.append(text)
            if text.startswith("Below are a user's request, an AI assistant's response, and a critique"):
                answers = [f"A fair critique. Score: {min(10, len(text) % 7 + 3)}/10"] * n
            elif text.startswith("Below are a user's request, an AI assistant's response, and several"):
                answers = ["Merged: it is fine overall. Score: 9/10"] * n
            else:
                response = text.split("[Assistant response]\n", 1)[1]
                good = "fine" in response
                answers = [
                    "No score in this one." if self.broken and j == n - 1
                    else f"{'Clear and correct' if good else 'Wrong and rude'} ({j}). Score: {(8 - j % 2) if good else (3 + j % 2)}/10"
                    for j in range(n)
                ]  # fmt: skip
            out.append([Completion(a, 10, len(a.split()), "stop") for a in answers])
        return out

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        raise NotImplementedError("a scripted generator: it only writes text, it scores nothing")


def pairs(n: int) -> list[Pair]:
    return [
        Pair(prompt=f"Rate item {i}.", chosen=f"item {i}: fine.", rejected=f"ITEM {i}: BAD!!")
        for i in range(n)
    ]


def config(model_dir, out, *overrides: str) -> CriticRMConfig:
    base = [
        f"model.name={model_dir}", f"train.output_dir={out}", "train.batch_size=2", "train.progress=false",
        "data.max_length=256", "critiques.n=3", "critiques.batch_size=2",
    ]  # fmt: skip
    return load_config(CriticRMConfig, None, base + list(overrides))


# ---------------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Good answer.\nScore: 8/10", 8),
        ("**Score:** 7 / 10", 7),
        ("score = [9]/10", 9),
        ("First Score: 2/10, on reflection Score: 6/10", 6),  # the last one decides
        ("Score: 10/10", 10),
    ],
)
def test_good_critique_scores_parse(text, score):
    assert read_critique_score(text) == (score, "")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("A critique that forgot its score.", "no 'Score: X/10' line"),
        ("Score: 11/10", "outside 1-10"),
        ("Score: 0/10", "outside 1-10"),
        ("Score: 7.5/10", "not a whole number"),
        ("Score: 4/5", "not on the 1-10 scale"),
        ("End with the line Score: X/10", "no 'Score: X/10' line"),  # the template echoed back
    ],
)
def test_malformed_critique_scores_are_refused(text, problem):
    score, why = read_critique_score(text)
    assert score is None and problem in why


def test_critique_request_carries_prompt_response_and_scale():
    [message] = critique_messages([{"role": "user", "content": "Hi?"}], " Hello. ", scale=5)
    assert message["role"] == "user" and "[User request]\nHi?" in message["content"]
    assert (
        message["content"].endswith("[Assistant response]\nHello.") and '"Score: X/5"' in message["content"]
    )


# ---------------------------------------------------------------------------------------------------- filtering


def test_agreeing_keeps_critiques_on_the_right_side_of_the_other_mean():
    # chosen mean 7, rejected mean 4: chosen critiques above 4 and rejected ones below 7 agree, best first
    assert agreeing([8, 3, None, 10], [2, 8, 2]) == ("kept", [3, 0], [0, 2])
    assert agreeing([5, 5], [6, 4]) == ("disagree", [], [])  # equal means: the label is not confirmed
    assert agreeing([3], [8]) == ("disagree", [], [])
    assert agreeing([None, None], [3]) == ("unparseable", [], [])


def test_rank_keeps_the_best_rated_and_ranks_unrated_last():
    assert rank_by_rating([4, 1, 2], [5, None, 9], keep=2) == [2, 4]
    assert rank_by_rating([4, 1], [None, None], keep=1) == [4]  # ties keep the agreement order


@pytest.mark.parametrize("refine", ["none", "rank", "summarize"])
def test_stage_one_writes_one_record_per_pair_with_agreeing_critiques(tmp_path, refine):
    cfg = config("unused", tmp_path, f"critiques.refine={refine}", "critiques.keep=2")
    records, stats = write_critiques(pairs(3), cfg, tmp_path / "critiques.jsonl", ScriptedCritic(broken=True))
    assert [r.status for r in records] == ["kept"] * 3
    assert stats["critiques"] == 18 and stats["critiques_unparseable"] == 6  # one of 3 per response
    for record in records:
        assert all(read_critique_score(z)[0] >= 7 for z in record.kept_chosen)
        assert all(read_critique_score(z)[0] <= 4 for z in record.kept_rejected)
        assert len(record.kept_chosen) == (1 if refine == "summarize" else 2)
    if (
        refine == "summarize"
    ):  # the merged rejected critique scores 9: against the label, so the best one is kept
        assert records[0].kept_chosen == ["Merged: it is fine overall. Score: 9/10"]
        assert stats["summary_fallbacks"] == 3 and records[0].kept_rejected[0].startswith("Wrong")
    assert json.loads((tmp_path / "critiques_stats.json").read_text())["pairs_kept"] == 3


def test_stage_one_resumes_and_refuses_other_settings(tmp_path):
    cfg = config("unused", tmp_path, "critiques.refine=none")
    path = tmp_path / "critiques.jsonl"
    crashing = ScriptedCritic(
        fail_after=4
    )  # the first batch (2 pairs x 2 responses) is written, then it crashes
    with pytest.raises(RuntimeError):
        write_critiques(pairs(4), cfg, path, crashing)
    assert not path.exists() and len(path.with_name("critiques.jsonl.partial").read_text().splitlines()) == 2
    critic = ScriptedCritic()
    records, _ = write_critiques(pairs(4), cfg, path, critic)
    assert len(records) == 4 and len(critic.requests) == 4  # the critique requests of pairs 2 and 3 only
    again = ScriptedCritic()
    write_critiques(pairs(4), cfg, path, again)
    assert again.requests == []  # everything done: nothing is generated
    other = config("unused", tmp_path, "critiques.refine=none", "critiques.n=2")
    with pytest.raises(InputError, match=r"critiques.jsonl:1: made with other critique settings"):
        write_critiques(pairs(4), other, path, ScriptedCritic())


# ---------------------------------------------------------------------------------------------------- losses


def test_critique_weight_schedules():
    assert losses.critique_weight(0, 5, 0.9, 0.1) == pytest.approx(0.9)
    assert losses.critique_weight(2, 5, 0.9, 0.1) == pytest.approx(0.5)
    assert losses.critique_weight(4, 5, 0.9, 0.1) == pytest.approx(0.1)
    assert losses.critique_weight(1, 5, 0.9, 0.1, "cosine") == pytest.approx(
        0.1 + 0.8 * 0.5 * (1 + math.cos(math.pi / 4))
    )
    assert losses.critique_weight(3, 5, 0.7, 0.1, "constant") == 0.7
    assert losses.critique_weight(0, 1, 0.9, 0.1) == pytest.approx(0.9)  # one step: the start weight
    with pytest.raises(ValueError):
        losses.critique_weight(0, 5, 0.9, 0.1, "step")


def test_joint_loss_by_hand():
    token_logps = torch.tensor([-1.0, -2.0, -0.5, -0.5])  # 4 critique tokens: mean NLL 1.0
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])  # BT: -log σ(1), -log σ(-1)
    bt = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2  # 0.8133
    loss = losses.critic_rm_loss(token_logps, chosen, rejected, weight=0.25)
    assert float(loss) == pytest.approx(0.25 * 1.0 + 0.75 * bt)
    # counts of a whole optimizer step (this pass is part of it): 8 tokens, 4 pairs
    part = losses.critic_rm_loss(token_logps, chosen, rejected, weight=0.25, critique_tokens=8, n_pairs=4)
    assert float(part) == pytest.approx(0.25 * 0.5 + 0.75 * bt / 2)
    assert float(losses.critic_rm_loss(token_logps, chosen, rejected, weight=1.0)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------- training + judge


def test_training_saves_a_model_the_judge_loads_and_scores_with(tiny_model_dir, tmp_path):
    cfg = config(tiny_model_dir, tmp_path / "run", "train.lr=3e-3", "train.epochs=3", "critiques.refine=none")
    result = train_critic_rm(cfg, pairs(4), critic=ScriptedCritic(broken=True))
    assert result.steps == 3 * 4 and result.critiques["examples"] == 8  # 4 pairs x 2 kept critiques per side
    first, last = result.metrics[0], result.metrics[-1]
    assert first["critique_weight"] == pytest.approx(0.9) and last["critique_weight"] == pytest.approx(0.1)
    assert last["critique_loss"] < first["critique_loss"] and last["accuracy"] == 1.0
    model_dir = result.model_dir
    assert {"config.json", "reward_head.safetensors", "critic_rm.json", "README.md"} <= {
        p.name for p in model_dir.iterdir()
    }

    judge = get_judge("critic_rm", model=str(model_dir), critiques=2, max_new_tokens=8)
    judge.backend = ScriptedCritic()  # parseable critiques; the rewards come from the trained head
    chosen, rejected = judge.judge(["Rate item 1.", "Rate item 1."], ["item 1: fine.", "ITEM 1: BAD!!"])
    assert chosen.value == rejected.value == 1 and chosen.score > rejected.score
    assert "mean of 2 critiques (scores 8,7/10)" in chosen.detail

    # the judge's reward is the trainer's forward for the same (prompt, response, critique)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    joint = CritiqueAndReward(AutoModelForCausalLM.from_pretrained(model_dir)).eval()
    joint.head.weight.data.copy_(judge.head.weight)
    request = critique_messages("Rate item 1.", "item 1: fine.")
    rows = [
        render(tokenizer, request, c, 256, False)
        for c in ("Clear and correct (0). Score: 8/10", "Clear and correct (1). Score: 7/10")
    ]
    with torch.no_grad():
        _, rewards = joint(collate(rows, 0))
    assert chosen.score == pytest.approx(float(rewards.mean()), abs=1e-5)


def test_judge_gives_minus_one_for_unparseable_critiques_and_counts_them(tiny_model_dir, tmp_path):
    result = train_critic_rm(
        config(tiny_model_dir, tmp_path / "run", "critiques.refine=none"), pairs(2), critic=ScriptedCritic()
    )
    judge = get_judge("critic_rm", model=str(result.model_dir), critiques=3, max_new_tokens=8)
    judge.backend = ScriptedCritic(broken=True)  # the third critique of each response has no score line
    [verdict] = judge.judge(["Rate it."], ["it: fine."])
    assert (
        verdict.value == -1
        and "1 of 3 critiques have no valid 'Score: X/10' line (scores 8,7,?)" in verdict.detail
    )
    assert judge.counts == {"critiques": 3, "unparseable": 1, "failed": 1}
    skipping = get_judge("critic_rm", model=str(result.model_dir), critiques=3, on_unparseable="skip")
    skipping.backend = ScriptedCritic(broken=True)
    [verdict] = skipping.judge(["Rate it."], ["it: fine."])
    assert (
        verdict.value == 1
        and "mean of 2 critiques" in verdict.detail
        and "1 unparseable, skipped" in verdict.detail
    )
    # the real critic (a random tiny model) writes no score line in 8 tokens: -1, never an exception
    real = get_judge("critic_rm", model=str(result.model_dir), critiques=1, temperature=0.0, max_new_tokens=4)
    [verdict] = real.judge(["Rate it."], ["it: fine."])
    assert verdict.value == -1 and real.counts["unparseable"] == 1


def test_no_agreeing_critique_is_a_clear_error(tiny_model_dir, tmp_path):
    flipped = [Pair(prompt=p.prompt, chosen=p.rejected, rejected=p.chosen) for p in pairs(2)]
    with pytest.raises(
        InputError, match=r"no pair has critiques that agree with its label \(2 pairs: 2 disagree"
    ):
        train_critic_rm(config(tiny_model_dir, tmp_path / "run"), flipped, critic=ScriptedCritic())
    assert not (tmp_path / "run" / "model").exists()


def test_bad_settings_and_pairs_without_a_preference_fail_before_any_output(tmp_path):
    same = [Pair(prompt="Rate.", chosen="same answer", rejected="same answer")]
    with pytest.raises(InputError, match="example 1: chosen and rejected are the same response"):
        train_critic_rm(config("unused", tmp_path / "a"), same, critic=ScriptedCritic())
    with pytest.raises(InputError, match="critiques.n > 1 needs critiques.temperature > 0"):
        train_critic_rm(
            config("unused", tmp_path / "b", "critiques.temperature=0"), pairs(2), critic=ScriptedCritic()
        )
    with pytest.raises(InputError, match=r"loss.critique_weight_end must be in \[0, 1\]"):
        train_critic_rm(
            config("unused", tmp_path / "c", "loss.critique_weight_end=2"), pairs(2), critic=ScriptedCritic()
        )
    assert not any((tmp_path / d).exists() for d in "abc")


def test_cli_refuses_a_pair_without_a_label_with_file_and_line(tmp_path, capsys):
    from posttrain.cli.main import main

    data = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "Rate 1.", "chosen": "fine", "rejected": "bad"},
        {"prompt": "Rate 2.", "chosen": "fine"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "critic-rm",
            "--config",
            "recipes/critic_rm.yaml",
            "--data",
            str(data),
            f"train.output_dir={out}",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"{data}:2: invalid Pair" in err and "rejected" in err
    assert not out.exists()
