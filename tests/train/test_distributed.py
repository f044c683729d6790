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


ONLINE_SCRIPT = """
import json, sys
import posttrain.models.hf as hf
from posttrain.config import load_config
from posttrain.models.backend import Completion
from posttrain.records import Prompt
from posttrain.train.cgpo import CGPOConfig, train_cgpo

class Scripted:
    # Responses that depend only on the prompt and the response index, so any split of a batch over processes
    # rolls out exactly what one process rolls out.
    def __init__(self, *args, **kwargs):
        pass

    def generate(self, prompts, n, params):
        out = []
        for p in prompts:
            i = int(p.split("thing ")[1].split(" ")[0])
            texts = ["the thing is small.", "The Thing Is Small.", "the thing is round and small.", "THE THING."]
            out.append([Completion(texts[(i + j) % 4], 5, 6, "stop") for j in range(n)])
        return out

hf.HFBackend = Scripted
prompts = [Prompt.model_validate(p) for p in json.load(open(sys.argv[1]))]
result = train_cgpo(load_config(CGPOConfig, None, sys.argv[2:]), prompts)
print("RESULT", json.dumps([[m["loss"], m["reward"], m["grad_norm"]] for m in result.metrics]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "task",
    [
        ["optimizer=grpo", "kl_coef=0.05", "loss_aggregation=token"],  # batch token count, several updates
        ["optimizer=reinforce_pp", "kl_coef=0.05"],  # mean and variance over the whole batch
        ["optimizer=crpg"],  # CRPG's batch-mean baseline
    ],
)
def test_online_loop_in_two_processes_matches_one(tiny_model_dir, tmp_path, monkeypatch, task):
    import posttrain.models.hf as hf
    from posttrain.train.cgpo import CGPOConfig, train_cgpo

    prompts = [
        {"prompt": f"Describe thing {i} in one sentence. Use only lowercase letters.",
         "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}], "gold": "a small thing."}
        for i in range(8)
    ]  # fmt: skip
    data = tmp_path / "prompts.json"
    data.write_text(json.dumps(prompts))
    updates = "train.updates_per_rollout=2" if "optimizer=grpo" in task else "train.updates_per_rollout=1"
    common = [
        f"model.name={tiny_model_dir}", "train.lr=1e-2", "train.progress=false", "train.threads=1", "train.max_steps=2",
        "data.shuffle=false", "data.max_length=128", "evaluate=false", "tasks.instruction_following.k=2",
        "tasks.instruction_following.batch_size=4", updates, *(f"tasks.instruction_following.{t}" for t in task),
    ]  # fmt: skip
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(ONLINE_SCRIPT))
    namespace: dict = {}
    exec(compile(textwrap.dedent(ONLINE_SCRIPT).split("hf.HFBackend = Scripted")[0], "scripted", "exec"), namespace)
    monkeypatch.setattr(hf, "HFBackend", namespace["Scripted"])
    from posttrain.config import load_config
    from posttrain.records import Prompt

    single = train_cgpo(
        load_config(CGPOConfig, None, [*common, f"train.output_dir={tmp_path / 'one'}"]),
        [Prompt.model_validate(p) for p in prompts],
    )
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
        str(script), str(data), *common, f"train.output_dir={tmp_path / 'two'}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert len(results) == 2 and results[0] == results[1]  # both ranks log the same reduced metrics
    expected = [[m["loss"], m["reward"], m["grad_norm"]] for m in single.metrics]
    for got, want in zip(results[0], expected, strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert (tmp_path / "two" / "model" / "model.safetensors").exists()
