"""A/B of environment settings on minicnn's training step: alternating runs of networks.py's minicnn worker.

    ./dev python benchmarks/ab_env.py lenet --steps 40 --rounds 3 NUMBA_THREADING_LAYER=workqueue GOMP_SPINCOUNT=3000 -

Each argument after the options is one variant: space-separated NAME=VALUE pairs set for the worker, or `-` for
none (the library's defaults). The variants run one after another, `--rounds` times over, each in a fresh process
with 2 BLAS/OpenMP/numba threads, so a slow minute of the machine falls on all of them alike. Printed: the median
step time of each run and the checkout whose minicnn it ran, then each variant's runs side by side.

To time another checkout's code (an older commit's worktree, say) against this one's, name it on PYTHONPATH:

    git worktree add /tmp/before HEAD~1
    ./dev python benchmarks/ab_env.py lenet --steps 80 --rounds 6 PYTHONPATH=/tmp/before -

(For code older than the process tuning on import, add OPENBLAS_THREAD_TIMEOUT=14 to both variants: the worker
imports NumPy first, and such code tuned OpenBLAS only when it loaded it itself.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREADS = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"), "2")


def run(case: str, steps: int, variant: str) -> tuple[float, str] | None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **THREADS)
    for pair in variant.split():
        if pair != "-":
            name, _, value = pair.partition("=")
            env[name] = value
    cmd = [sys.executable, str(ROOT / "benchmarks" / "networks.py"), "--worker", "minicnn", "--case", case]
    cmd += ["--steps", str(steps), "--warmup", "2", "--device", "cpu"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            return statistics.median(result["step_sec"]) * 1e3, result["checkout"]
    print(f"  {variant}: failed ({(out.stderr.strip().splitlines() or ['?'])[-1]})", file=sys.stderr)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", help="a networks.py case: lenet, alexnet, vgg11, vgg11-div4, nin, googlenet")
    p.add_argument("variants", nargs="+", help="NAME=VALUE ... per variant, or - for the defaults")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        for v in args.variants:
            got = run(args.case, args.steps, v)
            if got is not None:
                ms, checkout = got
                times[v].append(ms)
                print(f"round {r}  {v:50s} {ms:10.2f} ms  (minicnn from {checkout})", flush=True)
    print(f"\n{args.case}: median step ms per run, --steps {args.steps}")
    for v, ms in times.items():
        print(f"{v:50s} " + " ".join(f"{m:9.2f}" for m in ms))


if __name__ == "__main__":
    main()
