"""Where one training step's time goes: `python -m minicnn profile lenet [--batch-size B] [--device D]`.

For every top-level layer: forward time, backward time, forward FLOPs and the rate they run at, for one training
step (forward, loss, backward, SGD update) on random images of the network's input size. One warm-up step runs
first (it pays numba's or NVRTC's compilation and the memory allocator's growth), then the median of `steps` steps
is shown. FLOPs are the direct convolution's (summary.py) whatever algorithm ran, so a 3x3 layer on the Winograd
path (ops/conv.py: 2.25x fewer multiply-adds) shows an effective rate, which can exceed the BLAS GEMM's.

How the backward pass is split by layer: each layer runs on a detached copy of its input (a new leaf with
`attach_grad()`), which cuts the graph at every layer boundary. Backward then runs piece by piece from the loss
down, each layer's input gradient becoming the output gradient of the layer below. By the chain rule the gradients
are those of one backward through the whole graph; only now each piece can be timed. On the GPU every clock
reading waits for the device first (`synchronize`): kernel launches return at once, so without it the clock would
measure the launches, not the work.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from . import autograd, nn
from .autograd import NDArray
from .loss import SoftmaxCrossEntropyLoss
from .summary import leaf_flops


@dataclass
class LayerTime:
    name: str
    shape: tuple  # output shape
    forward: float  # seconds
    backward: float
    flops: int  # forward FLOPs (a multiply-add counts 2, see summary.py)


@dataclass
class StepProfile:
    layers: list[LayerTime]  # the network's top-level layers, then the loss
    update: float  # seconds of trainer.step

    @property
    def total(self) -> float:
        return sum(r.forward + r.backward for r in self.layers) + self.update


class _FlopCounter:
    """Adds up the FLOPs of the leaf layers that run while `current` names a top-level layer."""

    def __init__(self):
        self.current = None
        self.flops: dict[str, int] = {}

    def after(self, block, inputs, output, **note) -> None:
        if self.current is not None and not block.children():
            flops = leaf_flops(block, inputs[0].shape, output.shape)
            self.flops[self.current] = self.flops.get(self.current, 0) + flops


def _detached(x: NDArray) -> NDArray:
    """x as a new leaf: the graph ends here, and backward leaves the gradient with respect to x in its .grad."""
    leaf = NDArray(x.data)
    leaf.attach_grad()
    return leaf


def training_step(net, X: NDArray, y: NDArray, trainer, sync) -> StepProfile:
    """One training step of `net` on (X, y), timed layer by layer (forward, then backward from the loss down)."""
    loss = SoftmaxCrossEntropyLoss()
    counter = _FlopCounter()
    layers = list(net) if isinstance(net, nn.Sequential) else [net]
    names, inputs, outputs, fwd = [], [], [], []
    x = X
    with autograd.record(), nn.observe(counter):
        for k, layer in enumerate(layers):
            x = x if k == 0 else _detached(x)  # the images need no gradient, as in real training
            counter.current = layer.name
            sync()
            t = time.perf_counter()
            out = layer(x)
            sync()
            fwd.append(time.perf_counter() - t)
            names.append(layer.name)
            inputs.append(x)
            outputs.append(out)
            x = out
        counter.current = None
        z = _detached(x)
        sync()
        t = time.perf_counter()
        l = loss(z, y).sum()
        sync()
        loss_fwd = time.perf_counter() - t

    def timed_backward(out: NDArray, grad: NDArray | None) -> float:
        sync()
        t = time.perf_counter()
        out.backward(grad)
        sync()
        return time.perf_counter() - t

    loss_bwd = timed_backward(l, None)
    bwd = [0.0] * len(layers)
    grad = z.grad
    for k in reversed(range(len(layers))):
        if outputs[k].creator is not None:  # else a parameterless first layer: nothing of it needs a gradient
            bwd[k] = timed_backward(outputs[k], grad)
        grad = inputs[k].grad if k > 0 else None
    sync()
    t = time.perf_counter()
    trainer.step(X.shape[0])
    sync()
    update = time.perf_counter() - t
    rows = [
        LayerTime(names[k], outputs[k].shape, fwd[k], bwd[k], counter.flops.get(names[k], 0))
        for k in range(len(layers))
    ]
    rows.append(LayerTime("loss", l.shape if l.ndim else (), loss_fwd, loss_bwd, 0))
    return StepProfile(rows, update)


def profile(net, X: NDArray, y: NDArray, trainer, sync, steps: int = 3) -> StepProfile:
    """The per-layer median over `steps` timed steps, after one warm-up step."""
    training_step(net, X, y, trainer, sync)
    runs = [training_step(net, X, y, trainer, sync) for _ in range(steps)]
    rows = []
    for k, r in enumerate(runs[0].layers):
        rows.append(
            LayerTime(
                r.name, r.shape,
                statistics.median(run.layers[k].forward for run in runs),
                statistics.median(run.layers[k].backward for run in runs),
                r.flops,
            )
        )  # fmt: skip
    return StepProfile(rows, statistics.median(run.update for run in runs))


def format_profile(p: StepProfile, batch_size: int) -> str:
    total = p.total
    lines = [
        f"{'layer':14} {'output shape':22} {'forward ms':>11} {'backward ms':>12} {'share':>7} "
        f"{'forward FLOPs':>16} {'GFLOP/s':>9}"
    ]
    for r in p.layers:
        rate = f"{r.flops / r.forward / 1e9:9.2f}" if r.flops and r.forward > 0 else f"{'':9}"
        share = (r.forward + r.backward) / total if total > 0 else float("nan")
        flops = f"{r.flops:16,d}" if r.flops else f"{'':16}"
        times = f"{r.forward * 1e3:11.3f} {r.backward * 1e3:12.3f}"
        lines.append(f"{r.name:14} {str(r.shape):22} {times} {share:7.1%} {flops} {rate}")
    upd = p.update / total if total > 0 else float("nan")
    lines.append(f"{'sgd update':14} {'':22} {p.update * 1e3:11.3f} {'':12} {upd:7.1%}")
    fwd = sum(r.forward for r in p.layers)
    bwd = sum(r.backward for r in p.layers)
    flops = sum(r.flops for r in p.layers)
    lines.append(f"{'total':14} {'':22} {fwd * 1e3:11.3f} {bwd * 1e3:12.3f} {'100.0%':>7} {flops:16,d}")
    speed = batch_size / total if total > 0 else float("nan")
    ratio = bwd / fwd if fwd > 0 else float("nan")
    lines.append(
        f"one step: {total * 1e3:.2f} ms ({speed:,.0f} images/s); backward takes {ratio:.1f}x the forward time "
        "(conv and dense layers do about twice their forward FLOPs backward: data and weight gradients)"
    )
    lines.append(
        "FLOPs are the direct convolution's: for 3x3 layers on the Winograd path (2.25x fewer multiply-adds) "
        "GFLOP/s is an effective rate"
    )
    return "\n".join(lines)


def random_batch(batch_size: int, side: int, dtype: str, ctx, seed: int = 0) -> tuple[NDArray, NDArray]:
    """Images uniform in [0, 1) and labels uniform over the ten classes, on ctx (time does not depend on values)."""
    rng = np.random.default_rng(seed)
    X = rng.random((batch_size, 1, side, side)).astype(dtype)
    y = rng.integers(0, 10, batch_size).astype(np.int32)
    return NDArray(ctx.backend.asarray(X)), NDArray(ctx.backend.asarray(y))
