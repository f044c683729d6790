"""Experiment tracking: TensorBoard event files read back hold the rows of metrics.jsonl, also across a resume."""

from __future__ import annotations

import json
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.train.sft import SFTConfig, SFTExample, train_sft
from posttrain.train.tracking import scalars

EXAMPLES = [SFTExample(prompt=f"Say the word {i}.", completion="banana banana") for i in range(8)]


def config(model_dir, out, *overrides: str) -> SFTConfig:
    base = [f"model.name={model_dir}", f"train.output_dir={out}", "train.batch_size=2", "train.progress=false"]
    return load_config(SFTConfig, None, base + list(overrides))


def test_tensorboard_events_hold_the_metrics_rows_once_each_after_a_resume(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cfg = config(tiny_model_dir, out, "train.report_to=[tensorboard]", "train.save_every=2", "train.lr=1e-3")
    train_sft(cfg, EXAMPLES)
    train_sft(cfg, EXAMPLES)  # resumes from the step-2 checkpoint and logs steps 3 and 4 again

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(scalars(rows[0])) >= {"loss", "grad_norm", "lr", "tokens"}
    for tag in events.Tags()["scalars"]:
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3, 4]
        assert [e.value for e in logged] == pytest.approx([r[tag] for r in rows], rel=1e-6)


def test_an_unknown_tracker_is_an_input_error(tiny_model_dir, tmp_path):
    allowed = r"config key 'train.report_to\[0\]': Input should be 'tensorboard', 'wandb' or 'trackio' \(got 'mlflow'\)"
    with pytest.raises(InputError, match=allowed):
        train_sft(config(tiny_model_dir, tmp_path / "run", "train.report_to=[mlflow]"), EXAMPLES)


def test_a_tracker_whose_package_is_missing_stops_before_anything_is_written(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # what importlib reports for a package that is not installed
    with pytest.raises(InputError, match="train.report_to: wandb needs the 'wandb' package"):
        train_sft(config(tiny_model_dir, tmp_path / "run", "train.report_to=[wandb]"), EXAMPLES)
    assert not (tmp_path / "run").exists()
