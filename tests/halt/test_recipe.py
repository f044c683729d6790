"""The HALT recipe end to end on a tiny random model: a smoke test of the plumbing, not of HALT's effect."""

from __future__ import annotations

import json

from posttrain.config import load_config
from posttrain.halt.recipe import HaltRecipeConfig, run_recipe


def test_the_recipe_runs_every_stage_and_writes_the_tradeoff_report(tmp_path, tiny_model_dir):
    overrides = [
        f"model={tiny_model_dir}", f"runs_dir={tmp_path}", "name=smoke", "thresholds=[0.0,1.0]",
        "problems.n_train=4", "problems.n_heldout=2", "sample.max_new_tokens=8", "sample.dtype=float32",
        "eval.max_new_tokens=8", "sft.train.epochs=1", "sft.train.batch_size=2", "sft.train.progress=false",
    ]  # fmt: skip
    cfg = load_config(HaltRecipeConfig, "recipes/halt_math.yaml", overrides)
    report = run_recipe(cfg)
    results = json.loads((tmp_path / "smoke" / "report" / "results.json").read_text())
    assert [r["model"] for r in results["rows"]] == ["untrained", "standard SFT", "HALT t=0", "HALT t=1"]
    assert all(r["responses"] == 2 * 4 for r in results["rows"])  # 4 sampled answers per problem and set(results["builds"]) == {"0", "1"}
    page = report.read_text()
    assert "HALT: correctness against completeness" in page and "<svg" in page
    assert (tmp_path / "smoke" / "report" / "tradeoff.svg").read_text().startswith("<svg")
    # A second run finds every stage cached.
    assert run_recipe(cfg) == report
