"""How minicnn sets up the threads it shares the cores with: OpenBLAS's spin time after a GEMM (minicnn/__init__.py)
and numba's threading layer and its spin (backend/cpu.py), checked in fresh interpreters, where minicnn is imported
before numpy as `python -m minicnn` does."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Prints the variable and the value the loaded OpenBLAS read from it (its own getter), or "absent" when the BLAS is
# not an OpenBLAS that has one.
PROBE = r"""
import ctypes, os
import minicnn
paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower() and ".so" in line}
getters = [getattr(ctypes.CDLL(p), "openblas_thread_timeout", None) for p in sorted(paths)]
getters = [g for g in getters if g is not None]
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), getters[0]() if getters else "absent")
"""


def probe(**env) -> list[str]:
    full = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    full.update(PYTHONPATH=str(ROOT), **env)
    r = subprocess.run(
        [sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    if out[1] == "absent":
        pytest.skip("numpy's BLAS here is not an OpenBLAS with openblas_thread_timeout()")
    return out


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds the loaded OpenBLAS through /proc/self/maps")
def test_importing_minicnn_first_shortens_openblas_spin_after_each_gemm():
    assert probe() == ["14", "14"]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds the loaded OpenBLAS through /proc/self/maps")
def test_a_spin_time_set_by_the_user_is_kept():
    assert probe(OPENBLAS_THREAD_TIMEOUT="7") == ["7", "7"]


# Runs one parallel kernel, then prints numba's threading layer, GOMP_SPINCOUNT, and whether libgomp is loaded.
LAYER_PROBE = r"""
import os
import numpy as np
import numba
from minicnn.backend import cpu
cpu.axpy_(np.zeros(1000, np.float32), 0.5, np.ones(1000, np.float32))
loaded = any("libgomp" in line for line in open("/proc/self/maps"))
print(numba.threading_layer(), os.environ.get("GOMP_SPINCOUNT"), loaded)
"""


def layer_probe(**env) -> list[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT")}
    full.update(PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="2", **env)
    r = subprocess.run(
        [sys.executable, "-c", LAYER_PROBE], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


needs_libgomp = pytest.mark.skipif(
    not Path("/proc/self/maps").exists() or ctypes.util.find_library("gomp") is None,
    reason="numba's OpenMP layer needs libgomp (without it minicnn falls back to the workqueue layer)",
)


@needs_libgomp
def test_parallel_kernels_run_on_numbas_openmp_layer_with_a_short_spin():
    assert layer_probe() == ["omp", "10000", "True"]


@needs_libgomp
def test_a_threading_layer_and_spin_count_set_by_the_user_are_kept():
    assert layer_probe(NUMBA_THREADING_LAYER="workqueue", GOMP_SPINCOUNT="500") == ["workqueue", "500", "False"]
