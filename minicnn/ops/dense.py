"""Fully connected layer, Gluon style (flatten=True).

x: (N, ...) is flattened to (N, K); w: (U, K); b: (U,)  ->  y = x @ w^T + b : (N, U)
Backward: gx = gy @ w (reshaped to x's shape), gw = gy^T @ x, gb = sum_n gy.
An activation can be fused as in Conv2D: applied to y in place, undone in backward from y alone.
"""

from __future__ import annotations

import math

from ..autograd import Function
from ..errors import ShapeError
from . import activation


class Dense(Function):
    def __init__(self, name: str = "dense", act: str | None = None):
        self.name = name
        self.act = activation.check_activation(act)

    def forward(self, x, w, b=None):
        x2 = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1, which an empty batch cannot resolve
        if w.ndim != 2 or x2.shape[1] != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {tuple(x.shape)} flattens to {x2.shape[1]} features but the weight "
                f"{tuple(w.shape)} expects {w.shape[1] if w.ndim == 2 else '?'}"
            )
        self.x_shape, self.x2, self.w, self.has_bias = x.shape, x2, w, b is not None
        y = x2 @ w.T
        if b is not None:
            y += b
        if self.act is not None:
            self.y = activation.apply_(self.act, y)
        return y

    def backward(self, gy):
        if self.act is not None:
            gy = activation.grad(self.act, self.y, gy)
        gx = (gy @ self.w).reshape(self.x_shape) if self.needs_input_grad(0) else None
        gw = gy.T @ self.x2
        return (gx, gw) + ((gy.sum(axis=0),) if self.has_bias else ())


def dense(x, weight, bias=None, name: str = "dense", act: str | None = None):
    f = Dense(name, act)
    return f(x, weight) if bias is None else f(x, weight, bias)
