"""`nn.Conv2D`: a convolution layer with deferred input channels and an optional activation."""

from __future__ import annotations

from .. import init as _init
from .. import ops
from ..backend.shapes import check_window_args, integer, pair
from ..errors import ShapeError
from .basic import check_input, only_defaults, require_initialized
from .block import Block


class Conv2D(Block):
    """x: (N, C, H, W) -> (N, channels, OH, OW); weight (channels, C, KH, KW), bias (channels,).

    `in_channels=0` means "take C from the first input" (deferred initialisation). The arguments are Gluon's, in
    Gluon's order; dilation, groups and layout take only their defaults (the chapter's networks use no others).
    """

    alias = "conv"

    def __init__(
        self,
        channels: int,
        kernel_size,
        strides=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        layout: str = "NCHW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer=None,
        bias_initializer="zeros",
        in_channels: int = 0,
        prefix: str | None = None,
        params=None,
    ):
        super().__init__(prefix, params)
        only_defaults(self.name, layout=(layout, "NCHW"), groups=(groups, 1))
        if pair(dilation, f"{self.name}: dilation") != (1, 1):
            raise ValueError(
                f"{self.name}: dilation={dilation} is not supported; minicnn's convolutions take dilation 1"
            )
        self.channels = integer(channels, f"{self.name}: channels")
        self.kernel = pair(kernel_size, f"{self.name}: kernel_size")
        self.stride = pair(strides, f"{self.name}: strides")
        self.pad = pair(padding, f"{self.name}: padding")
        if self.channels <= 0:
            raise ValueError(f"{self.name}: channels must be positive, got {channels}")
        check_window_args(self.name, self.kernel, self.stride, self.pad)
        self.activation = ops.activation.check_activation(activation)
        c_in = integer(in_channels, f"{self.name}: in_channels")
        self.weight = self.params.get("weight", shape=(self.channels, c_in, *self.kernel), init=weight_initializer)
        if use_bias:
            self.bias = self.params.get("bias", shape=(self.channels,), init=_init.create(bias_initializer))
        else:
            self.bias = None

    def forward(self, x):
        x, w, b = self.checked_args(x)
        args = (x, w) if b is None else (x, w, b)
        return ops.Conv2D(self.stride, self.pad, self.name, self.activation)(*args)

    def checked_args(self, x) -> tuple:
        """(x, weight, bias or None) for this layer's convolution of x, after the checks of a call (input shape,
        initialisation, device, channels) and the deferred weight shape taken from x."""
        x = check_input(self.name, x, ndim=4, what="(N, C, H, W)")
        if not self.weight.shape_known:
            self.weight._finish_deferred((self.channels, x.shape[1], *self.kernel))
        w = require_initialized(self.name, self.weight, x)
        if x.shape[1] != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {x.shape} has {x.shape[1]} channels but the layer was initialised for "
                f"{w.shape[1]} (weight {w.shape}); feed (N, {w.shape[1]}, H, W) or re-create the network"
            )
        return x, w, None if self.bias is None else self.bias.data()

    def _extra_repr(self) -> str:
        c_in = self.weight.shape[1] or None
        act = f", Activation({self.activation})" if self.activation else ""
        return f"{c_in} -> {self.channels}, kernel_size={self.kernel}, stride={self.stride}, padding={self.pad}{act}"
