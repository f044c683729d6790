"""Memory-lean RMSNorm and SwiGLU MLP for training: the same forward, fewer tensors kept for the backward pass.

Autograd keeps every intermediate an op needs for its gradient. In a Llama-style decoder layer that is, per token:
the RMSNorm input *and* its normalised copy, and in the MLP the gate output, the up output, SiLU(gate) and the
product SiLU(gate) * up (the down projection's input) — four MLP-width tensors. The functions here keep only the
norm input with its per-token scale, and the gate and up outputs; the backward pass rebuilds the rest with a few
elementwise ops (no matrix product runs twice). Fused-kernel libraries (Liger, Unsloth) do the same inside their
kernels; this is plain PyTorch. For SmolLM2-135M it keeps ~30% fewer bytes per token (tests/train/test_lean.py
measures it) and is no slower.

`make_lean(model)` swaps the `forward` of the matching module instances. A module is swapped only if it has the
expected parts and its lean forward gives the same output as its own forward on a probe input, so norms with a
different formula (e.g. Gemma's `1 + weight`) or an MLP with another activation keep their own forward.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNormFunction(torch.autograd.Function):
    """y = w * (x / rms(x)), computed in float32 like transformers' Llama RMSNorm; keeps x and 1/rms(x)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        x32 = x.float()
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, rstd, weight)
        return weight * (x32 * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x, rstd, weight = ctx.saved_tensors
        xhat = x.float() * rstd
        grad_weight = (grad.float() * xhat.to(x.dtype).float()).reshape(-1, x.shape[-1]).sum(0)
        grad_xhat = (grad * weight).float()
        grad_x = rstd * (grad_xhat - xhat * (grad_xhat * xhat).mean(-1, keepdim=True))
        return grad_x.to(x.dtype), grad_weight.to(weight.dtype), None


class SwiGLUDownFunction(torch.autograd.Function):
    """down(SiLU(gate) * up) from the gate and up outputs and the down weight; keeps only those three."""

    @staticmethod
    def forward(ctx: Any, gate: Tensor, up: Tensor, down_weight: Tensor) -> Tensor:
        ctx.save_for_backward(gate, up, down_weight)
        return F.linear(F.silu(gate) * up, down_weight)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        gate, up, down_weight = ctx.saved_tensors
        sig = torch.sigmoid(gate)
        silu = gate * sig
        product = (silu * up).to(grad.dtype)  # under autocast the matmuls ran in grad's dtype
        grad_weight = grad.reshape(-1, grad.shape[-1]).t() @ product.reshape(-1, product.shape[-1])
        grad_product = (grad @ down_weight.to(grad.dtype)).to(gate.dtype)
        grad_up = grad_product * silu
        grad_gate = grad_product * up * (sig * (1 + gate * (1 - sig)))
        return grad_gate, grad_up, grad_weight.to(down_weight.dtype)


def _lean_norm_forward(self: Any, hidden_states: Tensor) -> Tensor:
    return RMSNormFunction.apply(hidden_states, self.weight, self.variance_epsilon)


def _lean_mlp_forward(self: Any, x: Tensor) -> Tensor:
    return SwiGLUDownFunction.apply(self.gate_proj(x), self.up_proj(x), self.down_proj.weight)


def _is_norm(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__.endswith("RMSNorm")
        and isinstance(weight, nn.Parameter)
        and weight.dim() == 1
        and isinstance(getattr(module, "variance_epsilon", None), float)
    )


def _is_swiglu_mlp(module: nn.Module) -> bool:
    parts = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    down = parts[2]
    # The down projection is folded into the function, so it must be a plain bias-free Linear (not a LoRA layer).
    return (
        all(isinstance(p, nn.Module) for p in parts)
        and type(down) is nn.Linear
        and down.bias is None
        and hasattr(module, "act_fn")
    )


@torch.no_grad()
def _same_output(module: nn.Module, lean_forward: Any, width: int) -> bool:
    param = next(module.parameters())
    probe = torch.randn(1, 3, width, generator=torch.Generator().manual_seed(0)).to(
        param
    )  # global RNG untouched
    was_training = module.training
    module.eval()  # dropout (e.g. in LoRA layers) off for the comparison
    try:
        return torch.allclose(module.forward(probe), lean_forward(module, probe), rtol=1e-5, atol=1e-6)
    finally:
        module.train(was_training)


def make_lean(model: Any) -> int:
    """Swap the forward of every RMSNorm and SwiGLU MLP of `model` that the lean functions reproduce; returns how
    many modules were swapped."""
    swapped = 0
    lean: Callable[[Any, Tensor], Tensor]
    for module in model.modules():
        if _is_norm(module):
            lean, width = _lean_norm_forward, module.weight.shape[0]
        elif _is_swiglu_mlp(module):
            lean, width = _lean_mlp_forward, module.down_proj.out_features
        else:
            continue
        if _same_output(module, lean, width):
            module.forward = types.MethodType(lean, module)
            swapped += 1
    return swapped
