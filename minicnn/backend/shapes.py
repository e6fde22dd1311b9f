"""Shape rules shared by every backend (CPU numba kernels, CUDA kernels, the ops).

One place for the arithmetic, so the numba and CUDA kernels cannot disagree on it.
"""

from __future__ import annotations

import operator


def out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length along one axis, MXNet's "valid" convention: floor((size + 2*pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def winograd_tiles(oh: int, ow: int) -> tuple[int, int]:
    """(TH, TW): the 2x2 output tiles of Winograd's F(2x2, 3x3) that cover an OH x OW output."""
    return (oh + 1) // 2, (ow + 1) // 2


def integer(v, name: str = "value") -> int:
    """v as an int; ValueError for anything that is not a whole number type (2.5, "3", None): truncating it
    would quietly build another layer than the one asked for."""
    try:
        return operator.index(v)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {v!r}") from None


def pair(v, name: str = "value") -> tuple[int, int]:
    """`3` -> (3, 3); `(3, 5)` -> (3, 5); ValueError for anything else."""
    try:
        if isinstance(v, (tuple, list)):
            if len(v) != 2:
                raise TypeError
            return operator.index(v[0]), operator.index(v[1])
        return operator.index(v), operator.index(v)
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None


def window_output_shape(
    layer: str, x_shape: tuple, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]
) -> tuple[int, int]:
    """(OH, OW) of a sliding window over x: (N, C, H, W); a clear error when the window does not fit."""
    from ..errors import ShapeError

    if len(x_shape) != 4:
        raise ShapeError(f"{layer}: expected a 4-D input (N, C, H, W), got shape {tuple(x_shape)}")
    h, w = x_shape[2], x_shape[3]
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ShapeError(
            f"{layer}: kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw} "
            f"(input {tuple(x_shape)}, padding {ph}x{pw}); use a smaller kernel, more padding or a bigger input"
        )
    return out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)


def check_window_args(layer: str, kernel, stride, pad) -> None:
    """Kernel and stride must be positive, padding non-negative."""
    if min(kernel) <= 0 or min(stride) <= 0 or min(pad) < 0:
        raise ValueError(
            f"{layer}: kernel {kernel} and strides {stride} must be positive and padding {pad} non-negative"
        )


# The largest work buffer (im2col's cols, a GEMM's output) a convolution builds at once: the batch is taken in
# chunks of samples that fit (cols is the largest array of a CNN: VGG-11 at 224x224, batch 128, would need GiBs).
IM2COL_CHUNK_BYTES = 32 << 20


def batch_chunks(n: int, bytes_per_sample: int):
    """Slices of range(n), each as many samples as fit in IM2COL_CHUNK_BYTES (at least one)."""
    step = max(1, min(n, IM2COL_CHUNK_BYTES // max(bytes_per_sample, 1)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))
