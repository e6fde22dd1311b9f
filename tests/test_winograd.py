"""Winograd F(2x2, 3x3) convolution, in three layers of checks:
the readable transforms (fast/winograd.py) against the direct convolution and as each other's adjoints, the CPU
numba kernels (fast/cpu_winograd.py) against the readable transforms, and Conv2D's Winograd path against
central differences and against the textbook's im2col.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_direct import GPU
from test_ops_gradcheck import ACTS, check_path_gradients, check_paths_agree, conv_settings, ref_conv, textbook

import minicnn as mc
from minicnn.backend import shapes
from minicnn.fast import cpu_winograd, dispatch
from minicnn.fast import winograd as wg
from minicnn.ops import conv as conv_module

SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def cases(draw):
    """A 3x3 stride-1 convolution that fits: odd and even output sizes, one output row or column, pads 0..3."""
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, 3 - 2 * ph), 9))
    w = draw(st.integers(max(1, 3 - 2 * pw), 9))
    return {"x": (n, c, h, w), "w": (o, c, 3, 3), "pad": (ph, pw), "out": (h + 2 * ph - 2, w + 2 * pw - 2)}


def draw_arrays(case, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    return x.astype(dtype), w.astype(dtype), rng.standard_normal(case["w"][0]).astype(dtype), rng


def conv_path(path: str):
    """Make Conv2D take one path for every 3x3 stride-1 layer, however few its channels."""
    if path == "im2col":
        return textbook()
    return conv_settings(USE_WINOGRAD=True, WINOGRAD_MIN_CHANNELS=1, WINOGRAD_MIN_SIDE=1, USE_PLANE=False)


# ---- the readable transforms ----------------------------------------------------------------------------
@settings(max_examples=60)
@given(case=cases(), bias=st.booleans(), seed=SEEDS)
def test_readable_winograd_convolution_equals_the_direct_convolution(case, bias, seed):
    x, w, b, _ = draw_arrays(case, seed)
    b = b if bias else None
    np.testing.assert_allclose(wg.conv2d(x, w, b, case["pad"]), ref_conv(x, w, b, (1, 1), case["pad"]), atol=1e-12)


@settings(max_examples=60)
@given(case=cases(), seed=SEEDS)
def test_each_transform_gradient_is_the_adjoint_of_its_transform(case, seed):
    """<T a, g> == <a, T^T g> for random a and g: what makes the backward pass the gradient of the forward."""
    x, w, _, rng = draw_arrays(case, seed)
    oh, ow = case["out"]
    v = wg.input_transform(x, case["pad"], oh, ow)
    gv = rng.standard_normal(v.shape)
    assert np.vdot(v, gv) == pytest.approx(np.vdot(x, wg.input_transform_grad(gv, x.shape, case["pad"], oh, ow)))
    m = rng.standard_normal((16, w.shape[0], v.shape[2]))
    y = wg.output_transform(m, x.shape[0], oh, ow)
    gy = rng.standard_normal(y.shape)
    assert np.vdot(y, gy) == pytest.approx(np.vdot(m, wg.output_transform_grad(gy)))
    u = wg.weight_transform(w)
    gu = rng.standard_normal(u.shape)
    assert np.vdot(u, gu) == pytest.approx(np.vdot(w, wg.weight_transform_grad(gu, w.shape)))


# ---- the CPU kernels ------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(
    case=cases(),
    dtype=st.sampled_from([np.float32, np.float64]),
    act=st.sampled_from(list(ACTS)),
    bias=st.booleans(),
    seed=SEEDS,
)
def test_cpu_winograd_kernels_match_the_readable_transforms(case, dtype, act, bias, seed):
    check_kernels_against_readable_transforms(case, dtype, act, bias, seed)


def check_kernels_against_readable_transforms(case, dtype, act, bias, seed):
    x, w, b, rng = draw_arrays(case, seed, dtype)
    b = b if bias else None
    (n, _, _, _), o, out_hw, pad = case["x"], case["w"][0], case["out"], case["pad"]
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    k = cpu_winograd

    v = k.input_transform(x, pad, out_hw)
    np.testing.assert_allclose(v, wg.input_transform(x, pad, *out_hw), **tol)

    m = rng.standard_normal((16, o, v.shape[2])).astype(dtype)
    y = k.output_bias_act(m, b, act, out=np.empty((n, o, *out_hw), dtype=dtype))
    expected = wg.output_transform(m, n, *out_hw) + (0 if b is None else b.reshape(1, o, 1, 1))
    np.testing.assert_allclose(y, ACTS[act](expected), **tol)

    gy = rng.standard_normal((n, o, *out_hw)).astype(dtype)
    g2 = np.ascontiguousarray(gy.transpose(1, 0, 2, 3).reshape(o, -1))  # the conv epilogue's (O, N*OH*OW)
    np.testing.assert_allclose(k.output_transform_grad(g2, n, out_hw), wg.output_transform_grad(gy), **tol)

    gv = rng.standard_normal(v.shape).astype(dtype)
    gx = k.input_transform_grad(gv, pad, out_hw, out=np.empty(x.shape, dtype=dtype))
    np.testing.assert_allclose(gx, wg.input_transform_grad(gv, x.shape, pad, *out_hw), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_winograd_kernels_match_over_several_store_blocks(dtype):
    """840 tiles per channel: the kernels that write V and gM store them in blocks of cpu_winograd._BLOCK (256)
    tiles, so this crosses three full blocks and a partial one; the hypothesis cases stay below one block."""
    case = {"x": (2, 3, 40, 41), "w": (4, 3, 3, 3), "pad": (1, 1), "out": (40, 41)}
    assert 2 * 20 * 21 > 3 * cpu_winograd._BLOCK
    check_kernels_against_readable_transforms(case, dtype, "relu", True, seed=3)


def test_cpu_winograd_kernels_refuse_an_out_buffer_of_the_wrong_shape():
    x = np.zeros((1, 2, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="winograd input transform: out must be"):
        cpu_winograd.input_transform(x, (1, 1), (4, 4), out=np.empty((16, 2, 3), dtype=np.float32))


# ---- Conv2D's Winograd path ------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(case=cases(), bias=st.booleans(), act=st.sampled_from(list(ACTS)), seed=SEEDS)
def test_conv2d_winograd_path_gradients_match_central_differences(case, bias, act, seed):
    x, w, b, _ = draw_arrays(case, seed)
    inputs = [x, w, b] if bias else [x, w]
    check_path_gradients("winograd", conv_path("winograd"), inputs, 1, case["pad"], act, seed)


@pytest.mark.parametrize(
    "chunk_bytes", [1, 40_000, 1 << 30], ids=["a chunk per sample", "chunks of 2 and 1 samples", "one chunk"]
)
@pytest.mark.parametrize("act", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_winograd_and_im2col_paths_agree_in_float32(chunk_bytes, act, input_grad, monkeypatch):
    """The float32 results of the two paths differ only by rounding, whether the batch is cut into chunks (the
    tiles are rebuilt in backward) or not (forward keeps them). 40,000 bytes: one sample of this layer's tiles
    takes 16 * 24 * 10 * 4 = 15,360, so the Winograd path runs chunks of 2 and 1 samples."""
    monkeypatch.setattr(shapes, "IM2COL_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 20, 9, 6)).astype(np.float32)
    w = (rng.standard_normal((24, 20, 3, 3)) * 0.2).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    check_paths_agree("winograd", conv_path, x, w, b, act, input_grad, pad=(1, 0), tol=1e-4)


def test_conv2d_takes_the_winograd_path_only_for_3x3_stride_1_layers_with_enough_channels_and_pixels():
    k = dispatch.WINOGRAD_MIN_CHANNELS
    side = dispatch.WINOGRAD_MIN_SIDE
    rule = lambda c, kernel=(3, 3), stride=(1, 1), out_hw=(side, 50): dispatch.use_winograd(  # noqa: E731
        c, kernel, stride, out_hw
    )
    with conv_settings(USE_WINOGRAD=True):  # whatever MINICNN_WINOGRAD says
        assert rule(k) and rule(k + 1000)
        assert not rule(k - 1)
        assert not rule(k, kernel=(5, 5)) and not rule(k, kernel=(3, 1)) and not rule(k, stride=(2, 2))
        assert not rule(k, out_hw=(side - 1, 50)) and not rule(k, out_hw=(50, side - 1))  # GoogLeNet's 3x3 planes
        assert dispatch.conv2d(GPU, 4 * k, 4 * k, (3, 3), (1, 1), (1, 1), (side, side)) == "im2col"
        x = mc.array(np.zeros((1, k, 5, 5), dtype=np.float32))
        f = conv_module.Conv2D(pad=(1, 1))
        f(x, mc.array(np.zeros((4 * k, k, 3, 3), dtype=np.float32)))  # too many channels for the small-plane path
        assert f.algorithm == "winograd"
    with conv_settings(USE_WINOGRAD=False):  # MINICNN_WINOGRAD=0
        assert not rule(k)
