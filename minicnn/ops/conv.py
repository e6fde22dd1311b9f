"""2-D convolution as im2col + one GEMM.

x: (N, C, H, W), w: (O, C, KH, KW), b: (O,)  ->  y: (N, O, OH, OW), OH = floor((H + 2*PH - KH) / SH) + 1.

    y[n, o, p] = sum_k W2[o, k] * cols[n, k, p] + b[o]        W2 = w.reshape(O, C*KH*KW), cols = im2col(x)

Backward (gy: (N, O, OH*OW)):
    gW2 = sum_n gy[n] @ cols[n]^T         gb = sum over n and p of gy
    gx  = col2im(W2^T @ gy[n])            (col2im sums the overlapping windows back onto the pixels)

The cols buffer is (C*KH*KW) x (OH*OW) per sample; it is built for a chunk of the batch at a time so its size
stays under IM2COL_CHUNK_BYTES, and rebuilt in backward rather than kept (it is the largest array of a CNN).
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..backend.shapes import check_window_args, window_output_shape
from ..errors import ShapeError

IM2COL_CHUNK_BYTES = 64 << 20


def _chunks(n: int, bytes_per_sample: int):
    step = max(1, min(n, IM2COL_CHUNK_BYTES // max(bytes_per_sample, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


class Conv2D(Function):
    def __init__(self, stride=(1, 1), pad=(0, 0), name: str = "conv2d"):
        self.stride, self.pad, self.name = tuple(stride), tuple(pad), name

    def _pointwise(self) -> bool:
        """A 1x1 kernel with stride 1 and no padding: cols is x itself, no im2col copy needed."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)

    def _cols(self, be, x):
        if self._pointwise():
            return x.reshape(x.shape[0], x.shape[1], -1)
        return be.im2col(x, self.kernel, self.stride, self.pad)

    def forward(self, x, w, b=None):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {tuple(x.shape)} does not match weight {tuple(w.shape)}; "
                f"expected (N, {w.shape[1] if w.ndim == 4 else 'C'}, H, W)"
            )
        be = backend.of(x)
        xp = be.xp
        n, c, _, _ = x.shape
        o = w.shape[0]
        self.kernel = (w.shape[2], w.shape[3])
        check_window_args(self.name, self.kernel, self.stride, self.pad)  # a stride of 0 would divide by zero
        oh, ow = window_output_shape(self.name, x.shape, self.kernel, self.stride, self.pad)
        w2 = w.reshape(o, -1)
        y = xp.empty((n, o, oh * ow), dtype=x.dtype)
        for s in _chunks(n, w2.shape[1] * oh * ow * x.dtype.itemsize):
            xp.matmul(w2, self._cols(be, x[s]), out=y[s])
        if b is not None:
            y += b.reshape(1, o, 1)
        self.x, self.w, self.has_bias = x, w, b is not None
        return y.reshape(n, o, oh, ow)

    def backward(self, gy):
        x, w = self.x, self.w
        be = backend.of(x)
        xp = be.xp
        n, o = gy.shape[0], gy.shape[1]
        gy = gy.reshape(n, o, -1)
        w2 = w.reshape(o, -1)
        gw2 = xp.zeros_like(w2)
        need_gx = self.needs_input_grad(0)
        gx = xp.empty_like(x) if need_gx else None
        for s in _chunks(n, w2.shape[1] * gy.shape[2] * x.dtype.itemsize):
            cols = self._cols(be, x[s])
            # sum_n gy[n] @ cols[n]^T as one batched GEMM (tensordot would copy both operands to 2-D first)
            gw2 += xp.matmul(gy[s], cols.transpose(0, 2, 1)).sum(axis=0)
            if need_gx:
                gcols = xp.matmul(w2.T, gy[s])
                if self._pointwise():
                    gx[s] = gcols.reshape(gx[s].shape)
                else:
                    gx[s] = be.col2im(gcols, gx[s].shape, self.kernel, self.stride, self.pad)
        gb = gy.sum(axis=(0, 2)) if self.has_bias else None
        return (gx, gw2.reshape(w.shape)) + ((gb,) if self.has_bias else ())


def conv2d(x, weight, bias=None, stride=1, pad=0, name: str = "conv2d"):
    """Functional form: x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> (N, O, OH, OW)."""
    from ..backend.shapes import pair

    f = Conv2D(pair(stride, "stride"), pair(pad, "padding"), name)
    return f(x, weight) if bias is None else f(x, weight, bias)
