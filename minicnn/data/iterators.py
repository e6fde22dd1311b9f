"""The chapter's data helper: `load_data_fashion_mnist(batch_size, resize=None)` -> (train_iter, test_iter).

    train_iter, test_iter = load_data_fashion_mnist(128, resize=224)

Both iterate over (X, y) batches: X float32 (B, 1, H, W) in [0, 1] (each uint8 batch resized first, then / 255, as
the chapter's `transforms.Resize` and `ToTensor` do), y the labels. The training batches come in a new random order
every epoch (`seed` fixes it), the test batches in file order. The images live on `ctx` (the CPU by default) for
the whole run; only one transformed batch exists at a time.
"""

from __future__ import annotations

from minicnn.data.fashion_mnist import downloads_allowed, load_fashion_mnist
from minicnn.data.loader import DataLoader
from minicnn.data.transforms import Compose, Resize, ToTensor


def loaders(data, batch_size: int, resize=None, ctx=None, seed=None, limit=None, dtype="float32", shard=(0, 1)):
    """(train_iter, test_iter) over Fashion-MNIST arrays already read, `data` = (train_x, train_y, test_x, test_y),
    moved to `ctx` once; resizing happens per batch. `limit`: only the first N images of each set. `shard`:
    (rank, ranks) of a data-parallel run, whose loaders give each process its rows of every batch."""
    from minicnn.device import cpu

    train_x, train_y, test_x, test_y = data
    be = (ctx or cpu()).backend
    transform = Compose(([Resize(resize)] if resize else []) + [ToTensor(dtype)])
    common = {"transform": transform, "limit": limit, "shard": shard}
    train_iter = DataLoader(be.asarray(train_x), be.asarray(train_y), batch_size, shuffle=True, seed=seed, **common)
    test_iter = DataLoader(be.asarray(test_x), be.asarray(test_y), batch_size, **common)
    return train_iter, test_iter


def load_data_fashion_mnist(
    batch_size: int, resize=None, *, data_dir=None, ctx=None, seed=None, limit=None, dtype="float32", shard=(0, 1)
):
    """The chapter's `d2l.load_data_fashion_mnist`: (train_iter, test_iter) of Fashion-MNIST in batches of
    `batch_size`, images resized to `resize` (an int side or, as in Gluon, (width, height); None keeps 28x28).
    The files are found as docs/data.md says (`data_dir` or $MINICNN_DATA, else the default places; downloaded
    where allowed)."""
    data = load_fashion_mnist(data_dir, download=downloads_allowed())
    return loaders(data, batch_size, resize, ctx, seed, limit, dtype, shard)
