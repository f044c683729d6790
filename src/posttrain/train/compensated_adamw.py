"""AdamW for bf16 (or fp16) weights that keeps the updates bf16 cannot hold: Kahan-compensated weights.

Training with the weights themselves in bf16 (`model.dtype: bfloat16`) runs every op of the forward and backward
pass in bf16, with no per-step fp32 -> bf16 weight casts, and halves the weights, gradients and activations. But
bf16 keeps 8 bits of mantissa: a weight of 0.05 sits on a grid of ~2e-4, and an update of lr 1e-6 rounds back to
the same value, so a plain optimizer on bf16 weights (torch's AdamW included) leaves most weights where they are.
Here each weight carries a compensation: the part of its exact value that bf16 rounded away. Every step adds the
update to weight + compensation in fp32, stores the rounded result as the weight and the remainder as the
compensation (Kahan summation), so small updates add up exactly and move the bf16 weight when they reach its grid
(the design of torchdistx's AnyPrecisionAdamW; Zamirai et al. 2020, "Revisiting BFloat16 Training").

The compensation starts as noise uniform over one grid step of its weight (`dither_seed`; None starts it at zero).
From zero, every weight sits half a step from where its rounding flips, and weights with similar updates all wait
until their sums cross that half step: at DPO's lr 1e-6 the embedded model's typical weights (|w| ~ 0.05, grid
~2e-4) did not move in the benchmark's 16 steps and the loss stayed near log 2 (docs/benchmarks.md). Spread evenly
over the grid, a weight flips with probability update / grid step, so the bf16 model follows the exact weights on
average from the first step: the cure of `runtime.dither_for_bf16` for autocast, kept in the optimizer here.

The compensation is an int16 count of 2^-16 of its weight's grid step: 2 bytes, and a resolution of 2^-24 of the
weight, like fp32's. In bf16 (AnyPrecisionAdamW's default) it would hold ~2^-17 of its weight, and once dithered it
is as large as half a grid step all the time, so its rounding adds noise of ~1e-7 per step to a weight of 0.05 —
more than the whole update late in a decaying lr 1e-6 schedule: on the DPO benchmark the loss then trailed fp32's
by up to 0.078 (fp32 compensation: within 0.031; int16: within 0.047, the differences of these two being which
weights' rounding flips; docs/benchmarks.md). The first moment is kept in the weight's dtype (it averages ~10
gradients with coefficient 0.1, which bf16 resolves), the second in fp32 (with beta2 = 0.999 it changes by 0.1% a
step, below bf16's resolution of 0.4%: in bf16 it would freeze). Bytes per bf16 weight: 2 weight + 2 gradient +
2 + 4 moments + 2 compensation = 12, where fp32 AdamW holds 16. fp32 weights (e.g. LoRA adapters on a bf16 base)
get exactly torch's AdamW update, without compensation.

The update is torch's AdamW (decoupled weight decay, bias-corrected moments, eps outside the square root). bf16
weights on the CPU take it in one compiled pass per tensor (`bf16_adamw_kernel.py`, numba: each element read and
written once, the ops of the slice path with the fused multiply-adds torch's CPU kernels use, so the moments come
out bit for bit as the slices give them; its square root is IEEE's, where torch's vectorized one is off by an ulp
in ~17% of cases); everything else in fp32 slices of 2^20 elements through four 4 MiB scratch buffers, so no
full-size fp32 copy of a weight is ever made.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

SLICE = 1 << 20  # elements per fp32 slice: 4 MiB per scratch buffer (fewest seconds per step among 2^16..2^22)


class CompensatedAdamW(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        dither_seed: int | None = 0,
        compiled: bool = True,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamW hyperparameters: lr={lr}, betas={betas}, eps={eps}, wd={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self._scratch: list[torch.Tensor] = []
        self._dither_seed = dither_seed
        self._compiled = compiled  # False: the torch slices for bf16 weights too (the kernel's test reference)
        self._index = {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def _buffers(self, device: torch.device) -> list[torch.Tensor]:
        if not self._scratch or self._scratch[0].device != device:
            self._scratch = [torch.empty(SLICE, dtype=torch.float32, device=device) for _ in range(4)]
        return self._scratch

    def _init_state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.preserve_format)
            if p.dtype != torch.float32:
                state["compensation"] = self._start_compensation(p)
        return state

    def _start_compensation(self, p: torch.Tensor) -> torch.Tensor:
        if self._dither_seed is None:
            return torch.zeros_like(p, dtype=torch.int16, memory_format=torch.preserve_format)
        generator = torch.Generator().manual_seed(self._dither_seed * 100_003 + self._index[p])
        noise = torch.randint(-(2**15), 2**15, p.shape, generator=generator, dtype=torch.int16).to(p.device)
        return torch.where(p == 0, 0, noise).to(torch.int16)  # uniform over one grid step of the weight

    @staticmethod
    def unit(weight: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The compensation's unit for each weight: 2^-16 of the weight's grid step (bf16: the step is 2^-7 of the
        power of two at or below |w|), as fp32."""
        if weight.dtype == torch.bfloat16:
            # From the bits (0.06 s per pass over the embedded model's weights; frexp + exp2: 0.51 s): bf16's 8
            # exponent bits E (bias 127) give the step 2^(E - 134) and the unit 2^(E - 150), an fp32 whose exponent
            # field is E - 23 (1 at least: weights below 2^-103 get a unit of 2^-126 and a saturated compensation).
            out = torch.empty(weight.shape, dtype=torch.float32, device=weight.device) if out is None else out
            exponent = torch.bitwise_right_shift(weight.view(torch.int16), 7, out=out.view(torch.int32))
            exponent.bitwise_and_(0xFF).sub_(23).clamp_(min=1).bitwise_left_shift_(23)
            return out
        _, exponent = torch.frexp(weight)  # weight = mantissa * 2^exponent, mantissa in [0.5, 1)
        shift = math.log2(torch.finfo(weight.dtype).eps) - 1 - 16
        return torch.exp2(exponent.to(torch.float32).add_(shift), out=out)

    def exact_weight(self, p: torch.Tensor) -> torch.Tensor:
        """Weight + compensation in fp32: the weight the optimizer has computed, of which `p` is the rounding."""
        comp = self.state[p].get("compensation") if p in self.state else None
        return p.detach().float() if comp is None else p.detach().float() + comp * self.unit(p.detach())

    def load_state_dict(self, state_dict: dict) -> None:
        """As torch's, but the states kept in another dtype than their weight's come back in it (torch casts every
        loaded state to its weight's dtype)."""
        super().load_state_dict(state_dict)
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for i, p in zip(saved_ids, params, strict=True):
            for key in ("exp_avg_sq", "compensation"):
                if key in state_dict["state"].get(i, {}):
                    self.state[p][key] = state_dict["state"][i][key].to(p.device)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("CompensatedAdamW does not support sparse gradients")
                state = self._init_state(p)
                state["step"] += 1
                t = float(state["step"])
                bias2_sqrt = math.sqrt(1 - beta2**t)
                # m / (sqrt(v) / b2 + eps) = b2 * m / (sqrt(v) + eps * b2): one pass fewer
                step_size, eps_scaled = lr / (1 - beta1**t) * bias2_sqrt, eps * bias2_sqrt
                weight, grad = p.view(-1), p.grad.view(-1)
                avg, avg_sq = state["exp_avg"].view(-1), state["exp_avg_sq"].view(-1)
                comp = state["compensation"].view(-1) if "compensation" in state else None
                if self._compiled and comp is not None and p.dtype == torch.bfloat16 and p.device.type == "cpu":
                    from posttrain.train.bf16_adamw_kernel import bf16_compensated_step

                    f32 = torch.tensor([1 - beta1, beta2, 1 - beta2, step_size, eps_scaled, 1 - lr * decay]).numpy()
                    bits = (t.view(torch.uint16).numpy() for t in (weight, grad, avg))
                    bf16_compensated_step(*bits, avg_sq.numpy(), comp.numpy(), *f32, threads=torch.get_num_threads())
                    continue
                g_buf, m_buf, x_buf, u_buf = self._buffers(p.device)
                for start in range(0, weight.numel(), SLICE):
                    end = min(start + SLICE, weight.numel())
                    g, m, x, u = (buf[: end - start] for buf in (g_buf, m_buf, x_buf, u_buf))
                    g.copy_(grad[start:end])
                    m.copy_(avg[start:end]).lerp_(g, 1 - beta1)
                    avg[start:end].copy_(m)
                    sq = avg_sq[start:end]
                    sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    denom = torch.sqrt(sq, out=g).add_(eps_scaled)  # the gradient is no longer needed
                    x.copy_(weight[start:end])
                    if comp is not None:  # the weight's exact value
                        x.addcmul_(comp[start:end], self.unit(weight[start:end], out=u))
                    if decay:
                        x.mul_(1 - lr * decay)
                    x.addcdiv_(m, denom, value=-step_size)
                    weight[start:end].copy_(x)  # rounded to the weight's dtype
                    if comp is not None:  # what the rounding dropped, in units of the new weight's grid
                        x.sub_(weight[start:end]).div_(self.unit(weight[start:end], out=u))
                        comp[start:end].copy_(x.round_().clamp_(-(2**15), 2**15 - 1))
        return loss
