"""`Block` and `Sequential`: containers that own parameters and children, Gluon style.

Names count per kind from 0 (`conv0`, `pool0`, `dense0`, ...) within a naming scope; `fresh_names()`
opens a new scope, so a network built inside it is named the same way every time.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

from .. import checkpoint
from ..device import Context, one_context
from ..errors import DataError
from .parameter import Parameter, ParameterDict

_scopes: list[defaultdict] = [defaultdict(int)]
_observers: list = []  # objects with after(block, inputs, output, **note), e.g. the summary's FLOP counter


@contextmanager
def observe(observer):
    """Call `observer.after(block, inputs, output, **note)` after every Block call inside this context."""
    _observers.append(observer)
    try:
        yield observer
    finally:
        _observers.remove(observer)


def notify(block, inputs, output, **note) -> None:
    """Tell the observers that `block` ran on `inputs` and gave `output`: what calling it does after its forward,
    for a parent that computes a child's output another way (the Inception block's fused 1x1 convolutions, which
    add `algorithm=` to say how)."""
    for o in _observers:
        o.after(block, inputs, output, **note)


@contextmanager
def fresh_names():
    """Count layer names from 0 again inside this block (used by the model builders)."""
    _scopes.append(defaultdict(int))
    try:
        yield
    finally:
        _scopes.pop()


def _next_name(alias: str) -> str:
    counts = _scopes[-1]
    name = f"{alias}{counts[alias]}"
    counts[alias] += 1
    return name


class Block:
    """Base of every layer and network: subclass it and write `forward`.

    Attributes that are Blocks become children and attributes that are Parameters become parameters,
    both in definition order.
    """

    alias = None  # name stem; defaults to the lower-cased class name

    def __init__(self, prefix: str | None = None, params=None):
        # Gluon's naming: the prefix (by default the next free `<alias><k>_`) starts every parameter's name, and
        # the block's name is the prefix without its trailing underscore: prefix "fc_" gives "fc" and "fc_weight".
        if prefix is None:
            prefix = _next_name(self.alias or type(self).__name__.lower()) + "_"
        name = prefix[:-1] if prefix.endswith("_") else prefix
        if params is not None:
            raise ValueError(
                f"{name}: params= (another block's parameters) is not supported; to share parameters, use the same "
                "block twice"
            )
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "name", name)

    def __setattr__(self, key, value):
        if isinstance(value, Block):
            self._children[key] = value
        elif isinstance(value, Parameter):
            for other in [k for k, p in self._params.items() if p is value and k != key]:
                del self._params[other]  # `self.w = self.params.get("weight")`: known as w from now on, as in Gluon
            self._params[key] = value
        object.__setattr__(self, key, value)

    @property
    def params(self) -> ParameterDict:
        """This block's own parameters (not its children's), by name. As in Gluon, `self.params.get("weight",
        shape=(16, 0))` creates parameter `<prefix>weight` the first time and returns it after that."""
        own = ParameterDict((p.name, p) for p in self._params.values())
        own.prefix, own._owner = self.prefix, self._params
        return own

    @contextmanager
    def name_scope(self):
        """Accepted for Gluon compatibility (`with self.name_scope(): ...`): minicnn names each layer by its kind
        and count alone (`dense0`), inside a network or not, so the scope changes nothing."""
        yield self

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """All parameters of this block and its children, in definition order (optionally a regex on names)."""
        import re

        out = ParameterDict()
        stack = [self]
        seen = set()
        order = []
        while stack:  # depth-first, children in registration order
            b = stack.pop()
            if id(b) in seen:
                continue
            seen.add(id(b))
            order.append(b)
            stack.extend(reversed(list(b._children.values())))
        for b in order:
            for p in b._params.values():
                if select is None or re.match(select, p.name):
                    out[p.name] = p
        return out

    def initialize(self, init=None, ctx: Context | None = None, force_reinit: bool = False, verbose=False):
        """Initialise every parameter (MXNet's default initialiser is Uniform(0.07)) on device ctx (default cpu()),
        or a list naming one device."""
        self.collect_params().initialize(init, one_context(ctx, f"{self.name}.initialize"), force_reinit)

    def save_parameters(self, filename, deduplicate: bool = False) -> None:
        """Write every parameter's values to `filename` (minicnn's .npz checkpoint format), each named by its place
        in this block as in Gluon (`0.weight`, `3.bias`): another instance of the same network reads them back
        whatever its layers are called. deduplicate: a parameter reached by two paths (a block used twice) is
        written once, under its first."""
        params = self._params_by_place()
        if deduplicate:
            first = {}
            for name, p in params.items():
                first.setdefault(id(p), name)
            params = {name: p for name, p in params.items() if first[id(p)] == name}
        meta = {"network": self.name, "settings": {}, "by": checkpoint.SAVED_BY_BLOCK}
        checkpoint.save(filename, self, meta, params=params)

    def load_parameters(
        self, filename, ctx: Context | None = None, allow_missing=False, ignore_extra=False, cast_dtype=False,
        dtype_source="current",
    ) -> None:  # fmt: skip
        """Read values written by save_parameters (or a checkpoint of `train --save`, whose names are the layers')
        into this block's parameters, checked name by name, shape by shape and dtype by dtype (cast_dtype=True
        converts to the network's); nothing is written unless all fit. Parameters not initialised yet are created
        on ctx (default cpu()); initialised ones stay where they are, and another ctx for them is an error."""
        what = f"{self.name}.load_parameters"
        ctx = one_context(ctx, what)
        if ctx is not None:
            ctx.backend  # noqa: B018 - a device that cannot be used fails here, before anything is read
        if dtype_source != "current":
            raise ValueError(f"{what}: dtype_source={dtype_source!r} is not supported; the network's dtypes are kept")
        _, params, _ = checkpoint.load(filename, writer=checkpoint.SAVED_BY_BLOCK)
        own = self._params_by_place()
        if params and not any("." in k for k in params) and any("." in k for k in own):
            own = self.collect_params()  # the command line's checkpoints name parameters by layer (conv0_weight)
        for name, p in own.items():
            if name not in params:
                continue
            if p.initialized and ctx is not None and p.list_ctx() != [ctx]:
                raise ValueError(f"{what}: {name} lives on {p.list_ctx()[0]}, not {ctx}; leave ctx out to load there")
            if params[name].dtype != p.dtype and not cast_dtype:
                raise DataError(
                    f"{filename}: parameter {name} is {params[name].dtype} in the file and {p.dtype} in the network; "
                    "pass cast_dtype=True to convert"
                )
        checkpoint.apply(filename, self, params, own, allow_missing, ignore_extra, checkpoint.SAVED_BY_BLOCK, ctx)

    def _params_by_place(self, prefix: str = "") -> dict:
        """name -> Parameter, named by attribute path: `weight`, `0.weight`, `b1.0.bias`."""
        out = {prefix + key: p for key, p in self._params.items()}
        for key, child in self._children.items():
            out.update(child._params_by_place(f"{prefix}{key}."))
        return out

    def hybridize(self, *args, **kwargs) -> None:
        """Accepted for Gluon compatibility; minicnn always runs imperatively."""

    def children(self) -> list[Block]:
        return list(self._children.values())

    def __call__(self, *args):
        y = self.forward(*args)
        notify(self, args, y)
        return y

    def forward(self, *args):
        if hasattr(self, "hybrid_forward"):
            raise NotImplementedError(
                f"{type(self).__name__} defines hybrid_forward(F, x, ...); minicnn runs blocks imperatively: "
                "define forward(self, x) instead, with the parameters as self.<name>.data()"
            )
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self._extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for key, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({key}): {body}")
        lines.append(")")
        return "\n".join(lines)

    def _extra_repr(self) -> str:
        return ""


class Sequential(Block):
    """Runs its children one after another: `net = nn.Sequential(); net.add(a, b, c); y = net(x)`."""

    alias = "sequential"

    def add(self, *blocks: Block) -> Sequential:
        for b in blocks:
            if not isinstance(b, Block):
                raise TypeError(f"{self.name}.add: expected a Block, got {type(b).__name__}")
            setattr(self, str(len(self._children)), b)
        return self

    def forward(self, x):
        for b in self._children.values():
            x = b(x)
        return x

    def __getitem__(self, i):
        layers = list(self._children.values())
        if isinstance(i, slice):
            net = Sequential(prefix=self.prefix)
            net.add(*layers[i])
            return net
        return layers[i]

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children.values()))


HybridSequential = Sequential
HybridBlock = Block
