"""What a training run keeps track of beyond the chapter's loop (`train.py`): the progress bar, the per-epoch
results, a NaN or infinite loss (`Diverged`), a request to stop (`Interrupted`) and the state a stopped run
continues from (`TrainState`), all driven by one `Run` object that `train_ch5` asks for its epochs and batches.

Sums of loss and correct predictions stay on the device and are read once per epoch: reading them per batch would
make the GPU wait for the host every step. The per-batch losses (one device scalar each) are kept the same way
and read in one transfer at the end of the epoch, so a run can show that its loss fell within an epoch.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backend, distributed, random


@dataclass
class EpochResult:
    epoch: int
    loss: float
    train_acc: float
    test_acc: float
    seconds: float
    images: int
    batch_losses: tuple = ()  # mean loss per sample of each batch, in training order

    def edge_losses(self, fraction: float = 0.1) -> tuple[float, float]:
        """Mean of `batch_losses` over the first and over the last `fraction` of the epoch's batches (at least one
        batch each): whether the loss fell within one epoch. (nan, nan) without batch losses."""
        if not self.batch_losses:
            return float("nan"), float("nan")
        k = max(1, int(len(self.batch_losses) * fraction))
        return sum(self.batch_losses[:k]) / k, sum(self.batch_losses[-k:]) / k

    @property
    def images_per_sec(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        return (
            f"epoch {self.epoch}, loss {self.loss:.4f}, train acc {self.train_acc:.3f}, "
            f"test acc {self.test_acc:.3f}, time {self.seconds:.1f} sec"
        )


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel (where progress shows as a widget, and stderr is no terminal)."""
    return "ipykernel" in sys.modules


class ProgressBar:
    """The epoch's progress as tqdm draws it: a widget in Jupyter, one stderr line in a terminal, with the images
    done, images/s and the time left. `total`: the epoch's images (or batches, for an iterable without a size)."""

    def __init__(self, total: int, label: str, enabled: bool, unit: str = "img"):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit, unit_scale=True, leave=False, mininterval=0.2)

    def update(self, done: int) -> None:
        """`done` more images (or batches) finished."""
        if self.bar is not None:
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def compiling_notice(stream=None, after: float = 1.0):
    """Say "compiling kernels (first run only)" on stderr if the block takes longer than `after` seconds: numba
    compiles each CPU kernel the first time it runs, then keeps it on disk."""
    stream = stream or sys.stderr
    if distributed.rank() != 0:  # one notice for all the processes of a data-parallel run
        yield
        return
    timer = threading.Timer(after, lambda: print("compiling kernels (first run only) ...", file=stream, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def compile_kernels(net, batch, ctx, params) -> None:
    """One forward and backward pass on two samples of `batch`, and an SGD update of nothing, so that numba compiles
    the kernels the network uses now, before the first epoch's clock starts (under `compiling_notice`). Nothing
    of the run changes: the random streams are put back, and the gradients are zeroed (the first step overwrites
    them); the update adds 0 to a scratch array. Only on the CPU: the GPU's kernels were compiled with the device."""
    from . import autograd
    from .autograd import NDArray
    from .fast import cpu_sgd, dispatch
    from .loss import SoftmaxCrossEntropyLoss

    if ctx.device_type != "cpu":
        return
    X, y = batch
    X = NDArray((X.data if isinstance(X, NDArray) else X)[:2])
    y = NDArray((y.data if isinstance(y, NDArray) else y)[:2])
    saved = random.get_state()
    with compiling_notice():
        with autograd.record():
            loss = SoftmaxCrossEntropyLoss()(net(X), y).sum()
        loss.backward()
        for dtype in {p.data().dtype for p in params}:
            scratch = np.zeros(2, dtype=dtype)
            if dispatch.sgd(scratch, scratch):
                cpu_sgd.axpy_(scratch, 0.0, scratch)
    for p in params:
        p.zero_grad()
    random.set_state(saved)


def check_data_parallel(train_iter, test_iter, trainer) -> None:
    """A data-parallel run (distributed.py) needs both halves: loaders that give each process its rows, and a
    Trainer that sums the gradients (kvstore='dist_sync'); one without the other trains wrongly without a word
    (each rank on its own rows, or N whole batches summed). ValueError saying which half is missing."""
    ranks = distributed.size()
    for name, loader in (("train_iter", train_iter), ("test_iter", test_iter)):
        shards = getattr(loader, "shard", (0, 1))[1]
        if shards > 1 and shards != ranks:
            raise ValueError(f"{name} is sharded over {shards} processes, but this run has {ranks}")
    sharded = getattr(train_iter, "shard", (0, 1))[1] > 1
    if sharded and not getattr(trainer, "distributed", False):
        raise ValueError(
            "the loaders give each process its rows of a batch, but the Trainer does not sum the gradients over "
            "the processes: create it with kvstore='dist_sync'"
        )
    if getattr(trainer, "distributed", False) and not sharded:
        raise ValueError(
            "the Trainer sums the gradients of the processes (kvstore='dist_sync'), but train_iter gives each of "
            "them whole batches: make the loaders with shard=(distributed.rank(), distributed.size())"
        )


def _host_floats(arrays: list) -> tuple[float, ...]:
    """Device scalars -> Python floats with one device-to-host transfer (not one per value)."""
    if not arrays:
        return ()
    be = backend.of(arrays[0])
    return tuple(float(v) for v in be.to_numpy(be.xp.stack(arrays)))


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the parameters are spoiled and training cannot go on."""

    def __init__(self, epoch: int, batch: int, value: float):
        self.epoch, self.batch, self.value = epoch, batch, value
        super().__init__(f"the loss became {value} at epoch {epoch}, batch {batch}")


class Interrupted(Exception):
    """`stop()` asked training to stop; raised at a step boundary with the `TrainState` that continues the run."""

    def __init__(self, state: TrainState):
        self.state = state
        super().__init__(f"training stopped after epoch {state.epoch}, batch {state.batch}")


def _scalar_to_json(v) -> dict:
    """A device or host scalar (or the starting Python 0) as JSON, keeping its dtype so a resumed sum goes on
    in exactly the arithmetic of the uninterrupted run (JSON's float text round-trips float64, and so float32)."""
    if isinstance(v, int):
        return {"value": v, "dtype": None}
    host = np.asarray(backend.of(v).to_numpy(v))
    return {"value": host.item(), "dtype": host.dtype.str}


def _scalar_from_json(d: dict, ctx):
    if d["dtype"] is None:
        return int(d["value"])
    return ctx.backend.asarray(np.asarray(d["value"], dtype=np.dtype(d["dtype"])))


@dataclass
class TrainState:
    """Where a training run stands: `batch` batches of epoch `epoch` are done (batch 0: it has not begun).

    With the parameters and the optimizer state, this is everything a continuation needs to compute exactly what
    the uninterrupted run would have computed: the shuffling generator's state at the start of the epoch (so the
    epoch's order is drawn again and its first `batch` batches skipped), minicnn's random state (dropout masks),
    the epoch's partial sums and per-batch losses (so its line and log come out the same), and the finished epochs.
    """

    epoch: int
    batch: int = 0
    loader: dict | None = None  # DataLoader.get_state() at the start of `epoch`
    random: dict | None = None  # minicnn.random.get_state() now
    loss_sum: object = 0  # sums over the epoch's batches so far (device scalars, read once per epoch)
    acc_sum: object = 0
    n: int = 0
    batch_l: list = field(default_factory=list)  # each batch's loss sum (device scalars) and size
    batch_n: list = field(default_factory=list)
    seconds: float = 0.0  # time already spent in this epoch
    results: list = field(default_factory=list)  # EpochResults of the finished epochs

    @classmethod
    def begin(cls, epoch: int, train_iter, results: list) -> TrainState:
        """The state before the first batch of `epoch` (captures the generators before the epoch draws from them)."""
        loader = train_iter.get_state() if hasattr(train_iter, "get_state") else None
        return cls(epoch, loader=loader, random=random.get_state(), results=list(results))

    def add(self, l, correct, size: int) -> None:
        """Count one finished batch: its loss sum `l` and number of correct predictions, device scalars both."""
        self.batch += 1
        self.loss_sum = self.loss_sum + l
        self.acc_sum = self.acc_sum + correct
        self.n += size
        self.batch_l.append(l)
        self.batch_n.append(size)

    def to_json(self) -> dict:
        sample = self.batch_l[0] if self.batch_l else 0  # the dtype of the batch losses
        return {
            "epoch": self.epoch, "batch": self.batch, "loader": self.loader, "random": self.random,
            "loss_sum": _scalar_to_json(self.loss_sum), "acc_sum": _scalar_to_json(self.acc_sum), "n": self.n,
            "batch_l": [_scalar_to_json(v)["value"] for v in self.batch_l],
            "batch_l_dtype": _scalar_to_json(sample)["dtype"], "batch_n": list(self.batch_n),
            "seconds": self.seconds, "results": [asdict(r) for r in self.results],
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict, ctx) -> TrainState:
        """The state `to_json` wrote, its scalars on ctx; KeyError/TypeError/ValueError when d is not one."""
        dtype = d["batch_l_dtype"]
        batch_l = [_scalar_from_json({"value": v, "dtype": dtype}, ctx) for v in d["batch_l"]]
        results = [EpochResult(**{**r, "batch_losses": tuple(r.get("batch_losses", ()))}) for r in d["results"]]
        state = cls(
            int(d["epoch"]), int(d["batch"]), d["loader"], d["random"],
            _scalar_from_json(d["loss_sum"], ctx), _scalar_from_json(d["acc_sum"], ctx), int(d["n"]),
            batch_l, [int(m) for m in d["batch_n"]], float(d["seconds"]), results,
        )  # fmt: skip
        if state.epoch < 1 or not 0 <= state.batch == len(state.batch_l) == len(state.batch_n):
            raise ValueError(f"inconsistent training position: epoch {state.epoch}, batch {state.batch}")
        return state


class _LossWatch:
    """Raises `Diverged` for the first batch whose loss is NaN or infinite.

    On the CPU the batch loss is a host scalar, so every batch is checked at once. On the GPU, looking at it would
    make the host wait for the device every step; the device keeps the number of the first bad batch (and its loss)
    instead, and the host reads them every `every` batches and at the end of the epoch. Training then stops up to
    that many batches late, but names the first bad batch, and saves nothing after it.
    """

    def __init__(self, epoch: int, every: int = 50, deferred: bool | None = None):
        self.epoch, self.every = epoch, every
        self.deferred = deferred  # None: deferred exactly when the losses live on a GPU
        self.first = self.value = None

    def add(self, i: int, l) -> None:
        xp = backend.of(l).xp
        if self.deferred is None:
            self.deferred = xp is not np
        if not self.deferred:
            if not np.isfinite(l):
                raise Diverged(self.epoch, i, float(l))
            return
        if self.first is None:
            self.first, self.value = xp.zeros((), dtype=np.int64), xp.zeros((), dtype=l.dtype)
        new = ~xp.isfinite(l) & (self.first == 0)
        self.first = xp.where(new, i, self.first)
        self.value = xp.where(new, l, self.value)
        if i % self.every == 0:
            self.check()

    def check(self) -> None:
        if self.first is not None and int(self.first):
            raise Diverged(self.epoch, int(self.first), float(self.value))


class Run:
    """The bookkeeping of one `train_ch5` call: which epochs and batches remain (a `state` continues a stopped run
    exactly), the device-side sums, the NaN watch, the progress bar and the stop requests.

    `stop()` is asked after every step and at the end of every epoch but the last; when it returns True, the run
    raises `Interrupted(state)` there. `on_state(state)` receives, after each epoch, the state that starts the next
    one (what a checkpoint saves).
    """

    def __init__(self, train_iter, num_epochs: int, state=None, stop=None, on_state=None, progress=None):
        self.train_iter, self.num_epochs, self.state = train_iter, num_epochs, state
        self.stop, self.on_state = stop, on_state
        self.progress = (sys.stderr.isatty() or in_jupyter()) if progress is None else progress
        self.results: list[EpochResult] = list(state.results) if state is not None else []

    def epochs(self):
        """The epoch numbers still to train, 1-based."""
        first = self.state.epoch if self.state is not None else 1
        return range(first, self.num_epochs + 1)

    def batches(self, epoch: int):
        """The epoch's (X, y) batches, from where a resumed state stopped; after each step the stop request."""
        if self.state is not None and epoch == self.state.epoch:  # continue the interrupted epoch
            self.cur = self.state
            if self.cur.loader is not None:
                self.train_iter.set_state(self.cur.loader)
            if self.cur.random is not None:
                random.set_state(self.cur.random)
            batches = self.train_iter.epoch(self.cur.batch) if self.cur.batch else iter(self.train_iter)
        else:
            self.cur = TrainState.begin(epoch, self.train_iter, self.results)
            batches = iter(self.train_iter)
        self.start = time.perf_counter() - self.cur.seconds
        images = getattr(self.train_iter, "num_samples", None)  # a DataLoader's; other iterables count batches
        total = images if images is not None else len(self.train_iter)
        self.bar = ProgressBar(total, f"epoch {epoch}", self.progress, "img" if images is not None else "batch")
        self.bar.update(sum(self.cur.batch_n) if images is not None else self.cur.batch)  # a resumed epoch's part
        self.watch = _LossWatch(epoch)
        for X, y in batches:
            yield X, y
            self.bar.update(self.cur.batch_n[-1] if images is not None else 1)
            if self.stop is not None and self.stop():
                self.bar.close()
                self.watch.check()  # never hand out a state whose parameters a NaN already spoiled
                self.cur.random, self.cur.seconds = random.get_state(), time.perf_counter() - self.start
                raise Interrupted(self.cur)
        self.bar.close()
        self.watch.check()

    def add(self, l, y_hat, y) -> None:
        """Count one step: its summed loss `l` (NaN or infinite: `Diverged`), predictions and labels (NDArrays).
        With a sharded loader (distributed.py) these are this rank's rows: the sums of all ranks are counted."""
        l, correct, size = l.data, (y_hat.data.argmax(axis=1) == y.data).sum(), y.size
        if getattr(self.train_iter, "shard", (0, 1))[1] > 1:
            l, correct = distributed.sum_over_ranks(l, correct)
            size = self.train_iter.global_rows(self.cur.batch)  # the rows of all ranks together
        self.watch.add(self.cur.batch + 1, l)
        self.cur.add(l, correct, size)

    def end_epoch(self, test_acc: float) -> EpochResult:
        """The finished epoch's result (its sums read from the device now); then `on_state` and the stop request."""
        run, epoch = self.cur, self.cur.epoch
        batch_losses = tuple(v / m for v, m in zip(_host_floats(run.batch_l), run.batch_n))
        n = max(run.n, 1)
        seconds = time.perf_counter() - self.start
        result = EpochResult(
            epoch, float(run.loss_sum) / n, float(run.acc_sum) / n, test_acc, seconds, run.n, batch_losses
        )
        self.results.append(result)
        return result

    def next_epoch(self) -> None:
        """After an epoch's line is out: hand the state that starts the next epoch to `on_state`, then ask `stop`."""
        epoch = self.cur.epoch
        if self.on_state is not None or self.stop is not None:
            following = TrainState.begin(epoch + 1, self.train_iter, self.results)
            if self.on_state is not None:
                self.on_state(following)
            if self.stop is not None and epoch < self.num_epochs and self.stop():
                raise Interrupted(following)
