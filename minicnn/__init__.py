"""minicnn: the CNNs of "Dive into Deep Learning" ch. 5.5-5.9, written from scratch to be read.

import minicnn
from minicnn import autograd, nn, init
net = nn.Sequential(); net.add(nn.Conv2D(6, kernel_size=5, activation='sigmoid'), ...)
net.initialize(init=init.Xavier())
"""

from __future__ import annotations

from .fast import tuning

tuning.apply()  # before NumPy is loaded, where it can be: see fast/tuning.py (MINICNN_TUNING=0 turns it off)

import numpy as np  # noqa: E402, F401  (loaded here, after the tuning above)

# Before any kernel module: numba_setup sets how numba compiles the kernels and where it keeps them.
from . import numba_setup  # noqa: E402, F401

# isort: split
from . import autograd, config, init, loss, nn, ops, random  # noqa: E402
from .autograd import NDArray  # noqa: E402
from .device import Context, cpu, gpu, try_gpu  # noqa: E402
from .errors import DataError, DeviceError, ShapeError, UserError  # noqa: E402
from .ops import concat  # noqa: E402
from .optim import Trainer  # noqa: E402

# isort: split
from . import gluon, nd  # noqa: E402
from .nd import array, ones, zeros  # noqa: E402  (mc.array is mc.nd.array)

__version__ = "0.1.0"

_LAZY = ("checkpoint", "d2l", "data", "models", "train")  # loaded at first use: `mc.d2l` after `import minicnn as mc`


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")


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
