"""The book's helper package (`d2lzh`) as the chapter's cells call it: `from minicnn import d2l` in place of
`import d2lzh as d2l`.

    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, resize=224)
    ctx = d2l.try_gpu()
    d2l.train_ch5(net, train_iter, test_iter, batch_size, trainer, ctx, num_epochs)
"""

from __future__ import annotations

from .data.iterators import load_data_fashion_mnist
from .device import try_gpu
from .train import evaluate_accuracy, train_ch5

__all__ = ["evaluate_accuracy", "load_data_fashion_mnist", "train_ch5", "try_gpu"]
