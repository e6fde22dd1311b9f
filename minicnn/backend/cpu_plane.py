"""numba kernels for the direct convolution of small planes with few channels (ops/conv.py picks them for stride-1
layers such as LeNet's, 1 -> 6 channels on 28x28 and 6 -> 16 on 12x12).

There im2col copies runs of 8 to 24 pixels, hundreds of thousands of them per step, and the GEMMs have 6 or 16
rows: both cost far more than their arithmetic. These kernels work on one sample at a time, whose planes stay in
cache, in the row pitch of the padded input: with stride 1, output pixel q = oy*WP + ox reads input pixel
q + i*WP + j for tap (i, j), so one tap over a whole output plane is a single contiguous run

    acc[q] += w[o, c, i, j] * xpad[n, c, q + i*WP + j]        for q in [0, L), L = (OH - 1)*WP + OW

(WP = W + 2*PW). The WP - OW columns of each output row past OW are computed and thrown away; in exchange every
loop is long and unit-stride, so LLVM vectorises it. Per iteration of the loops, two output channels and up to
three taps of a window row (forward) or three output channels (input_grad) share their loads.

    forward       y = act(b + sum over (c, i, j) of w[o, c, i, j] * xpad shifted by (i, j))
    weight_grad   gw[o, c, i, j] = sum over n and q of g[n, o, q] * xpad[n, c, q + i*WP + j]
                  (g laid out in the same pitch, zeros in the thrown-away columns)
    input_grad    gxpad[n, c, q + i*WP + j] += w[o, c, i, j] * g[n, o, q]   (the adjoint of forward; the border
                  of gxpad, the padding, is dropped)

Their readable counterpart is the im2col path (`cpu.im2col` + a GEMM), which the tests compare them with.
Each parallel iteration owns its samples' outputs (forward) or one block's partial sums (weight_grad, a fixed
number of blocks added up in order): the results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .cpu import _ACT_CODE, _output, sigmoid_after
from .shapes import out_size


@njit(inline="always")
def _pad_into(src, ph, pw, buf):
    # src (C, H, W) into the interior of buf (C, >= HP*WP); buf's border was zeroed once and is never written
    c_, h_, w_ = src.shape
    wp = w_ + 2 * pw
    for c in range(c_):
        for r in range(h_):
            at = (r + ph) * wp + pw
            buf[c, at : at + w_] = src[c, r]


# Loops of one, two and three taps for two output channels (a0, a1). Every run is a slice starting at index 0, so
# numba emits no wraparound test and LLVM vectorises the loop; the weights are read into locals first (a store to
# a0 could, for all LLVM knows, change wa, which would make it reload them in every iteration: 2x slower).
@njit(inline="always")
def _taps1(a0, a1, wa, wb, s0):
    wa0, wb0 = wa[0], wb[0]
    for q in range(a0.shape[0]):
        a0[q] += wa0 * s0[q]
        a1[q] += wb0 * s0[q]


@njit(inline="always")
def _taps2(a0, a1, wa, wb, s0, s1):
    wa0, wa1, wb0, wb1 = wa[0], wa[1], wb[0], wb[1]
    for q in range(a0.shape[0]):
        a0[q] += wa0 * s0[q] + wa1 * s1[q]
        a1[q] += wb0 * s0[q] + wb1 * s1[q]


@njit(inline="always")
def _taps3(a0, a1, wa, wb, s0, s1, s2):
    wa0, wa1, wa2, wb0, wb1, wb2 = wa[0], wa[1], wa[2], wb[0], wb[1], wb[2]
    for q in range(a0.shape[0]):
        a0[q] += wa0 * s0[q] + wa1 * s1[q] + wa2 * s2[q]
        a1[q] += wb0 * s0[q] + wb1 * s1[q] + wb2 * s2[q]


@njit(parallel=True, cache=True)
def _forward(x, wr, b, act, ph, pw, y):
    # One parallel iteration per block of samples; for each sample, output channels two at a time, every tap
    # added over the whole plane (the sum starts at the bias and adds the taps in (c, i, j) order).
    # wr: the weights as (pairs, C, KH, 2, KW), see _pairs
    n_, c_, h_, w_ = x.shape
    o_, kh, kw = y.shape[1], wr.shape[2], wr.shape[4]
    oh, ow = y.shape[2], y.shape[3]
    wp = w_ + 2 * pw
    run = (oh - 1) * wp + ow
    pairs = wr.shape[0]
    blocks = min(n_, 64)
    for blk in prange(blocks):
        buf = np.zeros((c_, (h_ + 2 * ph) * wp), dtype=y.dtype)
        acc = np.empty((2, run), dtype=y.dtype)
        for n in range(blk * n_ // blocks, (blk + 1) * n_ // blocks):
            _pad_into(x[n], ph, pw, buf)
            for pr in range(pairs):
                acc[0, :] = b[2 * pr]
                acc[1, :] = b[min(2 * pr + 1, o_ - 1)]
                for c in range(c_):
                    for i in range(kh):
                        wa, wb = wr[pr, c, i, 0], wr[pr, c, i, 1]
                        for j in range(0, kw - 2, 3):  # three taps per pass
                            at = i * wp + j
                            s0, s1, s2 = (
                                buf[c, at : at + run],
                                buf[c, at + 1 : at + 1 + run],
                                buf[c, at + 2 : at + 2 + run],
                            )
                            _taps3(acc[0], acc[1], wa[j:], wb[j:], s0, s1, s2)
                        j = kw - kw % 3  # then the one or two left
                        at = i * wp + j
                        if kw % 3 == 2:
                            _taps2(acc[0], acc[1], wa[j:], wb[j:], buf[c, at : at + run], buf[c, at + 1 : at + 1 + run])
                        elif kw % 3 == 1:
                            _taps1(acc[0], acc[1], wa[j:], wb[j:], buf[c, at : at + run])
                for k in range(min(2, o_ - 2 * pr)):
                    for oy in range(oh):
                        dst, src = y[n, 2 * pr + k, oy], acc[k, oy * wp : oy * wp + ow]
                        if act == 1:
                            for q in range(ow):
                                v = src[q]
                                dst[q] = v if not v <= 0 else 0  # max(v, 0), and a NaN stays NaN
                        else:
                            dst[:] = src


# _weight_grad's fixed number of blocks of samples, each with its own partial sums (float64), added up in order
_BLOCKS = 16


@njit(inline="always")
def _dots3(ga, gb, s0, s1, s2):
    # the six dot products of two gradient planes with three tap runs, sharing their loads
    a0 = a1 = a2 = b0 = b1 = b2 = ga.dtype.type(0)
    for q in range(ga.shape[0]):
        a0 += ga[q] * s0[q]
        a1 += ga[q] * s1[q]
        a2 += ga[q] * s2[q]
        b0 += gb[q] * s0[q]
        b1 += gb[q] * s1[q]
        b2 += gb[q] * s2[q]
    return a0, a1, a2, b0, b1, b2


# fastmath 'reassoc' only: it lets LLVM split each dot product over vector lanes (a fixed order for this compiled
# code, so still deterministic); without it a float sum runs one element at a time.
@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _weight_grad(x, g, ph, pw, gw):
    n_, c_, h_, w_ = x.shape
    o_, _, kh, kw = gw.shape
    oh, ow = g.shape[2], g.shape[3]
    wp = w_ + 2 * pw
    run = (oh - 1) * wp + ow
    pairs = (o_ + 1) // 2
    groups = (kw + 2) // 3
    blocks = min(n_, _BLOCKS)
    part = np.zeros((blocks, 2 * pairs, c_, kh, 3 * groups), dtype=np.float64)
    for blk in prange(blocks):
        # two spare zeros after the plane: the last group of three taps may run past KW (its sums are dropped)
        buf = np.zeros((c_, (h_ + 2 * ph) * wp + 2), dtype=g.dtype)
        gp = np.zeros((2 * pairs, run), dtype=g.dtype)  # g in the padded pitch; the extra columns stay 0
        for n in range(blk * n_ // blocks, (blk + 1) * n_ // blocks):
            _pad_into(x[n], ph, pw, buf)
            for o in range(o_):
                for oy in range(oh):
                    gp[o, oy * wp : oy * wp + ow] = g[n, o, oy]
            for pr in range(pairs):
                for c in range(c_):
                    for i in range(kh):
                        for jg in range(groups):
                            at = i * wp + 3 * jg
                            sums = _dots3(gp[2 * pr], gp[2 * pr + 1], buf[c, at:], buf[c, at + 1 :], buf[c, at + 2 :])
                            for k in range(6):
                                part[blk, 2 * pr + k // 3, c, i, 3 * jg + k % 3] += sums[k]
    for o in range(o_):
        for c in range(c_):
            for i in range(kh):
                for j in range(kw):
                    total = 0.0
                    for blk in range(blocks):
                        total += part[blk, o, c, i, j]
                    gw[o, c, i, j] = total


@njit(parallel=True, cache=True)
def _input_grad(g, wt, ph, pw, gx):
    # The adjoint of _forward as a scatter: each tap (i, j) adds w * g back onto the run of padded input pixels it
    # read, for two input channels and up to three output channels' gradient planes per pass. One parallel
    # iteration per block of samples, so no two iterations write the same pixel; every sum runs in (c, i, j, o)
    # order. The padded plane's border collects the contributions that fell into the padding and is dropped.
    # wt: the weights as (pairs, KH, KW, 2, O), see _pairs
    n_, c_, h_, w_ = gx.shape
    o_, kh, kw = g.shape[1], wt.shape[1], wt.shape[2]
    oh, ow = g.shape[2], g.shape[3]
    wp = w_ + 2 * pw
    run = (oh - 1) * wp + ow
    pairs = wt.shape[0]
    blocks = min(n_, 64)
    for blk in prange(blocks):
        gp = np.zeros((o_, run), dtype=g.dtype)  # g in the padded pitch; the extra columns stay 0
        buf = np.empty((2 * pairs, (h_ + 2 * ph) * wp), dtype=g.dtype)
        for n in range(blk * n_ // blocks, (blk + 1) * n_ // blocks):
            for o in range(o_):
                for oy in range(oh):
                    gp[o, oy * wp : oy * wp + ow] = g[n, o, oy]
            buf[:, :] = 0
            for pr in range(pairs):
                for i in range(kh):
                    for j in range(kw):
                        at = i * wp + j
                        d0, d1 = buf[2 * pr, at : at + run], buf[2 * pr + 1, at : at + run]
                        wa, wb = wt[pr, i, j, 0], wt[pr, i, j, 1]
                        for o in range(0, o_ - 2, 3):
                            _taps3(d0, d1, wa[o:], wb[o:], gp[o], gp[o + 1], gp[o + 2])
                        o = o_ - o_ % 3
                        if o_ % 3 == 2:
                            _taps2(d0, d1, wa[o:], wb[o:], gp[o], gp[o + 1])
                        elif o_ % 3 == 1:
                            _taps1(d0, d1, wa[o:], wb[o:], gp[o])
            for c in range(c_):
                for r in range(h_):
                    at = (r + ph) * wp + pw
                    gx[n, c, r] = buf[c, at : at + w_]


def _pairs(w: np.ndarray, axis: int, dtype) -> np.ndarray:
    """w (O, C, KH, KW) with its channels along `axis` (0: output, 1: input) grouped in pairs, the pair's two
    weights of a tap next to each other: (pairs, C, KH, 2, KW) for axis 0 (forward), (pairs, KH, KW, 2, O) for
    axis 1 (input_grad). An odd last channel's partner has zero weights; its sums are thrown away. Built here,
    not in the kernels: numba runs an array assignment outside prange as a parallel loop of its own, and a few of
    those cost more than the whole convolution of a small layer."""
    w = np.moveaxis(np.asarray(w, dtype=dtype), axis, 0)  # (pair channels, other channels, KH, KW)
    padded = np.zeros(((w.shape[0] + 1) // 2 * 2, *w.shape[1:]), dtype=dtype)
    padded[: w.shape[0]] = w
    grouped = padded.reshape(-1, 2, *w.shape[1:])  # (pairs, 2, other, KH, KW)
    order = (0, 2, 3, 1, 4) if axis == 0 else (0, 3, 4, 1, 2)
    return np.ascontiguousarray(grouped.transpose(order))


def _check_window(stride, what: str):
    if tuple(stride) != (1, 1):
        raise ValueError(f"{what}: the plane kernels take stride 1 only, got stride {tuple(stride)}")


def _check_channels(x, w, what: str):
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"{what}: x {x.shape} and w {w.shape} must be (N, C, H, W) and (O, C, KH, KW)")


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, act: str | None, stride, pad, out=None) -> np.ndarray:
    """x: (N, C, H, W), w: (O, C, KH, KW), b: (O,) or None -> out (N, O, OH, OW) = act(conv(x, w) + b); act None,
    'relu' or 'sigmoid' (the sigmoid applied by NumPy afterwards, as `cpu.bias_act` does). Stride 1."""
    _check_window(stride, "plane conv forward")
    _check_channels(x, w, "plane conv forward")
    (n, _, h, wd), (o, _, kh, kw), (ph, pw) = x.shape, w.shape, pad
    y = _output(out, (n, o, out_size(h, kh, 1, ph), out_size(wd, kw, 1, pw)), x.dtype, "plane conv forward")
    bias = np.zeros(o, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    code = _ACT_CODE["relu" if act == "relu" else None]
    _forward(np.ascontiguousarray(x), _pairs(w, 0, x.dtype), bias, code, ph, pw, y)
    sigmoid_after(act, y)
    return y


def weight_grad(x: np.ndarray, g: np.ndarray, kernel, stride, pad) -> np.ndarray:
    """x: (N, C, H, W), g: (N, O, OH, OW), the pre-activation gradient -> gw: (O, C, KH, KW)."""
    (n, c, h, w_), (kh, kw), (ph, pw) = x.shape, kernel, pad
    _check_window(stride, "plane conv weight gradient")
    if g.ndim != 4 or g.shape[0] != n or g.shape[2:] != (out_size(h, kh, 1, ph), out_size(w_, kw, 1, pw)):
        raise ValueError(f"plane conv weight gradient: g {g.shape} is not the output of x {x.shape} with {kernel}")
    gw = np.empty((g.shape[1], c, kh, kw), dtype=g.dtype)
    _weight_grad(np.ascontiguousarray(x, dtype=g.dtype), np.ascontiguousarray(g), ph, pw, gw)
    return gw


def input_grad(g: np.ndarray, w: np.ndarray, x_shape, stride, pad, out: np.ndarray | None = None) -> np.ndarray:
    """g: (N, O, OH, OW), w: (O, C, KH, KW) -> gx: x_shape = (N, C, H, W), into `out` when given."""
    (n, _, oh, ow), (_, c, kh, kw), (ph, pw) = g.shape, w.shape, pad
    _check_window(stride, "plane conv input gradient")
    x_shape = tuple(x_shape)
    if x_shape[:2] != (n, c) or (out_size(x_shape[2], kh, 1, ph), out_size(x_shape[3], kw, 1, pw)) != (oh, ow):
        raise ValueError(f"plane conv input gradient: input shape {x_shape} does not give g {g.shape} with w {w.shape}")
    gx = _output(out, x_shape, g.dtype, "plane conv input gradient")
    _input_grad(np.ascontiguousarray(g), _pairs(w, 1, g.dtype), ph, pw, gx)
    return gx
