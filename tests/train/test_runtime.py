"""The training process setup: the heap policy that keeps freed activations from staying resident; step metrics
summed by name."""

from __future__ import annotations

import platform
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from posttrain.errors import InputError
from posttrain.train.runtime import LoopConfig, StepSums, make_accelerator, plan_steps

# A training step in miniature: activation-sized tensors (2.4 MB) freed at the end of each step, with small
# long-lived tensors (metrics, accumulators) allocated between them, which pins the heap under glibc's default policy.
CHURN = """
import sys, torch
from posttrain.train.runtime import set_mmap_threshold
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
if sys.argv[1] == "on":
    assert set_mmap_threshold(128 * 1024)
base, kept = rss_mb(), []
for step in range(4):
    activations = []
    for _ in range(100):
        activations.append(torch.ones(600_000))
        kept.append(torch.ones(1000))
    del activations
print(rss_mb() - base)
"""


def _resident_growth_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_fixed_mmap_threshold_returns_freed_activations_to_the_os():
    assert _resident_growth_mb("off") > 200  # the default policy keeps ~370 MB of freed activations resident
    assert _resident_growth_mb("on") < 30


def test_step_sums_are_read_back_by_name_after_the_reduce():
    sums = StepSums("loss", "pairs")
    sums.add(loss=torch.tensor(1.5), pairs=2)
    sums.add(loss=0.25, pairs=1)
    assert sums.reduce(make_accelerator(LoopConfig())) == {"loss": 1.75, "pairs": 3.0}
    with pytest.raises(KeyError, match="'lost' is not one of the step's sums: loss, pairs"):
        sums.add(lost=1.0)


def test_each_process_takes_every_other_micro_batch_of_a_step():
    second_of_two = SimpleNamespace(num_processes=2, process_index=1)
    plan = plan_steps(20, LoopConfig(batch_size=2, grad_accum=2, epochs=5, max_steps=7), second_of_two, "examples")
    assert (plan.steps_per_epoch, plan.total_steps) == (2, 7)  # 10 micro-batches, 4 per step; capped at max_steps
    batches = [[i] for i in range(10)]
    assert plan.epoch(3) == 1 and plan.micro_batches(batches, 3) == [[5], [7]]  # step 1 of epoch 1: batches 4-7


def test_too_few_examples_for_one_step_is_an_input_error():
    one_process = SimpleNamespace(num_processes=1, process_index=0)
    with pytest.raises(InputError, match="2 pairs do not fill one optimizer step of 2 micro-batches of 2"):
        plan_steps(2, LoopConfig(batch_size=2, grad_accum=2), one_process, "pairs")


def test_mixed_precision_auto_is_bf16_exactly_where_the_cpu_computes_it_natively():
    from posttrain.models.hf import cpu_has_native_bf16
    from posttrain.train.runtime import resolve_mixed_precision

    assert resolve_mixed_precision("no") == "no" and resolve_mixed_precision("bf16") == "bf16"
    assert resolve_mixed_precision("auto") == ("bf16" if cpu_has_native_bf16() else "no")


def test_explicit_bf16_on_a_cpu_without_native_bf16_warns_and_keeps_it(monkeypatch):
    import warnings

    from posttrain.models import hf
    from posttrain.train.runtime import resolve_mixed_precision

    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.warns(UserWarning, match="emulated there and training runs slower than in fp32"):
        assert resolve_mixed_precision("bf16") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_mixed_precision("auto") == "no" and resolve_mixed_precision("no") == "no"
