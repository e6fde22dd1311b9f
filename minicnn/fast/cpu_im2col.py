"""The fast im2col and col2im (CPU, numba): the textbook ones (`backend/cpu.py`) with their loops made to stream.

Same layout and results as the textbook kernels, bit for bit (the tests compare them):
    cols: (C*KH*KW, N*OH*OW), cols[(c*KH + i)*KW + j, (n*OH + y)*OW + xo] = x[n, c, y*SH - PH + i, xo*SW - PW + j]

- The general kernels copy each window row's inside part as one slice (a vectorised loop), a whole plane at once
  where a tap covers whole rows (every tap of a 1x1 convolution), and, for a horizontal stride narrower than the
  window, build row j of cols by moving row j - SW one column left (AlexNet's 11x11 stride-4 layer: 4 strided
  gathers of 11).
- Stride-1 windows larger than 1x1 first copy each plane into a zero-framed buffer, so every window row is a
  plain copy (im2col) or add (col2im) of OW pixels with no clipping (`dispatch.im2col_variant`).
docs/fast-paths.md has the measurements behind both.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..backend.shapes import out_size
from . import dispatch
from .cpu_common import output, tap_columns


@njit(cache=True)
def _whole_plane_run(i, j, h_, w_, sh, sw, ph, pw, oh, ow) -> bool:
    """Whether tap (i, j) reads, for each sample, one contiguous run of OH*OW pixels of the input plane (rows
    i-PH .. i-PH+OH-1, full width): stride 1, no horizontal padding or cropping for this tap, no window row in
    the vertical padding. True for every tap of a 1x1 convolution and for the centre tap of a 3x3 one."""
    return sh == 1 and sw == 1 and ow == w_ and j == pw and 0 <= i - ph and i - ph + oh <= h_


@njit(inline="always")
def _im2col_row(x, c, i, j, sh, sw, ph, pw, oh, ow, out):
    # Row (c, i, j) of cols, from left to right, sample after sample. With stride 1 the inside of each output row
    # is one slice copy (a vectorised loop); when the tap covers whole rows of the plane, a sample's part of the
    # row is a single copy.
    n_, c_, h_, w_ = x.shape
    p_ = oh * ow
    if _whole_plane_run(i, j, h_, w_, sh, sw, ph, pw, oh, ow):
        flat = x.reshape(-1)
        for n in range(n_):
            start = (n * c_ + c) * h_ * w_ + (i - ph) * w_
            out[n * p_ : (n + 1) * p_] = flat[start : start + p_]
        return
    x_lo, x_hi = tap_columns(j, w_, sw, pw, ow)
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
            elif x_hi > x_lo:
                out[base + x_lo : base + x_hi] = plane[hy, x_lo * sw - pw + j : (x_hi - 1) * sw - pw + j + 1 : sw]
            out[base + x_hi : base + ow] = 0


@njit(inline="always")
def _im2col_row_shifted(x, c, i, j, sh, sw, ph, pw, oh, ow, src, out):
    # Row (c, i, j) from row (c, i, j - SW), already written: tap j of output column xo reads the pixel that tap
    # j - SW of column xo + 1 read, so each output row is the earlier one moved left by one column (a contiguous,
    # vectorised copy) plus its last column. Replaces a strided gather.
    n_, _, h_, w_ = x.shape
    p_ = oh * ow
    last = (ow - 1) * sw - pw + j  # the input column the last output column's tap reads
    for n in range(n_):
        for y in range(oh):
            base = n * p_ + y * ow
            out[base : base + ow - 1] = src[base + 1 : base + ow]
            hy = y * sh - ph + i
            out[base + ow - 1] = x[n, c, hy, last] if 0 <= hy < h_ and 0 <= last < w_ else 0


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    # One parallel iteration per row (c, i, j) of cols, written from left to right, so every thread streams
    # through memory. With a horizontal stride SW smaller than the window, one iteration per (c, i) instead: rows
    # j >= SW are the row j - SW shifted by a column (_im2col_row_shifted), so only SW of the KW rows need the
    # strided gather.
    c_ = x.shape[1]
    if sw > 1 and kw > sw:
        for ci in prange(c_ * kh):
            c, i = ci // kh, ci % kh
            for j in range(kw):
                row = ci * kw + j
                if j < sw:
                    _im2col_row(x, c, i, j, sh, sw, ph, pw, oh, ow, cols[row])
                else:
                    _im2col_row_shifted(x, c, i, j, sh, sw, ph, pw, oh, ow, cols[row - sw], cols[row])
    else:
        for row in prange(c_ * kh * kw):
            _im2col_row(x, row // (kh * kw), row // kw % kh, row % kw, sh, sw, ph, pw, oh, ow, cols[row])


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    # The adjoint of _im2col: every column entry is added back onto the pixel it was copied from. Each parallel
    # iteration owns one channel c and reads its KH*KW rows of cols from left to right (streaming, as _im2col
    # writes them): no races, and a fixed order of additions, the textbook kernel's (i, j) order per pixel.
    n_, c_, h_, w_ = dx.shape
    p_ = oh * ow
    m = cols.shape[1]
    src_all = cols.reshape(-1)
    dst_all = dx.reshape(-1)
    hw = h_ * w_
    for c in prange(c_):
        for n in range(n_):
            dst_all[(n * c_ + c) * hw : (n * c_ + c + 1) * hw] = 0
        for i in range(kh):
            for j in range(kw):
                x_lo, x_hi = tap_columns(j, w_, sw, pw, ow)
                row = ((c * kh + i) * kw + j) * m
                if _whole_plane_run(i, j, h_, w_, sh, sw, ph, pw, oh, ow):
                    for n in range(n_):
                        dst = (n * c_ + c) * hw + (i - ph) * w_
                        dst_all[dst : dst + p_] += src_all[row + n * p_ : row + (n + 1) * p_]
                    continue
                for n in range(n_):
                    plane = (n * c_ + c) * hw - pw + j  # + hy*W + xo*SW: the pixel under column (n, y, xo)
                    for y in range(oh):
                        hy = y * sh - ph + i
                        if hy < 0 or hy >= h_:
                            continue
                        src = row + n * p_ + y * ow
                        dst = plane + hy * w_
                        if sw == 1:
                            for xo in range(x_lo, x_hi):
                                dst_all[dst + xo] += src_all[src + xo]
                        else:
                            for xo in range(x_lo, x_hi):
                                dst_all[dst + xo * sw] += src_all[src + xo]


# Stride-1 windows larger than 1x1: each plane is first copied into a zero-framed buffer (HP x WP, the padding
# written once), so every window row becomes a plain copy (im2col) or add (col2im) of OW pixels, with no clipping
# at the edges. The loops index with unsigned integers, which lets LLVM vectorise them.
@njit(parallel=True, cache=True)
def _im2col_framed(x, kh, kw, ph, pw, oh, ow, cols):
    # One parallel iteration per (c, i): it frames channel c of each sample in turn and writes rows (c, i, j) for
    # every j (KH copies of each plane, against KH*KW rows written from it: the copy is the small part).
    n_, c_, h_, w_ = x.shape
    wp = ow + kw - 1
    p_ = oh * ow
    flat = cols.reshape(-1)
    m = n_ * p_
    for ci in prange(c_ * kh):
        c, i = ci // kh, ci % kh
        buf = np.zeros((oh + kh - 1) * wp, dtype=x.dtype)
        for n in range(n_):
            for r in range(h_):
                for q in range(w_):
                    buf[np.uint64((r + ph) * wp + pw + q)] = x[n, c, r, q]
            for j in range(kw):
                dst = (ci * kw + j) * m + n * p_
                for y in range(oh):
                    src, d = (y + i) * wp + j, dst + y * ow
                    for q in range(ow):
                        flat[np.uint64(d + q)] = buf[np.uint64(src + q)]


@njit(parallel=True, cache=True)
def _col2im_framed(cols, kh, kw, ph, pw, oh, ow, dx):
    # One parallel iteration per channel (no two write the same pixel): for each sample, its KH*KW rows are added
    # onto a zeroed framed plane, tap after tap, then the plane's inside is copied out. Every pixel receives its
    # taps in the order (i, j) of the general kernel, so the two give the same sums, bit for bit.
    n_, c_, h_, w_ = dx.shape
    wp = ow + kw - 1
    p_ = oh * ow
    flat = cols.reshape(-1)
    m = n_ * p_
    for c in prange(c_):
        buf = np.empty((oh + kh - 1) * wp, dtype=dx.dtype)
        for n in range(n_):
            buf[:] = 0
            for i in range(kh):
                for j in range(kw):
                    src = ((c * kh + i) * kw + j) * m + n * p_
                    for y in range(oh):
                        d, s = (y + i) * wp + j, src + y * ow
                        for q in range(ow):
                            buf[np.uint64(d + q)] += flat[np.uint64(s + q)]
            for r in range(h_):
                for q in range(w_):
                    dx[n, c, r, q] = buf[np.uint64((r + ph) * wp + pw + q)]


def im2col(x: np.ndarray, kernel, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW), as `backend.cpu.im2col`; `out`: a buffer to write cols into
    (the fast convolution reuses one for all its batch chunks)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    cols = output(out, (c * kh * kw, n * oh * ow), x.dtype, "im2col")
    if dispatch.im2col_variant(kernel, stride) == "framed":
        _im2col_framed(np.ascontiguousarray(x), kh, kw, ph, pw, oh, ow, cols)
    else:
        _im2col(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, oh, ow, cols)
    return cols


def col2im(cols: np.ndarray, x_shape, kernel, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), as `backend.cpu.col2im`; `out`: where to
    write dx (e.g. the batch chunk's slice of the whole gradient)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    dx = output(out, tuple(x_shape), cols.dtype, "col2im")
    if dispatch.im2col_variant(kernel, stride) == "framed":
        _col2im_framed(np.ascontiguousarray(cols), kh, kw, ph, pw, oh, ow, dx)
    else:
        _col2im(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, oh, ow, dx)
    return dx
