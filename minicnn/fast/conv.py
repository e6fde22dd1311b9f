"""The fast convolution algorithms (CPU): what `ops.Conv2D` runs when `dispatch.conv2d` picks one for its shapes.

Each computes what the textbook Conv2D computes (x: (N, C, H, W), w: (O, C, KH, KW), b: (O,) or None, an
activation None, 'relu' or 'sigmoid' -> y: (N, O, OH, OW), and backward's gx, gw, gb), another way:

- 'fused im2col': im2col + GEMM as in the textbook, with the fast im2col kernels (cpu_im2col.py), the bias,
  activation and layout change in one pass each way (cpu_epilogue.py), work buffers shared by the batch chunks,
  and forward's cols kept for backward when the whole batch is one chunk.
- 'winograd': Winograd's F(2x2, 3x3) for 3x3 stride-1 layers: 16 GEMMs over C rows of transformed 4x4 tiles
  instead of one over 9*C rows of cols, 2.25x fewer multiply-adds (winograd.py has the math).
- 'pointwise': a 1x1 stride-1 unpadded layer's cols would be x with its axes swapped; one GEMM per sample on NCHW
  as it is, y[n] = W2 @ x[n], gx[n] = W2^T @ gy[n], gW2 = sum over n of gy[n] @ x[n]^T.
- 'direct': numba kernels that compute y, gW and gx of thin layers straight from NCHW (cpu_direct.py).
- 'plane': numba kernels that convolve a few samples' planes at a time in cache (cpu_plane.py).

docs/fast-paths.md gives each one's design and measurements.
"""

from __future__ import annotations

import numpy as np

from ..backend.shapes import batch_chunks, winograd_tiles
from . import cpu_direct, cpu_epilogue, cpu_im2col, cpu_plane, cpu_winograd, winograd


def make(algorithm: str, kernel, stride, pad, out_hw, act: str | None) -> FastConv:
    """The object that runs `algorithm` (a name `dispatch.conv2d` gives) for one call of a convolution."""
    return ALGORITHMS[algorithm](tuple(kernel), tuple(stride), tuple(pad), tuple(out_hw), act)


class _Scratch:
    """Work buffers shared by the batch chunks of one call: in a network, where arrays of other sizes come and go
    between two chunks, a fresh 30 MiB array per chunk can be new memory that pays its page faults again. The
    first chunk is the largest."""

    def __init__(self, dtype):
        self.dtype, self.flat = dtype, {}

    def get(self, name: str, shape: tuple) -> np.ndarray:
        size = int(np.prod(shape))
        buf = self.flat.get(name)
        if buf is None or buf.size < size:
            buf = self.flat[name] = np.empty(size, dtype=self.dtype)
        return buf[:size].reshape(shape)


def _sample_bytes(k: int, o: int, p: int, itemsize: int) -> int:
    """Bytes one sample adds to the largest work buffer: cols (K rows) or a GEMM output (O rows), P columns each."""
    return max(k, o) * p * itemsize


# With this few output channels a GEMM runs faster transposed: OpenBLAS is slow when the result has only a handful
# of rows (LeNet's first convolution, 6 channels).
FEW_ROWS = 8


def _gemm(a, b, scratch: _Scratch, name: str) -> np.ndarray:
    """a @ b in a work buffer; when a has at most FEW_ROWS rows, computed as (b^T @ a^T) and returned as its
    transposed view (a rule of shapes only, so a layer always takes the same path)."""
    if a.shape[0] <= FEW_ROWS:
        return np.matmul(b.T, a.T, out=scratch.get(name, (b.shape[1], a.shape[0]))).T
    return np.matmul(a, b, out=scratch.get(name, (a.shape[0], b.shape[1])))


class FastConv:
    """One call of a convolution by a fast algorithm: `forward`, then (when recording) `backward`."""

    def __init__(self, kernel, stride, pad, out_hw, act):
        self.kernel, self.stride, self.pad, self.out_hw, self.act = kernel, stride, pad, out_hw, act
        self.kept = None  # what forward keeps for backward besides x, w and y

    def forward(self, x, w, b, keep: bool) -> np.ndarray:
        """y: (N, O, OH, OW) = act(conv(x, w) + b); `keep`: backward will follow (so keep what it needs)."""
        n, o = x.shape[0], w.shape[0]
        y = np.empty((n, o, self.out_hw[0] * self.out_hw[1]), dtype=x.dtype)
        kept = self._forward(x, w, b, y)
        self.kept = kept if keep else None
        self.x, self.w, self.has_bias = x, w, b is not None
        self.y = y if self.act is not None else None
        return y.reshape(n, o, *self.out_hw)

    def backward(self, gy, want_gx: bool) -> tuple:
        """(gx or None, gw, gb or None) for gy: (N, O, OH, OW)."""
        n, o = gy.shape[0], gy.shape[1]
        gy = gy.reshape(n, o, self.out_hw[0] * self.out_hw[1])  # not -1: N may be 0
        gb = np.zeros(o, dtype=self.x.dtype) if self.has_bias else None
        # C-contiguous whatever x's layout: the kernels write each chunk's gx[s] through flat indices
        gx = np.empty(self.x.shape, dtype=self.x.dtype) if want_gx else None
        gw = self._backward(gy, gb, gx)
        return gx, gw, gb

    def _window(self):
        return self.kernel, self.stride, self.pad

    def _grad_chunk(self, gy, s, scratch, gb, nchw: bool = False):
        """The activation's gradient and the bias gradient in one pass, laid out as (O, chunk*OH*OW) for the GEMMs
        (or kept in NCHW, `nchw`), chunk by chunk: for the whole batch at once it would be one more array the size
        of the layer's output."""
        o, p = gy.shape[1:]
        m = s.stop - s.start
        y = gy[s] if self.act is None else self.y[s]
        out = scratch.get("g", (m, o, p)) if nchw else scratch.get("gy2", (o, m * p))
        return cpu_epilogue.act_grad(y, gy[s], self.act, out=out, gb=gb)


class FusedIm2col(FastConv):
    def _forward(self, x, w, b, y):
        """y (N, O, P) = act(W2 @ im2col(x) + b), a batch chunk at a time; returns cols when there was one chunk."""
        n, o, p = y.shape
        w2 = w.reshape(o, -1)
        k = w2.shape[1]
        scratch = _Scratch(x.dtype)
        chunks = list(batch_chunks(n, _sample_bytes(k, o, p, x.dtype.itemsize)))
        for s in chunks:
            m = s.stop - s.start
            cols = cpu_im2col.im2col(x[s], *self._window(), out=scratch.get("cols", (k, m * p)))
            y2 = _gemm(w2, cols, scratch, "y2")  # (O, chunk*OH*OW)
            cpu_epilogue.bias_act(y2, b, self.act, out=y[s])  # + b, activation, and the layout change to NCHW
        return cols if len(chunks) == 1 else None

    def _backward(self, gy, gb, gx):
        x, w = self.x, self.w
        (n, o, p), w2 = gy.shape, w.reshape(gy.shape[1], -1)
        k = w2.shape[1]
        gw2 = np.zeros_like(w2)
        scratch = _Scratch(x.dtype)
        for s in batch_chunks(n, _sample_bytes(k, o, p, x.dtype.itemsize)):
            m = s.stop - s.start
            cols = self.kept
            if cols is None:
                cols = cpu_im2col.im2col(x[s], *self._window(), out=scratch.get("cols", (k, m * p)))
            gy2 = self._grad_chunk(gy, s, scratch, gb)
            gw2 += _gemm(gy2, cols.T, scratch, "gw2")
            if gx is not None:
                gcols = np.matmul(w2.T, gy2, out=scratch.get("gcols", (k, m * p)))
                cpu_im2col.col2im(gcols, (m, *x.shape[1:]), *self._window(), out=gx[s])
        return gw2.reshape(w.shape)


class Winograd(FastConv):
    def _tiles(self) -> int:
        th, tw = winograd_tiles(*self.out_hw)
        return th * tw

    def _forward(self, x, w, b, y):
        """y = act(A^T [U @ V] A + b) tile by tile (winograd.py), a batch chunk at a time; returns V when there was
        one chunk."""
        (n, o, _), c, t = y.shape, x.shape[1], self._tiles()
        u = winograd.weight_transform(w)  # (16, O, C): small, the readable version is fast enough
        scratch = _Scratch(x.dtype)
        chunks = list(batch_chunks(n, _sample_bytes(16 * c, 16 * o, t, x.dtype.itemsize)))
        for s in chunks:
            m = s.stop - s.start
            v = cpu_winograd.input_transform(x[s], self.pad, self.out_hw, out=scratch.get("v", (16, c, m * t)))
            mm = np.matmul(u, v, out=scratch.get("m", (16, o, m * t)))  # 16 GEMMs (O, C) @ (C, chunk*TH*TW)
            cpu_winograd.output_bias_act(mm, b, self.act, out=y[s].reshape(m, o, *self.out_hw))
        return v if len(chunks) == 1 else None

    def _backward(self, gy, gb, gx):
        x = self.x
        (n, o, _), c, t = gy.shape, x.shape[1], self._tiles()
        # U again, for gV only: rebuilt rather than kept since forward
        u = winograd.weight_transform(self.w) if gx is not None else None
        gu = np.zeros((16, o, c), dtype=x.dtype)
        scratch = _Scratch(x.dtype)
        for s in batch_chunks(n, _sample_bytes(16 * c, 16 * o, t, x.dtype.itemsize)):
            m = s.stop - s.start
            v = self.kept
            if v is None:
                v = cpu_winograd.input_transform(x[s], self.pad, self.out_hw, out=scratch.get("v", (16, c, m * t)))
            gy2 = self._grad_chunk(gy, s, scratch, gb)
            gm = cpu_winograd.output_transform_grad(gy2, m, self.out_hw, out=scratch.get("gm", (16, o, m * t)))
            gu += np.matmul(gm, v.transpose(0, 2, 1), out=scratch.get("gu", (16, o, c)))
            if gx is not None:
                # V is not needed any more: a rebuilt one's buffer takes gV (one array of 16*C*T less at the peak)
                gv_buf = scratch.get("v" if self.kept is None else "gv", (16, c, m * t))
                gv = np.matmul(u.transpose(0, 2, 1), gm, out=gv_buf)
                cpu_winograd.input_transform_grad(gv, self.pad, self.out_hw, out=gx[s])
        return winograd.weight_transform_grad(gu, self.w.shape)


class Pointwise(FastConv):
    def _forward(self, x, w, b, y):
        """y (N, O, P) = act(W2 @ x[n] + b) for every n: one batched matmul straight into y, the epilogue in place.
        Keeps nothing: backward needs only x."""
        n, c, h, wd = x.shape
        np.matmul(w.reshape(w.shape[0], c), x.reshape(n, c, h * wd), out=y)
        cpu_epilogue.bias_act(y, b, self.act, out=y)

    def _backward(self, gy, gb, gx):
        """g = gy * act'(y) in NCHW, a batch chunk at a time; gx[n] = W2^T @ g[n]; gW2 = sum of g[n] @ x[n]^T."""
        x = self.x
        (n, o, p), c = gy.shape, x.shape[1]
        w2 = self.w.reshape(o, c)
        x3 = x.reshape(n, c, p)
        gw2 = np.zeros_like(w2)
        scratch = _Scratch(x.dtype)
        for s in batch_chunks(n, max(o * p, o * c) * x.dtype.itemsize):
            m = s.stop - s.start
            g = self._grad_chunk(gy, s, scratch, gb, nchw=True)
            # per-sample weight gradients in one batched call, then their sum: (m, O, P) @ (m, P, C) -> (m, O, C)
            gw2 += np.matmul(g, x3[s].transpose(0, 2, 1), out=scratch.get("gw", (m, o, c))).sum(axis=0)
            if gx is not None:
                np.matmul(w2.T, g, out=gx[s].reshape(m, c, p))
        return gw2.reshape(self.w.shape)


class Direct(FastConv):
    def _forward(self, x, w, b, y):
        """y = act(conv(x, w) + b) by the direct kernel, straight into NCHW. Keeps nothing."""
        cpu_direct.forward(x, w, b, self.act, self.stride, self.pad, out=y.reshape(*y.shape[:2], *self.out_hw))

    def _backward(self, gy, gb, gx):
        """g = gy * act'(y) in NCHW a batch chunk at a time (the chunking keeps g small), then the direct kernels."""
        x, (n, o, p) = self.x, gy.shape
        gw = np.zeros_like(self.w)
        scratch = _Scratch(x.dtype)
        for s in batch_chunks(n, o * p * x.dtype.itemsize):
            g = self._grad_chunk(gy, s, scratch, gb, nchw=True).reshape(s.stop - s.start, o, *self.out_hw)
            gw += cpu_direct.weight_grad(x[s], g, self.kernel, self.stride, self.pad)
            if gx is not None:
                cpu_direct.input_grad(g, self.w, gx[s].shape, self.stride, self.pad, out=gx[s])
        return gw


class Plane(FastConv):
    def _forward(self, x, w, b, y):
        """y = act(conv(x, w) + b) by the small-plane kernel, straight into NCHW. Keeps nothing."""
        cpu_plane.forward(x, w, b, self.act, self.stride, self.pad, out=y.reshape(*y.shape[:2], *self.out_hw))

    def _backward(self, gy, gb, gx):
        """The small-plane kernels' one pass: the activation's gradient, gb, gW and gx sample by sample."""
        y = gy if self.act is None else self.y
        shape = (gy.shape[0], gy.shape[1], *self.out_hw)
        gw, gbias = cpu_plane.backward(
            self.x, y.reshape(shape), gy.reshape(shape), self.act, self.w, self.stride, self.pad, gx
        )
        if gb is not None:
            gb += gbias.astype(gb.dtype)
        return gw


ALGORITHMS = {
    "fused im2col": FusedIm2col,
    "winograd": Winograd,
    "pointwise": Pointwise,
    "direct": Direct,
    "plane": Plane,
}
