"""numba kernels for the direct convolution of a few samples' planes at a time (dispatch.py picks them for stride-1
layers with few channels on small planes, LeNet's 1 -> 6 on 28x28 and 6 -> 16 on 12x12, and for thin layers on
large planes, VGG's first ones: 1 -> 16 on 224x224 up to 64 -> 64 on 56x56).

There im2col copies short runs of pixels (LeNet's: 8 to 24, hundreds of thousands per step) for GEMMs with few
rows, or GEMMs with few columns to sum over (K = 9*C or, on the Winograd path, C): either way more memory traffic
than arithmetic. These kernels convolve a sample in cache, in the row pitch of the padded input: with stride 1,
output pixel q = oy*WP + ox reads input pixel q + i*WP + j for tap (i, j), so one tap over a whole output plane is
a single contiguous run

    acc[q] += w[o, c, i, j] * xpad[n, c, q + i*WP + j]        for q in [0, L), L = (OH - 1)*WP + OW

(WP = W + 2*PW). The WP - OW columns of each output row past OW are computed and thrown away; in exchange every
loop is unit-stride, so LLVM vectorises it. Per iteration of the loops, two output channels share the loads of
a whole 3x3 window, a 5x5 window's row or up to three taps of another window's row (forward, _add_window); in the
input gradient two input channels share the loads of up to five output channels.

On small planes one sample's run is short (LeNet's second layer: 92 pixels), and the loops' set-up, tails and
per-sample passes cost as much as their work. There NB samples are interleaved, pixel by pixel, into one block:
pixel p of sample n0 + l at p*NB + l. Every offset above is then multiplied by NB, and the run is NB times longer;
nothing else changes, and each output still sums its terms in the same order (`interleave` picks NB).

3x3 windows (VGG's layers) take all nine taps in one pass (_taps9, _dots9), which loads and stores the
accumulators a third as often, and their input gradient is gathered rather than scattered: gx is the forward
convolution of g, padded with zeros, with the window flipped and the channels' roles swapped,

    gxpad[n, c, p] = sum over (o, i, j) of w[o, c, 2-i, 2-j] * gpad[n, o, p + (i*WP + j) - (2*WP + 2)]

so the same loop serves both. Without padding the gather would run over every input pixel (1.6x the scatter's work
on LeNet's 12x12 -> 8x8 layer), so other windows keep the scatter. 5x5 windows (LeNet's) take a window row a pass
(_taps5, _dots5), and their input gradient five output channels a pass. docs/fast-paths.md has the measurements.

    forward    y = act(b + sum over (c, i, j) of w[o, c, i, j] * xpad shifted by (i, j))
    backward   g = gy * act'(y), laid out in the same pitch (zeros in the thrown-away columns), then
               gb[o] = sum of g[n, o, q] over n and q
               gw[o, c, i, j] = sum over n and q of g[n, o, q] * xpad[n, c, q + i*WP + j]
               gxpad[n, c, q + i*WP + j] += w[o, c, i, j] * g[n, o, q]   (the adjoint of forward; the border of
               gxpad, the padding, is dropped)
    all in one pass over the samples: g is never stored for the whole batch.

Their textbook counterpart is im2col + GEMM (`ops/conv.py`), which the tests compare them with. Each parallel
iteration owns its samples' outputs (forward, gx) and one block's partial sums
(gw, gb: a fixed number of blocks added up in order): the results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..backend.shapes import out_size
from .cpu_common import ACT_CODE, output
from .cpu_sigmoid import sigmoid_after, sigmoid_run_


@njit(inline="always")
def _run_and_plane(oh, ow, hp, wp, nb):
    """(run, plane): the run length the loops take, ((OH - 1)*WP + OW)*NB rounded up to a multiple of 32, and the
    length of a block's padded planes, HP*WP*NB plus room for the rounding and for two taps past the window
    (_backward's last group of three). LLVM's vector loops take 32 floats a pass and finish a run's last 1-31 one
    at a time; the extra outputs are thrown away with the rest."""
    exact = ((oh - 1) * wp + ow) * nb
    run = (exact + 31) // 32 * 32
    return run, hp * wp * nb + run - exact + 2 * nb


@njit(inline="always")
def _pack(x, n0, m, nb, ph, pw, buf):
    # samples n0 .. n0+m-1 of x (N, C, H, W) into buf (C, >= HP*WP*NB), interleaved: pixel (r, s) of the padded
    # plane of sample n0 + lane at (r*WP + s)*NB + lane. The border stays as the caller zeroed it, the lanes >= m
    # of a short last block as the block before left them. Rows are read whole: they are contiguous in x.
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    wp = w_ + 2 * pw
    for lane in range(m):
        for c in range(c_):
            for r in range(h_):
                src, at = x[n0 + lane, c, r], ((r + ph) * wp + pw) * nb + lane
                if nb == 1:
                    buf[c, at : at + w_] = src
                else:
                    dst = buf[c, at : at + w_ * nb]
                    for s in range(w_):
                        dst[s * nb] = src[s]


@njit(inline="always")
def _unpack_row(src, nb, relu, dst):
    # dst[s] = src[s*NB] for a row of dst (the lanes of one sample), through max(v, 0) when relu (a NaN stays
    # NaN). Two loops: with NB = 1 both sides are contiguous and LLVM vectorises it.
    zero = dst.dtype.type(0)
    if nb == 1:
        for s in range(dst.shape[0]):
            v = src[s]
            dst[s] = v if not (relu and v <= 0) else zero
    else:
        for s in range(dst.shape[0]):
            v = src[s * nb]
            dst[s] = v if not (relu and v <= 0) else zero


@njit(inline="always")
def _blocks_of(n_, nb, most):
    # (groups of NB samples, parallel blocks of groups): a fixed split, whatever the thread count
    groups = (n_ + nb - 1) // nb
    return groups, min(groups, most)


# Loops of one, two and three taps for two output channels (a0, a1). Every run is a slice starting at index 0, so
# numba emits no wraparound test and LLVM vectorises the loop; the weights are read into locals first (a store to
# a0 could, for all LLVM knows, change wa, which would make it reload them in every iteration).
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


@njit(inline="always")
def _taps9(a0, a1, wc, s, wp, nb, lo, hi):
    # a0[lo:hi], a1[lo:hi] += a whole 3x3 window of two output channels: sum over (i, j) of wc[i, k, j] *
    # s[q + (i*WP + j)*NB] for channel k. Nine taps a pass load the accumulators a third as often as three taps
    # a pass. wc: (3, 2, 3).
    wa00, wa01, wa02 = wc[0, 0, 0], wc[0, 0, 1], wc[0, 0, 2]
    wa10, wa11, wa12 = wc[1, 0, 0], wc[1, 0, 1], wc[1, 0, 2]
    wa20, wa21, wa22 = wc[2, 0, 0], wc[2, 0, 1], wc[2, 0, 2]
    wb00, wb01, wb02 = wc[0, 1, 0], wc[0, 1, 1], wc[0, 1, 2]
    wb10, wb11, wb12 = wc[1, 1, 0], wc[1, 1, 1], wc[1, 1, 2]
    wb20, wb21, wb22 = wc[2, 1, 0], wc[2, 1, 1], wc[2, 1, 2]
    n = hi - lo
    r0, r1, r2 = lo, lo + wp * nb, lo + 2 * wp * nb  # where the window's three rows start
    s00, s01, s02 = s[r0 : r0 + n], s[r0 + nb : r0 + nb + n], s[r0 + 2 * nb : r0 + 2 * nb + n]
    s10, s11, s12 = s[r1 : r1 + n], s[r1 + nb : r1 + nb + n], s[r1 + 2 * nb : r1 + 2 * nb + n]
    s20, s21, s22 = s[r2 : r2 + n], s[r2 + nb : r2 + nb + n], s[r2 + 2 * nb : r2 + 2 * nb + n]
    d0, d1 = a0[lo:hi], a1[lo:hi]
    for q in range(n):
        x00, x01, x02, x10, x11, x12 = s00[q], s01[q], s02[q], s10[q], s11[q], s12[q]
        x20, x21, x22 = s20[q], s21[q], s22[q]
        d0[q] += (
            (wa00 * x00 + wa01 * x01 + wa02 * x02)
            + (wa10 * x10 + wa11 * x11 + wa12 * x12)
            + (wa20 * x20 + wa21 * x21 + wa22 * x22)
        )
        d1[q] += (
            (wb00 * x00 + wb01 * x01 + wb02 * x02)
            + (wb10 * x10 + wb11 * x11 + wb12 * x12)
            + (wb20 * x20 + wb21 * x21 + wb22 * x22)
        )


@njit(inline="always")
def _taps5(d0, d1, wa, wb, s, at, nb):
    # d0, d1 += one five-tap window row of two output channels: sum over j of wa[j] * s[at + j*NB + q] (LeNet's
    # 5x5 windows: a row a pass loads and stores the accumulators half as often as three taps and two a pass)
    wa0, wa1, wa2, wa3, wa4 = wa[0], wa[1], wa[2], wa[3], wa[4]
    wb0, wb1, wb2, wb3, wb4 = wb[0], wb[1], wb[2], wb[3], wb[4]
    n = d0.shape[0]
    s0, s1, s2 = s[at : at + n], s[at + nb : at + nb + n], s[at + 2 * nb : at + 2 * nb + n]
    s3, s4 = s[at + 3 * nb : at + 3 * nb + n], s[at + 4 * nb : at + 4 * nb + n]
    for q in range(n):
        x0, x1, x2, x3, x4 = s0[q], s1[q], s2[q], s3[q], s4[q]
        d0[q] += wa0 * x0 + wa1 * x1 + wa2 * x2 + wa3 * x3 + wa4 * x4
        d1[q] += wb0 * x0 + wb1 * x1 + wb2 * x2 + wb3 * x3 + wb4 * x4


@njit(inline="always")
def _add_window(a0, a1, wc, s, wp, nb, lo, hi):
    # a0[lo:hi], a1[lo:hi] += the window of two output channels over one input channel's padded plane s: sum over
    # (i, j) of wc[i, k, j] * s[q + (i*WP + j)*NB] for channel k, taps in (i, j) order. wc: (KH, 2, KW). Forward
    # and the input gradient's gather both run it.
    kh, kw = wc.shape[0], wc.shape[2]
    if kh == 3 and kw == 3:
        _taps9(a0, a1, wc, s, wp, nb, lo, hi)
        return
    n = hi - lo
    d0, d1 = a0[lo:hi], a1[lo:hi]
    for i in range(kh):
        wa, wb = wc[i, 0], wc[i, 1]
        row = lo + i * wp * nb
        if kw == 5:
            _taps5(d0, d1, wa, wb, s, row, nb)
            continue
        for j in range(0, kw - 2, 3):  # other widths: three taps a pass, then the one or two left
            at = row + j * nb
            _taps3(d0, d1, wa[j:], wb[j:], s[at : at + n], s[at + nb : at + nb + n], s[at + 2 * nb : at + 2 * nb + n])
        j = kw - kw % 3
        at = row + j * nb
        if kw % 3 == 2:
            _taps2(d0, d1, wa[j:], wb[j:], s[at : at + n], s[at + nb : at + nb + n])
        elif kw % 3 == 1:
            _taps1(d0, d1, wa[j:], wb[j:], s[at : at + n])


# error_model "numpy" for the inlined sigmoid (see cpu_sigmoid.sigmoid_run_); fastmath 'contract': fused
# multiply-adds
@njit(parallel=True, cache=True, error_model="numpy", fastmath={"contract"})
def _forward(x, wr, b, act, ph, pw, nb, y):
    # One parallel iteration per block of groups of NB samples; for each group, output channels two at a time,
    # every tap added over the whole run (the sum starts at the bias and adds the taps in (c, i, j) order).
    # wr: the weights as (pairs, C, KH, 2, KW), see _pairs
    n_, c_, h_, w_ = x.shape
    o_, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    wp = w_ + 2 * pw
    run, plane = _run_and_plane(oh, ow, h_ + 2 * ph, wp, nb)
    pairs = wr.shape[0]
    groups, blocks = _blocks_of(n_, nb, 64)
    for blk in prange(blocks):
        buf = np.zeros((c_, plane), dtype=y.dtype)
        acc = np.empty((2, run), dtype=y.dtype)
        for grp in range(blk * groups // blocks, (blk + 1) * groups // blocks):
            n0 = grp * nb
            m = min(nb, n_ - n0)
            _pack(x, n0, m, nb, ph, pw, buf)  # a short last group's empty lanes: computed, never written out
            for pr in range(pairs):
                acc[0, :] = b[2 * pr]
                acc[1, :] = b[min(2 * pr + 1, o_ - 1)]
                for c in range(c_):
                    _add_window(acc[0], acc[1], wr[pr, c], buf[c], wp, nb, 0, run)
                for k in range(min(2, o_ - 2 * pr)):
                    if act == 2:  # float32 only (see forward); the thrown-away columns too, it is one long run
                        sigmoid_run_(acc[k])
                    for lane in range(m):
                        for oy in range(oh):
                            _unpack_row(acc[k, oy * wp * nb + lane :], nb, act == 1, y[n0 + lane, 2 * pr + k, oy])


# _backward's fixed number of blocks of sample groups, each with its own partial sums (float64), added up in order
_BLOCKS = 16


@njit(inline="always")
def _dots3(ga, gb, s0, s1, s2):
    # the six dot products of two gradient runs with three tap runs, sharing their loads
    a0 = a1 = a2 = b0 = b1 = b2 = ga.dtype.type(0)
    for q in range(ga.shape[0]):
        a0 += ga[q] * s0[q]
        a1 += ga[q] * s1[q]
        a2 += ga[q] * s2[q]
        b0 += gb[q] * s0[q]
        b1 += gb[q] * s1[q]
        b2 += gb[q] * s2[q]
    return a0, a1, a2, b0, b1, b2


@njit(inline="always")
def _dots5(ga, gb, s, at, nb):
    # the ten dot products of two gradient runs with the five tap runs of a window row starting at s[at]
    n = ga.shape[0]
    s0, s1, s2 = s[at : at + n], s[at + nb : at + nb + n], s[at + 2 * nb : at + 2 * nb + n]
    s3, s4 = s[at + 3 * nb : at + 3 * nb + n], s[at + 4 * nb : at + 4 * nb + n]
    a0 = a1 = a2 = a3 = a4 = b0 = b1 = b2 = b3 = b4 = ga.dtype.type(0)
    for q in range(n):
        g, h = ga[q], gb[q]
        x0, x1, x2, x3, x4 = s0[q], s1[q], s2[q], s3[q], s4[q]
        a0 += g * x0
        a1 += g * x1
        a2 += g * x2
        a3 += g * x3
        a4 += g * x4
        b0 += h * x0
        b1 += h * x1
        b2 += h * x2
        b3 += h * x3
        b4 += h * x4
    return a0, a1, a2, a3, a4, b0, b1, b2, b3, b4


@njit(inline="always")
def _dots9(ga, gb, s, wp, nb):
    # the eighteen dot products of two gradient runs with the nine tap runs of a 3x3 window, in (channel, i, j)
    # order, sharing their loads
    n = ga.shape[0]
    r0, r1, r2 = 0, wp * nb, 2 * wp * nb
    s00, s01, s02 = s[r0 : r0 + n], s[r0 + nb : r0 + nb + n], s[r0 + 2 * nb : r0 + 2 * nb + n]
    s10, s11, s12 = s[r1 : r1 + n], s[r1 + nb : r1 + nb + n], s[r1 + 2 * nb : r1 + 2 * nb + n]
    s20, s21, s22 = s[r2 : r2 + n], s[r2 + nb : r2 + nb + n], s[r2 + 2 * nb : r2 + 2 * nb + n]
    z = ga.dtype.type(0)
    a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = z
    b00 = b01 = b02 = b10 = b11 = b12 = b20 = b21 = b22 = z
    for q in range(n):
        g, h = ga[q], gb[q]
        x00, x01, x02, x10, x11, x12 = s00[q], s01[q], s02[q], s10[q], s11[q], s12[q]
        x20, x21, x22 = s20[q], s21[q], s22[q]
        a00 += g * x00
        a01 += g * x01
        a02 += g * x02
        a10 += g * x10
        a11 += g * x11
        a12 += g * x12
        a20 += g * x20
        a21 += g * x21
        a22 += g * x22
        b00 += h * x00
        b01 += h * x01
        b02 += h * x02
        b10 += h * x10
        b11 += h * x11
        b12 += h * x12
        b20 += h * x20
        b21 += h * x21
        b22 += h * x22
    return (a00, a01, a02, a10, a11, a12, a20, a21, a22, b00, b01, b02, b10, b11, b12, b20, b21, b22)


@njit(inline="always")
def _act_grad_row(act, yr, gr, one, zero, dst):
    for ox in range(dst.shape[0]):
        if act == 1:
            dst[ox] = gr[ox] if yr[ox] > 0 else zero
        elif act == 2:
            dst[ox] = (one - yr[ox]) * yr[ox] * gr[ox]
        else:
            dst[ox] = gr[ox]


@njit(inline="always")
def _act_grad_into(y, gy, act, n0, m, nb, wp, gp):
    # gp[o] in the block's interleaved pitch = gy * act'(y) for samples n0 .. n0+m-1 (act 0: none, 1: relu,
    # 2: sigmoid); the extra columns and the lanes >= m stay as the caller zeroed them. The bias gradient is
    # summed from gp by the caller. Without interleaving (NB = 1) a row of gp is contiguous: a vector loop.
    o_, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    one, zero = gp.dtype.type(1), gp.dtype.type(0)
    for lane in range(m):
        for o in range(o_):
            for oy in range(oh):
                yr, gr = y[n0 + lane, o, oy], gy[n0 + lane, o, oy]
                at = oy * wp * nb + lane
                if nb == 1:
                    _act_grad_row(act, yr, gr, one, zero, gp[o, at : at + ow])
                else:
                    _act_grad_row(act, yr, gr, one, zero, gp[o, at : at + (ow - 1) * nb + 1 : nb])


# fastmath 'reassoc' lets LLVM split each dot product over vector lanes (a fixed order for this compiled code, so
# still deterministic); without it a float sum runs one element at a time. 'contract': fused multiply-adds.
@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _backward(x, y, gy, act, wt, ph, pw, nb, want_gx, gx, part, gb_part):
    # One parallel iteration per block of groups of NB samples. For each group: the activation's gradient g, laid
    # out in the interleaved padded pitch (gp); the bias gradient and the weight gradient into the block's partial
    # sums (dot products of g with the tap runs of the padded input); and, when want_gx, the input gradient as the
    # adjoint of _forward, a scatter: each tap adds w * g back onto the run of padded input pixels it read, for
    # two input channels and up to five output channels per pass, in (c, i, j, o) order. The padded plane's
    # border collects what fell into the padding and is dropped. wt: the weights as (pairs, KH, KW, 2, O), see
    # _pairs; for a 3x3 window, whose input gradient is a gather (_taps9 over g with the window flipped), the
    # flipped window with input channels in pairs, (pairs, O, 3, 2, 3).
    n_, c_, h_, w_ = x.shape
    o_, oh, ow = gy.shape[1], gy.shape[2], gy.shape[3]
    kh, kw = h_ + 2 * ph - oh + 1, w_ + 2 * pw - ow + 1
    wp = w_ + 2 * pw
    run, plane = _run_and_plane(oh, ow, h_ + 2 * ph, wp, nb)
    window3 = kh == 3 and kw == 3
    margin = (2 * wp + 2) * nb if window3 else 0  # zeros before g's run, for the gather's taps above and left
    pairs, in_pairs = (o_ + 1) // 2, wt.shape[0]
    tap_groups = (kw + 2) // 3
    groups, blocks = _blocks_of(n_, nb, part.shape[0])
    for blk in prange(blocks):
        xp = np.zeros((c_, plane), dtype=gy.dtype)  # the last group of three taps may run past KW: dropped
        gp = np.zeros((2 * pairs, run), dtype=gy.dtype)  # an odd last channel's partner stays 0
        # for the 3x3 input gradient: g again, with zeros around it for the gather's taps above and to the left
        gpm = np.zeros((o_, margin + plane) if window3 and want_gx else (0, 0), dtype=gy.dtype)
        gxp = np.empty((2 * in_pairs, plane), dtype=gy.dtype)
        for grp in range(blk * groups // blocks, (blk + 1) * groups // blocks):
            n0 = grp * nb
            m = min(nb, n_ - n0)
            if m < nb:  # a short last group: its empty lanes' gradients must add nothing (their inputs, another
                gp[:, :] = 0  # sample's of this batch, are then multiplied by 0 only)
            _pack(x, n0, m, nb, ph, pw, xp)
            _act_grad_into(y, gy, act, n0, m, nb, wp, gp)
            for o in range(o_):
                total = 0.0
                for q in range(run):
                    total += gp[o, q]
                gb_part[blk, o] += total
            for pr in range(pairs):
                for c in range(c_):
                    if window3:
                        sums9 = _dots9(gp[2 * pr], gp[2 * pr + 1], xp[c], wp, nb)
                        for k in range(18):
                            part[blk, 2 * pr + k // 9, c, (k % 9) // 3, k % 3] += sums9[k]
                        continue
                    for i in range(kh):
                        if kw == 5:
                            sums5 = _dots5(gp[2 * pr], gp[2 * pr + 1], xp[c], i * wp * nb, nb)
                            for k in range(10):
                                part[blk, 2 * pr + k // 5, c, i, k % 5] += sums5[k]
                            continue
                        for jg in range(tap_groups):
                            at = (i * wp + 3 * jg) * nb
                            s0, s1, s2 = xp[c, at:], xp[c, at + nb :], xp[c, at + 2 * nb :]
                            sums = _dots3(gp[2 * pr], gp[2 * pr + 1], s0, s1, s2)
                            for k in range(6):
                                part[blk, 2 * pr + k // 3, c, i, 3 * jg + k % 3] += sums[k]
            if not want_gx:
                continue
            if window3:
                # gx as a forward convolution of g with the flipped window, a gather into each input pixel:
                # gxpad[c, p] = sum over (o, i, j) of w[o, c, 2-i, 2-j] * gpm[o, p + (i*WP + j)*NB], two input
                # channels at a time, only over the rows kept (the padding rows are dropped)
                lo, hi = ph * wp * nb, (ph + h_) * wp * nb
                for o in range(o_):
                    gpm[o, margin : margin + run] = gp[o]
                for pr in range(in_pairs):
                    gxp[2 * pr, lo:hi] = 0
                    gxp[2 * pr + 1, lo:hi] = 0
                    for o in range(o_):
                        _taps9(gxp[2 * pr], gxp[2 * pr + 1], wt[pr, o], gpm[o], wp, nb, lo, hi)
            else:
                # other windows: the scatter, each tap's w * g added onto the run of input pixels it read, up to five
                # output channels a pass (g's rows are `run` apart in gflat). Without padding the gather would cover
                # every input pixel, LeNet's 12x12 for 8x8 outputs: 1.6x the work.
                gxp[:, :] = 0
                gflat = gp.reshape(-1)
                for pr in range(in_pairs):
                    for i in range(kh):
                        for j in range(kw):
                            at = (i * wp + j) * nb
                            d0, d1 = gxp[2 * pr, at : at + run], gxp[2 * pr + 1, at : at + run]
                            wa, wb = wt[pr, i, j, 0], wt[pr, i, j, 1]
                            for o in range(0, o_ - 4, 5):
                                _taps5(d0, d1, wa[o:], wb[o:], gflat, o * run, run)
                            o = o_ - o_ % 5
                            if o_ % 5 >= 3:
                                _taps3(d0, d1, wa[o:], wb[o:], gp[o], gp[o + 1], gp[o + 2])
                                o += 3
                            if o_ - o == 2:
                                _taps2(d0, d1, wa[o:], wb[o:], gp[o], gp[o + 1])
                            elif o_ - o == 1:
                                _taps1(d0, d1, wa[o:], wb[o:], gp[o])
            for lane in range(m):
                for c in range(c_):
                    for r in range(h_):
                        _unpack_row(gxp[c, ((r + ph) * wp + pw) * nb + lane :], nb, False, gx[n0 + lane, c, r])


def _pairs(w: np.ndarray, axis: int, dtype) -> np.ndarray:
    """w (O, C, KH, KW) with its channels along `axis` (0: output, 1: input) grouped in pairs, the pair's two
    weights of a tap next to each other: (pairs, C, KH, 2, KW) for axis 0 (forward), (pairs, KH, KW, 2, O) for
    axis 1 (backward's input gradient). An odd last channel's partner has zero weights; its sums are thrown away.
    Built here, not in the kernels: numba runs an array assignment outside prange as a parallel loop of its own,
    and a few of those cost more than the whole convolution of a small layer."""
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


# Samples are interleaved when one sample's run is shorter than RUN_MIN: RUN_MIN // run of them (LeNet's second
# layer, 92 pixels a sample: 11; its first, 668: 1, as VGG's large planes; docs/fast-paths.md).
RUN_MIN = 1024
INTERLEAVE_MAX = 16


def interleave(n: int, out_hw, kernel) -> int:
    """How many samples the kernels interleave for a layer of these shapes (see RUN_MIN)."""
    (oh, ow), kw = out_hw, kernel[1]
    per_sample = (oh - 1) * (ow + kw - 1) + ow  # stride 1: the padded row pitch WP is OW + KW - 1
    return max(1, min(n, INTERLEAVE_MAX, RUN_MIN // per_sample))


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, act: str | None, stride, pad, out=None, nb: int | None = None
) -> np.ndarray:
    """x: (N, C, H, W), w: (O, C, KH, KW), b: (O,) or None -> out (N, O, OH, OW) = act(conv(x, w) + b); act None,
    'relu' or 'sigmoid'. Stride 1. nb: samples interleaved per block (default: `interleave`)."""
    _check_window(stride, "plane conv forward")
    _check_channels(x, w, "plane conv forward")
    (n, _, h, wd), (o, _, kh, kw), (ph, pw) = x.shape, w.shape, pad
    out_hw = (out_size(h, kh, 1, ph), out_size(wd, kw, 1, pw))
    y = output(out, (n, o, *out_hw), x.dtype, "plane conv forward")
    bias = np.zeros(o, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    nb = nb or interleave(n, out_hw, (kh, kw))
    # the sigmoid is fused for float32 (cpu_sigmoid's exp is a float32 one), a pass of its own for float64
    fused = act != "sigmoid" or x.dtype == np.float32
    code = ACT_CODE[act if fused else None]
    _forward(np.ascontiguousarray(x), _pairs(w, 0, x.dtype), bias, code, ph, pw, nb, y)
    if not fused:
        sigmoid_after(act, y)
    return y


def backward(
    x: np.ndarray,
    y: np.ndarray,
    gy: np.ndarray,
    act: str | None,
    w: np.ndarray,
    stride,
    pad,
    gx: np.ndarray | None,
    nb: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The layer's backward in one pass: x (N, C, H, W), its output y and head gradient gy (N, O, OH, OW), act None,
    'relu' or 'sigmoid' (y is only read for them), w (O, C, KH, KW) -> (gw (O, C, KH, KW), gb (O,)), and the input
    gradient written into gx (N, C, H, W) when it is given. With g = gy * act'(y):
        gb[o] = sum of g[:, o];   gw = the dot products of g with the tap runs of x;   gx = the adjoint of forward.
    nb: samples interleaved per block (default: `interleave`)."""
    _check_window(stride, "plane conv backward")
    _check_channels(x, w, "plane conv backward")
    (n, c, h, wd), (o, _, kh, kw), (ph, pw) = x.shape, w.shape, pad
    out_shape = (n, o, out_size(h, kh, 1, ph), out_size(wd, kw, 1, pw))
    if gy.shape != out_shape or y.shape != out_shape:
        raise ValueError(f"plane conv backward: gy {gy.shape} and y {y.shape} must be {out_shape}, x's output")
    dtype = x.dtype  # the layer's: a head gradient may come in another float type
    nb = nb or interleave(n, out_shape[2:], (kh, kw))
    blocks = min(-(-n // nb), _BLOCKS)
    part = np.zeros((blocks, (o + 1) // 2 * 2, c, kh, (kw + 2) // 3 * 3), dtype=np.float64)
    gb_part = np.zeros((blocks, o), dtype=np.float64)
    want_gx = gx is not None
    gx = output(gx, x.shape, dtype, "plane conv backward") if want_gx else np.empty((0, c, h, wd), dtype)
    args = (np.ascontiguousarray(a, dtype=dtype) for a in (x, y, gy))
    if (kh, kw) == (3, 3):  # the gather's weights: input channels in pairs, the window flipped
        wt = _pairs(np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), 0, dtype)
    else:
        wt = _pairs(w, 1, dtype)
    _backward(*args, ACT_CODE[act], wt, ph, pw, nb, want_gx, gx, part, gb_part)
    gw = part.sum(axis=0)[:o, :, :, :kw].astype(dtype)  # blocks added in order; the dropped taps cut off
    return gw, gb_part.sum(axis=0)
