"""The fast max-pool forward (CPU, numba): the textbook window loop (`backend/cpu.py`) vectorised.

Both give the same outputs and indices, bit for bit (the tests compare them), by the textbook's rule: each
window's first maximum in row-major order (strict `>`), padding never wins, a NaN wins only as the window's first
pixel inside the image. Backward is the textbook's scatter through the index.

- "runs": each plane is copied into a buffer framed by -inf, and the window maxima of a run of consecutive buffer
  positions are computed at once (the window's taps in registers, a compare and two selects each, which LLVM
  vectorises); small planes are stacked into one run. Each output then picks its window's entry of the run.
- "2x2 tiles": 2x2 windows with stride 2 and no padding tile the plane; their four pixels are read in place.
`dispatch.max_pool` picks one; docs/fast-paths.md has the measurements.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..backend.shapes import out_size
from . import dispatch

# Small planes are stacked into runs of about this many padded pixels, so that the runs stay long (GoogLeNet's 6x6
# and 3x3 planes, LeNet's 8x8).
POOL_GROUP_PIXELS = 2048


@njit(inline="always")
def _runs_max(flat, start, length, kh, kw, wp, w_, best, at, low):
    # For d in [0, length): best[d] = the max of the window whose top-left is flat[start + d] (row pitch wp),
    # at[d] = the first maximum's offset i*W + j in the image (row-major scan, strict '>'), -1 when nothing beat
    # `low` (-inf). The taps run inside the loop over d, in registers, and every iteration stores once: LLVM
    # vectorises it, compares and blends. (With the taps outside the loop over d, the update became a masked
    # store, microcoded on AMD. The unsigned index skips numba's test for negative indices, which kept the loop
    # scalar.)
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
    # rule of the textbook loop, which starts from the first inside pixel: a NaN wins only there (every
    # comparison with it is false), and ties keep the first maximum.
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
                    # Flat indices, no views: on rows of 12 or 6 outputs (GoogLeNet's) making each row's views
                    # cost more than the picking. Windows from column lo on start inside the image, their first
                    # pixel at xo*SW.
                    lo = min(ow, (pw + sw - 1) // sw)
                    for xo in range(ow):
                        k = xo * sw
                        cf = k if xo >= lo else pw
                        _pick(ysf, idf, out_row + xo, row + k, first + cf, best, at, flat, first_row + cf, top + k)


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
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), idx: int32 position h*W + w of each window's first maximum), as
    `backend.cpu.max_pool_forward`."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if ph >= kh or pw >= kw:  # a window could lie wholly in the padding: it has no maximum (MXNet's rule too)
        raise ValueError(f"max_pool_forward: padding {tuple(pad)} must be smaller than the window {tuple(kernel)}")
    n, c, h, w = x.shape
    shape = (n, c, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))
    y = np.empty(shape, dtype=x.dtype)
    idx = np.empty(shape, dtype=np.int32)
    if dispatch.max_pool_kernel(kernel, stride, pad) == "2x2 tiles":
        _max_pool_2x2_fwd(np.ascontiguousarray(x), y, idx)
    else:
        _max_pool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, y, idx)
    return y, idx
