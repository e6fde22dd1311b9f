"""Where numba keeps minicnn's compiled kernels: one directory per numba version.

numba's default disk cache (`cache=True`) lives in `__pycache__` next to the source, in files named by Python
version but not by numba version. Two environments with different numba over one source tree (the project's two
virtual environments, or an editable install used from a user's own environment as well) then rewrite each other's
cache index, and every run in one compiles every kernel again (about 20 s). So, unless the user chose a directory
(`NUMBA_CACHE_DIR`, or `numba.config.CACHE_DIR` set before minicnn is imported), minicnn puts the cache in
`$XDG_CACHE_HOME/minicnn/numba-<numba version>` (default `~/.cache/...`), or, where that cannot be written, in
`<temporary directory>/minicnn-<uid>/numba-<numba version>`; failing both, numba's own default is kept.

numba picks a kernel's cache directory when the kernel is decorated, that is when its module is imported, so
importing this module calls `use_per_version_cache()`, and `minicnn/__init__.py` imports it before any kernel
module; this works whether or not numba was imported first. `cache_dir` tells the directory chosen. It is not
exported to the environment: a child process running another numba version would take it for the user's choice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def per_version_dirs(version: str) -> list[Path]:
    """The directories tried for numba `version`'s cache, in order: the user's cache directory, then a temporary one."""
    candidates = []
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory can be determined
            base = None
    if base:
        candidates.append(Path(base).expanduser() / "minicnn" / f"numba-{version}")
    user = os.getuid() if hasattr(os, "getuid") else "user"  # one per user: /tmp is shared
    candidates.append(Path(tempfile.gettempdir()) / f"minicnn-{user}" / f"numba-{version}")
    return candidates


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def use_per_version_cache() -> Path | None:
    """Point numba's cache at this numba version's own directory unless the user chose one.

    Returns the cache directory numba will use for kernels decorated from now on, or None for numba's default
    (`__pycache__` beside the source).
    """
    import numba
    from numba.core import config

    chosen = config.CACHE_DIR or os.environ.get("NUMBA_CACHE_DIR")  # the variable may be set after numba's import
    if chosen:
        config.CACHE_DIR = chosen
        return Path(chosen)
    for directory in per_version_dirs(numba.__version__):
        if _writable(directory):
            config.CACHE_DIR = str(directory)
            return directory
    return None


cache_dir: Path | None = use_per_version_cache()
