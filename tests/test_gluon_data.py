"""Gluon's data API (`minicnn.gluon.data`): per-sample transforms and DataLoader batches as Gluon's, and the batch
path over Fashion-MNIST giving the same bits as the sample-by-sample one."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import minicnn as mc
from minicnn.gluon import data as gdata
from reference import MXNET_SKIP_REASON, load_mxnet

T = gdata.vision.transforms


def batches(loader):
    """Each batch as a tuple of NumPy arrays (a dataset of single arrays gives a batch that is one NDArray)."""
    return [
        tuple(part.asnumpy() for part in (batch if isinstance(batch, (tuple, list)) else (batch,))) for batch in loader
    ]


def assert_same_batches(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)


def test_the_chapters_load_data_fashion_mnist_cell_runs_as_written(tiny_fashion_dir):
    """Section 5.6's own loader, less its comments, on the test's small Fashion-MNIST."""

    def load_data_fashion_mnist(batch_size, resize=None, root=os.path.join("~", ".mxnet", "datasets", "fashion-mnist")):  # noqa: B008
        root = os.path.expanduser(root)
        transformer = []
        if resize:
            transformer += [gdata.vision.transforms.Resize(resize)]
        transformer += [gdata.vision.transforms.ToTensor()]
        transformer = gdata.vision.transforms.Compose(transformer)
        mnist_train = gdata.vision.FashionMNIST(root=root, train=True)
        mnist_test = gdata.vision.FashionMNIST(root=root, train=False)
        num_workers = 0 if sys.platform.startswith("win32") else 4
        train_iter = gdata.DataLoader(
            mnist_train.transform_first(transformer), batch_size, shuffle=True, num_workers=num_workers
        )
        test_iter = gdata.DataLoader(
            mnist_test.transform_first(transformer), batch_size, shuffle=False, num_workers=num_workers
        )
        return train_iter, test_iter

    train_iter, test_iter = load_data_fashion_mnist(128, resize=40, root=str(tiny_fashion_dir))
    X, y = next(iter(train_iter))
    assert (X.shape, X.dtype, y.shape, y.dtype) == ((128, 1, 40, 40), np.float32, (128,), np.int32)
    assert (len(train_iter), len(test_iter)) == (5, 2)  # 600 and 200 images, the last batch kept
    ours = batches(test_iter)
    d2l_train, d2l_test = mc.d2l.load_data_fashion_mnist(128, resize=40, data_dir=tiny_fashion_dir)
    theirs = [(X.asnumpy(), y.asnumpy().astype(np.int32)) for X, y in d2l_test]
    assert_same_batches(ours, theirs)  # the chapter's loader and minicnn's give the same test batches


@pytest.mark.parametrize("last_batch", [None, "discard"])
def test_the_batch_path_over_fashion_mnist_gives_the_sample_by_sample_bits(tiny_fashion_dir, last_batch):
    mnist = gdata.vision.FashionMNIST(root=str(tiny_fashion_dir), train=False)
    image, label = mnist[3]
    assert (image.shape, image.dtype, type(label)) == ((28, 28, 1), np.uint8, np.int32)
    samples = gdata.ArrayDataset(*mnist.arrays)  # the same arrays, through __getitem__ and np.stack
    for fn in (T.Compose([T.Resize((30, 20)), T.ToTensor()]), T.ToTensor(), T.Resize(14), None):
        wrap = (lambda d: d.transform_first(fn)) if fn else (lambda d: d)  # noqa: B023
        fast = gdata.DataLoader(wrap(mnist), 64, last_batch=last_batch)
        assert fast._planes is not None  # took the batch path
        slow = gdata.DataLoader(wrap(samples), 64, last_batch=last_batch)
        assert_same_batches(batches(fast), batches(slow))
    assert len(fast) == (3 if last_batch else 4)


def test_a_shuffling_loader_draws_a_new_order_every_epoch_and_keeps_pairs_together():
    images = np.arange(40, dtype=np.uint8).reshape(10, 2, 2, 1)
    loader = gdata.DataLoader(gdata.ArrayDataset(images, np.arange(10)), 4, shuffle=True)
    epochs = [batches(loader) for _ in range(2)]
    for epoch in epochs:
        X = np.concatenate([x for x, _ in epoch])
        y = np.concatenate([y for _, y in epoch])
        assert sorted(y) == list(range(10)) and (X[:, 0, 0, 0] == 4 * y).all()
    assert any((a[1] != b[1]).any() for a, b in zip(*epochs))


def test_minicnn_random_seed_repeats_the_shuffled_orders_on_both_paths(tiny_fashion_dir):
    mnist = gdata.vision.FashionMNIST(root=str(tiny_fashion_dir), train=False)
    for dataset in (mnist, gdata.ArrayDataset(*mnist.arrays)):
        runs = []
        for _ in range(2):
            mc.random.seed(11)
            loader = gdata.DataLoader(dataset, 50, shuffle=True)
            runs.append([y for _ in range(2) for _, y in batches(loader)])
        assert all((a == b).all() for a, b in zip(*runs))


def test_transform_first_on_a_dataset_of_single_arrays_transforms_the_whole_item():
    images = np.arange(32, dtype=np.uint8).reshape(2, 4, 4, 1)
    loader = gdata.DataLoader(gdata.ArrayDataset(images).transform_first(T.ToTensor()), 2)
    ((X,),) = batches(loader)
    np.testing.assert_array_equal(X, images.transpose(0, 3, 1, 2) / np.float32(255))


def test_data_api_options_minicnn_lacks_are_refused_in_one_line():
    with pytest.raises(ValueError, match="last_batch must be 'keep' or 'discard', got 'rollover'"):
        gdata.DataLoader(gdata.ArrayDataset(np.zeros(3)), 2, last_batch="rollover")
    with pytest.raises(ValueError, match="samplers and batchify_fn are not taken"):
        gdata.DataLoader(gdata.ArrayDataset(np.zeros(3)), 2, batchify_fn=list)
    with pytest.raises(ValueError, match=r"Resize expects an image \(H, W, C\)"):
        T.Resize(4)(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="ArrayDataset needs arrays of one length"):
        gdata.ArrayDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        gdata.DataLoader(gdata.ArrayDataset(np.zeros(3)), 0)
    with pytest.raises(TypeError, match="shufle"):
        gdata.DataLoader(gdata.ArrayDataset(np.zeros(3)), 2, shufle=True)


# ---- against Gluon ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mx():
    module = load_mxnet()
    if module is None:
        pytest.skip(MXNET_SKIP_REASON)
    return module


@pytest.mark.reference
@pytest.mark.parametrize("size", [32, (40, 20)])
def test_per_sample_transforms_are_gluons_bit_for_bit(mx, size):
    rng = np.random.default_rng(5)
    theirs_t = mx.gluon.data.vision.transforms
    for shape in ((28, 28, 1), (3, 28, 28, 1), (17, 9, 3)):
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        ours = T.Compose([T.Resize(size), T.ToTensor()])(mc.nd.array(x, dtype="uint8")).asnumpy()
        theirs = theirs_t.Compose([theirs_t.Resize(size), theirs_t.ToTensor()])(mx.nd.array(x, dtype="uint8"))
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, shape
        np.testing.assert_array_equal(ours, theirs.asnumpy())


@pytest.mark.reference
@pytest.mark.parametrize("last_batch", ["keep", "discard"])
def test_dataloader_batches_of_a_transformed_dataset_are_gluons(mx, last_batch):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (10, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 10).astype(np.int32)
    ours = gdata.DataLoader(
        gdata.ArrayDataset(images, labels).transform_first(T.Compose([T.Resize(16), T.ToTensor()])),
        4,
        last_batch=last_batch,
    )
    g = mx.gluon.data
    theirs = g.DataLoader(
        g.ArrayDataset(mx.nd.array(images, dtype="uint8"), labels).transform_first(
            g.vision.transforms.Compose([g.vision.transforms.Resize(16), g.vision.transforms.ToTensor()])
        ),
        4,
        last_batch=last_batch,
    )
    assert_same_batches(batches(ours), batches(theirs))
