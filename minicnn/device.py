"""Devices (MXNet calls them contexts): `cpu()`, `gpu(i)`, `try_gpu()`."""

from __future__ import annotations

from . import backend
from .errors import DeviceError


class Context:
    """Where arrays live: ('cpu', 0) or ('gpu', i)."""

    __slots__ = ("device_type", "device_id")

    def __init__(self, device_type: str, device_id: int = 0):
        if device_type not in ("cpu", "gpu"):
            raise ValueError(f"unknown device type {device_type!r}: use 'cpu' or 'gpu'")
        self.device_type = device_type
        self.device_id = int(device_id)

    @property
    def backend(self):
        """The backend module for this device (raises DeviceError if it cannot be used)."""
        module = backend.for_device(self.device_type)
        if self.device_type == "gpu":
            module.use_device(self.device_id)
        return module

    def __eq__(self, other) -> bool:
        return isinstance(other, Context) and (self.device_type, self.device_id) == (
            other.device_type,
            other.device_id,
        )

    def __hash__(self) -> int:
        return hash((self.device_type, self.device_id))

    def __repr__(self) -> str:
        return f"{self.device_type}({self.device_id})"


def cpu(device_id: int = 0) -> Context:
    return Context("cpu", device_id)


def gpu(device_id: int = 0) -> Context:
    return Context("gpu", device_id)


def try_gpu(device_id: int = 0) -> Context:
    """gpu(device_id) when CuPy and a CUDA device work, otherwise cpu() (the chapter's `try_gpu`)."""
    try:
        ctx = gpu(device_id)
        ctx.backend  # noqa: B018 - raises when the GPU cannot be used
        return ctx
    except DeviceError:
        return cpu()


def one_context(ctx, what: str) -> Context | None:
    """`ctx` as one Context: Gluon lets initialize() take a list of devices, one copy of the parameters on each;
    minicnn keeps one copy, so a list must name one device (several processes, one per device, is
    docs/distributed.md's way)."""
    if isinstance(ctx, (list, tuple)):
        if len(ctx) != 1:
            raise ValueError(
                f"{what}: ctx={list(ctx)} names {len(ctx)} devices; minicnn keeps the parameters on one, give one "
                "(for several devices, run one process per device: docs/distributed.md)"
            )
        ctx = ctx[0]
    if ctx is not None and not isinstance(ctx, Context):
        raise TypeError(f"{what}: ctx must be a device such as minicnn.cpu() or minicnn.gpu(0), got {ctx!r}")
    return ctx


def context_of(a) -> Context:
    """The device an array lives on."""
    module = backend.of(a)
    if module.name == "cpu":
        return cpu()
    return gpu(module.device_id_of(a))


def parse(name: str) -> Context:
    """'cpu' | 'gpu' | 'gpu:1' | 'auto' -> Context (auto = try_gpu())."""
    name = name.strip().lower()
    if name == "auto":
        return try_gpu()
    kind, _, idx = name.partition(":")
    if kind not in ("cpu", "gpu") or (idx and not idx.isdigit()):
        raise DeviceError(f"unknown device {name!r}: use cpu, gpu, gpu:N or auto")
    return Context(kind, int(idx or 0))
