"""Summing and broadcasting GPU arrays between ranks with NCCL, through CuPy, with no copy to the host.

NCCL joins the ranks in a communicator of its own: rank 0 makes a unique id, MPI sends it to the others, and each
rank joins with (size, id, rank) on the GPU it uses (distributed.py picks GPU local_rank % GPUs on the machine).
The calls are queued on the current CUDA stream, like the kernels around them. Where CuPy has no NCCL,
distributed.py copies GPU arrays to the host and reduces them over MPI instead.
"""

from __future__ import annotations

import numpy as np

_communicators: dict[int, object] = {}


def usable() -> bool:
    """Whether CuPy was built with NCCL (cupy.cuda.nccl imports and says it is available)."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return bool(getattr(nccl, "available", True))


def _communicator(device_id: int, comm):
    """The NCCL communicator of every rank's GPU, made once per device by every rank at the same time (at their
    first collective on the GPU): rank 0's unique id reaches the others over the MPI communicator `comm`."""
    if device_id not in _communicators:
        from cupy.cuda import nccl

        unique_id = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        unique_id = comm.bcast(unique_id, root=0)
        _communicators[device_id] = nccl.NcclCommunicator(comm.Get_size(), unique_id, comm.Get_rank())
    return _communicators[device_id]


def nccl_type(dtype) -> int:
    """NCCL's code for a NumPy dtype (float32, float64 or int64)."""
    from cupy.cuda import nccl

    types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
    types[np.dtype(np.int64)] = nccl.NCCL_INT64
    if np.dtype(dtype) not in types:
        raise TypeError(f"distributed: NCCL reduces float32, float64 and int64 arrays, not {np.dtype(dtype)}")
    return types[np.dtype(dtype)]


def collective(buf, op: str, root: int, comm) -> None:
    """Sum (op 'sum') or broadcast (op 'bcast', from `root`) the contiguous CuPy array `buf` in place, on the
    current CUDA stream, over the ranks of the MPI communicator `comm` (distributed.world())."""
    import cupy
    from cupy.cuda import nccl

    nc = _communicator(cupy.cuda.Device().id, comm)
    stream = cupy.cuda.get_current_stream().ptr
    if op == "sum":
        nc.allReduce(buf.data.ptr, buf.data.ptr, buf.size, nccl_type(buf.dtype), nccl.NCCL_SUM, stream)
    else:
        nc.bcast(buf.data.ptr, buf.size, nccl_type(buf.dtype), root, stream)
