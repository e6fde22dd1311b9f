"""Every op's backward against central differences in float64, plus forward references, shape rules and errors.

A gradient check compares the autograd gradient of loss = sum(op(inputs) * R), R a fixed random projection,
with (loss(x + eps e_k) - loss(x - eps e_k)) / (2 eps) for every input element k. The error of a central
difference is O(eps^2 * f''') + O(1e-16 * |loss| / eps): with eps = 1e-5, losses up to ~100 and smooth ops
that stays below 1e-8, while a wrong gradient is off by O(0.1) (R and the op derivatives are O(1)).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from conftest import distinct_values, fast_mode, window_cases
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import autograd, config, nn, ops
from minicnn.backend import cpu, shapes
from minicnn.errors import ShapeError
from minicnn.fast import conv as fast_conv
from minicnn.fast import cpu_im2col
from minicnn.ops import conv as conv_module

SEEDS = st.integers(0, 2**32 - 1)


def f64(v) -> mc.NDArray:
    return mc.array(np.asarray(v, dtype=np.float64), dtype="float64")


def check_gradients(fn, inputs, wrt=None, seed=0, train=False, eps=1e-5, rtol=1e-6, atol=1e-7):
    """Assert that backward of sum(fn(*inputs) * R) matches central differences for the inputs in `wrt`.

    fn: NDArrays -> NDArray; inputs: NumPy arrays (turned into float64 NDArrays); train: run in training
    mode (dropout) for both the recorded pass and the numerical one.
    """
    wrt = range(len(inputs)) if wrt is None else wrt
    inputs = [np.array(v, dtype=np.float64) for v in inputs]
    xs = [f64(v) for v in inputs]
    for i in wrt:
        xs[i].attach_grad()
    with autograd.record(train_mode=train):
        out = fn(*xs)
        r = np.random.default_rng(seed).standard_normal(out.shape)
        loss = (out * f64(r)).sum()
    loss.backward()

    mode = autograd.train_mode if train else contextlib.nullcontext

    def loss_at(values) -> float:
        with mode():
            return float((fn(*[f64(v) for v in values]).asnumpy() * r).sum())

    for i in wrt:
        numeric = np.zeros_like(inputs[i])
        for k in range(inputs[i].size):
            plus = [v.copy() for v in inputs]
            minus = [v.copy() for v in inputs]
            plus[i].flat[k] += eps
            minus[i].flat[k] -= eps
            numeric.flat[k] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
        analytic = xs[i].grad.asnumpy()
        assert analytic.shape == inputs[i].shape
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def ref_conv(x, w, b, stride, pad):
    """Direct convolution: every output pixel is a dot product of a padded window with each filter."""
    (sh, sw), (ph, pw) = stride, pad
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", window, w)
    return y if b is None else y + b[None, :, None, None]


@contextlib.contextmanager
def conv_settings(**values):
    """Fast mode with fast/dispatch.py's switches and thresholds set inside the block, whatever the environment says:
    USE_WINOGRAD=False runs as MINICNN_WINOGRAD=0 does, DIRECT_MAX_K=0 sets that threshold."""
    from minicnn.fast import dispatch  # noqa: PLC0415

    switches = {name[4:].lower(): on for name, on in values.items() if name.startswith("USE_")}
    with fast_mode(**switches), pytest.MonkeyPatch.context() as mp:
        for name, value in values.items():
            if not name.startswith("USE_"):
                mp.setattr(dispatch, name, value)
        yield


def textbook():
    """The context in which Conv2D runs the textbook algorithm, im2col + GEMM, whatever the environment says."""
    return config.textbook(True)


def conv_step(x, w, b, act, input_grad: bool, stride=1, pad=0):
    """Forward and backward of one conv layer with a fixed head gradient; returns y and the gradients (of x only
    when input_grad). The tests of Conv2D's paths compare these between paths."""
    xs = [mc.array(v) for v in (x, w, b)]
    for i, v in enumerate(xs):
        if i > 0 or input_grad:
            v.attach_grad()
    with autograd.record():
        y = ops.conv2d(*xs, stride=stride, pad=pad, act=act)
        head = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
        loss = (y * mc.array(head)).sum()
    loss.backward()
    return [y.asnumpy()] + [v.grad.asnumpy() for v in xs if v.grad is not None]


def check_path_gradients(path: str, forced, inputs, stride, pad, act, seed):
    """Conv2D's gradients on `path` (taken inside the context `forced`, see the tests of each path) against central
    differences, in float64; a draw with a pre-activation within a perturbation of relu's kink checks nothing."""
    from minicnn.backend.shapes import pair  # noqa: PLC0415

    fn = lambda x, w, b=None: ops.conv2d(x, w, b, stride=stride, pad=pad, act=act)  # noqa: E731
    with forced:
        f = conv_module.Conv2D(pair(stride), pair(pad), act=act)
        f(*(f64(v) for v in inputs[:2]))
        assert f.algorithm == path
        if (
            act == "relu"
            and np.abs(ops.conv2d(*(f64(v) for v in inputs), stride=stride, pad=pad).asnumpy()).min() < 1e-4
        ):
            return
        check_gradients(fn, inputs, seed=seed)


def check_paths_agree(path: str, conv_path, x, w, b, act, input_grad: bool, stride=1, pad=0, tol=1e-5):
    """conv_step on `path` and on the textbook's im2col (each forced by the context conv_path(name) of that path's
    tests): the float32 results differ only by rounding. Returns the path's results."""
    results = {}
    for name in ("im2col", path):
        with conv_path(name):
            results[name] = conv_step(x, w, b, act, input_grad, stride=stride, pad=pad)
    assert len(results[path]) == (4 if input_grad else 3)
    for got, want in zip(results[path], results["im2col"], strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    return results[path]


# ---- convolution --------------------------------------------------------------------------------------
def conv_inputs(case, out_channels, bias, seed):
    gen = np.random.default_rng(seed)
    n, c, h, w = case["shape"]
    x = gen.standard_normal((n, c, h, w))
    weight = gen.standard_normal((out_channels, c, *case["kernel"]))
    return [x, weight] + ([gen.standard_normal(out_channels)] if bias else [])


def conv_fn(case, act=None):
    return lambda x, w, b=None: ops.conv2d(x, w, b, stride=case["stride"], pad=case["pad"], act=act)


ACTS = {None: lambda v: v, "relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v))}


@settings(max_examples=60)
@given(
    case=window_cases(max_kernel=3, max_extra=3),
    out_channels=st.integers(1, 3),
    bias=st.booleans(),
    act=st.sampled_from(list(ACTS)),
    seed=SEEDS,
)
def test_conv2d_gradients_with_and_without_a_fused_activation(case, out_channels, bias, act, seed):
    inputs = conv_inputs(case, out_channels, bias, seed)
    if act == "relu":  # keep every pre-activation farther from relu's kink than a perturbation can move it
        assume(np.abs(conv_fn(case)(*(f64(v) for v in inputs)).asnumpy()).min() > 1e-4)
    check_gradients(conv_fn(case, act), inputs, seed=seed)


@settings(max_examples=100)
@given(
    case=window_cases(), out_channels=st.integers(1, 4), bias=st.booleans(), act=st.sampled_from(list(ACTS)), seed=SEEDS
)
def test_conv2d_forward_matches_direct_convolution_and_the_floor_shape_rule(case, out_channels, bias, act, seed):
    x, w, *b = conv_inputs(case, out_channels, bias, seed)
    y = conv_fn(case, act)(*(f64(v) for v in [x, w, *b]))
    (kh, kw), (sh, sw), (ph, pw) = case["kernel"], case["stride"], case["pad"]
    n, _, h, wd = case["shape"]
    assert y.shape == (n, out_channels, (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1)
    np.testing.assert_allclose(
        y.asnumpy(),
        ACTS[act](ref_conv(x, w, b[0] if b else None, case["stride"], case["pad"])),
        rtol=1e-10,
        atol=1e-10,
    )


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_1x1_fast_path_gradients_and_values(bias):
    case = {"shape": (2, 3, 4, 5), "kernel": (1, 1), "stride": (1, 1), "pad": (0, 0)}
    inputs = conv_inputs(case, 4, bias, seed=7)
    check_gradients(conv_fn(case), inputs)
    y = conv_fn(case)(*(f64(v) for v in inputs))
    np.testing.assert_allclose(y.asnumpy(), ref_conv(inputs[0], inputs[1], inputs[2] if bias else None, (1, 1), (0, 0)))


@pytest.mark.parametrize("mode", ["textbook", "fused im2col"])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 2)])
@pytest.mark.parametrize("samples_per_chunk", [1, 2])
def test_conv2d_in_chunks_of_the_batch_gives_the_same_values_and_gradients(
    monkeypatch, kernel, samples_per_chunk, mode
):
    # Batch 5 in chunks of 1 or 2 samples (the last chunk is partial); a spy counts the im2col calls of forward.
    case = {"shape": (5, 2, 5, 4), "kernel": kernel, "stride": (1, 1), "pad": (1, 0) if kernel != (1, 1) else (0, 0)}
    inputs = conv_inputs(case, 3, True, seed=11)
    whole = conv_fn(case)(*(f64(v) for v in inputs)).asnumpy()
    oh = 5 + 2 * case["pad"][0] - kernel[0] + 1
    ow = 4 - kernel[1] + 1
    k = 2 * kernel[0] * kernel[1]
    per_sample = k * oh * ow * 8 if mode == "textbook" else fast_conv._sample_bytes(k, 3, oh * ow, 8)
    monkeypatch.setattr(shapes, "IM2COL_CHUNK_BYTES", samples_per_chunk * per_sample)
    kernels = cpu if mode == "textbook" else cpu_im2col
    calls = []
    real_im2col = kernels.im2col
    monkeypatch.setattr(kernels, "im2col", lambda x, *a, **k: calls.append(x.shape[0]) or real_im2col(x, *a, **k))
    # the fused im2col path, whose im2col calls are counted (not the plane or pointwise kernels)
    with textbook() if mode == "textbook" else conv_settings(USE_PLANE=False, USE_POINTWISE=False):
        chunked = conv_fn(case)(*(f64(v) for v in inputs)).asnumpy()
        assert calls == [samples_per_chunk] * (5 // samples_per_chunk) + (
            [5 % samples_per_chunk] if 5 % samples_per_chunk else []
        )
        np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13)
        check_gradients(conv_fn(case), inputs, seed=3)


@pytest.mark.parametrize("act", list(ACTS))
def test_conv2d_gradients_with_more_output_channels_than_the_transposed_gemm_takes(act):
    # Layers with at most FEW_ROWS output channels run their GEMMs transposed; the other path needs checking too.
    case = {"shape": (2, 2, 4, 4), "kernel": (3, 3), "stride": (1, 1), "pad": (1, 1)}
    inputs = conv_inputs(case, fast_conv.FEW_ROWS + 2, True, seed=13)
    with conv_settings(USE_PLANE=False):  # the fused im2col path's GEMMs
        if act == "relu":
            assume_away_kinks = np.abs(conv_fn(case)(*(f64(v) for v in inputs)).asnumpy()).min() > 1e-4
            assert assume_away_kinks, "pick another seed: a pre-activation lies on relu's kink"
        check_gradients(conv_fn(case, act), inputs, seed=13)
        y = conv_fn(case, act)(*(f64(v) for v in inputs))
    np.testing.assert_allclose(y.asnumpy(), ACTS[act](ref_conv(*inputs, (1, 1), (1, 1))), rtol=1e-10, atol=1e-10)


def test_conv2d_backward_accepts_a_head_gradient_of_another_float_type():
    rng = np.random.default_rng(0)
    x = mc.array(rng.standard_normal((2, 2, 5, 5)), dtype="float32")
    w = mc.array(rng.standard_normal((3, 2, 3, 3)), dtype="float32")
    grads = []
    for head_dtype in ("float32", "float64"):
        for a in (x, w):
            a.attach_grad()
        with autograd.record():
            y = ops.conv2d(x, w)
        y.backward(mc.array(np.ones(y.shape), dtype=head_dtype))
        assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
        grads.append((x.grad.asnumpy(), w.grad.asnumpy()))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_conv2d_skips_the_input_gradient_when_the_input_needs_none():
    # The first layer's input never needs a gradient; the weight gradient must still be right.
    case = {"shape": (2, 1, 5, 5), "kernel": (3, 3), "stride": (1, 1), "pad": (0, 0)}
    x, w, b = conv_inputs(case, 2, True, seed=5)
    check_gradients(conv_fn(case), [x, w, b], wrt=[1, 2])


# ---- pooling ------------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(case=window_cases(pool=True, max_extra=3), seed=SEEDS)
def test_max_pool2d_gradients_on_inputs_without_ties(case, seed):
    x = distinct_values(case["shape"], np.random.default_rng(seed))
    check_gradients(lambda a: ops.max_pool2d(a, case["kernel"], case["stride"], case["pad"]), [x], seed=seed)


@settings(max_examples=60)
@given(case=window_cases(pool=True, max_extra=3), seed=SEEDS)
def test_avg_pool2d_gradients(case, seed):
    x = np.random.default_rng(seed).standard_normal(case["shape"])
    check_gradients(lambda a: ops.avg_pool2d(a, case["kernel"], case["stride"], case["pad"]), [x], seed=seed)


@settings(max_examples=10)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)), seed=SEEDS)
def test_global_avg_pool2d_gradients_and_values(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    check_gradients(ops.global_avg_pool2d, [x], seed=seed)
    y = ops.global_avg_pool2d(f64(x))
    assert y.shape == (*shape[:2], 1, 1)
    np.testing.assert_allclose(y.asnumpy(), x.mean(axis=(2, 3), keepdims=True))


# ---- dense, activations, reshaping --------------------------------------------------------------------
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(3, 4), (2, 3, 2, 2)])
def test_dense_gradients_with_inputs_flattened_and_an_optional_fused_activation(x_shape, bias, act):
    gen = np.random.default_rng(1)
    k = int(np.prod(x_shape[1:]))
    inputs = [gen.standard_normal(x_shape), gen.standard_normal((5, k))] + ([gen.standard_normal(5)] if bias else [])
    pre = inputs[0].reshape(x_shape[0], -1) @ inputs[1].T + (inputs[2] if bias else 0)
    assert np.abs(pre).min() > 1e-3  # fixed data, far from relu's kink
    check_gradients(lambda *xs: ops.dense(*xs, act=act), inputs)
    y = ops.dense(*(f64(v) for v in inputs), act=act).asnumpy()
    np.testing.assert_allclose(y, ACTS[act](pre), rtol=1e-12)


def test_relu_gradients_away_from_zero():
    gen = np.random.default_rng(2)
    # |x| >= 0.1: the kink at 0 is never within eps of an input
    x = gen.choice([-1.0, 1.0], size=(3, 4)) * gen.uniform(0.1, 2.0, size=(3, 4))
    check_gradients(ops.relu, [x])
    np.testing.assert_array_equal(ops.relu(f64(x)).asnumpy(), np.maximum(x, 0))


def test_relu_gradient_at_exactly_zero_is_zero_like_mxnet():
    x = f64([-1.0, 0.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = ops.relu(x)
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [0.0, 0.0, 1.0])


def test_sigmoid_gradients_and_values_including_large_inputs():
    x = np.array([[-30.0, -2.0, -0.5, 0.0], [0.5, 2.0, 30.0, 800.0]])
    check_gradients(ops.sigmoid, [x])
    with np.errstate(over="raise"):  # no overflow error or warning reaches the caller
        y = ops.sigmoid(f64(x)).asnumpy()
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-np.clip(x, -700, 700))), rtol=1e-12)


def test_sigmoid_keeps_relative_precision_for_very_negative_inputs_in_float32():
    # sigmoid(-20) = 2.06e-9: a (1 + tanh(x/2)) / 2 formula cancels to exactly 0 in float32.
    x = np.array([-20.0, -12.0, -5.0], dtype=np.float32)
    y = ops.sigmoid(mc.array(x)).asnumpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)


def test_flatten_gradients():
    check_gradients(ops.flatten, [np.random.default_rng(3).standard_normal((2, 3, 2, 2))])
    assert ops.flatten(f64(np.zeros((2, 3, 2, 2)))).shape == (2, 12)


@pytest.mark.parametrize(
    ("dim", "shapes"),
    [
        (1, [(2, 1, 3, 3), (2, 2, 3, 3), (2, 3, 3, 3), (2, 1, 3, 3)]),  # Inception's four paths
        (0, [(1, 2, 3), (2, 2, 3)]),
        (-1, [(2, 2, 1), (2, 2, 4)]),
        (3, [(1, 2, 2, 3), (1, 2, 2, 1)]),
    ],
)
def test_concat_gradients_and_values(dim, shapes):
    gen = np.random.default_rng(4)
    inputs = [gen.standard_normal(s) for s in shapes]
    check_gradients(lambda *xs: ops.concat(*xs, dim=dim), inputs)
    np.testing.assert_array_equal(ops.concat(*(f64(v) for v in inputs), dim=dim).asnumpy(), np.concatenate(inputs, dim))


def test_softmax_cross_entropy_gradients_with_respect_to_the_logits():
    gen = np.random.default_rng(5)
    logits = gen.standard_normal((4, 5)) * 3
    labels = np.array([0, 4, 2, 2])
    check_gradients(ops.softmax_cross_entropy, [logits, labels], wrt=[0])
    loss = ops.softmax_cross_entropy(f64(logits), f64(labels)).asnumpy()
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(p[np.arange(4), labels]), rtol=1e-12)


def test_softmax_cross_entropy_with_distributions_as_labels_gradients_and_values():
    gen = np.random.default_rng(6)
    logits, q = gen.standard_normal((3, 4)) * 2, gen.random((3, 4))
    check_gradients(ops.softmax_cross_entropy, [logits, q])  # logits and the distribution
    loss = ops.softmax_cross_entropy(f64(logits), f64(q)).asnumpy()
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss, -(q * log_p).sum(axis=1), rtol=1e-12)


def test_softmax_cross_entropy_does_not_overflow_on_large_logits():
    loss = ops.softmax_cross_entropy(f64([[1000.0, 0.0], [0.0, 1000.0]]), f64([0, 0])).asnumpy()
    np.testing.assert_allclose(loss, [0.0, 1000.0])


def test_dropout_gradients_through_a_given_mask():
    gen = np.random.default_rng(6)
    x = gen.standard_normal((3, 5))
    mask = (gen.random((3, 5)) >= 0.4) / (1 - 0.4)
    check_gradients(lambda a: ops.dropout(a, 0.4, mask=mask), [x], train=True)
    with autograd.train_mode():
        np.testing.assert_allclose(ops.dropout(f64(x), 0.4, mask=mask).asnumpy(), x * mask)


ELEMENTWISE = {
    "add broadcast": (lambda a, b: a + b, [(2, 3), (1, 3)]),
    "sub broadcast": (lambda a, b: a - b, [(2, 3, 2), (3, 1)]),
    "mul broadcast": (lambda a, b: a * b, [(2, 3), (2, 1)]),
    "div broadcast": (lambda a, b: a / (b * b + 1), [(2, 3), (3,)]),
    "scalars": (lambda a: 3 - (2 * a + 1) / 4 - (-a), [(2, 3)]),
    "exp": (lambda a: a.exp(), [(2, 3)]),
    "log": (lambda a: (a * a + 0.5).log(), [(2, 3)]),
    "sum axis": (lambda a: a.sum(axis=(0, 2)), [(2, 3, 2)]),
    "mean keepdims": (lambda a: a.mean(axis=1, keepdims=True), [(2, 3, 2)]),
    "reshape": (lambda a: a.reshape(3, 4), [(2, 3, 2)]),
    "getitem": (lambda a: a[1:, ::2], [(3, 4)]),
    "reuse": (lambda a: a * a * a + a, [(2, 3)]),
    "pow": (lambda a: (a * a + 0.5) ** 1.5, [(2, 3)]),
    "square": (lambda a: a.square(), [(3, 2)]),
    "number ** x": (lambda a: 2.5**a, [(2, 3)]),
    "abs": (abs, [(2, 3)]),
    "matmul": (lambda a, b: a @ b, [(2, 3), (3, 4)]),
    "transpose": (lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
    "T": (lambda a: a.T, [(2, 3, 4)]),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_and_shape_op_gradients(name):
    fn, shapes = ELEMENTWISE[name]
    gen = np.random.default_rng(7)
    check_gradients(fn, [gen.standard_normal(s) for s in shapes])


# ---- shape rules and errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "x_shape", "pattern"),
    [
        (lambda: nn.Conv2D(2, kernel_size=5), (1, 1, 3, 3), r"conv0.*5x5.*3x3.*\(1, 1, 3, 3\)"),
        (lambda: nn.Conv2D(2, kernel_size=(2, 6), padding=1), (1, 1, 3, 3), r"conv0.*2x6.*5x5.*\(1, 1, 3, 3\)"),
        (lambda: nn.MaxPool2D(pool_size=4), (2, 3, 3, 3), r"pool0.*4x4.*3x3.*\(2, 3, 3, 3\)"),
        (lambda: nn.AvgPool2D(pool_size=3, strides=1), (1, 1, 2, 5), r"pool0.*3x3.*2x5.*\(1, 1, 2, 5\)"),
    ],
)
def test_a_kernel_larger_than_the_padded_input_is_a_shape_error_naming_layer_and_shapes(make, x_shape, pattern):
    with nn.fresh_names():
        layer = make()
    layer.initialize()
    with pytest.raises(ShapeError, match=pattern):
        layer(mc.array(np.zeros(x_shape)))


def test_a_kernel_exactly_the_padded_input_size_gives_one_output_pixel():
    layer = nn.Conv2D(2, kernel_size=5, padding=1)
    layer.initialize()
    assert layer(mc.array(np.zeros((1, 1, 3, 3)))).shape == (1, 2, 1, 1)


def test_functional_ops_report_a_kernel_larger_than_the_input_too():
    with pytest.raises(ShapeError, match=r"conv2d.*\(1, 1, 2, 2\)"):
        ops.conv2d(f64(np.zeros((1, 1, 2, 2))), f64(np.zeros((1, 1, 3, 3))))
    with pytest.raises(ShapeError, match=r"pool.*\(1, 1, 2, 2\)"):
        ops.max_pool2d(f64(np.zeros((1, 1, 2, 2))), 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Conv2D(0, kernel_size=3),
        lambda: nn.Conv2D(-2, kernel_size=3),
        lambda: nn.Conv2D(4, kernel_size=0),
        lambda: nn.Conv2D(4, kernel_size=(3, -1)),
        lambda: nn.Conv2D(4, kernel_size=3, strides=0),
        lambda: nn.Conv2D(4, kernel_size=3, strides=(1, -1)),
        lambda: nn.Conv2D(4, kernel_size=3, padding=-1),
        lambda: nn.MaxPool2D(pool_size=0),
        lambda: nn.MaxPool2D(pool_size=2, strides=0),
        lambda: nn.AvgPool2D(pool_size=-3),
        lambda: nn.Dense(0),
        lambda: nn.Dense(-1),
        lambda: nn.Dropout(1.0),
        lambda: nn.Dropout(-0.1),
    ],
)
def test_non_positive_sizes_are_rejected_when_the_layer_is_built(make):
    with pytest.raises(ValueError, match=r"conv|pool|dense|dropout"):
        make()


@pytest.mark.parametrize("stride, pad", [(0, 0), (-1, 0), (1, -1)])
def test_the_functional_conv_rejects_a_non_positive_stride_or_negative_padding(stride, pad):
    with pytest.raises(ValueError, match="conv2d"):
        ops.conv2d(f64(np.zeros((1, 1, 4, 4))), f64(np.zeros((1, 1, 2, 2))), stride=stride, pad=pad)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.MaxPool2D(pool_size=2, padding=2),
        lambda: nn.MaxPool2D(pool_size=3, strides=2, padding=(0, 3)),
        lambda: nn.AvgPool2D(pool_size=3, padding=3),
        lambda: ops.MaxPool2D(2, 1, 2),
    ],
)
def test_pooling_padding_must_be_smaller_than_the_pool_size(make):
    with pytest.raises(ValueError, match="padding"):
        make()


@pytest.mark.parametrize(
    ("make", "x_shape"),
    [
        (lambda: nn.Conv2D(2, 3), (1, 5, 5)),
        (lambda: nn.Conv2D(2, 3), (1, 1, 1, 5, 5)),
        (nn.MaxPool2D, (4, 4)),
        (nn.AvgPool2D, (1, 4, 4)),
        (nn.GlobalAvgPool2D, (1, 4, 4)),
        (lambda: nn.Dense(3), (5,)),
    ],
)
def test_an_input_with_the_wrong_number_of_dimensions_is_a_shape_error_naming_the_layer(make, x_shape):
    with nn.fresh_names():
        layer = make()
    layer.initialize()
    with pytest.raises(ShapeError, match=rf"(conv|pool|dense)0.*{x_shape}"):
        layer(mc.array(np.zeros(x_shape)))


def test_functional_conv_rejects_a_3d_input_and_a_channel_mismatch():
    with pytest.raises(ShapeError, match=r"\(1, 4, 4\)"):
        ops.conv2d(f64(np.zeros((1, 4, 4))), f64(np.zeros((1, 1, 2, 2))))
    with pytest.raises(ShapeError, match=r"\(1, 3, 4, 4\).*\(2, 1, 2, 2\)"):
        ops.conv2d(f64(np.zeros((1, 3, 4, 4))), f64(np.zeros((2, 1, 2, 2))))


def test_a_wrong_channel_count_after_initialisation_is_a_shape_error():
    with nn.fresh_names():
        conv = nn.Conv2D(4, kernel_size=3)
    conv.initialize()
    conv(mc.array(np.zeros((1, 1, 6, 6))))  # fixes in_channels = 1
    with pytest.raises(ShapeError, match=r"conv0.*\(1, 3, 6, 6\).*3 channels.*1"):
        conv(mc.array(np.zeros((1, 3, 6, 6))))


def test_a_wrong_feature_count_after_initialisation_is_a_shape_error():
    with nn.fresh_names():
        dense = nn.Dense(4)
    dense.initialize()
    dense(mc.array(np.zeros((2, 3, 2, 2))))  # fixes in_units = 12
    with pytest.raises(ShapeError, match=r"dense0.*\(2, 10\).*10.*12"):
        dense(mc.array(np.zeros((2, 10))))


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [2, 7]])
def test_a_label_out_of_range_is_a_value_error_naming_the_class_count(labels):
    with pytest.raises(ValueError, match=r"\[0, 2\].*3 classes"):
        ops.softmax_cross_entropy(f64(np.zeros((2, 3))), f64(labels))


def test_labels_that_do_not_match_the_batch_are_a_shape_error():
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(3,\)"):
        ops.softmax_cross_entropy(f64(np.zeros((2, 3))), f64([0, 1, 2]))


def test_concat_with_mismatched_shapes_is_a_shape_error_listing_them():
    with pytest.raises(ShapeError, match=r"\(2, 1, 3, 3\).*\(2, 1, 4, 3\)"):
        ops.concat(f64(np.zeros((2, 1, 3, 3))), f64(np.zeros((2, 1, 4, 3))), dim=1)
    with pytest.raises(ShapeError, match="differ"):
        ops.concat(f64(np.zeros((2, 1, 3))), f64(np.zeros((2, 1, 3, 3))), dim=1)
    with pytest.raises(ValueError, match="at least one"):
        ops.concat(dim=1)


@pytest.mark.parametrize(
    ("path", "x_shape", "w_shape", "pad"),
    [
        ("im2col", (0, 17, 5, 5), (2, 17, 2, 2), 1),
        ("fused im2col", (0, 17, 5, 5), (2, 17, 2, 2), 1),
        ("plane", (0, 3, 5, 5), (2, 3, 3, 3), 1),
        ("winograd", (0, 17, 5, 5), (2, 17, 3, 3), 1),
        ("pointwise", (0, 3, 16, 16), (2, 3, 1, 1), 0),
        ("direct", (0, 1, 20, 70), (2, 1, 3, 3), 1),
    ],
)
def test_conv2d_takes_an_empty_batch_on_every_path(path, x_shape, w_shape, pad):
    """An empty last batch must not crash: zero outputs, zero input gradients, a zero weight gradient."""

    x, w = mc.array(np.zeros(x_shape, np.float32)), mc.array(np.ones(w_shape, np.float32))
    x.attach_grad(), w.attach_grad()
    f = ops.Conv2D(pad=(pad, pad), act="relu")
    mode = textbook() if path == "im2col" else conv_settings(USE_WINOGRAD=True, USE_POINTWISE=True, USE_DIRECT=True)
    with mode, autograd.record():  # whatever the env
        y = f(x, w)
        assert f.algorithm == path
        loss = y.sum()
    loss.backward()
    assert y.shape == (0, w_shape[0], x_shape[2] + 2 * pad - w_shape[2] + 1, x_shape[3] + 2 * pad - w_shape[3] + 1)
    assert x.grad.shape == x_shape and not w.grad.asnumpy().any()
