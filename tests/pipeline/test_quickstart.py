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
from posttrain.records import Pair, read_records

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
