"""How minicnn sets up the threads it shares the cores with: OpenBLAS's spin time after a GEMM (minicnn/__init__.py),
checked in fresh interpreters, where minicnn is imported before numpy as `python -m minicnn` does."""

from __future__ import annotations

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
