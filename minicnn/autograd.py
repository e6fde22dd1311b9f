"""A small tape-free autograd engine (Chainer/DeZero style).

- `NDArray` wraps a NumPy or CuPy array (`.data`) and, for leaves marked with `attach_grad()`, its gradient.
- A `Function` owns `forward` and `backward` side by side; calling it inside `record()` links the output to
  the function (`out.creator`) and the function to its inputs, which is the whole graph.
- `NDArray.backward()` sorts the functions topologically with an explicit stack (no recursion, so depth is
  not limited), runs each `backward` once, sums the gradients of tensors used several times, and frees the
  graph as it goes.
"""

from __future__ import annotations

import math
import weakref
from contextlib import contextmanager

import numpy as np

from . import backend

_recording = False
_training = False


@contextmanager
def record(train_mode: bool = True):
    """Record operations for `backward()`; `train_mode` switches dropout on (like `mxnet.autograd.record`)."""
    global _recording, _training
    saved = _recording, _training
    _recording, _training = True, train_mode
    try:
        yield
    finally:
        _recording, _training = saved


@contextmanager
def pause(train_mode: bool = False):
    """Stop recording inside a `record()` block."""
    global _recording, _training
    saved = _recording, _training
    _recording, _training = False, train_mode
    try:
        yield
    finally:
        _recording, _training = saved


@contextmanager
def train_mode():
    """Training behaviour (dropout on) without recording."""
    global _training
    saved = _training
    _training = True
    try:
        yield
    finally:
        _training = saved


@contextmanager
def predict_mode():
    """Prediction behaviour (dropout off), recording or not."""
    global _training
    saved = _training
    _training = False
    try:
        yield
    finally:
        _training = saved


def is_recording() -> bool:
    return _recording


def is_training() -> bool:
    return _training


class Function:
    """One differentiable operation. Subclasses implement:

    forward(*arrays) -> array             computed on raw NumPy/CuPy arrays; may save what backward needs on self
    backward(gy) -> grad or tuple of grads  one per input (None where an input needs no gradient)
    """

    inputs: tuple | None = None

    def __call__(self, *inputs) -> NDArray:
        inputs = tuple(x if isinstance(x, NDArray) else NDArray(x) for x in inputs)
        y = self.forward(*(x.data for x in inputs))
        if isinstance(y, np.generic):  # NumPy reductions of 0-d results give scalars; .data is always an array
            y = np.asarray(y)
        out = NDArray(y)
        if _recording and any(x._needs_grad() for x in inputs):
            self.inputs = inputs
            self._output = weakref.ref(out)
            out.creator = self
        return out

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def needs_input_grad(self, i: int) -> bool:
        """Whether input i needs a gradient (lets backward skip work, e.g. the data gradient of a first conv)."""
        return self.inputs is not None and self.inputs[i]._needs_grad()

    def release(self) -> None:
        """Drop the graph links and whatever forward saved for backward."""
        out = self._output()
        if out is not None:
            out.creator = _FREED  # not None: a later backward through `out` must fail, not skip it silently
        self.__dict__.clear()


class _Freed(Function):
    """Creator of an output whose graph an earlier backward() freed. Backpropagating through it raises (as
    MXNet does) instead of treating the output as a constant, which would leave stale gradients in the leaves."""

    inputs = ()

    def backward(self, gy):
        raise RuntimeError(
            "backward(): the graph of this array was already freed by an earlier backward(); "
            "pass retain_graph=True to that earlier backward() to backpropagate through it again"
        )

    def release(self) -> None:
        pass


_FREED = _Freed()


def _unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added or stretched so that it has `shape` again."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, s in enumerate(shape) if s == 1 and g.shape[i + extra] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


class NDArray:
    """An n-dimensional array on a device, with an optional gradient (like `mxnet.nd.NDArray`)."""

    __slots__ = ("data", "grad", "creator", "_grad_req", "_fresh_grad", "__weakref__")
    __array_priority__ = 1000  # make `numpy_scalar * NDArray` call our __rmul__

    def __init__(self, data):
        self.data = data
        self.grad: NDArray | None = None
        self.creator: Function | None = None
        self._grad_req = "null"
        self._fresh_grad = False  # backward wrote .grad since Trainer.step last used it (MXNet's stale check)

    # ---- properties -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def context(self):
        from .device import context_of

        return context_of(self.data)

    ctx = context

    @property
    def xp(self):
        return backend.of(self.data).xp

    def __len__(self) -> int:
        return self.data.shape[0]

    def __bool__(self) -> bool:
        """Truth of a one-element array (`if loss > 10:`); ambiguous for more elements, as in MXNet and NumPy."""
        if self.size != 1:
            raise ValueError(
                f"the truth value of an NDArray of shape {self.shape} is ambiguous; use .sum() or .asscalar()"
            )
        return bool(self.asscalar())

    def __repr__(self) -> str:
        return f"{self.asnumpy()!r}\n<NDArray {'x'.join(map(str, self.shape))} @{self.context}>"

    # ---- gradients --------------------------------------------------------------------------------
    def attach_grad(self, grad_req: str = "write") -> None:
        """Make this array a leaf whose gradient `backward()` stores in `.grad` ('write' overwrites, 'add' sums)."""
        if grad_req not in ("write", "add", "null"):
            raise ValueError(f"grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        self._grad_req = grad_req
        self.creator = None
        self.grad = None if grad_req == "null" else NDArray(self.xp.zeros_like(self.data))

    def _needs_grad(self) -> bool:
        return self.creator is not None or self._grad_req != "null"

    def detach(self) -> NDArray:
        return NDArray(self.data)

    def backward(self, out_grad: NDArray | None = None, retain_graph: bool = False) -> None:
        """Compute the gradients of this array w.r.t. every leaf that has `attach_grad()` and was used under
        `record()`. `out_grad` defaults to ones (so `l.backward()` on a vector means `l.sum().backward()`)."""
        if self.creator is None:
            if self._grad_req != "null":  # a leaf: d self / d self = 1
                seed = self.xp.ones_like(self.data) if out_grad is None else _raw(out_grad)
                _store_leaf_grad(self, seed)
                return
            raise RuntimeError(
                "backward(): this array was not computed inside autograd.record() from arrays with attach_grad() "
                "(or its graph was already freed by an earlier backward; pass retain_graph=True to keep it)"
            )
        seed = self.xp.ones_like(self.data) if out_grad is None else _raw(out_grad)
        if seed.shape != self.data.shape:
            raise ValueError(f"backward(): out_grad has shape {seed.shape}, expected {self.shape}")
        order = topological_order(self.creator)
        pending = {id(self.creator): seed}  # gradient w.r.t. each function's output
        # A leaf's gradient goes into its .grad as soon as it is computed (later uses of the same leaf add to
        # it), not kept as a temporary until the last function has run: kept, every parameter's gradient would
        # exist twice at the peak of backward (+0.5 GiB for VGG-11, whose graph is then still almost whole).
        written: set[int] = set()
        for f in order:
            gy = pending.pop(id(f), None)
            if gy is None:  # every consumer returned None for this output: no gradient flows through f
                if not retain_graph:
                    f.release()
                continue
            gxs = f.backward(gy)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                if gx is None:
                    continue
                if x.creator is not None:
                    key = id(x.creator)
                    pending[key] = gx if key not in pending else pending[key] + gx
                elif x._grad_req != "null":
                    if id(x) in written:
                        x.grad.data += gx
                        x._fresh_grad = True
                    else:
                        _store_leaf_grad(x, gx)
                        written.add(id(x))
            if not retain_graph:
                f.release()

    # ---- conversion -------------------------------------------------------------------------------
    def asnumpy(self) -> np.ndarray:
        """A NumPy copy of the values, as in MXNet: changing it, or this array later, leaves the other as it is."""
        host = backend.of(self.data).to_numpy(self.data)
        return host.copy() if host is self.data else host  # the GPU's to_numpy has copied already

    def asscalar(self):
        if self.size != 1:
            raise ValueError(f"asscalar() needs an array of size 1, got shape {self.shape}")
        return self.asnumpy().reshape(()).item()

    item = asscalar

    def astype(self, dtype) -> NDArray:
        return NDArray(self.data.astype(dtype))

    def as_in_context(self, ctx) -> NDArray:
        """This array on device `ctx` (the same object if it is already there)."""
        if ctx == self.context:
            return self
        return NDArray(ctx.backend.asarray(self.data))

    def copyto(self, other) -> NDArray:
        """A copy on device `other` (a Context), or the values written into NDArray `other` (same shape; its dtype
        and device kept), which is returned, as in MXNet."""
        if not isinstance(other, NDArray):
            return NDArray(other.backend.asarray(self.data).copy())
        if other.shape != self.shape:
            raise ValueError(f"copyto: this array has shape {self.shape}, the target {other.shape}; give one alike")
        other.data[...] = other.context.backend.asarray(self.asnumpy()).astype(other.dtype, copy=False)
        return other

    def copy(self) -> NDArray:
        """A copy on the same device."""
        return NDArray(self.data.copy())

    def __array__(self, dtype=None, copy=None):
        a = backend.of(self.data).to_numpy(self.data)  # np.asarray(x) may share the CPU's memory, as NumPy's own
        a = a if dtype is None else a.astype(dtype, copy=False)
        return a.copy() if copy and a is self.data else a

    # ---- arithmetic (differentiable) --------------------------------------------------------------
    def __add__(self, other):
        return Add()(self, _like(other, self))

    def __radd__(self, other):
        return Add()(_like(other, self), self)

    def __sub__(self, other):
        return Sub()(self, _like(other, self))

    def __rsub__(self, other):
        return Sub()(_like(other, self), self)

    def __mul__(self, other):
        return Mul()(self, _like(other, self))

    def __rmul__(self, other):
        return Mul()(_like(other, self), self)

    def __truediv__(self, other):
        return Div()(self, _like(other, self))

    def __rtruediv__(self, other):
        return Div()(_like(other, self), self)

    def __neg__(self):
        return Mul()(self, _like(-1, self))

    def __pow__(self, exponent):
        if isinstance(exponent, NDArray) or not np.isscalar(exponent):
            raise TypeError(f"NDArray ** takes a number as the exponent, got {type(exponent).__name__}")
        return Pow(exponent)(self)

    def __rpow__(self, base):
        """base ** x for a positive number base, as e^(x ln base)."""
        if not np.isscalar(base) or not base > 0:
            raise ValueError(f"number ** NDArray takes a positive number as the base, got {base!r}")
        return (self * math.log(base)).exp()

    def square(self) -> NDArray:
        return Pow(2)(self)

    def __abs__(self):
        return Abs()(self)

    abs = __abs__

    def __matmul__(self, other):
        """a @ b for matrices (NumPy's operator; MXNet writes nd.dot(a, b), which minicnn.nd has too)."""
        return MatMul()(self, _like(other, self))

    def transpose(self, *axes, **kwargs) -> NDArray:
        """The axes reversed, or in the order given: x.transpose(1, 0, 2), x.transpose((1, 0, 2)) or
        x.transpose(axes=(1, 0, 2)), as in MXNet."""
        if kwargs.keys() - {"axes"}:
            raise TypeError(f"transpose takes axes, got {sorted(kwargs)}")
        if "axes" in kwargs:
            axes = (kwargs["axes"],)
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose(axes or None)(self)

    @property
    def T(self) -> NDArray:
        return self.transpose()

    def __getitem__(self, key):
        return GetItem(_index(key))(self)

    def __setitem__(self, key, value):
        """x[key] = value, in place (`x[:] = 0`), outside autograd.record() only. A graph recorded earlier and not
        yet back-propagated still reads x's values: assign after its backward (as in MXNet)."""
        if is_recording():
            raise RuntimeError(
                "NDArray item assignment inside autograd.record() would change values that backward needs; "
                "assign outside the record() block, or build a new array"
            )
        self.data[_index(key)] = value.data if isinstance(value, NDArray) else value

    def _in_place(self, other, ufunc, sign: str) -> NDArray:
        """x += y and the like: x's own values change (its dtype kept) and a parameter keeps its gradient; outside
        autograd.record() only (the graph may hold x for backward), as in MXNet."""
        if is_recording():
            raise RuntimeError(
                f"x {sign}= y inside autograd.record() would change values that backward may need; write x = x {sign} y"
            )
        if not getattr(getattr(self.data, "flags", None), "writeable", True):
            raise ValueError(f"x {sign}= y: x is read-only (a dataset's own images?); take x.copy() first")
        try:
            ufunc(self.data, _raw(other), out=self.data, casting="unsafe")
        except ValueError:
            shape = getattr(other, "shape", ())
            raise ValueError(f"x {sign}= y: y's shape {tuple(shape)} does not broadcast to x's {self.shape}") from None
        return self

    def __iadd__(self, other):
        return self._in_place(other, self.xp.add, "+")

    def __isub__(self, other):
        return self._in_place(other, self.xp.subtract, "-")

    def __imul__(self, other):
        return self._in_place(other, self.xp.multiply, "*")

    def __itruediv__(self, other):
        return self._in_place(other, self.xp.true_divide, "/")

    def sum(self, axis=None, keepdims: bool = False) -> NDArray:
        return Sum(axis, keepdims)(self)

    def mean(self, axis=None, keepdims: bool = False) -> NDArray:
        s = self.sum(axis, keepdims)
        return s / (self.size // max(s.size, 1))

    def reshape(self, *shape) -> NDArray:
        """This array with another shape, one axis of which may be -1 (inferred). MXNet's other special values
        (0 to keep an axis, -2 to -4) are not taken: 0 is an axis of size 0."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape(shape)(self)

    def flatten(self) -> NDArray:
        """(N, ...) -> (N, prod(...)), like `mxnet.nd.flatten`."""
        return self.reshape(self.shape[0], math.prod(self.shape[1:]))  # not -1: an empty batch has no -1

    def exp(self) -> NDArray:
        return Exp()(self)

    def log(self) -> NDArray:
        return Log()(self)

    # ---- non-differentiable -----------------------------------------------------------------------
    def argmax(self, axis=None) -> NDArray:
        """The index of the largest value along `axis` (of the flattened array when None), in this array's dtype
        as in MXNet (float32 for float32 data)."""
        return NDArray(self.data.argmax(axis=axis).astype(self.dtype))

    def _compare(self, other, op) -> NDArray:
        """1 where the comparison holds, else 0, in this array's dtype (MXNet's convention, not booleans)."""
        return NDArray(op(self.data, _raw(other)).astype(self.dtype))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__

    def __float__(self) -> float:
        return float(self.asscalar())

    def __int__(self) -> int:
        return int(self.asscalar())


def _raw(a):
    return a.data if isinstance(a, NDArray) else a


def _like(v, ref: NDArray):
    """A scalar or array as a raw array of ref's array module and float dtype (so float32 stays float32)."""
    if isinstance(v, NDArray):
        return v
    xp = ref.xp
    dtype = ref.dtype if ref.dtype.kind == "f" else None
    return xp.asarray(v, dtype=dtype)


def _store_leaf_grad(leaf: NDArray, g) -> None:
    leaf._fresh_grad = True
    if leaf.grad is None or leaf.grad.shape != tuple(g.shape):
        leaf.grad = NDArray(leaf.xp.zeros(g.shape, dtype=leaf.dtype))
    if leaf._grad_req == "add":
        leaf.grad.data += g
    else:
        leaf.grad.data[...] = g


def topological_order(root: Function) -> list[Function]:
    """Functions from the output back to the inputs, each after every function that consumes its output.

    Iterative depth-first search: a function is appended once all of its input creators are; reversing that
    post-order gives an order in which each function's output gradient is complete before it runs.
    """
    post: list[Function] = []
    seen = {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        f, it = stack[-1]
        for x in it:
            c = x.creator
            if c is not None and id(c) not in seen:
                seen.add(id(c))
                stack.append((c, iter(c.inputs)))
                break
        else:
            stack.pop()
            post.append(f)
    post.reverse()
    return post


# ---- elementwise functions used by NDArray's operators ---------------------------------------------
class Add(Function):
    """y = a + b (with broadcasting)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return _unbroadcast(gy, self.shapes[0]), _unbroadcast(gy, self.shapes[1])


class Sub(Function):
    """y = a - b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return _unbroadcast(gy, self.shapes[0]), _unbroadcast(-gy, self.shapes[1])


class Mul(Function):
    """y = a * b; da = gy * b, db = gy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return _unbroadcast(gy * self.b, self.a.shape), _unbroadcast(gy * self.a, self.b.shape)


class Div(Function):
    """y = a / b; da = gy / b, db = -gy * a / b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        return _unbroadcast(ga, self.a.shape), _unbroadcast(-ga * self.a / self.b, self.b.shape)


class Pow(Function):
    """y = x^p for a number p; dx = gy * p * x^(p-1)."""

    def __init__(self, exponent):
        self.p = exponent

    def forward(self, x):
        self.x = x
        return x**self.p

    def backward(self, gy):
        return gy * (self.p * self.x ** (self.p - 1))


class Abs(Function):
    """y = |x|; dx = gy * sign(x) (0 at x = 0, as in MXNet)."""

    def forward(self, x):
        self.x = x
        return abs(x)

    def backward(self, gy):
        return gy * backend.of(gy).xp.sign(self.x)


class MatMul(Function):
    """y = a @ b for matrices a (M, K), b (K, N); da = gy @ b^T, db = a^T @ gy."""

    def forward(self, a, b):
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matrix product: expected (M, K) @ (K, N), got {a.shape} @ {b.shape}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        return gy @ self.b.T, self.a.T @ gy


class Transpose(Function):
    """y = x with its axes permuted (reversed when axes is None); dx = gy with the inverse permutation."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        try:
            y = x.transpose(self.axes)
        except ValueError:
            raise ValueError(f"transpose: axes {self.axes} do not permute the {x.ndim} axes of {x.shape}") from None
        self.inverse = None if self.axes is None else tuple(np.argsort([a % x.ndim for a in self.axes]))
        return y.copy()  # a new array, as MXNet's: `t = x.T; t += 1` leaves x alone

    def backward(self, gy):
        return gy.transpose(self.inverse)


class Exp(Function):
    """y = e^x; dx = gy * y."""

    def forward(self, x):
        self.y = backend.of(x).xp.exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = ln x; dx = gy / x."""

    def forward(self, x):
        self.x = x
        return backend.of(x).xp.log(x)

    def backward(self, gy):
        return gy / self.x


class Sum(Function):
    """y = sum of x over `axis` (all axes when None or (), as in MXNet); dx = gy broadcast back to x's shape.

    A sum over every axis has shape () where MXNet's has (1,): NumPy 2 converts only 0-d arrays with float(), and
    `.asscalar()` reads either."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = (None if axis == () else axis), keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        xp = backend.of(gy).xp
        if self.axis is not None and not self.keepdims:
            axes = (self.axis,) if isinstance(self.axis, int) else self.axis
            gy = xp.expand_dims(gy, tuple(a % len(self.x_shape) for a in axes))
        return xp.broadcast_to(gy, self.x_shape).copy()


class Reshape(Function):
    """y = x viewed with another shape; dx = gy reshaped back."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            special = " (MXNet's special sizes 0 and -2 to -4 are not taken: give every size, or -1 once)"
            hint = special if any(d == 0 or d < -1 for d in self.shape) else ""
            raise ValueError(f"reshape: cannot reshape an array of shape {x.shape} into {self.shape}{hint}") from None

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class GetItem(Function):
    """y = x[key]; dx = zeros with gy added at key."""

    def __init__(self, key):
        self.key = key

    def forward(self, x):
        self.x_shape, self.dtype = x.shape, x.dtype
        y = x[self.key]
        # As in MXNet, x[i] and x[a:b] along the first axis share x's memory (`x[0][:] = 1` writes into x); any
        # other selection is a new array, so that `s = x[:, 1]; s += 1` leaves x alone.
        return y if _first_axis_view(self.key) else y.copy()

    def backward(self, gy):
        xp = backend.of(gy).xp
        gx = xp.zeros(self.x_shape, dtype=self.dtype)
        if _basic_index(self.key):
            gx[self.key] = gy  # slices and integers pick each element at most once
        else:
            xp.add.at(gx, self.key, gy)  # add, not assign: a fancy index may repeat an element
        return gx


def _index(key):
    """An indexing key with NDArray parts as raw arrays; float index arrays (MXNet's default dtype) as integers."""
    parts = key if isinstance(key, tuple) else (key,)
    if not any(isinstance(k, NDArray) for k in parts):
        return key
    raw = tuple(k.data.astype(np.int64) if isinstance(k, NDArray) and k.dtype.kind == "f" else _raw(k) for k in parts)
    return raw if isinstance(key, tuple) else raw[0]


def _first_axis_view(key) -> bool:
    """Whether `key` is an integer or a step-1 slice on the first axis alone (MXNet's views)."""
    key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
    if isinstance(key, slice):
        return key.step in (None, 1)
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool)


def _basic_index(key) -> bool:
    """Whether `key` is NumPy basic indexing (integers, slices, Ellipsis, None): no index arrays."""
    parts = key if isinstance(key, tuple) else (key,)
    integer = lambda k: isinstance(k, (int, np.integer)) and not isinstance(k, bool)  # noqa: E731 - a bool is a mask
    return all(k is None or k is Ellipsis or isinstance(k, slice) or integer(k) for k in parts)
