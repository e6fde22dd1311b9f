"""Max, average and global average pooling over (N, C, H, W), MXNet's rules.

Output size floor((H + 2P - K) / S) + 1; padding never wins a max; the average divides by K*K, padding
included; max backward sends each window's gradient to its FIRST maximum (row-major), and overlapping
windows add up. The window loops are the backend's kernels: `backend/cpu.py` (numba) and `backend/kernels.cu`
(CUDA). On the CPU a vectorised max-pool forward (`fast/cpu_pool.py`) gives the same outputs and indices.
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..backend.shapes import check_window_args, pair, window_output_shape
from ..errors import ShapeError
from ..fast import cpu_pool, dispatch


class _Pool(Function):
    def __init__(self, kernel, stride=None, pad=0, name: str = "pool"):
        self.kernel = pair(kernel, f"{name}: pool_size")
        self.stride = self.kernel if stride is None else pair(stride, f"{name}: strides")
        self.pad = pair(pad, f"{name}: padding")
        self.name = name
        check_window_args(name, self.kernel, self.stride, self.pad)
        if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
            raise ValueError(f"{name}: padding {self.pad} must be smaller than pool_size {self.kernel}")

    def _check(self, x):
        window_output_shape(self.name, x.shape, self.kernel, self.stride, self.pad)
        self.x_shape = x.shape


class MaxPool2D(_Pool):
    """y[n,c,i,j] = max over the window of x (padding is -inf); backward sends gy[n,c,i,j] to the window's first
    maximum, whose position forward keeps (idx, int32, as large as y).

    Outside textbook mode a large index (VGG-11's five pools at batch 128 would keep 0.7 GiB) is not kept: the op
    keeps x instead (no extra memory: the graph holds x anyway) and backward runs the forward kernel on the same x
    again, which gives the same index (`dispatch.keep_pool_index`).
    """

    def forward(self, x):
        self._check(x)
        be = backend.of(x)
        self.algorithm = dispatch.max_pool(be, self.kernel, self.stride, self.pad)
        y, idx = self._forward(be, x)
        self.idx, self.x = (idx, None) if dispatch.keep_pool_index(be, idx.nbytes) else (None, x)
        return y

    def _forward(self, be, x):
        if self.algorithm == dispatch.TEXTBOOK_POOL:
            return be.max_pool_forward(x, self.kernel, self.stride, self.pad)
        return cpu_pool.max_pool_forward(x, self.kernel, self.stride, self.pad)  # the same, vectorised

    def backward(self, gy):
        be = backend.of(gy)
        idx = self.idx if self.idx is not None else self._forward(be, self.x)[1]
        return be.max_pool_backward(gy, idx, self.x_shape, self.kernel, self.stride, self.pad)


class AvgPool2D(_Pool):
    """y[n,c,i,j] = sum over the window of x / (KH*KW)  (count_include_pad)."""

    def forward(self, x):
        self._check(x)
        return backend.of(x).avg_pool_forward(x, self.kernel, self.stride, self.pad)

    def backward(self, gy):
        return backend.of(gy).avg_pool_backward(gy, self.x_shape, self.kernel, self.stride, self.pad)


class GlobalAvgPool2D(Function):
    """(N, C, H, W) -> (N, C, 1, 1): the mean of each plane; backward spreads gy / (H*W) over the plane."""

    def __init__(self, name: str = "pool"):
        self.name = name

    def forward(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{self.name}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        self.x_shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, gy):
        h, w = self.x_shape[2], self.x_shape[3]
        xp = backend.of(gy).xp
        return xp.broadcast_to(gy / (h * w), self.x_shape).copy()


def max_pool2d(x, pool_size=2, strides=None, padding=0, name: str = "pool"):
    return MaxPool2D(pool_size, strides, padding, name)(x)


def avg_pool2d(x, pool_size=2, strides=None, padding=0, name: str = "pool"):
    return AvgPool2D(pool_size, strides, padding, name)(x)


def global_avg_pool2d(x, name: str = "pool"):
    return GlobalAvgPool2D(name)(x)
