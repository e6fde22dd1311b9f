"""CPU backend: NumPy arrays, BLAS GEMM through `numpy.matmul`, numba kernels for the window ops.

The pooling kernels run one (sample, channel) plane (max-pool forward: a chunk of planes) per parallel iteration,
col2im one input channel, im2col one row of its output (or, for a stride narrower than the window, one (channel,
window row) group of rows), the conv epilogues one (sample, channel) row or one output channel.
Iterations never write to the same memory: no atomics, and the result does not depend on the thread count.
Kernels are compiled on first use for each dtype (float32, float64) and memory layout of their arguments (the
transposed GEMM output `bias_act` reads is not C-contiguous), and cached on disk (`cache=True`).

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

from . import cpu_sigmoid, epilogue
from .shapes import out_size

# numba's threads: its OpenMP layer when libgomp is there, else its workqueue. Starting a parallel loop on the
# workqueue costs 50-60 us, and 300 us when its threads slept (they wait on a lock); OpenMP's threads spin a while
# after a loop, which makes the next one start in 6 us. A LeNet step runs some thirty parallel loops and small
# GEMMs: 23-28 ms with OpenMP against 30-34 with the workqueue. But spinning threads take a core from BLAS's
# threads (an early version here, when BLAS spun too, measured a max pool 3x slower), so the spin is cut from
# libgomp's default 300,000 turns to 10,000: the default made GoogLeNet's step 10-25 % slower, 10,000 did not
# (benchmarks/RESULTS.md, session 7). libgomp reads GOMP_SPINCOUNT when numba first loads it, at the first
# parallel loop; values the user set are kept.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # numba wants all three named
    numba.config.THREADING_LAYER = "default"  # the first of the priority list that loads
os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def _reuse_freed_memory() -> None:
    """Let glibc hand freed arrays back to the next allocation instead of returning them to the OS.

    Every training step allocates and frees the same large arrays (im2col buffers, activations, gradients). By
    default glibc maps each one of 128 KiB or more fresh from the OS and unmaps it on free, so every step pays a
    page fault for each page touched, and the kernel zeroes every page it hands out: a LeNet step at batch 256 took
    47 ms instead of 37 ms. So freed memory stays in glibc's heap: no mapping for any size (M_MMAP_MAX = 0; the
    threshold, 32 MiB, the largest glibc accepts, matters only where the user allows mappings again), and the heap
    is given back only above 256 MiB free at its top. With mappings still used above 32 MiB, NiN's 143 MiB
    activations cost 18 ms each in page faults: without them its step took 3.0 s against 3.6, VGG-11's 5.6 against
    6.8, for 190-200 MiB more peak memory on the VGGs (benchmarks/RESULTS.md, session 8). Each setting the
    environment already gives (MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) wins.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for var, param, value in (  # the parameters' numbers are from <malloc.h>
        ("MALLOC_MMAP_THRESHOLD_", -3, 32 << 20),
        ("MALLOC_TRIM_THRESHOLD_", -1, 256 << 20),
        ("MALLOC_MMAP_MAX_", -4, 0),
    ):
        if var not in os.environ:
            libc.mallopt(param, value)


_reuse_freed_memory()

name = "cpu"
xp = np


@njit(cache=True)
def _whole_plane_run(i, j, h_, w_, sh, sw, ph, pw, oh, ow) -> bool:
    """Whether tap (i, j) reads, for each sample, one contiguous run of OH*OW pixels of the input plane (rows
    i-PH .. i-PH+OH-1, full width): stride 1, no horizontal padding or cropping for this tap, no window row in
    the vertical padding. True for every tap of a 1x1 convolution and for the centre tap of a 3x3 one."""
    return sh == 1 and sw == 1 and ow == w_ and j == pw and 0 <= i - ph and i - ph + oh <= h_


# Inlined into cpu_direct's kernels too. numba's disk cache (cache=True) checks only the file of the function it
# compiled: after editing this helper, delete minicnn/backend/__pycache__ so that cpu_direct's kernels are rebuilt.
@njit(inline="always")
def _tap_columns(j, w_, sw, pw, ow):
    """[lo, hi): the output columns xo whose tap j lands inside the image row, 0 <= xo*SW - PW + j < W."""
    lo = min(ow, max(0, (pw - j + sw - 1) // sw))
    return lo, max(lo, min(ow, (w_ - 1 + pw - j) // sw + 1))


@njit(inline="always")
def _im2col_row(x, c, i, j, sh, sw, ph, pw, oh, ow, out):
    # Row (c, i, j) of cols, from left to right, sample after sample. With stride 1 the interior of each output
    # row is one slice copy, which numba turns into a vectorised loop (2.5-3.7x faster than indexing element by
    # element); when the tap covers whole rows of the plane, a sample's part of the row is a single copy.
    n_, c_, h_, w_ = x.shape
    p_ = oh * ow
    if _whole_plane_run(i, j, h_, w_, sh, sw, ph, pw, oh, ow):
        flat = x.reshape(-1)
        for n in range(n_):
            start = (n * c_ + c) * h_ * w_ + (i - ph) * w_
            out[n * p_ : (n + 1) * p_] = flat[start : start + p_]
        return
    x_lo, x_hi = _tap_columns(j, w_, sw, pw, ow)
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
    # through memory (a plane-per-iteration order wrote C*KH*KW short runs far apart and was 2.5x slower on
    # LeNet's conv1). With a horizontal stride SW smaller than the window, one iteration per (c, i) instead: rows
    # j >= SW are the row j - SW shifted by a column (_im2col_row_shifted), so only SW of the KW rows need the
    # strided gather (AlexNet's 11x11 stride-4 layer: 4 of 11).
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
    # The adjoint of _im2col: every column entry is added back onto the pixel it was copied from.
    # Each parallel iteration owns one channel c: it reads that channel's KH*KW rows of cols from left to right
    # (streaming, like _im2col writes them) and adds them onto the channel's N planes, which stay in cache. No
    # two iterations write the same pixel, so there are no races, and the order of the additions is fixed, so
    # the result is deterministic. (A plane-per-iteration order read KH*KW short runs far apart in cols and was
    # slower at every shape tried. The CUDA kernel gathers instead: one thread per pixel summing the windows.)
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
                x_lo, x_hi = _tap_columns(j, w_, sw, pw, ow)
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


# Stride 1 windows larger than 1x1 take the two kernels below: each plane is first copied into a zero-framed buffer
# (HP x WP, the padding written once), so every window row becomes a plain copy (im2col) or add (col2im) of OW
# pixels, with no clipping at the edges. The loops index with unsigned integers, which lets LLVM vectorise them.
# Against the general kernels above, which copy slices clipped to the image: im2col 3-4x, col2im 5-6x faster on
# GoogLeNet's and NiN's 3x3 and 5x5 layers (benchmarks/kernels.py). False sends every window to the general ones
# (the tests compare the two); MINICNN_FRAMED=0 in the environment sets it.
USE_FRAMED = os.environ.get("MINICNN_FRAMED", "1") != "0"


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


def _framed(kernel, stride) -> bool:
    """Whether im2col and col2im take the framed kernels: stride 1, a window larger than 1x1 (a 1x1 tap copies
    whole planes, which the general kernels do in one slice)."""
    return USE_FRAMED and tuple(stride) == (1, 1) and tuple(kernel) != (1, 1)


# Small planes are stacked into runs of about this many padded pixels, so that the runs below stay long
# (GoogLeNet's 6x6 and 3x3 planes, LeNet's 8x8).
POOL_GROUP_PIXELS = 2048


@njit(inline="always")
def _runs_max(flat, start, length, kh, kw, wp, w_, best, at, low):
    # For d in [0, length): best[d] = the max of the window whose top-left is flat[start + d] (row pitch wp),
    # at[d] = the first maximum's offset i*W + j in the image (row-major scan, strict '>'), -1 when nothing beat
    # `low` (-inf). The taps run inside the loop over d, in registers, and every iteration stores once: LLVM
    # vectorises it, compares and blends. (With the taps outside, `best[d] = v if v > best[d] else best[d]` became
    # a masked store, microcoded on AMD: slower than the scalar scan. The unsigned index skips numba's test for
    # negative indices, which kept the loop scalar.)
    src = flat[start:]
    for d in range(length):
        b = low
        a = np.int32(-1)
        for i in range(kh):
            for j in range(kw):
                v = src[np.uint64(d + i * wp + j)]
                take = v > b
                b = v if take else b
                a = np.int32(i * w_ + j) if take else a
        best[d] = b
        at[d] = a


@njit(inline="always")
def _runs_max_any(flat, start, length, kh, kw, wp, w_, best, at, low):
    # 3x3 and 2x2 windows get constant tap loops, which LLVM unrolls
    if kh == 3 and kw == 3:
        _runs_max(flat, start, length, 3, 3, wp, w_, best, at, low)
    elif kh == 2 and kw == 2:
        _runs_max(flat, start, length, 2, 2, wp, w_, best, at, low)
    else:
        _runs_max(flat, start, length, kh, kw, wp, w_, best, at, low)


@njit(inline="always")
def _pick(out, idx, o, r, f, best, at, flat, first_at, top):
    # Output o: the window's run maximum best[r] at offset at[r] from `top`, or the window's first pixel inside the
    # image, flat[f] (image offset first_at), when nothing beat -inf or that pixel is a NaN (_max_pool_fwd's rule).
    first = flat[np.uint64(f)]
    v, a = best[np.uint64(r)], at[np.uint64(r)]
    keep_first = (a < 0) | np.isnan(first)
    out[np.uint64(o)] = first if keep_first else v
    idx[np.uint64(o)] = first_at if keep_first else top + a


@njit(parallel=True, cache=True)
def _max_pool_fwd(x, kh, kw, sh, sw, ph, pw, out, idx):
    # Each plane is copied into a buffer framed by -inf (HP x WP), so every window is whole. Window maxima are then
    # computed for runs of consecutive buffer positions, as in the small-plane convolution (cpu_plane.py): one run
    # covers a whole group of small planes stacked in the buffer, or one large plane with a vertical stride of 1
    # (the windows at positions no output takes, rows between strides and windows that straddle two planes, are
    # computed and dropped); a large plane with a vertical stride gets one run per output row. Each output then
    # picks its window's entry of the run. The scan starts from -inf, so padding never wins; the output takes the
    # window's first pixel inside the image instead when that pixel is a NaN or nothing beat -inf. That is the
    # rule of the clipped scan this replaced, which started from the first inside pixel: a NaN wins only there
    # (every comparison with it is false), and ties keep the first maximum.
    n_, c_, h_, w_ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    hp, wp = h_ + 2 * ph, w_ + 2 * pw
    planes = n_ * c_
    xs, ysf, idf = x.reshape(planes, h_, w_), out.reshape(-1), idx.reshape(-1)
    group = max(1, POOL_GROUP_PIXELS // (hp * wp))
    dense = sh == 1 or group > 1  # one run per group of planes (every row of it), else one per output row
    span = (oh - 1) * sh * wp + (ow - 1) * sw + 1  # a plane's run, from its first window to its last
    run = (group - 1) * hp * wp + span if dense else (ow - 1) * sw + 1
    groups = (planes + group - 1) // group
    chunks = min(groups, 64)  # one work buffer per chunk
    for chunk in prange(chunks):
        buf = np.full((group * hp, wp), -np.inf, dtype=x.dtype)
        flat = buf.reshape(-1)
        low = np.full(1, -np.inf, dtype=x.dtype)[0]  # -inf in x's dtype: a float64 one would widen every compare
        best = np.empty(run, dtype=x.dtype)
        at = np.empty(run, dtype=np.int32)
        for gi in range(chunk * groups // chunks, (chunk + 1) * groups // chunks):
            p0 = gi * group
            count = min(group, planes - p0)
            for g in range(count):
                for r in range(h_):
                    buf[g * hp + ph + r, pw : pw + w_] = xs[p0 + g, r]
            if dense:
                _runs_max_any(flat, 0, (count - 1) * hp * wp + span, kh, kw, wp, w_, best, at, low)
            for g in range(count):
                for y in range(oh):
                    if dense:
                        row = (g * hp + y * sh) * wp
                    else:
                        row = 0
                        _runs_max_any(flat, (g * hp + y * sh) * wp, run, kh, kw, wp, w_, best, at, low)
                    rf = max(y * sh, ph)  # buffer row of the first image row under output row y
                    first = (g * hp + rf) * wp  # where that row starts in the buffer
                    top = (y * sh - ph) * w_ - pw  # image offset of the window's top-left corner, less xo*SW
                    first_row = (rf - ph) * w_ - pw
                    out_row = ((p0 + g) * oh + y) * ow
                    # Flat indices, no views: GoogLeNet's planes have 12 or 6 outputs a row, and making the row's
                    # views (with signed indices and max()) took more time than this now takes (8.5 -> 6.5 ms on
                    # the 12x12 pools, benchmarks/kernels.py). Windows from column lo on start inside the image,
                    # their first pixel at xo*SW.
                    lo = min(ow, (pw + sw - 1) // sw)
                    for xo in range(ow):
                        k = xo * sw
                        cf = k if xo >= lo else pw
                        _pick(ysf, idf, out_row + xo, row + k, first + cf, best, at, flat, first_row + cf, top + k)


@njit(parallel=True, cache=True)
def _max_pool_bwd(gy, idx, gx):
    n_, c_, h_, w_ = gx.shape
    hw = h_ * w_
    p_ = gy.shape[2] * gy.shape[3]
    g = gy.reshape(-1)
    arg = idx.reshape(-1)
    dst = gx.reshape(-1)
    for nc in prange(n_ * c_):
        base = nc * hw
        dst[base : base + hw] = 0
        for q in range(nc * p_, (nc + 1) * p_):
            dst[np.uint64(base + arg[q])] += g[q]  # overlapping windows accumulate


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


def _output(out, shape, dtype, what: str) -> np.ndarray:
    """A new array, or `out` when it is a C-contiguous array of exactly that shape and dtype (the kernels write
    through flat indices, so a strided view would be silently wrong)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{what}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}")
    return out


def im2col(x: np.ndarray, kernel, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW); cols[(c,i,j), (n,y,x)] = x_pad[n, c, y*SH+i, x*SW+j].

    `out`: a buffer to write cols into (Conv2D reuses one for all its batch chunks, see `ops/conv.py`)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    cols = _output(out, (c * kh * kw, n * oh * ow), x.dtype, "im2col")
    if _framed(kernel, stride):
        _im2col_framed(np.ascontiguousarray(x), kh, kw, ph, pw, oh, ow, cols)
    else:
        _im2col(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, oh, ow, cols)
    return cols


def col2im(cols: np.ndarray, x_shape, kernel, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """Adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows.
    `out`: where to write dx (e.g. the batch chunk's slice of the whole gradient)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    dx = _output(out, tuple(x_shape), cols.dtype, "col2im")
    if _framed(kernel, stride):
        _col2im_framed(np.ascontiguousarray(cols), kh, kw, ph, pw, oh, ow, dx)
    else:
        _col2im(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, oh, ow, dx)
    return dx


# ---- the convolution's epilogues: bias, activation and the (O, N*P) <-> (N, O, P) layout change, in one pass --
_ACT_CODE = {None: 0, "relu": 1, "sigmoid": 2}


@njit(parallel=True, cache=True)
def _bias_act(src, nchw, in_place, b, act, y):
    # y[n, o, p] = act(y2 + b[o]) for act 0 (none) or 1 (relu); one (n, o) row per parallel iteration. src is the
    # GEMM's output as (O, N, P) (im2col's GEMM: the layout change happens here) or as (N, O, P) when `nchw` (the
    # pointwise GEMM's, possibly y itself: each element is read before it is written).
    # In place (src is y), each row is read through dst itself: through two views of the same memory, LLVM's
    # run-time overlap test sends the loop to its scalar version (18.8 ms against 7.6 on NiN's 54x54 layers).
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
    # split that sum into vector lanes (a fixed order for a given row length, whatever the thread count): as one
    # running float64 sum, a chain of dependent adds, the kernel ran 4-5x slower (benchmarks/kernels.py).
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
    pointwise path's, which may be out itself); b: (O,) or None; act: None, 'relu', 'sigmoid'. The readable
    version, which the tests compare this with, is `epilogue.bias_act`.

    The sigmoid follows as a pass of its own (sigmoid_after)."""
    m, o, p = out.shape
    bias = np.zeros(o, dtype=y2.dtype) if b is None else b
    nchw = y2.ndim == 3
    if y2.shape != ((m, o, p) if nchw else (o, m * p)):
        raise ValueError(f"bias_act: y2 {y2.shape} does not fit out {out.shape}: expected (O, N*P) or (N, O, P)")
    src = y2 if nchw else y2.reshape(o, m, p)
    out = _output(out, out.shape, y2.dtype, "bias_act")
    in_place = nchw and src.__array_interface__["data"][0] == out.__array_interface__["data"][0]
    in_place = in_place and src.strides == out.strides
    if not in_place and np.may_share_memory(src, out):  # overlapping in another layout: rows would be overwritten
        src = src.copy()
    _bias_act(src, nchw, in_place, bias, _ACT_CODE["relu" if act == "relu" else None], out)
    sigmoid_after(act, out)
    return out


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """x = 1 / (1 + e^-x) in place: cpu_sigmoid's vectorised kernel for C-contiguous float32 arrays, the formula
    with NumPy's exp (epilogue.sigmoid_) for the rest."""
    if not cpu_sigmoid.sigmoid_(x):
        epilogue.sigmoid_(x, np)
    return x


def sigmoid_after(act: str | None, out: np.ndarray) -> None:
    """The sigmoid, when act is 'sigmoid', in place, as a pass of its own after the kernels that fuse bias and relu
    only. (The chapter's sigmoid layers are LeNet's, whose convolutions run on the plane kernels, which fuse it.)"""
    if act == "sigmoid":
        sigmoid_(out)


def act_grad(y: np.ndarray, gy: np.ndarray, act: str | None, out: np.ndarray, gb: np.ndarray | None) -> np.ndarray:
    """out = gy * act'(y) with y, gy: (N, O, P); out is (O, N*P), the layout im2col's GEMMs want, or (N, O, P),
    the pointwise path's. Adds the sums over (n, p) to gb (O,) when given. The readable version is
    `epilogue.act_grad`."""
    m, o, p = y.shape
    acc = np.zeros(o, dtype=np.float64)
    nchw = out is not None and out.ndim == 3
    shape = (m, o, p) if nchw else (o, m * p)
    out = _output(out, shape, out.dtype if out is not None else y.dtype, "act_grad")
    # y and gy in out's dtype (a gradient may come in another float type; the kernel wants one type throughout)
    y, gy = (np.ascontiguousarray(a, dtype=out.dtype) for a in (y, gy))
    _act_grad(y, gy, _ACT_CODE[act], out if nchw else out.reshape(o, m, p), nchw, acc)
    if gb is not None:
        gb += acc.astype(gb.dtype)
    return out


@njit(parallel=True, cache=True)
def _max_pool_2x2_fwd(x, out, idx):
    # 2x2 windows, stride 2, no padding (LeNet's and VGG's pools): the windows tile the plane, so the four pixels
    # are read where they are, no -inf frame, no run. The same scan as the general kernel: from the first pixel,
    # a later one wins only if strictly greater, so ties keep the first maximum and a NaN wins only as the first.
    n_, c_, h_, w_ = x.shape
    oh, ow = out.shape[2], out.shape[3]
    planes = n_ * c_
    xs, ys, ids = x.reshape(planes, h_, w_), out.reshape(planes, oh, ow), idx.reshape(planes, oh, ow)
    chunks = min(planes, 64)
    for chunk in prange(chunks):
        for p in range(chunk * planes // chunks, (chunk + 1) * planes // chunks):
            for y in range(oh):
                top, bottom, dst, arg = xs[p, 2 * y], xs[p, 2 * y + 1], ys[p, y], ids[p, y]
                base = 2 * y * w_
                for xo in range(ow):
                    j = np.uint64(2 * xo)  # unsigned: no negative-index test in the loop
                    best, at = top[j], 0
                    if top[j + 1] > best:
                        best, at = top[j + 1], 1
                    if bottom[j] > best:
                        best, at = bottom[j], w_
                    if bottom[j + 1] > best:
                        best, at = bottom[j + 1], w_ + 1
                    dst[xo] = best
                    arg[xo] = base + 2 * xo + at


def max_pool_forward(x: np.ndarray, kernel, stride, pad) -> tuple[np.ndarray, np.ndarray]:
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), idx: int32 position of each window's first maximum)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if ph >= kh or pw >= kw:  # a window could lie wholly in the padding: it has no maximum (MXNet's rule too)
        raise ValueError(f"max_pool_forward: padding {tuple(pad)} must be smaller than the window {tuple(kernel)}")
    n, c, h, w = x.shape
    shape = (n, c, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))
    y = np.empty(shape, dtype=x.dtype)
    idx = np.empty(shape, dtype=np.int32)
    if (tuple(kernel), tuple(stride), tuple(pad)) == ((2, 2), (2, 2), (0, 0)) and USE_POOL_2X2:
        _max_pool_2x2_fwd(np.ascontiguousarray(x), y, idx)
    else:
        _max_pool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, y, idx)
    return y, idx


# The 2x2 stride-2 kernel above, for the most common pool; False sends it to the general kernel (the tests compare
# the two). On LeNet's pools it took 0.43 and 0.19 ms against 1.12 and 0.50 (`benchmarks/kernels.py`), on VGG-11's
# first (batch 32, 224x224) about what the general one takes.
USE_POOL_2X2 = True


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
    gx = np.zeros(x_shape, dtype=gy.dtype)
    _avg_pool_bwd(np.ascontiguousarray(gy), kh, kw, sh, sw, ph, pw, gx)
    return gx


@njit(parallel=True, cache=True)
def _axpy(y, a, x):
    for i in prange(y.size):
        y[i] += a * x[i]


def axpy_(y: np.ndarray, alpha: float, x: np.ndarray) -> None:
    """y += alpha * x in place, in y's dtype, in one pass without a temporary (the SGD update: NumPy's
    `w -= lr * g` writes lr * g to a new array first, as large as the parameter). Same rounding as NumPy's."""
    if y.flags.c_contiguous and x.shape == y.shape and x.dtype == y.dtype:
        _axpy(y.reshape(-1), y.dtype.type(alpha), np.ascontiguousarray(x).reshape(-1))
    else:
        y += y.dtype.type(alpha) * x


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


# Three more convolution algorithms (ops/conv.py picks them by shape); a backend without one sets it to None:
# the direct convolution of thin layers, that of small planes, and Winograd F(2x2, 3x3) tile transforms for 3x3
# stride-1 layers. They use _output (and the direct one _tap_columns) from above.
from . import cpu_direct as direct  # noqa: E402, F401
from . import cpu_plane as plane_conv  # noqa: E402, F401
from . import cpu_winograd as winograd  # noqa: E402, F401
