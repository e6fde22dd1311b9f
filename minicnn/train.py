"""The chapter's training loop, `train_ch5`, and `evaluate_accuracy`.

Per batch: forward under `autograd.record()`, the loss summed over the batch, `backward()`, then
`trainer.step(batch_size)` with the nominal batch size (so the last, smaller batch is divided by it too, as in the
chapter). What a run keeps track of besides (progress bar, NaN check, Ctrl-C, resuming) is in `train_state.py`.
The same loop trains data-parallel over MPI (distributed.py) when the loaders are sharded and the trainer has
kvstore='dist_sync': it then sees only this process's rows of each batch, and `batch_size` stays the global one.
"""

from __future__ import annotations

import numpy as np

from . import autograd, distributed
from .autograd import NDArray
from .loss import SoftmaxCrossEntropyLoss
from .train_state import EpochResult, Run, TrainState, check_data_parallel, compile_kernels


def _on(X, y, ctx):
    """A batch as NDArrays on ctx (already there when the dataset was moved to the device once)."""
    X = X if isinstance(X, NDArray) else NDArray(X)
    y = y if isinstance(y, NDArray) else NDArray(y)
    return X.as_in_context(ctx), y.as_in_context(ctx)


def evaluate_accuracy(data_iter, net, ctx) -> float:
    """Fraction of correct predictions, computed in prediction mode (dropout off) without recording a graph."""
    acc_sum, n = 0, 0
    with autograd.pause(train_mode=False):
        for X, y in data_iter:
            X, y = _on(X, y, ctx)
            acc_sum = acc_sum + (net(X).data.argmax(axis=1) == y.data).sum()
            n += y.size
    if getattr(data_iter, "shard", (0, 1))[1] > 1:  # each rank saw its rows of every batch (distributed.py)
        acc_sum, n = distributed.sum_over_ranks(acc_sum, n)
    return float(acc_sum) / max(int(n), 1)


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
    *,
    state: TrainState | None = None,
    stop=None,
    on_state=None,
) -> list[EpochResult]:
    """Train `net` and print one line per epoch, like the chapter's `train_ch5`; returns the per-epoch results.

    `progress=None` shows the bar when stderr is a terminal; `on_epoch(result)` is called after each epoch. Beyond
    the chapter (`train_state.Run`): `state` continues a stopped run exactly, `stop()` asks to stop after a step
    (`Interrupted`), `on_state(state)` receives what a checkpoint saves, and a NaN loss raises `Diverged`.
    """
    check_data_parallel(train_iter, test_iter, trainer)  # sharded loaders go with kvstore='dist_sync' (distributed.py)
    loss = SoftmaxCrossEntropyLoss()
    log(f"training on {ctx}")
    run = Run(train_iter, num_epochs, state, stop, on_state, progress)
    first = next(iter(test_iter), None)
    if first is not None:  # numba compiles the network's kernels here, not inside the first epoch's time
        compile_kernels(net, _on(*first, ctx), ctx, net.collect_params().values())
    with np.errstate(over="ignore", invalid="ignore"):  # a NaN loss is reported once, by Run.add
        for epoch in run.epochs():
            for X, y in run.batches(epoch):
                X, y = _on(X, y, ctx)
                with autograd.record():
                    y_hat = net(X)
                    l = loss(y_hat, y).sum()
                l.backward()
                trainer.step(batch_size)
                run.add(l, y_hat, y)  # the sums of loss and accuracy stay on the device until the epoch ends
            result = run.end_epoch(evaluate_accuracy(test_iter, net, ctx))
            log(result.line())
            if on_epoch is not None:
                on_epoch(result)
            run.next_epoch()
    return run.results
