"""The reward-model recipe: packed rows give the unpacked rewards, training separates chosen from rejected."""

from __future__ import annotations

import pytest
import torch

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.records import Pair
from posttrain.train.data import collate, packed_rows, render
from posttrain.train.reward import RewardScores, RMConfig, load_reward_model, train_reward


def pairs(n: int, edited: bool = False) -> list[Pair]:
    rows = []
    for i in range(n):
        extra = {"edited": f"item {i}: all good, really."} if edited else {}
        rows.append(Pair(prompt=f"Rate item {i}.", chosen=f"item {i}: all good.", rejected=f"ITEM {i}: BAD!!", **extra))
    return rows


def config(model_dir, out, *overrides: str) -> RMConfig:
    base = [f"model.name={model_dir}", f"train.output_dir={out}", "train.batch_size=2", "train.progress=false"]
    return load_config(RMConfig, None, base + list(overrides))


def test_packed_rewards_equal_unpacked(tiny_model_dir, tokenizer):
    model, _ = load_reward_model(str(tiny_model_dir), torch.float32)
    scorer = RewardScores(model.eval())
    groups = [
        [render(tokenizer, "Rate it.", r, 256, False) for r in ("fine, thanks.", "BAD", "quite fine")],
        [render(tokenizer, "Rate this other one please.", r, 256, False) for r in ("ok", "not ok at all")],
    ]
    with torch.no_grad():
        packed = scorer(packed_rows(groups, pad=0))
        separate = scorer(collate([s for g in groups for s in g], pad_id=0, packing=False))
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("overrides", [[], ["data.pack_responses=true"], ["loss.use_margin=true"]])
def test_reward_model_learns_to_rank(tiny_model_dir, tmp_path, overrides):
    result = train_reward(
        config(tiny_model_dir, tmp_path / "run", "train.lr=3e-3", "train.epochs=6", *overrides), pairs(4)
    )
    first, last = result.metrics[0], result.metrics[-1]
    assert last["loss"] < first["loss"] and last["accuracy"] == 1.0 and last["margin"] > first["margin"]
    from transformers import AutoModelForSequenceClassification

    saved = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    assert saved.config.num_labels == 1
    assert "AutoModelForSequenceClassification.from_pretrained" in (result.model_dir / "README.md").read_text()


def test_edited_responses_train_and_margin_refuses_them(tiny_model_dir, tmp_path):
    result = train_reward(config(tiny_model_dir, tmp_path / "a", "data.pack_responses=true"), pairs(2, edited=True))
    assert result.steps == 1
    with pytest.raises(InputError, match="use_margin"):
        train_reward(config(tiny_model_dir, tmp_path / "b", "loss.use_margin=true"), pairs(2, edited=True))
