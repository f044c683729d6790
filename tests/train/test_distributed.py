"""The multi-process path: DPO in 2 CPU processes (gloo, DDP through accelerate) matches one process.

With data in file order, 2 processes x 2 pairs see exactly the 4 pairs one process sees per step, and DDP averages
the two per-process mean gradients into the single-process mean gradient, so the loss curves must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from posttrain.config import load_config
from posttrain.records import Pair
from posttrain.train.dpo import DPOConfig, train_dpo

SCRIPT = """
import json, sys
from posttrain.config import load_config
from posttrain.records import Pair
from posttrain.train.dpo import DPOConfig, train_dpo

pairs = [Pair.model_validate(p) for p in json.load(open(sys.argv[1]))]
cfg = load_config(DPOConfig, None, sys.argv[2:])
result = train_dpo(cfg, pairs)
print("RESULT", json.dumps([m["loss"] for m in result.metrics]))
"""


@pytest.mark.slow
def test_two_processes_match_one(tiny_model_dir, tmp_path):
    pairs = [
        Pair(prompt=f"Describe thing {i}.", chosen=f"thing {i} is small.", rejected=f"Thing {i} Is Big!")
        for i in range(8)
    ]
    data = tmp_path / "pairs.json"
    data.write_text(json.dumps([p.model_dump(mode="json") for p in pairs]))
    common = [
        f"model.name={tiny_model_dir}", "train.lr=1e-3", "train.progress=false", "train.threads=1",
        "data.shuffle=false", "data.bucket_by_length=false", "data.max_length=128",
    ]  # fmt: skip
    single = train_dpo(
        load_config(DPOConfig, None, [*common, "train.batch_size=4", f"train.output_dir={tmp_path / 'one'}"]), pairs
    )
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        str(script), str(data), *common, "train.batch_size=2", f"train.output_dir={tmp_path / 'two'}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert len(results) == 2 and results[0] == results[1]  # both ranks log the same reduced metrics
    assert results[0] == pytest.approx([m["loss"] for m in single.metrics], abs=1e-5)
    assert (tmp_path / "two" / "model" / "model.safetensors").exists()
