"""GPU backend: CuPy arrays, GEMM through CuPy (cuBLAS), the window ops as CUDA kernels from `kernels.cu`.

The same interface as `cpu.py` (ops never test the device, they call `backend.of(x).im2col(...)`), plus what
`device.py` and `random.py` need: `check_device`, `use_device`, `device_id_of`, `make_generator`.

`kernels.cu` is compiled once per process by `cupy.RawModule` (NVRTC; CuPy also keeps the binary in its disk
cache) into a float and a double version of every kernel. Each kernel gives one thread per output element and
loops grid-stride, so this module only chooses how many blocks to launch. Layouts and index math are those of
`cpu.py`: cols (C*KH*KW, N*OH*OW) with row (c*KH + i)*KW + j and column (n*OH + oy)*OW + ox; max-pool
idx = h*W + w of the first maximum, int32.

Importing this module without CuPy raises ImportError("CuPy is not installed ..."), which `backend.gpu_backend()`
turns into a one-line DeviceError.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import DeviceError
from .shapes import out_size


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


try:
    import cupy
except ImportError as _exc:  # re-raised with the text the user should see
    if _exc.name == "cupy":
        raise ImportError("CuPy is not installed (pip install minicnn[gpu])") from None
    raise ImportError(f"CuPy is installed but cannot be imported: {_one_line(_exc)}") from None

name = "gpu"
xp = cupy

# The kernels in kernels.cu (the list is checked against the file by tests/test_cuda_kernels.py).
KERNELS = (
    "im2col",
    "col2im",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "dropout_mask",
)
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

THREADS_PER_BLOCK = 256  # a multiple of the warp size (32) that every current GPU runs at full occupancy
MAX_BLOCKS = 4096  # enough to fill the largest GPUs a few times over; beyond it each thread loops (grid-stride)


@functools.cache
def _module():
    """kernels.cu as one RawModule holding `<kernel><float>` and `<kernel><double>` for every kernel."""
    source = Path(__file__).with_name("kernels.cu").read_text()
    names = tuple(f"{k}<{t}>" for k in KERNELS for t in _CTYPES.values())
    return cupy.RawModule(code=source, options=("-std=c++17",), name_expressions=names)


@functools.cache
def _kernel(kernel: str, dtype: np.dtype):
    """The compiled kernel for one dtype (CuPy loads it on each device the first time it runs there)."""
    ctype = _CTYPES.get(np.dtype(dtype))
    if ctype is None:
        raise TypeError(f"the GPU kernels take float32 or float64 arrays, got {np.dtype(dtype).name}")
    return _module().get_function(f"{kernel}<{ctype}>")


def _launch(kernel: str, dtype, arrays: tuple, total: int, params: tuple = ()) -> None:
    """Run `kernel` with arguments (*arrays, total, *params), one thread per output element (of `total`)."""
    if total == 0:
        return  # CUDA refuses a grid of 0 blocks, and there is nothing to do
    blocks = min(-(-total // THREADS_PER_BLOCK), MAX_BLOCKS)
    _kernel(kernel, np.dtype(dtype))((blocks,), (THREADS_PER_BLOCK,), (*arrays, np.int64(total), *params))


def _window(x_shape, kernel, stride, pad) -> tuple[tuple, tuple[int, int]]:
    """The geometry arguments every window kernel takes (H, W, KH, KW, SH, SW, PH, PW, OH, OW), and (OH, OW)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    h, w = x_shape[2], x_shape[3]
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    return tuple(np.int32(v) for v in (h, w, kh, kw, sh, sw, ph, pw, oh, ow)), (oh, ow)


# ---- the window ops (same signatures and results as cpu.py) ---------------------------------------------------


def _output(out, shape, dtype, what: str):
    """A new array, or `out` when it is a C-contiguous array of that shape and dtype (kernels index it flat)."""
    if out is None:
        return cupy.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{what}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}")
    return out


def im2col(x, kernel, stride, pad, out=None):
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW); cols[(c,i,j), (n,y,x)] = x_pad[n, c, y*SH+i, x*SW+j]."""
    n, c = x.shape[:2]
    geometry, (oh, ow) = _window(x.shape, kernel, stride, pad)
    cols = _output(out, (c * kernel[0] * kernel[1], n * oh * ow), x.dtype, "im2col")
    batch = (np.int32(n), np.int32(c))
    _launch("im2col", x.dtype, (cupy.ascontiguousarray(x), cols), cols.size, batch + geometry)
    return cols


def col2im(cols, x_shape, kernel, stride, pad, out=None):
    """Adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), each pixel summing the windows over it."""
    geometry, _ = _window(x_shape, kernel, stride, pad)
    dx = _output(out, tuple(x_shape), cols.dtype, "col2im")
    batch = (np.int32(x_shape[0]), np.int32(x_shape[1]))
    _launch("col2im", cols.dtype, (cupy.ascontiguousarray(cols), dx), dx.size, batch + geometry)
    return dx


def max_pool_forward(x, kernel, stride, pad):
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), idx: int32 position h*W + w of each window's first maximum)."""
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:  # a window wholly in the padding has no maximum
        raise ValueError(f"max_pool_forward: padding {tuple(pad)} must be smaller than the window {tuple(kernel)}")
    n, c = x.shape[:2]
    geometry, (oh, ow) = _window(x.shape, kernel, stride, pad)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    idx = cupy.empty((n, c, oh, ow), dtype=np.int32)
    _launch("max_pool_forward", x.dtype, (cupy.ascontiguousarray(x), y, idx), y.size, geometry)
    return y, idx


def max_pool_backward(gy, idx, x_shape, kernel, stride, pad):
    """gx[n,c,h,w] = sum of gy over the windows whose saved first maximum is (h, w); overlapping windows add up.

    Needs the window geometry (unlike the CPU's scatter) because each pixel gathers from the windows that cover
    it: deterministic and free of atomics, see max_pool_backward in kernels.cu.
    """
    geometry, _ = _window(x_shape, kernel, stride, pad)
    gx = cupy.empty(tuple(x_shape), dtype=gy.dtype)
    arrays = (cupy.ascontiguousarray(gy), cupy.ascontiguousarray(idx, dtype=np.int32), gx)
    _launch("max_pool_backward", gy.dtype, arrays, gx.size, geometry)
    return gx


def avg_pool_forward(x, kernel, stride, pad):
    """y = (sum of the window's real pixels) / (KH*KW): padding counts in the denominator."""
    n, c = x.shape[:2]
    geometry, (oh, ow) = _window(x.shape, kernel, stride, pad)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    _launch("avg_pool_forward", x.dtype, (cupy.ascontiguousarray(x), y), y.size, geometry)
    return y


def avg_pool_backward(gy, x_shape, kernel, stride, pad):
    """Each real pixel receives gy / (KH*KW) from every window that covers it."""
    geometry, _ = _window(x_shape, kernel, stride, pad)
    gx = cupy.empty(tuple(x_shape), dtype=gy.dtype)
    _launch("avg_pool_backward", gy.dtype, (cupy.ascontiguousarray(gy), gx), gx.size, geometry)
    return gx


def dropout_mask(shape, rate: float, dtype, rng):
    """Inverted-dropout mask: 0 with probability `rate`, 1/(1-rate) otherwise (float32 draws, as on the CPU)."""
    dtype = np.dtype(dtype)
    u = rng.random(shape, dtype=np.float32)
    mask = cupy.empty(shape, dtype=dtype)
    scale = dtype.type(1.0 / (1.0 - rate))
    _launch("dropout_mask", dtype, (u, mask), mask.size, (np.float32(rate), scale))
    return mask


# ---- arrays, devices, random numbers ----------------------------------------------------------------------------


def check_labels(idx, num_classes: int, where: str) -> None:
    """Not checked on the GPU: reading the labels' range would make the host wait for the GPU every batch.
    Fashion-MNIST's labels are checked when the files are read; check your own with the CPU backend."""


def asarray(a, dtype=None):
    """Host data (NumPy, lists) or a CuPy array from any GPU -> a CuPy array on the current device."""
    if isinstance(a, cupy.ndarray):
        if a.device.id != cupy.cuda.runtime.getDevice():
            a = a.copy()  # CuPy copies onto the current device
        return a if dtype is None else a.astype(dtype, copy=False)
    return cupy.asarray(np.asarray(a), dtype=dtype)


def to_numpy(a) -> np.ndarray:
    """A host (NumPy) copy of a CuPy array."""
    return cupy.asnumpy(a)


def synchronize() -> None:
    """Wait until the current GPU has finished all queued work (do this before reading a clock)."""
    cupy.cuda.Device().synchronize()


def device_id_of(a) -> int:
    return int(a.device.id)


def device_count() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except (RuntimeError, OSError) as exc:  # CUDARuntimeError is a RuntimeError: no driver, no device, ...
        raise DeviceError(f"no CUDA device: {_one_line(exc)}") from None


def check_device() -> None:
    """Raise a one-line DeviceError unless a CUDA device works and the kernels compile for it."""
    if device_count() == 0:
        raise DeviceError("no CUDA device: the CUDA driver reports 0 devices")
    try:
        _kernel(KERNELS[0], np.dtype(np.float32))  # compiles the whole module (a few seconds the first time)
    except Exception as exc:  # NVRTC missing, a driver too old for the toolkit, ...: report whatever CuPy says
        raise DeviceError(f"CUDA device found but kernels.cu does not compile there: {_one_line(exc)}") from None


def use_device(device_id: int) -> None:
    """Make gpu(device_id) the current device for new arrays and kernel launches."""
    count = device_count()
    if not 0 <= device_id < count:
        raise DeviceError(f"no CUDA device gpu({device_id}): this machine has {count} (gpu(0) to gpu({count - 1}))")
    cupy.cuda.Device(device_id).use()


def make_generator(seed_sequence):
    """A CuPy generator for dropout masks, seeded from a numpy.random.SeedSequence (None: fresh entropy)."""
    return cupy.random.default_rng(seed_sequence)
