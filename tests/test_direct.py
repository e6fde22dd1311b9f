"""The direct convolution of thin layers (fast/cpu_direct.py): its kernels against the direct definition and the
textbook's im2col steps, Conv2D's direct path against central differences and against the textbook, and the rule
that picks it. Its MXNet differential test is test_conv2d_output_and_gradients_match_mxnet."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import float_dtypes
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_gradcheck import ACTS, check_path_gradients, check_paths_agree, conv_settings, ref_conv, textbook

from minicnn.backend import cpu, shapes
from minicnn.fast import cpu_direct as direct
from minicnn.fast import dispatch

SEEDS = st.integers(0, 2**32 - 1)


def conv_path(path: str):
    """Make Conv2D take (or not take) the direct path for every layer with no horizontal stride, whatever its
    window and width (and no 1x1 layer the pointwise path)."""
    if path == "direct":
        return conv_settings(
            USE_DIRECT=True, DIRECT_MAX_K=10**9, DIRECT_MIN_WIDTH=1, USE_POINTWISE=False, USE_PLANE=False
        )
    return textbook()


@st.composite
def cases(draw):
    """A small convolution: kernels 1-5, vertical strides 1-4 (horizontal 1, all the kernels take), pads below the
    kernel, outputs of one pixel and up."""
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kernel, stride, pad, size = [], [], [], []
    for axis in range(2):
        k, s = draw(st.integers(1, 5)), draw(st.integers(1, 4)) if axis == 0 else 1
        p = draw(st.integers(0, k - 1))
        lo = max(1, k - 2 * p)
        size.append(draw(st.integers(lo, lo + 7)))
        kernel.append(k), stride.append(s), pad.append(p)
    return {"x": (n, c, *size), "w": (o, c, *kernel), "stride": tuple(stride), "pad": tuple(pad)}


def arrays(case, seed, dtype):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    return x.astype(dtype), w.astype(dtype), rng.standard_normal(case["w"][0]).astype(dtype), rng


def tolerance(dtype):
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}


# ---- the kernels ------------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(case=cases(), act=st.sampled_from([None, "relu", "sigmoid"]), bias=st.booleans(), dtype=float_dtypes,
       seed=SEEDS)  # fmt: skip
def test_direct_forward_is_the_convolution_plus_bias_and_activation(case, act, bias, dtype, seed):
    check_forward(case, act, bias, dtype, seed)


def check_forward(case, act, bias, dtype, seed):
    x, w, b, _ = arrays(case, seed, dtype)
    b = b if bias else None
    got = direct.forward(x, w, b, act, case["stride"], case["pad"])
    want = ACTS[act](ref_conv(x.astype(np.float64), w.astype(np.float64), b, case["stride"], case["pad"]))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tolerance(dtype))


@settings(max_examples=80, deadline=None)
@given(case=cases(), dtype=float_dtypes, seed=SEEDS)
def test_direct_gradient_kernels_equal_the_im2col_paths_gemm_and_col2im(case, dtype, seed):
    """weight_grad = g2 @ cols^T and input_grad = col2im(W2^T @ g2), the im2col path's readable steps."""
    check_gradient_kernels(case, dtype, seed)


def check_gradient_kernels(case, dtype, seed):
    x, w, _, rng = arrays(case, seed, dtype)
    y_shape = direct.forward(x, w, None, None, case["stride"], case["pad"]).shape
    g = rng.standard_normal(y_shape).astype(dtype)
    n, o = y_shape[:2]
    window = (case["w"][2:], case["stride"], case["pad"])
    cols = cpu.im2col(x.astype(np.float64), *window)
    g2 = g.astype(np.float64).reshape(n, o, -1).transpose(1, 0, 2).reshape(o, -1)
    want_gw = (g2 @ cols.T).reshape(w.shape)
    want_gx = cpu.col2im(w.reshape(o, -1).astype(np.float64).T @ g2, x.shape, *window)

    got_gw = direct.weight_grad(x, g, case["w"][2:], case["stride"], case["pad"])
    got_gx = direct.input_grad(g, w, x.shape, case["stride"], case["pad"], out=np.full(x.shape, np.nan, dtype))
    assert got_gw.dtype == got_gx.dtype == dtype
    np.testing.assert_allclose(got_gw, want_gw, **tolerance(dtype))
    np.testing.assert_allclose(got_gx, want_gx, **tolerance(dtype))  # every pixel written, NaNs overwritten


@pytest.mark.parametrize(
    "case",
    [
        {"x": (2, 1, 5, 70), "w": (4, 1, 3, 3), "stride": (1, 1), "pad": (1, 1)},  # VGG's first layer, shorter
        {"x": (1, 3, 4, 100), "w": (5, 3, 3, 3), "stride": (2, 1), "pad": (1, 0)},
        {"x": (2, 2, 6, 67), "w": (3, 2, 2, 5), "stride": (1, 1), "pad": (0, 2)},
    ],
    ids=["3x3 pad 1, 70 wide", "3 channels, stride (2, 1), 98 wide", "2x5 pad (0, 2), 67 wide"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_kernels_on_rows_as_wide_as_conv2d_gives_them(case, dtype):
    """Rows of 64 and more, where the vectorised loops run their full vector bodies."""
    check_forward(case, "relu", True, dtype, 3)
    check_gradient_kernels(case, dtype, 4)


def test_direct_forward_keeps_a_nan_through_relu_so_divergence_shows():
    x = np.array([[[[np.nan, 1.0, -1.0]]]], np.float32)
    y = direct.forward(x, np.ones((1, 1, 1, 1), np.float32), None, "relu", (1, 1), (0, 0))
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 1 and y[0, 0, 0, 2] == 0


def test_direct_kernels_refuse_a_horizontal_stride_and_an_out_buffer_they_would_fill_wrongly():
    x, w = np.zeros((2, 1, 4, 4), np.float32), np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"direct conv forward: .* horizontal stride of 1 only, got stride \(1, 2\)"):
        direct.forward(x, w, None, None, (1, 2), (0, 0))
    with pytest.raises(ValueError, match=r"direct conv forward: x \(2, 1, 4, 4\) and w \(3, 2, 2, 2\) must be"):
        direct.forward(x, np.zeros((3, 2, 2, 2), np.float32), None, None, (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"weight gradient: g \(2, 3, 3, 2\) is not the output of x \(2, 1, 4, 4\)"):
        direct.weight_grad(x, np.zeros((2, 3, 3, 2), np.float32), (2, 2), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="direct conv forward: out must be a C-contiguous float32 array"):
        direct.forward(x, w, None, None, (1, 1), (0, 0), out=np.zeros((2, 3, 3, 4), np.float32)[:, :, :, :3])
    g = np.zeros((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"direct conv input gradient: out must be .* shape \(2, 1, 4, 4\)"):
        direct.input_grad(g, w, (2, 1, 4, 4), (1, 1), (0, 0), out=np.zeros((2, 1, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"input shape \(2, 1, 5, 4\) does not give g \(2, 3, 3, 3\)"):
        direct.input_grad(g, w, (2, 1, 5, 4), (1, 1), (0, 0))


# ---- Conv2D's direct path ------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(case=cases(), bias=st.booleans(), act=st.sampled_from(list(ACTS)), seed=SEEDS)
def test_conv2d_direct_path_gradients_match_central_differences(case, bias, act, seed):
    x, w, b, _ = arrays(case, seed, np.float64)
    inputs = [x, w, b] if bias else [x, w]
    check_path_gradients("direct", conv_path("direct"), inputs, case["stride"], case["pad"], act, seed)


@pytest.mark.parametrize(
    "chunk_bytes", [1, 5_000, 1 << 30], ids=["a chunk per sample", "chunks of 2 and 1 samples", "one chunk"]
)
@pytest.mark.parametrize("act", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_direct_and_im2col_paths_agree_in_float32(chunk_bytes, act, input_grad, monkeypatch):
    """The float32 results of the two paths differ only by rounding, whatever the batch chunks of backward.
    5,000 bytes: one sample's gradient block takes 5 * 9 * 12 * 4 = 2,160, so chunks of 2 and 1 samples."""
    monkeypatch.setattr(shapes, "IM2COL_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 17, 12)).astype(np.float32)
    w = (rng.standard_normal((5, 2, 5, 3)) * 0.3).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = check_paths_agree("direct", conv_path, x, w, b, act, input_grad, stride=(2, 1), pad=(2, 1))[0]  # vertical 2
    assert y.shape == (3, 5, 9, 12)


class GPU:  # the GPU backend, as the dispatch rules see it: no fast paths
    name = "gpu"


def test_conv2d_takes_the_direct_path_only_for_small_windows_wide_outputs_and_no_horizontal_stride():
    k, wide = dispatch.DIRECT_MAX_K, (8, dispatch.DIRECT_MIN_WIDTH)
    rule = lambda c, kernel, stride=(1, 1), hw=wide: dispatch.use_direct(c, kernel, stride, hw)  # noqa: E731
    with conv_settings(USE_DIRECT=True):  # whatever MINICNN_DIRECT says
        assert rule(1, (1, k)) and rule(1, (3, 3)) and rule(3, (3, 3))
        assert rule(2, (4, 4)) and not rule(1, (1, k + 1)) and not rule(6, (3, 3)) and not rule(3, (3, 4))
        assert rule(1, (3, 3), stride=(2, 1))  # a vertical stride only picks rows
        assert not rule(1, (3, 3), stride=(1, 2)) and not rule(1, (3, 3), hw=(500, wide[1] - 1))
        assert dispatch.conv2d(cpu, 1, 64, (3, 3), (2, 1), (1, 1), (112, 224)) == "direct"  # a vertical stride
        assert dispatch.conv2d(cpu, 1, 64, (3, 3), (1, 1), (1, 1), (224, 224)) == "plane"  # VGG's first layer
        assert dispatch.conv2d(cpu, 1, 6, (5, 5), (1, 1), (0, 0), (24, 24)) == "plane"  # LeNet's
        assert dispatch.conv2d(cpu, 16, 128, (3, 3), (1, 1), (1, 1), (112, 112)) == "winograd"
        assert dispatch.conv2d(GPU, 1, 64, (3, 3), (2, 1), (1, 1), (112, 224)) == "im2col"
    with conv_settings(USE_DIRECT=False):  # MINICNN_DIRECT=0
        assert not rule(1, (3, 3))
    with textbook():
        assert not rule(1, (3, 3)) and dispatch.conv2d(cpu, 1, 64, (3, 3), (2, 1), (1, 1), (112, 224)) == "im2col"
