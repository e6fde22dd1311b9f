"""CPU backend: NumPy arrays, BLAS GEMMs through `numpy.matmul`, and the textbook loops as numba kernels.

Each kernel below is the plain loop of its formula, compiled by numba (`cache=True`: once, then from disk). The
outer loop runs in parallel (`prange`) over rows, channels or planes that no other iteration writes: no atomics,
and the result does not depend on the thread count. These are the textbook that `minicnn/fast/` is tested against.

Layouts (shared with the CUDA kernels of kernels.cu):
- x: (N, C, H, W); cols: (C*KH*KW, N*OH*OW), row (c*KH + i)*KW + j, column (n*OH + y)*OW + xo, so that the
  convolution is one GEMM, W2 @ cols, with W2 = w.reshape(O, C*KH*KW).
- max-pool index: position h*W + w of each window's first maximum inside the input plane (int32).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .shapes import out_size

name = "cpu"
xp = np


# ---- convolution: im2col and its adjoint col2im ---------------------------------------------------------------
@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, cols):
    """cols[(c*KH + i)*KW + j, (n*OH + y)*OW + xo] = x[n, c, y*SH - PH + i, xo*SW - PW + j], or 0 where that
    pixel lies in the padding. x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW); one row of cols per iteration."""
    n_, c_, h_, w_ = x.shape
    oh, ow = (h_ + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
    for row in prange(c_ * kh * kw):
        c, i, j = row // (kh * kw), row // kw % kh, row % kw
        for n in range(n_):
            for y in range(oh):
                h = y * sh - ph + i
                for xo in range(ow):
                    w = xo * sw - pw + j
                    inside = 0 <= h < h_ and 0 <= w < w_
                    cols[row, (n * oh + y) * ow + xo] = x[n, c, h, w] if inside else 0


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, ph, pw, dx):
    """The adjoint of im2col: dx[n, c, h, w] = the sum of every entry of cols that im2col copied from x[n, c, h, w]
    (overlapping windows add up; padding entries are dropped). cols: (C*KH*KW, N*OH*OW) -> dx: (N, C, H, W).
    One channel per iteration, its taps added in (i, j) order."""
    n_, c_, h_, w_ = dx.shape
    oh, ow = (h_ + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
    for c in prange(c_):
        dx[:, c] = 0
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                for n in range(n_):
                    for y in range(oh):
                        h = y * sh - ph + i
                        for xo in range(ow):
                            w = xo * sw - pw + j
                            if 0 <= h < h_ and 0 <= w < w_:
                                dx[n, c, h, w] += cols[row, (n * oh + y) * ow + xo]


def im2col(x: np.ndarray, kernel, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW), written into `out` when it is given."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    shape = (c * kh * kw, n * out_size(h, kh, sh, ph) * out_size(w, kw, sw, pw))
    cols = _output(out, shape, x.dtype, "im2col")
    _im2col(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, cols)
    return cols


def col2im(cols: np.ndarray, x_shape, kernel, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), written into `out` when it is given."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    dx = _output(out, tuple(x_shape), cols.dtype, "col2im")
    _col2im(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, dx)
    return dx


# ---- pooling: the window loops ---------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _max_pool_fwd(x, kh, kw, sh, sw, ph, pw, out, idx):
    """out[n, c, y, xo] = the largest x[n, c, h, w] in the window (rows y*SH - PH .. + KH, columns xo*SW - PW ..
    + KW), idx = h*W + w of its first maximum (row-major, strict '>'). Padding is -inf, so it never wins: the scan
    starts at the window's first pixel inside the image (a NaN wins only there: every comparison with it fails)."""
    n_, c_, h_, w_ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for nc in prange(n_ * c_):
        n, c = nc // c_, nc % c_
        for y in range(oh):
            h0, h1 = max(y * sh - ph, 0), min(y * sh - ph + kh, h_)
            for xo in range(ow):
                w0, w1 = max(xo * sw - pw, 0), min(xo * sw - pw + kw, w_)
                best, at = x[n, c, h0, w0], h0 * w_ + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        if x[n, c, h, w] > best:
                            best, at = x[n, c, h, w], h * w_ + w
                out[n, c, y, xo] = best
                idx[n, c, y, xo] = at


@njit(parallel=True, cache=True)
def _max_pool_bwd(gy, idx, gx):
    """gx[n, c] = 0, then gx[n, c].flat[idx[n, c, y, xo]] += gy[n, c, y, xo] for every window: the gradient goes
    to each window's first maximum; overlapping windows add up. One plane per iteration."""
    planes, h_, w_ = gx.shape[0] * gx.shape[1], gx.shape[2], gx.shape[3]
    outputs = gy.shape[2] * gy.shape[3]
    g, at = gy.reshape(planes, outputs), idx.reshape(planes, outputs)  # output q = y*OW + xo of plane p
    dst = gx.reshape(planes, h_ * w_)  # pixel h*W + w of plane p, as idx counts
    for p in prange(planes):
        dst[p] = 0
        for q in range(outputs):
            dst[p, at[p, q]] += g[p, q]


@njit(parallel=True, cache=True)
def _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, out):
    """out[n, c, y, xo] = (the sum of the window's pixels inside the image) / (KH*KW): padding counts as zeros in
    the denominator (MXNet's count_include_pad)."""
    n_, c_, h_, w_ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    inv_area = 1.0 / (kh * kw)
    for nc in prange(n_ * c_):
        n, c = nc // c_, nc % c_
        for y in range(oh):
            for xo in range(ow):
                acc = 0.0
                for h in range(max(y * sh - ph, 0), min(y * sh - ph + kh, h_)):
                    for w in range(max(xo * sw - pw, 0), min(xo * sw - pw + kw, w_)):
                        acc += x[n, c, h, w]
                out[n, c, y, xo] = acc * inv_area


@njit(parallel=True, cache=True)
def _avg_pool_bwd(gy, kh, kw, sh, sw, ph, pw, gx):
    """gx[n, c, h, w] = the sum of gy / (KH*KW) over the windows that cover pixel (h, w): the adjoint of the
    average. One plane per iteration."""
    n_, c_, h_, w_ = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    inv_area = 1.0 / (kh * kw)
    for nc in prange(n_ * c_):
        n, c = nc // c_, nc % c_
        gx[n, c] = 0
        for y in range(oh):
            for xo in range(ow):
                g = gy[n, c, y, xo] * inv_area
                for h in range(max(y * sh - ph, 0), min(y * sh - ph + kh, h_)):
                    for w in range(max(xo * sw - pw, 0), min(xo * sw - pw + kw, w_)):
                        gx[n, c, h, w] += g


def max_pool_forward(x: np.ndarray, kernel, stride, pad) -> tuple[np.ndarray, np.ndarray]:
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), idx: int32 position of each window's first maximum)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if ph >= kh or pw >= kw:  # a window could lie wholly in the padding: it has no maximum (MXNet's rule too)
        raise ValueError(f"max_pool_forward: padding {tuple(pad)} must be smaller than the window {tuple(kernel)}")
    n, c, h, w = x.shape
    shape = (n, c, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))
    y, idx = np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.int32)
    _max_pool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, y, idx)
    return y, idx


def max_pool_backward(gy: np.ndarray, idx: np.ndarray, x_shape, kernel=None, stride=None, pad=None) -> np.ndarray:
    """Send each window's gradient to its saved first maximum; overlapping windows add up.

    The CPU scatters through idx plane by plane and needs no window geometry; the GPU backend gathers (each pixel
    reads the windows covering it, deterministic without atomics) and does, so the ops always pass it.
    """
    gx = np.empty(x_shape, dtype=gy.dtype)
    _max_pool_bwd(np.ascontiguousarray(gy), np.ascontiguousarray(idx), gx)
    return gx


def avg_pool_forward(x: np.ndarray, kernel, stride, pad) -> np.ndarray:
    """y = (sum of the window's real pixels) / (KH*KW): padding counts in the denominator."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    y = np.empty((n, c, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)), dtype=x.dtype)
    _avg_pool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, y)
    return y


def avg_pool_backward(gy: np.ndarray, x_shape, kernel, stride, pad) -> np.ndarray:
    """Each real pixel of a window receives gy / (KH*KW)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    gx = np.empty(x_shape, dtype=gy.dtype)
    _avg_pool_bwd(np.ascontiguousarray(gy), kh, kw, sh, sw, ph, pw, gx)
    return gx


# ---- the rest of the interface ------------------------------------------------------------------------------------
def _output(out, shape, dtype, what: str) -> np.ndarray:
    """A new array, or `out` when it is a C-contiguous array of exactly that shape and dtype (a strided view would
    not receive what the kernel writes)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{what}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}")
    return out


def dropout_mask(shape, rate: float, dtype, rng: np.random.Generator) -> np.ndarray:
    """Inverted-dropout mask: 0 with probability `rate`, 1/(1-rate) otherwise."""
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - rate), dtype=dtype)


def check_labels(idx: np.ndarray, num_classes: int, where: str) -> None:
    """Labels must index a class: NumPy would wrap a negative one around silently. (Reading min and max is free
    here; the GPU backend skips this check, which would make the host wait for the GPU every batch.)"""
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(
            f"{where}: labels must lie in [0, {num_classes - 1}] for {num_classes} classes, "
            f"got values from {int(idx.min())} to {int(idx.max())}"
        )


def asarray(a, dtype=None) -> np.ndarray:
    """Host data (NumPy, lists, CuPy) -> a NumPy array on this device."""
    if hasattr(a, "get"):  # a CuPy array: copy it back to the host
        a = a.get()
    return np.asarray(a, dtype=dtype)


def to_numpy(a: np.ndarray) -> np.ndarray:
    return a


def synchronize() -> None:
    """CPU work is finished when the call returns."""
