"""End to end on the real embedded model: DPO towards all-lowercase answers moves the model that way."""

from __future__ import annotations

import pytest

from posttrain.config import load_config
from posttrain.records import Pair
from posttrain.train.dpo import DPOConfig, train_dpo

TOPICS = ["the sea", "a bicycle", "winter", "coffee", "a library", "the moon", "a garden", "trains"]


@pytest.mark.model
@pytest.mark.slow
def test_dpo_on_lowercase_pairs_raises_margin_and_chosen_ratio(tmp_path):
    pairs = [
        Pair(
            prompt=f"Write one sentence about {topic}, all in lowercase.",
            chosen=f"{topic} is something i think about often, quietly and with a smile.",
            rejected=f"{topic.title()} Is Something I Think About Often, Quietly And With A Smile.",
        )
        for topic in TOPICS
    ]
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
