"""What the fast CPU kernels share: output buffers, activation codes, the columns a window tap covers."""

from __future__ import annotations

import numpy as np
from numba import njit

# The activations as the numba kernels know them: 0 none, 1 relu, 2 sigmoid.
ACT_CODE = {None: 0, "relu": 1, "sigmoid": 2}


def output(out, shape, dtype, what: str) -> np.ndarray:
    """A new array, or `out` when it is a C-contiguous array of exactly that shape and dtype (the kernels write
    through flat indices, so a strided view would be silently wrong)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{what}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}")
    return out


# Inlined into the kernels of cpu_im2col and cpu_direct. numba's disk cache (cache=True) checks only the file of
# the function it compiled: after editing this helper, delete the numba cache so that those kernels are rebuilt.
@njit(inline="always")
def tap_columns(j, w_, sw, pw, ow):
    """[lo, hi): the output columns xo whose tap j lands inside the image row, 0 <= xo*SW - PW + j < W."""
    lo = min(ow, max(0, (pw - j + sw - 1) // sw))
    return lo, max(lo, min(ow, (w_ - 1 + pw - j) // sw + 1))
