"""The CPU window kernels: the textbook ones (backend/cpu.py) against slow, obvious NumPy references, the fast ones
(fast/cpu_*.py) against the textbook ones, plus MXNet's pooling rules as spec tests.

Layouts (minicnn/backend/cpu.py): cols (C*KH*KW, N*OH*OW) with row (c*KH + i)*KW + j and column (n*OH + y)*OW + x;
max-pool index = h*W + w of the window's first maximum inside the (unpadded) input plane.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import distinct_values, fast_mode, float_dtypes, window_cases
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import autograd, ops
from minicnn.backend import cpu
from minicnn.backend.shapes import out_size
from minicnn.fast import cpu_epilogue, cpu_im2col, cpu_pool, cpu_sigmoid


# ---- references: loops over output positions, nothing clever --------------------------------------------
def ref_out_hw(h, w, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def ref_im2col(x, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = ref_out_hw(h, w, kernel, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.zeros((n, c * kh * kw, oh * ow), dtype=x.dtype)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for y in range(oh):
                    for xo in range(ow):
                        cols[:, (ci * kh + i) * kw + j, y * ow + xo] = xp[:, ci, y * sh + i, xo * sw + j]
    return cols.transpose(1, 0, 2).reshape(c * kh * kw, n * oh * ow)  # one column per (sample, output pixel)


def ref_col2im(cols, x_shape, kernel, stride, pad):
    """Scatter-add every column entry back onto the padded image, then cut the padding off."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    oh, ow = ref_out_hw(h, w, kernel, stride, pad)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    cols = cols.reshape(c * kh * kw, n, oh * ow).transpose(1, 0, 2)  # (N, C*KH*KW, OH*OW)
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for y in range(oh):
                    for xo in range(ow):
                        xp[:, ci, y * sh + i, xo * sw + j] += cols[:, (ci * kh + i) * kw + j, y * ow + xo]
    return xp[:, :, ph : ph + h, pw : pw + w]


def ref_max_pool(x, kernel, stride, pad):
    """Padding is -inf; np.argmax over the row-major window returns the FIRST maximum."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = ref_out_hw(h, w, kernel, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for a in range(n):
        for b in range(c):
            for r in range(oh):
                for s in range(ow):
                    window = xp[a, b, r * sh : r * sh + kh, s * sw : s * sw + kw]
                    k = int(np.argmax(window))
                    i, j = divmod(k, kw)
                    y[a, b, r, s] = window[i, j]
                    idx[a, b, r, s] = (r * sh + i - ph) * w + (s * sw + j - pw)
    return y, idx


def ref_max_pool_backward(gy, idx, x_shape):
    gx = np.zeros(x_shape, dtype=gy.dtype)
    n, c, oh, ow = gy.shape
    w = x_shape[3]
    for a in range(n):
        for b in range(c):
            for r in range(oh):
                for s in range(ow):
                    hh, ww = divmod(int(idx[a, b, r, s]), w)
                    gx[a, b, hh, ww] += gy[a, b, r, s]
    return gx


def ref_avg_pool(x, kernel, stride, pad):
    """Zero padding, divided by the full window area (count_include_pad)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x.shape
    oh, ow = ref_out_hw(h, w, kernel, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, c, oh, ow), dtype=np.float64)
    for r in range(oh):
        for s in range(ow):
            y[:, :, r, s] = xp[:, :, r * sh : r * sh + kh, s * sw : s * sw + kw].sum(axis=(2, 3)) / (kh * kw)
    return y


def ref_avg_pool_backward(gy, x_shape, kernel, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    n, c, h, w = x_shape
    gxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=np.float64)
    for r in range(gy.shape[2]):
        for s in range(gy.shape[3]):
            gxp[:, :, r * sh : r * sh + kh, s * sw : s * sw + kw] += gy[:, :, r, s, None, None] / (kh * kw)
    return gxp[:, :, ph : ph + h, pw : pw + w]


def tolerance(dtype) -> dict:
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def rand(shape, dtype, seed) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


SEEDS = st.integers(0, 2**32 - 1)


def window(shape, kernel, stride, pad) -> dict:
    return {"shape": shape, "kernel": kernel, "stride": stride, "pad": pad}


# Edge cases every run checks, whatever hypothesis draws (all valid for pooling too: pad < kernel).
EDGE_CASES = [
    window((1, 1, 3, 3), (3, 5), (1, 1), (0, 1)),  # kernel == padded input: a single output pixel
    window((2, 1, 7, 6), (2, 2), (3, 4), (0, 0)),  # stride > kernel: some pixels are in no window
    window((1, 1, 5, 8), (2, 3), (2, 1), (1, 2)),  # batch 1, one channel, non-square everything
    window((3, 2, 1, 1), (1, 1), (1, 1), (0, 0)),  # 1x1 input and kernel
]


def with_edge_cases(test, **extra):
    """Add each edge case as an explicit hypothesis example, in both float dtypes."""
    for case in EDGE_CASES:
        for dtype in (np.float32, np.float64):
            test = example(case=case, dtype=dtype, seed=0, **extra)(test)
    return test


# ---- im2col / col2im -----------------------------------------------------------------------------------
@settings(max_examples=150)
@given(case=window_cases(), dtype=float_dtypes, seed=SEEDS)
@with_edge_cases
def test_im2col_matches_the_reference(case, dtype, seed):
    x = rand(case["shape"], dtype, seed)
    cols = cpu.im2col(x, case["kernel"], case["stride"], case["pad"])
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, ref_im2col(x, case["kernel"], case["stride"], case["pad"]))


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "pad"),
    [
        ((2, 1, 31, 29), (11, 11), (4, 4), (0, 0)),  # AlexNet's first layer, smaller
        ((2, 2, 30, 27), (11, 11), (4, 4), (2, 5)),  # the same with padding
        ((3, 1, 20, 19), (7, 7), (2, 2), (3, 3)),  # GoogLeNet's first layer, smaller
        ((1, 2, 9, 13), (2, 5), (1, 3), (1, 2)),  # a wide window on a short row
    ],
)
def test_im2col_builds_rows_of_a_stride_narrower_than_the_window_by_shifting_and_matches_the_reference(
    shape, kernel, stride, pad
):
    x = rand(shape, np.float32, 0)
    np.testing.assert_array_equal(cpu_im2col.im2col(x, kernel, stride, pad), ref_im2col(x, kernel, stride, pad))
    np.testing.assert_array_equal(cpu.im2col(x, kernel, stride, pad), ref_im2col(x, kernel, stride, pad))


@settings(max_examples=150)
@given(case=window_cases(), dtype=float_dtypes, seed=SEEDS)
@with_edge_cases
def test_col2im_matches_the_reference_scatter_add(case, dtype, seed):
    k, s, p = case["kernel"], case["stride"], case["pad"]
    n, c, h, w = case["shape"]
    oh, ow = ref_out_hw(h, w, k, s, p)
    cols = rand((c * k[0] * k[1], n * oh * ow), dtype, seed)
    dx = cpu.col2im(cols, case["shape"], k, s, p)
    assert dx.dtype == dtype and dx.shape == case["shape"]
    np.testing.assert_allclose(dx, ref_col2im(cols, case["shape"], k, s, p), **tolerance(dtype))


@settings(max_examples=120)
@given(case=window_cases(max_kernel=5), dtype=float_dtypes, seed=SEEDS, framed=st.booleans())
@functools.partial(with_edge_cases, framed=True)
@example(case=window((2, 3, 12, 12), (5, 5), (1, 1), (2, 2)), dtype=np.float32, seed=0, framed=True)  # GoogLeNet's
@example(case=window((1, 2, 3, 4), (3, 3), (1, 1), (3, 1)), dtype=np.float64, seed=0, framed=True)  # pad > kernel
@example(case=window((2, 1, 31, 29), (11, 11), (4, 4), (0, 0)), dtype=np.float32, seed=0, framed=False)  # AlexNet's
def test_fast_im2col_and_col2im_equal_the_textbook_kernels_bit_for_bit(case, dtype, seed, framed):
    """The fast kernels copy clipped row slices, shift rows for a stride narrower than the window, or (stride 1,
    `framed`) frame each plane with zeros first: the same copies, and the same additions in the same order as the
    textbook loops, so equal, not just close."""
    k, s, p = case["kernel"], case["stride"], case["pad"]
    n, c, h, w = case["shape"]
    oh, ow = ref_out_hw(h, w, k, s, p)
    x = rand(case["shape"], dtype, seed)
    cols = rand((c * k[0] * k[1], n * oh * ow), dtype, seed + 1)
    with fast_mode(framed=framed):
        fast = cpu_im2col.im2col(x, k, s, p), cpu_im2col.col2im(cols, case["shape"], k, s, p)
    np.testing.assert_array_equal(fast[0], cpu.im2col(x, k, s, p))
    np.testing.assert_array_equal(fast[1], cpu.col2im(cols, case["shape"], k, s, p))


@settings(max_examples=150)
@given(case=window_cases(), dtype=float_dtypes, seed=SEEDS)
@with_edge_cases
def test_col2im_is_the_adjoint_of_im2col(case, dtype, seed):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: exactly what conv backward needs from col2im.
    k, s, p = case["kernel"], case["stride"], case["pad"]
    x = rand(case["shape"], np.float64, seed)
    cols_shape = cpu.im2col(x, k, s, p).shape
    c = rand(cols_shape, np.float64, seed + 1)
    lhs = np.vdot(cpu.im2col(x.astype(dtype), k, s, p).astype(np.float64), c)
    rhs = np.vdot(x, cpu.col2im(c.astype(dtype), case["shape"], k, s, p).astype(np.float64))
    scale = np.abs(x).sum() * np.abs(c).max() * max(k[0] * k[1], 1)
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=scale * (1e-5 if dtype == np.float32 else 1e-13))


def test_im2col_layout_of_a_small_example():
    # 1x1x3x3 image 0..8, 2x2 kernel, stride 1: column (y, x) holds the window at (y, x) in row-major order.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    cols = cpu.im2col(x, (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(cols, [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])


# ---- the convolution's epilogues (fused numba kernels vs the textbook's separate steps) ------------------
EPILOGUE_SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 7))  # (N, O, P)


def plain_bias_act(y2, b, act, shape):
    """The textbook convolution's steps: the GEMM's output laid out as NCHW, + b, then the activation (the sigmoid
    as the fused path computes it, the vectorised kernel: its own accuracy is tested below)."""
    n, o, p = shape
    y = (y2 if y2.ndim == 3 else y2.reshape(o, n, p).transpose(1, 0, 2)).copy()
    if b is not None:
        y += b.reshape(1, o, 1)
    return cpu_sigmoid.sigmoid_(y) if act == "sigmoid" else ops.activation.apply_(act, y) if act else y


@settings(max_examples=60)
@given(shape=EPILOGUE_SHAPES, act=st.sampled_from([None, "relu", "sigmoid"]), bias=st.booleans(),
       layout=st.sampled_from(["gemm", "nchw", "nchw in place"]), dtype=float_dtypes, seed=SEEDS)  # fmt: skip
def test_fused_bias_activation_matches_the_plain_version(shape, act, bias, layout, dtype, seed):
    """y2 comes as (O, N*P) from im2col's GEMM or as (N, O, P) from the pointwise path's, which may be out itself."""
    n, o, p = shape
    y2 = rand((o, n * p) if layout == "gemm" else (n, o, p), dtype, seed) * 3
    b = rand((o,), dtype, seed + 1) if bias else None
    want = plain_bias_act(y2, b, act, (n, o, p))
    got = cpu_epilogue.bias_act(y2, b, act, out=y2 if layout == "nchw in place" else np.empty((n, o, p), dtype))
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60)
@given(shape=EPILOGUE_SHAPES, act=st.sampled_from([None, "relu", "sigmoid"]), layout=st.sampled_from(["gemm", "nchw"]),
       dtype=float_dtypes, seed=SEEDS)  # fmt: skip
def test_fused_activation_gradient_matches_the_plain_version_and_sums_the_bias_gradient(
    shape, act, layout, dtype, seed
):  # noqa: E501
    n, o, p = shape
    y = rand((n, o, p), dtype, seed)
    if act == "sigmoid":
        y = 1 / (1 + np.exp(-y))
    elif act == "relu":
        y = np.maximum(y, 0)
    gy = rand((n, o, p), dtype, seed + 1)
    out_shape = (o, n * p) if layout == "gemm" else (n, o, p)
    gb = np.ones(o, dtype)  # the bias gradient is added onto what is there
    got = cpu_epilogue.act_grad(y, gy, act, out=np.empty(out_shape, dtype), gb=gb)
    g = gy if act is None else ops.activation.grad(act, y, gy)  # the textbook's gradient before the activation
    assert got.shape == out_shape
    np.testing.assert_array_equal(got, g if layout == "nchw" else g.transpose(1, 0, 2).reshape(o, n * p))
    np.testing.assert_allclose(gb, 1 + g.sum(axis=(0, 2)), **tolerance(dtype))


def test_bias_activation_refuses_a_gemm_output_that_does_not_fit_its_out():
    with pytest.raises(ValueError, match=r"bias_act: y2 \(2, 3, 5\) does not fit out \(2, 3, 4\)"):
        cpu_epilogue.bias_act(np.zeros((2, 3, 5), np.float32), None, "relu", out=np.empty((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"bias_act: y2 \(3, 9\) does not fit out \(2, 3, 4\)"):
        cpu_epilogue.bias_act(np.zeros((3, 9), np.float32), None, None, out=np.empty((2, 3, 4), np.float32))


def test_relu_epilogue_keeps_a_nan_so_divergence_shows():
    y2 = np.array([[np.nan, -1.0, 2.0]], np.float32)
    got = cpu_epilogue.bias_act(y2, None, "relu", out=np.empty((3, 1, 1), np.float32))
    assert np.isnan(got[0, 0, 0]) and got[1, 0, 0] == 0 and got[2, 0, 0] == 2


@pytest.mark.parametrize("forward", [cpu.max_pool_forward, cpu_pool.max_pool_forward], ids=["textbook", "fast"])
def test_max_pool_kernel_refuses_a_window_that_could_lie_wholly_in_the_padding(forward):
    # MaxPool2D checks this too; the backend checks it again because its index would point outside the plane.
    with pytest.raises(ValueError, match=r"padding \(1, 1\) must be smaller than the window \(1, 1\)"):
        forward(np.zeros((1, 1, 2, 2), np.float32), (1, 1), (1, 1), (1, 1))


@pytest.mark.parametrize("kernels", [cpu, cpu_im2col], ids=["textbook", "fast"])
def test_window_kernels_refuse_an_out_buffer_they_would_fill_wrongly(kernels):
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"im2col: out must be a C-contiguous float32 array of shape \(4, 18\)"):
        kernels.im2col(x, (2, 2), (1, 1), (0, 0), out=np.empty((18, 4), np.float32).T)
    with pytest.raises(ValueError, match="col2im: out must be"):
        kernels.col2im(np.zeros((4, 18), np.float32), x.shape, (2, 2), (1, 1), (0, 0), out=np.empty(x.shape))


# ---- the sigmoid (cpu_sigmoid's vectorised exp vs the formula with a correctly rounded exp) -----------------
def ulps_apart(a, b):
    """Units in the last place between float32 arrays of values in [0, 1] (positive: their bits are ordered)."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def exact_sigmoid32(x):
    """The formula in float32 (as MXNet computes it) with e^-x correctly rounded: inf where it overflows float32."""
    with np.errstate(over="ignore"):
        e = np.exp(-x.astype(np.float64)).astype(np.float32)
        return np.float32(1) / (np.float32(1) + e)


def test_sigmoid_kernel_is_within_four_units_in_the_last_place_of_the_formula_with_an_exact_exp():
    # four: NumPy's own float32 formula (the textbook's) is that far from it too, where 1 + e^-x rounds twice
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-100, 100, 400_001), rng.standard_normal(100_000) * 8]).astype(np.float32)
    got = cpu_sigmoid.sigmoid_(x.copy())
    assert got.dtype == np.float32
    ulps = ulps_apart(got, exact_sigmoid32(x))
    assert ulps.max() <= 4 and np.mean(ulps == 0) > 0.9


def test_sigmoid_kernel_keeps_the_formulas_edges():
    x = np.array([np.nan, np.inf, -np.inf, 89.0, -88.8, -88.7, -87.0, -86.0, 20.0, 0.0, -0.0, 1e-30], np.float32)
    got = cpu_sigmoid.sigmoid_(x.copy())
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:3], [1.0, 0.0])
    assert got[3] == 1.0 and got[4] == 0.0  # 1 / (1 + inf) = 0: e^88.8 overflows float32, as in the formula
    np.testing.assert_allclose(got[5:8], exact_sigmoid32(x[5:8]), rtol=1e-5)  # e^t near float32's largest
    np.testing.assert_array_equal(got[8:], [1.0, 0.5, 0.5, 0.5])


def test_sigmoid_kernel_gives_the_same_values_serially_and_in_parallel_chunks():
    x = np.random.default_rng(1).standard_normal(5 * (1 << 14) + 3).astype(np.float32) * 10
    parts = np.array_split(x, 83)  # each below the parallel kernel's size: one thread
    whole, pieces = cpu_sigmoid.sigmoid_(x.copy()), np.concatenate([cpu_sigmoid.sigmoid_(p.copy()) for p in parts])
    np.testing.assert_array_equal(whole, pieces)


@pytest.mark.parametrize("case", ["float64", "strided"])
def test_sigmoid_uses_the_formula_for_what_its_kernel_does_not_take(case):
    x = np.random.default_rng(2).standard_normal((6, 8)) * 5
    x = x if case == "float64" else x.astype(np.float32)[:, ::2]
    want = 1 / (1 + np.exp(-x.astype(np.float64)))
    got = cpu_sigmoid.sigmoid_(x)
    np.testing.assert_allclose(got, want, rtol=1e-15 if case == "float64" else 3e-7)


# ---- max pooling ---------------------------------------------------------------------------------------
@settings(max_examples=150)
@given(case=window_cases(pool=True), dtype=float_dtypes, seed=SEEDS, small_ints=st.booleans())
@functools.partial(with_edge_cases, small_ints=True)
def test_max_pool_forward_index_and_backward_match_the_reference(case, dtype, seed, small_ints):
    # small_ints draws values from {-2..2}: many ties, so the first-maximum rule is exercised too.
    gen = np.random.default_rng(seed)
    x = (gen.integers(-2, 3, case["shape"]) if small_ints else gen.standard_normal(case["shape"])).astype(dtype)
    k, s, p = case["kernel"], case["stride"], case["pad"]
    y, idx = cpu.max_pool_forward(x, k, s, p)
    ry, ridx = ref_max_pool(x, k, s, p)
    assert y.dtype == dtype and idx.dtype == np.int32
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    gy = gen.standard_normal(y.shape).astype(dtype)
    gx = cpu.max_pool_backward(gy, idx, x.shape)
    assert gx.dtype == dtype
    np.testing.assert_allclose(gx, ref_max_pool_backward(gy, ridx, x.shape), **tolerance(dtype))


MAX_POOLS = {"textbook": cpu.max_pool_forward, "fast": cpu_pool.max_pool_forward}


@settings(max_examples=150)
@given(case=window_cases(pool=True), dtype=float_dtypes, seed=SEEDS, tiles=st.booleans())
@functools.partial(with_edge_cases, tiles=True)
@example(case=window((2, 3, 9, 8), (2, 2), (2, 2), (0, 0)), dtype=np.float32, seed=0, tiles=True)
@example(case=window((2, 3, 9, 8), (2, 2), (2, 2), (0, 0)), dtype=np.float32, seed=0, tiles=False)
def test_fast_max_pool_equals_the_textbook_loop_with_ties_nans_and_infinities(case, dtype, seed, tiles):
    """Both fast kernels ('runs', and '2x2 tiles' for 2x2 stride-2 windows without padding) against the window loop:
    the same outputs and the same first-maximum indices, NaN and -inf pixels included, whatever their position."""
    gen = np.random.default_rng(seed)
    x = gen.integers(-2, 3, case["shape"]).astype(dtype)
    specials = gen.random(case["shape"])
    x[specials < 0.05] = np.nan
    x[(specials >= 0.05) & (specials < 0.1)] = -np.inf
    x[(specials >= 0.1) & (specials < 0.12)] = np.inf
    with fast_mode(pool_2x2=tiles):
        got = cpu_pool.max_pool_forward(x, case["kernel"], case["stride"], case["pad"])
    want = cpu.max_pool_forward(x, case["kernel"], case["stride"], case["pad"])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "pad"),
    [
        ((3, 50, 4, 5), (3, 3), (1, 1), (1, 1)),  # 150 planes of 6x7 padded: groups of 48, the last one short
        ((2, 60, 3, 3), (2, 2), (1, 1), (1, 1)),
        ((1, 9, 40, 60), (3, 2), (1, 2), (1, 0)),  # a plane larger than a group: one plane per run
        ((2, 70, 6, 6), (3, 3), (2, 2), (1, 1)),  # strided: the runs also cover rows no output takes
        ((1, 3, 50, 50), (3, 3), (2, 2), (0, 0)),  # a large plane with a vertical stride: one run per output row
    ],
)
def test_max_pool_matches_the_reference_across_stacked_plane_groups(shape, kernel, stride, pad):
    # The kernel stacks small planes into one buffer and scans them as one run: windows that straddle two planes,
    # or start on rows a stride skips, must be dropped, and the last, shorter group must be scanned to its end.
    # Values from {-2..2}: many ties.
    x = np.random.default_rng(4).integers(-2, 3, shape).astype(np.float32)
    ry, ridx = ref_max_pool(x, kernel, stride, pad)
    for forward in MAX_POOLS.values():
        y, idx = forward(x, kernel, stride, pad)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(idx, ridx)


@pytest.mark.parametrize("forward", MAX_POOLS.values(), ids=MAX_POOLS.keys())
def test_max_pool_with_padding_never_picks_the_padding(forward):
    # All inputs negative: a zero-padded implementation would return 0 at the border windows.
    x = -1.0 - np.arange(25.0).reshape(1, 1, 5, 5)
    y, idx = forward(x, (3, 3), (1, 1), (1, 1))
    assert (y < 0).all()
    np.testing.assert_array_equal(y, ref_max_pool(x, (3, 3), (1, 1), (1, 1))[0])
    assert y[0, 0, 0, 0] == -1.0  # top-left window holds x[0,0] = -1, x[0,1], x[1,0], x[1,1] and padding
    assert ((idx >= 0) & (idx < 25)).all()


def test_max_pool_backward_sends_a_tied_windows_gradient_to_its_first_maximum():
    x = mc.ones((1, 1, 4, 4), dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = ops.max_pool2d(x, 2, 2)
    y.backward()
    expected = np.zeros((4, 4))
    expected[[0, 0, 2, 2], [0, 2, 0, 2]] = 1.0
    np.testing.assert_array_equal(x.grad.asnumpy()[0, 0], expected)


@pytest.mark.parametrize(("stride", "out", "covering_windows"), [(1, 3, 9), (2, 2, 4)])
def test_overlapping_max_pool_windows_accumulate_their_gradients(stride, out, covering_windows):
    # 5x5 input whose maximum sits in the centre: every 3x3 window covers the centre (9 windows at stride 1,
    # 4 at stride 2), so the centre collects all their gradients.
    x_np = distinct_values((1, 1, 5, 5), np.random.default_rng(0))
    x_np[0, 0, 2, 2] = 10.0
    x = mc.array(x_np, dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = ops.max_pool2d(x, 3, stride)
    assert y.shape == (1, 1, out, out)
    y.backward()
    g = x.grad.asnumpy()[0, 0]
    assert g[2, 2] == covering_windows
    assert g.sum() == covering_windows  # nothing went anywhere else


@pytest.mark.parametrize("stride", [1, 2])
def test_overlapping_max_pool_backward_matches_the_reference_with_padding(stride):
    x = distinct_values((2, 3, 7, 6), np.random.default_rng(1))
    y, idx = cpu.max_pool_forward(x, (3, 3), (stride, stride), (1, 1))
    gy = np.random.default_rng(2).standard_normal(y.shape)
    ry, ridx = ref_max_pool(x, (3, 3), (stride, stride), (1, 1))
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(cpu.max_pool_backward(gy, idx, x.shape), ref_max_pool_backward(gy, ridx, x.shape))


# ---- average pooling -----------------------------------------------------------------------------------
@settings(max_examples=150)
@given(case=window_cases(pool=True), dtype=float_dtypes, seed=SEEDS)
@with_edge_cases
def test_avg_pool_forward_and_backward_match_the_reference(case, dtype, seed):
    k, s, p = case["kernel"], case["stride"], case["pad"]
    x = rand(case["shape"], dtype, seed)
    y = cpu.avg_pool_forward(x, k, s, p)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ref_avg_pool(x, k, s, p), **tolerance(dtype))
    gy = rand(y.shape, dtype, seed + 1)
    gx = cpu.avg_pool_backward(gy, x.shape, k, s, p)
    assert gx.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, ref_avg_pool_backward(gy, x.shape, k, s, p), **tolerance(dtype))


def test_avg_pool_counts_padding_in_the_denominator():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    y = cpu.avg_pool_forward(x, (3, 3), (2, 2), (1, 1))
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 0, 0] == pytest.approx((0 + 1 + 5 + 6) / 9)  # 1.3333, not the 3.0 of count_include_pad=False
    assert y[0, 0, 1, 1] == pytest.approx(x[0, 0, 1:4, 1:4].mean())  # an interior window: the plain mean
    np.testing.assert_allclose(y, ref_avg_pool(x, (3, 3), (2, 2), (1, 1)))


# ---- output size ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad", "expected"),
    [(5, 2, 2, 0, 2), (6, 3, 2, 0, 2), (7, 3, 2, 1, 4), (28, 5, 1, 0, 24), (224, 11, 4, 0, 54), (4, 4, 1, 0, 1)],
)
def test_output_size_rounds_down(size, kernel, stride, pad, expected):
    assert out_size(size, kernel, stride, pad) == expected
    x = np.zeros((1, 1, size, size))
    if pad < kernel:
        assert cpu.max_pool_forward(x, (kernel,) * 2, (stride,) * 2, (pad,) * 2)[0].shape[2:] == (expected,) * 2
        assert cpu.avg_pool_forward(x, (kernel,) * 2, (stride,) * 2, (pad,) * 2).shape[2:] == (expected,) * 2
    assert cpu.im2col(x, (kernel,) * 2, (stride,) * 2, (pad,) * 2).shape[1] == expected * expected  # N = 1


def test_kernels_accept_non_contiguous_inputs():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5)).transpose(1, 0, 2, 3)  # a strided view
    np.testing.assert_array_equal(cpu.im2col(x, (2, 3), (1, 2), (1, 0)), ref_im2col(x, (2, 3), (1, 2), (1, 0)))
    np.testing.assert_array_equal(
        cpu.max_pool_forward(x, (2, 2), (2, 2), (0, 0))[0], ref_max_pool(x, (2, 2), (2, 2), (0, 0))[0]
    )


@pytest.mark.parametrize("forward", MAX_POOLS.values(), ids=MAX_POOLS.keys())
def test_max_pool_padding_never_wins_even_against_minus_infinity(forward):
    """A window whose real pixels are all -inf still reports its first real pixel, never a padding cell."""
    x = np.full((1, 1, 3, 3), -np.inf, dtype=np.float32)
    y, idx = forward(x, (3, 3), (1, 1), (1, 1))
    assert np.all(y == -np.inf)
    # first pixel inside the image of each clipped window: (max(y-1, 0), max(x-1, 0))
    expected = [[max(r - 1, 0) * 3 + max(c - 1, 0) for c in range(3)] for r in range(3)]
    np.testing.assert_array_equal(idx[0, 0], expected)


@pytest.mark.parametrize("forward", MAX_POOLS.values(), ids=MAX_POOLS.keys())
def test_max_pool_nan_wins_only_as_the_windows_first_pixel(forward):
    """Strict '>' comparisons: a NaN that starts a window stays its maximum (divergence shows); a NaN further in
    loses to everything, as every comparison with it is false."""
    x = np.array([[[[np.nan, 5, 1], [1, 2, 3], [0, 0, 9]]]], dtype=np.float32)
    y, idx = forward(x, (3, 3), (1, 1), (1, 1))
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 0  # the window starts at the NaN
    assert y[0, 0, 1, 2] == 9 and idx[0, 0, 1, 2] == 8  # starts at 5 (0, 1): the NaN is not in it
    assert y[0, 0, 2, 2] == 9 and idx[0, 0, 2, 2] == 8
    y, idx = forward(np.array([[[[1, np.nan], [0, 2]]]], dtype=np.float32), (2, 2), (1, 1), (0, 0))
    assert y[0, 0, 0, 0] == 2 and idx[0, 0, 0, 0] == 3  # the NaN inside the window is passed over
