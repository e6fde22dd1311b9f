"""What starting a parallel loop costs on each of numba's threading layers, and what minicnn's sigmoid kernel costs
against NumPy's formula.

    ./dev python benchmarks/threads.py [--repeats 400]

Each layer runs in a fresh process (numba picks its layer once per process), with 2 threads: a parallel loop over
1,000 floats, timed back to back and again after a 2 ms sleep (the threads have gone idle: the case of a loop that
follows a GEMM or Python work), against the same loop compiled without `parallel`. OpenMP runs with minicnn's
GOMP_SPINCOUNT and with libgomp's default; a layer that cannot load here is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, statistics, sys, time
import minicnn  # before numpy, as the library's users do
import numba
import numpy as np
from numba import njit, prange

@njit(parallel=True)
def par(y, x):
    for i in prange(y.size):
        y[i] += x[i]

@njit
def ser(y, x):
    for i in range(y.size):
        y[i] += x[i]

def median_us(f, repeats, pause):
    y, x = np.zeros(1000, np.float32), np.ones(1000, np.float32)
    f(y, x)
    times = []
    for _ in range(repeats):
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        f(y, x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6

repeats = int(sys.argv[1])
out = {"back to back": median_us(par, repeats, 0), "after 2 ms idle": median_us(par, repeats // 4, 0.002)}
out.update(serial=median_us(ser, repeats, 0), layer=numba.threading_layer())
print("RESULT " + json.dumps(out))
"""

SIGMOID = r"""
import json, statistics, sys, time
import minicnn
import numpy as np
from minicnn.backend import cpu, epilogue

def median_ms(f, x, repeats):
    y = x.copy()
    f(y)
    times = []
    for _ in range(repeats):
        np.copyto(y, x)
        start = time.perf_counter()
        f(y)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3

x = np.random.default_rng(0).standard_normal((256, 6, 24, 24), dtype=np.float32)  # LeNet's first conv output
repeats = int(sys.argv[1]) // 8
out = {"numpy formula": median_ms(lambda y: epilogue.sigmoid_(y, np), x, repeats),
       "cpu_sigmoid": median_ms(cpu.sigmoid_, x, repeats)}
print("RESULT " + json.dumps(out))
"""

CASES = {
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "omp (minicnn's spin)": {"NUMBA_THREADING_LAYER": "omp"},
    "omp (libgomp's default spin)": {"NUMBA_THREADING_LAYER": "omp", "GOMP_SPINCOUNT": "300000"},
}


def run(code: str, repeats: int, extra: dict) -> dict | str:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT")}
    env.update(PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="2", OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", **extra)
    r = subprocess.run([sys.executable, "-c", code, str(repeats)], env=env, capture_output=True, text=True, check=False)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return "could not run: " + ((r.stderr or r.stdout).strip().splitlines() or ["?"])[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=400)
    args = p.parse_args()
    print("starting a parallel loop over 1,000 floats, 2 threads (median microseconds)")
    print(f"{'threading layer':30s} {'back to back':>13s} {'after 2 ms idle':>16s} {'not parallel':>13s}")
    for name, extra in CASES.items():
        r = run(PROBE, args.repeats, extra)
        if isinstance(r, str):
            print(f"{name:30s} {r}")
            continue
        print(f"{name:30s} {r['back to back']:13.1f} {r['after 2 ms idle']:16.1f} {r['serial']:13.1f}   ({r['layer']})")
    r = run(SIGMOID, args.repeats, {})
    print("\nsigmoid of LeNet's first convolution's output, (256, 6, 24, 24) float32, in place (median ms)")
    if isinstance(r, str):
        print(r)
    else:
        print(f"NumPy's formula (4 passes, its float32 exp) {r['numpy formula']:8.2f}")
        print(f"cpu_sigmoid's kernel                        {r['cpu_sigmoid']:8.2f}")


if __name__ == "__main__":
    main()
