"""Checkpoints: a network's parameters (and optionally the training state) in one `.npz` file.

Layout of the archive (plain arrays only, read with `allow_pickle=False`, so a downloaded checkpoint cannot
run code):
    meta            0-d unicode array holding JSON: format version, network name, its settings, training state
    param/<name>    one array per parameter, in definition order
    opt/<name>      SGD momentum buffers, when a trainer's state is saved
Writes are atomic: the archive goes to a temporary file in the same directory, then `os.replace` renames it,
so an interrupted save never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

FORMAT = "minicnn-checkpoint/1"


def save(path, net, meta: dict, trainer=None) -> Path:
    """Write the parameters of `net` (and the trainer's momentum buffers) with `meta` to `path` atomically."""
    path = Path(path)
    arrays = {"meta": np.array(json.dumps({"format": FORMAT, **meta}))}
    for name, p in net.collect_params().items():
        arrays[f"param/{name}"] = p.data().asnumpy()
    if trainer is not None:
        for name, v in trainer.state_dict().items():
            arrays[f"opt/{name}"] = np.asarray(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# What reading a damaged or foreign file can raise, from the zip layer, the decompressor or NumPy's .npy parser.
# (A pickled object array raises ValueError because of allow_pickle=False: it is refused, never unpickled.)
_READ_ERRORS = (
    OSError, ValueError, KeyError, EOFError, TypeError, OverflowError, NotImplementedError, RuntimeError,
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
)  # fmt: skip


def load(path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(meta, parameters by name, optimizer states by name) from a checkpoint; DataError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist; train with --save {path} first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if "meta" not in names:
                raise DataError(f"{path} is not a minicnn checkpoint (no 'meta' entry)")
            meta = json.loads(str(archive["meta"]))
            params = {k[6:]: archive[k] for k in names if k.startswith("param/")}
            opt = {k[4:]: archive[k] for k in names if k.startswith("opt/")}
    except DataError:
        raise
    except MemoryError:  # an array header that declares more elements than could ever fit
        raise DataError(f"{path} is not a readable minicnn checkpoint (it declares an impossibly big array)") from None
    except _READ_ERRORS as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise DataError(f"{path} is not a readable minicnn checkpoint ({detail})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        shown = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{path} is not a minicnn checkpoint (format {shown!r}, expected {FORMAT!r})")
    if not isinstance(meta.get("network"), str) or not isinstance(meta.get("settings"), dict):
        raise DataError(f"{path} is a damaged minicnn checkpoint (its meta lacks the network name or settings)")
    return meta, params, opt


def apply(path, net, params: dict[str, np.ndarray]) -> None:
    """Copy checkpoint parameters into `net`, after checking that every name and shape matches."""
    own = net.collect_params()
    if list(own) != list(params):
        missing = [k for k in own if k not in params][:3]
        extra = [k for k in params if k not in own][:3]
        raise DataError(
            f"{path} holds the parameters of another network (missing {missing}, unexpected {extra}); "
            "load it with the network and settings it was trained with"
        )
    for name, p in own.items():
        if params[name].dtype.kind != "f":
            raise DataError(f"{path}: parameter {name} holds {params[name].dtype} values, not floating point")
        if tuple(params[name].shape) != tuple(p.shape):
            raise DataError(
                f"{path}: parameter {name} has shape {tuple(params[name].shape)} in the checkpoint but "
                f"{tuple(p.shape)} in the network; use the same network settings (e.g. --width-divisor)"
            )
    for name, p in own.items():
        p.set_data(params[name])
