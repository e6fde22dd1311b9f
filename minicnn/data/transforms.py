"""Batch image transforms matching Gluon's `transforms.Resize` and `transforms.ToTensor`.

They work on whole batches of uint8 images `(N, H, W)` and on NumPy or CuPy arrays alike: every array is
made by the array module `xp` of the input. As in the chapter, resize the uint8 images first and convert to
float after (the other order once fed all-zero images to AlexNet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from minicnn.errors import ShapeError


def array_module(x: Any) -> ModuleType:
    """numpy for NumPy arrays, cupy for CuPy arrays (cupy is imported only for non-NumPy arrays)."""
    if isinstance(x, np.ndarray):
        return np
    try:
        import cupy
    except ImportError:
        return np
    return cupy.get_array_module(x)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, (int, np.integer)) for s in size):
        pair = (int(size[0]), int(size[1]))
    else:
        raise ShapeError(f"resize size must be an int or an (height, width) pair of ints, got {size!r}")
    if min(pair) < 1:
        raise ShapeError(f"resize size must be positive, got {size!r}")
    return pair


# OpenCV's INTER_LINEAR on uint8 works in fixed point: weights are scaled by 2**11 and rounded.
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


@lru_cache(maxsize=64)
def _linear_table(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, ...]:
    """Source indices i0, i1 and fixed-point weights w0, w1 (int32, length dst) for one axis.

    Output pixel d samples source coordinate f = (d + 0.5) * src / dst - 0.5 (pixel centres aligned).
    With i0 = floor(f) and t = f - i0, the output is w0 * x[i0] + w1 * x[i1], w0 ≈ (1 - t) * 2048 and
    w1 ≈ t * 2048, each rounded on its own (so w0 + w1 may be 2047 or 2049, as in OpenCV).
    The arithmetic reproduces OpenCV's exactly: f in double then float32, t and 1 - t in float32.
    Outside the image, the columns (clamp_weights=True) take the edge pixel with weights (2048, 0); the
    rows keep their weights and only clip the indices, which rounds differently later — OpenCV does both.
    """
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
    i0 = np.floor(f)
    t = (f - i0).astype(np.float32)
    i0 = i0.astype(np.int64)
    if clamp_weights:
        outside = (i0 < 0) | (i0 >= src - 1)
        t[outside] = 0
        i0 = np.clip(i0, 0, src - 1)
    w0 = np.rint((np.float32(1) - t) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(t * np.float32(_COEF_SCALE)).astype(np.int32)
    i1 = np.clip(i0 + 1, 0, src - 1)
    i0 = np.clip(i0, 0, src - 1)
    tables = (i0, i1, w0, w1)
    for table in tables:
        table.flags.writeable = False  # shared through the cache
    return tables


def resize(images: Any, size: int | Sequence[int]) -> Any:
    """Bilinear resize of uint8 images `(N, H, W)` (or one image `(H, W)`) to `(N, h, w)` (or `(h, w)`).

    `size` is an int (square) or `(h, w)` — note Gluon's `Resize` takes `(w, h)`. Bit-exact with MXNet's
    `transforms.Resize` / `mx.image.imresize` (OpenCV 3.4 INTER_LINEAR on uint8):
        horizontal: s = (w0 * x[i0] + w1 * x[i1]) >> 4                      (weights scaled by 2**11)
        vertical:   y = (((s[j0] * v0) >> 16) + ((s[j1] * v1) >> 16) + 2) >> 2
    The shifts are OpenCV's SIMD path (16-bit multiply-high): overall 2**22 scale with truncations, which
    rounds some exact halves down (a 0/10 edge upsampled x2 gives 2, not 3). The result stays in 0..255.
    """
    xp = array_module(images)
    if getattr(images, "dtype", None) != np.uint8:
        raise TypeError(f"resize expects uint8 images, got {getattr(images, 'dtype', type(images))}")
    if images.ndim not in (2, 3):
        raise ShapeError(f"resize expects images of shape (N, H, W) or (H, W), got {tuple(images.shape)}")
    out_h, out_w = _pair(size)
    batch = images[None] if images.ndim == 2 else images
    in_h, in_w = batch.shape[1:]
    if in_h == 0 or in_w == 0:
        raise ShapeError(f"resize cannot resize empty images of shape {tuple(images.shape)}")
    x0, x1, a0, a1 = (xp.asarray(t) for t in _linear_table(in_w, out_w, True))
    y0, y1, b0, b1 = (xp.asarray(t) for t in _linear_table(in_h, out_h, False))
    src = batch.astype(xp.int32)
    # Horizontal pass on the (few) source rows first: (N, H, w), values scaled by 2**11, then 2**7.
    rows = src[:, :, x0] * a0 + src[:, :, x1] * a1
    rows >>= 4
    # Vertical pass: (N, h, w), in place to keep one batch-sized temporary per term (products < 2**26).
    out = xp.take(rows, y0, axis=1)
    out *= b0[:, None]
    out >>= 16
    lower = xp.take(rows, y1, axis=1)
    lower *= b1[:, None]
    lower >>= 16
    out += lower
    out += 2
    out >>= 2
    out = out.astype(xp.uint8)
    return out[0] if images.ndim == 2 else out


def to_tensor(images: Any, dtype: Any = np.float32) -> Any:
    """uint8 `(N, H, W)` → `(N, 1, H, W)` of `dtype` in [0, 1], x / 255 (one image `(H, W)` → `(1, H, W)`).

    Like Gluon's `ToTensor`, the division is done in the output dtype (x.astype(float32) / 255).
    """
    xp = array_module(images)
    if images.ndim not in (2, 3):
        raise ShapeError(f"to_tensor expects images of shape (N, H, W) or (H, W), got {tuple(images.shape)}")
    out = images.astype(dtype)
    out /= out.dtype.type(255)
    return xp.expand_dims(out, axis=-3)


class Resize:
    """Gluon's `transforms.Resize`: `Resize(224)(batch)` = `resize(batch, 224)`. A pair is (width, height), in
    Gluon's order (`resize` itself takes (height, width))."""

    def __init__(self, size: int | Sequence[int]) -> None:
        if isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
            size = (size[1], size[0])
        self.size = _pair(size)  # (height, width)

    def __call__(self, images: Any) -> Any:
        return resize(images, self.size)

    def __repr__(self) -> str:
        return f"Resize(size=({self.size[1]}, {self.size[0]}))"


class ToTensor:
    """Gluon-like callable: uint8 `(N, H, W)` → float `(N, 1, H, W)` in [0, 1]."""

    def __init__(self, dtype: Any = np.float32) -> None:
        self.dtype = dtype

    def __call__(self, images: Any) -> Any:
        return to_tensor(images, self.dtype)

    def __repr__(self) -> str:
        return f"ToTensor(dtype={np.dtype(self.dtype).name})"


class Compose:
    """Apply transforms in order: `Compose([Resize(224), ToTensor()])(batch)`."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, images: Any) -> Any:
        for transform in self.transforms:
            images = transform(images)
        return images

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
