"""MXNet's `nd` functions that the chapter's cells call, on minicnn's NDArray:

    from minicnn import nd
    X = nd.random.uniform(shape=(1, 1, 224, 224))
    nd.zeros((1,), ctx=ctx), nd.array([0], ctx=ctx), nd.concat(p1, p2, dim=1)

Only these few are here (the ones above, and a handful of Gluon code's common element-wise functions, reductions
and constructors); the rest of minicnn's API is the NDArray's own.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import backend
from . import random as _random
from .autograd import NDArray
from .device import Context, cpu
from .ops import activation as _activation
from .ops import concat

__all__ = [
    "arange", "array", "concat", "dot", "exp", "flatten", "full", "log", "mean", "ones", "ones_like", "random",
    "relu", "sigmoid", "sum", "waitall", "zeros", "zeros_like",
]  # fmt: skip


def array(source, ctx: Context | None = None, dtype=None) -> NDArray:
    """An NDArray holding a copy of `source` on device `ctx` (default cpu()).

    Like `mxnet.nd.array`: the dtype is float32 unless given, or unless `source` is an NDArray.
    """
    if isinstance(source, NDArray):
        dtype = dtype or source.dtype
        source = source.asnumpy()
    ctx = ctx or cpu()
    host = np.array(source.get() if hasattr(source, "get") else source, dtype=dtype or np.float32)
    return NDArray(ctx.backend.asarray(host))


def zeros(shape, ctx: Context | None = None, dtype="float32") -> NDArray:
    return NDArray((ctx or cpu()).backend.xp.zeros(shape, dtype=dtype))


def ones(shape, ctx: Context | None = None, dtype="float32") -> NDArray:
    return NDArray((ctx or cpu()).backend.xp.ones(shape, dtype=dtype))


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


# ---- Gluon code's common functions, each the NDArray's own or an op --------------------------------------------
def relu(x: NDArray) -> NDArray:
    return _activation.relu(x)


def sigmoid(x: NDArray) -> NDArray:
    return _activation.sigmoid(x)


def exp(x: NDArray) -> NDArray:
    return x.exp()


def log(x: NDArray) -> NDArray:
    return x.log()


def sum(x: NDArray, axis=None, keepdims: bool = False) -> NDArray:  # noqa: A001 - MXNet's name
    return x.sum(axis, keepdims)


def mean(x: NDArray, axis=None, keepdims: bool = False) -> NDArray:
    return x.mean(axis, keepdims)


def flatten(x: NDArray) -> NDArray:
    """(N, ...) -> (N, prod(...))."""
    return x.flatten()


def zeros_like(x: NDArray) -> NDArray:
    return NDArray(x.xp.zeros_like(x.data))


def ones_like(x: NDArray) -> NDArray:
    return NDArray(x.xp.ones_like(x.data))


def full(shape, val, ctx: Context | None = None, dtype="float32") -> NDArray:
    return NDArray((ctx or cpu()).backend.xp.full(shape, val, dtype=dtype))


def arange(start, stop=None, step=1.0, repeat: int = 1, ctx: Context | None = None, dtype="float32") -> NDArray:
    """start, start + step, ... below stop (0 to start when stop is None), each value `repeat` times; float32."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(0, start, step)
    return array(np.repeat(values, repeat), ctx, dtype)


def waitall() -> None:
    """Wait until the devices have finished their work (the CPU's is done when a call returns)."""
    backend.synchronize_all()
