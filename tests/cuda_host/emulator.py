"""Run minicnn/backend/kernels.cu on the CPU, and minicnn/backend/gpu.py on top of it, without a GPU.

- `build_library()` compiles kernels.cu as C++ with g++ under `cuda_host.h` (the CUDA built-ins) and
  `emulator.cpp` (a grid loop per launch, one extern "C" entry point), once per source version: the shared library
  is cached in the temp directory under a hash of the three files, the compiler and its flags.
- `HostKernels` calls a kernel by the name expression CuPy would use ("im2col<float>") with NumPy arrays as device
  memory and NumPy scalars as arguments, and returns the C++ side's error (wrong arity, wrong argument width).
- `FakeCupy` is a stand-in `cupy` module, just the part gpu.py uses, that keeps "device" arrays in NumPy and sends
  `RawModule` launches to `HostKernels`. `load_gpu_backend(fake)` imports gpu.py against it, so gpu.py's own
  argument marshalling, grid sizes and output allocation run unchanged. Every array it hands out lies between two
  poisoned guard regions (NaN, or a sentinel for integers): an output element a kernel forgets stays NaN, a read
  past the end brings NaN in, and a write past the end is caught after the launch.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import tempfile
import types
import weakref
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BACKEND_DIR = REPO / "minicnn" / "backend"
KERNELS_CU = BACKEND_DIR / "kernels.cu"
GPU_PY = BACKEND_DIR / "gpu.py"

CXX_FLAGS = ("-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")


def find_cxx() -> str | None:
    """The system C++ compiler ($CXX, else g++, else c++), or None."""
    for candidate in (os.environ.get("CXX"), "g++", "c++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def build_library(cxx: str) -> Path:
    """Compile kernels.cu + cuda_host.h + emulator.cpp into a shared library (cached by content hash)."""
    sources = (KERNELS_CU, HERE / "cuda_host.h", HERE / "emulator.cpp")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    digest = hashlib.sha256()
    for part in (*(p.read_bytes() for p in sources), version.encode(), " ".join(CXX_FLAGS).encode()):
        digest.update(part)
    out_dir = Path(tempfile.gettempdir()) / f"minicnn-cuda-host-{digest.hexdigest()[:16]}"
    lib = out_dir / "libkernels_host.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f"libkernels_host.{os.getpid()}.so"  # then renamed: parallel test workers never see half a file
    cmd = [cxx, *CXX_FLAGS, "-I", str(HERE), "-I", str(BACKEND_DIR), str(HERE / "emulator.cpp"), "-o", str(partial)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"compiling kernels.cu for the host failed:\n{' '.join(cmd)}\n{result.stderr}")
    os.replace(partial, lib)
    return lib


class HostKernels:
    """The host-compiled kernels, launched like CUDA kernels: `launch("im2col<float>", grid, block, args)`."""

    def __init__(self, lib_path: Path):
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.cuda_host_launch.restype = ctypes.c_int
        self.lib.cuda_host_launch.argtypes = [
            ctypes.c_char_p,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_int,
        ]
        self.lib.cuda_host_last_error.restype = ctypes.c_char_p
        self.lib.cuda_host_kernel_name.restype = ctypes.c_char_p
        self.names = [self.lib.cuda_host_kernel_name(i).decode() for i in range(self.lib.cuda_host_kernel_count())]

    def launch(self, name: str, grid: int, block: int, args) -> None:
        """args: C-contiguous NumPy arrays (passed as device pointers) and NumPy scalars (passed by value)."""
        keep = []  # the storage each argument value lives in, alive until the call returns
        values, sizes = [], []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError(f"{name}: argument {i} is not C-contiguous; a kernel sees raw memory")
                slot = ctypes.c_void_p(a.ctypes.data)
                size = ctypes.sizeof(ctypes.c_void_p)
            elif isinstance(a, np.generic):
                slot = np.array(a)  # a 0-d array holds the scalar's bytes at the scalar's own width
                size = slot.itemsize
            else:
                raise TypeError(
                    f"{name}: argument {i} is a Python {type(a).__name__}; pass NumPy scalars (np.int32, ...) so "
                    "that the width the kernel reads is explicit"
                )
            keep.append(slot)
            address = ctypes.addressof(slot) if isinstance(slot, ctypes.c_void_p) else slot.ctypes.data
            values.append(address)
            sizes.append(size)
        argv = (ctypes.c_void_p * len(values))(*values)
        sizev = (ctypes.c_size_t * len(sizes))(*sizes)
        status = self.lib.cuda_host_launch(name.encode(), grid, block, argv, sizev, len(values))
        del keep
        if status != 0:
            raise RuntimeError(self.lib.cuda_host_last_error().decode())


# ---- a stand-in cupy ----------------------------------------------------------------------------------------------

GUARD = 32  # poisoned elements before and after every "device" array
INT_POISON = -987654321


def _poison(dtype: np.dtype):
    return np.nan if np.dtype(dtype).kind in "fc" else INT_POISON


def _is_poisoned(a: np.ndarray) -> bool:
    return bool(np.isnan(a).all()) if a.dtype.kind in "fc" else bool((a == INT_POISON).all())


class FakeCupy(types.ModuleType):
    """The part of the cupy API that minicnn/backend/gpu.py uses, on NumPy arrays and the host kernels.

    `launches` records (name expression, grid, block) of every kernel call; `modules` every RawModule made.
    """

    class ndarray:  # noqa: N801 - cupy's name. Nothing is an instance: gpu.asarray takes its host-data path
        pass

    def __init__(self, kernels: HostKernels, device_count: int = 1, device_error: Exception | None = None):
        super().__init__("cupy")
        self._kernels = kernels
        self._buffers: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()
        self.launches: list[tuple[str, int, int]] = []
        self.modules: list[FakeRawModule] = []
        fake = self

        class _Runtime:
            CUDARuntimeError = RuntimeError

            @staticmethod
            def getDeviceCount():
                if device_error is not None:
                    raise device_error
                return device_count

            @staticmethod
            def getDevice():
                return 0

        class _Device:
            def __init__(self, device_id: int = 0):
                self.id = device_id

            def use(self):
                pass

            def synchronize(self):
                pass

        self.cuda = types.SimpleNamespace(runtime=_Runtime, Device=_Device)
        self.random = types.SimpleNamespace(default_rng=lambda seed=None: _FakeGenerator(fake, seed))

    # arrays ------------------------------------------------------------------------------------------------------
    def empty(self, shape, dtype=np.float64) -> np.ndarray:
        """A guarded, poisoned array: elements a kernel does not write stay NaN (or INT_POISON)."""
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        size = math.prod(shape)
        buffer = np.full(size + 2 * GUARD, _poison(dtype), dtype=dtype)
        self._buffers[id(buffer)] = buffer
        return buffer[GUARD : GUARD + size].reshape(shape)

    def asarray(self, a, dtype=None) -> np.ndarray:
        host = np.asarray(a, dtype=dtype)
        out = self.empty(host.shape, host.dtype)
        out[...] = host
        return out

    def ascontiguousarray(self, a, dtype=None) -> np.ndarray:
        if self._owner(a) is not None and a.flags.c_contiguous and (dtype is None or a.dtype == np.dtype(dtype)):
            return a  # like CuPy: already a contiguous device array, no copy
        return self.asarray(a, dtype)

    def asnumpy(self, a) -> np.ndarray:
        return np.array(a, copy=True)

    def _owner(self, a) -> np.ndarray | None:
        """The guarded buffer `a` lives in, or None for memory this fake did not allocate (host memory)."""
        base = a.base if a.base is not None else a
        return self._buffers.get(id(base)) if isinstance(base, np.ndarray) else None

    # kernels -----------------------------------------------------------------------------------------------------
    def RawModule(self, code=None, options=(), name_expressions=None, **kwargs):  # noqa: N802 - cupy's name
        module = FakeRawModule(self, code, tuple(options), tuple(name_expressions or ()), kwargs)
        self.modules.append(module)
        return module

    def _launch(self, name: str, grid, block, args) -> None:
        if len(grid) != 1 or len(block) != 1:
            raise ValueError(f"{name}: the emulator runs 1-D launches, got grid {grid} and block {block}")
        owners = []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                owner = self._owner(a)
                if owner is None:
                    raise TypeError(f"{name}: argument {i} is host memory, not an array from cupy")
                owners.append(owner)
        self.launches.append((name, int(grid[0]), int(block[0])))
        self._kernels.launch(name, int(grid[0]), int(block[0]), args)
        for owner in owners:
            if not (_is_poisoned(owner[:GUARD]) and _is_poisoned(owner[-GUARD:])):
                raise AssertionError(f"{name} wrote outside an array it was given (a guard region changed)")


class FakeRawModule:
    def __init__(self, fake: FakeCupy, code, options, name_expressions, kwargs):
        self.fake, self.code, self.options, self.name_expressions, self.kwargs = (
            fake,
            code,
            options,
            name_expressions,
            kwargs,
        )

    def get_function(self, name: str):
        if name not in self.name_expressions:
            raise KeyError(f"{name!r} was not among the RawModule's name_expressions (NVRTC would not lower it)")
        if self.code != KERNELS_CU.read_text():
            raise AssertionError("the RawModule was not given the text of minicnn/backend/kernels.cu")
        return lambda grid, block, args: self.fake._launch(name, grid, block, args)


class _FakeGenerator:
    """cupy.random.Generator's `random` on top of a NumPy generator seeded the same way."""

    def __init__(self, fake: FakeCupy, seed):
        self.fake = fake
        self.host = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return self.fake.asarray(self.host.random(size, dtype=dtype))


def load_gpu_backend(fake: types.ModuleType | None):
    """Execute minicnn/backend/gpu.py as a fresh module with `fake` as its `cupy` (None: CuPy not installed).

    The module is not registered in sys.modules, so the real `minicnn.backend.gpu` (on a GPU machine) is untouched.
    """
    import minicnn.backend  # noqa: F401 - gpu.py's relative imports need the package

    saved = sys.modules.get("cupy", ...)
    sys.modules["cupy"] = fake
    try:
        spec = importlib.util.spec_from_file_location("minicnn.backend._gpu_on_host", GPU_PY)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        if saved is ...:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
