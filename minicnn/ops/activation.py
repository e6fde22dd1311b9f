"""Elementwise activations."""

from __future__ import annotations

from .. import backend
from ..autograd import Function


class ReLU(Function):
    """y = max(x, 0); dx = gy where y > 0, else 0 (the subgradient at 0 is 0, as in MXNet)."""

    def forward(self, x):
        self.y = backend.of(x).xp.maximum(x, 0)
        return self.y

    def backward(self, gy):
        return gy * (self.y > 0)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2 so no exp overflows; dx = gy * y * (1 - y)."""

    def forward(self, x):
        xp = backend.of(x).xp
        half = x.dtype.type(0.5)
        self.y = half * (xp.tanh(half * x) + 1)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


def relu(x):
    return ReLU()(x)


def sigmoid(x):
    return Sigmoid()(x)


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid}


def activation_function(name: str | None):
    """The Function class for an activation name (None -> None); a clear error for unknown names."""
    if name is None:
        return None
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)} or None") from None
