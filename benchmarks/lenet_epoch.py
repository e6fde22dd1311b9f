"""One chapter LeNet epoch (60,000 training images + the 10,000-image test pass) in minicnn, MXNet 1.9.1, PyTorch.

    ./dev python benchmarks/lenet_epoch.py [--epochs 2] [--torch-python .venv-torch/bin/python]

Each framework runs in its own process (minicnn in .venv, MXNet in .venv-ref, PyTorch in --torch-python when
`import torch` works there) with the chapter's settings: batch 256, SGD lr 0.9, Xavier, sigmoid LeNet with 16
channels in the second convolution. All read the same IDX files and run the chapter's train_ch5 loop; MXNet
batches with gluon's DataLoader over ToTensor, as the chapter does; PyTorch shuffles index batches of a tensor
scaled to [0, 1] once (the cheapest loader it has), sums the loss and divides the learning rate by the batch
size (= the chapter's trainer.step(batch_size)). Reported: seconds per epoch (the last epoch, so kernel
compilation is excluded), final test accuracy, and peak resident memory of the process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The environment the workers start from: this process's as it was given, before anything here imported minicnn,
# which sets its own OpenBLAS spin time (minicnn/__init__.py) for itself, not for the MXNet and PyTorch workers.
LAUNCH_ENV = dict(os.environ)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_minicnn(epochs: int, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import minicnn as mc
    from minicnn import init, models, random
    from minicnn.cli import make_loaders
    from minicnn.data import load_fashion_mnist
    from minicnn.train import train_ch5

    random.seed(seed)
    ctx = mc.cpu()
    spec = models.get("lenet")
    settings = {"batch_size": 256, "resize": None, "dtype": "float32"}
    train_iter, test_iter = make_loaders(load_fashion_mnist(), settings, ctx, seed)
    net = spec.build()
    net.initialize(ctx=ctx, init=init.Xavier())
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    results = train_ch5(net, train_iter, test_iter, 256, trainer, ctx, epochs, progress=False)
    return {"epoch_sec": [r.seconds for r in results], "test_acc": results[-1].test_acc}


def run_mxnet(epochs: int, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import mxnet as mx
    from mxnet import autograd, gluon, init, nd
    from mxnet.gluon import data as gdata
    from mxnet.gluon import loss as gloss

    from minicnn.data import load_fashion_mnist

    mx.random.seed(seed)
    train_x, train_y, test_x, test_y = load_fashion_mnist()
    to_tensor = gdata.vision.transforms.ToTensor()
    workers = 0 if os.cpu_count() <= 2 else 4  # the chapter uses 4 workers; on 2 cores they only add overhead
    train_ds = gdata.ArrayDataset(nd.array(train_x[..., None], dtype="uint8"), train_y.astype("float32"))
    test_ds = gdata.ArrayDataset(nd.array(test_x[..., None], dtype="uint8"), test_y.astype("float32"))
    train_iter = gdata.DataLoader(train_ds.transform_first(to_tensor), 256, shuffle=True, num_workers=workers)
    test_iter = gdata.DataLoader(test_ds.transform_first(to_tensor), 256, shuffle=False, num_workers=workers)
    from reference.gluon_models import lenet  # the chapter's listing, 16 channels in the second conv

    net = lenet()
    ctx = mx.cpu()
    net.initialize(force_reinit=True, ctx=ctx, init=init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    loss = gloss.SoftmaxCrossEntropyLoss()
    epoch_sec, test_acc = [], 0.0
    for _ in range(epochs):  # the chapter's train_ch5, verbatim in substance
        start = time.perf_counter()
        train_l_sum, train_acc_sum, n = 0.0, 0.0, 0
        for X, y in train_iter:
            with autograd.record():
                y_hat = net(X)
                l = loss(y_hat, y).sum()
            l.backward()
            trainer.step(256)
            train_l_sum += l.asscalar()
            train_acc_sum += (y_hat.argmax(axis=1) == y).sum().asscalar()
            n += y.size
        acc_sum, m = nd.array([0]), 0
        for X, y in test_iter:
            acc_sum += (net(X).argmax(axis=1) == y).sum()
            m += y.size
        test_acc = acc_sum.asscalar() / m
        epoch_sec.append(time.perf_counter() - start)
    return {"epoch_sec": epoch_sec, "test_acc": test_acc}


def read_idx(path: Path):
    """An IDX file (gzipped or not) as a NumPy array: the PyTorch worker has neither minicnn nor numba."""
    import gzip

    import numpy as np

    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def run_torch(epochs: int, seed: int, data_dir: str) -> dict:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))

    def load(images: str, labels: str):
        files = {f.name.split(".")[0]: f for f in Path(data_dir).iterdir()}
        x = torch.from_numpy(read_idx(files[images]).copy()).float().div_(255).unsqueeze(1)
        return x, torch.from_numpy(read_idx(files[labels]).astype("int64"))

    train_x, train_y = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test_x, test_y = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2), nn.Conv2d(6, 16, 5), nn.Sigmoid(),
        nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(256, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )  # fmt: skip
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(net.parameters(), lr=0.9 / 256)
    loss = nn.CrossEntropyLoss(reduction="sum")
    epoch_sec, test_acc = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        train_l_sum, train_acc_sum, n = 0.0, 0.0, 0
        net.train()
        for idx in torch.randperm(len(train_x)).split(256):
            X, y = train_x[idx], train_y[idx]
            opt.zero_grad()
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            opt.step()
            train_l_sum += l.item()
            train_acc_sum += (y_hat.argmax(dim=1) == y).sum().item()
            n += len(y)
        net.eval()
        with torch.no_grad():
            correct = sum(
                (net(X).argmax(dim=1) == y).sum().item() for X, y in zip(test_x.split(256), test_y.split(256))
            )
        test_acc = correct / len(test_y)
        epoch_sec.append(time.perf_counter() - start)
    return {"epoch_sec": epoch_sec, "test_acc": test_acc}


def data_dir() -> str:
    sys.path.insert(0, str(ROOT))
    from minicnn.data import find_data_dir

    return str(find_data_dir())


def worker(framework: str, epochs: int, seed: int, data: str) -> None:
    if framework == "torch":
        result = run_torch(epochs, seed, data)
    else:
        result = (run_minicnn if framework == "minicnn" else run_mxnet)(epochs, seed)
    result["peak_rss_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result))


def launch(framework: str, python: str, epochs: int, seed: int, data: str) -> dict:
    out = subprocess.run(
        [python, __file__, "--worker", framework, "--epochs", str(epochs), "--seed", str(seed), "--data", data],
        capture_output=True,
        text=True,
        check=False,
        env=dict(LAUNCH_ENV, PYTHONPATH=str(ROOT)),
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{framework} run failed:\n{out.stdout}\n{out.stderr}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=["minicnn", "mxnet", "torch"])
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minicnn-python", default=str(ROOT / ".venv/bin/python"))
    p.add_argument("--mxnet-python", default=str(ROOT / ".venv-ref/bin/python"))
    p.add_argument("--torch-python", default=str(ROOT / ".venv-torch/bin/python"), help="skipped if no torch")
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.epochs, args.seed, args.data)
        return
    frameworks = [("minicnn", args.minicnn_python), ("mxnet", args.mxnet_python)]
    has_torch = Path(args.torch_python).exists() and (
        subprocess.run([args.torch_python, "-c", "import torch"], capture_output=True, check=False).returncode == 0
    )
    if has_torch:
        frameworks.append(("torch", args.torch_python))
    else:
        print(f"# PyTorch skipped: no `import torch` in {args.torch_python} (./dev bench-setup installs it)")
    data = data_dir()
    rows = {fw: launch(fw, py, args.epochs, args.seed, data) for fw, py in frameworks}
    print(f"LeNet, chapter settings, {args.epochs} epochs; epoch time = last epoch (train + test pass)")
    print(f"{'framework':10} {'epoch s':>8} {'all epochs s':>28} {'test acc':>9} {'peak RSS MiB':>13}")
    for fw, r in rows.items():
        all_s = " ".join(f"{s:.1f}" for s in r["epoch_sec"])
        print(f"{fw:10} {r['epoch_sec'][-1]:8.2f} {all_s:>28} {r['test_acc']:9.3f} {r['peak_rss_mib']:13.0f}")
    m = rows["minicnn"]
    for fw in rows.keys() - {"minicnn"}:
        x = rows[fw]
        print(
            f"ratio minicnn/{fw}: epoch time {m['epoch_sec'][-1] / x['epoch_sec'][-1]:.2f}, "
            f"peak memory {m['peak_rss_mib'] / x['peak_rss_mib']:.2f}"
        )


if __name__ == "__main__":
    main()
