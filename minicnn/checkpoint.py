"""Checkpoints: a network's parameters (and optionally the training state) in one `.npz` file.

Layout of the archive (plain arrays only; every entry's header is read first and an object array refused, so a
downloaded checkpoint cannot run code):
    meta            0-d unicode array holding JSON: format version, network name, its settings, training state
                    (a file of Block.save_parameters: "by": "save_parameters", no settings, no state)
    param/<name>    one array per parameter, in definition order: named by layer (conv0_weight) in the command
                    line's checkpoints, by place (0.weight) in Block.save_parameters' files, as in Gluon
    opt/<name>      SGD momentum buffers, when a trainer's state is saved
Writes are atomic: the archive goes to a temporary file in the same directory, then `os.replace` renames it,
so an interrupted save never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

FORMAT = "minicnn-checkpoint/1"


def save(path, net, meta: dict, trainer=None, params: dict | None = None) -> Path:
    """Write the parameters of `net` (and the trainer's momentum buffers) with `meta` to `path` atomically.
    params: name -> Parameter to write instead of `net.collect_params()` (Block.save_parameters names them by
    their place in the network)."""
    path = Path(path)
    arrays = {"meta": np.array(json.dumps({"format": FORMAT, **meta}))}
    for name, p in (net.collect_params() if params is None else params).items():
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


# What reading a damaged or foreign file can raise, from the zip layer, a decompressor or NumPy's .npy header parser.
# None of their messages is shown: they speak of NumPy's internals, and some advise loading pickled data.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, EOFError, TypeError, OverflowError, NotImplementedError, RuntimeError,
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
)  # fmt: skip
try:  # a damaged zip directory can name LZMA compression; zipfile then raises lzma's own error
    import lzma

    _READ_ERRORS += (lzma.LZMAError,)
except ImportError:  # a Python built without lzma
    pass

_NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20
_PICKLED = "holds pickled Python objects, which minicnn never writes and never loads"
# Who writes a checkpoint, as its readers say it: the command line (a run) or Block.save_parameters (values only).
# (what a missing file is called, how to write one, the advice when its parameters do not fit the network)
_WRITERS = {
    "train --save": (
        "checkpoint", "train with --save {path} first",
        "load it with the network and settings it was trained with (e.g. the same --width-divisor)",
    ),
    "save_parameters": (
        "parameter file", "write it with net.save_parameters first",
        "load it into a network like the one that saved it, or pass allow_missing=True / ignore_extra=True",
    ),
}  # fmt: skip
SAVED_BY_BLOCK = "save_parameters"  # meta["by"] of a file Block.save_parameters wrote


def load(path, writer: str = "train --save") -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(meta, parameters by name, optimizer states by name) from a checkpoint; DataError for anything else.
    writer: who the reader expects to have written it, "train --save" (the command line, which needs a run's
    checkpoint) or "save_parameters" (Block.load_parameters, which takes either), for the messages.

    Nothing is unpickled: a file or an entry that holds pickled objects is refused after reading its header.
    """
    path = Path(path)
    noun, how, _ = _WRITERS[writer]
    not_npz = f"it is not an .npz archive; pass a file written by {writer}"
    if not path.is_file():
        raise DataError(f"{noun} {path} does not exist; {how.format(path=path)}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise DataError(
            f"checkpoint {path} cannot be read ({exc.strerror or 'read error'}); check its permissions"
        ) from None
    if head.startswith(_NPY_MAGIC):
        raise DataError(f"{path} is not a minicnn checkpoint: {_npy_kind(path, not_npz)}")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle's PROTO opcode, protocol 2 to 5
        raise DataError(f"{path} is not a minicnn checkpoint: it {_PICKLED}")
    if not head.startswith(b"PK"):
        raise DataError(f"{path} is not a minicnn checkpoint: {not_npz}")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
            if "meta" not in entries:
                raise DataError(f"{path} is not a minicnn checkpoint (no 'meta' entry)")
            wanted = [k for k in entries if k == "meta" or k.startswith(("param/", "opt/"))]
            arrays = {k: _read_entry(path, archive, entries[k], k) for k in wanted}
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path} is not a readable minicnn checkpoint (it declares an impossibly big array)") from None
    except _READ_ERRORS:
        raise DataError(
            f"{path} is not a readable minicnn checkpoint (its zip archive is damaged or cut short)"
        ) from None
    meta = _meta(path, arrays.pop("meta"))
    if writer == "train --save" and meta.get("by") == SAVED_BY_BLOCK:
        raise DataError(
            f"{path} holds a network's values written by save_parameters, not a training run's checkpoint; read it "
            "with net.load_parameters in Python"
        )
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}
    opt = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    return meta, params, opt


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) from the header of the .npy stream `f`, left at the start of the data."""
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:  # 3.0 only adds UTF-8 field names, which no checkpoint has
        raise ValueError(f".npy format {version}")
    return readers[version](f)


def _npy_kind(path: Path, not_npz: str) -> str:
    """What a bare .npy file given as a checkpoint holds, in words (it is never loaded)."""
    try:
        with open(path, "rb") as f:
            _, _, dtype = _npy_header(f)
    except _READ_ERRORS:
        return f"it is a damaged NumPy .npy file; {not_npz.removeprefix('it is ')}"
    if dtype.hasobject:
        return f"it {_PICKLED}"
    return f"it is a single NumPy array (.npy); {not_npz.removeprefix('it is ')}"


def _read_entry(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    """The array of one .npy entry, its header checked before any data is read or allocated."""
    try:
        with archive.open(info) as f:
            shape, fortran_order, dtype = _npy_header(f)
            if dtype.hasobject:
                raise DataError(f"{path} is not a minicnn checkpoint: its entry {key!r} {_PICKLED}")
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            if nbytes > info.file_size:
                raise DataError(
                    f"{path} is not a readable minicnn checkpoint (its entry {key!r} declares shape {shape}, more "
                    f"than its {info.file_size} bytes hold)"
                )
            array = np.empty(count, dtype=dtype)
            raw, done = array.view(np.uint8), 0
            while done < nbytes:  # in chunks into the array itself: no second copy of a large entry
                got = f.readinto(raw[done : done + _CHUNK])
                if not got:
                    raise EOFError
                done += got
        return array.reshape(shape, order="F" if fortran_order else "C")
    except DataError:
        raise
    except _READ_ERRORS:
        raise DataError(f"{path} is not a readable minicnn checkpoint (its entry {key!r} is damaged)") from None


def _meta(path: Path, array: np.ndarray) -> dict:
    """The checkpoint's meta entry (a 0-d string array holding JSON), checked to be minicnn's format."""
    not_json = f"{path} is not a minicnn checkpoint (its 'meta' entry is not JSON text)"
    if array.ndim != 0 or array.dtype.kind != "U":
        raise DataError(not_json)
    try:
        meta = json.loads(str(array))
    except (ValueError, RecursionError):
        raise DataError(not_json) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        shown = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{path} is not a minicnn checkpoint (format {shown!r}, expected {FORMAT!r})")
    if not isinstance(meta.get("network"), str) or not isinstance(meta.get("settings"), dict):
        raise DataError(f"{path} is a damaged minicnn checkpoint (its meta lacks the network name or settings)")
    return meta


def apply(
    path, net, params: dict[str, np.ndarray], own: dict | None = None, allow_missing=False, ignore_extra=False,
    writer: str = "train --save", ctx=None,
) -> None:  # fmt: skip
    """Copy checkpoint parameters into `net` (or into `own`, name -> Parameter), after checking that every name and
    shape matches; an uninitialised parameter takes the checkpoint's values and shape. allow_missing leaves the
    parameters the checkpoint lacks as they are, ignore_extra skips those the network lacks. Nothing is written
    unless every check passes. writer: as in `load`, for the advice; ctx: where uninitialised parameters go."""
    advice = _WRITERS[writer][2]
    own = net.collect_params() if own is None else own
    missing = [k for k in own if k not in params]
    extra = [k for k in params if k not in own]
    if (missing and not allow_missing) or (extra and not ignore_extra):
        lacks = [f"it lacks {missing[:3]}" if missing and not allow_missing else ""]
        lacks += [f"the network lacks {extra[:3]}" if extra and not ignore_extra else ""]
        raise DataError(
            f"{path} holds the parameters of another network ({', '.join(x for x in lacks if x)}); {advice}"
        )
    kept = {name: p for name, p in own.items() if name in params}
    for name, p in kept.items():
        if params[name].dtype.kind != "f":
            raise DataError(f"{path}: parameter {name} holds {params[name].dtype} values, not floating point")
        saved = params[name].shape  # a deferred parameter's unknown sizes (0) take the saved ones
        if len(saved) != len(p.shape) or any(d not in (0, v) for d, v in zip(p.shape, saved)):
            raise DataError(
                f"{path}: parameter {name} has shape {tuple(saved)} in the checkpoint but {tuple(p.shape)} in the "
                f"network; {advice}"
            )
    for name, p in kept.items():
        p.load(params[name], ctx)
