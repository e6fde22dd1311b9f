"""The device layer's seam: one interface, one module per device.

A backend module provides `name`, `xp` (its array module) and the same functions, the textbook kernels of the
window ops and what moving arrays needs:
`im2col, col2im, max_pool_forward, max_pool_backward, avg_pool_forward, avg_pool_backward, dropout_mask,
check_labels, asarray, to_numpy, synchronize`.
Ops never test the device: they call `of(array)` and use what it returns. (The faster CPU algorithms live in
`minicnn/fast/`, whose dispatch functions are the one place that asks which device an array is on.)
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..errors import DeviceError
from . import cpu

_gpu: ModuleType | None = None


def gpu_backend() -> ModuleType:
    """The GPU backend module; DeviceError saying what is missing when it cannot be used."""
    global _gpu
    if _gpu is None:
        try:
            from . import gpu as module  # noqa: PLC0415 - CuPy is optional, import it only when asked
        except ImportError as exc:
            raise DeviceError(f"GPU backend unavailable: {exc}") from None
        module.check_device()
        _gpu = module
    return _gpu


def synchronize_all() -> None:
    """Wait for every backend in use to finish its work (the GPU's only if it was loaded)."""
    cpu.synchronize()
    if _gpu is not None:
        _gpu.synchronize()


def of(a) -> ModuleType:
    """The backend that owns array `a` (NumPy -> cpu, CuPy -> gpu)."""
    if isinstance(a, np.ndarray) or np.isscalar(a):
        return cpu
    if type(a).__module__.startswith("cupy"):
        return gpu_backend()
    raise TypeError(f"expected a NumPy or CuPy array, got {type(a).__name__}")


def for_device(device_type: str) -> ModuleType:
    if device_type == "cpu":
        return cpu
    if device_type == "gpu":
        return gpu_backend()
    raise ValueError(f"unknown device type {device_type!r}: use 'cpu' or 'gpu'")
