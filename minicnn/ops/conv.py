"""2-D convolution as im2col + one GEMM.

x: (N, C, H, W), w: (O, C, KH, KW), b: (O,)  ->  y: (N, O, OH, OW), OH = floor((H + 2*PH - KH) / SH) + 1.

    cols = im2col(x)                    (C*KH*KW, N*OH*OW): column (n, p) is the input patch under output pixel p
    y2   = W2 @ cols                    (O, N*OH*OW), W2 = w.reshape(O, C*KH*KW): the whole convolution is one GEMM
    y    = act(y2 + b)                  laid out as (N, O, OH, OW)

Backward, with g = gy * act'(y) laid out as g2: (O, N*OH*OW):
    gW2 = g2 @ cols^T                   (the sum over the batch and the pixels happens inside the GEMM)
    gb  = the sum of g over n and p
    gx  = col2im(W2^T @ g2)             (col2im, im2col's adjoint, sums the overlapping windows back onto pixels)

The activation ('relu' or 'sigmoid') is part of the layer: both derivatives need only y, so the layer keeps y
instead of the pre-activation. cols is the largest array of a CNN, so it is built for a chunk of the batch at a
time (`batch_chunks`) and built again in backward rather than kept.

Faster algorithms for particular shapes (Winograd, small planes, ...) live in `minicnn/fast/`: `dispatch.conv2d`
names the one for these shapes, 'im2col' (this one) in textbook mode or where none applies.
"""

from __future__ import annotations

from .. import autograd, backend
from ..autograd import Function
from ..backend.shapes import batch_chunks, check_window_args, pair, window_output_shape
from ..errors import ShapeError
from ..fast import conv as fast_conv
from ..fast import dispatch
from . import activation


class Conv2D(Function):
    def __init__(self, stride=(1, 1), pad=(0, 0), name: str = "conv2d", act: str | None = None):
        self.stride, self.pad, self.name = tuple(stride), tuple(pad), name
        self.act = activation.check_activation(act)

    def forward(self, x, w, b=None):
        self.kernel, self.out_hw = self._check(x, w)  # (KH, KW), (OH, OW)
        be = backend.of(x)
        n, c, o = x.shape[0], x.shape[1], w.shape[0]
        self.algorithm = dispatch.conv2d(be, c, o, self.kernel, self.stride, self.pad, self.out_hw)
        if self.algorithm != dispatch.TEXTBOOK_CONV:  # a faster algorithm for these shapes (minicnn/fast/conv.py)
            self.fast = fast_conv.make(self.algorithm, self.kernel, self.stride, self.pad, self.out_hw, self.act)
            return self.fast.forward(x, w, b, keep=autograd.is_recording())
        w2 = w.reshape(o, -1)  # (O, C*KH*KW)
        p = self.out_hw[0] * self.out_hw[1]
        y = be.xp.empty((n, o, p), dtype=x.dtype)
        for s in batch_chunks(n, w2.shape[1] * p * x.dtype.itemsize):
            cols = be.im2col(x[s], self.kernel, self.stride, self.pad)  # (C*KH*KW, m*P)
            y[s] = (w2 @ cols).reshape(o, -1, p).transpose(1, 0, 2)  # the GEMM, then (O, m, P) -> (m, O, P)
        if b is not None:
            y += b.reshape(1, o, 1)
        if self.act is not None:
            activation.apply_(self.act, y)
        self.x, self.w, self.has_bias = x, w, b is not None
        self.y = y if self.act is not None else None  # what the activation's gradient needs
        return y.reshape(n, o, *self.out_hw)

    def backward(self, gy):
        if self.algorithm != dispatch.TEXTBOOK_CONV:
            gx, gw, gb = self.fast.backward(gy, want_gx=self.needs_input_grad(0))
            return (gx, gw) + ((gb,) if gb is not None else ())
        x, w, be = self.x, self.w, backend.of(self.x)
        n, o, p = gy.shape[0], gy.shape[1], self.out_hw[0] * self.out_hw[1]
        g = gy.reshape(n, o, p).astype(x.dtype, copy=False)  # in the layer's dtype, whatever the head gradient's
        if self.act is not None:
            g = activation.grad(self.act, self.y, g)  # the gradient before the activation
        w2 = w.reshape(o, -1)
        gw2 = be.xp.zeros_like(w2)
        gx = be.xp.empty(x.shape, dtype=x.dtype) if self.needs_input_grad(0) else None
        for s in batch_chunks(n, w2.shape[1] * p * x.dtype.itemsize):
            cols = be.im2col(x[s], self.kernel, self.stride, self.pad)  # rebuilt, not kept since forward
            g2 = g[s].transpose(1, 0, 2).reshape(o, -1)  # (m, O, P) -> (O, m*P)
            gw2 += g2 @ cols.T
            if gx is not None:
                gx[s] = be.col2im(w2.T @ g2, x[s].shape, self.kernel, self.stride, self.pad)
        gb = (g.sum(axis=(0, 2)),) if self.has_bias else ()
        return (gx, gw2.reshape(w.shape)) + gb

    def _check(self, x, w) -> tuple:
        """The window (KH, KW) and the output size (OH, OW); a clear error for shapes that do not fit."""
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ShapeError(
                f"{self.name}: input {tuple(x.shape)} does not match weight {tuple(w.shape)}; "
                f"expected (N, {w.shape[1] if w.ndim == 4 else 'C'}, H, W)"
            )
        kernel = (w.shape[2], w.shape[3])
        check_window_args(self.name, kernel, self.stride, self.pad)
        return kernel, window_output_shape(self.name, x.shape, kernel, self.stride, self.pad)


def conv2d(x, weight, bias=None, stride=1, pad=0, name: str = "conv2d", act: str | None = None):
    """Functional form: x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or None -> (N, O, OH, OW)."""
    f = Conv2D(pair(stride, "stride"), pair(pad, "padding"), name, act)
    return f(x, weight) if bias is None else f(x, weight, bias)
