"""The book's helper package (`d2lzh`) as the chapter's cells call it: `from minicnn import d2l` in place of
`import d2lzh as d2l`.

    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, resize=224)
    ctx = d2l.try_gpu()
    d2l.train_ch5(net, train_iter, test_iter, batch_size, trainer, ctx, num_epochs)
"""

from __future__ import annotations

from .autograd import NDArray
from .data import iterators
from .device import try_gpu
from .train import evaluate_accuracy, train_ch5

__all__ = ["evaluate_accuracy", "load_data_fashion_mnist", "train_ch5", "try_gpu"]


def load_data_fashion_mnist(batch_size: int, resize=None, **options):
    """The chapter's (train_iter, test_iter), whose batches (X, y) are NDArrays as Gluon's DataLoader gives them,
    so the chapter's own `X.as_in_context(ctx)` and `y.astype('float32')` run (minicnn.data's loaders give the
    device's raw arrays). Options and batches as `minicnn.data.load_data_fashion_mnist`."""
    train_iter, test_iter = iterators.load_data_fashion_mnist(batch_size, resize, **options)
    return NDArrayBatches(train_iter), NDArrayBatches(test_iter)


class NDArrayBatches:
    """A minicnn.data.DataLoader whose batches come as NDArrays; everything else is the loader's."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return self.epoch()

    def epoch(self, start_batch: int = 0):
        return ((NDArray(X), NDArray(y)) for X, y in self.loader.epoch(start_batch))

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        if name == "loader":  # not set yet (copy, pickle): no endless lookup
            raise AttributeError(name)
        return getattr(self.loader, name)
