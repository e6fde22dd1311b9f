"""`Trainer` with MXNet's SGD: `trainer.step(batch_size)` after `loss.backward()`.

With g = grad / batch_size (rescale_grad) + wd * w:
    momentum == 0:  w <- w - lr * g
    momentum  > 0:  v <- momentum * v - lr * g;  w <- w + v

`kvstore='dist_sync'` (Gluon's name): data-parallel training over MPI (distributed.py). The parameters start as
rank 0's, and `step(batch_size)` first sums every gradient over the ranks (`allreduce_grads`), then updates
(`update`). Pass the global batch size, the rows of all ranks together (MXNet scripts often pass each worker's
own batch, which here would make the step N times too large): every rank then takes the step one process would
take on the whole batch. Outside mpiexec it is the same as the default.
"""

from __future__ import annotations

import numpy as np

from . import distributed
from .fast import cpu_sgd, dispatch
from .nn.parameter import Parameter, ParameterDict

KVSTORES = ("device", "local", "dist_sync")


class Trainer:
    def __init__(
        self, params, optimizer: str = "sgd", optimizer_params: dict | None = None, kvstore: str | None = "device"
    ):
        if optimizer.lower() != "sgd":
            raise ValueError(f"Trainer: unknown optimizer {optimizer!r}; minicnn implements 'sgd'")
        opts = dict(optimizer_params or {})
        self.learning_rate = float(opts.pop("learning_rate", 0.01))
        self.momentum = float(opts.pop("momentum", 0.0))
        self.wd = float(opts.pop("wd", 0.0))
        if opts:
            raise ValueError(f"Trainer: unknown SGD options {sorted(opts)}; use learning_rate, momentum, wd")
        if isinstance(params, ParameterDict):
            params = list(params.values())
        self.params: list[Parameter] = list(params)
        self.states: dict[str, object] = {}  # momentum buffers by parameter name
        if kvstore is not None and kvstore not in KVSTORES:
            raise ValueError(
                f"Trainer: unknown kvstore {kvstore!r}; minicnn has 'device', 'local' or None (one process) and "
                "'dist_sync' (synchronous data-parallel training over MPI)"
            )
        self.distributed = kvstore == "dist_sync" and distributed.size() > 1
        self._shared: set[str] = set()  # parameters already made equal to rank 0's
        self._share_initialized()

    def _share_initialized(self) -> None:
        """Give every rank rank 0's values of the parameters initialised since the last call (deferred ones are
        drawn at the first forward pass; every rank draws the same values from the same seed, so their first
        gradients agree before these are sent)."""
        if not self.distributed:
            return
        ready = [p for p in self.params if p.initialized and p.name not in self._shared]
        distributed.broadcast([p.data().data for p in ready])
        self._shared.update(p.name for p in ready)

    def _trained(self) -> list[Parameter]:
        """The parameters step() updates: all but those with grad_req 'null' (frozen), as in Gluon."""
        return [p for p in self.params if p.grad_req != "null"]

    def set_learning_rate(self, lr: float) -> None:
        self.learning_rate = float(lr)

    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """One SGD update of every parameter, gradients divided by batch_size (with kvstore='dist_sync': the
        gradients summed over the ranks first, and batch_size the global batch's)."""
        self.allreduce_grads()
        self.update(batch_size, ignore_stale_grad)

    def allreduce_grads(self) -> None:
        """With kvstore='dist_sync': replace every gradient by its sum over the ranks; otherwise nothing."""
        if self.distributed:
            self._share_initialized()
            trained = self._trained()
            # A gradient counts as fresh where any rank's backward wrote it, so every rank decides alike in update();
            # a rank whose forward pass left a parameter out adds zeros for it, not its old gradient.
            fresh = np.array([p.data()._fresh_grad for p in trained], dtype=np.float64)
            for p, f in zip(trained, fresh):
                if not f:
                    p.grad().data[...] = 0
            distributed.allreduce([fresh])
            distributed.allreduce([p.grad().data for p in trained])
            for p, f in zip(trained, fresh):
                p.data()._fresh_grad = bool(f)

    def update(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """The SGD update of every parameter with the gradients as they are, divided by batch_size.

        As in Gluon, a parameter whose gradient no backward() has written since the last step is an error (it would
        take the old gradient again); with ignore_stale_grad=True it is left as it is, momentum and wd included."""
        if batch_size <= 0:
            raise ValueError(f"Trainer.step: batch_size must be positive, got {batch_size}")
        rescale = 1.0 / batch_size
        trained = self._trained()
        stale = [p.name for p in trained if not p.data()._fresh_grad]
        if stale and not ignore_stale_grad:
            raise UserWarning(
                f"Trainer.step: no backward() has given {', '.join(stale)} a gradient since the last step (a "
                "parameter the forward pass did not use?); call step(batch_size, ignore_stale_grad=True) to skip them"
            )
        for p in trained:
            var = p.data()
            if not var._fresh_grad:
                continue
            var._fresh_grad = False
            w, g = var.data, var.grad.data
            if not (self.wd or self.momentum):  # plain SGD, the chapter's case
                if dispatch.sgd(w, g):
                    cpu_sgd.axpy_(w, -self.learning_rate * rescale, g)  # the same update in one pass, no temporary
                else:
                    w -= (self.learning_rate * rescale) * g
                continue
            g = g * rescale + self.wd * w if self.wd else g * rescale
            if self.momentum:
                v = self.states.get(p.name)
                if v is None:
                    v = self.states[p.name] = var.xp.zeros_like(w)
                v *= self.momentum
                v -= self.learning_rate * g
                w += v
            else:
                w -= self.learning_rate * g

    def state_dict(self) -> dict:
        """Optimizer state as host arrays (for checkpoints)."""
        return {name: (v.get() if hasattr(v, "get") else v) for name, v in self.states.items()}

    def load_state_dict(self, states: dict) -> None:
        by_name = {p.name: p for p in self.params}
        self.states = {}
        for name, v in states.items():
            if name in by_name:
                self.states[name] = by_name[name].data().context.backend.asarray(v)
