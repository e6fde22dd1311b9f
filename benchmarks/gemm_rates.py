"""The GEMMs of one training step, by shape: every numpy.matmul minicnn's step makes is timed and grouped by
(batch, M, K, N, A row-major, B row-major), with its GFLOP/s, slowest total first.

    ./dev python benchmarks/gemm_rates.py googlenet [--steps 2] [--top 45] [profile's options: --width-divisor 4]

The network, batch size and input size are `python -m minicnn profile`'s defaults (the chapter's); two untimed
steps first. Times are per step. The wrapper around numpy.matmul adds a few microseconds a call.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("network")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--top", type=int, default=45)
    args, profile_args = p.parse_known_args()
    sys.path.insert(0, str(ROOT))
    matmul = np.matmul
    stats = collections.defaultdict(lambda: [0, 0.0, 0.0])  # calls, seconds, flops
    timing = [False]

    def timed_matmul(a, b, out=None, **kw):
        if not timing[0]:
            return matmul(a, b, out=out, **kw)
        start = time.perf_counter()
        r = matmul(a, b, out=out, **kw)
        seconds = time.perf_counter() - start
        batch = a.shape[0] if a.ndim == 3 else (b.shape[0] if b.ndim == 3 else 1)
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        key = (batch, m, k, n, a.strides[-1] == a.itemsize, b.strides[-1] == b.itemsize)
        s = stats[key]
        s[0], s[1], s[2] = s[0] + 1, s[1] + seconds, s[2] + 2.0 * batch * m * k * n
        return r

    np.matmul = timed_matmul  # minicnn calls xp.matmul with xp the numpy module
    from minicnn import autograd, cli, device, random
    from minicnn.loss import SoftmaxCrossEntropyLoss
    from minicnn.optim import Trainer
    from minicnn.profile import random_batch

    settings = cli._settings(cli.build_parser().parse_args(["profile", args.network, *profile_args]))
    settings["resize"] = settings["resize"] or 28
    random.seed(0)
    ctx = device.cpu()
    net = cli.build_network(settings, ctx)
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": settings["lr"]})
    X, y = random_batch(settings["batch_size"], settings["resize"], "float32", ctx)
    loss = SoftmaxCrossEntropyLoss()

    def step() -> None:
        with autograd.record():
            total = loss(net(X), y).sum()
        total.backward()
        trainer.step(settings["batch_size"])

    step()
    step()
    timing[0] = True
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    seconds = sum(s[1] for s in stats.values()) / args.steps
    flops = sum(s[2] for s in stats.values()) / args.steps
    print(f"{args.network}: step {per_step * 1e3:.0f} ms; matmul {seconds * 1e3:.0f} ms a step, "
          f"{flops / 1e9:.1f} GFLOP, {flops / seconds / 1e9:.0f} GFLOP/s")  # fmt: skip
    print("(batch, M, K, N, A row-major, B row-major)   calls/step   ms/step   GFLOP/s")
    for key, (calls, t, f) in sorted(stats.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"{key!s:44s} {calls // args.steps:4d} {t / args.steps * 1e3:9.1f} {f / t / 1e9:9.0f}")


if __name__ == "__main__":
    main()
