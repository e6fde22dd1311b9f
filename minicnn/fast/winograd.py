"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 stride-1 convolution with 2.25x fewer multiplications.

These are the readable definitions, plain NumPy operations; the fast convolution runs numba kernels for the four
tile transforms (`cpu_winograd.py`) and the tests check those against these.

A 2x2 block of outputs needs a 4x4 block of inputs d. With
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]        (4x4, input tiles)
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]            (4x3, filters)
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]                                      (2x4, output tiles)
one filter g (3x3) gives the 2x2 outputs  Y = A^T [ (G g G^T) * (B^T d B) ] A  (* elementwise): 16 multiplies
instead of 36. Summed over input channels c, the 16 elementwise products become 16 matrix products:

    V[xi, c, t] = (B^T d_{c,t} B)[xi]     (16, C, T), T = N * TH * TW tiles, TH = ceil(OH / 2)
    U[xi, o, c] = (G g_{o,c} G^T)[xi]      (16, O, C)
    M[xi]       = U[xi] @ V[xi]            (16, O, T): the GEMMs, 16 * O * C * T multiply-adds
    y[o, t]     = A^T M[:, o, t] A         the tile's 2x2 outputs (+ bias, activation)

Tile t = (n, ty, tx) reads the padded input rows 2*ty .. 2*ty+3 and columns 2*tx .. 2*tx+3 (the padded image
starts at (-PH, -PW)); tiles overlap by two rows and two columns. Outputs past OH or OW (odd sizes) are dropped.

Backward: every step above is linear, so each gradient is the adjoint (transpose) of its step:
    gM[xi, o, t] = (A gY_{o,t} A^T)[xi]    gY_{o,t}: the tile's 2x2 output gradient, zero past OH, OW
    gU[xi]       = gM[xi] @ V[xi]^T        ->  gw[o, c] = G^T gU[:, o, c] G
    gV[xi]       = U[xi]^T @ gM[xi]        ->  gx = the sum over tiles of B gV_{c,t} B^T, each added onto its 4x4
                                               window (the overlaps add up), the padding cut off

The transforms only add and subtract (B, A) or halve (G), so float32 rounding stays close to the direct
convolution's: the tests compare the two at float32 and float64.
"""

from __future__ import annotations

import numpy as np

from ..backend.shapes import winograd_tiles as tiles

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def _xp(a):
    return np if isinstance(a, np.ndarray) else __import__("cupy")


def _const(xp, m, dtype):
    return xp.asarray(m, dtype=dtype)


def input_transform(x, pad: tuple[int, int], oh: int, ow: int):
    """x: (N, C, H, W) -> V: (16, C, N*TH*TW)."""
    xp = _xp(x)
    n, c, h, w = x.shape
    (ph, pw), (th, tw) = pad, tiles(oh, ow)
    xpad = xp.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)  # every tile's window lies inside
    xpad[:, :, ph : ph + h, pw : pw + w] = x  # 2*TH+2 >= OH+2 = H+2*PH: the image fits
    d = xp.stack([xpad[:, :, i : i + 2 * th : 2, j : j + 2 * tw : 2] for i in range(4) for j in range(4)], axis=-1)
    d = d.reshape(n, c, th, tw, 4, 4)
    bt = _const(xp, B_T, x.dtype)
    v = xp.einsum("ai,bj,nctuij->abcntu", bt, bt, d)
    return xp.ascontiguousarray(v.reshape(16, c, n * th * tw))


def weight_transform(w):
    """w: (O, C, 3, 3) -> U: (16, O, C). G g G^T for every filter at once: with the filters flattened to rows of 9,
    U = (G kron G) @ w9^T, (16, 9) @ (9, O*C), one GEMM."""
    xp = _xp(w)
    o, c = w.shape[:2]
    gg = _const(xp, np.kron(G, G), w.dtype)
    return xp.matmul(gg, w.reshape(o * c, 9).T).reshape(16, o, c)


def output_transform(m, n: int, oh: int, ow: int):
    """M: (16, O, N*TH*TW) -> y: (N, O, OH, OW), without bias or activation."""
    xp = _xp(m)
    o = m.shape[1]
    th, tw = tiles(oh, ow)
    at = _const(xp, A_T, m.dtype)
    y = xp.einsum("ia,jb,abontu->notiuj", at, at, m.reshape(4, 4, o, n, th, tw))
    return xp.ascontiguousarray(y.reshape(n, o, 2 * th, 2 * tw)[:, :, :oh, :ow])


def output_transform_grad(gy):
    """Adjoint of output_transform: gy (N, O, OH, OW) -> gM (16, O, N*TH*TW)."""
    xp = _xp(gy)
    n, o, oh, ow = gy.shape
    th, tw = tiles(oh, ow)
    gpad = xp.zeros((n, o, 2 * th, 2 * tw), dtype=gy.dtype)
    gpad[:, :, :oh, :ow] = gy
    at = _const(xp, A_T, gy.dtype)
    gm = xp.einsum("ia,jb,notiuj->abontu", at, at, gpad.reshape(n, o, th, 2, tw, 2))
    return xp.ascontiguousarray(gm.reshape(16, o, n * th * tw))


def weight_transform_grad(gu, kernel_shape: tuple[int, int, int, int]):
    """Adjoint of weight_transform: gU (16, O, C) -> gw (O, C, 3, 3) = (gU9^T @ (G kron G)) with gU9 (16, O*C)."""
    xp = _xp(gu)
    o, c = kernel_shape[:2]
    gg = _const(xp, np.kron(G, G), gu.dtype)
    return xp.matmul(gu.reshape(16, o * c).T, gg).reshape(o, c, 3, 3)


def input_transform_grad(gv, x_shape: tuple, pad: tuple[int, int], oh: int, ow: int):
    """Adjoint of input_transform: gV (16, C, N*TH*TW) -> gx (N, C, H, W)."""
    xp = _xp(gv)
    n, c, h, w = x_shape
    (ph, pw), (th, tw) = pad, tiles(oh, ow)
    bt = _const(xp, B_T, gv.dtype)
    gd = xp.einsum("ai,bj,abcntu->nctuij", bt, bt, gv.reshape(4, 4, c, n, th, tw))
    gpad = xp.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=gv.dtype)
    for i in range(4):
        for j in range(4):
            gpad[:, :, i : i + 2 * th : 2, j : j + 2 * tw : 2] += gd[..., i, j]
    return xp.ascontiguousarray(gpad[:, :, ph : ph + h, pw : pw + w])


def conv2d(x, w, b, pad: tuple[int, int]):
    """The whole convolution the readable way: x (N, C, H, W), w (O, C, 3, 3), b (O,) or None -> (N, O, OH, OW)."""
    xp = _xp(x)
    n, _, h, wd = x.shape
    oh, ow = h + 2 * pad[0] - 2, wd + 2 * pad[1] - 2
    m = xp.matmul(weight_transform(w), input_transform(x, pad, oh, ow))
    y = output_transform(m, n, oh, ow)
    return y if b is None else y + b.reshape(1, -1, 1, 1)
