"""The SGD update in one pass (CPU, numba): `w += -lr/batch * g` without a temporary.

The textbook update (`optim.py`) is NumPy's `w -= lr/batch * g`, which first writes `lr/batch * g` to a new array
as large as the parameter. Here each element is updated in place; the rounding is the same (a negation is exact).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _axpy(y, a, x):
    for i in prange(y.size):
        y[i] += a * x[i]


def axpy_(y: np.ndarray, alpha: float, x: np.ndarray) -> None:
    """y += alpha * x in place, in y's dtype; y and x C-contiguous, of one shape and dtype (dispatch.sgd)."""
    _axpy(y.reshape(-1), y.dtype.type(alpha), x.reshape(-1))
