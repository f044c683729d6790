"""`posttrain run` end to end on the embedded model, at toy size (the full quickstart is measured, not tested)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from posttrain.cli.main import main
from posttrain.records import Pair, Sample, read_records

TINY = [
    "prompts.n_train=8", "prompts.n_heldout=3", "prompts.constraints=1-2", "sample.n=4", "sample.max_new_tokens=48",
    "train.train.epochs=1", "train.train.batch_size=2", "train.data.max_length=192", "eval.max_new_tokens=24",
    "eval.examples=2",
]  # fmt: skip
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def _artifacts(run_dir: Path) -> dict[str, bytes]:
    names = ["prompts/train.jsonl", "prompts/heldout.jsonl", "sample/samples.jsonl", "judge/verdicts.jsonl",
             "pairs/pairs.jsonl", "eval_before/heldout/metrics.json"]  # fmt: skip
    return {name: (run_dir / name).read_bytes() for name in names}


@pytest.mark.model
def test_quickstart_runs_end_to_end_and_reruns_from_cache(tmp_path: Path, capsys):
    args = ["run", str(RECIPE), f"runs_dir={tmp_path}", "name=toy", "pairs.method=rs+repair", *TINY]
    assert main(args) == 0
    run_dir = tmp_path / "toy"
    report = (run_dir / "report.html").read_text()
    assert "Held-out verifiable prompts" in report and report.count("<svg") >= 3
    assert "rs: " in report and "repair: " in report  # one line per pair method
    methods = {p.method for p in read_records(run_dir / "pairs" / "pairs.jsonl", Pair)}
    assert methods <= {"rs", "repair"} and "repair" in methods
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert set(summary["heldout_eval"]["before"]["metrics"]) == {
        "prompt_level_strict", "prompt_level_loose", "inst_level_strict", "inst_level_loose",
    }  # fmt: skip
    assert summary["training"] and summary["training"][0]["loss"] is not None
    before = _artifacts(run_dir)
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("cached") == 8  # every stage skipped
    assert _artifacts(run_dir) == before


@pytest.mark.model
@pytest.mark.slow
def test_kill_9_during_sampling_then_rerun_gives_the_same_artifacts(tmp_path: Path):
    command = [sys.executable, "-m", "posttrain", "run", str(RECIPE), "name=toy", *TINY]
    clean = subprocess.run([*command, f"runs_dir={tmp_path / 'clean'}"], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-3000:]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([*command, f"runs_dir={killed_dir}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = killed_dir / "toy" / "sample" / "samples.jsonl.partial"
    deadline = time.time() + 600
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > 0):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run([*command, f"runs_dir={killed_dir}"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _artifacts(killed_dir / "toy") == _artifacts(tmp_path / "clean" / "toy")


def test_bad_recipe_key_exits_2_before_any_work(tmp_path: Path, capsys):
    assert main(["run", str(RECIPE), f"runs_dir={tmp_path}", "sample.nn=3"]) == 2
    assert "did you mean 'sample.n'" in capsys.readouterr().err
    assert main(["run", str(RECIPE), f"runs_dir={tmp_path}", "pairs.method=rs+beam"]) == 2
    assert "pairs.method must be rs, mcts, repair" in capsys.readouterr().err
    assert main(["run", str(RECIPE), f"runs_dir={tmp_path}", "sample.dtype=float16x"]) == 2
    assert "config key 'sample.dtype': Input should be 'auto', 'float32' or 'bfloat16'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.model
def test_two_rounds_of_sft_on_verified_targets(tmp_path: Path):
    """Round 2 samples from round 1's model and trains on from it; SFT rows are verified targets."""
    args = ["run", str(RECIPE), f"runs_dir={tmp_path}", "name=rounds", "optimize=sft", "rounds=2",
            "prompts.n_train=4", "prompts.n_heldout=2", "prompts.constraints=1-1", "sample.n=2",
            "sample.max_new_tokens=32", "sft.train.batch_size=1", "sft.train.epochs=1", "sft.data.max_length=192",
            "eval.max_new_tokens=16", "eval.examples=1", "eval.each_round=true"]  # fmt: skip
    assert main(args) == 0
    run_dir = tmp_path / "rounds"
    round2 = read_records(run_dir / "round2" / "sample" / "samples.jsonl", Sample)
    assert {s.model for s in round2} == {str(run_dir / "round1" / "train" / "sft" / "model")}
    round1_prompts = {s.prompt_id for s in read_records(run_dir / "round1" / "sample" / "samples.jsonl", Sample)}
    assert round1_prompts.isdisjoint({s.prompt_id for s in round2})  # each round its own slice of the prompts
    for rd in ("round1", "round2"):
        stats = json.loads((run_dir / rd / "targets" / "stats.json").read_text())
        assert stats["prompts"] == 2 and stats["sampled"] + stats["repaired"] + stats["without_target"] == 2
    assert not (run_dir / "pairs").exists() and (run_dir / "round2" / "train" / "sft" / "model").is_dir()
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert {r["phase"] for r in summary["training"]} <= {"round1/sft", "round2/sft"}
    assert [r["model"] for r in summary["rounds"]] == ["start", "round1", "round2"]
    report = (run_dir / "report.html").read_text()
    assert "SFT targets" in report and "Held-out prompts after each round" in report
