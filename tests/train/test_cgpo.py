"""CGPO on tiny models: each optimizer moves log-probs the documented way on a hand-made batch, the selection
rules and their fallbacks, multi-task weighting, bad input, resume after an interruption, experiment tracking and
the model card."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict

import pytest
import torch
import yaml

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment
from posttrain.judges.mixture import MixtureOfJudges, TaskJudges
from posttrain.models.backend import Completion
from posttrain.records import Prompt
from posttrain.train import losses
from posttrain.train.cgpo import (
    CGPOConfig,
    CGPOTask,
    OnlineState,
    build_mixture,
    check_config,
    codpo_pair,
    crraft_choice,
    heldout_violation,
    multi_sample_groups,
    parse_tasks,
    reference_baselines,
    sampled_paired,
    task_step,
    train_cgpo,
)
from posttrain.train.data import Source, collate, pad_token_id, render
from posttrain.train.logprobs import sequence_logps, token_logps

GOOD, BAD = "the answer is small and round.", "THE ANSWER IS SMALL AND ROUND."


class Lowercase(Judge):
    """Satisfied iff the response has no capital letter."""

    name = "lowercase"

    def judge_one(self, item: Item) -> Judgment:
        return Judgment(1 if item.completion == item.completion.lower() else 0, None)


class LowerShare(Judge):
    """A reward: the share of lowercase letters."""

    name = "lower_share"
    kind = "reward"

    def judge_one(self, item: Item) -> Judgment:
        letters = [c for c in item.completion if c.isalpha()] or ["a"]
        return Judgment(1, sum(c.islower() for c in letters) / len(letters))


class FixedBackend:
    """Returns hand-made completions: the same list for every prompt."""

    name = "fixed"

    def __init__(self, texts: list[str], reasons: list[str] | None = None):
        self.texts = texts
        self.reasons = reasons or ["stop"] * len(texts)

    def generate(self, prompts, n, params):
        assert n == len(self.texts)
        return [[Completion(t, 5, 8, r) for t, r in zip(self.texts, self.reasons, strict=True)] for _ in prompts]


def prompts(n: int, task: str = "instruction_following") -> list[Prompt]:
    return [Prompt(prompt=f"Describe thing {i} in one sentence.", task=task) for i in range(n)]


def make_state(tokenizer, model, texts, baseline=GOOD):
    mixture = MixtureOfJudges(tasks={"instruction_following": TaskJudges([Lowercase()], LowerShare())})
    batch = prompts(2)
    reference = copy.deepcopy(model).requires_grad_(False)
    baselines = {p.id: baseline for p in batch}
    return batch, OnlineState(model, reference, tokenizer, FixedBackend(texts), mixture, baselines)


def logp(model, tokenizer, prompt: Prompt, text: str) -> float:
    seq = render(tokenizer, prompt.prompt, text, 128, False)
    batch = collate([seq], pad_token_id(tokenizer))
    with torch.no_grad():
        return float(sequence_logps(token_logps(model, batch), batch)[0])


def cfg_for(**overrides) -> CGPOConfig:
    cfg = load_config(CGPOConfig, None, ["data.max_length=128", "train.progress=false"])
    return cfg


def one_update(model, lr=1e-2):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.step()
    opt.zero_grad()


@pytest.mark.parametrize("optimizer", ["crpg", "codpo", "crraft"])
def test_each_optimizer_raises_satisfied_and_lowers_violated(tokenizer, tiny_model, optimizer):
    batch, state = make_state(tokenizer, tiny_model, [GOOD, BAD])
    good0, bad0 = logp(tiny_model, tokenizer, batch[0], GOOD), logp(tiny_model, tokenizer, batch[0], BAD)
    task = CGPOTask(optimizer=optimizer, k=2, batch_size=2, lam=1.0)
    row = task_step("instruction_following", task, batch, 0, state, cfg_for())
    assert row["violation"] == 0.5 and row["violation/lowercase"] == 0.5
    assert row["kl"] == pytest.approx(0.0, abs=1e-4)  # policy == reference before the first update
    one_update(tiny_model)
    good1, bad1 = logp(tiny_model, tokenizer, batch[0], GOOD), logp(tiny_model, tokenizer, batch[0], BAD)
    assert good1 > good0  # every optimizer raises the satisfied, high-reward response
    if optimizer != "crraft":
        assert bad1 < bad0  # CRPG's negative advantage and CODPO's rejected side push the violated one down
    assert good1 - bad1 > good0 - bad0


def test_violation_zeroes_the_crpg_reward(tokenizer, tiny_model):
    batch, state = make_state(tokenizer, tiny_model, [BAD, BAD.replace("SMALL", "BIG")])
    task = CGPOTask(optimizer="crpg", k=2, batch_size=2)
    row = task_step("instruction_following", task, batch, 0, state, cfg_for())
    assert row["violation"] == 1.0 and row["shaped_reward"] == 0.0
    assert row["calibrated_reward"] > 0  # the reward model still scores them; the constraint zeroes R_cr
    assert row["loss"] == 0.0
    assert all(p.grad is None or not p.grad.any() for p in tiny_model.parameters())


def test_a_cut_off_response_counts_as_violated(tokenizer, tiny_model):
    batch, state = make_state(tokenizer, tiny_model, [GOOD, GOOD + " more"])
    state.backend.reasons = ["length", "length"]  # both satisfy the judge, both hit max_new_tokens
    task = CGPOTask(optimizer="crpg", k=2, batch_size=2)
    row = task_step("instruction_following", task, batch, 0, state, cfg_for())
    assert row["violation"] == 1.0 and row["truncated"] == 1.0 and row["violation/lowercase"] == 0.0
    assert row["shaped_reward"] == 0.0 and row["loss"] == 0.0
    cfg = cfg_for()
    cfg.generation.require_finished = False
    row = task_step("instruction_following", task, batch, 0, state, cfg)
    assert row["violation"] == 0.0 and row["shaped_reward"] > 0


def test_crraft_uses_the_baseline_only_when_it_satisfies(tokenizer, tiny_model):
    batch, state = make_state(tokenizer, tiny_model, [BAD, BAD], baseline=GOOD)
    before = logp(tiny_model, tokenizer, batch[0], GOOD)
    row = task_step("instruction_following", CGPOTask(k=2, batch_size=2), batch, 0, state, cfg_for())
    assert row["baseline_used"] == 2 and row["selected"] == 2 and row["skipped_prompts"] == 0
    one_update(tiny_model)
    assert logp(tiny_model, tokenizer, batch[0], GOOD) > before

    batch, state = make_state(tokenizer, tiny_model, [BAD, BAD], baseline=BAD)
    row = task_step("instruction_following", CGPOTask(k=2, batch_size=2), batch, 0, state, cfg_for())
    assert row["selected"] == 0 and row["skipped_prompts"] == 2 and row["loss"] == 0.0


def test_codpo_takes_the_baseline_as_chosen_only_when_asked_and_it_satisfies(tokenizer, tiny_model):
    violated = ["THE answer is small and round.", BAD]  # both violate; the second has the lower reward
    batch, state = make_state(tokenizer, tiny_model, violated, baseline=GOOD)
    row = task_step("instruction_following", CGPOTask(optimizer="codpo", k=2, batch_size=2), batch, 0, state, cfg_for())
    assert row["pairs"] == 0 and row["skipped_prompts"] == 2 and row["loss"] == 0.0  # the paper: skip

    task = CGPOTask(optimizer="codpo", k=2, batch_size=2, baseline_chosen=True)
    good0 = logp(tiny_model, tokenizer, batch[0], GOOD)
    bad0 = logp(tiny_model, tokenizer, batch[0], violated[1])
    row = task_step("instruction_following", task, batch, 0, state, cfg_for())
    assert row["pairs"] == 2 and row["baseline_used"] == 2 and row["skipped_prompts"] == 0
    # Before any update the policy is the reference: the DPO margin is 0, so the loss is log 2 + λ·NLL(ā).
    nll = -good0 / render(tokenizer, batch[0].prompt, GOOD, 128, False).n_targets
    assert row["loss"] == pytest.approx(math.log(2) + nll, rel=1e-4)
    one_update(tiny_model)
    # ā goes up; the lowest-reward violated response goes down.
    assert logp(tiny_model, tokenizer, batch[0], GOOD) > good0
    assert logp(tiny_model, tokenizer, batch[0], violated[1]) < bad0

    batch, state = make_state(tokenizer, tiny_model, violated, baseline=BAD)  # ā violates too: still skipped
    row = task_step("instruction_following", task, batch, 0, state, cfg_for())
    assert row["pairs"] == 0 and row["skipped_prompts"] == 2


SATISFIED_2, VIOLATED_2 = "a small round thing.", "A Small Round Thing."


@pytest.mark.parametrize("optimizer", ["mdpo", "mipo"])
def test_multi_sample_update_is_the_group_loss_of_the_chosen_groups(tokenizer, tiny_model, optimizer):
    texts = [GOOD, BAD, SATISFIED_2, VIOLATED_2]  # 2 satisfied, 2 violated per prompt: the groups take them all
    batch, state = make_state(tokenizer, tiny_model, texts)
    task = CGPOTask(optimizer=optimizer, k=4, batch_size=2, group_size=2, beta=0.1)
    cfg = load_config(CGPOConfig, None, ["data.max_length=128", "train.progress=false", "train.examples_per_forward=1"])
    row = task_step("instruction_following", task, batch, 0, state, cfg)
    assert row["groups"] == 2 and row["skipped_prompts"] == 0
    # policy == reference: every group's margin is 0, so mDPO's loss is log 2 and mIPO's (0 - 1/(2β))² = 25
    assert row["loss"] == pytest.approx(math.log(2) if optimizer == "mdpo" else 25.0, rel=1e-5)
    got = torch.cat([p.grad.flatten() for p in tiny_model.parameters()])
    tiny_model.zero_grad(set_to_none=True)
    # The same loss written directly, both prompts' groups in one pass, averaged over the 2 groups.
    chosen_texts, rejected_texts = [GOOD, SATISFIED_2], [BAD, VIOLATED_2]
    seqs = [render(tokenizer, p.prompt, t, 128, False) for p in batch for t in chosen_texts + rejected_texts]
    b = collate(seqs, pad_token_id(tokenizer))
    logps = sequence_logps(token_logps(tiny_model, b), b).reshape(2, 4)
    ref = logps.detach()
    lengths = b.lengths().reshape(2, 4)
    groups = torch.tensor([0, 0, 1, 1])
    args = (logps[:, :2].reshape(-1), logps[:, 2:].reshape(-1), ref[:, :2].reshape(-1), ref[:, 2:].reshape(-1))
    if optimizer == "mdpo":
        direct = losses.mdpo_loss(*args, groups, 0.1)
    else:
        direct = losses.mipo_loss(*args, lengths[:, :2].reshape(-1), lengths[:, 2:].reshape(-1), groups, 0.1)
    direct.mean().backward()
    want = torch.cat([p.grad.flatten() for p in tiny_model.parameters()])
    assert got.abs().sum() > 0
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_multi_sample_update_raises_the_satisfied_group_and_lowers_the_violated_one(tokenizer, tiny_model):
    batch, state = make_state(tokenizer, tiny_model, [GOOD, BAD, SATISFIED_2, VIOLATED_2])
    before = [logp(tiny_model, tokenizer, batch[0], t) for t in (GOOD, SATISFIED_2, BAD, VIOLATED_2)]
    task_step("instruction_following", CGPOTask(optimizer="mdpo", k=4, batch_size=2), batch, 0, state, cfg_for())
    one_update(tiny_model)
    after = [logp(tiny_model, tokenizer, batch[0], t) for t in (GOOD, SATISFIED_2, BAD, VIOLATED_2)]
    assert after[0] + after[1] > before[0] + before[1] and after[2] + after[3] < before[2] + before[3]


def test_multi_sample_groups_draw_each_side_at_random_or_skip():
    import random

    ok = [True, False, True, False, True, None, False]
    draws = {(tuple(c), tuple(r)) for seed in range(40)
             if (pick := multi_sample_groups(ok, 2, random.Random(seed))) for c, r in [pick]}  # fmt: skip
    assert {c for c, _ in draws} == {(0, 2), (0, 4), (2, 4)}  # every pair of satisfied ones, never a failure (5)
    assert {r for _, r in draws} == {(1, 3), (1, 6), (3, 6)}
    assert multi_sample_groups(ok, 2, random.Random(7)) == multi_sample_groups(ok, 2, random.Random(7))
    assert multi_sample_groups(ok, 3, random.Random(0)) == ([0, 2, 4], [1, 3, 6])
    assert multi_sample_groups(ok, 4, random.Random(0)) is None  # three satisfied: too few for a group of 4
    assert multi_sample_groups([True, True], 1, random.Random(0)) is None  # nothing violated: nothing to compare


def test_codpo_pair_rules_and_fallbacks():
    assert codpo_pair([True, False, True, False], [0.5, 0.3, 0.9, 0.1]) == (
        2,
        3,
    )  # best satisfied, worst violated
    assert codpo_pair([False, False], [0.9, 0.1]) is None  # nothing satisfied: skip the prompt
    assert codpo_pair([True, True, True], [0.5, 0.9, 0.2]) == (
        1,
        2,
    )  # nothing violated: lowest-reward generation
    assert codpo_pair([True], [0.5]) is None
    assert codpo_pair([None, True, False], [1.0, 0.5, 0.6]) == (1, 2)  # judge failures are left out


def test_crraft_choice_respects_the_kl_budget():
    ok, rewards = [True, True, False], [0.9, 0.5, 1.0]
    assert crraft_choice(ok, rewards, [0.0, 0.0, 0.0], kl_max=1.0) == 0
    assert crraft_choice(ok, rewards, [2.0, 0.5, 0.0], kl_max=1.0) == 1  # the best one is over KL_max
    assert crraft_choice(ok, rewards, [2.0, 3.0, 0.0], kl_max=1.0) is None  # violated ones never qualify


def test_task_weight_scales_the_gradient(tokenizer, tiny_model):
    grads = []
    for weight in (1.0, 3.0, 0.0):
        batch, state = make_state(tokenizer, tiny_model, [GOOD, BAD])
        task_step(
            "instruction_following",
            CGPOTask(optimizer="crpg", k=2, batch_size=2, weight=weight),
            batch,
            0,
            state,
            cfg_for(),
        )
        grads.append(torch.cat([p.grad.flatten() for p in tiny_model.parameters() if p.grad is not None]))
        tiny_model.zero_grad(set_to_none=True)
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[1], 3 * grads[0], rtol=1e-3, atol=1e-7)
    assert not grads[2].any()


IF_PROMPTS = [
    Prompt(prompt=f"Describe thing {i} in one sentence. Use only lowercase letters.",
           instruction_id_list=["change_case:english_lowercase"], kwargs=[{}], gold="a small round thing.")
    for i in range(4)
]  # fmt: skip


def test_repaired_baselines_satisfy_the_prompt_and_gold_is_kept(tokenizer, tiny_model, tmp_path, monkeypatch):
    import posttrain.models.hf as hf

    sampled = "The Answer Is A Small Round Thing. The Answer Is A Small Round Thing."  # capitals, and a loop
    monkeypatch.setattr(hf, "HFBackend", lambda *a, **k: FixedBackend([sampled]))
    no_gold = [p.model_copy(update={"gold": None}) for p in IF_PROMPTS[:2]]
    gold = IF_PROMPTS[2]
    for repair, want in ((False, sampled), (True, "the answer is a small round thing.")):
        cfg = load_config(CGPOConfig, None, [f"baseline.repair={str(repair).lower()}"])
        out = tmp_path / str(repair)
        out.mkdir()
        found = reference_baselines(cfg, [*no_gold, gold], tiny_model, tokenizer, out)
        assert [found[p.id] for p in no_gold] == [want, want]
        assert found[gold.id] == gold.gold  # a gold answer is never sampled nor edited


def run_config(model_dir, out, *overrides: str) -> CGPOConfig:
    base = [
        f"model.name={model_dir}", f"train.output_dir={out}", "train.progress=false", "train.lr=1e-3",
        "data.max_length=128", "generation.max_new_tokens=6", "generation.batch_size=8", "evaluate=false",
        "tasks.instruction_following.k=2", "tasks.instruction_following.batch_size=2",
    ]  # fmt: skip
    return load_config(CGPOConfig, None, base + list(overrides))


@pytest.mark.slow  # two short runs: ~25-40 s on 2 busy cores
def test_train_logs_metrics_and_resumes_exactly(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    overrides = ("train.save_every=1", "train.epochs=2", "train.max_steps=3", "tasks.instruction_following.optimizer=crpg",
                 "baseline.source=reference")  # fmt: skip
    full = train_cgpo(run_config(tiny_model_dir, out, *overrides), IF_PROMPTS)
    assert full.steps == 3 and (full.model_dir / "config.json").exists()
    first = full.metrics[0]
    for key in (
        "loss",
        "violation",
        "violation/ifeval",
        "calibrated_reward",
        "kl",
        "response_length",
        "grad_norm",
    ):
        assert key in first
    assert (out / "baselines.jsonl").exists()  # ā generated by the reference policy, cached
    # The last checkpoint is step 2: a rerun in the same directory redoes step 3, which must match exactly.
    assert (out / "checkpoints" / "step-00000002").exists()
    import posttrain.train.cgpo as cgpo

    calls = []
    original = cgpo.prepare_step  # the loop's per-task rollout (task_step wraps it for the unit tests)
    monkeypatch.setattr(cgpo, "prepare_step", lambda *a, **k: calls.append(a[3]) or original(*a, **k))
    again = train_cgpo(run_config(tiny_model_dir, out, *overrides), IF_PROMPTS)
    assert calls == [2]  # only step 3 (index 2) ran again
    assert [m["step"] for m in again.metrics] == [1, 2, 3]
    for key in ("loss", "kl", "calibrated_reward", "response_length"):
        assert again.metrics[2][key] == pytest.approx(full.metrics[2][key], abs=1e-9)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]


def test_bf16_sampling_follows_the_policy_after_every_update(tiny_model_dir, tmp_path, monkeypatch):
    from posttrain.models.hf import HFBackend

    seen = []
    original = HFBackend.generate

    def recording(self, prompts, n, params):
        seen.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return original(self, prompts, n, params)

    monkeypatch.setattr(HFBackend, "generate", recording)
    out = tmp_path / "run"
    overrides = ("generation.dtype=bfloat16", "train.save_every=1", "train.epochs=2", "train.max_steps=3",
                 "train.keep_checkpoints=5",
                 "baseline.source=gold", "tasks.instruction_following.optimizer=crraft")  # fmt: skip
    result = train_cgpo(run_config(tiny_model_dir, out, *overrides), IF_PROMPTS)
    assert result.steps == 3 and len(seen) == 3  # one rollout per step, all from the bf16 copy
    for step, state in enumerate(seen[1:], start=1):
        trained = torch.load(out / "checkpoints" / f"step-{step:08d}" / "trainable.pt")
        assert trained and all(state[k].dtype == torch.bfloat16 for k in trained)
        assert all(torch.equal(state[k], v.to(torch.bfloat16)) for k, v in trained.items())
    assert not all(torch.equal(seen[0][k], seen[2][k]) for k in seen[0])  # the copy did move


def test_heldout_violation_judges_k_samples_as_training_does(tmp_path):
    from posttrain.records import write_records

    cfg = load_config(CGPOConfig, None, ["heldout_k=2"])
    mixture = build_mixture(parse_tasks(cfg))
    (tmp_path / "prompts").mkdir()
    write_records(tmp_path / "prompts" / "heldout.jsonl", IF_PROMPTS[:3])
    backend = FixedBackend([GOOD, BAD])  # one satisfies "all lowercase", one does not, for every prompt
    heldout_violation(backend, mixture, cfg, tmp_path, "before")
    summary = json.loads((tmp_path / "heldout_sampled_before.json").read_text())
    assert summary["violation"] == 0.5 and summary["responses"] == 6 and summary["prompts"] == 3
    backend.reasons = ["length", "stop"]  # the satisfying one is cut off: violated while require_finished
    heldout_violation(backend, mixture, cfg, tmp_path, "after")
    summary = json.loads((tmp_path / "heldout_sampled_after.json").read_text())
    assert summary["violation"] == 1.0 and summary["truncated"] == 0.5
    rows = [json.loads(line) for line in (tmp_path / "heldout_sampled_after.jsonl").read_text().splitlines()]
    assert [(r["prompt_id"], r["index"]) for r in rows] == [(p.id, i) for p in IF_PROMPTS[:3] for i in (0, 1)]
    assert [r["violated"] for r in rows] == [True] * 6
    paired = sampled_paired(tmp_path)  # sample 0 of each prompt passed before, fails after; sample 1 failed both
    assert (paired.n, paired.passed_before, paired.passed_after, paired.gained, paired.lost) == (6, 3, 0, 0, 3)
    assert paired.p_value == 0.25
    (tmp_path / "heldout_sampled_before.jsonl").unlink()
    assert sampled_paired(tmp_path) is None


def test_multi_task_runs_each_task_with_its_optimizer(tiny_model_dir, tmp_path):
    mixed = IF_PROMPTS[:2] + [p.model_copy(update={"task": "chat"}) for p in IF_PROMPTS[2:]]
    cfg = run_config(
        tiny_model_dir, tmp_path / "run", "train.max_steps=1", "tasks.instruction_following.weight=2.0",
        "tasks.chat={optimizer: codpo, k: 2, batch_size: 2, kl_max: 1.0, judges: {refusal: {}}, reward: {type: ifeval}}",
    )  # fmt: skip
    result = train_cgpo(cfg, mixed)
    row = result.metrics[0]
    assert {"instruction_following/loss", "chat/loss", "chat/pairs", "chat/violation/refusal"} <= set(row)
    assert row["loss"] == pytest.approx(row["instruction_following/loss"] + row["chat/loss"])


def test_the_online_loop_runs_mdpo_with_a_reference_and_no_old_pass(tiny_model_dir, tmp_path, monkeypatch):
    from posttrain.train import cgpo

    passes = []
    real = cgpo.all_token_logps
    monkeypatch.setattr(cgpo, "all_token_logps", lambda model, *a: passes.append(model) or real(model, *a))
    cfg = run_config(tiny_model_dir, tmp_path / "run", "train.max_steps=1", "tasks.instruction_following.optimizer=mdpo",
                     "tasks.instruction_following.k=4", "tasks.instruction_following.group_size=1")  # fmt: skip
    result = train_cgpo(cfg, IF_PROMPTS)
    row = result.metrics[0]
    assert {"groups", "skipped_prompts", "loss", "kl"} - set(row) == {"kl"}  # no π_old pass: no log-ratio logged
    assert row["groups"] + row["skipped_prompts"] == 2
    assert len(passes) == 1  # the reference's pass only


def test_a_run_reports_to_tensorboard_and_its_model_has_a_card(tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    cfg = run_config(tiny_model_dir, out, "train.max_steps=1", "train.report_to=[tensorboard]")
    result = train_cgpo(cfg, IF_PROMPTS, Source("data/prompts.jsonl", [1, 2, 3, 4]))

    card = (result.model_dir / "README.md").read_text()
    fingerprint = json.loads((out / "run.json").read_text())["fingerprint"]
    for fact in [
        "- posttrain\n- cgpo\n",
        f"- base model: `{tiny_model_dir}`",
        "- recipe: `cgpo`",
        "- data: 4 examples from `data/prompts.jsonl`",
        f"- run fingerprint: `{fingerprint}`",
        f"- training: 1 optimizer steps, {result.tokens} tokens, final loss {result.metrics[-1]['loss']:.4f}",
    ]:
        assert fact in card
    assert yaml.safe_load(card.split("```yaml\n")[1].split("```")[0]) == asdict(cfg)

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = events.Scalars("violation/ifeval")
    assert [e.step for e in logged] == [1]
    assert logged[0].value == pytest.approx(result.metrics[0]["violation/ifeval"])


def test_bad_input_is_an_input_error(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="unknown task 'math'"):
        train_cgpo(
            run_config(tiny_model_dir, tmp_path / "a"),
            [*IF_PROMPTS, IF_PROMPTS[0].model_copy(update={"task": "math"})],
        )
    with pytest.raises(InputError, match="at least one constraint judge"):
        parse_tasks(load_config(CGPOConfig, None, ["tasks.instruction_following.judges={}"]))
    with pytest.raises(InputError, match="unknown judge 'ifevl'"):
        train_cgpo(
            run_config(tiny_model_dir, tmp_path / "b", "tasks.instruction_following.judges={ifevl: {}}"),
            IF_PROMPTS,
        )
    with pytest.raises(InputError, match=r"'tasks.instruction_following.optimizer': Input should be 'crpg', 'codpo'"):
        parse_tasks(load_config(CGPOConfig, None, ["tasks.instruction_following.optimizer=ppo"]))
    with pytest.raises(InputError, match="did you mean 'tasks.instruction_following.kl_max'"):
        parse_tasks(load_config(CGPOConfig, None, ["tasks.instruction_following.klmax=3"]))
    with pytest.raises(InputError, match="codpo needs k >= 2"):
        parse_tasks(
            load_config(
                CGPOConfig,
                None,
                ["tasks.instruction_following.optimizer=codpo", "tasks.instruction_following.k=1"],
            )
        )
    with pytest.raises(InputError, match=r"mdpo compares group_size .* \(k=3, group_size=2\)"):
        parse_tasks(load_config(CGPOConfig, None, ["tasks.instruction_following.optimizer=mdpo",
                                                   "tasks.instruction_following.k=3"]))  # fmt: skip
    with pytest.raises(InputError, match="mipo needs at least one constraint judge"):
        parse_tasks(load_config(CGPOConfig, None, ["tasks.instruction_following.optimizer=mipo",
                                                   "tasks.instruction_following.judges={}"]))  # fmt: skip
    with pytest.raises(InputError, match="heldout_k must be 0"):
        check_config(load_config(CGPOConfig, None, ["heldout_k=-1"]))
    with pytest.raises(InputError, match=r"'generation.dtype': Input should be 'float32', 'bfloat16' or 'auto'"):
        check_config(load_config(CGPOConfig, None, ["generation.dtype=bf16"]))
    with pytest.raises(InputError, match="cannot follow LoRA"):
        check_config(load_config(CGPOConfig, None, ["generation.dtype=auto", "lora.enabled=true"]))
    with pytest.raises(InputError, match="fewer than its batch_size"):
        train_cgpo(
            run_config(tiny_model_dir, tmp_path / "c", "tasks.instruction_following.batch_size=8"), IF_PROMPTS
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()  # bad input leaves no output


def test_cli_runs_and_reports_bad_config(tiny_model_dir, tmp_path, capsys):
    from posttrain.cli.main import main

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(p.model_dump_json() + "\n" for p in IF_PROMPTS))
    args = ["train", "cgpo", "--prompts", str(data), f"model.name={tiny_model_dir}", f"train.output_dir={tmp_path / 'o'}",
            "train.progress=false", "generation.max_new_tokens=4", "tasks.instruction_following.k=2",
            "tasks.instruction_following.batch_size=2", "train.max_steps=1"]  # fmt: skip
    assert main(args) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert main([*args, "tasks.instruction_following.optimizer=ppo"]) == 2
    assert "'tasks.instruction_following.optimizer': Input should be 'crpg', 'codpo', 'crraft', 'grpo', 'rloo', 'reinforce_pp', 'mdpo' or 'mipo'" in capsys.readouterr().err


def test_before_evaluates_the_policy_as_loaded_not_as_stored(tiny_model_dir, tokenizer, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from posttrain.train.cgpo import starting_policy

    cfg = run_config(tiny_model_dir, tmp_path / "run")
    fp32 = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert starting_policy(cfg, fp32, tokenizer, tmp_path, dithered=False) == str(tiny_model_dir)  # as stored
    assert starting_policy(cfg, fp32, tokenizer, tmp_path / "d", dithered=True) == str(tmp_path / "d" / "start_model")
    # bf16 weights (model.dtype=bfloat16) are not the stored fp32 ones: "before" must see the rounded weights.
    bf16 = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    path = starting_policy(cfg, bf16, tokenizer, tmp_path / "b", dithered=False)
    saved = load_file(f"{path}/model.safetensors")
    assert all(torch.equal(saved[name], p) for name, p in bf16.named_parameters() if name in saved)
    stored = load_file(tiny_model_dir / "model.safetensors")
    assert any(not torch.equal(stored[k].to(torch.bfloat16).float(), stored[k]) for k in stored)  # rounding changed them
