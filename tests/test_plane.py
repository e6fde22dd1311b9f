"""The direct convolution of small planes (fast/cpu_plane.py): its kernels against the direct definition and the
textbook's im2col steps, Conv2D's small-plane path against central differences and against the textbook, and the
rule that picks it. Its MXNet differential test is test_conv2d_output_and_gradients_match_mxnet."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import float_dtypes
from hypothesis import given, settings
from hypothesis import strategies as st
from test_direct import GPU, arrays, tolerance
from test_ops_gradcheck import ACTS, check_path_gradients, check_paths_agree, conv_settings, ref_conv, textbook

from minicnn import ops
from minicnn.backend import cpu, shapes
from minicnn.fast import cpu_plane as plane
from minicnn.fast import dispatch

SEEDS = st.integers(0, 2**32 - 1)


def conv_path(path: str):
    """Make Conv2D take (or not take) the small-plane path for every stride-1 layer, whatever its size (and no
    1x1 layer the pointwise path, no thin one the direct path)."""
    if path == "plane":
        return conv_settings(USE_PLANE=True, PLANE_SMALL_CHANNELS=10**9, PLANE_SMALL_PIXELS=10**9, USE_POINTWISE=False)
    return textbook()


@st.composite
def cases(draw):
    """A small stride-1 convolution: kernels 1-6 (so one, two and three taps are left after the groups of three),
    pads up to the kernel, outputs of one pixel and up, 1-5 channels each way (odd counts leave a channel without
    a partner)."""
    n, c, o = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kernel, pad, size = [], [], []
    for _ in range(2):
        k = draw(st.integers(1, 6))
        p = draw(st.integers(0, k))
        lo = max(1, k - 2 * p)
        size.append(draw(st.integers(lo, lo + 7)))
        kernel.append(k), pad.append(p)
    return {"x": (n, c, *size), "w": (o, c, *kernel), "stride": (1, 1), "pad": tuple(pad)}


# ---- the kernels ------------------------------------------------------------------------------------------
# samples interleaved per block: the rule's choice (all of a small batch, here) or 1-3, which leaves a short last
# block for most batch sizes
INTERLEAVE = st.sampled_from([None, 1, 2, 3])


@settings(max_examples=80, deadline=None)
@given(case=cases(), act=st.sampled_from([None, "relu", "sigmoid"]), bias=st.booleans(), dtype=float_dtypes,
       seed=SEEDS, nb=INTERLEAVE)  # fmt: skip
def test_plane_forward_is_the_convolution_plus_bias_and_activation(case, act, bias, dtype, seed, nb):
    check_forward(case, act, bias, dtype, seed, nb)


def check_forward(case, act, bias, dtype, seed, nb=None):
    x, w, b, _ = arrays(case, seed, dtype)
    b = b if bias else None
    out = np.full(_out_shape(case), np.nan, dtype)
    got = plane.forward(x, w, b, act, case["stride"], case["pad"], out=out, nb=nb)
    want = ACTS[act](ref_conv(x.astype(np.float64), w.astype(np.float64), b, case["stride"], case["pad"]))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tolerance(dtype))  # every output written, NaNs overwritten


def _out_shape(case):
    (n, _, h, w), (o, _, kh, kw), (ph, pw) = case["x"], case["w"], case["pad"]
    return n, o, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1


@settings(max_examples=80, deadline=None)
@given(case=cases(), act=st.sampled_from([None, "relu", "sigmoid"]), dtype=float_dtypes, seed=SEEDS, nb=INTERLEAVE)
def test_plane_backward_equals_act_grad_and_the_im2col_paths_gemm_and_col2im(case, act, dtype, seed, nb):
    """With g = gy * act'(y): gb = the sum of g, gw = g2 @ cols^T and gx = col2im(W2^T @ g2), the im2col path's
    readable steps."""
    check_backward(case, act, dtype, seed, nb)


def check_backward(case, act, dtype, seed, nb=None):
    x, w, _, rng = arrays(case, seed, dtype)
    y = plane.forward(x, w, None, act, case["stride"], case["pad"])
    gy = rng.standard_normal(y.shape).astype(dtype)
    n, o = y.shape[:2]
    window = (case["w"][2:], case["stride"], case["pad"])
    g = gy.reshape(n, o, -1) if act is None else ops.activation.grad(act, y.reshape(n, o, -1), gy.reshape(n, o, -1))
    g2 = g.astype(np.float64).transpose(1, 0, 2).reshape(o, -1)
    cols = cpu.im2col(x.astype(np.float64), *window)
    want_gw = (g2 @ cols.T).reshape(w.shape)
    want_gx = cpu.col2im(w.reshape(o, -1).astype(np.float64).T @ g2, x.shape, *window)

    gx = np.full(x.shape, np.nan, dtype)
    got_gw, got_gb = plane.backward(x, y, gy, act, w, case["stride"], case["pad"], gx, nb=nb)
    assert got_gw.dtype == gx.dtype == dtype
    np.testing.assert_allclose(got_gw, want_gw, **tolerance(dtype))
    np.testing.assert_allclose(got_gb, g2.sum(axis=1), **tolerance(dtype))
    np.testing.assert_allclose(gx, want_gx, **tolerance(dtype))  # every pixel written, NaNs overwritten
    without_gx = plane.backward(x, y, gy, act, w, case["stride"], case["pad"], None, nb=nb)
    np.testing.assert_array_equal(without_gx[0], got_gw)  # the same sums, in the same order


@pytest.mark.parametrize(
    "case",
    [
        {"x": (3, 1, 28, 28), "w": (6, 1, 5, 5), "stride": (1, 1), "pad": (0, 0)},  # LeNet's first layer
        {"x": (3, 6, 12, 12), "w": (16, 6, 5, 5), "stride": (1, 1), "pad": (0, 0)},  # and its second
        {"x": (2, 5, 9, 11), "w": (7, 5, 3, 4), "stride": (1, 1), "pad": (1, 2)},
        {"x": (3, 5, 40, 37), "w": (7, 5, 3, 3), "stride": (1, 1), "pad": (1, 1)},  # VGG's 3x3 windows
        {"x": (4, 3, 5, 6), "w": (4, 3, 3, 3), "stride": (1, 1), "pad": (3, 0)},  # nine taps, a deep pad
        # five-tap window rows; input gradients scattered 5 output channels a pass, then the rest (3, then 2)
        {"x": (3, 4, 10, 9), "w": (8, 4, 5, 5), "stride": (1, 1), "pad": (0, 1)},
        {"x": (2, 3, 7, 8), "w": (12, 3, 5, 5), "stride": (1, 1), "pad": (2, 2)},
    ],
    ids=[
        "LeNet conv0",
        "LeNet conv1",
        "odd channels, 3x4 pad (1, 2)",
        "3x3 pad 1",
        "3x3 pad (3, 0)",
        "5x5, 8 outputs",
        "5x5 pad 2, 12 outputs",
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plane_kernels_at_the_shapes_conv2d_gives_them(case, dtype):
    """Planes long enough for the vectorised loops' full bodies, at LeNet's shapes, with 3x3 windows (their
    nine-tap pass and gathered input gradient) and with 5x5 ones (a window row a pass, input gradients five output
    channels a pass); 2 samples a block leaves a short last one."""
    for nb in (None, 2):
        check_forward(case, "relu", True, dtype, 3, nb)
        check_backward(case, "sigmoid", dtype, 4, nb)


def test_plane_kernels_interleave_the_samples_of_small_planes_only():
    assert plane.interleave(256, (8, 8), (5, 5)) == plane.RUN_MIN // 92  # LeNet's 6 -> 16: runs of 92 pixels
    assert plane.interleave(256, (24, 24), (5, 5)) == 1  # its 1 -> 6: 668
    assert plane.interleave(3, (1, 1), (3, 3)) == 3  # no more than the batch
    assert plane.interleave(256, (1, 1), (3, 3)) == plane.INTERLEAVE_MAX


@pytest.mark.parametrize(("nb", "n"), [(2, 37), (3, 52), (4, 4)])
def test_interleaving_samples_changes_no_output_and_no_input_gradient(nb, n):
    """Every output and input-gradient pixel sums its terms in the same order whatever the block (only the weight
    and bias gradients, sums over the batch, are added up in another order). With more groups of samples than
    backward's 16 blocks, a block runs a full group, then the short last one, whose empty lanes must add
    nothing: the weight gradient of 37 samples is the sum of 37 samples' terms."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 3, 9, 10)).astype(np.float32)
    w = (rng.standard_normal((4, 3, 3, 5)) * 0.3).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y1 = plane.forward(x, w, b, "sigmoid", (1, 1), (1, 2), nb=1)
    np.testing.assert_array_equal(plane.forward(x, w, b, "sigmoid", (1, 1), (1, 2), nb=nb), y1)
    gy = rng.standard_normal(y1.shape).astype(np.float32)
    gx1, gx = np.empty_like(x), np.empty_like(x)
    gw1, gb1 = plane.backward(x, y1, gy, "sigmoid", w, (1, 1), (1, 2), gx1, nb=1)
    gw, gb = plane.backward(x, y1, gy, "sigmoid", w, (1, 1), (1, 2), gx, nb=nb)
    np.testing.assert_array_equal(gx, gx1)
    np.testing.assert_allclose(gw, gw1, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gb, gb1, rtol=1e-5, atol=1e-4)


def test_plane_forward_keeps_a_nan_through_relu_and_keeps_it_inside_its_windows():
    """A NaN pixel reaches the outputs whose windows hold it and no other (no zero weight multiplies it)."""
    x = np.zeros((1, 1, 3, 7), np.float32)
    x[0, 0, 1, 3] = np.nan
    y = plane.forward(x, np.ones((3, 1, 2, 5), np.float32), None, "relu", (1, 1), (0, 0))
    want = np.zeros((1, 3, 2, 3), bool)
    want[0, :, :, :] = True  # every 2x5 window of a 3x7 plane holds column 3 on rows 0-1 or 1-2
    np.testing.assert_array_equal(np.isnan(y), want)
    x = np.zeros((1, 1, 1, 9), np.float32)
    x[0, 0, 0, 8] = np.inf  # the last pixel: only the last window holds it
    y = plane.forward(x, np.ones((1, 1, 1, 5), np.float32), None, None, (1, 1), (0, 0))
    np.testing.assert_array_equal(y[0, 0, 0], [0, 0, 0, 0, np.inf])


def test_plane_kernels_refuse_a_stride_and_buffers_or_shapes_that_do_not_fit():
    x, w = np.zeros((2, 1, 4, 4), np.float32), np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(
        ValueError, match=r"plane conv forward: the plane kernels take stride 1 only, got stride \(2, 1\)"
    ):
        plane.forward(x, w, None, None, (2, 1), (0, 0))
    with pytest.raises(ValueError, match=r"plane conv forward: x \(2, 1, 4, 4\) and w \(3, 2, 2, 2\) must be"):
        plane.forward(x, np.zeros((3, 2, 2, 2), np.float32), None, None, (1, 1), (0, 0))
    with pytest.raises(ValueError, match="plane conv forward: out must be a C-contiguous float32 array"):
        plane.forward(x, w, None, None, (1, 1), (0, 0), out=np.zeros((2, 3, 3, 4), np.float32)[:, :, :, :3])
    g, bad = np.zeros((2, 3, 3, 3), np.float32), np.zeros((2, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match=r"backward: gy \(2, 3, 3, 2\) and y \(2, 3, 3, 3\) must be \(2, 3, 3, 3\)"):
        plane.backward(x, g, bad, "relu", w, (1, 1), (0, 0), None)
    with pytest.raises(ValueError, match=r"plane conv backward: out must be .* shape \(2, 1, 4, 4\)"):
        plane.backward(x, g, g, None, w, (1, 1), (0, 0), np.zeros((2, 1, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"plane conv backward: the plane kernels take stride 1 only"):
        plane.backward(x, g, g, None, w, (1, 2), (0, 0), None)


# ---- Conv2D's small-plane path ---------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(case=cases(), bias=st.booleans(), act=st.sampled_from(list(ACTS)), seed=SEEDS)
def test_conv2d_plane_path_gradients_match_central_differences(case, bias, act, seed):
    x, w, b, _ = arrays(case, seed, np.float64)
    check_path_gradients("plane", conv_path("plane"), [x, w, b] if bias else [x, w], 1, case["pad"], act, seed)


@pytest.mark.parametrize(
    "chunk_bytes", [1, 4_000, 1 << 30], ids=["a chunk per sample", "chunks of 2 and 1 samples", "one chunk"]
)
@pytest.mark.parametrize("act", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_plane_and_im2col_paths_agree_in_float32(chunk_bytes, act, input_grad, monkeypatch):
    """The float32 results of the two paths differ only by rounding, whatever the batch chunks of backward.
    4,000 bytes: one sample's gradient block takes 5 * 8 * 10 * 4 = 1,600, so chunks of 2 and 1 samples."""
    monkeypatch.setattr(shapes, "IM2COL_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 12, 12)).astype(np.float32)
    w = (rng.standard_normal((5, 3, 5, 5)) * 0.3).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = check_paths_agree("plane", conv_path, x, w, b, act, input_grad, pad=(0, 1))[0]
    assert y.shape == (3, 5, 8, 10)


def test_conv2d_takes_the_plane_path_for_few_channels_on_small_planes_and_thin_layers_on_large_ones():
    few, pixels = dispatch.PLANE_SMALL_CHANNELS, dispatch.PLANE_SMALL_PIXELS
    thin, large = dispatch.PLANE_THIN_CHANNELS, dispatch.PLANE_THIN_PIXELS
    rule = lambda c, o, kernel=(5, 5), stride=(1, 1), hw=(8, 8): dispatch.use_plane(c, o, kernel, stride, hw)  # noqa: E731
    path = lambda be, c, o, k, pad, hw: dispatch.conv2d(be, c, o, (k, k), (1, 1), (pad, pad), hw)  # noqa: E731
    with conv_settings(USE_PLANE=True):  # whatever MINICNN_PLANE says
        assert rule(1, 6, hw=(24, 24)) and rule(6, 16) and rule(few, few)
        assert not rule(few + 1, 6) and not rule(6, few + 1)
        assert not rule(6, 16, stride=(1, 2)) and not rule(6, 16, stride=(2, 1))
        side = int(pixels**0.5)  # a padded plane of side x side pixels is the largest small one
        assert rule(1, 6, (5, 5), hw=(side - 4, side - 4)) and not rule(1, 6, (5, 5), hw=(side - 3, side - 4))
        big = (large // 56, 56)  # the smallest large output
        assert rule(thin, thin, (3, 3), hw=big) and rule(1, thin, (3, 3), hw=(224, 224))
        assert not rule(thin + 1, 8, (3, 3), hw=big) and not rule(8, thin + 1, (3, 3), hw=big)
        assert not rule(thin, thin, (3, 3), hw=(big[0] - 1, 56)) and not rule(thin, thin, (3, 3), (1, 2), big)
        assert path(cpu, 1, 6, 5, 0, (24, 24)) == path(cpu, 6, 16, 5, 0, (8, 8)) == "plane"  # LeNet's layers
        assert path(cpu, 1, 16, 3, 1, (224, 224)) == path(cpu, 16, 32, 3, 1, (112, 112)) == "plane"  # ÷4 VGG's
        assert path(cpu, 32, 64, 3, 1, (56, 56)) == path(cpu, 64, 64, 3, 1, (56, 56)) == "plane"
        assert path(cpu, 64, 128, 3, 1, (28, 28)) == "winograd" and path(cpu, 16, 32, 5, 2, (12, 12)) == "fused im2col"
        assert path(cpu, 64, 64, 1, 0, (56, 56)) == "pointwise"  # a 1x1 layer on a large plane is a GEMM
        assert path(GPU, 1, 6, 5, 0, (24, 24)) == "im2col"
    with conv_settings(USE_PLANE=False):  # MINICNN_PLANE=0
        assert not rule(1, 6) and path(cpu, 1, 6, 5, 0, (24, 24)) == "fused im2col"
    with textbook():
        assert path(cpu, 1, 6, 5, 0, (24, 24)) == "im2col"
