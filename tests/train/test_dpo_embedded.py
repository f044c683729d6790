"""End to end on the real embedded model: DPO towards all-lowercase answers moves the model that way; bf16 autocast
moves it as far as fp32 does."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from posttrain.config import load_config
from posttrain.records import Pair
from posttrain.train.dpo import DPOConfig, train_dpo

TOPICS = ["the sea", "a bicycle", "winter", "coffee", "a library", "the moon", "a garden", "trains"]


def lowercase_pairs() -> list[Pair]:
    return [
        Pair(
            prompt=f"Write one sentence about {topic}, all in lowercase.",
            chosen=f"{topic} is something i think about often, quietly and with a smile.",
            rejected=f"{topic.title()} Is Something I Think About Often, Quietly And With A Smile.",
        )
        for topic in TOPICS
    ]


@pytest.mark.model
@pytest.mark.slow
def test_dpo_on_lowercase_pairs_raises_margin_and_chosen_ratio(tmp_path):
    pairs = lowercase_pairs()
    cfg = load_config(
        DPOConfig,
        "recipes/dpo.yaml",
        [
            f"train.output_dir={tmp_path}",
            "train.batch_size=4",
            "train.epochs=2",
            "train.lr=5e-6",
            "train.scheduler=constant",
            "train.save_every=0",
            "train.progress=false",
            "train.threads=2",
            "data.max_length=128",
        ],
    )
    result = train_dpo(cfg, pairs)
    metrics = result.metrics
    assert len(metrics) == 4
    first_epoch, second_epoch = metrics[:2], metrics[2:]

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    # Metrics are measured before each step's update, so the second pass over the same pairs shows what was learnt.
    assert mean(second_epoch, "rewards/margin") > mean(first_epoch, "rewards/margin") + 0.1
    assert mean(second_epoch, "logratio/chosen") > mean(first_epoch, "logratio/chosen")
    assert metrics[-1]["rewards/accuracy"] == 1.0
    assert metrics[-1]["loss"] < metrics[0]["loss"]


@pytest.mark.model
@pytest.mark.slow
def test_bf16_dpo_moves_the_model_as_far_as_fp32_at_a_small_learning_rate(tmp_path):
    """The embedded model's weights come from a GGUF file: 8% sit exactly halfway between two bf16 values, where
    bf16 autocast turned an lr-1e-6 step into a far larger one (`runtime.dither_for_bf16`)."""
    from posttrain.models.embedded import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("embedded", dtype=torch.float32)
    margins = {}
    for name, precision in {"fp32": ["no", "true"], "bf16": ["bf16", "true"], "bf16 raw": ["bf16", "false"]}.items():
        cfg = load_config(DPOConfig, None, [
            f"train.output_dir={tmp_path / name.replace(' ', '_')}", "train.batch_size=4", "train.lr=1e-6",
            "train.max_steps=2", "train.scheduler=constant", "train.progress=false", "train.threads=2",
            "data.max_length=128", "data.shuffle=false", f"train.mixed_precision={precision[0]}",
            f"train.bf16_dither={precision[1]}",
        ])  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bf16 on a CPU without native bf16 is slow, not wrong
            metrics = train_dpo(cfg, lowercase_pairs(), model=copy.deepcopy(model), tokenizer=tokenizer).metrics
        assert metrics[0]["loss"] == pytest.approx(0.6931, abs=1e-4)  # π = π_ref at step 1, in every precision
        margins[name] = metrics[1]["rewards/margin"]  # after one update
    assert margins["fp32"] > 0
    assert 0.5 * margins["fp32"] < margins["bf16"] < 2 * margins["fp32"]
    assert margins["bf16 raw"] > 4 * margins["fp32"]
