"""2-D convolution as im2col + one GEMM.

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
chunk, when keeping it costs at most IM2COL_CHUNK_BYTES and saves backward an im2col (LeNet's case). The chunks
of one call share their work buffers (cols, the GEMM outputs): inside a network a fresh buffer per chunk can be
new memory that pays its page faults again.
"""

from __future__ import annotations

from .. import autograd, backend
from ..autograd import Function
from ..backend.shapes import check_window_args, window_output_shape
from ..errors import ShapeError
from . import activation

IM2COL_CHUNK_BYTES = 32 << 20


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
    buffers live as long as the call (except a single chunk's cols, which forward keeps for backward, as before);
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
        xp = be.xp
        n, o = x.shape[0], w.shape[0]
        self.kernel = (w.shape[2], w.shape[3])
        check_window_args(self.name, self.kernel, self.stride, self.pad)
        oh, ow = window_output_shape(self.name, x.shape, self.kernel, self.stride, self.pad)
        p = oh * ow
        w2 = w.reshape(o, -1)
        k = w2.shape[1]
        y = xp.empty((n, o, p), dtype=x.dtype)
        scratch = _Scratch(xp, x.dtype)
        chunks = list(_chunks(n, _sample_bytes(k, o, p, x.dtype.itemsize)))
        for s in chunks:
            m = s.stop - s.start
            cols = be.im2col(x[s], *self._window(), out=scratch.get("cols", (k, m * p)))
            y2 = _gemm(xp, w2, cols, scratch, "y2")  # (O, chunk*OH*OW)
            be.bias_act(y2, b, self.act, out=y[s])  # + b, activation, and the layout change to (chunk, O, P)
        self.cols = cols if len(chunks) == 1 and autograd.is_recording() else None
        self.y = y if self.act is not None else None
        self.x, self.w, self.has_bias = x, w, b is not None
        return y.reshape(n, o, oh, ow)

    def backward(self, gy):
        x, w = self.x, self.w
        be = backend.of(x)
        xp = be.xp
        n, o = gy.shape[0], gy.shape[1]
        gy = gy.reshape(n, o, -1)
        p = gy.shape[2]
        w2 = w.reshape(o, -1)
        k = w2.shape[1]
        gw2 = xp.zeros_like(w2)
        gb = xp.zeros(o, dtype=x.dtype) if self.has_bias else None
        gx = xp.empty_like(x) if self.needs_input_grad(0) else None
        scratch = _Scratch(xp, x.dtype)
        for s in _chunks(n, _sample_bytes(k, o, p, x.dtype.itemsize)):
            m = s.stop - s.start
            cols = self.cols
            if cols is None:
                cols = be.im2col(x[s], *self._window(), out=scratch.get("cols", (k, m * p)))
            # The activation's gradient, the bias gradient and the layout change to (O, chunk*OH*OW) in one pass,
            # chunk by chunk: for the whole batch at once it would be one more array the size of the layer's
            # output (1.5 GiB for VGG-11's first convolution at batch 128).
            y = gy[s] if self.act is None else self.y[s]
            gy2 = be.act_grad(y, gy[s], self.act, out=scratch.get("gy2", (o, m * p)), gb=gb)
            gw2 += _gemm(xp, gy2, cols.T, scratch, "gw2")
            if gx is not None:
                gcols = xp.matmul(w2.T, gy2, out=scratch.get("gcols", (k, m * p)))
                be.col2im(gcols, (m, *x.shape[1:]), *self._window(), out=gx[s])
        return (gx, gw2.reshape(w.shape)) + ((gb,) if self.has_bias else ())


def conv2d(x, weight, bias=None, stride=1, pad=0, name: str = "conv2d", act: str | None = None):
    """Functional form: x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> (N, O, OH, OW)."""
    from ..backend.shapes import pair

    f = Conv2D(pair(stride, "stride"), pair(pad, "padding"), name, act)
    return f(x, weight) if bias is None else f(x, weight, bias)
