"""minicnn: the CNNs of "Dive into Deep Learning" ch. 5.5-5.9, written from scratch to be read.

import minicnn
from minicnn import autograd, nn, init
net = nn.Sequential(); net.add(nn.Conv2D(6, kernel_size=5, activation='sigmoid'), ...)
net.initialize(init=init.Xavier())
"""

from __future__ import annotations

import os

# OpenBLAS's worker threads spin for 2^28 cycles (about 0.1 s) after every GEMM before they sleep. On two cores that
# spinning takes a core from the numba kernel that follows each GEMM (epilogues, transforms, pooling): a max pool
# right after a GEMM took twice as long as alone, and GoogLeNet's training step was 18-22 % longer
# (benchmarks/kernels.py, benchmarks/RESULTS.md, session 6). 2^14 ran GoogLeNet's step as fast as 2^4, 2^18 or 2^22,
# or faster. OpenBLAS reads the variable once, when it is loaded: this works when minicnn is imported before numpy
# (as `python -m minicnn` and the benchmarks do); otherwise export it before starting Python. A value already set
# is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")

import numpy as np  # noqa: E402  (after the variable: importing numpy loads OpenBLAS)

# Before any kernel module: importing kernel_cache points numba's cache at a directory of this numba version's own.
from . import kernel_cache  # noqa: F401

# isort: split
from . import autograd, init, loss, nn, ops, random
from .autograd import NDArray
from .device import Context, cpu, gpu, try_gpu
from .errors import DataError, DeviceError, ShapeError, UserError
from .ops import concat
from .optim import Trainer

__version__ = "0.1.0"


def array(source, ctx: Context | None = None, dtype=None) -> NDArray:
    """An NDArray holding a copy of `source` on device `ctx` (default cpu()).

    Like `mxnet.nd.array`: the dtype is float32 unless given, or unless `source` is an NDArray.
    """
    if isinstance(source, NDArray):
        dtype = dtype or source.dtype
        source = source.asnumpy()
    ctx = ctx or cpu()
    host = np.array(source.get() if hasattr(source, "get") else source, dtype=dtype or np.float32)
    return NDArray(ctx.backend.asarray(host))


def zeros(shape, ctx: Context | None = None, dtype="float32") -> NDArray:
    return NDArray((ctx or cpu()).backend.xp.zeros(shape, dtype=dtype))


def ones(shape, ctx: Context | None = None, dtype="float32") -> NDArray:
    return NDArray((ctx or cpu()).backend.xp.ones(shape, dtype=dtype))


__all__ = [
    "Context",
    "DataError",
    "DeviceError",
    "NDArray",
    "ShapeError",
    "Trainer",
    "UserError",
    "array",
    "autograd",
    "concat",
    "cpu",
    "gpu",
    "init",
    "loss",
    "nn",
    "ones",
    "ops",
    "random",
    "try_gpu",
    "zeros",
]
