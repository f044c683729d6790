"""The report's benchmark entries: before/after per benchmark, and whether training drew on its constraint types."""

from __future__ import annotations

import json
from pathlib import Path

from posttrain.pipeline.summary import _benchmarks
from posttrain.records import Prompt


def _metrics(path: Path, strict: float, per: dict[str, float]) -> None:
    path.mkdir(parents=True)
    metrics = {"prompt_level_strict_acc": strict, "prompt_level_loose_acc": strict, "inst_level_strict_acc": strict,
               "inst_level_loose_acc": strict, "num_prompts": 10,
               "per_instruction": {cid: {"n": 1, "strict": v, "loose": v} for cid, v in per.items()}}  # fmt: skip
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_each_benchmark_says_whether_training_used_its_types(tmp_path: Path) -> None:
    for stage, value in (("eval_before", 0.1), ("eval_after", 0.3)):
        _metrics(tmp_path / stage / "ifeval", value, {"punctuation:no_comma": value})
        _metrics(tmp_path / stage / "ifbench", value / 2, {"format:emoji": value})
    trained = {"p": Prompt(prompt="Write.", instruction_id_list=["punctuation:no_comma"], kwargs=[{}])}
    out = _benchmarks(tmp_path, trained)
    assert list(out) == ["ifeval", "ifbench"]
    assert out["ifbench"]["note"].startswith("Out of distribution: the training prompts used none of ifbench's 58")
    assert out["ifeval"]["note"].startswith("In distribution: the training prompts used 1 of ifeval's 25")
    assert out["ifbench"]["before"]["metrics"]["prompt_level_strict"] == 0.05
    assert out["ifbench"]["after"]["per_instruction"] == {"format:emoji": 0.3}

    trained["q"] = Prompt(prompt="Draw.", instruction_id_list=["format:emoji"], kwargs=[{}])
    assert "format:emoji" in _benchmarks(tmp_path, trained)["ifbench"]["note"]
    (tmp_path / "eval_after" / "ifbench" / "metrics.json").unlink()  # not evaluated after: no entry
    assert list(_benchmarks(tmp_path, trained)) == ["ifeval"]
