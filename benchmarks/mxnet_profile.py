"""Where MXNet's training step goes, by operator: MXNet's own profiler over a few SGD steps of one of
networks.py's cases, aggregated per operator type (Convolution, _backward_Convolution, Activation, Pooling, ...).
The counterpart of step_cprofile.py, to see which of minicnn's parts are slower than MXNet's (or faster).

    OMP_NUM_THREADS=2 .venv-ref/bin/python benchmarks/mxnet_profile.py googlenet [--steps 3]

(the reference environment's Python: MXNet needs numpy 1.23; `./dev setup` makes it).

Two untimed steps first; the table's times are totals over --steps steps: divide by it for one. MXNet runs each
operator on its engine's threads, so the operators' times add up to about the step time only when they ran one
after another (on two cores they do, near enough: compare the sum with the step time printed first).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", help="a networks.py case: lenet, alexnet, vgg11, vgg11-div4, nin, googlenet")
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))  # networks.py (it puts the repository on the path itself)
    import mxnet as mx
    import networks

    name, options, side, batch = networks.CASES[args.case]
    step = networks.mxnet_step(name, options, side, batch)
    step()
    step()
    with tempfile.TemporaryDirectory() as tmp:
        mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=str(Path(tmp) / "profile.json"))
        mx.profiler.set_state("run")
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        elapsed = (time.perf_counter() - start) / args.steps
        mx.profiler.set_state("stop")
        print(f"{args.case}: {elapsed * 1e3:.0f} ms a step under MXNet's profiler, batch {batch}, {side}x{side}")
        print(mx.profiler.dumps(sort_by="total", ascending=False))


if __name__ == "__main__":
    main()
