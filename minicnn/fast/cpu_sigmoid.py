"""The sigmoid y = 1 / (1 + e^-x) for float32 arrays, with an exp that LLVM can vectorise.

NumPy's float32 exp, and numba's (the C library's, one element at a time), cost several times a pass over memory
(docs/fast-paths.md). Written out as arithmetic, the exp below runs in the vector lanes, so a sigmoid costs about
what a pass over memory does, and it can be fused into a kernel's last pass (the plane convolution's). The
textbook sigmoid is the formula in `ops/activation.py`; the tests hold this one to it.

    e^t = 2^k * e^r      with k = round(t / ln 2), r = t - k ln 2 in [-ln2/2, ln2/2]
    e^r = 1 + r + r^2/2! + ... + r^7/7!      (Taylor; the first term left out, r^8/8!, is below 6e-9 for
                                               |r| <= 0.347, a tenth of float32's spacing at 1)
    2^k is built from its bits: the biased exponent k + 127 shifted into place.

k ln 2 is subtracted in two parts (ln 2 = LN2_HI + LN2_LO, LN2_HI with few significant bits so that k * LN2_HI is
exact for |k| <= 128), so r keeps its low bits. The result is within 4 units in the last place (and equal in more
than 9 cases out of 10) of the float32 formula computed with a correctly rounded exp, as close as NumPy's float32
formula is (tests/test_kernels.py).

The edges give what the formula gives: t = -x is clamped to [-86, 88.8]. Above ln(FLT_MAX) = 88.72, e^t is inf
and y = 0 (the formula's limit, as in MXNet); below -86, 1 + e^t rounds to 1 as it does for every t < -17, so
clamping there changes nothing and keeps 2^k a normal number. NaN stays NaN; +-inf give 1 and 0.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # 355/512: 9 significant bits
_LN2_LO = _F(0.6931471805599453 - 0.693359375)
_T_LO, _T_HI = _F(-86.0), _F(88.8)
# 1/n! for n = 7 down to 2, evaluated by Horner's rule
_C7, _C6, _C5, _C4, _C3, _C2 = (_F(1 / f) for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0))
_ONE, _HALF = _F(1), _F(0.5)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 `bits` (a reinterpretation, no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@njit(inline="always")
def _sigmoid(x):
    # one float32 element; every constant is float32 so that nothing is promoted to float64
    t = -x
    t = _T_LO if t < _T_LO else t  # a NaN fails both tests and stays NaN
    t = _T_HI if t > _T_HI else t
    k = np.floor(t * _LOG2E + _HALF)
    r = (t - k * _LN2_HI) - k * _LN2_LO
    p = ((((((_C7 * r + _C6) * r + _C5) * r + _C4) * r + _C3) * r + _C2) * r + _ONE) * r + _ONE
    # 2^k as 2 * 2^(k-1): k reaches 128 at the top of the range, one past the largest exponent; 2 * 2^127 * e^r
    # then overflows to inf exactly where e^t does. k of a NaN is replaced by 0 (its conversion is undefined).
    kk = np.int32(0) if np.isnan(k) else np.int32(k)
    scale = _float32_from_bits(np.int32((kk + 126) << 23))
    return _ONE / (_ONE + (p + p) * scale)


@njit(inline="always")
def sigmoid_run_(a):
    """a: a 1-D float32 run, in place: a = 1 / (1 + e^-a). Inlined into the kernels that end in a sigmoid, which
    must be compiled with error_model="numpy" (as these are): with numba's default, Python's, every division
    tests for a zero divisor to raise ZeroDivisionError, and that branch keeps LLVM from vectorising the loop.
    fastmath 'contract' lets it fuse the polynomial's multiply-adds."""
    for q in range(a.shape[0]):
        a[q] = _sigmoid(a[q])


_CHUNK = 1 << 14  # elements per parallel iteration


_FLAGS = {"error_model": "numpy", "fastmath": {"contract"}}


@njit(parallel=True, cache=True, **_FLAGS)
def _sigmoid_flat(a):
    n = a.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        sigmoid_run_(a[c * _CHUNK : min(n, (c + 1) * _CHUNK)])


@njit(cache=True, **_FLAGS)
def _sigmoid_flat_serial(a):
    sigmoid_run_(a)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """x = 1 / (1 + e^-x) in place: the vectorised kernel for C-contiguous float32 arrays, the formula with NumPy's
    exp for the others (the textbook's arithmetic, bit for bit). Arrays of a few chunks run on one thread: waking
    the others costs more."""
    if x.dtype == np.float32 and x.flags.c_contiguous:
        flat = x.reshape(-1)
        (_sigmoid_flat if flat.size > 4 * _CHUNK else _sigmoid_flat_serial)(flat)
        return x
    np.negative(x, out=x)
    with np.errstate(over="ignore"):  # e^-x = inf below -88 (float32): 1 / (1 + inf) = 0, the right limit
        np.exp(x, out=x)
    x += 1
    return np.reciprocal(x, out=x)


def sigmoid_after(act: str | None, out: np.ndarray) -> None:
    """The sigmoid, when act is 'sigmoid', in place, as a pass of its own after the kernels that fuse bias and relu
    only. (The chapter's sigmoid layers are LeNet's, whose convolutions run on the plane kernels, which fuse it.)"""
    if act == "sigmoid":
        sigmoid_(out)
