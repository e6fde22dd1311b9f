"""Data-parallel training over MPI: N processes (ranks), a copy of the network in each, one global batch between them.

    mpiexec -n 2 python -m minicnn train lenet          # two processes on this machine
    mpiexec -n 8 -f hosts python -m minicnn train vgg11  # eight, on the machines listed in `hosts`

The algorithm, as `train_ch5` runs it when this process was started by mpiexec:
  1. every rank starts from the same parameters: rank 0's, sent to the others (`broadcast`);
  2. each global batch of B images is cut into N shards, rank r taking rows B*r//N up to B*(r+1)//N (`shard`),
     and each rank computes the gradient of the summed loss over its own rows only;
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

from .errors import UserError
from .fast import tuning

BUCKET_BYTES = 4 << 20  # gradients travel in pieces of this size: few calls, each one still cache-sized
TIMEOUT = float(os.environ.get("MINICNN_DIST_TIMEOUT") or 600)  # seconds a reduction may wait for the other ranks

# What launchers set in the processes they start: MPICH's and Intel MPI's Hydra, Open MPI, PMIx-based ones (Slurm).
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def launched() -> bool:
    """Whether an MPI launcher (mpiexec, mpirun, srun) started this process."""
    return any(var in os.environ for var in _LAUNCHER_VARIABLES)


def launcher_rank() -> int:
    """This process's rank as the launcher's environment says, without MPI (0 when not launched): who reports an
    error that every process meets, even when mpi4py is missing."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


@functools.cache
def world():
    """MPI's COMM_WORLD when an MPI launcher started this process, else None (and mpi4py is not imported).

    The first call also gives this process its share of the machine's cores for BLAS and numba: N processes on
    one machine, each with threads for every core, would fight over them."""
    if not launched():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        raise UserError(
            "this process was started by mpiexec, but mpi4py is not installed: pip install 'minicnn[mpi]' "
            "(mpi4py and MPICH), then run mpiexec from that environment"
        ) from None
    comm = MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
    _local[:] = [local.Get_rank(), local.Get_size()]
    local.Free()
    if _local[1] > 1:
        tuning.share_cores(_local[1])
    return comm


_local = [0, 1]  # (this process's rank among those on its machine, how many run there), set by world()


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
    return _local[0]


def shard(n: int, r: int | None = None, n_ranks: int | None = None) -> tuple[int, int]:
    """The rows [lo, hi) of a batch of n rows that rank r holds: as even as possible, sizes differing by at most 1,
    in rank order (rank 0 the first rows). Everything of a batch (hi - lo may be 0) in one process."""
    r = rank() if r is None else r
    n_ranks = size() if n_ranks is None else n_ranks
    return n * r // n_ranks, n * (r + 1) // n_ranks


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
    """The sums over the ranks of a few scalars (device or host; loss and accuracy sums), in one reduction: a tuple
    of scalars of the same kinds and dtypes."""
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
    return same_on_all(int(np.random.SeedSequence().entropy % 2**31))


def check_in(problem: str | None) -> list[tuple[int, str]]:
    """Every rank says whether its set-up failed (`problem`: one line, or None); each rank gets the list of
    (rank, problem) of all ranks that failed, so that they stop together instead of waiting for the failed ones."""
    if size() == 1:
        return [(0, problem)] if problem else []
    return [(r, p) for r, p in enumerate(world().allgather(problem)) if p]


def barrier() -> None:
    """Wait until every rank has come here (e.g. until rank 0 has written a checkpoint)."""
    if size() > 1:
        _wait(world().Ibarrier(), "a barrier")


def abort(message: str, code: int = 1) -> None:
    """Print `message` (one line, prefixed with this rank) and end every process of the run with exit status
    `code`: the others may be waiting in a reduction that this process will never join."""
    print(f"minicnn: rank {rank()} of {size()}: {message}", file=sys.stderr, flush=True)
    time.sleep(0.5)  # mpiexec forwards the line from a pipe; Abort would end its forwarding before it arrives
    world().Abort(code)


# ---- how the reductions travel ------------------------------------------------------------------------------------


def _xp(a):
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
            distributed_nccl.collective(buf, op, root, world(), rank(), size())
            return
        host = buf.get()
        _mpi(host, op, root)
        buf.set(host)
        return
    _mpi(buf, op, root)


def _mpi(buf: np.ndarray, op: str, root: int) -> None:
    """The MPI call, non-blocking and waited for at most TIMEOUT seconds: a rank that hangs (or dies where the
    launcher does not notice) ends the run with a message instead of leaving the others waiting for ever."""
    from mpi4py import MPI

    comm = world()
    request = comm.Iallreduce(MPI.IN_PLACE, buf, MPI.SUM) if op == "sum" else comm.Ibcast(buf, root)
    _wait(request, "a reduction" if op == "sum" else "a broadcast")


def _wait(request, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not request.Test():
        os.sched_yield()  # a waiting rank gives its core to a computing one where they share cores
        if time.monotonic() > deadline:
            abort(
                f"no answer from the other ranks for {TIMEOUT:g} s in {what}: one of them hangs or died; "
                "stopping the run (MINICNN_DIST_TIMEOUT sets the limit in seconds)",
                code=1,
            )
