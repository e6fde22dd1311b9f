"""Pooling layers: `MaxPool2D`, `AvgPool2D`, `GlobalAvgPool2D` (no parameters)."""

from __future__ import annotations

from .. import ops
from .basic import check_input, only_defaults
from .block import Block


class _Pool2D(Block):
    """The arguments are Gluon's, in Gluon's order; layout and ceil_mode take only their defaults (NCHW, and the
    "valid" convention: output sizes rounded down)."""

    alias = "pool"
    op = None

    def __init__(self, pool_size=2, strides=None, padding=0, layout="NCHW", ceil_mode=False, prefix=None, params=None):
        super().__init__(prefix, params)
        only_defaults(self.name, layout=(layout, "NCHW"), ceil_mode=(bool(ceil_mode), False))
        self.op(pool_size, strides, padding, self.name)  # validates the arguments now, not at the first batch
        self.pool_size, self.strides, self.padding = pool_size, strides, padding

    def forward(self, x):
        x = check_input(self.name, x, ndim=4, what="(N, C, H, W)")
        return self.op(self.pool_size, self.strides, self.padding, self.name)(x)

    def _extra_repr(self) -> str:
        f = self.op(self.pool_size, self.strides, self.padding, self.name)
        return f"size={f.kernel}, stride={f.stride}, padding={f.pad}"


class MaxPool2D(_Pool2D):
    """Max over each window; floor output size; gradient to the first maximum."""

    op = ops.MaxPool2D


class AvgPool2D(_Pool2D):
    """Mean over each window, padding counted in the denominator (Gluon's count_include_pad=True, the only one
    supported)."""

    op = ops.AvgPool2D

    def __init__(
        self,
        pool_size=2,
        strides=None,
        padding=0,
        ceil_mode=False,  # Gluon's AvgPool2D puts ceil_mode before layout, its MaxPool2D after
        layout="NCHW",
        count_include_pad=True,
        prefix=None,
        params=None,
    ):
        super().__init__(pool_size, strides, padding, layout, ceil_mode, prefix, params)
        only_defaults(self.name, count_include_pad=(bool(count_include_pad), True))


class GlobalAvgPool2D(Block):
    """(N, C, H, W) -> (N, C, 1, 1)."""

    alias = "pool"

    def __init__(self, layout="NCHW", prefix=None, params=None):
        super().__init__(prefix, params)
        only_defaults(self.name, layout=(layout, "NCHW"))

    def forward(self, x):
        x = check_input(self.name, x, ndim=4, what="(N, C, H, W)")
        return ops.GlobalAvgPool2D(self.name)(x)
