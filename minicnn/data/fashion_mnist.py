"""Fashion-MNIST: find the four IDX files, download them if needed, verify and decode them.

A directory the user names (`data_dir=`, `--data-dir`, else `$MINICNN_DATA`) is the only place looked in: the
files are downloaded into it when they are missing, or the missing ones are named in an error, never replaced by
a copy found elsewhere. Only when nothing is named are the default places searched: MXNet's own cache
(`$MXNET_HOME/datasets/fashion-mnist`, default `~/.mxnet/datasets/fashion-mnist`), then the directory of
Debian's `dataset-fashion-mnist` package. Files are checked against known fingerprints (see FileSpec), so a
cache that MXNet filled, Debian's copy and a fresh download from Zalando are all accepted.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from minicnn.errors import DataError
from minicnn.files import writable_dir


@dataclass(frozen=True)
class FileSpec:
    """One dataset file and the fingerprints of its known copies.

    The same data circulates in three gzip wrappings (Zalando's, Debian's, MXNet's mirror), so a file is
    accepted when its gzip bytes are Debian's (`sha256`, `size`) or MXNet's (`mxnet_sha1`), or else when
    its decompressed bytes hash to `content_sha256` (`content_size` bytes), which holds for any wrapping.
    """

    name: str
    sha256: str
    size: int
    mxnet_sha1: str
    content_sha256: str
    content_size: int


FILES: dict[str, FileSpec] = {
    "train_images": FileSpec(
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        26421856,
        "0cf37b0d40ed5169c6b3aba31069a9770ac9043d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        47040016,
    ),
    "train_labels": FileSpec(
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        29491,
        "236021d52f1e40852b06a4c3008d8de8aef1e40b",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60008,
    ),
    "test_images": FileSpec(
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        4422079,
        "626ed6a7c06dd17c0eec72fa3be1740f146a2863",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        7840016,
    ),
    "test_labels": FileSpec(
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        5125,
        "17f9ab60e7257a1620f4ad76bbbaf857c3920701",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        10008,
    ),
}

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Base URLs tried in order; a file's URL is base + file name. The last one is MXNet's mirror.
MIRRORS: list[str] = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/gluon/dataset/fashion-mnist/",
]

# Where Debian's dataset-fashion-mnist package puts the files (a module attribute so tests can move it).
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

FIXES = (
    "install Debian's package (apt-get install dataset-fashion-mnist), set MINICNN_DATA or pass --data-dir "
    "to a directory holding the four files, or run once with network access"
)

# IDX type code → big-endian NumPy dtype (the format's standard codes).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_NDIM = 8
# A header that promises more than this is not a dataset we read; refuse before allocating anything.
_MAX_PAYLOAD = 1 << 31
# DEFLATE cannot compress better than about 1032:1, which bounds what a gzip file of a given size can hold.
_MAX_GZIP_RATIO = 1032
_CHUNK = 1 << 20


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail_fix(path: Path | str, problem: str) -> DataError:
    return DataError(_one_line(f"{path} {problem}; delete it and rerun, or {FIXES}"))


# --------------------------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain) into an array of its shape and native-endian dtype.

    Layout: bytes 0-1 are zero, byte 2 the type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), byte 3 the number of dimensions d, then d big-endian uint32 sizes, then
    exactly prod(sizes) items in big-endian order. Anything else raises DataError naming the file.
    """
    path = Path(path)
    try:
        size_on_disk = path.stat().st_size
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if path.suffix == ".gz" and not compressed:
                raise _fail_fix(path, "is not gzip-compressed although its name ends in .gz")
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse_idx(stream, path, size_on_disk, compressed=True)
            return _parse_idx(raw, path, size_on_disk, compressed=False)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {FIXES}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not an IDX file; pass the directory with --data-dir") from None
    except PermissionError:
        raise DataError(f"{path} cannot be read (permission denied); fix its permissions or {FIXES}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # EOFError: the gzip stream stops early; zlib.error / BadGzipFile: the stream is corrupt.
        raise _fail_fix(path, f"is a corrupt or truncated gzip file ({exc})") from None
    except OSError as exc:
        raise _fail_fix(path, f"could not be read ({exc})") from None


def _parse_idx(stream: BinaryIO, path: Path, size_on_disk: int, compressed: bool) -> np.ndarray:
    head = _read_exactly(stream, 4)
    if len(head) < 4:
        raise _fail_fix(path, f"is too short to be an IDX file ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise _fail_fix(path, f"is not an IDX file (magic starts {head[:2].hex()}, expected 0000)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        raise _fail_fix(path, f"has unknown IDX type code 0x{code:02x} (expected one of 08 09 0b 0c 0d 0e)")
    if not 1 <= ndim <= _MAX_NDIM:
        raise _fail_fix(path, f"has an IDX header with {ndim} dimensions (expected 1 to {_MAX_NDIM})")
    dims_raw = _read_exactly(stream, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise _fail_fix(path, f"is truncated inside its IDX header ({ndim} dimensions announced)")
    shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    # Bound the payload by what the file on disk could possibly hold before reading or allocating.
    limit = min(size_on_disk * _MAX_GZIP_RATIO + 1024, _MAX_PAYLOAD) if compressed else _MAX_PAYLOAD
    if expected > limit:
        raise _fail_fix(
            path, f"has an IDX header claiming shape {shape} ({expected} bytes), more than the file can hold"
        )
    available = size_on_disk - 4 - 4 * ndim
    if not compressed and expected > available:
        raise _fail_fix(path, f"is truncated (expected {expected} bytes of data, got {available})")
    payload = _read_exactly(stream, expected)
    if len(payload) < expected:
        raise _fail_fix(path, f"is truncated (expected {expected} bytes of data, got {len(payload)})")
    if stream.read(1):
        raise _fail_fix(path, f"has trailing bytes after the {expected} bytes of data its header announces")
    # bytearray → a writable array; astype gives native byte order for multi-byte types.
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _read_exactly(stream: BinaryIO, count: int) -> bytearray:
    """Read up to `count` bytes in chunks, so garbage headers never cause one huge allocation."""
    out = bytearray()
    while len(out) < count:
        chunk = stream.read(min(_CHUNK, count - len(out)))
        if not chunk:
            break
        out += chunk
    return out


# --------------------------------------------------------------------------------------------------------
# Finding, verifying and downloading the files
# --------------------------------------------------------------------------------------------------------


def mxnet_dir() -> Path:
    """MXNet's dataset cache: `$MXNET_HOME/datasets/fashion-mnist`, `$MXNET_HOME` defaulting to ~/.mxnet."""
    home = os.environ.get("MXNET_HOME") or str(Path.home() / ".mxnet")
    return Path(home).expanduser() / "datasets" / "fashion-mnist"


def named_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The directory the user named: `data_dir` if given, else `$MINICNN_DATA` if set, else None."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("MINICNN_DATA"):
        return Path(os.environ["MINICNN_DATA"]).expanduser()
    return None


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories looked in: only the named one (see `named_dir`), else MXNet's cache, then Debian's."""
    named = named_dir(data_dir)
    return [named] if named is not None else [mxnet_dir(), DEBIAN_DIR]


def _missing(directory: Path) -> list[str]:
    return [spec.name for spec in FILES.values() if not (directory / spec.name).is_file()]


def _holds_all(directory: Path) -> bool:
    return all((directory / spec.name).is_file() for spec in FILES.values())


# (resolved path, size, mtime_ns) of files already verified in this process: each is hashed once.
_verified: set[tuple[str, int, int]] = set()


def _file_hashes(path: Path) -> tuple[str, str]:
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def _content_sha256(path: Path, limit: int) -> str | None:
    """SHA-256 of the decompressed bytes, or None when there are more than `limit` of them."""
    digest, count = hashlib.sha256(), 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            count += len(chunk)
            if count > limit:
                return None
            digest.update(chunk)
    return digest.hexdigest()


def _is_known_copy(path: Path, spec: FileSpec) -> tuple[bool, str]:
    """(whether `path` is a known-good copy of `spec`, a short description of what was found)."""
    sha256, sha1 = _file_hashes(path)
    if (sha256 == spec.sha256 and path.stat().st_size == spec.size) or sha1 == spec.mxnet_sha1:
        return True, ""
    # An unknown gzip wrapping (e.g. Zalando's own): judge the data inside, which all copies share.
    try:
        content = _content_sha256(path, spec.content_size)
    except (OSError, EOFError, zlib.error) as exc:
        return False, f"is not a readable gzip file ({exc})"
    if content == spec.content_sha256:
        return True, ""
    return False, f"matches no known copy of {spec.name} (SHA-256 {sha256[:16]}…)"


def verify_file(path: Path, spec: FileSpec, strict: bool = True) -> None:
    """Raise DataError naming `path` unless it is a known-good copy of `spec`; cached per process.

    `strict=False` (files in a directory the user named) accepts a readable gzip that matches no known copy,
    with a warning: the user may be pointing at their own IDX data. Parsing still rejects truncated files.
    """
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _verified:
            return
        good, problem = _is_known_copy(path, spec)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc}); fix its permissions or {FIXES}") from None
    if not good:
        if strict or not problem.startswith("matches no known copy"):
            raise _fail_fix(path, f"is corrupt: it {problem}")
        print(f"minicnn: warning: {path} {problem}; using it as given", file=sys.stderr)
    _verified.add(key)


def open_url(url: str, timeout: float = 30.0) -> BinaryIO:
    """Open `url` for reading; tests replace this or use file:// mirrors, so they never touch the network."""
    return urllib.request.urlopen(url, timeout=timeout)


def _progress_bar(name: str, done: int, total: int | None) -> None:
    width = 30
    if total:
        filled = min(width, done * width // total)
        bar = "#" * filled + "." * (width - filled)
        text = f"\rdownloading {name} [{bar}] {done / 1e6:6.1f}/{total / 1e6:.1f} MB"
    else:
        text = f"\rdownloading {name} {done / 1e6:6.1f} MB"
    sys.stderr.write(text)
    sys.stderr.flush()


def _download_one(spec: FileSpec, target: Path, opener: Callable[[str], BinaryIO], progress: bool) -> list[str]:
    """Try every mirror for one file; write it atomically into `target`. Returns the failures seen."""
    failures = []
    for base in MIRRORS:
        url = base + spec.name
        fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{spec.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            done = 0
            with os.fdopen(fd, "wb") as out, opener(url) as response:
                length = getattr(response, "headers", {}).get("Content-Length") if progress else None
                total = int(length) if length and str(length).isdigit() else None
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        _progress_bar(spec.name, done, total)
            if progress:
                sys.stderr.write("\n")
            good, problem = _is_known_copy(tmp, spec)
            if not good:
                failures.append(f"{url}: the download {problem}")
                continue
            # Same directory → same file system → os.replace is atomic: readers never see half a file.
            os.replace(tmp, target / spec.name)
            return []
        except Exception as exc:  # any network or file error: report it and try the next mirror
            if progress:
                sys.stderr.write("\n")
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    return failures


def find_data_dir(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    opener: Callable[[str], BinaryIO] | None = None,
) -> Path:
    """The directory holding the four verified files.

    A named directory (`data_dir`, else `$MINICNN_DATA`) is the only one considered: when it lacks files and
    `download` is true they are downloaded into it (files already there are kept, never replaced), otherwise
    DataError names the directory and the missing files. With nothing named, the first of MXNet's cache and
    Debian's directory that holds all four files is used, and missing files are downloaded into MXNet's cache.
    Each download tries every mirror, checks the hash and writes a temporary file first. `opener(url)` returns a
    readable binary file object usable in a `with` statement (default: `open_url`, looked up at call time so
    tests can replace it).
    """
    named = named_dir(data_dir)
    if named is not None:
        return _named_data_dir(
            named, "$MINICNN_DATA" if data_dir is None else "data directory", download, progress, opener
        )
    searched = search_dirs()
    for directory in searched:
        if _holds_all(directory):
            for spec in FILES.values():
                verify_file(directory / spec.name, spec)
            return directory
    where = ", ".join(str(d) for d in searched)
    if not download:
        raise DataError(f"Fashion-MNIST not found (searched {where}) and download is disabled; {FIXES}")
    target = mxnet_dir()
    if not writable_dir(target):
        raise DataError(
            f"Fashion-MNIST not found (searched {where}) and {target} cannot be written to download to; {FIXES}"
        )
    for spec in FILES.values():
        path = target / spec.name
        if path.is_file():
            try:
                verify_file(path, spec)
                continue
            except DataError:
                pass  # a bad partial copy in MXNet's cache is simply fetched again
        _download_or_fail(spec, target, opener, progress, f"Fashion-MNIST not found (searched {where})")
    return target


def _named_data_dir(
    directory: Path, called: str, download: bool, progress: bool, opener: Callable[[str], BinaryIO] | None
) -> Path:
    """The named directory, after downloading what it lacks; files there are the user's and are never replaced."""
    missing = _missing(directory)
    if missing and not download:
        lacks = "does not exist" if not directory.exists() else f"lacks {', '.join(missing)}"
        raise DataError(
            f"{called} {directory} {lacks} and downloading is disabled (download=False or MINICNN_OFFLINE=1); copy "
            f"the four Fashion-MNIST files there, or name the directory that holds them (Debian's "
            f"dataset-fashion-mnist puts them in {DEBIAN_DIR}), or name none to use MXNet's cache or Debian's copy"
        )
    if missing and not writable_dir(directory):
        raise DataError(
            f"{called} {directory} lacks {', '.join(missing)} and cannot be written to download them into; "
            "make it writable, or name the directory that holds the four Fashion-MNIST files"
        )
    for spec in FILES.values():
        if spec.name in missing:
            _download_or_fail(spec, directory, opener, progress, f"{called} {directory} lacks {spec.name}")
        else:
            # The user's own IDX data may match no known copy: accepted with a warning (parsing still checks it).
            verify_file(directory / spec.name, spec, strict=False)
    return directory


def _download_or_fail(
    spec: FileSpec, target: Path, opener: Callable[[str], BinaryIO] | None, progress: bool, why: str
) -> None:
    failures = _download_one(spec, target, opener or open_url, progress)
    if failures:
        raise DataError(
            _one_line(f"{why} and downloading {spec.name} into {target} failed ({'; '.join(failures)}); {FIXES}")
        )
    verify_file(target / spec.name, spec)


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------

_cache: dict[Path, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


def downloads_allowed() -> bool:
    """Whether a missing file may be downloaded: not with MINICNN_OFFLINE=1 (tests, air-gapped machines)."""
    return os.environ.get("MINICNN_OFFLINE") != "1"


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None, download: bool = True, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load Fashion-MNIST as (train_x, train_y, test_x, test_y), from the directory `find_data_dir` gives.

    Images are uint8 `(N, 28, 28)`, labels int32 `(N,)` in 0..9 (N = 60000 train, 10000 test). The arrays
    are cached per directory for the life of the process and are read-only so the cache cannot be altered.
    """
    directory = find_data_dir(data_dir, download=download, progress=progress).resolve()
    if directory in _cache:
        return _cache[directory]
    arrays = []
    for split in ("train", "test"):
        img_path = directory / FILES[f"{split}_images"].name
        lab_path = directory / FILES[f"{split}_labels"].name
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise _fail_fix(img_path, f"holds {images.dtype} data of shape {images.shape}, not uint8 (N, H, W)")
        if labels.ndim != 1 or labels.dtype != np.uint8 or len(labels) != len(images):
            raise _fail_fix(lab_path, f"holds {labels.dtype} {labels.shape} labels for {len(images)} images")
        if labels.size and labels.max() >= len(CLASS_NAMES):
            raise _fail_fix(lab_path, f"holds label {labels.max()}, outside 0..{len(CLASS_NAMES) - 1}")
        labels = labels.astype(np.int32)
        images.flags.writeable = False
        labels.flags.writeable = False
        arrays += [images, labels]
    _cache[directory] = tuple(arrays)
    return _cache[directory]
