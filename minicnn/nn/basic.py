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


def only_defaults(layer: str, **given) -> None:
    """A ValueError naming the first Gluon argument given another value than the only one minicnn supports:
    given = {name: (value, the supported value)}."""
    for name, (value, supported) in given.items():
        if value != supported:
            raise ValueError(f"{layer}: {name}={value!r} is not supported; minicnn takes only {name}={supported!r}")


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
    """x: (N, ...) flattened to (N, K) -> (N, units); weight (units, K), bias (units,).

    With flatten=False the layer acts on the last axis alone, as in Gluon: x (..., K) -> (..., units). The arguments
    are Gluon's, in Gluon's order."""

    alias = "dense"

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        flatten: bool = True,
        dtype="float32",
        weight_initializer=None,
        bias_initializer="zeros",
        in_units: int = 0,
        prefix: str | None = None,
        params=None,
    ):
        super().__init__(prefix, params)
        self.units = integer(units, f"{self.name}: units")
        if self.units <= 0:
            raise ValueError(f"{self.name}: units must be positive, got {units}")
        self.activation = ops.activation.check_activation(activation)
        self.flatten = bool(flatten)
        k = integer(in_units, f"{self.name}: in_units")
        self.weight = self.params.get("weight", shape=(self.units, k), init=weight_initializer, dtype=dtype)
        if use_bias:
            self.bias = self.params.get("bias", shape=(self.units,), init=_init.create(bias_initializer), dtype=dtype)
        else:
            self.bias = None

    def forward(self, x):
        x = check_input(self.name, x)
        least = 2 if self.flatten else 1
        if x.ndim < least:
            axes = "(N, ...) with a batch axis" if self.flatten else "(..., K) with at least one axis"
            raise ShapeError(f"{self.name}: expected an input {axes}, got shape {x.shape}")
        k = math.prod(x.shape[1:]) if self.flatten else x.shape[-1]
        if not self.weight.shape_known:
            self.weight._finish_deferred((self.units, k))
        w = require_initialized(self.name, self.weight, x)
        if k != w.shape[1]:
            had = "flattens to" if self.flatten else "has"
            raise ShapeError(
                f"{self.name}: input {x.shape} {had} {k} features but the layer was initialised for "
                f"{w.shape[1]} (weight {w.shape})"
            )
        lead = x.shape[:-1]
        if not self.flatten:  # every position of the leading axes is a sample
            x = x.reshape(math.prod(lead), k)
        args = (x, w) if self.bias is None else (x, w, self.bias.data())
        y = ops.Dense(self.name, self.activation)(*args)
        return y if self.flatten else y.reshape(*lead, self.units)

    def _extra_repr(self) -> str:
        act = f", Activation({self.activation})" if self.activation else ""
        return f"{self.weight.shape[1] or None} -> {self.units}{act}"


class Dropout(Block):
    """Inverted dropout with probability `rate`, active only in training mode."""

    alias = "dropout"

    def __init__(self, rate: float, axes=(), prefix: str | None = None, params=None):
        super().__init__(prefix, params)
        if not 0 <= rate < 1:
            raise ValueError(f"{self.name}: rate must be in [0, 1), got {rate}")
        if axes not in ((), [], None):
            raise ValueError(f"{self.name}: axes={axes!r} (a mask shared along axes) is not supported; leave axes=()")
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

    def __init__(self, activation: str, prefix: str | None = None, params=None):
        super().__init__(prefix, params)
        self.act = ops.activation.activation_function(activation)
        self.activation = activation

    def forward(self, x):
        return self.act()(check_input(self.name, x))
