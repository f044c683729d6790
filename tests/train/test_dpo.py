"""The DPO recipe on a tiny model: bad input, the reference cache, LoRA, and bit-exact resume from a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.records import GroupPair, Pair
from posttrain.train.data import Source
from posttrain.train.dpo import DPOConfig, train_dpo


def lowercase_pairs(n: int) -> list[Pair]:
    return [
        Pair(
            prompt=f"Describe thing {i} in one sentence.",
            chosen=f"thing {i} is small and round and very useful.",
            rejected=f"Thing {i} Is Small And Round And Very Useful.",
        )
        for i in range(n)
    ]


def config(model_dir, out, *overrides: str) -> DPOConfig:
    base = [
        f"model.name={model_dir}",
        f"train.output_dir={out}",
        "train.batch_size=2",
        "train.lr=1e-3",
        "train.progress=false",
        "data.max_length=128",
    ]
    return load_config(DPOConfig, None, base + list(overrides))


def test_trains_saves_and_logs(tiny_model_dir, tmp_path):
    result = train_dpo(config(tiny_model_dir, tmp_path / "run"), lowercase_pairs(6))
    assert result.steps == 3
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    first = json.loads(lines[0])
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    assert {"rewards/accuracy", "rewards/margin", "tokens_per_s", "logratio/chosen"} <= set(first)
    assert (result.model_dir / "config.json").exists() and (result.model_dir / "tokenizer_config.json").exists()
    assert (tmp_path / "run" / "reference_logps.pt").exists()


def test_resume_continues_exactly(tiny_model_dir, tmp_path):
    pairs = lowercase_pairs(8)
    out = tmp_path / "run"
    full = train_dpo(config(tiny_model_dir, out, "train.save_every=2", "data.shuffle=true"), pairs)
    assert (out / "checkpoints" / "step-00000002").exists()
    # A rerun in the same directory resumes from the step-2 checkpoint and must redo steps 3-4 identically.
    again = train_dpo(config(tiny_model_dir, out, "train.save_every=2", "data.shuffle=true"), pairs)
    assert [m["step"] for m in again.metrics] == [1, 2, 3, 4]
    for a, b in zip(full.metrics[2:], again.metrics[2:], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-9)
        assert a["rewards/margin"] == pytest.approx(b["rewards/margin"], abs=1e-9)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_bf16_weights_train_as_fp32_and_resume_exactly(tiny_model_dir, tmp_path):
    """model.dtype=bfloat16 trains the bf16 weights with the compensated AdamW (train/compensated_adamw.py): at an
    lr whose updates are a fraction of the weights' bf16 grid step the loss falls as much as in fp32, and a resumed
    run (weights, moments and compensation from the checkpoint) redoes the last steps exactly."""
    pairs = lowercase_pairs(8)
    common = ("train.lr=2e-5", "train.epochs=3", "train.save_every=6", "data.shuffle=true")
    out = tmp_path / "bf16"
    bf16 = train_dpo(config(tiny_model_dir, out, "model.dtype=bfloat16", *common), pairs)
    assert (out / "checkpoints" / "step-00000006").exists()
    again = train_dpo(config(tiny_model_dir, out, "model.dtype=bfloat16", *common), pairs)
    for a, b in zip(bf16.metrics[6:], again.metrics[6:], strict=True):
        assert a["loss"] == b["loss"]
    fp32 = train_dpo(config(tiny_model_dir, tmp_path / "fp32", *common), pairs)

    def drop(result):
        losses_seen = [m["loss"] for m in result.metrics]
        return losses_seen[0] - sum(losses_seen[-4:]) / 4

    assert bf16.metrics[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert drop(fp32) > 0.005 and drop(bf16) == pytest.approx(drop(fp32), rel=0.25)


def test_different_run_in_same_dir_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    train_dpo(config(tiny_model_dir, out, "train.save_every=1"), lowercase_pairs(4))
    with pytest.raises(InputError, match="different run"):
        train_dpo(config(tiny_model_dir, out, "train.save_every=1"), lowercase_pairs(6))
    with pytest.raises(InputError, match="different run"):  # bf16 weights are another run
        train_dpo(config(tiny_model_dir, out, "train.save_every=1", "model.dtype=bfloat16"), lowercase_pairs(4))


def test_grad_accum_and_forward_splits_give_the_same_first_step(tiny_model_dir, tmp_path):
    pairs = lowercase_pairs(4)
    whole = train_dpo(
        config(tiny_model_dir, tmp_path / "a", "train.batch_size=4", "train.examples_per_forward=null",
               "data.shuffle=false", "data.bucket_by_length=false", "train.max_steps=2"), pairs,
    )  # fmt: skip
    split = train_dpo(
        config(tiny_model_dir, tmp_path / "b", "train.batch_size=2", "train.grad_accum=2",
               "train.examples_per_forward=1", "data.shuffle=false", "data.bucket_by_length=false"), pairs,
    )  # fmt: skip
    # Same data per optimizer step -> same loss and same update, so step 2 also agrees.
    assert whole.steps == 1 and split.steps == 1
    assert whole.metrics[0]["loss"] == pytest.approx(split.metrics[0]["loss"], abs=1e-6)
    assert whole.metrics[0]["grad_norm"] == pytest.approx(split.metrics[0]["grad_norm"], rel=1e-4)


def test_lora_trains_adapter_and_saves_merged(tiny_model_dir, tmp_path):
    result = train_dpo(
        config(tiny_model_dir, tmp_path / "run", "lora.enabled=true", "lora.r=4", "train.lr=1e-2"),
        lowercase_pairs(4),
    )
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(result.model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = any(
        not torch.equal(p, q) for (_, p), (_, q) in zip(merged.named_parameters(), base.named_parameters(), strict=True)
    )
    assert changed and result.metrics[-1]["rewards/margin"] != 0
    assert "LoRA (r=4) merged into these weights" in (result.model_dir / "README.md").read_text()


@pytest.mark.parametrize("loss", ["loss.type=ipo", "loss.type=dpop", "loss.nll_coef=0.2"])
def test_other_losses_run(tiny_model_dir, tmp_path, loss):
    result = train_dpo(config(tiny_model_dir, tmp_path / "run", loss, "train.max_steps=1"), lowercase_pairs(2))
    assert result.steps == 1 and result.metrics[0]["loss"] > 0


def test_long_prompt_is_an_error_with_location_or_skipped(tiny_model_dir, tmp_path):
    pairs = lowercase_pairs(3)
    pairs[1] = Pair(prompt="word " * 200, chosen="fine.", rejected="Fine.")
    out = tmp_path / "run"
    with pytest.raises(InputError, match=r"pairs.jsonl:7: the prompt leaves no room"):
        train_dpo(config(tiny_model_dir, out), pairs, Source("pairs.jsonl", [1, 7, 9]))
    assert not out.exists()  # bad input leaves no output behind
    result = train_dpo(config(tiny_model_dir, out, "data.long_prompt=skip"), pairs)
    assert result.skipped == 1 and result.steps == 1


def test_mismatched_tokenizer_is_refused(tmp_path, tokenizer):
    from tests.train.conftest import tiny_llama

    small = tmp_path / "small"
    tiny_llama(vocab_size=1000).save_pretrained(small)
    tokenizer.save_pretrained(small)
    with pytest.raises(InputError, match="mismatched tokenizer"):
        train_dpo(config(small, tmp_path / "run"), lowercase_pairs(2))
    assert not (tmp_path / "run").exists()


def test_bad_config_values(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="loss.type"):
        train_dpo(config(tiny_model_dir, tmp_path / "r", "loss.type=hinge"), lowercase_pairs(2))
    with pytest.raises(InputError, match="long_prompt"):
        train_dpo(config(tiny_model_dir, tmp_path / "r", "data.long_prompt=cut"), lowercase_pairs(2))


@pytest.mark.parametrize("examples_per_forward", ["1", "null"])
def test_a_shared_prompt_gives_the_same_training_as_separate_sequences(tiny_model_dir, tmp_path, examples_per_forward):
    # Chosen and rejected of pair 0 start with the same response tokens, so the shared prefix reaches into the
    # responses (their first targets are predicted from the shared part).
    pairs = lowercase_pairs(4)
    pairs[0] = Pair(prompt="Say hi.", chosen="hello there, friend.", rejected="hello there, FRIEND!")
    runs = {
        share: train_dpo(
            config(tiny_model_dir, tmp_path / share, "train.batch_size=4", "data.shuffle=false", "train.epochs=2",
                   f"train.examples_per_forward={examples_per_forward}", f"data.share_prompt={share}"), pairs,
        )  # fmt: skip
        for share in ("true", "false")
    }
    shared, separate = runs["true"].metrics, runs["false"].metrics
    assert len(shared) == len(separate) == 2
    for a, b in zip(shared, separate, strict=True):
        for key in ("loss", "logps/chosen", "logps/rejected", "rewards/margin", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    # the prompt is computed once per pair, but tokens count every sequence's own tokens either way
    assert runs["true"].tokens == runs["false"].tokens


# ---------------------------------------------------------------------------------------------------- groups (mDPO)


def lowercase_groups(n: int, k: int = 2) -> list[GroupPair]:
    endings = ["small and round.", "very useful.", "made of wood.", "easy to carry."]
    return [
        GroupPair(
            prompt=f"Describe thing {i} in one sentence.",
            chosen=[f"thing {i} is {e}" for e in endings[:k]],
            rejected=[f"Thing {i} Is {e.title()}" for e in endings[:k]],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("loss", ["mdpo", "mipo"])
def test_group_losses_train_and_the_loss_decreases(tiny_model_dir, tmp_path, loss):
    result = train_dpo(
        config(tiny_model_dir, tmp_path / "run", f"loss.type={loss}", "train.epochs=4", "data.shuffle=false"),
        lowercase_groups(4),
    )
    assert result.steps == 8
    losses_seen = [m["loss"] for m in result.metrics]
    if loss == "mdpo":
        assert losses_seen[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    else:
        assert losses_seen[0] == pytest.approx((1 / (2 * 0.1)) ** 2, rel=1e-3)  # h = 0: (0 - 1/(2 beta))^2
    assert losses_seen[-1] < losses_seen[0] and result.metrics[-1]["rewards/accuracy"] == 1.0


def test_a_group_of_one_trains_exactly_as_its_pair(tiny_model_dir, tmp_path):
    pairs = lowercase_pairs(4)
    groups = [GroupPair(prompt=p.prompt, chosen=[p.chosen], rejected=[p.rejected]) for p in pairs]
    as_pairs = train_dpo(config(tiny_model_dir, tmp_path / "p", "train.epochs=2"), pairs)
    as_groups = train_dpo(config(tiny_model_dir, tmp_path / "g", "train.epochs=2", "loss.type=mdpo"), groups)
    for a, b in zip(as_pairs.metrics, as_groups.metrics, strict=True):
        for key in ("loss", "rewards/margin", "logps/chosen", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("share", ["true", "false"])
def test_reference_cache_of_groups_equals_their_responses_as_pairs_and_is_reused(
    tiny_model_dir, tmp_path, monkeypatch, share
):
    groups = lowercase_groups(3, k=3)
    groups[1] = GroupPair(prompt="Say hi.", chosen=["hello there, friend.", "hi, friend."],
                          rejected=["hello there, FRIEND!", "HI FRIEND!"])  # fmt: skip
    pairs = [
        Pair(prompt=g.prompt, chosen=c, rejected=r) for g in groups for c, r in zip(g.chosen, g.rejected, strict=True)
    ]
    one_step = ["train.max_steps=1", "train.batch_size=1", f"data.share_prompt={share}"]
    train_dpo(config(tiny_model_dir, tmp_path / "g", "loss.type=mdpo", *one_step), groups)
    train_dpo(config(tiny_model_dir, tmp_path / "p", *one_step), pairs)
    cached_groups = torch.load(tmp_path / "g" / "reference_logps.pt")
    cached_pairs = torch.load(tmp_path / "p" / "reference_logps.pt")
    for side in ("chosen", "rejected"):
        assert cached_groups[side].shape == (8,)
        assert torch.allclose(cached_groups[side], cached_pairs[side], rtol=1e-5)

    import posttrain.train.dpo as dpo

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the reference pass ran again")

    monkeypatch.setattr(dpo, "reference_logps", no_second_pass)
    rerun = config(tiny_model_dir, tmp_path / "g", "loss.type=mdpo", *one_step, "train.resume=false")
    again = train_dpo(rerun, groups)
    assert again.steps == 1


def test_shared_prompt_rows_of_groups_train_as_separate_sequences(tiny_model_dir, tmp_path):
    runs = {
        share: train_dpo(
            config(tiny_model_dir, tmp_path / share, "loss.type=mipo", "train.batch_size=2", "data.shuffle=false",
                   "train.examples_per_forward=null", f"data.share_prompt={share}"), lowercase_groups(2, k=3),
        )  # fmt: skip
        for share in ("true", "false")
    }
    for a, b in zip(runs["true"].metrics, runs["false"].metrics, strict=True):
        for key in ("loss", "logps/chosen", "logps/rejected", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


def test_groups_of_unequal_size_are_an_error_naming_the_row_and_sizes(tiny_model_dir, tmp_path):
    groups = lowercase_groups(3)
    groups[2] = GroupPair(prompt="Say hi.", chosen=["hi", "hey", "hello"], rejected=["Hi!", "HEY"])
    out = tmp_path / "run"
    with pytest.raises(InputError, match=r"groups.jsonl:3: the group has 3 chosen and 2 rejected responses"):
        train_dpo(config(tiny_model_dir, out, "loss.type=mdpo"), groups, Source("groups.jsonl", [1, 2, 3]))
    assert not out.exists()
