from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from posttrain.config import build, load_config
from posttrain.errors import InputError


@dataclass
class Optim:
    lr: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: Literal["cosine", "constant"] = "cosine"
    report_to: list[Literal["tensorboard", "wandb"]] = field(default_factory=list)


@dataclass
class Recipe:
    name: str = "demo"
    steps: int = 10
    lora: bool = False
    model_path: str | None = None
    optim: Optim = field(default_factory=Optim)


def test_defaults_yaml_and_dotted_overrides(tmp_path: Path):
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("name: run1\noptim:\n  lr: 2.0e-6\n")
    cfg = load_config(Recipe, yaml_file, ["steps=3", "optim.lr=1e-6", "lora=true", "optim.betas=[0.5, 0.6]"])
    assert cfg == Recipe(name="run1", steps=3, lora=True, optim=Optim(lr=1e-6, betas=[0.5, 0.6]))
    assert load_config(Recipe) == Recipe()


def test_unknown_key_suggests_the_closest(tmp_path: Path):
    with pytest.raises(InputError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"):
        load_config(Recipe, None, ["optim.lrr=1"])
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("stpes: 3\n")
    with pytest.raises(InputError, match=rf"{yaml_file}: unknown config key 'stpes'; did you mean 'steps'"):
        load_config(Recipe, yaml_file)


def test_bad_values_and_bad_yaml_are_clear_errors(tmp_path: Path):
    with pytest.raises(InputError, match=r"config key 'steps'.*'many'"):
        load_config(Recipe, None, ["steps=many"])
    with pytest.raises(InputError, match="not of the form key=value"):
        load_config(Recipe, None, ["steps"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: a\n  steps: [1\n")
    with pytest.raises(InputError, match=rf"{broken}:\d+: invalid YAML"):
        load_config(Recipe, broken)
    with pytest.raises(InputError, match="config file not found"):
        load_config(Recipe, tmp_path / "missing.yaml")


def test_a_value_outside_a_literal_names_the_key_and_the_allowed_values(tmp_path: Path):
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("optim:\n  schedule: cosin\n")
    allowed = r"Input should be 'cosine' or 'constant' \(got 'cosin'\)"
    with pytest.raises(InputError, match=rf"{yaml_file}: config key 'optim.schedule': {allowed}"):
        load_config(Recipe, yaml_file)
    with pytest.raises(InputError, match=r"config key 'optim.report_to\[1\]': .*'wandb' \(got 'mlflow'\)"):
        load_config(Recipe, None, ["optim.report_to=[tensorboard, mlflow]"])
    # A section validated on its own is named by where it sits in the whole config.
    with pytest.raises(InputError, match=r"config key 'tasks.chat.schedule': Input should be"):
        build(Optim, {"schedule": "linear"}, prefix="tasks.chat.")
    with pytest.raises(InputError, match=r"unknown config key 'tasks.chat.lrr'; did you mean 'tasks.chat.lr'"):
        build(Optim, {"lrr": 1}, prefix="tasks.chat.")
    assert load_config(Recipe, None, ["optim.schedule=constant"]).optim.schedule == "constant"


def test_yaml_booleans_are_true_and_false_only_so_no_and_off_stay_words(tmp_path):
    from posttrain.config import parse_override, read_yaml

    assert parse_override("train.mixed_precision=no") == (["train", "mixed_precision"], "no")
    assert parse_override("x=off")[1] == "off" and parse_override("x=yes")[1] == "yes"
    assert parse_override("x=true")[1] is True and parse_override("x=False")[1] is False
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  mixed_precision: no\n  progress: false\n  names: [on, off]\n")
    assert read_yaml(path) == {"train": {"mixed_precision": "no", "progress": False, "names": ["on", "off"]}}
