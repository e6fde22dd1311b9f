"""Conv2D's pointwise path (1x1 stride-1 unpadded layers: a batched GEMM on NCHW as it is, fast/conv.py) against
central differences, against the textbook's im2col, and the rule that picks it. The MXNet differential test of the
path is in test_reference_ops.py; the NCHW layouts of the fused epilogues are checked in test_kernels.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_direct import GPU
from test_ops_gradcheck import (
    ACTS,
    check_gradients,
    check_paths_agree,
    conv_settings,
    conv_step,
    f64,
    ref_conv,
    textbook,
)  # fmt: skip

import minicnn as mc
from minicnn import ops
from minicnn.backend import cpu, shapes
from minicnn.fast import dispatch
from minicnn.ops import conv as conv_module

SEEDS = st.integers(0, 2**32 - 1)


def conv_path(path: str):
    """Make Conv2D take (or not take) the pointwise path for every 1x1 stride-1 unpadded layer, however small its
    planes."""
    if path == "im2col":
        return textbook()
    return conv_settings(USE_POINTWISE=True, POINTWISE_MIN_PIXELS=1, USE_PLANE=False)


@st.composite
def cases(draw):
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    return (n, c, h, w), (o, c, 1, 1)


@settings(max_examples=40, deadline=None)
@given(case=cases(), bias=st.booleans(), act=st.sampled_from(list(ACTS)), seed=SEEDS)
def test_pointwise_convolution_matches_the_definition_and_central_differences(case, bias, act, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(case[0]), rng.standard_normal(case[1]), rng.standard_normal(case[1][0])
    inputs = [x, w, b] if bias else [x, w]
    fn = lambda x, w, b=None: ops.conv2d(x, w, b, act=act)  # noqa: E731
    with conv_path("pointwise"):
        f = conv_module.Conv2D(act=act)
        y = f(*(f64(v) for v in inputs)).asnumpy()
        assert f.algorithm == "pointwise"
        np.testing.assert_allclose(y, ACTS[act](ref_conv(x, w, b if bias else None, (1, 1), (0, 0))), atol=1e-12)
        if act == "relu" and np.abs(ref_conv(x, w, b if bias else None, (1, 1), (0, 0))).min() < 1e-4:
            return  # no pre-activation within a perturbation of relu's kink
        check_gradients(fn, inputs, seed=seed)


@pytest.mark.parametrize(
    "chunk_bytes", [1, 6_000, 1 << 30], ids=["a chunk per sample", "chunks of 2 and 1 samples", "one chunk"]
)
@pytest.mark.parametrize("act", [None, "relu", "sigmoid"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_pointwise_and_im2col_paths_agree_in_float32(chunk_bytes, act, input_grad, monkeypatch):
    """The float32 results of the two paths differ only by rounding (the weight gradient's sum runs in another
    order), whatever the batch chunks. 6,000 bytes: one sample's gradient block takes 12 * 9 * 7 * 4 = 3,024,
    so backward runs chunks of 2 and 1 samples."""
    monkeypatch.setattr(shapes, "IM2COL_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 10, 9, 7)).astype(np.float32)
    w = (rng.standard_normal((12, 10, 1, 1)) * 0.3).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    check_paths_agree("pointwise", conv_path, x, w, b, act, input_grad)


def test_pointwise_path_takes_a_non_contiguous_input():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 2, 5)).astype(np.float32).transpose(1, 0, 3, 2)  # (3, 4, 5, 2), not C-contiguous
    w = rng.standard_normal((6, 4, 1, 1)).astype(np.float32)
    with conv_path("pointwise"):
        got = conv_step(x, w, np.zeros(6, np.float32), None, True)
    with conv_path("im2col"):
        want = conv_step(np.ascontiguousarray(x), w, np.zeros(6, np.float32), None, True)
    for g, v in zip(got, want, strict=True):
        np.testing.assert_allclose(g, v, rtol=1e-5, atol=1e-5 * np.abs(v).max())


def test_conv2d_takes_the_pointwise_path_only_for_1x1_stride_1_unpadded_layers_on_large_planes():
    k = dispatch.POINTWISE_MIN_PIXELS
    big = (k, 1)
    rule = lambda kernel=(1, 1), stride=(1, 1), pad=(0, 0), hw=big: dispatch.use_pointwise(kernel, stride, pad, hw)  # noqa: E731
    with conv_settings(USE_POINTWISE=True):  # whatever MINICNN_POINTWISE says
        assert rule() and rule(hw=(16, 16))
        assert not rule(hw=(k - 1, 1)) and not rule(hw=(15, 16))
        assert not rule(kernel=(3, 3)) and not rule(kernel=(1, 3)) and not rule(stride=(2, 1)) and not rule(pad=(0, 1))
        x = mc.array(np.zeros((1, 2, k, 1), dtype=np.float32))
        f = conv_module.Conv2D()
        f(x, mc.array(np.zeros((3, 2, 1, 1), dtype=np.float32)))
        assert f.algorithm == "pointwise"
        # Winograd wins where both could apply (never: it takes 3x3 kernels only), fused im2col where neither does
        assert dispatch.conv2d(cpu, 40, 40, (1, 1), (1, 1), (0, 0), (2, 2)) == "fused im2col"
        assert dispatch.conv2d(cpu, 2, 2, (1, 1), (1, 1), (0, 0), (16, 64)) == "pointwise"  # not direct: a GEMM
        assert dispatch.conv2d(GPU, 2, 2, (1, 1), (1, 1), (0, 0), (16, 64)) == "im2col"
    with conv_settings(USE_POINTWISE=False):  # MINICNN_POINTWISE=0
        assert not rule()
