"""Inverted dropout: in training, y = x * mask with mask = 0 (probability p) or 1/(1-p); else y = x.

Scaling the kept values at training time means prediction needs no rescaling. Backward: dx = gy * mask.
In data-parallel training, x holds rows lo:hi of a global batch (`random.batch_rows`): the mask is drawn for the
whole batch, as in one process, and its rows lo:hi are used.
"""

from __future__ import annotations

from .. import backend, random
from ..autograd import Function, NDArray, is_training


class Dropout(Function):
    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(x: NDArray, rate: float, mask=None) -> NDArray:
    """Apply dropout with `rate` when training (inside `autograd.record()`); the identity otherwise.

    `mask` (same shape as x, values 0 or 1/(1-rate)) replaces the random one, e.g. to compare with MXNet.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if not is_training() or rate == 0:
        return x
    if mask is None:
        be = backend.of(x.data)
        rows = random.batch_rows()
        if rows is not None and rows[1] - rows[0] == x.shape[0]:  # this process's shard of a global batch
            lo, hi, n = rows
            mask = be.dropout_mask((n, *x.shape[1:]), rate, x.dtype, random.generator(be.name))[lo:hi]
        else:
            mask = be.dropout_mask(x.shape, rate, x.dtype, random.generator(be.name))
    return Dropout(mask.data if isinstance(mask, NDArray) else mask)(x)
