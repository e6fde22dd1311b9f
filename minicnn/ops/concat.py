"""Concatenation along one axis (the Inception block joins its four paths along channels, dim=1)."""

from __future__ import annotations

from .. import backend
from ..autograd import Function, NDArray
from ..errors import ShapeError


class Concat(Function):
    """y = [x1 | x2 | ...] along `dim`; backward cuts gy back into the pieces."""

    def __init__(self, dim: int):
        self.dim = dim

    def forward(self, *xs):
        shapes = [tuple(x.shape) for x in xs]
        ref = shapes[0]
        dim = self.dim % len(ref)
        for s in shapes:
            if len(s) != len(ref) or any(a != b for i, (a, b) in enumerate(zip(s, ref)) if i != dim):
                raise ShapeError(f"concat(dim={self.dim}): shapes {shapes} differ outside dimension {self.dim}")
        self.sizes = [s[dim] for s in shapes]
        self.axis = dim
        return backend.of(xs[0]).xp.concatenate(xs, axis=dim)

    def backward(self, gy):
        out, start = [], 0
        for size in self.sizes:
            index = [slice(None)] * gy.ndim
            index[self.axis] = slice(start, start + size)
            out.append(gy[tuple(index)])
            start += size
        return tuple(out)


def concat(*xs: NDArray, dim: int = 1) -> NDArray:
    """Like `mxnet.nd.concat(*xs, dim=1)`."""
    if not xs:
        raise ValueError("concat needs at least one array")
    return Concat(dim)(*xs)
