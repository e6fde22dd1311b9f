"""numba kernels for the four tile transforms of Winograd's F(2x2, 3x3) convolution (the math and the readable
versions, which the tests compare these with, are in `winograd.py`).

Layouts: V, gV (16, C, T) and M, gM (16, O, T) with xi = 4*a + b and tile t = (n*TH + ty)*TW + tx; the output
side reads and writes the GEMM layout (O, N*OH*OW) or NCHW as the conv epilogues do.

Each kernel works on one row of tiles at a time: the 4x4 transforms split into a vertical pass over whole rows
(elementwise on contiguous rows: vectorised) and a horizontal pass along the row of tiles. One parallel iteration
owns one channel (input side) or one output channel (output side), so no two write the same memory and the
results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..backend.shapes import winograd_tiles
from .cpu_common import output
from .cpu_sigmoid import sigmoid_after

# The kernels that write V or gM gather _BLOCK tiles in a small buffer and store them as 16 runs: storing each
# tile's 16 values straight into 16 rows far apart keeps 16 write streams open per thread, several times slower.
_BLOCK = 256


# The 1-D transforms, applied first down the columns of a tile and then along its rows. Small enough for LLVM to
# keep a whole tile in registers; numba inlines them.
@njit(inline="always")
def _bt(d0, d1, d2, d3):  # B^T @ d
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(inline="always")
def _b(v0, v1, v2, v3):  # B @ v, the adjoint of _bt
    return v0, v1 - v2 + v3, v1 + v2 - v0, -v3


@njit(inline="always")
def _at(m0, m1, m2, m3):  # A^T @ m
    return m0 + m1 + m2, m1 - m2 - m3


@njit(inline="always")
def _a(g0, g1):  # A @ g, the adjoint of _at
    return g0, g0 + g1, g0 - g1, -g1


@njit(inline="always")
def _stage(buf, q, a, e):
    # row a (4 values) of tile q's transform into buf's column q % _BLOCK
    k = q % _BLOCK
    buf[4 * a, k], buf[4 * a + 1, k], buf[4 * a + 2, k], buf[4 * a + 3, k] = e


@njit(inline="always")
def _flush_when_full(buf, q, out):
    # buf holds tiles q-k .. q in its columns 0 .. k: store them into out (16, T) when it is full or q is the last.
    k = q % _BLOCK
    if k == _BLOCK - 1 or q == out.shape[1] - 1:
        out[:, q - k : q + 1] = buf[:, : k + 1]


@njit(parallel=True, cache=True)
def _input(x, ph, pw, th, tw, v):
    # v[4a+b, c, t] = (B^T d B)[a, b], d the tile's 4x4 window of the zero-padded input.
    n_, c_, h_, w_ = x.shape
    for c in prange(c_):
        rows = np.zeros((4, 2 * tw + 2), dtype=x.dtype)  # padded rows 2ty .. 2ty+3; outside the image they stay 0
        buf = np.empty((16, _BLOCK), dtype=x.dtype)
        for n in range(n_):
            for ty in range(th):
                for i in range(4):
                    hy = 2 * ty + i - ph
                    if 0 <= hy < h_:
                        rows[i, pw : pw + w_] = x[n, c, hy]
                    else:
                        rows[i, pw : pw + w_] = 0
                base = (n * th + ty) * tw
                for tx in range(tw):
                    q, j = base + tx, 2 * tx
                    c0 = _bt(rows[0, j], rows[1, j], rows[2, j], rows[3, j])
                    c1 = _bt(rows[0, j + 1], rows[1, j + 1], rows[2, j + 1], rows[3, j + 1])
                    c2 = _bt(rows[0, j + 2], rows[1, j + 2], rows[2, j + 2], rows[3, j + 2])
                    c3 = _bt(rows[0, j + 3], rows[1, j + 3], rows[2, j + 3], rows[3, j + 3])
                    for a in range(4):  # then B along each row a
                        _stage(buf, q, a, _bt(c0[a], c1[a], c2[a], c3[a]))
                    _flush_when_full(buf, q, v[:, c])


@njit(parallel=True, cache=True)
def _output_bias_act(m, b, act, th, tw, y):
    # y[n, o, 2ty+i, 2tx+j] = act((A^T M_t A)[i, j] + b[o]) for act 0 (none) or 1 (relu); outputs past OH, OW dropped.
    n_, o_, oh, ow = y.shape
    for o in prange(o_):
        src = m[:, o]  # (16, T)
        bo = b[o]
        for n in range(n_):
            for ty in range(th):
                base = (n * th + ty) * tw
                two_rows = 2 * ty + 1 < oh
                for tx in range(tw):
                    q = base + tx
                    c0 = _at(src[0, q], src[4, q], src[8, q], src[12, q])
                    c1 = _at(src[1, q], src[5, q], src[9, q], src[13, q])
                    c2 = _at(src[2, q], src[6, q], src[10, q], src[14, q])
                    c3 = _at(src[3, q], src[7, q], src[11, q], src[15, q])
                    for i in range(2 if two_rows else 1):
                        v0, v1 = _at(c0[i], c1[i], c2[i], c3[i])
                        v0, v1 = v0 + bo, v1 + bo
                        if act == 1:
                            v0 = v0 if not v0 <= 0 else 0  # max(v, 0), and a NaN stays NaN
                            v1 = v1 if not v1 <= 0 else 0
                        y[n, o, 2 * ty + i, 2 * tx] = v0
                        if 2 * tx + 1 < ow:
                            y[n, o, 2 * ty + i, 2 * tx + 1] = v1


@njit(parallel=True, cache=True)
def _output_grad(g2, n_, oh, ow, th, tw, gm):
    # gm[4a+b, o, t] = (A gY_t A^T)[a, b], gY_t the tile's 2x2 block of g2 (O, N*OH*OW), zero past OH, OW.
    o_ = g2.shape[0]
    p_ = oh * ow
    zero = g2.dtype.type(0)
    for o in prange(o_):
        src = g2[o]
        buf = np.empty((16, _BLOCK), dtype=g2.dtype)
        for n in range(n_):
            for ty in range(th):
                r0 = n * p_ + 2 * ty * ow
                r1 = r0 + ow
                two_rows = 2 * ty + 1 < oh
                base = (n * th + ty) * tw
                for tx in range(tw):
                    q, j = base + tx, 2 * tx
                    two_cols = j + 1 < ow
                    g00 = src[r0 + j]
                    g01 = src[r0 + j + 1] if two_cols else zero
                    g10 = src[r1 + j] if two_rows else zero
                    g11 = src[r1 + j + 1] if two_rows and two_cols else zero
                    c0 = _a(g00, g10)  # A down the tile's two columns
                    c1 = _a(g01, g11)
                    for a in range(4):  # then A along each row a
                        _stage(buf, q, a, _a(c0[a], c1[a]))
                    _flush_when_full(buf, q, gm[:, o])


@njit(parallel=True, cache=True)
def _input_grad(gv, ph, pw, th, tw, gx):
    # gx = sum over tiles of B gV_t B^T added onto the tile's 4x4 window of the padded plane, padding cut off.
    n_, c_, h_, w_ = gx.shape
    for c in prange(c_):
        plane = np.empty((2 * th + 2, 2 * tw + 2), dtype=gv.dtype)  # one sample's padded gradient plane
        src = gv[:, c]  # (16, T)
        for n in range(n_):
            plane[:] = 0
            for ty in range(th):
                base = (n * th + ty) * tw
                i = 2 * ty
                for tx in range(tw):
                    q, j = base + tx, 2 * tx
                    r0 = _b(src[0, q], src[1, q], src[2, q], src[3, q])  # B along each row a of gV_t
                    r1 = _b(src[4, q], src[5, q], src[6, q], src[7, q])
                    r2 = _b(src[8, q], src[9, q], src[10, q], src[11, q])
                    r3 = _b(src[12, q], src[13, q], src[14, q], src[15, q])
                    for col in range(4):  # then B down each column
                        d0, d1, d2, d3 = _b(r0[col], r1[col], r2[col], r3[col])
                        plane[i, j + col] += d0
                        plane[i + 1, j + col] += d1
                        plane[i + 2, j + col] += d2
                        plane[i + 3, j + col] += d3
            for hy in range(h_):
                gx[n, c, hy] = plane[ph + hy, pw : pw + w_]


def input_transform(x: np.ndarray, pad, out_hw, out: np.ndarray | None = None) -> np.ndarray:
    """x: (N, C, H, W) -> V: (16, C, N*TH*TW) (`winograd.input_transform`)."""
    (n, c, _, _), (th, tw) = x.shape, winograd_tiles(*out_hw)
    v = output(out, (16, c, n * th * tw), x.dtype, "winograd input transform")
    _input(np.ascontiguousarray(x), pad[0], pad[1], th, tw, v)
    return v


def output_bias_act(m: np.ndarray, b: np.ndarray | None, act: str | None, out: np.ndarray) -> np.ndarray:
    """M: (16, O, N*TH*TW) -> out (N, O, OH, OW) = act(A^T M A + b); act None, 'relu' or 'sigmoid'."""
    th, tw = winograd_tiles(*out.shape[2:])
    bias = np.zeros(out.shape[1], dtype=m.dtype) if b is None else b
    out = output(out, out.shape, m.dtype, "winograd output transform")
    _output_bias_act(np.ascontiguousarray(m), bias, 1 if act == "relu" else 0, th, tw, out)
    sigmoid_after(act, out)
    return out


def output_transform_grad(g2: np.ndarray, n: int, out_hw, out: np.ndarray | None = None) -> np.ndarray:
    """g2: (O, N*OH*OW), the conv epilogue's gradient layout -> gM: (16, O, N*TH*TW)."""
    (oh, ow), (th, tw) = out_hw, winograd_tiles(*out_hw)
    gm = output(out, (16, g2.shape[0], n * th * tw), g2.dtype, "winograd output gradient")
    _output_grad(np.ascontiguousarray(g2), n, oh, ow, th, tw, gm)
    return gm


def input_transform_grad(gv: np.ndarray, pad, out_hw, out: np.ndarray) -> np.ndarray:
    """gV: (16, C, N*TH*TW) -> out: gx (N, C, H, W)."""
    th, tw = winograd_tiles(*out_hw)
    gx = output(out, out.shape, gv.dtype, "winograd input gradient")
    _input_grad(np.ascontiguousarray(gv), pad[0], pad[1], th, tw, gx)
    return gx
