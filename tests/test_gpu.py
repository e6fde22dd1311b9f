"""The GPU backend on a real CUDA device: every op and every network must give on `mc.gpu()` what it gives on
`mc.cpu()` (same inputs, same weights), forward and backward, float32 and float64.

Skipped, with a reason starting "no CUDA device", where CuPy or a device is missing (CI); the kernels are checked
there by test_cuda_kernels.py (nvcc compile + CPU emulation). `benchmarks/gpu_check.sh` runs this file on a GPU.
Tolerances: float32 GEMMs sum in a different order in cuBLAS than in the CPU BLAS, so float32 compares with
rtol 1e-4 (MXNet's own float32 default) and float64 with rtol 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import distinct_values, float_dtypes, window_cases
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import autograd, backend, init, models, ops
from minicnn import random as mc_random
from minicnn.errors import DeviceError


def _device_problem() -> str | None:
    try:
        backend.for_device("gpu")
    except DeviceError as exc:
        return str(exc)
    return None


_PROBLEM = _device_problem()
_REASON = _PROBLEM if (_PROBLEM or "").startswith("no CUDA device") else f"no CUDA device ({_PROBLEM})"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_PROBLEM is not None, reason=_REASON)]

CPU, GPU = mc.cpu(), mc.gpu(0)
DTYPES = (np.float32, np.float64)
TOLERANCE = {np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5}, np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12}}


def tol(dtype) -> dict:
    return TOLERANCE[np.dtype(dtype)]


def run(fn, inputs, ctx, seed=0):
    """fn(*NDArrays on ctx) under record(); backward from a fixed random out_grad. -> (y, [input grads]) on host."""
    xs = [mc.array(a, ctx=ctx, dtype=a.dtype) for a in inputs]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        y = fn(*xs)
    assert y.context == ctx, f"the result left {ctx}: it is on {y.context}"
    out_grad = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y.backward(mc.array(out_grad, ctx=ctx, dtype=y.dtype))
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def assert_same_on_both_devices(fn, inputs):
    y_cpu, g_cpu = run(fn, inputs, CPU)
    y_gpu, g_gpu = run(fn, inputs, GPU)
    dtype = inputs[0].dtype
    np.testing.assert_allclose(y_gpu, y_cpu, **tol(dtype), err_msg="forward")
    for i, (a, b) in enumerate(zip(g_gpu, g_cpu)):
        np.testing.assert_allclose(a, b, **tol(dtype), err_msg=f"gradient of input {i}")


def normal(shape, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- every op, forward and backward ----------------------------------------------------------------------------

CONV_CASES = {
    "3x3 pad 1": ((2, 3, 9, 9), (4, 3, 3, 3), 1, 1),
    "lenet 5x5": ((2, 1, 28, 28), (6, 1, 5, 5), 1, 0),
    "alexnet 11x11 stride 4": ((2, 1, 67, 67), (8, 1, 11, 11), 4, 0),
    "pointwise 1x1": ((2, 8, 7, 7), (5, 8, 1, 1), 1, 0),
    "1x1 on a 16x16 plane (the pointwise path)": ((2, 8, 16, 16), (5, 8, 1, 1), 1, 0),
    "1 channel 3x3 on 64-wide rows (the CPU's direct path)": ((2, 1, 6, 64), (4, 1, 3, 3), 1, 1),
    "non-square": ((2, 3, 8, 10), (4, 3, 2, 3), (2, 1), (1, 0)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_matches_the_cpu(case, dtype):
    x_shape, w_shape, stride, pad = case
    inputs = [normal(x_shape, dtype, 1), normal(w_shape, dtype, 2), normal(w_shape[:1], dtype, 3)]
    assert_same_on_both_devices(lambda x, w, b: ops.conv2d(x, w, b, stride=stride, pad=pad), inputs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_matches_the_cpu(dtype):
    inputs = [normal((4, 3, 5, 5), dtype, 1), normal((7, 75), dtype, 2), normal((7,), dtype, 3)]
    assert_same_on_both_devices(ops.dense, inputs)


POOL_CASES = {"3x3 stride 2": (3, 2, 0), "2x2 stride 2": (2, 2, 0), "3x3 stride 1 pad 1": (3, 1, 1)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool_matches_the_cpu(case, ties, dtype):
    k, s, p = case
    rng = np.random.default_rng(4)
    shape = (2, 3, 13, 13)
    x = rng.integers(-2, 2, shape).astype(dtype) if ties else distinct_values(shape, rng, dtype)
    assert_same_on_both_devices(lambda x: ops.max_pool2d(x, k, s, p), [x])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_avg_pool_matches_the_cpu(case, dtype):
    k, s, p = case
    assert_same_on_both_devices(lambda x: ops.avg_pool2d(x, k, s, p), [normal((2, 3, 13, 13), dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_relu_sigmoid_and_flatten_match_the_cpu(dtype):
    x = normal((2, 3, 5, 6), dtype)
    assert_same_on_both_devices(ops.global_avg_pool2d, [x])
    assert_same_on_both_devices(ops.relu, [x])
    assert_same_on_both_devices(ops.sigmoid, [x])
    assert_same_on_both_devices(ops.flatten, [x])


@pytest.mark.parametrize("dtype", DTYPES)
def test_concat_matches_the_cpu(dtype):
    inputs = [normal((2, c, 4, 4), dtype, c) for c in (1, 3, 2)]
    assert_same_on_both_devices(lambda *xs: ops.concat(*xs, dim=1), inputs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_through_a_given_mask_matches_the_cpu(dtype):
    mask = (np.random.default_rng(5).random((3, 8)) >= 0.5).astype(dtype) * 2

    def fn(x):
        return ops.dropout(x, 0.5, mask=mc.array(mask, ctx=x.context, dtype=dtype))

    assert_same_on_both_devices(fn, [normal((3, 8), dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_matches_the_cpu(dtype):
    labels = np.array([0, 3, 9, 3])

    def fn(z):
        return ops.softmax_cross_entropy(z, mc.array(labels, ctx=z.context, dtype="int32"))

    assert_same_on_both_devices(fn, [normal((4, 10), dtype) * 5])


# ---- the backend's kernels directly, hypothesis-chosen windows -------------------------------------------------


def gpu_backend():
    return backend.for_device("gpu")


@settings(max_examples=25)
@given(case=window_cases(), dtype=float_dtypes, seed=st.integers(0, 2**32 - 1))
def test_im2col_and_col2im_kernels_match_the_cpu(case, dtype, seed):
    be, cpu = gpu_backend(), backend.cpu
    window = (case["kernel"], case["stride"], case["pad"])
    x = normal(case["shape"], dtype, seed)
    np.testing.assert_array_equal(be.to_numpy(be.im2col(be.asarray(x), *window)), cpu.im2col(x, *window))
    cols = normal(cpu.im2col(x, *window).shape, dtype, seed + 1)
    got = be.to_numpy(be.col2im(be.asarray(cols), case["shape"], *window))
    np.testing.assert_allclose(got, cpu.col2im(cols, case["shape"], *window), **tol(dtype))


@settings(max_examples=25)
@given(case=window_cases(pool=True), dtype=float_dtypes, seed=st.integers(0, 2**32 - 1))
def test_pooling_kernels_match_the_cpu(case, dtype, seed):
    be, cpu = gpu_backend(), backend.cpu
    window = (case["kernel"], case["stride"], case["pad"])
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 2, case["shape"]).astype(dtype)  # ties everywhere: the first maximum must win
    y, idx = be.max_pool_forward(be.asarray(x), *window)
    y_cpu, idx_cpu = cpu.max_pool_forward(x, *window)
    np.testing.assert_array_equal(be.to_numpy(y), y_cpu)
    np.testing.assert_array_equal(be.to_numpy(idx), idx_cpu)
    gy = normal(y_cpu.shape, dtype, seed)
    got = be.to_numpy(be.max_pool_backward(be.asarray(gy), idx, case["shape"], *window))
    np.testing.assert_allclose(got, cpu.max_pool_backward(gy, idx_cpu, case["shape"]), **tol(dtype))
    xf = normal(case["shape"], dtype, seed)
    got = be.to_numpy(be.avg_pool_forward(be.asarray(xf), *window))
    np.testing.assert_allclose(got, cpu.avg_pool_forward(xf, *window), **tol(dtype))
    got = be.to_numpy(be.avg_pool_backward(be.asarray(gy), case["shape"], *window))
    np.testing.assert_allclose(got, cpu.avg_pool_backward(gy, case["shape"], *window), **tol(dtype))


def test_kernels_cover_arrays_larger_than_one_launch_grid():
    # more elements than THREADS_PER_BLOCK * MAX_BLOCKS threads: every thread loops (grid-stride)
    be, cpu = gpu_backend(), backend.cpu
    x = normal((2, 16, 64, 64), np.float32)
    assert x.size * 9 > be.THREADS_PER_BLOCK * be.MAX_BLOCKS
    window = ((3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(be.to_numpy(be.im2col(be.asarray(x), *window)), cpu.im2col(x, *window))
    big = distinct_values((4, 64, 64, 80), np.random.default_rng(0), np.float32)
    assert big.size > be.THREADS_PER_BLOCK * be.MAX_BLOCKS
    y, idx = be.max_pool_forward(be.asarray(big), (3, 3), (2, 2), (0, 0))
    y_cpu, idx_cpu = cpu.max_pool_forward(big, (3, 3), (2, 2), (0, 0))
    np.testing.assert_array_equal(be.to_numpy(idx), idx_cpu)
    gy = normal(y_cpu.shape, np.float32)
    got = be.to_numpy(be.max_pool_backward(be.asarray(gy), idx, big.shape, (3, 3), (2, 2), (0, 0)))
    np.testing.assert_array_equal(got, cpu.max_pool_backward(gy, idx_cpu, big.shape))


def test_backward_kernels_are_deterministic():
    # gathers, no atomics: the same inputs give the same bits, run after run
    be = gpu_backend()
    window = ((3, 3), (2, 2), (1, 1))
    x = be.asarray(normal((8, 16, 33, 33), np.float32))
    _, idx = be.max_pool_forward(x, *window)
    cols = be.im2col(x, *window)
    gy = be.asarray(normal(idx.shape, np.float32))
    first = [
        be.to_numpy(be.col2im(cols, x.shape, *window)),
        be.to_numpy(be.max_pool_backward(gy, idx, x.shape, *window)),
        be.to_numpy(be.avg_pool_backward(gy, x.shape, *window)),
    ]
    for _ in range(3):
        again = [
            be.to_numpy(be.col2im(cols, x.shape, *window)),
            be.to_numpy(be.max_pool_backward(gy, idx, x.shape, *window)),
            be.to_numpy(be.avg_pool_backward(gy, x.shape, *window)),
        ]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


# ---- random numbers, devices -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_dropout_masks_have_the_right_values_and_repeat_under_a_seed(dtype):
    be = gpu_backend()
    mc_random.seed(3)
    mask = be.to_numpy(be.dropout_mask((200, 500), 0.3, dtype, mc_random.generator("gpu")))
    mc_random.seed(3)
    again = be.to_numpy(be.dropout_mask((200, 500), 0.3, dtype, mc_random.generator("gpu")))
    mc_random.seed(None)
    assert mask.dtype == np.dtype(dtype)
    assert set(np.unique(mask)) == {0, dtype(1 / (1 - 0.3))}
    assert abs((mask == 0).mean() - 0.3) < 0.01  # 100k draws: 0.01 is more than six standard deviations
    np.testing.assert_array_equal(mask, again)


def test_arrays_move_between_devices_and_report_where_they_are():
    a = mc.array(np.arange(6.0).reshape(2, 3), ctx=GPU)
    assert a.context == GPU and type(a.data).__module__.startswith("cupy")
    back = a.as_in_context(CPU)
    assert back.context == CPU
    np.testing.assert_array_equal(back.asnumpy(), np.arange(6.0).reshape(2, 3))
    backend.for_device("gpu").synchronize()


def test_a_missing_gpu_index_is_a_device_error():
    with pytest.raises(DeviceError, match="no CUDA device gpu"):
        mc.gpu(10_000).backend  # noqa: B018 - the property raises


# ---- networks: one training step on each device ----------------------------------------------------------------


def lenet_steps(ctx, dtype, steps=2, batch=16):
    """Train LeNet for `steps` SGD steps from a seeded start on `ctx`; -> (losses, parameters) on the host."""
    mc_random.seed(0)
    net = models.lenet()
    for p in net.collect_params().values():
        p.dtype = np.dtype(dtype)
    net.initialize(init=init.Xavier(), ctx=ctx)
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    loss = mc.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(steps):
        X = mc.array(rng.random((batch, 1, 28, 28)), ctx=ctx, dtype=dtype)
        y = mc.array(rng.integers(0, 10, batch), ctx=ctx, dtype="int32")
        with autograd.record():
            l = loss(net(X), y).sum()
        l.backward()
        trainer.step(batch)
        losses.append(l.asscalar())
    mc_random.seed(None)
    return losses, {name: p.data().asnumpy() for name, p in net.collect_params().items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_lenet_training_steps_match_the_cpu(dtype):
    losses_cpu, params_cpu = lenet_steps(CPU, dtype)
    losses_gpu, params_gpu = lenet_steps(GPU, dtype)
    np.testing.assert_allclose(losses_gpu, losses_cpu, **tol(dtype))
    for name, value in params_cpu.items():
        np.testing.assert_allclose(params_gpu[name], value, **tol(dtype), err_msg=name)


def network_gradients(spec, ctx, batch=2):
    """Loss and parameter gradients of one batch through a chapter network at its chapter input size.

    Recorded in prediction mode, so dropout is off: the two devices draw different masks."""
    mc_random.seed(0)
    net = spec.build(**spec.options)
    net.initialize(init=init.Xavier(), ctx=ctx)
    side = spec.resize or 28
    rng = np.random.default_rng(1)
    X = mc.array(rng.random((batch, 1, side, side)), ctx=ctx)
    y = mc.array(rng.integers(0, 10, batch), ctx=ctx, dtype="int32")
    with autograd.record(train_mode=False):
        l = mc.loss.SoftmaxCrossEntropyLoss()(net(X), y).sum()
    l.backward()
    mc_random.seed(None)
    return l.asscalar(), {name: p.grad().asnumpy() for name, p in net.collect_params().items()}


@pytest.mark.parametrize("name", list(models.REGISTRY))
def test_every_chapter_network_gives_the_cpu_loss_and_gradients(name):
    spec = models.REGISTRY[name]
    loss_cpu, grads_cpu = network_gradients(spec, CPU)
    loss_gpu, grads_gpu = network_gradients(spec, GPU)
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-4)
    for param, g in grads_cpu.items():
        # relative to the gradient's size: deep float32 nets sum long products in a different order on each device
        error = np.linalg.norm(grads_gpu[param] - g) / max(np.linalg.norm(g), 1e-12)
        assert error < 1e-3, f"{name} {param}: relative gradient difference {error:.2e}"
