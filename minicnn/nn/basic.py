"""`Dense`, `Dropout`, `Flatten`, `Activation`, and the input checks every layer shares."""

from __future__ import annotations

import math

from .. import init as _init
from .. import ops
from ..autograd import NDArray
from ..backend.shapes import integer
from ..errors import ShapeError
from .block import Block


def check_input(layer: str, x, ndim: int | None = None, what: str = "") -> NDArray:
    """x as an NDArray with the expected number of dimensions, or a ShapeError naming the layer."""
    if not isinstance(x, NDArray):
        raise TypeError(f"{layer}: expected an NDArray input (minicnn.array(...)), got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ShapeError(f"{layer}: expected a {ndim}-D input {what}, got shape {x.shape}")
    return x


def require_initialized(layer: str, param, x: NDArray) -> NDArray:
    """The parameter's values, checked to live on the same device as the input."""
    w = param.data()
    if type(w.data) is not type(x.data):
        raise ValueError(
            f"{layer}: the input is on {x.context} but the parameters are on {w.context}; "
            f"move the input with x.as_in_context(ctx) or initialise the network with ctx=..."
        )
    return w


class Dense(Block):
    """x: (N, ...) flattened to (N, K) -> (N, units); weight (units, K), bias (units,)."""

    alias = "dense"

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        in_units: int = 0,
        weight_initializer=None,
        bias_initializer="zeros",
        prefix: str | None = None,
    ):
        super().__init__(prefix)
        self.units = integer(units, f"{self.name}: units")
        if self.units <= 0:
            raise ValueError(f"{self.name}: units must be positive, got {units}")
        self.activation = ops.activation.check_activation(activation)
        self.params("weight", (self.units, integer(in_units, f"{self.name}: in_units")), init=weight_initializer)
        if use_bias:
            self.params("bias", (self.units,), init=_init.create(bias_initializer))
        else:
            self.bias = None

    def forward(self, x):
        x = check_input(self.name, x)
        if x.ndim < 2:
            raise ShapeError(f"{self.name}: expected an input (N, ...) with a batch axis, got shape {x.shape}")
        k = math.prod(x.shape[1:])
        if not self.weight.shape_known:
            self.weight._finish_deferred((self.units, k))
        w = require_initialized(self.name, self.weight, x)
        if k != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {x.shape} flattens to {k} features but the layer was initialised for "
                f"{w.shape[1]} (weight {w.shape})"
            )
        args = (x, w) if self.bias is None else (x, w, self.bias.data())
        return ops.Dense(self.name, self.activation)(*args)

    def _extra_repr(self) -> str:
        act = f", Activation({self.activation})" if self.activation else ""
        return f"{self.weight.shape[1] or None} -> {self.units}{act}"


class Dropout(Block):
    """Inverted dropout with probability `rate`, active only in training mode."""

    alias = "dropout"

    def __init__(self, rate: float, prefix: str | None = None):
        super().__init__(prefix)
        if not 0 <= rate < 1:
            raise ValueError(f"{self.name}: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, x):
        return ops.dropout(check_input(self.name, x), self.rate)

    def _extra_repr(self) -> str:
        return f"p = {self.rate}"


class Flatten(Block):
    """(N, ...) -> (N, prod(...))."""

    alias = "flatten"

    def forward(self, x):
        return ops.flatten(check_input(self.name, x))


class Activation(Block):
    """A standalone activation layer: Activation('relu') or Activation('sigmoid')."""

    alias = "activation"

    def __init__(self, activation: str, prefix: str | None = None):
        super().__init__(prefix)
        self.act = ops.activation.activation_function(activation)
        self.activation = activation

    def forward(self, x):
        return self.act()(check_input(self.name, x))
