"""Mini-batches over an in-memory image array, Gluon `DataLoader`-style.

Each batch is gathered from the source with the batch's indices and then transformed (resize, to float),
so memory holds one transformed batch at a time, never a resized or shuffled copy of the whole dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from minicnn import random
from minicnn.data.transforms import array_module, to_tensor
from minicnn.errors import ShapeError


def rows_of_rank(n: int, r: int, ranks: int) -> tuple[int, int]:
    """The rows [n*r//ranks, n*(r+1)//ranks) of a batch of n that rank r of `ranks` data-parallel processes takes:
    in rank order, sizes differing by at most 1 (distributed.py)."""
    return n * r // ranks, n * (r + 1) // ranks


class DataLoader:
    """Iterate `(X, y)` batches: X = transform(images[batch]) (default `to_tensor`: `(B, 1, H, W)`), y labels.

    images: uint8 `(N, H, W)`, NumPy or CuPy; labels: integers `(N,)`, moved to the same array module.
    Only the first `limit` samples are used when `limit` is given. With `shuffle`, every `iter()` draws a
    new permutation from one `np.random.default_rng(seed)`, so the same seed gives the same epoch orders.
    The last, smaller batch is kept: `len(loader) = ceil(num_samples / batch_size)`.

    `shard=(r, n)`: data-parallel training over n processes (distributed.py), this one rank r. Every process draws
    the same orders and walks through the same global batches, but gathers and transforms only its rows of each:
    rows b*r//n up to b*(r+1)//n of a batch of b (`num_samples` and `len` still count the global batches).
    """

    def __init__(
        self,
        images: Any,
        labels: Any,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        transform: Callable[[Any], Any] | None = None,
        limit: int | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if images.ndim != 3:
            raise ShapeError(f"DataLoader expects images of shape (N, H, W), got {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ShapeError(
                f"DataLoader expects one label per image: images {tuple(images.shape)}, labels {tuple(labels.shape)}"
            )
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
        if not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (rank, ranks) with 0 <= rank < ranks, got {shard!r}")
        if shard[1] > 1 and shuffle and seed is None:
            raise ValueError(
                "a shuffling DataLoader with shard=(rank, ranks) needs a seed that every rank shares, or the ranks "
                "draw different orders: pass seed=minicnn.distributed.shared_seed()"
            )
        self.xp = array_module(images)
        self.images = images
        self.labels = self.xp.asarray(labels)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.transform = transform if transform is not None else to_tensor
        self.num_samples = images.shape[0] if limit is None else min(int(limit), images.shape[0])
        self._rng = np.random.default_rng(seed)
        self.shard = (int(shard[0]), int(shard[1]))

    def __len__(self) -> int:
        return (self.num_samples + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self.epoch()

    def epoch(self, start_batch: int = 0) -> Iterator[tuple[Any, Any]]:
        """One epoch's batches, beginning at batch `start_batch` (0-based); the order is drawn as `iter()` draws it.

        With `set_state(state)` of the epoch's start, `epoch(k)` gives exactly the batches k, k+1, ... that the
        interrupted epoch would have given (how `train --resume` continues in the middle of an epoch).
        """
        # Draw the epoch's order now (not lazily at the first next()), so each call is one epoch.
        order = self._rng.permutation(self.num_samples) if self.shuffle else None
        return self._batches(order, start_batch * self.batch_size)

    def global_rows(self, k: int) -> int:
        """The rows of the global batch k (0-based) of an epoch, all ranks' together: the batch size, or fewer for
        the last batch."""
        return min(self.batch_size, self.num_samples - k * self.batch_size)

    def get_state(self) -> dict:
        """The shuffling generator's state (JSON-serialisable), for checkpoints."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Restore a state from `get_state()`: the next epochs are drawn in the same orders as they were then."""
        self._rng.bit_generator.state = state

    def _batches(self, order: np.ndarray | None, first: int = 0) -> Iterator[tuple[Any, Any]]:
        r, ranks = self.shard
        try:
            for start in range(first, self.num_samples, self.batch_size):
                b = min(self.batch_size, self.num_samples - start)  # the global batch's rows
                lo, hi = rows_of_rank(b, r, ranks)  # this process's rows of it: all of them in one process
                if order is None:
                    index: Any = slice(start + lo, start + hi)  # a view, no copy
                else:
                    rows = order[start + lo : start + hi]
                    index = rows if self.xp is np else self.xp.asarray(rows)
                if ranks > 1:  # dropout draws the masks of the whole global batch and keeps these rows
                    random.set_batch_rows((lo, hi, b))
                yield self.transform(self.images[index]), self.labels[index]
                if ranks > 1:  # only while the batch is in use
                    random.set_batch_rows(None)
        finally:
            if ranks > 1:
                random.set_batch_rows(None)

    def __repr__(self) -> str:
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, batches={len(self)}" + (f", shard={self.shard})" if self.shard[1] > 1 else ")")
        )
