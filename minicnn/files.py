"""Small file-system helpers shared by the kernel cache (numba_setup) and the dataset cache (data)."""

from __future__ import annotations

import os
from pathlib import Path


def writable_dir(directory: Path) -> bool:
    """Whether `directory` exists (made here if need be, parents too) and this process may create files in it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)
