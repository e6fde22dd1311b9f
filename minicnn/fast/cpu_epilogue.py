"""The convolution's epilogues in one pass each (CPU, numba): what the textbook convolution does in separate steps.

    bias_act:  y2, the GEMM's output           ->  out (N, O, P) = act(y2 + b), laid out as NCHW
    act_grad:  y, gy (N, O, P)                 ->  out = gy * act'(y), laid out for the GEMMs;
               gb (O,) += the sum of out over all but its channel axis (the bias gradient, summed in float64)

The GEMMs' layout is (O, N*P) on the fused im2col and Winograd paths and (N, O, P), NCHW itself, on the pointwise
path (1x1 convolutions): there bias_act may run in place (y2 is out) and act_grad changes no layout. The textbook
convolution (`ops/conv.py`) is the definition the tests hold these to.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu_common import ACT_CODE, output
from .cpu_sigmoid import sigmoid_after


@njit(parallel=True, cache=True)
def _bias_act(src, nchw, in_place, b, act, y):
    # y[n, o, p] = act(y2 + b[o]) for act 0 (none) or 1 (relu); one (n, o) row per parallel iteration. src is the
    # GEMM's output as (O, N, P) (im2col's GEMM: the layout change happens here) or as (N, O, P) when `nchw` (the
    # pointwise GEMM's, possibly y itself: each element is read before it is written).
    # In place (src is y), each row is read through dst itself: through two views of the same memory, LLVM's
    # run-time overlap test sends the loop to its scalar version.
    m_, o_, p_ = y.shape
    for no in prange(m_ * o_):
        n = no // o_
        o = no % o_
        dst = y[n, o]
        if in_place:
            _bias_act_row(dst, dst, b[o], act)
        else:
            _bias_act_row(src[n, o] if nchw else src[o, n], dst, b[o], act)


@njit(inline="always")
def _bias_act_row(row, dst, bo, act):
    if act == 1:
        for q in range(dst.size):
            v = row[q] + bo
            dst[q] = v if not v <= 0 else 0  # max(v, 0), and a NaN stays NaN (as np.maximum keeps it)
    else:
        for q in range(dst.size):
            dst[q] = row[q] + bo


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _act_grad(y, gy, act, g, nchw, gb):
    # g = gy * act'(y) written as (O, N, P), the GEMMs' layout, or as (N, O, P) when `nchw`; gb[o] += the sum of
    # g over n and p. One o per parallel iteration, so the bias sum needs no atomics; it is accumulated in float64
    # (a float32 running sum over N*P terms would lose digits that NumPy's pairwise sum keeps). `reassoc` lets LLVM
    # split that sum into vector lanes (a fixed order for a given row length, whatever the thread count); one
    # running float64 sum is a chain of dependent adds, several times slower.
    m_, o_, p_ = y.shape
    one = y.dtype.type(1)
    for o in prange(o_):
        acc = 0.0
        for n in range(m_):
            src_y = y[n, o]
            src_g = gy[n, o]
            dst = g[n, o] if nchw else g[o, n]
            for q in range(p_):
                if act == 1:
                    v = src_g[q] * (one if src_y[q] > 0 else 0)
                elif act == 2:
                    v = (one - src_y[q]) * src_y[q] * src_g[q]
                else:
                    v = src_g[q]
                dst[q] = v
                acc += v
        gb[o] += acc


def bias_act(y2: np.ndarray, b: np.ndarray | None, act: str | None, out: np.ndarray) -> np.ndarray:
    """out (N, O, P) = act(y2 + b) with y2: the GEMM's output, (O, N*P) (im2col's layout) or (N, O, P) (the
    pointwise path's, which may be out itself); b: (O,) or None; act: None, 'relu', 'sigmoid' (the sigmoid
    follows as a pass of its own, sigmoid_after)."""
    m, o, p = out.shape
    bias = np.zeros(o, dtype=y2.dtype) if b is None else b
    nchw = y2.ndim == 3
    if y2.shape != ((m, o, p) if nchw else (o, m * p)):
        raise ValueError(f"bias_act: y2 {y2.shape} does not fit out {out.shape}: expected (O, N*P) or (N, O, P)")
    src = y2 if nchw else y2.reshape(o, m, p)
    out = output(out, out.shape, y2.dtype, "bias_act")
    in_place = nchw and src.__array_interface__["data"][0] == out.__array_interface__["data"][0]
    in_place = in_place and src.strides == out.strides
    if not in_place and np.may_share_memory(src, out):  # overlapping in another layout: rows would be overwritten
        src = src.copy()
    _bias_act(src, nchw, in_place, bias, ACT_CODE["relu" if act == "relu" else None], out)
    sigmoid_after(act, out)
    return out


def act_grad(y: np.ndarray, gy: np.ndarray, act: str | None, out: np.ndarray, gb: np.ndarray | None) -> np.ndarray:
    """out = gy * act'(y) with y, gy: (N, O, P); out is (O, N*P), the layout im2col's GEMMs want, or (N, O, P),
    the pointwise path's. Adds the sums over (n, p) to gb (O,) when given."""
    m, o, p = y.shape
    acc = np.zeros(o, dtype=np.float64)
    nchw = out is not None and out.ndim == 3
    shape = (m, o, p) if nchw else (o, m * p)
    out = output(out, shape, out.dtype if out is not None else y.dtype, "act_grad")
    # y and gy in out's dtype (a gradient may come in another float type; the kernel wants one type throughout)
    y, gy = (np.ascontiguousarray(a, dtype=out.dtype) for a in (y, gy))
    _act_grad(y, gy, ACT_CODE[act], out if nchw else out.reshape(o, m, p), nchw, acc)
    if gb is not None:
        gb += acc.astype(gb.dtype)
    return out
