"""Elementwise activations, as Functions and as in-place helpers that Conv2D and Dense fuse into their output.

Both derivatives can be computed from the output y alone, so a fused layer keeps only y (one array instead of
the pre-activation and the activation) and saves a pass over memory in each direction.

    relu:    y = max(x, 0)                   dx = gy * (y > 0)       (the subgradient at 0 is 0, as in MXNet)
    sigmoid: y = 1 / (1 + e^-x)              dx = gy * y * (1 - y)

sigmoid is computed exactly as written, like MXNet: for x < -88 (float32) e^-x overflows to inf and y becomes
0, the right limit; (1 + tanh(x/2)) / 2 would avoid the overflow but loses all relative precision below about
-17 (sigmoid(-20) = 2.1e-9 would come out as 0).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import Function
from ..fast import cpu_sigmoid, dispatch


def sigmoid_(x):
    """x = 1 / (1 + e^-x) in place, in four passes. Where e^-x overflows (x < -88 in float32) it is inf, and
    1 / (1 + inf) = 0 is the right limit: no warning. (CPU float32 arrays take the vectorised kernel of
    fast/cpu_sigmoid.py, as exact as this formula, outside textbook mode.)"""
    if dispatch.sigmoid(x):
        return cpu_sigmoid.sigmoid_(x)
    xp = backend.of(x).xp
    xp.negative(x, out=x)
    with np.errstate(over="ignore"):
        xp.exp(x, out=x)
    x += 1
    return xp.reciprocal(x, out=x)


def apply_(name: str, x):
    """Apply activation `name` to array x in place and return it."""
    if name == "relu":
        backend.of(x).xp.maximum(x, 0, out=x)
    elif name == "sigmoid":
        sigmoid_(x)
    else:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)} or None")
    return x


def grad(name: str, y, gy):
    """d loss / d x of activation `name`, given its output y and d loss / d y."""
    if name == "relu":
        return gy * (y > 0)
    if name == "sigmoid":
        g = 1 - y  # one temporary, updated in place: (1 - y) * y * gy
        g *= y
        g *= gy
        return g
    raise ValueError(f"unknown activation {name!r}")


class _Activation(Function):
    kind = ""

    def forward(self, x):
        self.y = apply_(self.kind, x.copy())
        return self.y

    def backward(self, gy):
        return grad(self.kind, self.y, gy)


class ReLU(_Activation):
    """y = max(x, 0)."""

    kind = "relu"


class Sigmoid(_Activation):
    """y = 1 / (1 + e^-x)."""

    kind = "sigmoid"


def relu(x):
    return ReLU()(x)


def sigmoid(x):
    return Sigmoid()(x)


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid}


def check_activation(name: str | None) -> str | None:
    """The name itself if minicnn knows it (None means no activation); a clear error otherwise."""
    if name is not None and name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)} or None")
    return name


def activation_function(name: str | None):
    """The Function class for an activation name (None -> None)."""
    return None if check_activation(name) is None else ACTIVATIONS[name]
