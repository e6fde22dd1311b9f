"""2-D convolution as im2col + one GEMM, and three faster paths for particular shapes (Winograd, direct, pointwise).

x: (N, C, H, W), w: (O, C, KH, KW), b: (O,)  ->  y: (N, O, OH, OW), OH = floor((H + 2*PH - KH) / SH) + 1.

    cols = im2col(x)                    (C*KH*KW, N*OH*OW): column (n, p) is the input patch under output pixel p
    y2   = W2 @ cols + b                (O, N*OH*OW), W2 = w.reshape(O, C*KH*KW); y is y2 with axes (n, o, p)

Backward, with gy2 = gy laid out as (O, N*OH*OW):
    gW2 = gy2 @ cols^T                  (the sum over the batch and the pixels happens inside the GEMM)
    gb  = sum of gy over n and p
    gx  = col2im(W2^T @ gy2)            (col2im sums the overlapping windows back onto the pixels)

An activation ('relu' or 'sigmoid') can be fused: backward turns gy into the pre-activation gradient from y
alone, so the layer keeps one output array instead of two. The backend does the bias, the activation and the
layout change (O, N*OH*OW) -> (N, O, OH*OW) in one pass (`bias_act`), and in backward the activation's
gradient, the bias gradient and the layout change back in one pass (`act_grad`); `backend/epilogue.py` holds
the same steps as plain array operations.

The cols buffer is built for a chunk of the batch at a time so its size stays under IM2COL_CHUNK_BYTES, and
rebuilt in backward rather than kept (it is the largest array of a CNN) - unless the whole batch fits in one
chunk, when keeping it costs at most IM2COL_CHUNK_BYTES and saves backward an im2col (small layers' case). The
chunks of one call share their work buffers (cols, the GEMM outputs): inside a network a fresh buffer per chunk can
be new memory that pays its page faults again.

3x3 stride-1 layers with at least WINOGRAD_MIN_CHANNELS input channels take another path where the
backend has it (the CPU's): Winograd's minimal filtering F(2x2, 3x3), `ops/winograd.py`, which replaces the GEMM
over 9*C rows of cols by 16 GEMMs over C rows of transformed tiles - 2.25x fewer multiply-adds - with the same
chunking; its forward epilogue (bias, activation, NCHW) is fused into the output transform, its backward shares
`act_grad`.

1x1 stride-1 unpadded layers over planes of at least POINTWISE_MIN_PIXELS pixels take the pointwise path: there
cols would be x itself with its axes swapped, so instead of copying it the GEMM runs per sample on NCHW as it is,
    y[n] = W2 @ x[n]                    (O, C) @ (C, H*W): the output lands in NCHW, with no layout change
    gx[n] = W2^T @ gy[n],   gW2 = sum over n of gy[n] @ x[n]^T
(numpy.matmul over the batch axis: one BLAS call per sample), and the epilogues work in place on NCHW. On
smaller planes the per-sample GEMMs get too thin and im2col's one large GEMM wins.

Layers with small windows (C*KH*KW <= DIRECT_MAX_K: a first layer reading grey images), wide output rows and no
horizontal stride that the small-plane path below does not take first (it takes every stride-1 one of the five
networks: the direct path is left with vertical strides) take the direct path where the backend has it (the CPU's,
`backend/cpu_direct.py`): there cols would be K times the input for a GEMM with next to nothing to multiply, so
numba kernels compute y, gW and gx straight from x and NCHW gradients, the bias and activation fused into forward;
backward shares `act_grad` (in NCHW layout, a batch chunk at a time).

Stride-1 layers with few channels on small planes (LeNet's) or thin layers on large planes (VGG's first ones) take
the small-plane path where the backend has it (the CPU's, `backend/cpu_plane.py`; the rule is at use_plane):
numba kernels convolve one sample at a time in cache; backward is one kernel (the activation's gradient, gb, gW
and gx sample by sample), so the gradient g is never laid out for the whole batch.

Each layer takes the same path every time (the rule reads only its shapes).
"""

from __future__ import annotations

import os

from .. import autograd, backend
from ..autograd import Function
from ..backend.shapes import check_window_args, window_output_shape, winograd_tiles
from ..errors import ShapeError
from . import activation, winograd

IM2COL_CHUNK_BYTES = 32 << 20

# Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with at least this many input channels, where the backend has
# it (the CPU's). Below 16 input channels the 16 GEMMs (K = C) are too thin to gain anything; from 16 to 64 the two
# paths measured about even (benchmarks/conv_parts.py, vgg11-div4.conv2), and there Winograd's tiles take 4x the
# input's memory against im2col's 9x. Few output channels do not hurt: there im2col's cols (9*C rows) are nearly all
# the work, and Winograd's tiles are less than half of it (NiN's last layer, 384 -> 10 at 5x5, 2.5x faster:
# conv_parts.py, nin.conv-last). MINICNN_WINOGRAD=0 in the environment turns it off (im2col everywhere).
USE_WINOGRAD = os.environ.get("MINICNN_WINOGRAD", "1") != "0"
WINOGRAD_MIN_CHANNELS = 16
# On output planes narrower than this, the 2x2 tiles waste too much: a 3x3 plane takes four tiles, 16 outputs for 9,
# and the path lost to im2col (GoogLeNet's 3x3 layers in stage 5: 38 against 29 ms, benchmarks/conv_parts.py,
# googlenet.b5-3x3); on 5x5 (NiN's last layer) and larger it won or drew.
WINOGRAD_MIN_SIDE = 4


def use_winograd(be, c: int, kernel, stride, out_hw) -> bool:
    """Whether Conv2D takes the Winograd path: the rule depends on the shapes only, so a layer always takes the
    same path and its results do not change from run to run."""
    return (
        USE_WINOGRAD
        and getattr(be, "winograd", None) is not None
        and tuple(kernel) == (3, 3)
        and tuple(stride) == (1, 1)
        and c >= WINOGRAD_MIN_CHANNELS
        and min(out_hw) >= WINOGRAD_MIN_SIDE
    )


# The pointwise path for 1x1 convolutions (any backend: it needs only matmul). Forward + backward per layer against
# im2col (benchmarks/conv_parts.py, six runs on a noisy machine): NiN's 54x54 layers (96 channels) median 1.4x
# faster (0.8-1.6x), its 26x26 ones (256 channels) 1.1x (0.8-1.4x), GoogLeNet's 24x24 one (64) even to 1.4x; on
# 12x12 planes it lost (NiN's 384-channel layer: 0.7-0.8x), the per-sample GEMMs being too thin.
# MINICNN_POINTWISE=0 in the environment turns it off.
USE_POINTWISE = os.environ.get("MINICNN_POINTWISE", "1") != "0"
POINTWISE_MIN_PIXELS = 256


# The direct convolution (backend/cpu_direct.py, where the backend has it) for layers with a horizontal stride of
# 1, windows of at most DIRECT_MAX_K values (C*KH*KW) and output rows of at least DIRECT_MIN_WIDTH pixels: there
# cols is K times the input and the GEMM has next to nothing to do, so im2col's passes over memory are the layer's
# whole cost. Forward + backward against im2col (benchmarks/conv_parts.py, six runs): the ÷4 VGG's first layer
# median 1.4x faster (1.1-1.8x), VGG-11's 1.2x (1.0-1.6x). Its loops run along output rows, so short rows cost
# more than they save (LeNet's first layer, 24 wide: 0.8x); strided rows would not vectorise, so the kernels take
# none (GoogLeNet's 7x7 stride-2 first layer ran 8x slower with them).
# MINICNN_DIRECT=0 in the environment turns it off.
USE_DIRECT = os.environ.get("MINICNN_DIRECT", "1") != "0"
DIRECT_MAX_K = 32
DIRECT_MIN_WIDTH = 64


def use_direct(be, c: int, kernel, stride, out_hw) -> bool:
    """Whether Conv2D takes the direct path (shapes only, like use_winograd)."""
    return (
        USE_DIRECT
        and getattr(be, "direct", None) is not None
        and c * kernel[0] * kernel[1] <= DIRECT_MAX_K
        and stride[1] == 1
        and out_hw[1] >= DIRECT_MIN_WIDTH
    )


# The direct convolution of small planes (backend/cpu_plane.py, where the backend has it), for stride-1 layers of
# two kinds, where BLAS has little to work with and the kernels, which convolve one sample at a time in its padded
# row pitch, run at a steady rate whatever the channel counts:
# - few channels on small planes (at most PLANE_SMALL_CHANNELS each way, padded planes of at most
#   PLANE_SMALL_PIXELS: LeNet's two layers): im2col copies hundreds of thousands of 8- to 24-pixel runs per step
#   and the GEMMs have 6 or 16 rows;
# - thin layers on large planes (at most PLANE_THIN_CHANNELS each way, outputs of at least PLANE_THIN_PIXELS:
#   VGG's first layers): im2col's or Winograd's GEMMs get K = C*9 or C rows and are bound by memory.
# Forward + backward against what Conv2D took before (benchmarks/conv_parts.py, --paths auto,winograd,direct): the
# ÷4 VGG's 16 -> 32 layer on 112x112 2.8x faster than on Winograd, its 32 -> 64 one on 56x56 1.35x, its 64 -> 64
# one even; VGG's first layers (1 -> 16 and 1 -> 64 on 224x224) 1.9x and 2.2x faster than on the direct kernels;
# LeNet's layers 1.2-3x faster than on im2col. With more channels on smaller planes BLAS wins again (GoogLeNet's
# 32 -> 128 5x5 layer on 6x6 2.2x, its 48 -> 128 one on 3x3 5.7x slower on these kernels). MINICNN_PLANE=0 in the
# environment turns the path off.
USE_PLANE = os.environ.get("MINICNN_PLANE", "1") != "0"
PLANE_SMALL_CHANNELS, PLANE_SMALL_PIXELS = 16, 1024
PLANE_THIN_CHANNELS, PLANE_THIN_PIXELS = 64, 56 * 56


def use_plane(be, c: int, o: int, kernel, stride, out_hw) -> bool:
    """Whether Conv2D takes the small-plane path (shapes only, like use_winograd)."""
    padded = (out_hw[0] + kernel[0] - 1) * (out_hw[1] + kernel[1] - 1)  # stride 1: the padded input plane
    small = max(c, o) <= PLANE_SMALL_CHANNELS and padded <= PLANE_SMALL_PIXELS
    thin = max(c, o) <= PLANE_THIN_CHANNELS and out_hw[0] * out_hw[1] >= PLANE_THIN_PIXELS
    return USE_PLANE and getattr(be, "plane_conv", None) is not None and tuple(stride) == (1, 1) and (small or thin)


def use_pointwise(kernel, stride, pad, out_hw) -> bool:
    """Whether Conv2D takes the pointwise path (shapes only, like use_winograd)."""
    return (
        USE_POINTWISE
        and tuple(kernel) == (1, 1)
        and tuple(stride) == (1, 1)
        and tuple(pad) == (0, 0)
        and out_hw[0] * out_hw[1] >= POINTWISE_MIN_PIXELS
    )


def conv_path(be, c: int, kernel, stride, pad, out_hw, o: int) -> str:
    """'pointwise', 'plane', 'winograd', 'direct' or 'im2col', the first whose rule these shapes (C input, O output
    channels) meet: the algorithm Conv2D runs for them on this backend."""
    if use_pointwise(kernel, stride, pad, out_hw):  # first: a 1x1 layer on a large plane is a GEMM, BLAS's job
        return "pointwise"
    if use_plane(be, c, o, kernel, stride, out_hw):  # before Winograd and direct: it beat both on thin layers
        return "plane"
    if use_winograd(be, c, kernel, stride, out_hw):
        return "winograd"
    if use_direct(be, c, kernel, stride, out_hw):
        return "direct"
    return "im2col"


def _tiles(out_hw) -> int:
    th, tw = winograd_tiles(*out_hw)
    return th * tw


def _sample_bytes(k: int, o: int, p: int, itemsize: int) -> int:
    """Bytes one sample adds to the largest work buffer: cols (K rows) or a GEMM output (O rows), P columns each."""
    return max(k, o) * p * itemsize


def _chunks(n: int, bytes_per_sample: int):
    step = max(1, min(n, IM2COL_CHUNK_BYTES // max(bytes_per_sample, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


class _Scratch:
    """Work buffers shared by the batch chunks of one call. In a network, where arrays of other sizes come and go
    between two chunks, a fresh 30 MiB array per chunk can be new memory that pays its page faults again (in
    isolation, benchmarks/kernels.py, the allocator hands the same memory back and the two cost the same). The
    buffers live as long as the call (except a single chunk's cols or Winograd tiles V, which forward keeps for
    backward);
    the first chunk is the largest."""

    def __init__(self, xp, dtype):
        self.xp, self.dtype, self.flat = xp, dtype, {}

    def get(self, name: str, shape: tuple):
        size = 1
        for d in shape:
            size *= d
        buf = self.flat.get(name)
        if buf is None or buf.size < size:
            buf = self.flat[name] = self.xp.empty(size, dtype=self.dtype)
        return buf[:size].reshape(shape)


# With this few output channels a GEMM runs faster transposed: OpenBLAS is slow when the result has only a
# handful of rows (LeNet's first convolution, 6 channels: 10-40 % faster transposed, `benchmarks/kernels.py`).
FEW_ROWS = 8


def _gemm(xp, a, b, scratch: _Scratch, name: str):
    """a @ b in a work buffer; when a has at most FEW_ROWS rows, computed as (b^T @ a^T) and returned as its
    transposed view. The rule depends on the shapes only, so a layer always takes the same path and its results
    do not change from run to run."""
    if a.shape[0] <= FEW_ROWS:
        return xp.matmul(b.T, a.T, out=scratch.get(name, (b.shape[1], a.shape[0]))).T
    return xp.matmul(a, b, out=scratch.get(name, (a.shape[0], b.shape[1])))


class Conv2D(Function):
    def __init__(self, stride=(1, 1), pad=(0, 0), name: str = "conv2d", act: str | None = None):
        self.stride, self.pad, self.name = tuple(stride), tuple(pad), name
        self.act = activation.check_activation(act)

    def _window(self):
        return self.kernel, self.stride, self.pad

    def forward(self, x, w, b=None):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {tuple(x.shape)} does not match weight {tuple(w.shape)}; "
                f"expected (N, {w.shape[1] if w.ndim == 4 else 'C'}, H, W)"
            )
        be = backend.of(x)
        n, o = x.shape[0], w.shape[0]
        self.kernel = (w.shape[2], w.shape[3])
        check_window_args(self.name, self.kernel, self.stride, self.pad)
        oh, ow = window_output_shape(self.name, x.shape, self.kernel, self.stride, self.pad)
        self.out_hw = (oh, ow)
        self.path = conv_path(be, x.shape[1], self.kernel, self.stride, self.pad, self.out_hw, o)
        y = be.xp.empty((n, o, oh * ow), dtype=x.dtype)
        kept = getattr(self, "_forward_" + self.path)(be, x, w, b, y)
        self.kept = kept if autograd.is_recording() else None
        self.y = y if self.act is not None else None
        self.x, self.w, self.has_bias = x, w, b is not None
        return y.reshape(n, o, oh, ow)

    def _forward_im2col(self, be, x, w, b, y):
        """y (N, O, P) = act(W2 @ im2col(x) + b), a batch chunk at a time; returns cols when there was one chunk."""
        xp, (n, o, p) = be.xp, y.shape
        w2 = w.reshape(o, -1)
        k = w2.shape[1]
        scratch = _Scratch(xp, x.dtype)
        chunks = list(_chunks(n, _sample_bytes(k, o, p, x.dtype.itemsize)))
        for s in chunks:
            m = s.stop - s.start
            cols = be.im2col(x[s], *self._window(), out=scratch.get("cols", (k, m * p)))
            y2 = _gemm(xp, w2, cols, scratch, "y2")  # (O, chunk*OH*OW)
            be.bias_act(y2, b, self.act, out=y[s])  # + b, activation, and the layout change to (chunk, O, P)
        return cols if len(chunks) == 1 else None

    def _forward_winograd(self, be, x, w, b, y):
        """y = act(A^T [U @ V] A + b) tile by tile (ops/winograd.py), a batch chunk at a time; returns V when there
        was one chunk."""
        xp, (n, o, _), c = be.xp, y.shape, x.shape[1]
        t = _tiles(self.out_hw)
        u = winograd.weight_transform(w)  # (16, O, C): small, the readable version is fast enough
        scratch = _Scratch(xp, x.dtype)
        chunks = list(_chunks(n, _sample_bytes(16 * c, 16 * o, t, x.dtype.itemsize)))
        for s in chunks:
            m = s.stop - s.start
            v = be.winograd.input_transform(x[s], self.pad, self.out_hw, out=scratch.get("v", (16, c, m * t)))
            mm = xp.matmul(u, v, out=scratch.get("m", (16, o, m * t)))  # 16 GEMMs (O, C) @ (C, chunk*TH*TW)
            be.winograd.output_bias_act(mm, b, self.act, out=y[s].reshape(m, o, *self.out_hw))
        return v if len(chunks) == 1 else None

    def _forward_pointwise(self, be, x, w, b, y):
        """y (N, O, P) = act(W2 @ x[n] + b) for every n: one batched matmul straight into y, the epilogue in place.
        Keeps nothing: backward needs only x, which it has anyway."""
        n, c, h, wd = x.shape
        be.xp.matmul(w.reshape(w.shape[0], c), x.reshape(n, c, h * wd), out=y)
        be.bias_act(y, b, self.act, out=y)

    def _forward_direct(self, be, x, w, b, y, kernels=None):
        """y = act(conv(x, w) + b) by the backend's direct kernel (or the small-plane one, `kernels`), straight
        into NCHW. Keeps nothing."""
        kernels = kernels or be.direct
        kernels.forward(x, w, b, self.act, self.stride, self.pad, out=y.reshape(*y.shape[:2], *self.out_hw))

    def _forward_plane(self, be, x, w, b, y):
        return self._forward_direct(be, x, w, b, y, be.plane_conv)

    def backward(self, gy):
        be = backend.of(self.x)
        n, o = gy.shape[0], gy.shape[1]
        gy = gy.reshape(n, o, self.out_hw[0] * self.out_hw[1])  # not -1: N may be 0
        gb = be.xp.zeros(o, dtype=self.x.dtype) if self.has_bias else None
        # C-contiguous whatever x's layout: the kernels write each chunk's gx[s] through flat indices
        gx = be.xp.empty(self.x.shape, dtype=self.x.dtype) if self.needs_input_grad(0) else None
        gw = getattr(self, "_backward_" + self.path)(be, gy, gb, gx)
        return (gx, gw) + ((gb,) if self.has_bias else ())

    def _grad_chunk(self, be, gy, s, scratch, gb, nchw: bool = False):
        """The activation's gradient and the bias gradient in one pass, laid out as (O, chunk*OH*OW) for the GEMMs
        (or kept in NCHW, `nchw`), chunk by chunk: for the whole batch at once it would be one more array the size
        of the layer's output (1.5 GiB for VGG-11's first convolution at batch 128)."""
        o, p = gy.shape[1:]
        m = s.stop - s.start
        y = gy[s] if self.act is None else self.y[s]
        out = scratch.get("g", (m, o, p)) if nchw else scratch.get("gy2", (o, m * p))
        return be.act_grad(y, gy[s], self.act, out=out, gb=gb)

    def _backward_im2col(self, be, gy, gb, gx):
        x, w, xp = self.x, self.w, be.xp
        (n, o, p), w2 = gy.shape, self.w.reshape(gy.shape[1], -1)
        k = w2.shape[1]
        gw2 = xp.zeros_like(w2)
        scratch = _Scratch(xp, x.dtype)
        for s in _chunks(n, _sample_bytes(k, o, p, x.dtype.itemsize)):
            m = s.stop - s.start
            cols = self.kept
            if cols is None:
                cols = be.im2col(x[s], *self._window(), out=scratch.get("cols", (k, m * p)))
            gy2 = self._grad_chunk(be, gy, s, scratch, gb)
            gw2 += _gemm(xp, gy2, cols.T, scratch, "gw2")
            if gx is not None:
                gcols = xp.matmul(w2.T, gy2, out=scratch.get("gcols", (k, m * p)))
                be.col2im(gcols, (m, *x.shape[1:]), *self._window(), out=gx[s])
        return gw2.reshape(w.shape)

    def _backward_pointwise(self, be, gy, gb, gx):
        """g = gy * act'(y) in NCHW, a batch chunk at a time; gx[n] = W2^T @ g[n]; gW2 = sum of g[n] @ x[n]^T."""
        x, xp = self.x, be.xp
        (n, o, p), c = gy.shape, x.shape[1]
        w2 = self.w.reshape(o, c)
        x3 = x.reshape(n, c, p)
        gw2 = xp.zeros_like(w2)
        scratch = _Scratch(xp, x.dtype)
        for s in _chunks(n, max(o * p, o * c) * x.dtype.itemsize):
            m = s.stop - s.start
            g = self._grad_chunk(be, gy, s, scratch, gb, nchw=True)
            # per-sample weight gradients in one batched call, then their sum: (m, O, P) @ (m, P, C) -> (m, O, C)
            gw2 += xp.matmul(g, x3[s].transpose(0, 2, 1), out=scratch.get("gw", (m, o, c))).sum(axis=0)
            if gx is not None:
                xp.matmul(w2.T, g, out=gx[s].reshape(m, c, p))
        return gw2.reshape(self.w.shape)

    def _backward_plane(self, be, gy, gb, gx):
        """The small-plane kernels' one pass: the activation's gradient, gb, gW and gx sample by sample."""
        y = gy if self.act is None else self.y
        shape = (gy.shape[0], gy.shape[1], *self.out_hw)
        gw, gbias = be.plane_conv.backward(
            self.x, y.reshape(shape), gy.reshape(shape), self.act, self.w, self.stride, self.pad, gx
        )
        if gb is not None:
            gb += gbias.astype(gb.dtype)
        return gw

    def _backward_direct(self, be, gy, gb, gx):
        """g = gy * act'(y) in NCHW a batch chunk at a time (the chunking keeps g small), then the direct kernels."""
        x, (n, o, p) = self.x, gy.shape
        gw = be.xp.zeros_like(self.w)
        scratch = _Scratch(be.xp, x.dtype)
        for s in _chunks(n, o * p * x.dtype.itemsize):
            g = self._grad_chunk(be, gy, s, scratch, gb, nchw=True).reshape(s.stop - s.start, o, *self.out_hw)
            gw += be.direct.weight_grad(x[s], g, self.kernel, self.stride, self.pad)
            if gx is not None:
                be.direct.input_grad(g, self.w, gx[s].shape, self.stride, self.pad, out=gx[s])
        return gw

    def _backward_winograd(self, be, gy, gb, gx):
        x, xp = self.x, be.xp
        (n, o, _), c = gy.shape, x.shape[1]
        t = _tiles(self.out_hw)
        # U again, for gV only: rebuilt rather than kept since forward (VGG-11's would hold 64 MiB until backward)
        u = winograd.weight_transform(self.w) if gx is not None else None
        gu = xp.zeros((16, o, c), dtype=x.dtype)
        scratch = _Scratch(xp, x.dtype)
        for s in _chunks(n, _sample_bytes(16 * c, 16 * o, t, x.dtype.itemsize)):
            m = s.stop - s.start
            v = self.kept
            if v is None:
                v = be.winograd.input_transform(x[s], self.pad, self.out_hw, out=scratch.get("v", (16, c, m * t)))
            gy2 = self._grad_chunk(be, gy, s, scratch, gb)
            gm = be.winograd.output_transform_grad(gy2, m, self.out_hw, out=scratch.get("gm", (16, o, m * t)))
            gu += xp.matmul(gm, v.transpose(0, 2, 1), out=scratch.get("gu", (16, o, c)))
            if gx is not None:
                # V is not needed any more: a rebuilt one's buffer takes gV (one array of 16*C*T less at the peak)
                gv_buf = scratch.get("v" if self.kept is None else "gv", (16, c, m * t))
                gv = xp.matmul(u.transpose(0, 2, 1), gm, out=gv_buf)
                be.winograd.input_transform_grad(gv, self.pad, self.out_hw, out=gx[s])
        return winograd.weight_transform_grad(gu, self.w.shape)


def conv2d(x, weight, bias=None, stride=1, pad=0, name: str = "conv2d", act: str | None = None):
    """Functional form: x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> (N, O, OH, OW)."""
    from ..backend.shapes import pair

    f = Conv2D(pair(stride, "stride"), pair(pad, "padding"), name, act)
    return f(x, weight) if bias is None else f(x, weight, bias)
