"""Parameters with deferred shapes (Gluon's `Parameter` and `ParameterDict`).

A dimension of 0 in `shape` is unknown until the first forward pass tells the layer its input;
`initialize()` before that only remembers the initialiser and device, and the values are drawn then.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .. import init as _init
from .. import random
from ..autograd import NDArray, pause
from ..device import Context, cpu, one_context

GRAD_REQS = ("write", "add", "null")


class Parameter:
    """A trainable array. grad_req, as in Gluon: 'write' (backward overwrites .grad), 'add' (backward adds to it;
    zero_grad() clears it) or 'null' (frozen: no gradient, and Trainer leaves it as it is)."""

    def __init__(self, name: str, shape: tuple, init=None, dtype="float32", grad_req: str = "write"):
        self.name = name
        self.shape = tuple(shape)
        self.init = init  # this parameter's own initialiser (e.g. zeros for biases); wins over the global one
        self.dtype = np.dtype(dtype)
        self._var: NDArray | None = None
        self._deferred: tuple | None = None  # (initializer, ctx) waiting for the shape
        self._grad_req = "write"
        self.grad_req = grad_req

    @property
    def grad_req(self) -> str:
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        if req not in GRAD_REQS:
            raise ValueError(f"Parameter {self.name}: grad_req must be 'write', 'add' or 'null', got {req!r}")
        if req != self._grad_req:
            self._grad_req = req
            if self._var is not None:
                self._var.attach_grad(req)  # a new gradient of zeros, or none

    def __repr__(self) -> str:
        return f"Parameter {self.name} (shape={self.shape}, dtype={self.dtype.name})"

    @property
    def shape_known(self) -> bool:
        return all(d > 0 for d in self.shape)

    @property
    def initialized(self) -> bool:
        return self._var is not None

    @property
    def pending(self) -> bool:
        """Whether initialize() was called but the values wait for the first forward pass to fix the shape."""
        return self._deferred is not None

    def initialize(self, init=None, ctx: Context | None = None, force_reinit: bool = False) -> None:
        """Draw the values now, or when the shape becomes known (deferred initialisation)."""
        if self._var is not None and not force_reinit:
            return
        ctx = one_context(ctx, f"Parameter {self.name}") or cpu()
        chosen = _init.create(self.init if self.init is not None else (init or _init.Uniform()))
        if self.shape_known:
            self._materialize(chosen, ctx)
        else:
            self._var, self._deferred = None, (chosen, ctx)

    def _materialize(self, initializer, ctx: Context) -> None:
        if hasattr(initializer, "_init_weight"):  # Gluon's protocol: fill an NDArray in place
            values = NDArray(np.zeros(self.shape, self.dtype))
            with pause():  # deferred initialisation may run inside record(), where data[:] = ... is refused
                initializer._init_weight(self.name, values)
            values = values.asnumpy()
        else:
            values = initializer(self.shape, random.parameter_generator(self.name)).astype(self.dtype)
        self._var = NDArray(ctx.backend.asarray(values))
        self._var.attach_grad(self._grad_req)
        self._deferred = None

    def _finish_deferred(self, shape: tuple) -> None:
        """Called by the layer at its first forward pass, once the input fixes the unknown dimensions."""
        self.shape = tuple(shape)
        if self._deferred is not None:
            self._materialize(*self._deferred)

    def _check_initialized(self) -> NDArray:
        if self._var is None:
            if self._deferred is not None:
                raise RuntimeError(
                    f"Parameter {self.name} has a deferred shape {self.shape}; run one forward pass first"
                )
            raise RuntimeError(f"Parameter {self.name} is not initialized; call net.initialize() first")
        return self._var

    def data(self, ctx: Context | None = None) -> NDArray:
        return self._check_initialized()

    def grad(self, ctx: Context | None = None) -> NDArray:
        var = self._check_initialized()
        if self._grad_req == "null":
            raise RuntimeError(
                f"Parameter {self.name} has no gradient: its grad_req is 'null' (set it to 'write' to train it)"
            )
        return var.grad

    def list_data(self) -> list[NDArray]:
        """[data()]: minicnn keeps a parameter on one device (Gluon's list has one entry per device)."""
        return [self.data()]

    def list_grad(self) -> list[NDArray]:
        return [self.grad()]

    def list_ctx(self) -> list[Context]:
        return [self._check_initialized().context]

    def set_data(self, value) -> None:
        """Replace the values (NumPy array, NDArray or scalar), keeping shape, dtype and device."""
        var = self._check_initialized()
        raw = value.data if isinstance(value, NDArray) else value
        host = np.asarray(raw.get() if hasattr(raw, "get") else raw)
        if host.shape != self.shape and host.size != 1:
            raise ValueError(f"Parameter {self.name}: set_data got shape {host.shape}, expected {self.shape}")
        var.data[...] = var.context.backend.asarray(np.broadcast_to(host, self.shape).astype(self.dtype))

    def load(self, values: np.ndarray, ctx: Context | None = None) -> None:
        """Take saved values: set_data for an initialised parameter; otherwise the values become the parameter
        (shape and all, a deferred one included), on ctx or where initialize() said."""
        if self._var is not None:
            self.set_data(values)
            return
        if self._deferred is not None:
            ctx = ctx or self._deferred[1]
        self.shape = tuple(values.shape)
        self._var = NDArray(
            (one_context(ctx, f"Parameter {self.name}") or cpu()).backend.asarray(values.astype(self.dtype))
        )
        self._var.attach_grad(self._grad_req)
        self._deferred = None

    def zero_grad(self) -> None:
        if self._var is not None and self._var.grad is not None:
            self._var.grad.data[...] = 0

    def reset_ctx(self, ctx: Context) -> None:
        """Move the values to another device."""
        ctx = one_context(ctx, f"Parameter {self.name}")
        if self._var is not None:
            self._var = NDArray(ctx.backend.asarray(self._var.data))
            self._var.attach_grad(self._grad_req)
        elif self._deferred is not None:
            self._deferred = (self._deferred[0], ctx)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


_GET_OPTIONS = {"shape", "init", "dtype", "allow_deferred_init", "grad_req"}  # what block.params.get takes


class ParameterDict(OrderedDict):
    """Name -> Parameter, in the order the layers define them. A block's own (`block.params`) also creates them:
    `get(key, shape=..., init=..., dtype=...)` is parameter `<prefix>key`, made the first time it is asked for."""

    prefix = ""  # a block's own: its prefix, and its attribute -> Parameter table that get() adds to
    _owner: dict | None = None

    def get(self, name: str, *args, **kwargs):
        """A block's own dict (`block.params`): the parameter `<prefix>name`, made the first time with
        get(name, shape=..., init=..., dtype=...) (a 0 in the shape is deferred to the first input), as in Gluon.
        Any other dict: the dict's get, `get(name, default=None)`."""
        if self._owner is None:
            return super().get(name, *args, **kwargs)
        full = self.prefix + name
        unknown = sorted(set(kwargs) - _GET_OPTIONS)
        if args or unknown:
            raise TypeError(
                f"{full}: params.get takes shape=, init= and dtype= (and Gluon's allow_deferred_init and "
                f"grad_req), got {', '.join(unknown) or 'positional arguments'}"
            )
        shape = tuple(kwargs.get("shape", ()))
        if full in self:
            if "shape" in kwargs and self[full].shape != shape and self[full].shape_known:
                raise ValueError(f"{full} exists with shape {self[full].shape}; asked for {shape}")
            return self[full]
        self[full] = Parameter(
            full,
            shape,
            init=kwargs.get("init"),
            dtype=kwargs.get("dtype", "float32"),
            grad_req=kwargs.get("grad_req", "write"),
        )
        self._owner[name] = self[full]
        return self[full]

    def initialize(self, init=None, ctx=None, force_reinit: bool = False) -> None:
        for p in self.values():
            p.initialize(init, ctx, force_reinit)

    def zero_grad(self) -> None:
        for p in self.values():
            p.zero_grad()

    def setattr(self, name: str, value) -> None:
        """Set one attribute of every parameter: `net.collect_params('.*conv0.*').setattr('grad_req', 'null')`
        freezes a layer, as in Gluon."""
        if name != "grad_req":
            raise AttributeError(
                f"ParameterDict.setattr: minicnn's parameters take grad_req only, not {name!r} "
                "(no lr_mult or wd_mult: one learning rate and wd for all, in Trainer)"
            )
        for p in self.values():
            p.grad_req = value

    def reset_ctx(self, ctx: Context) -> None:
        for p in self.values():
            p.reset_ctx(ctx)
