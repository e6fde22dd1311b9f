"""Process tuning: how this process's BLAS, threads and allocator are set up for minicnn's kernels.

`import minicnn` applies it (whatever was imported before: NumPy first, as scripts and notebooks do, gets the same
settings), unless MINICNN_TEXTBOOK=1 or MINICNN_TUNING=0 is set; `python -m minicnn ... --textbook` takes it back
(`undo`) before any work starts.

- OpenBLAS's threads spin after every GEMM (2^28 cycles, about 0.1 s) before they sleep; on two cores that spinning
  takes a core from the numba kernel that follows each GEMM. OPENBLAS_THREAD_TIMEOUT=14 cuts it to 2^14 cycles.
  OpenBLAS reads the variable when it is loaded; where NumPy has loaded it already, it is told to read its
  environment again (`openblas_read_env`) and to restart its threads, which then take the new time-out.
- numba's threads: its OpenMP layer (libgomp) where it loads, else its workqueue: OpenMP's threads start a parallel
  loop in microseconds, the workqueue's in tens to hundreds. Their spin after a loop is cut from libgomp's
  300,000 turns to GOMP_SPINCOUNT=10000, so that they leave the cores to BLAS (libgomp reads it when numba starts
  its first parallel loop).
- glibc keeps freed memory in its heap instead of unmapping it (M_MMAP_MAX = 0, trim threshold 256 MiB), so the
  large arrays each training step allocates and frees are reused instead of being page-faulted in and zeroed by
  the kernel afresh.

A value the environment already sets (OPENBLAS_THREAD_TIMEOUT, NUMBA_THREADING_LAYER, GOMP_SPINCOUNT, MALLOC_*_)
wins. docs/performance.md has the measurements behind each; docs/configuration.md lists them all.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ..config import textbook_mode

OPENBLAS_THREAD_TIMEOUT = "14"  # 2^14 cycles of spinning after a GEMM
GOMP_SPINCOUNT = "10000"
MALLOPT = (  # (environment variable that wins, mallopt parameter from <malloc.h>, value, glibc's default)
    ("MALLOC_MMAP_THRESHOLD_", -3, 32 << 20, 128 << 10),
    ("MALLOC_TRIM_THRESHOLD_", -1, 256 << 20, 128 << 10),
    ("MALLOC_MMAP_MAX_", -4, 0, 65536),
)
THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # numba wants all three named

_applied: dict[str, object] = {}  # what apply() changed, and what it found there before


def wanted() -> bool:
    """Whether this process should be tuned: not in textbook mode, and MINICNN_TUNING is not 0."""
    return not textbook_mode() and os.environ.get("MINICNN_TUNING", "1").strip() != "0"


def apply() -> None:
    """Tune this process, once, unless `wanted()` says no."""
    if _applied or not wanted():
        return
    _applied["tuned"] = True
    for var, value in (("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_THREAD_TIMEOUT), ("GOMP_SPINCOUNT", GOMP_SPINCOUNT)):
        if var not in os.environ:
            os.environ[var] = value
            _applied[var] = None
    _reload_openblas_settings()  # NumPy's OpenBLAS, if already loaded, takes the new time-out now
    import numba  # after the variables: importing numba imports NumPy, which would load OpenBLAS

    if "NUMBA_THREADING_LAYER" not in os.environ:
        _applied["threading_layer"] = (numba.config.THREADING_LAYER_PRIORITY, numba.config.THREADING_LAYER)
        numba.config.THREADING_LAYER_PRIORITY = THREADING_LAYER_PRIORITY
        numba.config.THREADING_LAYER = "default"  # the first of the priority list that loads
    _applied["mallopt"] = _mallopt(2)


def undo() -> None:
    """Take back what `apply` changed, as far as a running process allows: OpenBLAS's time-out, and numba's thread
    settings when no parallel loop has run yet; glibc gets its default values back (static ones, not its adaptive
    threshold). `python -m minicnn --textbook` calls it before any work starts."""
    if not _applied:
        return
    for var in ("OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT"):
        if var in _applied:
            os.environ.pop(var, None)
    _reload_openblas_settings()
    if "threading_layer" in _applied:
        import numba

        numba.config.THREADING_LAYER_PRIORITY, numba.config.THREADING_LAYER = _applied["threading_layer"]
    if _applied.get("mallopt"):
        _mallopt(3)
    _applied.clear()


def state() -> dict:
    """The settings in force now: each loaded OpenBLAS's thread time-out, the thread and allocator variables, and
    what `apply` changed (for the tests and for `python -m minicnn` users who wonder)."""
    return {
        "openblas_thread_timeout": [lib.openblas_thread_timeout() for lib in _openblas_libraries()],
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "threading_layer_priority": _numba_priority(),
        "applied": sorted(_applied),
    }


def share_cores(processes: int) -> int:
    """Give this process its share of the cores it may run on when `processes` processes share them (data-parallel
    ranks on one machine): that many threads for OpenBLAS and numba, at least one, so that the processes do not
    fight over the cores (oversubscribed, a GEMM's spinning threads wait for each other: docs/performance.md).
    Called by distributed.world() in every mode; OPENBLAS_NUM_THREADS / NUMBA_NUM_THREADS set by the user win.
    Returns the thread count."""
    threads = max(1, len(os.sched_getaffinity(0)) // max(1, processes))
    if "OPENBLAS_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in os.environ:
        for lib in _openblas_libraries():
            set_threads = _openblas_function(lib, "set_num_threads")
            if set_threads is not None:
                set_threads(ctypes.c_int(threads))
    if "NUMBA_NUM_THREADS" not in os.environ:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def blas_threads() -> list[int]:
    """The thread count of each loaded OpenBLAS."""
    functions = (_openblas_function(lib, "get_num_threads") for lib in _openblas_libraries())
    return [int(get()) for get in functions if get is not None]


def _openblas_function(lib, stem: str):
    """OpenBLAS's `openblas_<stem>` under the names builds give it (NumPy 2's wheels: scipy_openblas_<stem>64_)."""
    for name in (f"openblas_{stem}", f"openblas_{stem}64_", f"scipy_openblas_{stem}64_"):
        if hasattr(lib, name):
            return getattr(lib, name)
    return None


def _numba_priority():
    numba = sys.modules.get("numba")
    return list(numba.config.THREADING_LAYER_PRIORITY) if numba is not None else None


def _openblas_libraries() -> list:
    """The OpenBLAS libraries mapped into this process that can re-read their environment (NumPy's among them)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if "openblas" in line.lower()}
    except (OSError, IndexError):  # not Linux: leave BLAS alone
        return []
    libs = []
    for path in sorted(p for p in paths if ".so" in os.path.basename(p)):
        try:
            lib = ctypes.CDLL(path)  # the library already loaded: the same handle, nothing loaded twice
        except OSError:
            continue
        if all(hasattr(lib, f) for f in ("openblas_read_env", "blas_thread_shutdown_", "blas_thread_init")):
            lib.openblas_thread_timeout.restype = ctypes.c_int
            libs.append(lib)
    return libs


def _reload_openblas_settings() -> None:
    """Make each loaded OpenBLAS read its environment again and restart its threads (the time-out is taken when
    they start). No GEMM may run meanwhile: called at import and before a command's work."""
    for lib in _openblas_libraries():
        lib.openblas_read_env()
        lib.blas_thread_shutdown_()
        lib.blas_thread_init()


def _mallopt(column: int) -> bool:
    """Set glibc's allocator parameters to MALLOPT's values (column 2) or its defaults (column 3), where the
    environment does not set them; whether anything was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    done = False
    for row in MALLOPT:
        if row[0] not in os.environ:
            libc.mallopt(row[1], row[column])
            done = True
    return done
