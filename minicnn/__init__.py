"""minicnn: the CNNs of "Dive into Deep Learning" ch. 5.5-5.9, written from scratch to be read.

import minicnn
from minicnn import autograd, nn, init
net = nn.Sequential(); net.add(nn.Conv2D(6, kernel_size=5, activation='sigmoid'), ...)
net.initialize(init=init.Xavier())
"""

from __future__ import annotations

from .fast import tuning

tuning.apply()  # before NumPy is loaded, where it can be: see fast/tuning.py (MINICNN_TUNING=0 turns it off)

import numpy as np  # noqa: E402

# Before any kernel module: numba_setup sets how numba compiles the kernels and where it keeps them.
from . import numba_setup  # noqa: E402, F401

# isort: split
from . import autograd, config, init, loss, nn, ops, random  # noqa: E402
from .autograd import NDArray  # noqa: E402
from .device import Context, cpu, gpu, try_gpu  # noqa: E402
from .errors import DataError, DeviceError, ShapeError, UserError  # noqa: E402
from .ops import concat  # noqa: E402
from .optim import Trainer  # noqa: E402

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


# isort: split
from . import gluon, nd  # noqa: E402  (last: nd's functions are the ones above, `mc.nd.array` is `mc.array`)

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
    "config",
    "cpu",
    "gluon",
    "gpu",
    "init",
    "loss",
    "nd",
    "nn",
    "ones",
    "ops",
    "random",
    "try_gpu",
    "zeros",
]
