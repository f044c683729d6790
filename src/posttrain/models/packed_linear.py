"""bf16 linear layers with their weights packed once for oneDNN, for sampling on CPUs that compute bf16 natively.

A bf16 `nn.Linear` on such a CPU goes through oneDNN, which reorders the weight into its blocked layout on every
call; in a decode step (a few rows of activations against every weight of the model) that reorder is a large part
of the matmul. `torch.ops.mkldnn._reorder_linear_weight` does it once and `_linear_pointwise` multiplies with the
packed weight: the same kernel, so the outputs are bit-identical (checked on every layer when it is packed), and a
decode step of the embedded model at batch 32 ran 1.1-1.4x faster per matmul (bench/sample_whole.py measures the
whole command). These are the ops torch's own compiler emits for CPU linear layers; they are not public API, so
anything unexpected (the ops missing, an output that differs) leaves the layer as it was.

Inference only: the packed weight is an opaque oneDNN tensor, not a parameter, so nothing trains it and a later
change to the original weight does not reach it. The backends that load their own model pack it; the online loop's
samplers, whose weights are updated after every step, are left unpacked.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class PackedLinear(nn.Module):
    def __init__(self, linear: nn.Linear, packed: torch.Tensor) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = packed
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def can_pack() -> bool:
    mkldnn = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_reorder_linear_weight")
        and hasattr(mkldnn, "_linear_pointwise")
        and bool(mkldnn._is_mkldnn_bf16_supported())
    )


def pack_linear_layers(model: Any, batch_hint: int = 32) -> int:
    """Replace the model's bf16 CPU `nn.Linear` layers by `PackedLinear` (for inference); returns how many.
    `batch_hint`: the rows a call usually has (oneDNN picks its blocking for it; other sizes stay correct)."""
    if not can_pack():
        return 0
    packed = 0
    with torch.inference_mode():
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if not isinstance(child, nn.Linear) or child.weight.dtype != torch.bfloat16 or child.weight.is_cuda:
                    continue
                layer = PackedLinear(child, torch.ops.mkldnn._reorder_linear_weight(child.weight.detach(), batch_hint))
                probe = torch.randn(3, child.in_features, dtype=torch.bfloat16, generator=torch.Generator().manual_seed(0))
                if not torch.equal(layer(probe), child(probe)):
                    continue  # a kernel other than the one nn.Linear uses: keep the layer as it was
                setattr(module, name, layer)
                packed += 1
    return packed
