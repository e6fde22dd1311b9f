"""Copy parameters between a minicnn network and the matching Gluon network, by structure.

Both networks are walked in definition order (a block's own parameters, then its children depth-first,
which is the order `collect_params()` uses in both libraries). Every block that owns parameters is one
"layer"; the two lists of layers must agree one to one in kind (Conv2D / Dense), in parameter names
(weight, bias) and shapes, and for convolutions in stride and padding. Names themselves are not compared
(Gluon prefixes them with its name scopes), so the match is by position and shape only.

    to_gluon(minicnn_net, gluon_net, input_shape=(1, 1, 28, 28))     minicnn -> Gluon
    to_minicnn(gluon_net, minicnn_net, input_shape=(1, 1, 28, 28))   Gluon -> minicnn
    pairs(minicnn_net, gluon_net)                                    [(minicnn Parameter, Gluon Parameter), ...]

Both libraries defer the input dimension of a layer's weight until the first forward pass; with
`input_shape` given, `materialize` initialises whatever is uninitialised and runs one forward pass on
zeros of that shape first. Without it, a network with unknown shapes is an error that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import minicnn as mc


@dataclass
class Layer:
    """One block that owns parameters, as the bridge sees it."""

    name: str
    kind: str  # the block's class name: 'Conv2D' or 'Dense'
    params: list  # [(key, Parameter)] in definition order
    window: tuple | None  # (stride, padding) for convolutions

    def describe(self) -> str:
        shapes = ", ".join(f"{key} {tuple(p.shape)}" for key, p in self.params)
        extra = f", stride {self.window[0]}, padding {self.window[1]}" if self.window else ""
        return f"{self.kind} {self.name} ({shapes}{extra})"


# ---- walking the two libraries' block trees ------------------------------------------------------------
def _minicnn_layers(net) -> list[Layer]:
    layers, stack, seen = [], [net], set()
    while stack:  # depth-first, children in registration order (as Block.collect_params)
        block = stack.pop()
        if id(block) in seen:
            continue
        seen.add(id(block))
        if block._params:
            window = (tuple(block.stride), tuple(block.pad)) if hasattr(block, "stride") else None
            layers.append(Layer(block.name, type(block).__name__, list(block._params.items()), window))
        stack.extend(reversed(list(block._children.values())))
    return layers


def _gluon_layers(net) -> list[Layer]:
    layers, stack, seen = [], [net], set()
    while stack:  # Gluon's collect_params: own parameters first, then each child's, recursively
        block = stack.pop()
        if id(block) in seen:
            continue
        seen.add(id(block))
        if block._reg_params:
            kwargs = getattr(block, "_kwargs", {})
            window = (tuple(kwargs["stride"]), tuple(kwargs["pad"])) if "stride" in kwargs else None
            name = block.name
            layers.append(Layer(name, type(block).__name__, list(block._reg_params.items()), window))
        stack.extend(reversed(list(block._children.values())))
    return layers


def _minicnn_shape_unknown(p) -> bool:
    return not p.initialized


def _gluon_shape_unknown(p) -> bool:
    return p._data is None or any(d == 0 for d in p.shape)


# ---- deferred initialisation --------------------------------------------------------------------------
def materialize(net, input_shape) -> None:
    """Give every parameter of `net` (minicnn or Gluon) its shape and values: initialise what is not
    initialised (the library's default initialiser; the values are about to be overwritten anyway) and run
    one forward pass on zeros of `input_shape` without recording."""
    params = list(net.collect_params().values())
    dtype = np.dtype(params[0].dtype).name if params else "float32"  # the zeros must match the weights' dtype
    if _is_gluon(net):
        import mxnet as mx

        for p in params:
            if p._data is None and not p._deferred_init:
                p.initialize()
        with mx.autograd.pause():
            net(mx.nd.zeros(input_shape, dtype=dtype)).wait_to_read()
    else:
        for p in params:
            if not p.initialized and p._deferred is None:
                p.initialize()
        with mc.autograd.pause():
            net(mc.zeros(input_shape, dtype=dtype))


def _is_gluon(net) -> bool:
    return hasattr(net, "_reg_params")


def _layers(net, input_shape, side: str) -> list[Layer]:
    gluon = side == "gluon"
    unknown = _gluon_shape_unknown if gluon else _minicnn_shape_unknown
    walk = _gluon_layers if gluon else _minicnn_layers
    layers = walk(net)
    if any(unknown(p) for layer in layers for _, p in layer.params):
        if input_shape is None:
            first = next(layer for layer in layers if any(unknown(p) for _, p in layer.params))
            raise ValueError(
                f"bridge: the {side} network's layer {first.name} has no values or an unknown shape yet "
                f"({first.describe()}); pass input_shape=(N, C, H, W) or run one forward pass first"
            )
        materialize(net, input_shape)
        layers = walk(net)
    return layers


# ---- matching -----------------------------------------------------------------------------------------
def pairs(minicnn_net, gluon_net, input_shape=None) -> list[tuple]:
    """[(minicnn Parameter, Gluon Parameter)] in definition order; ValueError at the first layer that differs."""
    ours = _layers(minicnn_net, input_shape, "minicnn")
    theirs = _layers(gluon_net, input_shape, "gluon")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        same = (
            a.kind == b.kind
            and [k for k, _ in a.params] == [k for k, _ in b.params]
            and all(tuple(p.shape) == tuple(q.shape) for (_, p), (_, q) in zip(a.params, b.params))
            and a.window == b.window
        )
        if not same:
            raise ValueError(
                f"bridge: the networks differ at parameterised layer {i}: minicnn {a.describe()} "
                f"vs gluon {b.describe()}"
            )
    if len(ours) != len(theirs):
        longer, side = (ours, "minicnn") if len(ours) > len(theirs) else (theirs, "gluon")
        extra = longer[min(len(ours), len(theirs))]
        raise ValueError(
            f"bridge: the minicnn network has {len(ours)} parameterised layers and the gluon network "
            f"{len(theirs)}; the first unmatched one is {side}'s {extra.describe()}"
        )
    return [(p, q) for a, b in zip(ours, theirs) for (_, p), (_, q) in zip(a.params, b.params)]


def to_gluon(minicnn_net, gluon_net, input_shape=None) -> None:
    """Copy every parameter of the minicnn network into the Gluon network (as float32)."""
    import mxnet as mx

    for ours, theirs in pairs(minicnn_net, gluon_net, input_shape):
        theirs.set_data(mx.nd.array(ours.data().asnumpy(), dtype=theirs.dtype))


def to_minicnn(gluon_net, minicnn_net, input_shape=None) -> None:
    """Copy every parameter of the Gluon network into the minicnn network (in the minicnn parameter's dtype)."""
    for ours, theirs in pairs(minicnn_net, gluon_net, input_shape):
        ours.set_data(np.asarray(theirs.data().asnumpy()))
