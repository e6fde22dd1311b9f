"""The chapter's training loop (`train_ch5`) and `evaluate_accuracy`.

Per batch: forward under `autograd.record()`, loss summed over the batch, `backward()`, then
`trainer.step(batch_size)` with the nominal batch size (so the last, smaller batch is divided by it too, as in the
chapter). Sums of loss and correct predictions stay on the device and are read once per epoch: reading them per
batch would make the GPU wait for the host every step.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from . import autograd
from .autograd import NDArray
from .loss import SoftmaxCrossEntropyLoss


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    seconds: float
    images: int

    @property
    def images_per_sec(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        return (
            f"epoch {self.epoch}, loss {self.loss:.4f}, train acc {self.train_acc:.3f}, "
            f"test acc {self.test_acc:.3f}, time {self.seconds:.1f} sec"
        )


class ProgressBar:
    """`[#####-----] 120/235 batches  4.1 s` on one stderr line, redrawn at most ~10 times a second."""

    def __init__(self, total: int, label: str, enabled: bool, stream=None, width: int = 30):
        self.total, self.label, self.enabled, self.width = total, label, enabled, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width * done // max(self.total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} batches  {now - self.start:.1f} s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (self.width + len(self.label) + 40) + "\r")
            self.stream.flush()


def _as_batch(X, y, ctx):
    """Raw loader arrays -> NDArrays on ctx (already there when the dataset was moved to the device once)."""
    X = X if isinstance(X, NDArray) else NDArray(X)
    y = y if isinstance(y, NDArray) else NDArray(y)
    return X.as_in_context(ctx), y.as_in_context(ctx)


def evaluate_accuracy(data_iter, net, ctx) -> float:
    """Fraction of correct predictions, computed in prediction mode (dropout off) without recording a graph."""
    acc_sum, n = 0, 0
    with autograd.pause(train_mode=False):
        for X, y in data_iter:
            X, y = _as_batch(X, y, ctx)
            acc_sum = acc_sum + (net(X).data.argmax(axis=1) == y.data).sum()
            n += y.size
    return float(acc_sum) / max(n, 1)


def train_ch5(
    net,
    train_iter,
    test_iter,
    batch_size: int,
    trainer,
    ctx,
    num_epochs: int,
    progress: bool | None = None,
    log=print,
    on_epoch=None,
) -> list[EpochResult]:
    """Train `net` and print one line per epoch, like the chapter's `train_ch5`; returns the per-epoch results.

    `progress=None` shows the bar when stderr is a terminal. `on_epoch(result)` is called after each epoch.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    loss = SoftmaxCrossEntropyLoss()
    log(f"training on {ctx}")
    results = []
    for epoch in range(1, num_epochs + 1):
        train_l_sum, train_acc_sum, n = 0, 0, 0
        start = time.perf_counter()
        bar = ProgressBar(len(train_iter), f"epoch {epoch}", progress)
        for i, (X, y) in enumerate(train_iter, 1):
            X, y = _as_batch(X, y, ctx)
            with autograd.record():
                y_hat = net(X)
                l = loss(y_hat, y).sum()
            l.backward()
            trainer.step(batch_size)
            train_l_sum = train_l_sum + l.data
            train_acc_sum = train_acc_sum + (y_hat.data.argmax(axis=1) == y.data).sum()
            n += y.size
            bar.update(i)
        bar.close()
        test_acc = evaluate_accuracy(test_iter, net, ctx)
        result = EpochResult(
            epoch, float(train_l_sum) / n, float(train_acc_sum) / n, test_acc, time.perf_counter() - start, n
        )
        log(result.line())
        results.append(result)
        if on_epoch is not None:
            on_epoch(result)
    return results
