"""Every minicnn op against MXNet 1.9.1's operator, forward and backward, in float32 (hypothesis picks the cases).

Each test runs the same float32 inputs through minicnn and MXNet inside `autograd.record()`, back-propagates the
same random head gradient through both, and compares the output and the gradient of every input and parameter.
Tolerances follow reference/TOLERANCES.md: rtol RTOL plus an atol that grows with the number of terms a result
sums (float32 sums of the same terms in another order differ by a few ulps per term).

Run only these tests with `python -m pytest -m reference`; without MXNet (the numpy 2.x environment) they skip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_ops_gradcheck import conv_settings, textbook

import minicnn as mc
from minicnn import autograd, config, ops
from minicnn.backend import cpu
from minicnn.fast import dispatch
from reference import MXNET_SKIP_REASON, load_mxnet

mx = load_mxnet()

pytestmark = [pytest.mark.reference, pytest.mark.skipif(mx is None, reason=MXNET_SKIP_REASON)]

EPS32 = float(np.finfo(np.float32).eps)  # 1.19e-7
RTOL = 1e-5
ATOL_ULPS_PER_TERM = 4  # atol = 4 ulps of 1.0 per summed term (inputs are drawn in [-1, 1])


def assert_close(actual, expected, terms: int, what: str, scale: float = 1.0, atol: float | None = None) -> None:
    """float32 results that sum `terms` values of magnitude <= `scale` agree within RTOL and
    atol = ATOL_ULPS_PER_TERM * eps32 * terms * scale (unless `atol` is given)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != MXNet's {expected.shape}"
    if atol is None:
        atol = ATOL_ULPS_PER_TERM * EPS32 * max(terms, 1) * scale
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=what)


# ---- running one op in both libraries ------------------------------------------------------------------
def run_minicnn(fn, inputs, head=None, grads=None, train_mode=True):
    """y = fn(*inputs) under minicnn's record(); back-propagate `head` (default: ones) -> (y, [grad or None])."""
    grads = grads or [True] * len(inputs)
    xs = [mc.array(a, dtype=a.dtype) for a in inputs]
    for x, g in zip(xs, grads):
        if g:
            x.attach_grad()
    with autograd.record(train_mode=train_mode):
        y = fn(*xs)
    y.backward(None if head is None else mc.array(head))
    return y.asnumpy(), [x.grad.asnumpy() if g else None for x, g in zip(xs, grads)]


def run_mxnet(fn, inputs, head=None, grads=None, train_mode=True):
    """The same as `run_minicnn` with MXNet's autograd."""
    grads = grads or [True] * len(inputs)
    xs = [mx.nd.array(a, dtype=a.dtype) for a in inputs]
    for x, g in zip(xs, grads):
        if g:
            x.attach_grad()
    with mx.autograd.record(train_mode=train_mode):
        y = fn(*xs)
    y.backward(None if head is None else mx.nd.array(head))
    return y.asnumpy(), [x.grad.asnumpy() if g else None for x, g in zip(xs, grads)]


def uniform(rng, shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def distinct(rng, shape):
    """Values in [-1, 1) that are all different (a shuffled linspace), so every max has one winner."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) / max(size / 2, 1)).astype(np.float32).reshape(shape)


# ---- window geometry drawn by hypothesis ---------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    n: int
    c: int
    h: int
    w: int
    kernel: tuple
    stride: tuple
    pad: tuple


@st.composite
def windows(draw, max_pad=None):
    """A batch shape and a (kernel, stride, padding) that fits it: output size >= 1 under the floor rule.

    Strides go up to 4 for kernels from 1 (stride > kernel happens often); heights and widths are drawn
    separately (non-square), starting at the smallest size that fits, so kernel = input is a boundary case.
    `max_pad=None` keeps padding below the kernel size (pooling's rule); an int caps it instead (convolution).
    """
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel, stride, pad, size = [], [], [], []
    for _ in range(2):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 4))
        p = draw(st.integers(0, k - 1 if max_pad is None else max_pad))
        lo = max(1, k - 2 * p)
        size.append(draw(st.integers(lo, lo + 6)))
        kernel.append(k), stride.append(s), pad.append(p)
    return Window(n, c, size[0], size[1], tuple(kernel), tuple(stride), tuple(pad))


seeds = st.integers(0, 2**32 - 1)
# Hand-picked corners (also reached by hypothesis, but never left to chance): batch 1 with one channel and the
# kernel covering the whole input; stride larger than the kernel on a non-square input; padding on one side only.
CORNERS = [
    Window(1, 1, 5, 5, (5, 5), (1, 1), (0, 0)),
    Window(1, 1, 3, 7, (3, 7), (2, 3), (0, 0)),
    Window(2, 3, 9, 6, (2, 2), (4, 3), (0, 0)),
    Window(1, 2, 7, 4, (3, 2), (2, 3), (1, 0)),
]


def corner_examples(**extra):
    def add(test):
        for case in CORNERS:
            test = example(case=case, seed=0, **extra)(test)
        return test

    return add


# ---- convolution ---------------------------------------------------------------------------------------
@settings(deadline=None)
@corner_examples(out_channels=3, use_bias=True, path="im2col")
@corner_examples(out_channels=3, use_bias=True, path="fused im2col")
@corner_examples(out_channels=3, use_bias=True, path="direct")
@corner_examples(out_channels=3, use_bias=True, path="plane")
@given(
    case=windows(max_pad=2),
    seed=seeds,
    out_channels=st.integers(1, 4),
    use_bias=st.booleans(),
    path=st.sampled_from(["im2col", "fused im2col", "direct", "plane"]),
)
def test_conv2d_output_and_gradients_match_mxnet(case, seed, out_channels, use_bias, path):
    """The paths these small layers can take on the CPU: the textbook's im2col + GEMM, the fused im2col, the direct
    kernels (forced here for any window and width, with the horizontal stride set to 1, all they take; Conv2D
    itself picks them for small windows and wide outputs only) and the small-plane kernels (forced for any size,
    with stride 1)."""
    if path == "direct":
        case = dataclasses.replace(case, stride=(case.stride[0], 1))
        settings_ = {"USE_DIRECT": True, "DIRECT_MAX_K": 10**9, "DIRECT_MIN_WIDTH": 1, "USE_POINTWISE": False}
        settings_.update(USE_PLANE=False)
    elif path == "plane":
        case = dataclasses.replace(case, stride=(1, 1))
        settings_ = {"USE_PLANE": True, "PLANE_SMALL_CHANNELS": 10**9, "PLANE_SMALL_PIXELS": 10**9}
        settings_.update(USE_POINTWISE=False)
    else:
        settings_ = {"USE_DIRECT": False, "USE_POINTWISE": False, "USE_PLANE": False, "USE_WINOGRAD": False}
    with textbook() if path == "im2col" else conv_settings(**settings_):
        out_hw = [
            (size + 2 * p - k) // s + 1 for size, k, s, p in zip((case.h, case.w), case.kernel, case.stride, case.pad)
        ]
        assert dispatch.conv2d(cpu, case.c, out_channels, case.kernel, case.stride, case.pad, out_hw) == path
        _check_conv(case, seed, out_channels, use_bias)


def _check_conv(case, seed, out_channels, use_bias):
    rng = np.random.default_rng(seed)
    x = uniform(rng, (case.n, case.c, case.h, case.w))
    w = uniform(rng, (out_channels, case.c, *case.kernel))
    b = uniform(rng, (out_channels,))
    inputs = [x, w, b] if use_bias else [x, w]

    def ours(*a):
        return ops.conv2d(*a[:2], a[2] if use_bias else None, stride=case.stride, pad=case.pad)

    def theirs(*a):
        return mx.nd.Convolution(
            *a, kernel=case.kernel, stride=case.stride, pad=case.pad, num_filter=out_channels, no_bias=not use_bias
        )

    y, _ = run_minicnn(ours, inputs)
    head = uniform(rng, y.shape)
    y, g = run_minicnn(ours, inputs, head)
    y_ref, g_ref = run_mxnet(theirs, inputs, head)
    kh, kw = case.kernel
    oh, ow = y.shape[2:]
    assert_close(y, y_ref, case.c * kh * kw + 1, f"conv2d output {case}")
    assert_close(g[0], g_ref[0], out_channels * kh * kw, f"conv2d d/dx {case}")
    assert_close(g[1], g_ref[1], case.n * oh * ow, f"conv2d d/dweight {case}")
    if use_bias:
        assert_close(g[2], g_ref[2], case.n * oh * ow, f"conv2d d/dbias {case}")


@settings(deadline=None, max_examples=25)
@given(
    n=st.integers(1, 3),
    c=st.integers(16, 24),
    o=st.integers(1, 24),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    seed=seeds,
)
def test_conv2d_winograd_path_matches_mxnet(n, c, o, size, pad, seed):
    """3x3 stride-1 layers with this many input channels (and any number of outputs) take the Winograd path on the
    CPU (fast/conv.py): same results as MXNet's convolution within float32 rounding, odd and even output sizes,
    forward and backward."""
    h, w = (max(s, 3 - 2 * p) for s, p in zip(size, pad))
    with conv_settings(USE_WINOGRAD=True, WINOGRAD_MIN_SIDE=1):  # whatever MINICNN_WINOGRAD says; any plane
        assert dispatch.use_winograd(c, (3, 3), (1, 1), (h + 2 * pad[0] - 2, w + 2 * pad[1] - 2))
        _check_winograd_conv(n, c, o, h, w, pad, seed)


def _check_winograd_conv(n, c, o, h, w, pad, seed):
    rng = np.random.default_rng(seed)
    inputs = [uniform(rng, (n, c, h, w)), uniform(rng, (o, c, 3, 3)), uniform(rng, (o,))]
    ours = lambda x, k, b: ops.conv2d(x, k, b, stride=1, pad=pad)  # noqa: E731
    theirs = lambda x, k, b: mx.nd.Convolution(x, k, b, kernel=(3, 3), pad=pad, num_filter=o)  # noqa: E731
    y, _ = run_minicnn(ours, inputs)
    head = uniform(rng, y.shape)
    y, g = run_minicnn(ours, inputs, head)
    y_ref, g_ref = run_mxnet(theirs, inputs, head)
    oh, ow = y.shape[2:]
    assert_close(y, y_ref, c * 9 + 1, "winograd conv2d output")
    assert_close(g[0], g_ref[0], o * 9, "winograd conv2d d/dx")
    assert_close(g[1], g_ref[1], n * oh * ow, "winograd conv2d d/dweight")
    assert_close(g[2], g_ref[2], n * oh * ow, "winograd conv2d d/dbias")


@settings(deadline=None, max_examples=25)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 8),
    o=st.integers(1, 8),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    act=st.sampled_from([None, "relu"]),
    seed=seeds,
)
def test_conv2d_pointwise_path_matches_mxnet(n, c, o, size, act, seed):
    """1x1 layers on the pointwise path (a batched GEMM on NCHW, fast/conv.py; here on small planes too): same
    results as MXNet's convolution (+ relu) within float32 rounding, forward and backward."""
    with conv_settings(USE_POINTWISE=True, POINTWISE_MIN_PIXELS=1):  # whatever MINICNN_POINTWISE says
        assert dispatch.use_pointwise((1, 1), (1, 1), (0, 0), size)
        rng = np.random.default_rng(seed)
        inputs = [uniform(rng, (n, c, *size)), uniform(rng, (o, c, 1, 1)), uniform(rng, (o,))]
        ours = lambda x, k, b: ops.conv2d(x, k, b, act=act)  # noqa: E731

        def theirs(x, k, b):
            y = mx.nd.Convolution(x, k, b, kernel=(1, 1), num_filter=o)
            return y if act is None else mx.nd.relu(y)

        y, _ = run_minicnn(ours, inputs)
        head = uniform(rng, y.shape)
        y, g = run_minicnn(ours, inputs, head)
        y_ref, g_ref = run_mxnet(theirs, inputs, head)
        assert_close(y, y_ref, c + 1, "pointwise conv2d output")
        assert_close(g[0], g_ref[0], o, "pointwise conv2d d/dx")
        assert_close(g[1], g_ref[1], n * size[0] * size[1], "pointwise conv2d d/dweight")
        assert_close(g[2], g_ref[2], n * size[0] * size[1], "pointwise conv2d d/dbias")


# ---- pooling -------------------------------------------------------------------------------------------
def _pool_pair(kind, case):
    def ours(x):
        f = ops.max_pool2d if kind == "max" else ops.avg_pool2d
        return f(x, case.kernel, case.stride, case.pad)

    def theirs(x):
        return mx.nd.Pooling(
            x, kernel=case.kernel, stride=case.stride, pad=case.pad, pool_type=kind, pooling_convention="valid"
        )

    return ours, theirs


@settings(deadline=None)
@corner_examples()
@given(case=windows(), seed=seeds)
def test_max_pool_output_and_gradient_match_mxnet(case, seed):
    """Inputs without ties and with negative values, so padding (never a winner) is exercised."""
    rng = np.random.default_rng(seed)
    x = distinct(rng, (case.n, case.c, case.h, case.w))
    ours, theirs = _pool_pair("max", case)
    y, _ = run_minicnn(ours, [x])
    head = uniform(rng, y.shape)
    y_ref, (g_ref,) = run_mxnet(theirs, [x], head)
    for textbook_mode in (True, False):  # the window loop and the fast kernels
        with config.textbook(textbook_mode):
            y, (g,) = run_minicnn(ours, [x], head)
        np.testing.assert_array_equal(y, y_ref, err_msg=f"max pool output {case}")  # a max is exact
        overlap = -(-case.kernel[0] // case.stride[0]) * -(-case.kernel[1] // case.stride[1])
        assert_close(g, g_ref, overlap, f"max pool d/dx {case}")


@settings(deadline=None)
@given(
    case=windows(),
    seed=seeds,
    levels=st.integers(1, 3),  # 1: every value equal; 2-3: many ties
)
@example(case=Window(1, 1, 4, 4, (2, 2), (2, 2), (0, 0)), seed=0, levels=1)  # the all-ones case MXNet documents
@example(case=Window(1, 1, 5, 5, (3, 3), (1, 1), (1, 1)), seed=0, levels=1)  # GoogLeNet's overlapping 3x3/1/1
@example(case=Window(2, 2, 7, 7, (3, 3), (2, 2), (1, 1)), seed=0, levels=2)  # GoogLeNet's 3x3/2/1
def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_mxnet(case, seed, levels):
    """With ties, each window's gradient goes to its first maximum in row-major order, and overlapping windows
    add up; MXNet does the same, so the gradients are equal exactly (a tie rule is not a rounding matter)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, size=(case.n, case.c, case.h, case.w)).astype(np.float32)
    ours, theirs = _pool_pair("max", case)
    y, _ = run_minicnn(ours, [x])
    head = rng.integers(1, 5, size=y.shape).astype(np.float32)  # small integers: sums are exact
    y_ref, (g_ref,) = run_mxnet(theirs, [x], head)
    for textbook_mode in (True, False):  # the window loop and the fast kernels
        with config.textbook(textbook_mode):
            y, (g,) = run_minicnn(ours, [x], head)
        np.testing.assert_array_equal(y, y_ref, err_msg=f"max pool output with ties {case}")
        np.testing.assert_array_equal(g, g_ref, err_msg=f"max pool d/dx with ties {case}")


def test_max_pool_of_all_ones_sends_gradient_to_each_windows_top_left():
    """The documented MXNet case: 4x4 ones, 2x2/2 pooling -> gradient only at (0,0), (0,2), (2,0), (2,2)."""
    x = np.ones((1, 1, 4, 4), np.float32)
    _, (g,) = run_minicnn(lambda a: ops.max_pool2d(a, 2, 2), [x])
    _, (g_ref,) = run_mxnet(lambda a: mx.nd.Pooling(a, kernel=(2, 2), stride=(2, 2), pool_type="max"), [x])
    expected = np.zeros((4, 4), np.float32)
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(g[0, 0], expected)
    np.testing.assert_array_equal(g_ref[0, 0], expected)


@settings(deadline=None)
@corner_examples()
@given(case=windows(), seed=seeds)
def test_avg_pool_output_and_gradient_match_mxnet_with_padding_counted(case, seed):
    rng = np.random.default_rng(seed)
    x = uniform(rng, (case.n, case.c, case.h, case.w))
    ours, theirs = _pool_pair("avg", case)
    y, _ = run_minicnn(ours, [x])
    head = uniform(rng, y.shape)
    y, (g,) = run_minicnn(ours, [x], head)
    y_ref, (g_ref,) = run_mxnet(theirs, [x], head)
    kh, kw = case.kernel
    overlap = -(-kh // case.stride[0]) * -(-kw // case.stride[1])
    assert_close(y, y_ref, kh * kw, f"avg pool output {case}")
    assert_close(g, g_ref, overlap, f"avg pool d/dx {case}")


@settings(deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
    seed=seeds,
)
def test_global_avg_pool_output_and_gradient_match_mxnet(shape, seed):
    rng = np.random.default_rng(seed)
    x = uniform(rng, shape)
    head = uniform(rng, (shape[0], shape[1], 1, 1))
    y, (g,) = run_minicnn(ops.global_avg_pool2d, [x], head)
    y_ref, (g_ref,) = run_mxnet(lambda a: mx.nd.Pooling(a, kernel=(1, 1), global_pool=True, pool_type="avg"), [x], head)
    assert_close(y, y_ref, shape[2] * shape[3], f"global avg pool output {shape}")
    assert_close(g, g_ref, 1, f"global avg pool d/dx {shape}")


# ---- dense, concat, activations, flatten ---------------------------------------------------------------
@settings(deadline=None)
@given(
    lead=st.integers(1, 4),
    features=st.lists(st.integers(1, 5), min_size=1, max_size=3),  # 2-D to 4-D inputs, flattened like Gluon
    units=st.integers(1, 6),
    use_bias=st.booleans(),
    seed=seeds,
)
def test_dense_output_and_gradients_match_mxnet(lead, features, units, use_bias, seed):
    rng = np.random.default_rng(seed)
    x = uniform(rng, (lead, *features))
    k = int(np.prod(features))
    w, b = uniform(rng, (units, k)), uniform(rng, (units,))
    inputs = [x, w, b] if use_bias else [x, w]
    head = uniform(rng, (lead, units))
    y, g = run_minicnn(ops.dense, inputs, head)
    y_ref, g_ref = run_mxnet(
        lambda *a: mx.nd.FullyConnected(*a, num_hidden=units, no_bias=not use_bias, flatten=True), inputs, head
    )
    assert_close(y, y_ref, k + 1, f"dense output x{x.shape} w{w.shape}")
    assert_close(g[0], g_ref[0], units, f"dense d/dx x{x.shape}")
    assert_close(g[1], g_ref[1], lead, f"dense d/dweight w{w.shape}")
    if use_bias:
        assert_close(g[2], g_ref[2], lead, f"dense d/dbias b{b.shape}")


@settings(deadline=None)
@given(
    base=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    dim=st.integers(0, 3),
    seed=seeds,
)
def test_concat_output_and_gradients_match_mxnet(base, sizes, dim, seed):
    rng = np.random.default_rng(seed)
    pieces = [uniform(rng, base[:dim] + (s,) + base[dim + 1 :]) for s in sizes]
    shape = list(base)
    shape[dim] = sum(sizes)
    head = uniform(rng, tuple(shape))
    y, g = run_minicnn(lambda *a: ops.concat(*a, dim=dim), pieces, head)
    y_ref, g_ref = run_mxnet(lambda *a: mx.nd.concat(*a, dim=dim), pieces, head)
    np.testing.assert_array_equal(y, y_ref, err_msg=f"concat output dim={dim} sizes={sizes}")
    for i, (a, b) in enumerate(zip(g, g_ref)):
        np.testing.assert_array_equal(a, b, err_msg=f"concat d/dpiece{i} dim={dim} sizes={sizes}")


finite_batches = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))


@settings(deadline=None)
@given(shape=finite_batches, seed=seeds, zeros=st.booleans())
def test_relu_output_and_gradient_match_mxnet(shape, seed, zeros):
    """`zeros` puts exact zeros in the input: both libraries give them the subgradient 0."""
    rng = np.random.default_rng(seed)
    x = uniform(rng, shape)
    if zeros:
        x[rng.random(shape) < 0.3] = 0
    head = uniform(rng, shape)
    y, (g,) = run_minicnn(ops.relu, [x], head)
    y_ref, (g_ref,) = run_mxnet(mx.nd.relu, [x], head)
    np.testing.assert_array_equal(y, y_ref, err_msg="relu output")
    np.testing.assert_array_equal(g, g_ref, err_msg="relu d/dx")


@settings(deadline=None)
@given(shape=finite_batches, seed=seeds, spread=st.sampled_from([1.0, 8.0, 40.0]))
def test_sigmoid_output_and_gradient_match_mxnet(shape, seed, spread):
    """Spread 40 reaches inputs where exp(-x) overflows a naive float32 sigmoid."""
    rng = np.random.default_rng(seed)
    x = (uniform(rng, shape) * spread).astype(np.float32)
    head = uniform(rng, shape)
    y, (g,) = run_minicnn(ops.sigmoid, [x], head)
    y_ref, (g_ref,) = run_mxnet(mx.nd.sigmoid, [x], head)
    assert_close(y, y_ref, 1, f"sigmoid output spread={spread}")
    assert_close(g, g_ref, 1, f"sigmoid d/dx spread={spread}")


@settings(deadline=None)
@given(shape=finite_batches, seed=seeds)
def test_flatten_output_and_gradient_match_mxnet(shape, seed):
    rng = np.random.default_rng(seed)
    x = uniform(rng, shape)
    head = uniform(rng, (shape[0], int(np.prod(shape[1:]))))
    y, (g,) = run_minicnn(ops.flatten, [x], head)
    y_ref, (g_ref,) = run_mxnet(mx.nd.flatten, [x], head)
    np.testing.assert_array_equal(y, y_ref, err_msg="flatten output")
    np.testing.assert_array_equal(g, g_ref, err_msg="flatten d/dx")


@pytest.mark.parametrize(
    ("name", "ours", "theirs", "shapes"),
    [
        ("x ** 3", lambda x: x**3, lambda x: x**3, [(2, 3)]),
        ("x ** 0.5 of positives", lambda x: (x * x + 0.1) ** 0.5, lambda x: (x * x + 0.1) ** 0.5, [(3, 2)]),
        ("square", lambda x: x.square(), lambda x: x.square(), [(2, 3, 2)]),
        ("2.5 ** x", lambda x: 2.5**x, lambda x: 2.5**x, [(3, 2)]),
        ("abs", abs, abs, [(4, 3)]),
        ("a @ b", lambda a, b: a @ b, lambda a, b: mx.nd.dot(a, b), [(3, 4), (4, 2)]),  # noqa: PLW0108 (mx: None
        ("nd.dot", mc.nd.dot, lambda a, b: mx.nd.dot(a, b), [(1, 5), (5, 3)]),  # noqa: PLW0108 without MXNet)
        (".T", lambda x: x.T, lambda x: x.T, [(2, 3, 4)]),
        ("transpose(axes)", lambda x: x.transpose((1, 2, 0)), lambda x: x.transpose((1, 2, 0)), [(2, 3, 4)]),
        ("transpose(-1, 0, 1)", lambda x: x.transpose(-1, 0, 1), lambda x: x.transpose((2, 0, 1)), [(2, 3, 4)]),
        ("transpose(axes=)", lambda x: x.transpose(axes=(2, 0, 1)), lambda x: x.transpose(axes=(2, 0, 1)), [(2, 3, 4)]),
        ("nd.relu", lambda x: mc.nd.relu(x), lambda x: mx.nd.relu(x), [(3, 4)]),  # noqa: PLW0108
        ("nd.sigmoid", lambda x: mc.nd.sigmoid(x), lambda x: mx.nd.sigmoid(x), [(3, 4)]),  # noqa: PLW0108
        ("nd.exp", lambda x: mc.nd.exp(x), lambda x: mx.nd.exp(x), [(3, 4)]),  # noqa: PLW0108
        ("nd.log", lambda x: mc.nd.log(x * x + 0.5), lambda x: mx.nd.log(x * x + 0.5), [(3, 4)]),
        ("nd.sum(axis=1)", lambda x: mc.nd.sum(x, axis=1), lambda x: mx.nd.sum(x, axis=1), [(3, 4)]),
        ("nd.mean keepdims", lambda x: mc.nd.mean(x, 0, True), lambda x: mx.nd.mean(x, 0, True), [(3, 4)]),
        ("nd.flatten", lambda x: mc.nd.flatten(x), lambda x: mx.nd.flatten(x), [(2, 3, 4)]),  # noqa: PLW0108
    ],
)
def test_ndarray_arithmetic_and_shape_methods_match_mxnet(name, ours, theirs, shapes):
    rng = np.random.default_rng(len(name))
    inputs = [uniform(rng, s) for s in shapes]
    inputs[0][0, 0] = 0.0  # abs and pow at 0: MXNet's subgradient 0
    y_probe = ours(*[mc.array(a) for a in inputs])
    head = uniform(rng, y_probe.shape)
    y, g = run_minicnn(ours, inputs, head)
    y_ref, g_ref = run_mxnet(theirs, inputs, head)
    terms = max(s[-1] for s in shapes)
    assert_close(y, y_ref, terms, f"{name} output")
    for i, (a, b) in enumerate(zip(g, g_ref)):
        assert_close(a, b, terms, f"{name} d/dinput{i}")


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_comparisons_and_argmax_match_mxnets_values_and_dtype(dtype):
    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 3, size=(3, 4)).astype(dtype) for _ in range(2))
    cases = {
        "==": lambda x, y: x == y,
        "!=": lambda x, y: x != y,
        "<": lambda x, y: x < y,
        "<=": lambda x, y: x <= y,
        ">": lambda x, y: x > y,
        ">=": lambda x, y: x >= y,
        "> 1": lambda x, y: x > 1,
        "argmax(axis=1)": lambda x, y: x.argmax(axis=1),
        "argmax(axis=0) == row 0": lambda x, y: x.argmax(axis=0) == y[0],
    }
    for name, f in cases.items():
        ours = f(mc.array(a, dtype=dtype), mc.array(b, dtype=dtype)).asnumpy()
        theirs = f(mx.nd.array(a, dtype=dtype), mx.nd.array(b, dtype=dtype)).asnumpy()
        assert ours.dtype == theirs.dtype, f"{name}: {ours.dtype} != MXNet's {theirs.dtype}"
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


def test_nd_constructors_match_mxnets_values_shapes_and_dtypes():
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    cases = [
        ("arange(5)", lambda nd: nd.arange(5)),
        ("arange(1, 4, 0.5, repeat=2)", lambda nd: nd.arange(1, 4, 0.5, repeat=2)),
        ("full", lambda nd: nd.full((2, 3), 7)),
        ("full int32", lambda nd: nd.full((2,), 3, dtype="int32")),
        ("zeros_like", lambda nd: nd.zeros_like(nd.array(x, dtype="float64"))),
        ("ones_like", lambda nd: nd.ones_like(nd.array(x))),
    ]
    for name, make in cases:
        ours, theirs = make(mc.nd).asnumpy(), make(mx.nd).asnumpy()
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    mc.nd.waitall()


def test_layers_and_the_loss_take_gluons_arguments_in_gluons_order():
    """Every argument Gluon's constructor names, at the same position (minicnn adds prefix and params, Gluon's
    **kwargs), so that code passing them by position means the same thing in both."""
    import inspect

    layers = ("Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Dropout", "Activation", "Flatten")
    pairs = [(getattr(mc.nn, n), getattr(mx.gluon.nn, n)) for n in layers]
    pairs.append((mc.loss.SoftmaxCrossEntropyLoss, mx.gluon.loss.SoftmaxCrossEntropyLoss))
    for ours, theirs in pairs:
        names = lambda c: [p for p in inspect.signature(c.__init__).parameters if p not in ("self", "kwargs")]  # noqa: E731
        assert names(ours)[: len(names(theirs))] == names(theirs), ours.__name__
        assert set(names(ours)[len(names(theirs)) :]) <= {"prefix", "params"}, ours.__name__


def test_ndarray_item_assignment_writes_in_place_like_mxnet_and_is_refused_while_recording():
    ours, theirs = mc.array(np.arange(6).reshape(2, 3)), mx.nd.array(np.arange(6).reshape(2, 3))
    for a in (ours, theirs):
        a[0] = 7
        a[1, 1:] = a[0, :2] * 2
    np.testing.assert_array_equal(ours.asnumpy(), theirs.asnumpy())
    with autograd.record(), pytest.raises(RuntimeError, match="outside the record"):
        ours[0] = 0


def test_in_place_operators_snapshots_copies_and_float_indices_behave_as_in_mxnet():
    results = {}
    for lib, nd, record in ((mc, mc.nd, autograd.record), (mx, mx.nd, mx.autograd.record)):
        w = nd.array(np.array([1.0, 2.0, 3.0]))
        w.attach_grad()
        seen = []
        for k in (1.0, 10.0):
            with record():
                loss = (w * w * k).sum()
            loss.backward()
            seen.append(w.grad.asnumpy())
            w -= 0.1 * w.grad
            w *= 2
            w /= 3
            w += 1
        x = nd.array(np.arange(12).reshape(3, 4))
        copy = x.copyto(lib.cpu())
        copy[:] = 0
        picked = x[nd.array(np.array([2, 0]))]
        pairs = x[nd.array(np.array([0, 2])), nd.array(np.array([3, 1]))]
        views = [x[1], x[0:2]]  # MXNet's views: they write into x
        copies = [x[:, 1], x[1:, 2:], x.T, x[nd.array(np.array([0]))]]  # new arrays: x stays
        for v in views + copies:
            v += 100
        results[lib.__name__] = [*seen, w.asnumpy(), x.asnumpy(), picked.asnumpy(), pairs.asnumpy()]
    for ours, theirs in zip(results["minicnn"], results["mxnet"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


# ---- softmax cross-entropy -----------------------------------------------------------------------------
@settings(deadline=None)
@given(
    n=st.integers(1, 6),
    classes=st.integers(1, 12),
    spread=st.sampled_from([1.0, 10.0, 100.0]),  # 100: exp would overflow without subtracting the max
    seed=seeds,
)
def test_softmax_cross_entropy_loss_and_gradient_match_mxnet(n, classes, spread, seed):
    rng = np.random.default_rng(seed)
    z = (uniform(rng, (n, classes)) * spread).astype(np.float32)
    labels = rng.integers(0, classes, size=n).astype(np.float32)  # Gluon takes float labels
    head = uniform(rng, (n,))
    loss = mc.loss.SoftmaxCrossEntropyLoss()
    y, g = run_minicnn(loss, [z, labels], head, grads=[True, False])
    y_ref, g_ref = run_mxnet(mx.gluon.loss.SoftmaxCrossEntropyLoss(), [z, labels], head, grads=[True, False])
    # MXNet's log-softmax is the less accurate side: against a float64 evaluation it is off by up to 3.6e-6 * spread
    # in the loss and 3.3e-6 in the gradient, whatever the number of classes (minicnn: 3.2e-7 and 2.0e-7), so
    # these two get a fixed atol with a margin of 5 over MXNet's own error instead of the per-term rule.
    assert_close(y, y_ref, classes, f"softmax cross-entropy loss spread={spread}", atol=2e-5 * spread)
    assert_close(g[0], g_ref[0], classes, f"softmax cross-entropy d/dlogits spread={spread}", atol=2e-5)


@settings(deadline=None)
@given(
    lead=st.lists(st.integers(1, 4), min_size=1, max_size=3),  # (N,), (N, T) and (N, T, U) positions per sample
    classes=st.integers(1, 6),
    sparse_label=st.booleans(),
    from_logits=st.booleans(),
    label_axis=st.booleans(),  # class indices with a trailing axis of 1, as (N, 1)
    weight=st.sampled_from([None, 0.5]),
    sample_weight=st.booleans(),
    seed=seeds,
)
def test_softmax_cross_entropy_loss_options_match_gluons(
    lead, classes, sparse_label, from_logits, label_axis, weight, sample_weight, seed
):
    """Gluon's SoftmaxCrossEntropyLoss options: predictions (N, ..., K) (a sample's loss is the mean over its
    positions), distributions as labels (sparse_label=False), log-probabilities as predictions (from_logits),
    weight and sample_weight (N, ..., 1); losses and the gradients of predictions and sample weights."""
    rng = np.random.default_rng(seed)
    shape = (*lead, classes)
    z = uniform(rng, shape) * 4
    if from_logits:  # log-probabilities, as a log_softmax layer would give them
        z = (z - np.log(np.exp(z).sum(axis=-1, keepdims=True))).astype(np.float32)
    if sparse_label:
        labels = rng.integers(0, classes, size=(*lead, 1) if label_axis else tuple(lead)).astype(np.float32)
    else:
        labels = rng.random(shape).astype(np.float32)
        labels /= labels.sum(axis=-1, keepdims=True)
    inputs = [z, labels] + ([rng.random((*lead, 1)).astype(np.float32)] if sample_weight else [])
    grads = [True, False] + ([True] if sample_weight else [])
    head = uniform(rng, (lead[0],))
    options = {"sparse_label": sparse_label, "from_logits": from_logits, "weight": weight}
    y, g = run_minicnn(mc.loss.SoftmaxCrossEntropyLoss(**options), inputs, head, grads=grads)
    y_ref, g_ref = run_mxnet(mx.gluon.loss.SoftmaxCrossEntropyLoss(**options), inputs, head, grads=grads)
    what = f"softmax cross-entropy {options} predictions {shape} labels {labels.shape}"
    assert_close(y, y_ref, classes, f"{what}: loss", atol=1e-4)  # MXNet's log-softmax: see the test above
    assert_close(g[0], g_ref[0], classes, f"{what}: d/dpredictions", atol=2e-5)
    if sample_weight:
        assert_close(g[2], g_ref[2], classes, f"{what}: d/dsample_weight", atol=1e-4)


@settings(deadline=None)
@given(
    lead=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    features=st.integers(1, 5),
    units=st.integers(1, 6),
    use_bias=st.booleans(),
    seed=seeds,
)
def test_dense_without_flatten_acts_on_the_last_axis_like_gluons(lead, features, units, use_bias, seed):
    """nn.Dense(units, flatten=False): x (..., K) -> (..., units), outputs and gradients (x, weight, bias)."""
    rng = np.random.default_rng(seed)
    x = uniform(rng, (*lead, features))
    w, b = uniform(rng, (units, features)), uniform(rng, (units,))
    head = uniform(rng, (*lead, units))

    def layer(lib):
        dense = lib.gluon.nn.Dense(units, use_bias=use_bias, flatten=False, in_units=features)
        dense.initialize()
        dense.weight.set_data(lib.nd.array(w))
        if use_bias:
            dense.bias.set_data(lib.nd.array(b))
        return dense

    ours, theirs = layer(mc), layer(mx)
    y, (g,) = run_minicnn(ours, [x], head)
    y_ref, (g_ref,) = run_mxnet(theirs, [x], head)
    assert_close(y, y_ref, features + 1, f"dense(flatten=False) output x{x.shape}")
    assert_close(g, g_ref, units, f"dense(flatten=False) d/dx x{x.shape}")
    rows = int(np.prod(lead))
    assert_close(ours.weight.grad().asnumpy(), theirs.weight.grad().asnumpy(), rows, "d/dweight")
    if use_bias:
        assert_close(ours.bias.grad().asnumpy(), theirs.bias.grad().asnumpy(), rows, "d/dbias")


# ---- dropout -------------------------------------------------------------------------------------------
def _mxnet_dropout(rate):
    return lambda a: mx.nd.Dropout(a, p=rate)


@settings(deadline=None)
@given(shape=finite_batches, seed=seeds)
def test_dropout_at_rate_zero_while_training_is_the_identity_like_mxnet(shape, seed):
    rng = np.random.default_rng(seed)
    x, head = uniform(rng, shape), uniform(rng, shape)
    y, (g,) = run_minicnn(lambda a: ops.dropout(a, 0.0), [x], head, train_mode=True)
    y_ref, (g_ref,) = run_mxnet(_mxnet_dropout(0.0), [x], head, train_mode=True)
    for ours, theirs, expected, what in ((y, y_ref, x, "output"), (g, g_ref, head, "d/dx")):
        np.testing.assert_array_equal(theirs, expected, err_msg=f"MXNet dropout(0) {what}")
        np.testing.assert_array_equal(ours, theirs, err_msg=f"dropout(0) {what}")


@settings(deadline=None)
@given(shape=finite_batches, seed=seeds, rate=st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_outside_training_is_the_identity_like_mxnet(shape, seed, rate):
    """record(train_mode=False) is prediction mode: no units are dropped, nothing is rescaled."""
    rng = np.random.default_rng(seed)
    x, head = uniform(rng, shape), uniform(rng, shape)
    y, (g,) = run_minicnn(lambda a: ops.dropout(a, rate), [x], head, train_mode=False)
    y_ref, (g_ref,) = run_mxnet(_mxnet_dropout(rate), [x], head, train_mode=False)
    np.testing.assert_array_equal(y_ref, x, err_msg="MXNet dropout outside training")
    np.testing.assert_array_equal(y, y_ref, err_msg=f"dropout({rate}) output outside training")
    np.testing.assert_array_equal(g, g_ref, err_msg=f"dropout({rate}) d/dx outside training")


@settings(deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    seed=seeds,
    rate=st.sampled_from([0.1, 0.5, 0.8]),
)
def test_dropout_with_mxnets_mask_gives_mxnets_output_and_gradient(shape, seed, rate):
    """MXNet draws a mask while training; minicnn is given the same mask (read back from MXNet's output: the
    input has no zeros, so a zero output means a dropped unit) and must reproduce the output and gradient."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, size=shape).astype(np.float32) * rng.choice([-1, 1], size=shape).astype(np.float32)
    head = uniform(rng, shape)
    mx.random.seed(seed % (2**31))
    y_ref, (g_ref,) = run_mxnet(_mxnet_dropout(rate), [x], head, train_mode=True)
    scale = np.float32(1.0) / np.float32(1.0 - rate)
    mask = (y_ref != 0).astype(np.float32) * scale
    y, (g,) = run_minicnn(lambda a: ops.dropout(a, rate, mask=mask), [x], head, train_mode=True)
    assert_close(y, y_ref, 1, f"dropout({rate}) output with MXNet's mask", scale=1.5 * scale)
    assert_close(g, g_ref, 1, f"dropout({rate}) d/dx with MXNet's mask", scale=scale)
