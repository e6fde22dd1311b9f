"""Which algorithm runs: one function per op, answering "which algorithm for these shapes on this device?".

In textbook mode (`minicnn.config`) every answer is the textbook algorithm; on the GPU too, but for GoogLeNet's fused
heads (`inception_heads`, made of ops): the CUDA kernels are the textbook loops, and the other fast paths are CPU
ones. Otherwise a rule picks a fast path from the shapes
alone, so a layer takes the same path every time and its results do not change from run to run. Each fast path
can be turned off by itself with MINICNN_<NAME>=0 (`config.fast_path`). Why each threshold is where it is:
docs/fast-paths.md; every switch and constant: docs/configuration.md.
"""

from __future__ import annotations

import numpy as np

from .. import config
from ..config import fast_path, textbook_mode

TEXTBOOK_CONV = "im2col"
TEXTBOOK_POOL = "window loop"


def _fast_cpu(be) -> bool:
    return be.name == "cpu" and not textbook_mode()


# ---- convolution -------------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) for 3x3 stride-1 layers with at least this many input channels, on output planes at least
# this wide: with fewer channels its 16 GEMMs (K = C) are too thin, on narrower planes its 2x2 tiles waste too much.
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_SIDE = 4
# The pointwise path for 1x1 stride-1 unpadded layers on planes of at least this many pixels (per-sample GEMMs on
# NCHW as it is); on smaller planes im2col's one large GEMM wins.
POINTWISE_MIN_PIXELS = 256
# The direct kernels for windows of at most DIRECT_MAX_K values (C*KH*KW) with no horizontal stride and output rows
# at least DIRECT_MIN_WIDTH wide: there cols is K times the input and the GEMM has next to nothing to do.
DIRECT_MAX_K = 32
DIRECT_MIN_WIDTH = 64
# The small-plane kernels for stride-1 layers with at most PLANE_SMALL_CHANNELS channels each way on padded planes
# of at most PLANE_SMALL_PIXELS (LeNet's), or at most PLANE_THIN_CHANNELS each way on outputs of at least
# PLANE_THIN_PIXELS (VGG's first layers).
PLANE_SMALL_CHANNELS, PLANE_SMALL_PIXELS = 16, 1024
PLANE_THIN_CHANNELS, PLANE_THIN_PIXELS = 64, 56 * 56


def use_pointwise(kernel, stride, pad, out_hw) -> bool:
    return (
        tuple(kernel) == (1, 1)
        and tuple(stride) == (1, 1)
        and tuple(pad) == (0, 0)
        and out_hw[0] * out_hw[1] >= POINTWISE_MIN_PIXELS
        and fast_path("pointwise")  # last: the shapes are cheaper to test than the environment
    )


def use_plane(c: int, o: int, kernel, stride, out_hw) -> bool:
    padded = (out_hw[0] + kernel[0] - 1) * (out_hw[1] + kernel[1] - 1)  # stride 1: the padded input plane
    small = max(c, o) <= PLANE_SMALL_CHANNELS and padded <= PLANE_SMALL_PIXELS
    thin = max(c, o) <= PLANE_THIN_CHANNELS and out_hw[0] * out_hw[1] >= PLANE_THIN_PIXELS
    return tuple(stride) == (1, 1) and (small or thin) and fast_path("plane")


def use_winograd(c: int, kernel, stride, out_hw) -> bool:
    return (
        tuple(kernel) == (3, 3)
        and tuple(stride) == (1, 1)
        and c >= WINOGRAD_MIN_CHANNELS
        and min(out_hw) >= WINOGRAD_MIN_SIDE
        and fast_path("winograd")
    )


def use_direct(c: int, kernel, stride, out_hw) -> bool:
    return (
        c * kernel[0] * kernel[1] <= DIRECT_MAX_K
        and stride[1] == 1
        and out_hw[1] >= DIRECT_MIN_WIDTH
        and fast_path("direct")
    )


def conv2d(be, c: int, o: int, kernel, stride, pad, out_hw) -> str:
    """The algorithm Conv2D runs for C input and O output channels, a KH x KW window, stride, padding and output
    size (OH, OW) on backend `be`: 'im2col' (the textbook), or the first fast path whose rule the shapes meet:
    'pointwise', 'plane', 'winograd', 'direct', else 'fused im2col' (im2col with fused epilogues)."""
    if not _fast_cpu(be):
        return TEXTBOOK_CONV
    if use_pointwise(kernel, stride, pad, out_hw):  # first: a 1x1 layer on a large plane is a GEMM, BLAS's job
        return "pointwise"
    if use_plane(c, o, kernel, stride, out_hw):  # before Winograd and direct: faster on thin layers (fast-paths.md)
        return "plane"
    if use_winograd(c, kernel, stride, out_hw):
        return "winograd"
    if use_direct(c, kernel, stride, out_hw):
        return "direct"
    if config.switch("fused"):
        return "fused im2col"
    return TEXTBOOK_CONV


def im2col_variant(kernel, stride) -> str:
    """Which fast im2col kernel: 'framed' (stride 1, a window larger than 1x1: each plane copied into a zero frame
    first) or 'rows' (the others: clipped row slices)."""
    framed = fast_path("framed") and tuple(stride) == (1, 1) and tuple(kernel) != (1, 1)
    return "framed" if framed else "rows"


# ---- pooling -----------------------------------------------------------------------------------------------------
# A max pool's int32 index (as large as its output) is kept from forward to backward up to this size; a larger one
# is recomputed in backward from x, which the graph holds anyway (VGG-11's five pools would keep 0.7 GiB).
KEEP_INDEX_BYTES = 32 << 20


def max_pool(be, kernel, stride, pad) -> str:
    """The algorithm MaxPool2D runs: 'window loop' (the textbook), or '2x2 tiles' / 'runs' (cpu_pool.py)."""
    if not (_fast_cpu(be) and config.switch("pool")):
        return TEXTBOOK_POOL
    return max_pool_kernel(kernel, stride, pad)


def max_pool_kernel(kernel, stride, pad) -> str:
    """'2x2 tiles' for 2x2 windows with stride 2 and no padding (they tile the plane), 'runs' for the others."""
    tiles = (tuple(kernel), tuple(stride), tuple(pad)) == ((2, 2), (2, 2), (0, 0))
    return "2x2 tiles" if tiles and config.switch("pool_2x2") else "runs"


def keep_pool_index(be, nbytes: int) -> bool:
    """Whether MaxPool2D keeps its index for backward (the textbook always does) or recomputes it there."""
    return nbytes <= KEEP_INDEX_BYTES or not _fast_cpu(be)


def avg_pool(be) -> str:
    """AvgPool2D always runs the textbook window loop."""
    return TEXTBOOK_POOL


# ---- elementwise, update, blocks --------------------------------------------------------------------------------
def sigmoid(x) -> bool:
    """Whether the sigmoid of array x runs the vectorised kernel (cpu_sigmoid.py): CPU float32 arrays."""
    return isinstance(x, np.ndarray) and x.dtype == np.float32 and fast_path("sigmoid")


def sgd(w, g) -> bool:
    """Whether the SGD update of w by g runs in one pass (cpu_sgd.py): C-contiguous CPU arrays alike."""
    alike = isinstance(w, np.ndarray) and isinstance(g, np.ndarray) and w.shape == g.shape and w.dtype == g.dtype
    return alike and w.flags.c_contiguous and g.flags.c_contiguous and fast_path("sgd")


def inception_heads() -> bool:
    """Whether an Inception block runs its three 1x1 convolutions as one (models/googlenet.py), on any device."""
    return fast_path("heads")
