"""A user's data-parallel script, for tests/test_distributed.py: `python tests/distributed_worker.py OUT.npz`,
alone or under `mpiexec -n N`. It trains a small network with dropout and a concat of two branches for a few
steps in float64, through the public API (`Trainer(..., kvstore='dist_sync')`, a sharded DataLoader, `train_ch5`),
and rank 0 writes the final parameters to OUT.npz."""

from __future__ import annotations

import sys

import numpy as np

import minicnn as mc
from minicnn import distributed, init, nn
from minicnn.data import DataLoader
from minicnn.data.transforms import ToTensor
from minicnn.train import train_ch5


class TwoBranches(nn.Block):
    """conv -> [conv 1x1 | conv 3x3] concatenated -> dropout -> dense."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2D(4, kernel_size=3, activation="relu")
        self.left = nn.Conv2D(3, kernel_size=1, activation="relu")
        self.right = nn.Conv2D(2, kernel_size=3, padding=1, activation="relu")
        self.drop = nn.Dropout(0.5)
        self.out = nn.Dense(10)

    def forward(self, x):
        x = self.stem(x)
        return self.out(self.drop(mc.concat(self.left(x), self.right(x), dim=1)))


def main(out: str, samples: int = 45, batch: int = 11, epochs: int = 2) -> None:
    mc.random.seed(7)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (samples, 10, 10)).astype(np.uint8)
    labels = rng.integers(0, 10, samples)
    shard = (distributed.rank(), distributed.size())
    train = DataLoader(images, labels, batch, shuffle=True, seed=3, transform=ToTensor("float64"), shard=shard)
    test = DataLoader(images, labels, batch, transform=ToTensor("float64"), shard=shard)
    net = TwoBranches()
    for p in net.collect_params().values():
        p.dtype = np.dtype("float64")
    net.initialize(init=init.Xavier())
    net(mc.array(np.zeros((1, 1, 10, 10)), dtype="float64"))  # fixes the deferred shapes
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9}, kvstore="dist_sync")
    results = train_ch5(net, train, test, batch, trainer, mc.cpu(), epochs, progress=False, log=lambda line: None)
    if distributed.rank() == 0:
        params = {name: p.data().asnumpy() for name, p in net.collect_params().items()}
        np.savez(out, **params, losses=np.array([r.loss for r in results]), test_acc=[r.test_acc for r in results])


if __name__ == "__main__":
    main(sys.argv[1])
