"""The GRPO family: losses pinned to hand-computed values and to TRL's GRPO loss code, each optimizer moving
log-probs the right way on a tiny model, the reward options (gate, overlong, dynamic-sampling filter), several
updates per rollout, and bad configs."""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.models.backend import Completion
from posttrain.train import losses
from posttrain.train.cgpo import CGPOConfig, CGPOTask, check_config, task_step, train_cgpo
from posttrain.train.grpo import overlong_penalty
from tests.train.test_cgpo import (
    BAD,
    GOOD,
    IF_PROMPTS,
    LowerShare,
    cfg_for,
    logp,
    make_state,
    one_update,
    prompts,
    run_config,
)

# ---------------------------------------------------------------------------------------------------- losses


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.5, 0.5, 0.5], dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    std = math.sqrt(((1 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2)  # unbiased, as TRL's nanstd
    expected = torch.tensor([1 / 3, -2 / 3, 1 / 3, 0, 0, 0], dtype=torch.float64)
    assert torch.allclose(losses.group_advantages(rewards, groups), expected / torch.tensor(
        [std + 1e-4] * 3 + [1e-4] * 3, dtype=torch.float64))  # fmt: skip
    assert torch.allclose(losses.group_advantages(rewards, groups, scale=False), expected)  # Dr. GRPO


def test_group_advantages_match_trl_formula():
    from trl.trainer.utils import nanstd

    torch.manual_seed(0)
    rewards = torch.rand(12, dtype=torch.float64)
    k = 4
    grouped = rewards.view(-1, k)
    trl = (rewards - grouped.mean(1).repeat_interleave(k)) / (nanstd(grouped, dim=1).repeat_interleave(k) + 1e-4)
    assert torch.allclose(losses.group_advantages(rewards, torch.arange(3).repeat_interleave(k)), trl)


def test_rloo_and_k3_and_reinforce_pp_by_hand():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.5], dtype=torch.float64)
    rloo = losses.rloo_advantages(rewards, torch.tensor([0, 0, 0, 1]))
    assert torch.allclose(rloo, torch.tensor([0.5, -1.0, 0.5, 0.0], dtype=torch.float64))  # alone in its group: 0

    p, q = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert torch.allclose(losses.k3_kl(p, q), torch.exp(q - p) - (q - p) - 1)
    assert losses.k3_kl(p, p).abs().max() == 0

    # Returns: response 0 = 1 − (0.1+0.2+0.3, 0.2+0.3, 0.3); response 1 = 0 − (0.5, 0) -> then batch-normalised.
    returns = losses.reinforce_pp_returns(torch.tensor([1.0, 0.0]), torch.tensor([0, 0, 0, 1, 1]),
                                          torch.tensor([0.1, 0.2, 0.3, 0.5, 0.0]), kl_coef=1.0)  # fmt: skip
    expected = torch.tensor([0.4, 0.5, 0.7, -0.5, 0.0])
    assert torch.allclose(returns, expected, atol=1e-6)
    white = losses.whiten(returns, float(returns.mean()), float(returns.var(unbiased=False)))
    assert torch.allclose(white, (expected - expected.mean()) / expected.std(unbiased=False), atol=1e-5)


def test_clipped_policy_loss_and_token_weights_by_hand():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.5]))
    adv = torch.tensor([1.0, -1.0, 1.0, 1.0])
    loss, clipped = losses.clipped_policy_loss(new, old, adv, eps_low=0.2, eps_high=0.28)
    # ratio 1.5 with A>0 clips at 1.28; 0.5 with A<0 clips at 0.8; 1.1 inside; 0.5 with A>0 is not clipped (min).
    assert torch.allclose(loss, torch.tensor([-1.28, 0.8, -1.1, -0.5]))
    assert clipped.tolist() == [True, True, False, False]
    lengths = torch.tensor([2, 4])
    assert torch.allclose(losses.token_weights(lengths, "token", 8), torch.tensor([1 / 6, 1 / 6], dtype=torch.float64))
    assert torch.allclose(losses.token_weights(lengths, "sequence", 8), torch.tensor([1 / 4, 1 / 8], dtype=torch.float64))
    assert torch.allclose(losses.token_weights(lengths, "fixed", 8), torch.tensor([1 / 16, 1 / 16], dtype=torch.float64))
    # Counts of the whole batch when it is spread over processes: 4 responses, 12 tokens in all.
    assert torch.allclose(losses.token_weights(lengths, "token", 8, 4, 12), torch.tensor([1 / 12] * 2, dtype=torch.float64))
    assert torch.allclose(losses.token_weights(lengths, "sequence", 8, 4, 12),
                          torch.tensor([1 / 8, 1 / 16], dtype=torch.float64))  # fmt: skip


def _trl_loss(loss_type: str, beta: float, eps: tuple[float, float], logps, old, ref, adv, mask, max_len: int):
    """TRL's own `GRPOTrainer._compute_loss`, run on given per-token log-probs (a stand-in `self`: no model)."""
    from trl import GRPOTrainer

    accelerator = SimpleNamespace(gather=lambda x: x, reduce=lambda x, reduction: x, num_processes=1,
                                  gather_for_metrics=lambda x: x, sync_gradients=True)  # fmt: skip
    fake = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta,
        loss_type=loss_type, epsilon_low=eps[0], epsilon_high=eps[1], use_vllm=False, aux_loss_enabled=False,
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1), model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=max_len, _entropy_bonus_enabled=False,
        _metrics={"train": defaultdict(list)}, accelerator=accelerator,
    )  # fmt: skip
    inputs = {
        "prompt_ids": torch.zeros(len(logps), 1, dtype=torch.long), "prompt_mask": torch.ones(len(logps), 1),
        "completion_ids": torch.zeros_like(mask, dtype=torch.long), "completion_mask": mask,
        "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }  # fmt: skip
    return float(GRPOTrainer._compute_loss(fake, None, inputs))


@pytest.mark.parametrize(("trl_type", "ours"), [("grpo", "sequence"), ("dapo", "token"), ("dr_grpo", "fixed")])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_loss_matches_trl(trl_type: str, ours: str, beta: float):
    torch.manual_seed(1)
    lengths = [3, 5, 2]
    width, n = max(lengths), len(lengths)
    mask = torch.tensor([[1.0] * k + [0.0] * (width - k) for k in lengths])
    logps = -torch.rand(n, width) * 3
    old = logps + 0.3 * torch.randn(n, width)  # a later update: ratios away from 1, some clipped
    ref = logps + 0.2 * torch.randn(n, width)
    adv = torch.tensor([1.2, -0.7, 0.4])
    trl = _trl_loss(trl_type, beta, (0.2, 0.28), logps, old, ref, adv, mask, max_len=8)

    keep = mask.bool()
    flat, flat_old, flat_ref = logps[keep], old[keep], ref[keep]
    token_seq = torch.repeat_interleave(torch.arange(n), torch.tensor(lengths))
    per_token, _ = losses.clipped_policy_loss(flat, flat_old, adv[token_seq], 0.2, 0.28)
    per_token = per_token + beta * losses.k3_kl(flat, flat_ref)
    weights = losses.token_weights(torch.tensor(lengths), ours, 8)[token_seq]
    assert float((per_token.double() * weights).sum()) == pytest.approx(trl, rel=1e-5, abs=1e-7)


def test_overlong_penalty_is_dapos_ramp():
    assert overlong_penalty(90, 128, 32) == 0.0
    assert overlong_penalty(96, 128, 32) == 0.0
    assert overlong_penalty(112, 128, 32) == pytest.approx(-0.5)
    assert overlong_penalty(128, 128, 32) == pytest.approx(-1.0)


# ---------------------------------------------------------------------------------------------------- the loop


class LowerShareReward(LowerShare):
    """The share of lowercase letters as a registry judge (no options)."""

    def __init__(self) -> None:
        pass


@pytest.mark.parametrize("optimizer", ["grpo", "rloo", "reinforce_pp"])
def test_each_group_optimizer_raises_the_better_response(tokenizer, tiny_model, optimizer):
    batch, state = make_state(tokenizer, tiny_model, [GOOD, BAD], baseline=None)
    good0, bad0 = logp(tiny_model, tokenizer, batch[0], GOOD), logp(tiny_model, tokenizer, batch[0], BAD)
    task = CGPOTask(optimizer=optimizer, k=2, batch_size=2, kl_coef=0.01)
    row = task_step("instruction_following", task, batch, 0, state, cfg_for())
    assert row["trained"] == 4 and row["clip_fraction"] == 0.0  # first update on a rollout: ratio 1
    assert row["calibrated_reward"] == 0.0  # no ā: group methods use r(s, a) itself
    one_update(tiny_model, lr=0.1)
    good1, bad1 = logp(tiny_model, tokenizer, batch[0], GOOD), logp(tiny_model, tokenizer, batch[0], BAD)
    assert good1 > good0 and bad1 < bad0


def test_gate_and_uniform_groups(tokenizer, tiny_model):
    # Both responses violate the lowercase judge; their rewards (share of lowercase letters) still differ.
    texts = ["THE answer is small.", "THE ANSWER IS SMALL."]
    batch, state = make_state(tokenizer, tiny_model, texts, baseline=None)
    plain = task_step("instruction_following", CGPOTask(optimizer="grpo", k=2, batch_size=2), batch, 0, state,
                      cfg_for())  # fmt: skip
    assert plain["advantage_abs"] > 0.5 and plain["loss"] != 0.0
    tiny_model.zero_grad()
    task = CGPOTask(optimizer="grpo", k=2, batch_size=2, gate=True, drop_uniform_groups=True)
    gated = task_step("instruction_following", task, batch, 0, state, cfg_for())
    # Gated: both rewards are 0, so both groups are uniform and dropped: nothing to train on.
    assert gated["dropped_groups"] == 2 and gated["trained"] == 0 and gated["loss"] == 0.0
    assert all(p.grad is None or not p.grad.any() for p in tiny_model.parameters())


class ByPrompt:
    """K responses per prompt: all violated (a uniform group under the gate) for the prompts in `uniform`, one
    satisfied and the rest violated for the others; records what it was asked and with which seed."""

    name = "by_prompt"

    def __init__(self, uniform: set[str]):
        self.uniform, self.calls = uniform, []

    def generate(self, prompts, n, params):
        self.calls.append(([p for p in prompts], params.seed))
        texts = lambda p: [BAD] * n if p in self.uniform else [GOOD] + [BAD] * (n - 1)  # noqa: E731
        return [[Completion(t, 5, 8, "stop") for t in texts(p)] for p in prompts]


@pytest.mark.parametrize(("refill", "refills", "trained"), [(3, 2, 6), (1, 1, 2), (0, None, 0)])
def test_dynamic_sampling_refills_until_enough_prompts_carry_signal(tokenizer, tiny_model, refill, refills, trained):
    batch, state = make_state(tokenizer, tiny_model, [GOOD, BAD], baseline=None)
    extra = prompts(6)[2:]
    state.backend = ByPrompt({batch[0].prompt, batch[1].prompt, extra[0].prompt})
    queue = [extra[:2], extra[2:]]
    task = CGPOTask(optimizer="grpo", k=2, batch_size=2, gate=True, drop_uniform_groups=True, refill=refill)
    row = task_step("instruction_following", task, batch, 0, state, cfg_for(), more=lambda: queue.pop(0))
    # The step's batch: no prompt with signal; the first refill: one (thing 3); the second: two more (4, 5) -> 3 >= 2.
    assert row.get("refills") == refills and row["trained"] == trained
    assert row["dropped_groups"] == (2 if refill == 0 else 3)
    rolled = [batch, extra[:2], extra[2:]][: 1 + (refills or 0)]
    assert [asked for asked, _ in state.backend.calls] == [[p.prompt for p in b] for b in rolled]
    assert len({seed for _, seed in state.backend.calls}) == len(state.backend.calls)  # each refill its own stream


def test_dynamic_sampling_resumes_where_the_refills_left_the_prompts(tiny_model_dir, tmp_path, monkeypatch):
    import posttrain.models.hf as hf
    from posttrain.train import cgpo

    backend = ByPrompt({IF_PROMPTS[0].prompt, IF_PROMPTS[1].prompt})
    monkeypatch.setattr(hf, "HFBackend", lambda *a, **k: backend)
    out = tmp_path / "run"
    overrides = ("train.save_every=1", "train.epochs=3", "train.max_steps=4", "tasks.instruction_following.optimizer=grpo",
                 "tasks.instruction_following.gate=true", "tasks.instruction_following.drop_uniform_groups=true",
                 "tasks.instruction_following.refill=2")  # fmt: skip
    full = train_cgpo(run_config(tiny_model_dir, out, *overrides), IF_PROMPTS)
    assert full.steps == 4 and any(m["refills"] for m in full.metrics)
    batches = sum(1 + m["refills"] for m in full.metrics[:3])  # rolled out before the last checkpoint (step 3)
    assert json.loads((out / "checkpoints" / "step-00000003" / "state.json").read_text())["cursor"] == {
        "instruction_following": batches
    }
    assert batches > 3  # the refills moved the prompts on faster than the steps
    last = backend.calls[batches:]  # what the uninterrupted run's step 4 rolled out
    backend.calls = []
    calls = []
    original = cgpo.task_step
    monkeypatch.setattr(cgpo, "task_step", lambda *a, **k: calls.append(a[3]) or original(*a, **k))
    again = train_cgpo(run_config(tiny_model_dir, out, *overrides), IF_PROMPTS)
    assert backend.calls == last  # the resumed step 4 takes the prompts and seeds the uninterrupted one took
    for key in ("loss", "reward", "refills", "trained", "dropped_groups"):
        assert again.metrics[3][key] == pytest.approx(full.metrics[3][key], abs=1e-9)


def test_overlong_filter_keeps_cut_off_responses_out_of_the_loss(tokenizer, tiny_model):
    batch, state = make_state(tokenizer, tiny_model, [GOOD, BAD], baseline=None)
    state.backend.reasons = ["length", "length"]
    cfg = cfg_for()
    cfg.generation.require_finished = False
    task = CGPOTask(optimizer="grpo", k=2, batch_size=2, overlong="filter")
    row = task_step("instruction_following", task, batch, 0, state, cfg)
    assert row["trained"] == 4 and row["loss"] == 0.0  # in the group statistics, out of the loss
    assert all(p.grad is None or not p.grad.any() for p in tiny_model.parameters())


def test_several_updates_per_rollout_clip_and_log(tiny_model_dir, tmp_path, monkeypatch):
    from posttrain.judges import base

    # A reward that varies on a random model's text (the IF judge gives its gibberish 0 throughout).
    monkeypatch.setitem(base.JUDGES, "lower_share", "tests.train.test_grpo:LowerShareReward")
    cfg = run_config(
        tiny_model_dir, tmp_path / "run", "train.max_steps=2", "train.updates_per_rollout=3", "train.lr=0.05",
        "tasks.instruction_following.optimizer=grpo", "tasks.instruction_following.kl_coef=0.04",
        "tasks.instruction_following.clip_eps=0.01", "tasks.instruction_following.reward={type: lower_share}",
    )  # fmt: skip
    result = train_cgpo(cfg, IF_PROMPTS)
    assert result.steps == 2 and len(result.metrics) == 2
    row = result.metrics[-1]
    assert {"clip_fraction", "advantage_abs", "dropped_groups", "reward", "violation/ifeval", "kl"} <= set(row)
    assert not (tmp_path / "run" / "baselines.jsonl").exists()  # no ā for a group method
    assert any(r["clip_fraction"] > 0 for r in result.metrics)  # later updates move the ratio past a tight clip


def test_without_kl_one_update_per_rollout_skips_the_old_and_reference_passes_with_the_same_result(
    tiny_model_dir, tmp_path, monkeypatch
):
    from safetensors.torch import load_file

    from posttrain.judges import base
    from posttrain.train import cgpo

    monkeypatch.setitem(base.JUDGES, "lower_share", "tests.train.test_grpo:LowerShareReward")
    overrides = ["train.max_steps=2", "train.lr=0.05", "tasks.instruction_following.optimizer=grpo",
                 "tasks.instruction_following.reward={type: lower_share}"]  # fmt: skip
    lean = train_cgpo(run_config(tiny_model_dir, tmp_path / "lean", *overrides), IF_PROMPTS)
    assert "kl" not in lean.metrics[-1] and "clip_fraction" in lean.metrics[-1]
    # The same run with both passes forced, as before this optimisation: the same weights after two updates.
    monkeypatch.setattr(cgpo, "needs_old_pass", lambda task, cfg: True)
    monkeypatch.setattr(cgpo, "needs_reference", lambda tasks: True)
    full = train_cgpo(run_config(tiny_model_dir, tmp_path / "full", *overrides), IF_PROMPTS)
    assert "kl" in full.metrics[-1]
    assert [r["reward"] for r in lean.metrics] == [r["reward"] for r in full.metrics]
    a = load_file(lean.model_dir / "model.safetensors")
    b = load_file(full.model_dir / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    start = load_file(tiny_model_dir / "model.safetensors")
    assert any(float((a[k] - start[k]).abs().max()) > 1e-4 for k in a)  # the updates did move the weights


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tasks.instruction_following.optimizer=grpo", "tasks.instruction_following.k=1"], "k must be at least 2"),
        (["train.updates_per_rollout=2"], "clipped-ratio optimizer"),
        (["train.updates_per_rollout=0"], "at least 1"),
        (["tasks.instruction_following.optimizer=rloo", "tasks.instruction_following.clip_eps=0"], "clip_eps"),
        (["tasks.instruction_following.optimizer=ppo"], "optimizer"),
        (["tasks.instruction_following.optimizer=grpo", "tasks.instruction_following.refill=2"], "drop_uniform_groups"),
        (["tasks.instruction_following.optimizer=crraft", "tasks.instruction_following.refill=1"], "group optimizer"),
    ],
)
def test_bad_group_configs_are_input_errors(tiny_model_dir, tmp_path, overrides, message):
    with pytest.raises(InputError, match=message):
        check_config(run_config(tiny_model_dir, tmp_path / "run", *overrides))
    assert not (tmp_path / "run").exists()


def test_cli_grpo_defaults_to_grpo_and_rejects_a_single_response(tiny_model_dir, tmp_path, capsys):
    from posttrain.cli.main import main

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(p.model_dump_json() + "\n" for p in IF_PROMPTS))
    args = ["train", "grpo", "--prompts", str(data), f"model.name={tiny_model_dir}", f"train.output_dir={tmp_path / 'o'}",
            "train.progress=false", "generation.max_new_tokens=4", "tasks.instruction_following.batch_size=2",
            "train.max_steps=1"]  # fmt: skip
    assert main([*args, "tasks.instruction_following.k=1"]) == 2
    assert "grpo compares K responses per prompt; k must be at least 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*args, "tasks.instruction_following.k=2"]) == 0
    assert "clip_fraction" in (tmp_path / "o" / "metrics.jsonl").read_text()  # the grpo update ran


@pytest.mark.parametrize(
    "recipe", ["recipes/grpo_ifeval.yaml", "recipes/grpo_ifeval_sft.yaml", "recipes/cgpo_ifeval.yaml"]
)
def test_online_recipes_are_valid(recipe: str):
    from pathlib import Path

    from posttrain.config import load_config
    from posttrain.train.cgpo import CGPOConfig

    root = Path(__file__).resolve().parents[2]
    assert check_config(load_config(CGPOConfig, root / recipe, []))


def test_vllm_engine_gets_the_weights_after_every_update(tiny_model_dir, tmp_path, monkeypatch):
    """The GPU path's CPU-side logic: vLLM cannot run here, so a stand-in engine records what the loop hands it."""
    import posttrain.models.vllm as vllm_module
    from posttrain.models.backend import Completion

    loads: list[dict[str, torch.Tensor]] = []

    class RecordingEngine:
        def __init__(self, model: str, **engine_kwargs):
            assert engine_kwargs == {"gpu_memory_utilization": 0.3}

        def generate(self, prompts, n, params):
            texts = ["the thing is small.", "The Thing Is Small."]
            return [[Completion(texts[j % 2], 5, 6, "stop") for j in range(n)] for _ in prompts]

        def load_weights(self, named_tensors):
            loads.append({name: t.detach().clone() for name, t in named_tensors})

    monkeypatch.setattr(vllm_module, "_import_vllm", lambda: None)
    monkeypatch.setattr(vllm_module, "VLLMBackend", RecordingEngine)
    cfg = run_config(
        tiny_model_dir, tmp_path / "run", "train.max_steps=2", "tasks.instruction_following.optimizer=grpo",
        "generation.engine=vllm", "generation.vllm={gpu_memory_utilization: 0.3}",
    )  # fmt: skip
    result = train_cgpo(cfg, IF_PROMPTS)
    assert len(loads) == 2  # one sync per rollout step
    from transformers import AutoModelForCausalLM

    final = AutoModelForCausalLM.from_pretrained(result.model_dir).state_dict()
    assert all(torch.equal(loads[-1][name], final[name]) for name in loads[-1] if name in final)
    assert not all(torch.equal(loads[0][n], loads[1][n]) for n in loads[0])  # the second sync has newer weights


def test_vllm_engine_errors_before_loading_a_model(tiny_model_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(InputError, match=r"pip install 'posttrain\[vllm\]'"):
            check_config(run_config(tiny_model_dir, tmp_path / "run", "generation.engine=vllm"))
    with pytest.raises(InputError, match="LoRA is not supported"):
        check_config(run_config(tiny_model_dir, tmp_path / "run", "generation.engine=vllm", "lora.enabled=true"))


def test_bf16_old_policy_log_probs_have_the_update_passes_precision(tokenizer, tiny_model):
    """Under bf16 autocast, π_old's pass (and π_ref's) must compute what the update's own pass computes for the same
    weights, else the first update's ratio is not 1 and clipping acts on precision noise."""
    from posttrain.train.cgpo import all_token_logps, backward_in_parts
    from posttrain.train.data import pad_token_id, render

    batch = IF_PROMPTS[:2]
    seqs = [render(tokenizer, p.prompt, text, 128, False) for p in batch for text in (GOOD, BAD)]
    pad = pad_token_id(tokenizer)
    cfg = load_config(CGPOConfig, None, ["data.max_length=128", "train.progress=false", "train.mixed_precision=bf16"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bf16 on a CPU without native bf16 is slow, not wrong
        old = torch.cat(all_token_logps(tiny_model, seqs, 2, pad, cfg))
        seen: list[torch.Tensor] = []

        def part_loss(start, per_token, batch):
            seen.append(per_token.detach())
            return per_token.sum()

        backward_in_parts(tiny_model, seqs, 1, 2, pad, cfg, 1.0, part_loss)
    assert torch.equal(old, torch.cat(seen).float())
    fp32 = load_config(CGPOConfig, None, ["data.max_length=128", "train.progress=false"])
    assert not torch.equal(torch.cat(all_token_logps(tiny_model, seqs, 2, pad, fp32)), old)  # bf16 differs
