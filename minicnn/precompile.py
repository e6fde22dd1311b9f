"""Compile the CPU kernels ahead of time: `python -m minicnn compile` (`./dev setup` runs it).

numba compiles a kernel the first time it runs, for the dtypes and layouts it meets, and keeps the machine code on
disk (minicnn/numba_setup.py); every later process loads it in milliseconds. This runs a training step of each of
the five networks on two small images, in fast and textbook mode, for each dtype asked, and the kernels no network
uses (average pooling, the direct convolution), so that neither a first training run nor the tests pay for the
compilation.
"""

from __future__ import annotations

import time

import numpy as np

from . import autograd, config, init, models, random
from .autograd import NDArray
from .backend import cpu
from .fast import cpu_direct
from .loss import SoftmaxCrossEntropyLoss
from .optim import Trainer

# the networks at small inputs that still take every path their chapter sizes take (VGG's plane layers need
# 56x56 outputs, AlexNet's and NiN's first windows 11x11 with stride 4)
CASES = {"lenet": ({}, 28), "alexnet": ({}, 224), "vgg11": ({"width_divisor": 16}, 224), "nin": ({}, 224)}
CASES["googlenet"] = ({}, 96)


def training_step(name: str, dtype: str) -> None:
    """Two training steps of network `name` on two random images of its input size (the first draws the deferred
    weights, the second runs as every later step does), and an SGD update."""
    options, side = CASES[name]
    net = models.get(name).build(classes=10, **options)
    for p in net.collect_params().values():
        p.dtype = np.dtype(dtype)
    net.initialize(init=init.Xavier())
    rng = np.random.default_rng(0)
    x = NDArray(rng.random((2, 1, side, side)).astype(dtype))
    y = NDArray(np.array([1, 7], dtype=dtype))
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
    for _ in range(2):
        with autograd.record():
            loss = SoftmaxCrossEntropyLoss()(net(x), y).sum()
        loss.backward()
        trainer.step(2)


def other_kernels(dtype: str) -> None:
    """The kernels no network runs: average pooling and the direct convolution (its rule takes no chapter layer)."""
    x = np.ones((2, 1, 8, 8), dtype=dtype)
    y = cpu.avg_pool_forward(x, (2, 2), (2, 2), (0, 0))
    cpu.avg_pool_backward(y, x.shape, (2, 2), (2, 2), (0, 0))
    w, b = np.ones((3, 1, 3, 3), dtype=dtype), np.zeros(3, dtype=dtype)
    out = cpu_direct.forward(x, w, b, "relu", (2, 1), (1, 1))
    cpu_direct.weight_grad(x, out, (3, 3), (2, 1), (1, 1))
    cpu_direct.input_grad(out, w, x.shape, (2, 1), (1, 1))


def compile_all(dtypes=("float32", "float64"), log=print) -> float:
    """Run every kernel once for each dtype, in both modes; the seconds it took (mostly numba compiling)."""
    start = time.perf_counter()
    saved = random.get_state()
    for dtype in dtypes:
        for textbook in (False, True):
            with config.textbook(textbook):
                for name in CASES:
                    training_step(name, dtype)
                other_kernels(dtype)
            log(f"compiled the {'textbook' if textbook else 'fast'} kernels for {dtype}")
    random.set_state(saved)
    return time.perf_counter() - start
