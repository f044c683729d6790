"""The compensated AdamW's update of bf16 weights (train/compensated_adamw.py) as one compiled pass per tensor.

Each element is read and written once: the weight, gradient and first moment as their bf16 bits (uint16), the fp32
second moment, the int16 compensation. Each line is the op of the optimizer's fp32 slice path, with fused
multiply-adds where torch's CPU kernels use them (lerp, addcmul), so the moments come out bit for bit as the slices
give them; the square root is IEEE's (torch's vectorized fp32 sqrt is off by an ulp in ~17% of cases). Compiled by
numba on first use and cached on disk (a separate module, imported only by a bf16 step, so numba's import is not
paid by fp32 training); the loop runs on as many threads as torch uses.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _bitcast_to_f32(typingctx: Any, bits: Any) -> Any:
    return types.float32(types.uint32), lambda ctx, builder, sig, args: builder.bitcast(args[0], ir.FloatType())


def _bitcast_to_u32(typingctx: Any, x: Any) -> Any:
    return types.uint32(types.float32), lambda ctx, builder, sig, args: builder.bitcast(args[0], ir.IntType(32))


def _fused_multiply_add(typingctx: Any, a: Any, b: Any, c: Any) -> Any:  # a * b + c, rounded once
    sig = types.float32(types.float32, types.float32, types.float32)
    return sig, lambda ctx, builder, sig, args: builder.fma(*args)


_as_f32: Any = intrinsic(_bitcast_to_f32)
_as_u32: Any = intrinsic(_bitcast_to_u32)
_fma: Any = intrinsic(_fused_multiply_add)


@numba.njit(inline="always")
def _widen(bits: Any) -> Any:  # bf16 -> fp32: exact
    return _as_f32(numba.uint32(bits) << numba.uint32(16))


@numba.njit(inline="always")
def _narrow(x: Any) -> Any:  # fp32 -> bf16, rounded to nearest even (as torch's c10::BFloat16)
    if x != x:
        return numba.uint16(0x7FC0)
    u = _as_u32(x)
    return numba.uint16((u + numba.uint32(0x7FFF) + ((u >> numba.uint32(16)) & numba.uint32(1))) >> 16)


@numba.njit(inline="always")
def _unit(bits: Any) -> Any:  # CompensatedAdamW.unit of one bf16 weight: 2^(E - 150), E its exponent bits
    exponent = numba.int32((numba.uint32(bits) >> numba.uint32(7)) & numba.uint32(0xFF)) - numba.int32(23)
    return _as_f32(numba.uint32(max(exponent, numba.int32(1))) << numba.uint32(23))


@numba.njit(cache=True, nogil=True, parallel=True)
def _step(  # type: ignore[no-untyped-def]
    weight, grad, avg, avg_sq, comp, one_minus_beta1, beta2, one_minus_beta2, step_size, eps, decay
):
    for i in numba.prange(weight.shape[0]):
        g = _widen(grad[i])
        m = _fma(one_minus_beta1, g - _widen(avg[i]), _widen(avg[i]))  # lerp_
        avg[i] = _narrow(m)
        sq = _fma(one_minus_beta2 * g, g, avg_sq[i] * beta2)  # mul_, addcmul_
        avg_sq[i] = sq
        denom = numba.float32(math.sqrt(sq)) + eps
        x = _fma(numba.float32(comp[i]), _unit(weight[i]), _widen(weight[i]))  # the exact weight
        x = (x * decay) + (-step_size * m) / denom  # mul_, addcdiv_
        rounded = _narrow(x)
        weight[i] = rounded
        left = np.rint((x - _widen(rounded)) / _unit(rounded))  # half to even, as round_
        comp[i] = numba.int16(min(max(left, numba.float32(-32768)), numba.float32(32767)))


def bf16_compensated_step(
    weight: np.ndarray, grad: np.ndarray, avg: np.ndarray, avg_sq: np.ndarray, comp: np.ndarray,
    one_minus_beta1: np.float32, beta2: np.float32, one_minus_beta2: np.float32, step_size: np.float32,
    eps: np.float32, decay: np.float32, threads: int,
) -> None:  # fmt: skip
    """One AdamW step of a flat bf16 tensor in place; the fp32 scalars as the slice path computes them."""
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    numba.set_num_threads(max(1, min(threads, most)))
    _step(weight, grad, avg, avg_sq, comp, one_minus_beta1, beta2, one_minus_beta2, step_size, eps, decay)
