"""Gluon's `gluon.data` as the chapter's section 5.6 calls it: datasets, per-sample transforms, `DataLoader`.

    from minicnn.gluon import data as gdata
    transformer = gdata.vision.transforms.Compose([gdata.vision.transforms.Resize(224),
                                                   gdata.vision.transforms.ToTensor()])
    mnist_train = gdata.vision.FashionMNIST(root=root, train=True)
    train_iter = gdata.DataLoader(mnist_train.transform_first(transformer), batch_size, shuffle=True)

As in Gluon, a dataset's items are samples: `mnist_train[i]` is (image (28, 28, 1) uint8, label), and the
transforms take one image (H, W, C) (or a batch (N, H, W, C)). A DataLoader over Fashion-MNIST with these
transforms does not run them sample by sample: it hands the whole batch to `minicnn.data`'s batch transforms, the
same arithmetic (bit for bit, `tests/test_gluon_data.py`), and gives NDArray batches: X (B, C, H, W), y (B,).
Other datasets are gathered sample by sample and stacked. `num_workers` is taken and ignored: batches are made in
this process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import random
from .autograd import NDArray
from .data import loader, transforms
from .data.fashion_mnist import downloads_allowed, load_fashion_mnist


def _host(x) -> Any:
    """The raw array of an NDArray (a NumPy array stays as it is)."""
    return x.data if isinstance(x, NDArray) else np.asarray(x)


# ---- transforms: one image (H, W, C) or a batch (N, H, W, C), as Gluon's --------------------------------------
class Resize:
    """Bilinear resize of uint8 images (H, W, C) or (N, H, W, C) to `size`: an int side or (width, height)."""

    def __init__(self, size: int | Sequence[int], keep_ratio: bool = False, interpolation: int = 1):
        if keep_ratio or interpolation != 1:
            raise ValueError("Resize: minicnn resizes bilinearly to the given size (keep_ratio=False, interpolation=1)")
        self.batch_transform = transforms.Resize(size)  # (N, H, W) -> (N, h, w)

    def __call__(self, x):
        a = _host(x)
        if a.ndim not in (3, 4):
            raise ValueError(f"Resize expects an image (H, W, C) or a batch (N, H, W, C), got shape {a.shape}")
        batch = a[None] if a.ndim == 3 else a
        n, c = batch.shape[0], batch.shape[-1]
        planes = np.moveaxis(batch, -1, 1).reshape(n * c, *batch.shape[1:3])  # (N*C, H, W)
        out = self.batch_transform(np.ascontiguousarray(planes))
        out = np.moveaxis(out.reshape(n, c, *out.shape[1:]), 1, -1)
        return NDArray(np.ascontiguousarray(out[0] if a.ndim == 3 else out))

    def on_planes(self, images):
        """The same on a batch of one-channel images (N, H, W), as minicnn.data's loader holds them."""
        return self.batch_transform(images)


class ToTensor:
    """uint8 (H, W, C) -> float32 (C, H, W) in [0, 1] (x / 255); a batch (N, H, W, C) -> (N, C, H, W)."""

    def __call__(self, x):
        a = _host(x)
        if a.ndim not in (3, 4):
            raise ValueError(f"ToTensor expects an image (H, W, C) or a batch (N, H, W, C), got shape {a.shape}")
        out = a.astype(np.float32)
        out /= np.float32(255)
        return NDArray(np.ascontiguousarray(np.moveaxis(out, -1, -3)))

    def on_planes(self, images):
        return transforms.to_tensor(images)


class Compose:
    """The transforms in order."""

    def __init__(self, steps: Sequence[Callable]):
        self.steps = list(steps)

    def __call__(self, x):
        for step in self.steps:
            x = step(x)
        return x

    def on_planes(self, images):
        for step in self.steps:
            images = step.on_planes(images)
        return images


# ---- datasets --------------------------------------------------------------------------------------------------
class Dataset:
    """Samples by index; `transform_first(fn)` applies fn to each sample's first element (the image)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i):
        raise NotImplementedError

    def transform_first(self, fn: Callable, lazy: bool = True) -> Dataset:
        return _TransformFirst(self, fn)


class ArrayDataset(Dataset):
    """Samples (a[i], b[i], ...) of arrays of one length."""

    def __init__(self, *arrays):
        if not arrays or len({len(a) for a in arrays}) != 1:
            raise ValueError(f"ArrayDataset needs arrays of one length, got lengths {[len(a) for a in arrays]}")
        self.arrays = [_host(a) for a in arrays]

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i):
        items = tuple(a[i] for a in self.arrays)
        return items if len(items) > 1 else items[0]


class FashionMNIST(ArrayDataset):
    """Fashion-MNIST's training (60,000) or test (10,000) set: samples (image (28, 28, 1) uint8, int32 label).
    `root` names the directory (docs/data.md: the only one then looked in); Gluon's default looks where Gluon
    keeps it, then Debian's copy."""

    def __init__(self, root: str | None = None, train: bool = True, transform: Callable | None = None):
        default = os.path.join("~", ".mxnet", "datasets", "fashion-mnist")
        named = None if root is None or os.path.expanduser(root) == os.path.expanduser(default) else root
        data = load_fashion_mnist(named, download=downloads_allowed())
        images, labels = (data[0], data[1]) if train else (data[2], data[3])
        super().__init__(images[..., None], labels.astype(np.int32))
        self.planes = images  # (N, 28, 28), what the batch path gathers from
        self.transform = transform

    def __getitem__(self, i):
        image, label = self.arrays[0][i], self.arrays[1][i]
        if self.transform is not None:
            return self.transform(NDArray(image), label)
        return NDArray(image), label


class _TransformFirst(Dataset):
    def __init__(self, base: Dataset, fn: Callable):
        self.base, self.fn = base, fn

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        item = self.base[i]
        if not isinstance(item, tuple):  # a dataset of single arrays: the item is the first element
            return self.fn(item)
        return (self.fn(item[0]), *item[1:])


# ---- the loader ------------------------------------------------------------------------------------------------
class DataLoader:
    """Batches of a dataset as NDArrays: `DataLoader(dataset, batch_size, shuffle=False, last_batch='keep')`.

    last_batch: 'keep' (a smaller last batch) or 'discard' (none). Each epoch with shuffle draws a new order."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = None,
        shuffle: bool = False,
        sampler=None,
        last_batch: str | None = None,
        batch_sampler=None,
        batchify_fn=None,
        num_workers: int = 0,
        pin_memory: bool = False,
        pin_device_id: int = 0,
        prefetch: int | None = None,
        thread_pool: bool = False,
        timeout: int = 120,
        try_nopython: bool | None = None,
    ):  # num_workers to try_nopython: Gluon's ways to make batches faster, taken and ignored
        if sampler is not None or batch_sampler is not None or batchify_fn is not None:
            raise ValueError("DataLoader: give batch_size (and shuffle); samplers and batchify_fn are not taken")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if last_batch not in (None, "keep", "discard"):
            raise ValueError(f"DataLoader: last_batch must be 'keep' or 'discard', got {last_batch!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), bool(shuffle)
        self.discard = last_batch == "discard"
        self._planes = self._batch_path(dataset)

    @staticmethod
    def _batch_path(dataset):
        """A minicnn.data.DataLoader over Fashion-MNIST's arrays when every transform can run on a whole batch."""
        base, fn = (dataset.base, dataset.fn) if isinstance(dataset, _TransformFirst) else (dataset, None)
        if not isinstance(base, FashionMNIST) or base.transform is not None:
            return None
        steps = getattr(fn, "steps", [fn]) if fn is not None else []
        if not all(hasattr(s, "on_planes") for s in steps):
            return None
        if steps and isinstance(steps[-1], ToTensor):
            return base, fn.on_planes
        # uint8 images keep Gluon's (H, W, C) layout: the channel axis goes last
        return base, (lambda x: fn.on_planes(x)[..., None]) if fn is not None else (lambda x: x[..., None])

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.discard else math.ceil(n / self.batch_size)

    def __iter__(self):
        rng = random.host_generator()  # minicnn.random.seed(...) makes the orders repeatable
        if self._planes is not None:
            base, fn = self._planes
            seed = int(rng.integers(2**63)) if self.shuffle else None
            batches = loader.DataLoader(base.planes, base.arrays[1], self.batch_size, self.shuffle, seed, fn)
            for k, (X, y) in enumerate(batches):
                if k == len(self):
                    return
                yield [NDArray(X), NDArray(y)]  # a list, as Gluon's batchify makes it
            return
        order = rng.permutation(len(self.dataset)) if self.shuffle else np.arange(len(self.dataset))
        for k in range(len(self)):
            samples = [self.dataset[int(i)] for i in order[k * self.batch_size : (k + 1) * self.batch_size]]
            columns = zip(*samples) if isinstance(samples[0], tuple) else [samples]
            parts = [NDArray(np.stack([np.asarray(_host(v)) for v in column])) for column in columns]
            yield parts if len(parts) > 1 else parts[0]


vision = SimpleNamespace(
    FashionMNIST=FashionMNIST,
    transforms=SimpleNamespace(Compose=Compose, Resize=Resize, ToTensor=ToTensor),
)

__all__ = ["ArrayDataset", "DataLoader", "Dataset", "vision"]
