"""2-D convolution as im2col + one GEMM.

x: (N, C, H, W), w: (O, C, KH, KW), b: (O,)  ->  y: (N, O, OH, OW), OH = floor((H + 2*PH - KH) / SH) + 1.

    cols = im2col(x)                    (C*KH*KW, N*OH*OW): column (n, p) is the input patch under output pixel p
    y2   = W2 @ cols + b                (O, N*OH*OW), W2 = w.reshape(O, C*KH*KW); y is y2 with axes (n, o, p)

Backward, with gy2 = gy laid out as (O, N*OH*OW):
    gW2 = gy2 @ cols^T                  (the sum over the batch and the pixels happens inside the GEMM)
    gb  = sum of gy over n and p
    gx  = col2im(W2^T @ gy2)            (col2im sums the overlapping windows back onto the pixels)

An activation ('relu' or 'sigmoid') can be fused: it is applied to y in place, and backward turns gy into
the pre-activation gradient from y alone, so the layer keeps one output array instead of two.

The cols buffer is built for a chunk of the batch at a time so its size stays under IM2COL_CHUNK_BYTES, and
rebuilt in backward rather than kept (it is the largest array of a CNN) - unless the whole batch fits in one
chunk, when keeping it costs at most IM2COL_CHUNK_BYTES and saves backward an im2col (LeNet's case).
"""

from __future__ import annotations

from .. import autograd, backend
from ..autograd import Function
from ..backend.shapes import check_window_args, window_output_shape
from ..errors import ShapeError
from . import activation

IM2COL_CHUNK_BYTES = 32 << 20


def _chunks(n: int, bytes_per_sample: int):
    step = max(1, min(n, IM2COL_CHUNK_BYTES // max(bytes_per_sample, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


class Conv2D(Function):
    def __init__(self, stride=(1, 1), pad=(0, 0), name: str = "conv2d", act: str | None = None):
        self.stride, self.pad, self.name = tuple(stride), tuple(pad), name
        self.act = activation.check_activation(act)

    def _pointwise(self) -> bool:
        """A 1x1 kernel with stride 1 and no padding: cols is x with its axes swapped, no im2col needed."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)

    def _cols(self, be, x):
        if self._pointwise():
            return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)
        return be.im2col(x, self.kernel, self.stride, self.pad)

    def forward(self, x, w, b=None):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {tuple(x.shape)} does not match weight {tuple(w.shape)}; "
                f"expected (N, {w.shape[1] if w.ndim == 4 else 'C'}, H, W)"
            )
        be = backend.of(x)
        xp = be.xp
        n = x.shape[0]
        o = w.shape[0]
        self.kernel = (w.shape[2], w.shape[3])
        check_window_args(self.name, self.kernel, self.stride, self.pad)
        oh, ow = window_output_shape(self.name, x.shape, self.kernel, self.stride, self.pad)
        w2 = w.reshape(o, -1)
        y = xp.empty((n, o, oh * ow), dtype=x.dtype)
        chunks = list(_chunks(n, w2.shape[1] * oh * ow * x.dtype.itemsize))
        for s in chunks:
            cols = self._cols(be, x[s])
            y2 = w2 @ cols  # (O, chunk*OH*OW)
            y[s] = y2.reshape(o, -1, oh * ow).transpose(1, 0, 2)
        self.cols = cols if len(chunks) == 1 and autograd.is_recording() else None
        if b is not None:
            y += b.reshape(1, o, 1)
        if self.act is not None:
            self.y = activation.apply_(self.act, y)
        self.x, self.w, self.has_bias = x, w, b is not None
        return y.reshape(n, o, oh, ow)

    def backward(self, gy):
        x, w = self.x, self.w
        be = backend.of(x)
        xp = be.xp
        n, o = gy.shape[0], gy.shape[1]
        gy = gy.reshape(n, o, -1)
        w2 = w.reshape(o, -1)
        gw2 = gb = None
        need_gx = self.needs_input_grad(0)
        gx = xp.empty_like(x) if need_gx else None
        for s in _chunks(n, w2.shape[1] * gy.shape[2] * x.dtype.itemsize):
            cols = self.cols if self.cols is not None else self._cols(be, x[s])
            # The activation's gradient is taken chunk by chunk, just before the chunk's GEMMs: for the whole
            # batch at once it would be one more array the size of the layer's output (1.5 GiB for VGG-11's
            # first convolution at batch 128, at the very end of backward when that output is still held).
            g = gy[s] if self.act is None else activation.grad(self.act, self.y[s], gy[s])
            if self.has_bias:
                gb = g.sum(axis=(0, 2)) if gb is None else gb + g.sum(axis=(0, 2))
            gy2 = g.transpose(1, 0, 2).reshape(o, -1)  # (O, chunk*OH*OW)
            part = gy2 @ cols.T
            gw2 = part if gw2 is None else gw2 + part
            if need_gx:
                gcols = w2.T @ gy2
                if self._pointwise():
                    gx[s] = gcols.reshape(x.shape[1], -1, *x.shape[2:]).transpose(1, 0, 2, 3)
                else:
                    gx[s] = be.col2im(gcols, gx[s].shape, self.kernel, self.stride, self.pad)
        return (gx, gw2.reshape(w.shape)) + ((gb,) if self.has_bias else ())


def conv2d(x, weight, bias=None, stride=1, pad=0, name: str = "conv2d", act: str | None = None):
    """Functional form: x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> (N, O, OH, OW)."""
    from ..backend.shapes import pair

    f = Conv2D(pair(stride, "stride"), pair(pad, "padding"), name, act)
    return f(x, weight) if bias is None else f(x, weight, bias)
