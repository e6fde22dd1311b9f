"""MXNet's `nd` functions that the chapter's cells call, on minicnn's NDArray:

    from minicnn import nd
    X = nd.random.uniform(shape=(1, 1, 224, 224))
    nd.zeros((1,), ctx=ctx), nd.array([0], ctx=ctx), nd.concat(p1, p2, dim=1)

Only these few are here; the rest of minicnn's API is the Tensor's own.
"""

from __future__ import annotations

from types import SimpleNamespace

from . import array, ones, zeros  # the package's own: nd.array is mc.array
from . import random as _random
from .autograd import NDArray
from .device import Context
from .ops import concat

__all__ = ["array", "concat", "dot", "ones", "random", "zeros"]


def _uniform(low=0.0, high=1.0, shape=(1,), ctx: Context | None = None, dtype="float32") -> NDArray:
    """Values drawn uniformly from [low, high), from minicnn's seeded host generator."""
    return array(_random.host_generator().uniform(low, high, shape), ctx, dtype)


def _normal(loc=0.0, scale=1.0, shape=(1,), ctx: Context | None = None, dtype="float32") -> NDArray:
    """Values drawn from N(loc, scale^2), from minicnn's seeded host generator."""
    return array(_random.host_generator().normal(loc, scale, shape), ctx, dtype)


random = SimpleNamespace(uniform=_uniform, normal=_normal)


def dot(a: NDArray, b: NDArray) -> NDArray:
    """The matrix product of a (M, K) and b (K, N), differentiable (`a @ b`)."""
    return a @ b
