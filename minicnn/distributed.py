"""Data-parallel training over MPI: N processes (ranks), a copy of the network in each, one global batch between them.

    mpiexec -n 2 python -m minicnn train lenet          # two processes on this machine
    mpiexec -n 8 -f hosts python -m minicnn train vgg11  # eight, on the machines listed in `hosts`

The algorithm, as `train_ch5` runs it when this process was started by mpiexec:
  1. every rank starts from the same parameters: rank 0's, sent to the others (`broadcast`);
  2. each global batch of B images is cut into N shards, rank r taking rows B*r//N up to B*(r+1)//N (`shard`; a
     sharded DataLoader gathers only those rows), and each rank computes the gradient of the summed loss over
     its own rows only;
  3. the ranks add up their gradients (`allreduce`), so that each one holds
         sum over ranks of grad(sum of the shard's losses) = grad(sum of the B losses);
  4. each rank takes the same SGD step with that gradient divided by B (`Trainer.step(B)`), so every rank stays
     equal to the others, and to one process that trained on whole batches, up to the order of the additions.
Dropout keeps this: every rank draws the masks of the whole global batch and keeps its shard's rows (random.py).
The loss and accuracy sums and a request to stop are added up the same way (`sum_over_ranks`, `any_rank`).

Run without mpiexec, this module changes nothing: rank() is 0, size() is 1, and mpi4py is never imported.
The reductions go over MPI (mpi4py) between host arrays; between GPUs over NCCL (distributed_nccl.py) where CuPy
has it. docs/distributed.md has the cost model and what it predicts for more machines.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np

from . import random
from .data.loader import rows_of_rank
from .errors import UserError
from .fast import tuning

BUCKET_BYTES = 4 << 20  # gradients travel in pieces of this size: few calls, each one still cache-sized
DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait for the other ranks (MINICNN_DIST_TIMEOUT)

# How launchers tell a process how many were started: MPICH's and Intel MPI's Hydra, Open MPI, Slurm's srun.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def launched() -> bool:
    """Whether an MPI launcher (mpiexec, mpirun, srun) started this process among two or more. (Started alone,
    as `mpiexec -n 1` or a one-task `srun` do, it is one process as without a launcher.)"""
    if not any(var in os.environ for var in _RANK_VARIABLES):
        return False  # SLURM_NTASKS alone is also set in a batch script that starts no MPI processes
    sizes = [os.environ[var] for var in _SIZE_VARIABLES if os.environ.get(var, "").isdigit()]
    return bool(sizes) and int(sizes[0]) > 1


def launcher_rank() -> int:
    """This process's rank as the launcher's environment says, without MPI (0 when not launched): who reports an
    error that every process meets, even when mpi4py is missing."""
    for var in _RANK_VARIABLES:
        if launched() and os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def timeout() -> float:
    """MINICNN_DIST_TIMEOUT in seconds (default 600): how long a collective waits for the other ranks."""
    text = os.environ.get("MINICNN_DIST_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise UserError(f"MINICNN_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return value


class _Machine:
    """The processes of this run on this machine (MPI's shared-memory group): how many, and which one this is."""

    comm = None
    rank, size = 0, 1


@functools.cache
def world():
    """MPI's COMM_WORLD when an MPI launcher started this process among others, else None (mpi4py not imported).

    Its first call also sets up what every data-parallel process needs before its first step: the group of
    processes on its machine (`local_rank`), and its share of the machine's cores for BLAS and numba threads
    (`tuning.share_cores`): N processes on one machine, each with threads for every core, would fight over them."""
    if not launched():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UserError(
            "this process was started by mpiexec, but mpi4py is not installed: pip install 'minicnn[mpi]' "
            "(mpi4py and MPICH), then run mpiexec from that environment"
        ) from None
    timeout()  # a bad MINICNN_DIST_TIMEOUT is one line now, not at the first step
    comm = MPI.COMM_WORLD
    _Machine.comm = comm.Split_type(MPI.COMM_TYPE_SHARED)
    _Machine.rank, _Machine.size = _Machine.comm.Get_rank(), _Machine.comm.Get_size()
    if _Machine.size > 1:
        tuning.share_cores(_Machine.size)
    return comm


def rank() -> int:
    """This process's number, 0 to size() - 1 (0 without mpiexec)."""
    comm = world()
    return comm.Get_rank() if comm is not None else 0


def size() -> int:
    """How many processes train together (1 without mpiexec)."""
    comm = world()
    return comm.Get_size() if comm is not None else 1


def local_rank() -> int:
    """This process's number among the processes on its machine (which GPU it takes)."""
    world()
    return _Machine.rank


def local_size() -> int:
    """How many processes of this run are on this machine."""
    world()
    return _Machine.size


def shard(n: int, r: int | None = None, n_ranks: int | None = None) -> tuple[int, int]:
    """The rows [lo, hi) = [n*r//N, n*(r+1)//N) of a batch of n rows that rank r of N holds: in rank order, sizes
    differing by at most 1 (hi - lo may be 0 when n < N); the whole batch in one process."""
    return rows_of_rank(n, rank() if r is None else r, size() if n_ranks is None else n_ranks)


def broadcast(arrays, root: int = 0) -> None:
    """Overwrite each array (NumPy or CuPy) in place with rank `root`'s values."""
    if size() == 1:
        return
    for a in arrays:
        _each_piece(a, lambda piece: _collective(piece, "bcast", root))


def allreduce(arrays) -> None:
    """Replace each array (NumPy or CuPy) in place with its sum over the ranks.

    Small arrays are copied into one flat bucket and summed together (one call for many LeNet biases); an array of
    a bucket or more is summed in place, a bucket-sized piece at a time. Every rank must pass the same arrays in
    the same order."""
    if size() == 1:
        return
    for group in _buckets(list(arrays)):
        if len(group) == 1:
            _each_piece(group[0], lambda piece: _collective(piece, "sum"))
            continue
        xp = _xp(group[0])
        flat = xp.concatenate([a.reshape(-1) for a in group])
        _collective(flat, "sum")
        start = 0
        for a in group:
            a[...] = flat[start : start + a.size].reshape(a.shape)
            start += a.size


def sum_over_ranks(*values):
    """The sums over the ranks of a few scalars (loss and accuracy sums), in one reduction: a tuple of 0-d arrays
    of the values' dtypes, on the device of the first (summed in float64, then rounded to each dtype)."""
    if size() == 1:
        return values
    xp = _xp(values[0])
    buf = xp.stack([xp.asarray(v, dtype=np.float64) for v in values])
    _collective(buf, "sum")
    dtypes = [v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype for v in values]
    return tuple(buf[i].astype(dtype) for i, dtype in enumerate(dtypes))


def any_rank(flag: bool) -> bool:
    """Whether `flag` is true on any rank (a Ctrl-C that reached one process stops them all at the same step)."""
    if size() == 1:
        return bool(flag)
    buf = np.array([1.0 if flag else 0.0])
    _collective(buf, "sum")
    return bool(buf[0])


def same_on_all(value, root: int = 0):
    """Rank `root`'s `value` (a small Python object: a seed, a checkpoint's settings), on every rank."""
    return value if size() == 1 else world().bcast(value, root=root)


def shared_seed() -> int:
    """A fresh random seed, the same on every rank (rank 0 draws it): for the loaders' shuffling and
    `minicnn.random.seed`, which must draw the same numbers on every rank."""
    return same_on_all(random.fresh_seed())


def check_in(problem):
    """Every rank says whether its set-up failed (`problem`: anything but None, e.g. a message); each rank gets
    the list of (rank, problem) of the ranks that failed, so that all stop together instead of waiting for them.
    (A rank that never comes is waited for at most `timeout()` seconds.)"""
    if size() == 1:
        return [(0, problem)] if problem is not None else []
    if not any_rank(problem is not None):
        return []
    return [(r, p) for r, p in enumerate(world().allgather(problem)) if p is not None]


def first_on_each_machine(step):
    """step() on the first process of each machine, then on its other processes (which find what the first one
    downloaded or compiled); returns step()'s value. The others run it even when the first one failed."""
    world()
    if _Machine.size == 1:
        return step()
    if _Machine.rank == 0:
        try:
            return step()
        finally:
            _wait(_Machine.comm.Ibarrier(), "a barrier")
    _wait(_Machine.comm.Ibarrier(), "a barrier")
    return step()


def barrier() -> None:
    """Wait until every rank has come here (e.g. until rank 0 has written a checkpoint)."""
    if size() > 1:
        _wait(world().Ibarrier(), "a barrier")


def abort(message: str, code: int = 1) -> None:
    """Print `message` (one line, prefixed with this rank) and end every process of the run with exit status
    `code` (MPI_Abort): the others may be waiting in a reduction that this process will never join."""
    print(f"minicnn: rank {rank()} of {size()}: {message}", file=sys.stderr, flush=True)
    time.sleep(0.5)  # mpiexec forwards the line through a pipe; MPI_Abort would end the forwarding before it arrives
    world().Abort(code)


# ---- how the reductions travel ------------------------------------------------------------------------------------


def _xp(a):
    """The array module of `a`: NumPy, or CuPy for a GPU array."""
    return sys.modules["cupy"] if type(a).__module__.startswith("cupy") else np


def _buckets(arrays: list) -> list[list]:
    """Consecutive arrays grouped into buckets of at most BUCKET_BYTES; an array that size or larger alone."""
    groups: list[list] = []
    for a in arrays:
        last = groups[-1] if groups else None
        fits = (
            last is not None and a.nbytes < BUCKET_BYTES and last[0].nbytes < BUCKET_BYTES
            and a.dtype == last[0].dtype and sum(b.nbytes for b in last) + a.nbytes <= BUCKET_BYTES
        )  # fmt: skip
        if fits:
            last.append(a)
        else:
            groups.append([a])
    return groups


def _each_piece(a, action) -> None:
    """action(piece) for consecutive bucket-sized pieces of a contiguous array (views: changes land in `a`)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"distributed: expected a contiguous array, got one of shape {a.shape}")
    flat = a.reshape(-1)
    step = max(1, BUCKET_BYTES // a.itemsize)
    for start in range(0, flat.size, step):
        action(flat[start : start + step])


def _collective(buf, op: str, root: int = 0) -> None:
    """Sum (op 'sum') or broadcast (op 'bcast' from `root`) the contiguous array `buf` in place over every rank.
    GPU arrays go over NCCL where CuPy has it, otherwise through host copies over MPI."""
    if not isinstance(buf, np.ndarray):
        from . import distributed_nccl

        if distributed_nccl.usable():
            distributed_nccl.collective(buf, op, root, world())
            return
        host = buf.get()
        _mpi(host, op, root)
        buf.set(host)
        return
    _mpi(buf, op, root)


def _mpi(buf: np.ndarray, op: str, root: int) -> None:
    """The MPI call, non-blocking and waited for at most `timeout()` seconds: a rank that hangs (or dies where the
    launcher does not notice) ends the run with a message instead of leaving the others waiting for ever."""
    from mpi4py import MPI

    comm = world()
    request = comm.Iallreduce(MPI.IN_PLACE, buf, MPI.SUM) if op == "sum" else comm.Ibcast(buf, root)
    _wait(request, "a reduction" if op == "sum" else "a broadcast")


def _wait(request, what: str) -> None:
    """Wait for an MPI request, at most `timeout()` seconds. It polls, as MPI's blocking calls do, but gives its
    core away between polls (sched_yield), so that where ranks share cores a waiting one does not slow the others."""
    limit = timeout()
    deadline = time.monotonic() + limit
    while not request.Test():
        os.sched_yield()
        if time.monotonic() > deadline:
            abort(
                f"no answer from the other ranks for {limit:g} s in {what}: one of them hangs or died; "
                "stopping the run (MINICNN_DIST_TIMEOUT sets the limit in seconds)",
                code=1,
            )
