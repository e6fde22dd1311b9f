"""CPU backend: NumPy arrays, BLAS GEMM through `numpy.matmul`, numba kernels for the window ops.

The pooling kernels and col2im run one (sample, channel) plane per parallel iteration (`prange` over N*C);
im2col runs one row of its output per iteration. Iterations never write to the same memory: no atomics, and
the result does not depend on the thread count.
Kernels are compiled on first use for each dtype (float32, float64) and cached on disk (`cache=True`).

Layout conventions (shared with the CUDA kernels, see `shapes.py`):
- x: (N, C, H, W); cols: (C*KH*KW, N*OH*OW), row index (c*KH + i)*KW + j, column index (n*OH + oh)*OW + ow.
  One 2-D matrix per batch chunk, so the convolution is one large GEMM (W2 @ cols) rather than N small ones,
  and the weight gradient (gy2 @ cols^T) sums over the batch inside the GEMM.
- max-pool index: position h*W + w of the first maximum inside the input plane (int32).
"""

from __future__ import annotations

import ctypes
import os
import sys

import numba
import numpy as np
from numba import njit, prange

from .shapes import out_size

# numba's OpenMP layer spins against BLAS's own threads on small machines (measured: max-pool forward 8.6 ms with
# 'omp' vs 2.5 ms with 'workqueue' on 2 cores); the simple workqueue layer is enough for plane-parallel loops.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def _reuse_freed_memory() -> None:
    """Let glibc hand freed arrays of up to 32 MiB back to the next allocation instead of returning them to the OS.

    Every training step allocates and frees the same large arrays (im2col buffers, activations). By default glibc
    maps each one fresh from the OS and unmaps it on free, so every step pays a page fault per 4 KiB touched: a
    LeNet step at batch 256 took 47 ms instead of 37 ms. Larger arrays (VGG's activations) are still mapped
    and unmapped, so peak memory does not grow. Settings already given in the environment win.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    libc.mallopt(m_mmap_threshold, 32 << 20)  # the largest value glibc accepts on 64-bit
    libc.mallopt(m_trim_threshold, 256 << 20)


_reuse_freed_memory()

name = "cpu"
xp = np


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    # One parallel iteration per row (c, i, j) of cols: it writes its row from left to right, sample after
    # sample, so every thread streams through memory (a plane-per-iteration order wrote C*KH*KW short runs far
    # apart and was 2.5x slower on LeNet's conv1). With stride 1 the interior of each output row is one slice
    # copy, which numba turns into a vectorised loop (2.5-3.7x faster than indexing element by element).
    n_, c_, h_, w_ = x.shape
    p_ = oh * ow
    for row in prange(c_ * kh * kw):
        c = row // (kh * kw)
        i = row // kw % kh
        j = row % kw
        # output columns xo whose tap j lands inside the image: 0 <= xo*sw - pw + j < w_
        x_lo = min(ow, max(0, (pw - j + sw - 1) // sw))
        x_hi = max(x_lo, min(ow, (w_ - 1 + pw - j) // sw + 1))
        out = cols[row]
        for n in range(n_):
            plane = x[n, c]
            for y in range(oh):
                hy = y * sh - ph + i
                base = n * p_ + y * ow
                if hy < 0 or hy >= h_:  # the window row lies in the padding
                    out[base : base + ow] = 0
                    continue
                out[base : base + x_lo] = 0
                if sw == 1:
                    out[base + x_lo : base + x_hi] = plane[hy, x_lo - pw + j : x_hi - pw + j]
                else:
                    for xo in range(x_lo, x_hi):
                        out[base + xo] = plane[hy, xo * sw - pw + j]
                out[base + x_hi : base + ow] = 0


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    # The adjoint of _im2col: every column entry is added back onto the pixel it was copied from.
    # Each parallel iteration owns one (n, c) plane of dx, so the scatter has no races, and the order of the
    # additions is fixed, so the result is deterministic. (The CUDA kernel gathers instead: one thread per
    # pixel summing the windows that cover it, since thousands of threads cannot share a plane.)
    n_, c_, h_, w_ = dx.shape
    for nc in prange(n_ * c_):
        n = nc // c_
        c = nc % c_
        for h in range(h_):
            for w in range(w_):
                dx[n, c, h, w] = 0
        for j in range(kw):
            x_lo = min(ow, max(0, (pw - j + sw - 1) // sw))
            x_hi = max(x_lo, min(ow, (w_ - 1 + pw - j) // sw + 1))
            for i in range(kh):
                row = (c * kh + i) * kw + j
                for y in range(oh):
                    hy = y * sh - ph + i
                    if hy < 0 or hy >= h_:
                        continue
                    base = (n * oh + y) * ow
                    for xo in range(x_lo, x_hi):
                        dx[n, c, hy, xo * sw - pw + j] += cols[row, base + xo]


@njit(parallel=True, cache=True)
def _max_pool_fwd(x, kh, kw, sh, sw, ph, pw, out, idx):
    n_, c_, h_, w_ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for nc in prange(n_ * c_):
        n = nc // c_
        c = nc % c_
        for y in range(oh):
            for xo in range(ow):
                best = x[n, c, 0, 0]
                bi = -1
                for i in range(kh):
                    h = y * sh - ph + i
                    if h < 0 or h >= h_:
                        continue  # padding never wins a max
                    for j in range(kw):
                        w = xo * sw - pw + j
                        if w < 0 or w >= w_:
                            continue
                        v = x[n, c, h, w]
                        if bi < 0 or v > best:  # strict '>': ties keep the first maximum
                            best = v
                            bi = h * w_ + w
                out[n, c, y, xo] = best
                idx[n, c, y, xo] = bi


@njit(parallel=True, cache=True)
def _max_pool_bwd(gy, idx, gx):
    n_, c_, h_, w_ = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    for nc in prange(n_ * c_):
        n = nc // c_
        c = nc % c_
        for y in range(oh):
            for xo in range(ow):
                k = idx[n, c, y, xo]
                gx[n, c, k // w_, k % w_] += gy[n, c, y, xo]  # overlapping windows accumulate


@njit(parallel=True, cache=True)
def _avg_pool_fwd(x, kh, kw, sh, sw, ph, pw, out):
    n_, c_, h_, w_ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    inv_area = 1.0 / (kh * kw)  # padding counts in the denominator
    for nc in prange(n_ * c_):
        n = nc // c_
        c = nc % c_
        for y in range(oh):
            for xo in range(ow):
                acc = 0.0
                for i in range(kh):
                    h = y * sh - ph + i
                    if h < 0 or h >= h_:
                        continue
                    for j in range(kw):
                        w = xo * sw - pw + j
                        if 0 <= w < w_:
                            acc += x[n, c, h, w]
                out[n, c, y, xo] = acc * inv_area


@njit(parallel=True, cache=True)
def _avg_pool_bwd(gy, kh, kw, sh, sw, ph, pw, gx):
    n_, c_, h_, w_ = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    inv_area = 1.0 / (kh * kw)
    for nc in prange(n_ * c_):
        n = nc // c_
        c = nc % c_
        for y in range(oh):
            for xo in range(ow):
                g = gy[n, c, y, xo] * inv_area
                for i in range(kh):
                    h = y * sh - ph + i
                    if h < 0 or h >= h_:
                        continue
                    for j in range(kw):
                        w = xo * sw - pw + j
                        if 0 <= w < w_:
                            gx[n, c, h, w] += g


def im2col(x: np.ndarray, kernel, stride, pad) -> np.ndarray:
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW); cols[(c,i,j), (n,y,x)] = x_pad[n, c, y*SH+i, x*SW+j]."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    _im2col(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, oh, ow, cols)
    return cols


def col2im(cols: np.ndarray, x_shape, kernel, stride, pad) -> np.ndarray:
    """Adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    dx = np.empty(x_shape, dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, oh, ow, dx)
    return dx


def max_pool_forward(x: np.ndarray, kernel, stride, pad) -> tuple[np.ndarray, np.ndarray]:
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), idx: int32 position of each window's first maximum)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    shape = (n, c, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))
    y = np.empty(shape, dtype=x.dtype)
    idx = np.empty(shape, dtype=np.int32)
    _max_pool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, y, idx)
    return y, idx


def max_pool_backward(gy: np.ndarray, idx: np.ndarray, x_shape, kernel=None, stride=None, pad=None) -> np.ndarray:
    """Send each window's gradient to its saved first maximum; overlapping windows add up.

    The CPU scatters through idx plane by plane and needs no window geometry; the GPU backend gathers (each pixel
    reads the windows covering it, deterministic without atomics) and does, so the ops always pass it.
    """
    gx = np.zeros(x_shape, dtype=gy.dtype)
    _max_pool_bwd(np.ascontiguousarray(gy), idx, gx)
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
    gx = np.zeros(x_shape, dtype=gy.dtype)
    _avg_pool_bwd(np.ascontiguousarray(gy), kh, kw, sh, sw, ph, pw, gx)
    return gx


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
