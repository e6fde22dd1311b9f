"""Pooling layers: `MaxPool2D`, `AvgPool2D`, `GlobalAvgPool2D` (no parameters)."""

from __future__ import annotations

from .. import ops
from .basic import check_input
from .block import Block


class _Pool2D(Block):
    alias = "pool"
    op = None

    def __init__(self, pool_size=2, strides=None, padding=0, prefix: str | None = None):
        super().__init__(prefix)
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
    """Mean over each window, padding counted in the denominator."""

    op = ops.AvgPool2D


class GlobalAvgPool2D(Block):
    """(N, C, H, W) -> (N, C, 1, 1)."""

    alias = "pool"

    def forward(self, x):
        x = check_input(self.name, x, ndim=4, what="(N, C, H, W)")
        return ops.GlobalAvgPool2D(self.name)(x)
