"""How minicnn sets up the threads it shares the cores with (fast/tuning.py): OpenBLAS's spin time after a GEMM and
numba's threading layer and its spin, checked in fresh interpreters, whether minicnn is imported before numpy (as
`python -m minicnn` does) or after it (as a user's script or notebook does)."""

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
import ctypes, os, sys
if sys.argv[1] == "numpy first":
    import numpy
import minicnn
paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower() and ".so" in line}
getters = [getattr(ctypes.CDLL(p), "openblas_thread_timeout", None) for p in sorted(paths)]
getters = [g for g in getters if g is not None]
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), getters[0]() if getters else "absent")
"""


def clean_env(**env) -> dict:
    """This process's environment without minicnn's switches and the variables its tuning sets, plus `env`."""
    drop = ("OPENBLAS_THREAD_TIMEOUT", "NUMBA_THREADING_LAYER", "GOMP_SPINCOUNT", "MINICNN_TEXTBOOK", "MINICNN_TUNING")
    full = {k: v for k, v in os.environ.items() if k not in drop}
    full.update(PYTHONPATH=str(ROOT), **env)
    return full


def probe(order: str = "minicnn first", **env) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, order], env=clean_env(**env), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    if out[1] == "absent":
        pytest.skip("numpy's BLAS here is not an OpenBLAS with openblas_thread_timeout()")
    return out


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds the loaded OpenBLAS through /proc/self/maps")
@pytest.mark.parametrize("order", ["minicnn first", "numpy first"])
def test_importing_minicnn_shortens_openblas_spin_after_each_gemm_whatever_was_imported_before(order):
    assert probe(order) == ["14", "14"]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds the loaded OpenBLAS through /proc/self/maps")
@pytest.mark.parametrize("order", ["minicnn first", "numpy first"])
def test_a_spin_time_set_by_the_user_is_kept(order):
    assert probe(order, OPENBLAS_THREAD_TIMEOUT="7") == ["7", "7"]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds the loaded OpenBLAS through /proc/self/maps")
def test_the_textbook_mode_leaves_openblas_as_it_loads():
    assert probe("numpy first", MINICNN_TEXTBOOK="1") == ["None", "0"]  # 0: OpenBLAS's own default spin


# The settings in force after `import minicnn`, as fast/tuning.py reports them (each loaded OpenBLAS's own value).
STATE_PROBE = r"""
import json, sys
if sys.argv[1] == "numpy first":
    import numpy
import minicnn
from minicnn.fast import tuning
print(json.dumps(tuning.state()))
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="finds the loaded OpenBLAS through /proc/self/maps")
def test_a_process_that_imported_numpy_first_gets_the_same_blas_and_thread_settings():
    import json

    states = []
    for order in ("minicnn first", "numpy first"):
        r = subprocess.run(
            [sys.executable, "-c", STATE_PROBE, order], env=clean_env(), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        states.append(json.loads(r.stdout))
    assert states[0] == states[1]
    assert states[0]["openblas_thread_timeout"] and set(states[0]["openblas_thread_timeout"]) == {14}
    assert states[0]["GOMP_SPINCOUNT"] == "10000" and states[0]["threading_layer_priority"][0] == "omp"


# Runs one parallel kernel, then prints numba's threading layer, GOMP_SPINCOUNT, and whether libgomp is loaded.
LAYER_PROBE = r"""
import os
import numpy as np
import numba
import minicnn
from minicnn.backend import cpu
cpu.max_pool_forward(np.zeros((2, 1, 4, 4), np.float32), (2, 2), (2, 2), (0, 0))  # a parallel kernel
loaded = any("libgomp" in line for line in open("/proc/self/maps"))
print(numba.threading_layer(), os.environ.get("GOMP_SPINCOUNT"), loaded)
"""


def layer_probe(**env) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-c", LAYER_PROBE], env=clean_env(NUMBA_NUM_THREADS="2", **env), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
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
