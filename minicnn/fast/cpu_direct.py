"""numba kernels for the direct convolution of layers with few input channels (dispatch.py picks them where
C*KH*KW is small and the output rows are wide: the first layer of a network on grey images, such as VGG's).

With K = C*KH*KW of 9, im2col's cols is 9 times the input and the GEMM has almost nothing to multiply: the layer
is all memory traffic (cols written and read, the GEMM's output re-laid out to NCHW). These kernels read the input
and write NCHW once:

    forward       y[n, o, oy, ox] = act(b[o] + sum over (c, i, j) of w[o, c, i, j] * x[n, c, oy*SH-PH+i, ox-PW+j])
    weight_grad   gw[o, c, i, j] = sum over (n, oy, ox) of g[n, o, oy, ox] * x[n, c, oy*SH-PH+i, ox-PW+j]
    input_grad    gx = the adjoint of forward (without bias and activation) applied to g

Their textbook counterpart is im2col + GEMM (`ops/conv.py`), which the tests compare them with. Each tap adds a
scaled run of an input row onto a row of outputs, contiguous on both sides, so LLVM vectorises it; hence a
horizontal stride of 1 only (strided runs do not vectorise).
Parallel iterations never write the same memory, and every sum runs in a fixed order: the results do not depend
on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..backend.shapes import out_size
from .cpu_common import ACT_CODE, output, tap_columns
from .cpu_sigmoid import sigmoid_after


@njit(inline="always")
def _add_scaled(dst, a, src):
    # dst += a * src. The loop index starts at 0, so numba needs no wraparound test per element, and the runs are
    # slices with unit step, which numba types as contiguous: LLVM vectorises the loop (indexing the rows with
    # ox + offset would not be).
    for k in range(dst.shape[0]):
        dst[k] += a * src[k]


@njit(inline="always")
def _add_product(dst, a, b):
    # dst += a * b, elementwise (as _add_scaled)
    for k in range(dst.shape[0]):
        dst[k] += a[k] * b[k]


@njit(inline="always")
def _tap_run(row, j, pw, ow):
    """(lo, hi, run): the output columns [lo, hi) whose tap j lands inside the input row, and the input pixels they
    read, row[lo - PW + j : hi - PW + j] (empty when the tap lies wholly in the padding)."""
    lo, hi = tap_columns(j, row.shape[0], 1, pw, ow)
    return lo, hi, row[lo - pw + j : hi - pw + j]


@njit(parallel=True, cache=True)
def _forward(x, w, b, act, sh, ph, pw, y):
    # One output row (n, oy) of every output channel per parallel iteration: each input row it reads serves all
    # O channels while it is in cache. Sums start at the bias and add the taps in (c, i, j) order.
    n_, c_, h_, _ = x.shape
    o_, _, kh, kw = w.shape
    oh, ow = y.shape[2], y.shape[3]
    for noy in prange(n_ * oh):
        n = noy // oh
        oy = noy % oh
        acc = np.empty((o_, ow), dtype=y.dtype)
        for o in range(o_):
            acc[o, :] = b[o]
        for c in range(c_):
            for i in range(kh):
                hy = oy * sh - ph + i
                for j in range(kw if 0 <= hy < h_ else 0):  # no taps from a row of padding
                    lo, hi, run = _tap_run(x[n, c, hy], j, pw, ow)
                    for o in range(o_):
                        _add_scaled(acc[o, lo:hi], w[o, c, i, j], run)
        for o in range(o_):
            out = y[n, o, oy]
            src = acc[o]
            if act == 1:
                for ox in range(ow):
                    v = src[ox]
                    out[ox] = v if not v <= 0 else 0  # max(v, 0), and a NaN stays NaN (as np.maximum keeps it)
            else:
                out[:] = src


# _weight_grad splits the N*OH output rows of a batch chunk into this many blocks (fewer if there are fewer rows),
# one per parallel iteration, each with its own partial sums; the blocks are added up in order at the end. A fixed
# number, not the thread count, so the result does not depend on the thread count; rows rather than samples, so a
# chunk of one or two samples (VGG-11's first layer: two) still gives every thread work.
_BLOCKS = 16


@njit(parallel=True, cache=True)
def _weight_grad(x, g, sh, ph, pw, gw):
    # Each input run a tap reads is loaded once and multiplied with the gradient rows of all O channels; the
    # products go into rows of partial sums, one per output column (elementwise, so vectorised; a single running sum
    # would not be), each over one block's output rows, which are added up in float64 at the end. The partial sums
    # are in the data's dtype: float64 ones would halve the vector width.
    n_, c_, h_, _ = x.shape
    o_, _, kh, kw = gw.shape
    oh, ow = g.shape[2], g.shape[3]
    rows = n_ * oh
    blocks = max(1, min(rows, _BLOCKS))
    part = np.zeros((blocks, o_, c_ * kh * kw, ow), dtype=g.dtype)
    for blk in prange(blocks):
        acc = part[blk]
        for r in range(blk * rows // blocks, (blk + 1) * rows // blocks):
            n, oy = r // oh, r % oh
            for tap in range(c_ * kh * kw):  # (c, i, j)
                c, i, j = tap // (kh * kw), tap // kw % kh, tap % kw
                hy = oy * sh - ph + i
                if 0 <= hy < h_:
                    lo, hi, run = _tap_run(x[n, c, hy], j, pw, ow)
                    for o in range(o_):
                        _add_product(acc[o, tap, lo:hi], g[n, o, oy, lo:hi], run)
    flat = gw.reshape(o_, c_ * kh * kw)
    for o in prange(o_):
        for tap in range(c_ * kh * kw):
            total = 0.0
            for blk in range(blocks):
                sums = part[blk, o, tap]
                for ox in range(ow):
                    total += sums[ox]
            flat[o, tap] = total


@njit(parallel=True, cache=True)
def _input_grad(g, w, sh, ph, pw, gx):
    # The adjoint of _forward as a scatter: one input plane (n, c) per parallel iteration, so no two iterations
    # write the same pixel; every output adds w * g back onto the pixels its taps read, in (o, oy, i, j) order.
    n_, c_, h_, _ = gx.shape
    o_, _, kh, kw = w.shape
    oh, ow = g.shape[2], g.shape[3]
    for nc in prange(n_ * c_):
        n = nc // c_
        c = nc % c_
        plane = gx[n, c]
        plane[:, :] = 0
        for o in range(o_):
            for oy in range(oh):
                grow = g[n, o, oy]
                for i in range(kh):
                    hy = oy * sh - ph + i
                    for j in range(kw if 0 <= hy < h_ else 0):  # no taps onto a row of padding
                        lo, hi, pixels = _tap_run(plane[hy], j, pw, ow)
                        _add_scaled(pixels, w[o, c, i, j], grow[lo:hi])


def _check_stride(stride, what: str):
    if stride[1] != 1:
        raise ValueError(f"{what}: the direct kernels take a horizontal stride of 1 only, got stride {tuple(stride)}")


def _check_channels(x, w, what: str):
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"{what}: x {x.shape} and w {w.shape} must be (N, C, H, W) and (O, C, KH, KW)")


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, act: str | None, stride, pad, out=None) -> np.ndarray:
    """x: (N, C, H, W), w: (O, C, KH, KW), b: (O,) or None -> out (N, O, OH, OW) = act(conv(x, w) + b); act None,
    'relu' or 'sigmoid' (the sigmoid applied by NumPy afterwards, as `cpu.bias_act` does). Stride (SH, 1)."""
    _check_stride(stride, "direct conv forward")
    _check_channels(x, w, "direct conv forward")
    (n, _, h, wd), (o, _, kh, kw), (sh, _), (ph, pw) = x.shape, w.shape, stride, pad
    y = output(out, (n, o, out_size(h, kh, sh, ph), out_size(wd, kw, 1, pw)), x.dtype, "direct conv forward")
    bias = np.zeros(o, dtype=x.dtype) if b is None else b
    code = ACT_CODE["relu" if act == "relu" else None]
    _forward(np.ascontiguousarray(x), np.ascontiguousarray(w, dtype=x.dtype), bias, code, sh, ph, pw, y)
    sigmoid_after(act, y)
    return y


def weight_grad(x: np.ndarray, g: np.ndarray, kernel, stride, pad) -> np.ndarray:
    """x: (N, C, H, W), g: (N, O, OH, OW), the pre-activation gradient -> gw: (O, C, KH, KW)."""
    _check_stride(stride, "direct conv weight gradient")
    (n, _, h, w_), (kh, kw), (sh, _), (ph, pw) = x.shape, kernel, stride, pad
    if g.ndim != 4 or g.shape[0] != n or g.shape[2:] != (out_size(h, kh, sh, ph), out_size(w_, kw, 1, pw)):
        raise ValueError(f"direct conv weight gradient: g {g.shape} is not the output of x {x.shape} with {kernel}")
    gw = np.empty((g.shape[1], x.shape[1], *kernel), dtype=g.dtype)
    _weight_grad(np.ascontiguousarray(x), np.ascontiguousarray(g), stride[0], *pad, gw)
    return gw


def input_grad(g: np.ndarray, w: np.ndarray, x_shape, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """g: (N, O, OH, OW), w: (O, C, KH, KW) -> gx: x_shape = (N, C, H, W), into `out` when given."""
    _check_stride(stride, "direct conv input gradient")
    (n, _, oh, ow), (_, c, kh, kw), (sh, _), (ph, pw) = g.shape, w.shape, stride, pad
    x_shape = tuple(x_shape)
    if x_shape[:2] != (n, c) or (out_size(x_shape[2], kh, sh, ph), out_size(x_shape[3], kw, 1, pw)) != (oh, ow):
        raise ValueError(
            f"direct conv input gradient: input shape {x_shape} does not give g {g.shape} with w {w.shape}"
        )
    gx = output(out, x_shape, g.dtype, "direct conv input gradient")
    _input_grad(np.ascontiguousarray(g), np.ascontiguousarray(w, dtype=g.dtype), sh, ph, pw, gx)
    return gx
