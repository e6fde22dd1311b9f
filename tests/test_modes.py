"""The textbook and the fast mode compute the same thing: every op, forward and every gradient, every fast
convolution path, and the five networks, within the tolerance policy of reference/TOLERANCES.md (float32 sums of the
same terms in another order differ by a few ulps per term; float64 by far less; a max is exact).

The fast paths are picked by shape rules; the op tests also force each convolution path onto small shapes (their
thresholds relaxed, as test_plane.py and the others do) so that every one is held to the textbook here.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import distinct_values, float_dtypes, window_cases
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_gradcheck import conv_settings

import minicnn as mc
from minicnn import autograd, config, init, models, ops, random
from minicnn.loss import SoftmaxCrossEntropyLoss

SEEDS = st.integers(0, 2**32 - 1)
EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps), np.dtype(np.float64): float(np.finfo(np.float64).eps)}


def run(fn, inputs, head, textbook: bool):
    """(y, [gradient of every input]) of fn(*inputs) with head gradient `head`, in the given mode."""
    xs = [mc.array(a, dtype=a.dtype) for a in inputs]
    for x in xs:
        x.attach_grad()
    with config.textbook(textbook), autograd.record():
        y = fn(*xs)
    with config.textbook(textbook):
        y.backward(mc.array(head, dtype=head.dtype))
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def both(fn, inputs, seed=0, fast=None):
    """The op's results in textbook mode and in fast mode (`fast`: the context that forces a fast path)."""
    with config.textbook(True), autograd.pause():
        shape = fn(*[mc.array(a, dtype=a.dtype) for a in inputs]).shape
    head = np.random.default_rng(seed).uniform(-1, 1, shape).astype(inputs[0].dtype)
    textbook = run(fn, inputs, head, True)
    with fast if fast is not None else config.textbook(False):
        quick = run(fn, inputs, head, False)
    return textbook, quick


def assert_close(got, want, terms: int, what: str, dtype) -> None:
    """The tolerance policy: 1e-5 * |want| + 4 * eps * terms * scale (scale: the largest |want|, at least 1)."""
    eps = EPS[np.dtype(dtype)]
    rtol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
    atol = 4 * eps * max(terms, 1) * max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


# ---- convolution: every path against the textbook's im2col + GEMM ----------------------------------------------
PATHS = {  # the settings that send small layers of the right kind to each path
    "fused im2col": {"USE_PLANE": False, "USE_WINOGRAD": False, "USE_DIRECT": False, "USE_POINTWISE": False},
    "winograd": {"USE_PLANE": False, "WINOGRAD_MIN_CHANNELS": 1, "WINOGRAD_MIN_SIDE": 1},
    "plane": {"PLANE_SMALL_CHANNELS": 10**9, "PLANE_SMALL_PIXELS": 10**9, "USE_POINTWISE": False},
    "direct": {"DIRECT_MAX_K": 10**9, "DIRECT_MIN_WIDTH": 1, "USE_PLANE": False, "USE_POINTWISE": False},
    "pointwise": {"POINTWISE_MIN_PIXELS": 1, "USE_PLANE": False},
}


def fits(path: str, case: dict) -> dict:
    """The window case, changed as little as needed for `path` to take it."""
    case = dict(case)
    if path == "winograd":
        case.update(kernel=(3, 3), stride=(1, 1), pad=tuple(min(p, 3) for p in case["pad"]))
        case["shape"] = (*case["shape"][:2], *(max(s, 3) for s in case["shape"][2:]))
    elif path == "plane":
        case["stride"] = (1, 1)
    elif path == "direct":
        case["stride"] = (case["stride"][0], 1)
    elif path == "pointwise":
        case.update(kernel=(1, 1), stride=(1, 1), pad=(0, 0))
    return case


@settings(max_examples=40, deadline=None)
@given(
    case=window_cases(max_kernel=5, max_extra=5),
    path=st.sampled_from(list(PATHS)),
    out_channels=st.integers(1, 9),
    bias=st.booleans(),
    act=st.sampled_from([None, "relu", "sigmoid"]),
    dtype=float_dtypes,
    seed=SEEDS,
)
def test_conv2d_every_fast_path_gives_the_textbooks_output_and_gradients(
    case, path, out_channels, bias, act, dtype, seed
):
    case = fits(path, case)
    rng = np.random.default_rng(seed)
    n, c, h, w = case["shape"]
    x = rng.uniform(-1, 1, (n, c, h, w)).astype(dtype)
    weight = rng.uniform(-1, 1, (out_channels, c, *case["kernel"])).astype(dtype)
    inputs = [x, weight] + ([rng.uniform(-1, 1, out_channels).astype(dtype)] if bias else [])

    def fn(x, w, b=None):
        return ops.conv2d(x, w, b, stride=case["stride"], pad=case["pad"], act=act)

    f = ops.Conv2D(case["stride"], case["pad"], act=act)
    with conv_settings(**PATHS[path]), autograd.pause():
        f(*[mc.array(a, dtype=dtype) for a in inputs[:2]])
    assert f.algorithm == path
    (y, g), (y_fast, g_fast) = both(fn, inputs, seed, fast=conv_settings(**PATHS[path]))
    (kh, kw), (oh, ow) = case["kernel"], y.shape[2:]
    assert_close(y_fast, y, c * kh * kw + 1, f"{path} output", dtype)
    assert_close(g_fast[0], g[0], out_channels * kh * kw, f"{path} d/dx", dtype)
    assert_close(g_fast[1], g[1], n * oh * ow, f"{path} d/dweight", dtype)
    if bias:
        assert_close(g_fast[2], g[2], n * oh * ow, f"{path} d/dbias", dtype)


# ---- pooling: the fast max pool against the window loop; the average pool is the window loop in both ------------
@settings(max_examples=60, deadline=None)
@given(case=window_cases(pool=True), dtype=float_dtypes, seed=SEEDS, ties=st.booleans())
def test_max_and_avg_pool_give_the_textbooks_output_and_gradient_exactly(case, dtype, seed, ties):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, case["shape"]) if ties else distinct_values(case["shape"], rng)
    x = x.astype(dtype)
    k, s, p = case["kernel"], case["stride"], case["pad"]
    for pool in (ops.max_pool2d, ops.avg_pool2d):
        (y, g), (y_fast, g_fast) = both(lambda a, pool=pool: pool(a, k, s, p), [x], seed)
        np.testing.assert_array_equal(y_fast, y)
        np.testing.assert_array_equal(g_fast[0], g[0])  # the same windows, the same first maxima, the same sums


# ---- the other ops ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", [None, "relu", "sigmoid"])
def test_dense_and_the_activations_give_the_textbooks_results(dtype, act):
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, (5, 2, 3, 4)).astype(dtype)
    w = rng.uniform(-1, 1, (7, 24)).astype(dtype)
    b = rng.uniform(-1, 1, 7).astype(dtype)
    (y, g), (y_fast, g_fast) = both(lambda x, w, b: ops.dense(x, w, b, act=act), [x, w, b])
    assert_close(y_fast, y, 25, "dense output", dtype)  # the sigmoid's kernel: within 4 ulps of the formula
    for got, want, what in zip(g_fast, g, ("d/dx", "d/dweight", "d/dbias")):
        assert_close(got, want, 7 * 5, f"dense {what}", dtype)
    for op in (ops.relu, ops.sigmoid):
        (y, g), (y_fast, g_fast) = both(op, [x])
        assert_close(y_fast, y, 1, op.__name__, dtype)
        assert_close(g_fast[0], g[0], 1, f"{op.__name__} d/dx", dtype)


def test_concat_global_pool_softmax_and_dropout_give_the_textbooks_results():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 5, 4, 4))
    mask = (rng.random((2, 8, 4, 4)) >= 0.5) * 2.0

    def block(a, b):
        y = ops.concat(a, b, dim=1)
        y = ops.dropout(y, 0.5, mask=mask)
        return ops.global_avg_pool2d(y).reshape(2, 8)

    (y, g), (y_fast, g_fast) = both(block, [a, b])
    np.testing.assert_array_equal(y_fast, y)
    for got, want in zip(g_fast, g):
        np.testing.assert_array_equal(got, want)
    z, labels = rng.standard_normal((6, 10)), rng.integers(0, 10, 6).astype(np.float64)
    results = []
    for textbook in (True, False):
        zz = mc.array(z, dtype="float64")
        zz.attach_grad()
        with config.textbook(textbook), autograd.record():
            loss = ops.softmax_cross_entropy(zz, mc.array(labels, dtype="float64"))
        loss.backward()
        results.append((loss.asnumpy(), zz.grad.asnumpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


# ---- the five networks -------------------------------------------------------------------------------------------
SIDES = {"lenet": 28, "alexnet": 224, "vgg11": 224, "nin": 224, "googlenet": 96}  # the chapter's input sizes


def network_results(name: str, dtype: str, textbook: bool):
    """Logits, per-sample losses and every parameter's gradient of one training pass (dropout on, the same masks in
    both modes: the same seed) of the network at its chapter input size, batch 2."""
    random.seed(0)
    net = models.get(name).build(classes=10)
    for p in net.collect_params().values():
        p.dtype = np.dtype(dtype)
    net.initialize(init=init.Xavier())
    rng = np.random.default_rng(1)
    side = SIDES[name]
    x = mc.array(rng.random((2, 1, side, side)), dtype=dtype)
    y = mc.array(rng.integers(0, 10, 2), dtype=dtype)
    with config.textbook(textbook):
        with autograd.pause():
            net(x)  # the deferred shapes
        random.seed(5)
        with autograd.record():
            logits = net(x)
            losses = SoftmaxCrossEntropyLoss()(logits, y)
            total = losses.sum()
        total.backward()
    return logits.asnumpy(), losses.asnumpy(), {k: p.grad().asnumpy() for k, p in net.collect_params().items()}


@pytest.mark.parametrize("name", list(SIDES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_network_gives_the_same_logits_losses_and_gradients_in_both_modes(name, dtype):
    """float64: logits and losses to 1e-12, every parameter's gradient elementwise to 1e-9 of its largest value
    (the fast convolutions sum in other orders, Winograd through its transforms). float32: logits and losses to
    1e-5 and the network's gradient as one vector to 3e-2, as against MXNet (reference/TOLERANCES.md: two values
    of a pooling window that tie within float32 rounding can be ranked differently and send that window's gradient
    elsewhere)."""
    textbook, fast = network_results(name, dtype, True), network_results(name, dtype, False)
    for got, want, what in zip(fast[:2], textbook[:2], ("logits", "losses")):  # max error relative to the largest
        bound = (1e-5 if dtype == "float32" else 1e-12) * np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=bound, err_msg=what)
    grads_fast, grads = fast[2], textbook[2]
    if dtype == "float64":
        for k, want in grads.items():
            assert np.abs(want).max() > 0, f"{k}: no gradient reached it"
            np.testing.assert_allclose(grads_fast[k], want, rtol=0, atol=1e-9 * np.abs(want).max(), err_msg=k)
    else:
        flat = np.concatenate([g.ravel() for g in grads.values()])
        flat_fast = np.concatenate([grads_fast[k].ravel() for k in grads])
        assert np.linalg.norm(flat_fast - flat) <= 3e-2 * np.linalg.norm(flat)
