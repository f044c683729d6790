"""`posttrain train sft|rm|dpo` from the command line: a tiny run each, and bad input -> `file:line` + exit 2."""

from __future__ import annotations

import json
import re

import pytest

from posttrain.cli.main import main


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PAIRS = [{"prompt": f"Describe {i}.", "chosen": f"{i} is fine.", "rejected": f"{i} Is Bad!"} for i in range(2)]
COMMON = ["train.batch_size=2", "train.progress=false", "data.max_length=64"]


@pytest.mark.parametrize("recipe", ["dpo", "rm", "sft"])
def test_each_recipe_runs_from_the_cli(tiny_model_dir, tmp_path, recipe, capsys):
    rows = PAIRS if recipe != "sft" else [{"prompt": p["prompt"], "completion": p["chosen"]} for p in PAIRS]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    out = tmp_path / "out"
    code = main(
        ["train", recipe, "--config", f"recipes/{recipe}.yaml", "--data", str(data),
         f"model.name={tiny_model_dir}", f"train.output_dir={out}", *COMMON]
    )  # fmt: skip
    assert code == 0
    assert re.search(r"trained [12] steps", capsys.readouterr().out)
    assert (out / "metrics.jsonl").exists() and (out / "model" / "config.json").exists()


def test_empty_chosen_is_reported_with_file_and_line(tiny_model_dir, tmp_path, capsys):
    rows = [*PAIRS, {"prompt": "Describe 3.", "chosen": "  ", "rejected": "3 Is Bad!"}]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    code = main(["train", "dpo", "--data", str(data), f"model.name={tiny_model_dir}", f"train.output_dir={tmp_path / 'o'}"])
    assert code == 2
    assert f"{data}:3: invalid Pair: 'chosen' is empty" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_config_key_and_missing_data(tmp_path, capsys):
    assert main(["train", "dpo", "loss.bta=0.1", "--data", "x.jsonl"]) == 2
    assert "did you mean 'loss.beta'" in capsys.readouterr().err
    assert main(["train", "sft"]) == 2
    assert "no training data" in capsys.readouterr().err


def test_mdpo_recipe_reads_groups_and_names_an_unequal_group(tiny_model_dir, tmp_path, capsys):
    groups = [{"prompt": p["prompt"], "chosen": [p["chosen"], p["chosen"] + " Yes."],
               "rejected": [p["rejected"], p["rejected"] + " NO!"]} for p in PAIRS]  # fmt: skip
    data = write_jsonl(tmp_path / "groups.jsonl", groups)
    args = ["train", "dpo", "--config", "recipes/mdpo.yaml", f"model.name={tiny_model_dir}", *COMMON,
            "train.grad_accum=1"]  # fmt: skip
    assert main([*args, "--data", str(data), f"train.output_dir={tmp_path / 'out'}"]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    unequal = write_jsonl(tmp_path / "unequal.jsonl", [groups[0], {**groups[1], "rejected": ["Bad."]}])
    assert main([*args, "--data", str(unequal), f"train.output_dir={tmp_path / 'bad'}"]) == 2
    assert f"{unequal}:2: the group has 2 chosen and 1 rejected responses" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
