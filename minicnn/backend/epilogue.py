"""The convolution's epilogues written with plain array operations, for any array module (NumPy or CuPy).

These are the readable definitions. The CPU backend runs fused numba kernels instead (`cpu.bias_act`,
`cpu.act_grad`: one pass over memory instead of four), and the tests check those against these; the GPU
backend uses these as they are (CuPy fuses nothing, but a GPU streams memory an order of magnitude faster).

    bias_act:  y2, the GEMM's output           ->  out (N, O, P) = act(y2 + b), laid out as NCHW
    act_grad:  y, gy (N, O, P)                 ->  out = gy * act'(y), laid out for the GEMMs;
               gb (O,) += the sum of out over all but its channel axis (the bias gradient)

    sigmoid_:  x                              ->  x = 1 / (1 + e^-x), in place

The GEMMs' layout is (O, N*P) on the im2col and Winograd paths and (N, O, P), NCHW itself, on the pointwise path
(1x1 convolutions, `ops/conv.py`): there bias_act may run in place (y2 is out) and act_grad changes no layout.
"""

from __future__ import annotations

import numpy as np


def sigmoid_(x, xp):
    """x = 1 / (1 + e^-x) in place, in four passes of array module xp (NumPy or CuPy). Where e^-x overflows
    (x < -88 in float32) it is inf and 1 / (1 + inf) = 0, the right limit: no warning."""
    xp.negative(x, out=x)
    with np.errstate(over="ignore"):
        xp.exp(x, out=x)
    x += 1
    xp.reciprocal(x, out=x)
    return x


def bias_act(y2, b, act: str | None, out):
    from ..ops import activation  # noqa: PLC0415 - ops import the backends, not the other way round

    n, o, p = out.shape
    if y2 is not out:  # the pointwise path runs it in place
        out[...] = y2 if y2.ndim == 3 else y2.reshape(o, n, p).transpose(1, 0, 2)
    if b is not None:
        out += b.reshape(1, o, 1)
    if act is not None:
        activation.apply_(act, out)
    return out


def act_grad(y, gy, act: str | None, out, gb):
    from ..ops import activation  # noqa: PLC0415

    n, o, p = y.shape
    g = gy if act is None else activation.grad(act, y, gy)
    if out.ndim == 3:
        out[...] = g
    else:
        out.reshape(o, n, p)[...] = g.transpose(1, 0, 2)
    if gb is not None:
        gb += g.sum(axis=(0, 2))
    return out
