"""Running `python -m minicnn` as a user does, and writing IDX files: shared by the CLI-level tests."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "minicnn", *map(str, args)]


def cli_env(**extra) -> dict:
    """The environment of a CLI run: this checkout importable, never a download, no test interrupt hook."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MINICNN_OFFLINE="1")
    env.pop("MINICNN_TEST_INTERRUPT_AFTER", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(*args, cwd=ROOT, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    """`python -m minicnn *args` in a subprocess; keyword arguments become environment variables."""
    return subprocess.run(
        cli_command(*args), cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped IDX file of unsigned bytes, as Fashion-MNIST's."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
