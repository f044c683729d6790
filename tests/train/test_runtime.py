"""The training process setup: the heap policy that keeps freed activations from staying resident; step metrics
summed by name."""

from __future__ import annotations

import platform
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch

from posttrain.errors import InputError
from posttrain.train.runtime import (
    LoopConfig,
    LoRAConfig,
    StepSums,
    dither_for_bf16,
    make_accelerator,
    plan_steps,
)

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
    from posttrain.models import hf
    from posttrain.train.runtime import resolve_mixed_precision

    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.warns(UserWarning, match="emulated there and training runs slower than in fp32"):
        assert resolve_mixed_precision("bf16") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_mixed_precision("auto") == "no" and resolve_mixed_precision("no") == "no"


def test_bf16_weights_on_a_cpu_without_native_bf16_warn_and_stay_bf16(monkeypatch):
    from posttrain.models import hf
    from posttrain.train.runtime import torch_dtype

    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.warns(UserWarning, match="model.dtype=bfloat16 on a CPU without native bf16"):
        assert torch_dtype("bfloat16") == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch_dtype("auto") == torch.float32 and torch_dtype("float32") == torch.float32
    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch_dtype("bfloat16") == torch.bfloat16 and torch_dtype("auto") == torch.bfloat16


def _f16_stored_linear(seed: int = 0) -> torch.nn.Linear:
    """Weights as a model loaded from an f16 checkpoint has them: 1/8 exactly halfway between two bf16 values."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(1000, 1000, bias=True)
    with torch.no_grad():
        layer.weight.copy_((torch.randn_like(layer.weight) * 0.05).half().float())
        layer.bias.zero_()
    return layer


def _rounded_move(weight: torch.Tensor, delta: float) -> float:
    """How far a bf16 forward pass's copy of the weights moves, on average, when the fp32 weights move by `delta`."""
    return float(((weight + delta).bfloat16().float() - weight.bfloat16().float()).double().mean())


def test_bf16_dither_makes_the_rounded_weights_follow_a_small_update_on_average():
    layer = _f16_stored_linear()
    delta = 1e-6  # an Adam step at lr 1e-6, far below bf16's grid step at these weights (~1e-4)
    # Without the dither the ties (1/8 of the weights) jump half a grid step each: ~15x the update on average.
    assert _rounded_move(layer.weight.detach(), delta) > 5 * delta
    before = layer.weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a CPU without native bf16 warns about speed only
        dither_for_bf16(layer, LoopConfig(mixed_precision="bf16"), LoRAConfig())
    after = layer.weight.detach()
    assert 0.85 * delta < _rounded_move(after, delta) < 1.15 * delta
    # The noise stays within half a grid step of each weight, and zeros (the bias) stay zero.
    _, exponent = torch.frexp(before)
    assert bool(((after - before).abs() <= torch.ldexp(torch.ones_like(before), exponent - 9)).all())
    assert bool((layer.bias == 0).all())


@pytest.mark.parametrize(
    "loop, lora",
    [
        ({"mixed_precision": "no"}, False),
        ({"mixed_precision": "bf16", "bf16_dither": False}, False),
        ({"mixed_precision": "bf16"}, True),  # LoRA: the base weights are frozen
    ],
)
def test_bf16_dither_leaves_the_weights_alone_without_bf16_or_when_they_are_frozen(loop, lora):
    layer = _f16_stored_linear()
    before = layer.weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dither_for_bf16(layer, LoopConfig(**loop), LoRAConfig(enabled=lora))
    assert torch.equal(layer.weight.detach(), before)


def test_bf16_dither_is_the_same_for_the_same_seed():
    layers = [_f16_stored_linear() for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for layer, seed in zip(layers, (0, 0, 1), strict=True):
            dither_for_bf16(layer, LoopConfig(mixed_precision="bf16", seed=seed), LoRAConfig())
    assert torch.equal(layers[0].weight, layers[1].weight) and not torch.equal(layers[0].weight, layers[2].weight)
