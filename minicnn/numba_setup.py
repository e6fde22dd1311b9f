"""How numba compiles minicnn's kernels, and where it keeps them: set up before any kernel module is imported.

**Where.** numba's default disk cache (`cache=True`) lives in `__pycache__` next to the source, in files named by
Python version but not by numba version. Two environments with different numba over one source tree (the project's
two virtual environments, or an editable install used from a user's own environment as well) then rewrite each
other's cache index, and every run in one compiles every kernel again. So, unless the user chose a directory
(`NUMBA_CACHE_DIR`, or `numba.config.CACHE_DIR` set before minicnn is imported), minicnn puts the cache in
`$XDG_CACHE_HOME/minicnn/numba-<numba version>` (default `~/.cache/...`), or, where that cannot be written, in
`<temporary directory>/minicnn-<uid>/numba-<numba version>`; failing both, numba's own default is kept.

**How.** LLVM vectorises a loop over several arrays only after checking at run time that they do not overlap, and
LLVM 14 (numba 0.60, the MXNet environment's) gives up beyond 8 such checks: the plane kernels' loops, which read
five or nine runs of one plane, stayed scalar there, and LeNet's step took two to three times as long as with
numba's later LLVMs (docs/performance.md, "Wherever it runs"). With LLVM 14 the limit is raised
(`-runtime-memory-check-threshold=64`), and the cache directory's name says so, so that code compiled without it is
not loaded. (Later LLVMs group the runs of one array themselves; raising the limit there made the first LeNet layer
slower.) MINICNN_LLVM_OPTIONS=0 leaves it out. A directory the user names (NUMBA_CACHE_DIR) is used as it is, so
there each setting needs a directory of its own.

numba picks a kernel's cache directory when the kernel is decorated, that is when its module is imported, so
`minicnn/__init__.py` imports this module before any kernel module; this works whether or not numba was imported
first. `cache_dir` tells the directory chosen. It is not exported to the environment: a child process running
another numba version would take it for the user's choice.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .files import writable_dir

# LLVM command-line options, by the LLVM major versions they are for, and the tag they add to the cache's name
OLD_LLVM_OPTIONS = ("-runtime-memory-check-threshold=64",)
OLD_LLVM_BELOW = 15


def llvm_options() -> tuple[tuple[str, ...], str]:
    """(the LLVM options minicnn sets for this llvmlite, the suffix they give the cache directory's name)."""
    import llvmlite.binding as llvm

    if os.environ.get("MINICNN_LLVM_OPTIONS", "").strip() == "0":  # to measure what they change
        return (), ""
    if llvm.llvm_version_info[0] < OLD_LLVM_BELOW:
        return OLD_LLVM_OPTIONS, "-mc64"
    return (), ""


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
    for directory in per_version_dirs(numba.__version__ + llvm_options()[1]):
        if writable_dir(directory):
            config.CACHE_DIR = str(directory)
            return directory
    return None


def set_llvm_options() -> None:
    """Give LLVM the options of `llvm_options` (process-wide; they only change how loops are vectorised)."""
    import llvmlite.binding as llvm

    for option in llvm_options()[0]:
        llvm.set_option("minicnn", option)


set_llvm_options()
cache_dir: Path | None = use_per_version_cache()
