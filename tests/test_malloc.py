"""Importing minicnn keeps freed arrays in glibc's heap (fast/tuning.py): no large array is mapped fresh from the OS,
so a training step's activations do not pay their page faults again every step. Checked in fresh interpreters
through glibc's own account (mallinfo2: bytes in mapped chunks, bytes in the heap)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Allocates a 64 MiB array after importing the CPU backend; prints how many of its bytes glibc mapped (hblkhd) and
# whether a second array of the same size, after the first was freed, got the same memory.
PROBE = r"""
import ctypes
import numpy as np
import minicnn

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
a = np.ones(16 << 20, dtype=np.float32)
mapped = libc.mallinfo2().hblkhd
first = a.ctypes.data
del a
b = np.ones(16 << 20, dtype=np.float32)
print(mapped >= 64 << 20, b.ctypes.data == first)
"""


def probe(**env) -> list[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "MINICNN_TEXTBOOK"}
    full.update(PYTHONPATH=str(ROOT), **env)
    r = subprocess.run(
        [sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    if "mallinfo2" in r.stderr:
        pytest.skip("this libc has no mallinfo2 (glibc >= 2.33)")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


needs_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc's malloc settings: Linux only",
)


@needs_glibc
def test_a_large_array_comes_from_the_heap_and_its_memory_serves_the_next_one():
    assert probe() == ["False", "True"]


@needs_glibc
def test_mappings_the_user_allows_in_the_environment_are_kept():
    mapped, _ = probe(MALLOC_MMAP_MAX_="65536")
    assert mapped == "True"


@needs_glibc
@pytest.mark.parametrize("switch", ["MINICNN_TEXTBOOK=1", "MINICNN_TUNING=0"])
def test_the_textbook_mode_and_minicnn_tuning_0_leave_the_allocator_as_glibc_sets_it(switch):
    name, _, value = switch.partition("=")
    mapped, _ = probe(**{name: value})
    assert mapped == "True"
