"""Where a training step's time goes by function: cProfile over a few SGD steps of one chapter network, sorted by
time spent inside each function (numba kernels and BLAS calls show as the Python functions that call them).

    ./dev python benchmarks/step_cprofile.py googlenet [--steps 3] [--top 30] [profile's options: --width-divisor 4]

The network, batch size and input size are `python -m minicnn profile`'s defaults (the chapter's); two untimed
steps first (numba compiles, buffers settle). Totals are for all --steps steps: divide by it for one.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("network")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=30)
    args, profile_args = p.parse_known_args()  # the rest goes to `minicnn profile` (--width-divisor 4, ...)
    sys.path.insert(0, str(ROOT))
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
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(args.steps):
        step()
    profiler.disable()
    print(f"{args.network}: {(time.perf_counter() - start) / args.steps * 1e3:.0f} ms a step under cProfile")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
