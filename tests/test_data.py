"""Specifications of minicnn.data: IDX reading, finding/downloading Fashion-MNIST, transforms, loader.

No test touches the network: downloads come from file:// mirrors or an injected opener.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn.data import (
    CLASS_NAMES,
    Compose,
    DataLoader,
    Resize,
    ToTensor,
    find_data_dir,
    load_fashion_mnist,
    read_idx,
    resize,
    search_dirs,
    to_tensor,
)
from minicnn.data import fashion_mnist as fm
from minicnn.errors import DataError, ShapeError

# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------

_CODES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B, np.dtype("int32"): 0x0C}
_CODES.update({np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E})


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of `array`: 0, 0, type code, ndim, big-endian uint32 dims, big-endian data."""
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool | None = None) -> Path:
    gz = path.suffix == ".gz" if gz is None else gz
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_reader_reads_uint8_images_plain_or_gzipped(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    out = read_idx(write(tmp_path / name, idx_bytes(images)))
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_idx_reader_reads_1d_labels(tmp_path, name):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / name, idx_bytes(labels))), labels)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32", "float64"])
def test_idx_reader_decodes_the_other_standard_type_codes_to_native_order(tmp_path, dtype):
    data = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    out = read_idx(write(tmp_path / "x.idx", idx_bytes(data)))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, data)


def test_idx_reader_detects_gzip_by_content_even_without_gz_suffix(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "x.idx", idx_bytes(labels), gz=True)), labels)


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_reader_rejects_truncated_payload_naming_the_file(tmp_path, name):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-100]
    path = write(tmp_path / name, data)
    with pytest.raises(DataError, match="truncated") as exc:
        read_idx(path)
    assert str(path) in one_line(exc) and "expected 3136 bytes" in str(exc.value)


@pytest.mark.parametrize("name", ["x-idx1-ubyte", "x-idx1-ubyte.gz"])
def test_idx_reader_rejects_trailing_bytes_naming_the_file(tmp_path, name):
    path = write(tmp_path / name, idx_bytes(np.arange(10, dtype=np.uint8)) + b"junk")
    with pytest.raises(DataError, match="trailing bytes") as exc:
        read_idx(path)
    assert str(path) in one_line(exc)


def test_idx_reader_rejects_wrong_magic(tmp_path):
    path = write(tmp_path / "x.gz", b"\x01\x00\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DataError, match="not an IDX file") as exc:
        read_idx(path)
    assert str(path) in one_line(exc)


def test_idx_reader_rejects_unknown_dtype_code(tmp_path):
    path = write(tmp_path / "x.gz", b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DataError, match="type code 0x07"):
        read_idx(path)


def test_idx_reader_rejects_zero_dimensions_and_short_headers(tmp_path):
    with pytest.raises(DataError, match="0 dimensions"):
        read_idx(write(tmp_path / "a", b"\x00\x00\x08\x00"))
    with pytest.raises(DataError, match="too short"):
        read_idx(write(tmp_path / "b", b"\x00\x00"))
    with pytest.raises(DataError, match="inside its IDX header"):
        read_idx(write(tmp_path / "c", b"\x00\x00\x08\x03\x00\x00\x00\x01"))


def test_idx_reader_rejects_corrupt_gzip_naming_the_file(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(4096, dtype=np.int32)), mtime=0)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    for name, data in [
        ("flipped.gz", bytes(flipped)),
        ("cut.gz", good[: len(good) // 2]),
        ("bad.gz", b"\x1f\x8bxx"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError) as exc:
            read_idx(path)
        assert str(path) in one_line(exc)


def test_idx_reader_rejects_a_gz_name_on_an_uncompressed_file(tmp_path):
    with pytest.raises(DataError, match="not gzip-compressed"):
        read_idx(write(tmp_path / "x.gz", idx_bytes(np.arange(3, dtype=np.uint8)), gz=False))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_refuses_absurd_header_sizes_before_allocating(tmp_path, gz):
    # 4e9 ** 3 bytes: must be refused from the header alone, not by trying to read or allocate it.
    path = write(tmp_path / "huge", b"\x00\x00\x08\x03" + struct.pack(">3I", *[0xFFFFFFFF] * 3), gz=gz)
    with pytest.raises(DataError, match="more than the file can hold"):
        read_idx(path)


def test_idx_reader_reports_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nothing.gz")
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"\x00\x00" + b),
        st.builds(
            lambda c, n, rest: bytes([0, 0, c, n]) + rest,
            st.sampled_from([8, 9, 11, 12, 13, 14, 255]),
            st.integers(0, 9),
            st.binary(max_size=200),
        ),
    ),
    gz=st.sampled_from(["plain", "gzip", "gzip-then-cut"]),
)
def test_idx_reader_raises_only_data_error_on_garbage(tmp_path, data, gz):
    payload = gzip.compress(data, mtime=0) if gz != "plain" else data
    if gz == "gzip-then-cut":
        payload = payload[: len(payload) // 2]
    path = tmp_path / ("g.gz" if gz != "plain" else "g.idx")
    path.write_bytes(payload)
    try:
        out = read_idx(path)
    except DataError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert isinstance(out, np.ndarray) and out.ndim >= 1


# --------------------------------------------------------------------------------------------------------
# finding, verifying, downloading
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data reachable: HOME, MINICNN_DATA, MXNET_HOME and Debian's directory all point into tmp."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.delenv("MXNET_HOME", raising=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setattr(fm, "_verified", set())
    monkeypatch.setattr(fm, "_cache", {})
    return tmp_path


@pytest.fixture
def fake_dataset(isolated, monkeypatch):
    """Tiny valid stand-ins for the four files in isolated/"source"; FILES gets their fingerprints."""
    rng = np.random.default_rng(0)
    source = isolated / "source"
    source.mkdir()
    arrays = {
        "train_images": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(30) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(10, dtype=np.uint8)[::-1].copy(),
    }
    specs = {}
    for role, array in arrays.items():
        name = fm.FILES[role].name
        content = idx_bytes(array)
        packed = write(source / name, content).read_bytes()
        specs[role] = fm.FileSpec(
            name,
            hashlib.sha256(packed).hexdigest(),
            len(packed),
            hashlib.sha1(b"mxnet mirror copy of " + packed).hexdigest(),
            hashlib.sha256(content).hexdigest(),
            len(content),
        )
    monkeypatch.setattr(fm, "FILES", specs)
    monkeypatch.setattr(fm, "MIRRORS", [source.as_uri() + "/"])
    return source, arrays


def copy_files(source: Path, target: Path, names=None) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for spec in fm.FILES.values():
        if names is None or spec.name in names:
            (target / spec.name).write_bytes((source / spec.name).read_bytes())
    return target


def test_without_a_named_directory_the_search_is_mxnets_cache_then_debians(isolated, monkeypatch):
    home = isolated / "home"
    assert search_dirs() == [home / ".mxnet" / "datasets" / "fashion-mnist", isolated / "debian"]
    monkeypatch.setenv("MXNET_HOME", str(isolated / "mxhome"))
    assert search_dirs() == [isolated / "mxhome" / "datasets" / "fashion-mnist", isolated / "debian"]


def test_a_named_directory_is_the_only_place_looked_in_and_data_dir_beats_minicnn_data(isolated, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(isolated / "env"))
    assert search_dirs() == [isolated / "env"]
    assert search_dirs(isolated / "explicit") == [isolated / "explicit"]


def test_find_data_dir_without_a_named_directory_takes_the_first_default_place_holding_all_four_files(
    fake_dataset,
):
    source, _ = fake_dataset
    root = source.parent
    copy_files(source, root / "debian")
    mxnet_cache = root / "home" / ".mxnet" / "datasets" / "fashion-mnist"
    copy_files(source, mxnet_cache, names={"train-images-idx3-ubyte.gz"})  # incomplete: skipped
    assert find_data_dir(download=False) == root / "debian"
    copy_files(source, mxnet_cache)
    assert find_data_dir(download=False) == mxnet_cache


def test_named_data_dir_without_files_is_an_error_not_a_fallback(fake_dataset):
    source, _ = fake_dataset
    root = source.parent
    copy_files(source, root / "debian")
    copy_files(source, root / "home" / ".mxnet" / "datasets" / "fashion-mnist")
    mine = copy_files(source, root / "mine", names={"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"})
    with pytest.raises(DataError) as exc:
        find_data_dir(mine, download=False)
    message = one_line(exc)
    assert f"data directory {mine} lacks t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert "train-images" not in message and "downloading is disabled" in message
    with pytest.raises(DataError, match=f"data directory {root / 'typo'} does not exist"):
        find_data_dir(root / "typo", download=False)
    assert not (root / "typo").exists()


def test_minicnn_data_without_files_is_an_error_not_a_fallback(fake_dataset, monkeypatch):
    source, _ = fake_dataset
    root = source.parent
    copy_files(source, root / "debian")
    (root / "env").mkdir()
    monkeypatch.setenv("MINICNN_DATA", str(root / "env"))
    with pytest.raises(DataError) as exc:
        load_fashion_mnist(download=False)
    assert f"$MINICNN_DATA {root / 'env'} lacks train-images-idx3-ubyte.gz" in one_line(exc)
    assert find_data_dir(root / "debian", download=False) == root / "debian"  # --data-dir beats $MINICNN_DATA


def test_missing_everything_with_download_disabled_raises_naming_the_default_places(isolated):
    with pytest.raises(DataError) as exc:
        find_data_dir(download=False)
    message = one_line(exc)
    for directory in search_dirs():
        assert str(directory) in message
    assert "apt-get install dataset-fashion-mnist" in message and "MINICNN_DATA" in message


def test_a_corrupt_present_file_raises_naming_the_file(fake_dataset):
    source, _ = fake_dataset
    target = copy_files(source, source.parent / "debian")
    bad = target / fm.FILES["test_labels"].name
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    with pytest.raises(DataError, match="corrupt") as exc:
        find_data_dir(download=False)
    assert str(bad) in one_line(exc)


def test_a_different_gzip_wrapping_of_the_same_data_is_accepted(fake_dataset):
    # Zalando, Debian and MXNet's mirror compress the same bytes differently; the content hash decides.
    source, _ = fake_dataset
    target = copy_files(source, source.parent / "debian")
    name = fm.FILES["train_images"].name
    content = gzip.decompress((source / name).read_bytes())
    (target / name).write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    assert find_data_dir(download=False) == target


def test_a_copy_with_mxnets_sha1_is_accepted(fake_dataset, monkeypatch):
    source, _ = fake_dataset
    target = copy_files(source, source.parent / "debian")
    spec = fm.FILES["train_labels"]
    (target / spec.name).write_bytes(b"whatever bytes MXNet's mirror serves")
    mirror_sha1 = hashlib.sha1(b"whatever bytes MXNet's mirror serves").hexdigest()
    monkeypatch.setitem(fm.FILES, "train_labels", fm.FileSpec(**{**spec.__dict__, "mxnet_sha1": mirror_sha1}))
    assert find_data_dir(download=False) == target


def test_download_fetches_verifies_and_places_all_files_in_the_mxnet_cache(fake_dataset, capsys):
    source, _ = fake_dataset
    directory = find_data_dir(progress=True)
    assert directory == source.parent / "home" / ".mxnet" / "datasets" / "fashion-mnist"
    for spec in fm.FILES.values():
        assert (directory / spec.name).read_bytes() == (source / spec.name).read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == sorted(s.name for s in fm.FILES.values())
    assert "downloading" in capsys.readouterr().err


def test_a_named_directory_lacking_the_files_gets_them_downloaded_into_it_not_found_elsewhere(
    fake_dataset, monkeypatch
):
    source, _ = fake_dataset
    root = source.parent
    copy_files(source, root / "debian")  # a complete copy in a default place, not used
    assert find_data_dir(root / "new" / "explicit", progress=False) == root / "new" / "explicit"
    monkeypatch.setenv("MINICNN_DATA", str(root / "env"))
    monkeypatch.setattr(fm, "_verified", set())
    assert find_data_dir(progress=False) == root / "env"
    for directory in (root / "new" / "explicit", root / "env"):
        for spec in fm.FILES.values():
            assert (directory / spec.name).read_bytes() == (source / spec.name).read_bytes()


def test_files_already_in_a_named_directory_are_kept_and_only_the_missing_ones_downloaded(fake_dataset, capsys):
    # The user's own copy of the training images (matching no known copy) is theirs: never replaced.
    source, _ = fake_dataset
    mine = copy_files(source, source.parent / "mine", names={"t10k-images-idx3-ubyte.gz"})
    own = write(mine / fm.FILES["train_images"].name, idx_bytes(np.full((30, 28, 28), 7, np.uint8))).read_bytes()
    assert find_data_dir(mine, progress=False) == mine
    assert (mine / fm.FILES["train_images"].name).read_bytes() == own
    assert sorted(p.name for p in mine.iterdir()) == sorted(s.name for s in fm.FILES.values())
    assert "matches no known copy" in capsys.readouterr().err
    assert (load_fashion_mnist(mine, download=False)[0] == 7).all()


def test_download_fetches_only_the_missing_files(fake_dataset, monkeypatch):
    source, _ = fake_dataset
    target = copy_files(source, source.parent / "explicit", names={"train-images-idx3-ubyte.gz"})
    opened = []
    monkeypatch.setattr(fm, "open_url", lambda url, timeout=30.0: opened.append(url) or open(url[7:], "rb"))
    assert find_data_dir(target, progress=False) == target
    assert len(opened) == 3 and not any("train-images" in url for url in opened)


def test_download_with_wrong_hash_raises_and_leaves_no_file_behind(fake_dataset, monkeypatch):
    source, _ = fake_dataset
    tampered = source.parent / "tampered"
    copy_files(source, tampered)
    name = fm.FILES["train_labels"].name
    (tampered / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x09"))
    monkeypatch.setattr(fm, "MIRRORS", [tampered.as_uri() + "/"])
    with pytest.raises(DataError) as exc:
        find_data_dir(source.parent / "target", progress=False)
    assert name in one_line(exc) and "matches no known copy" in str(exc.value)
    assert not (source.parent / "target" / name).exists()
    assert not list((source.parent / "target").glob(".*part"))


def test_download_interrupted_midway_leaves_no_partial_file(fake_dataset):
    source, _ = fake_dataset

    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 100:
                raise ConnectionResetError("connection reset by peer")
            return super().read(min(size, 64))

    def opener(url):
        return Broken((source / url.rsplit("/", 1)[1]).read_bytes())

    target = source.parent / "target"
    with pytest.raises(DataError, match="ConnectionResetError") as exc:
        find_data_dir(target, progress=False, opener=opener)
    assert "apt-get install dataset-fashion-mnist" in one_line(exc)
    assert list(target.iterdir()) == []


def test_download_falls_back_to_the_next_mirror(fake_dataset, monkeypatch):
    source, _ = fake_dataset
    monkeypatch.setattr(fm, "MIRRORS", [(source.parent / "empty").as_uri() + "/", source.as_uri() + "/"])
    assert find_data_dir(source.parent / "target", progress=False) == source.parent / "target"


def test_load_fashion_mnist_decodes_caches_and_protects_the_arrays(fake_dataset):
    source, arrays = fake_dataset
    train_x, train_y, test_x, test_y = load_fashion_mnist(source, download=False)
    assert train_x.dtype == np.uint8 and train_x.shape == (30, 28, 28)
    assert train_y.dtype == np.int32 and test_y.dtype == np.int32
    np.testing.assert_array_equal(test_x, arrays["test_images"])
    np.testing.assert_array_equal(test_y, arrays["test_labels"])
    assert load_fashion_mnist(source, download=False)[0] is train_x  # cached, not reparsed
    with pytest.raises(ValueError):
        train_x[0, 0, 0] = 1


def test_load_rejects_labels_outside_the_ten_classes(fake_dataset, monkeypatch):
    source, _ = fake_dataset
    spec = fm.FILES["test_labels"]
    content = idx_bytes(np.full(10, 12, np.uint8))
    write(source / spec.name, content)
    packed = (source / spec.name).read_bytes()
    new = fm.FileSpec(spec.name, hashlib.sha256(packed).hexdigest(), len(packed), "", "", 0)
    monkeypatch.setitem(fm.FILES, "test_labels", new)
    with pytest.raises(DataError, match="label 12"):
        load_fashion_mnist(source, download=False)


def test_class_names_are_the_official_ten():
    assert CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot" and len(CLASS_NAMES) == 10


def _real_data_dir() -> Path | None:
    try:
        return find_data_dir(download=False, progress=False)
    except DataError:
        return None


@pytest.mark.skipif(_real_data_dir() is None, reason="real Fashion-MNIST not found (install dataset-fashion-mnist)")
def test_real_fashion_mnist_has_the_documented_shapes_and_balanced_classes():
    train_x, train_y, test_x, test_y = load_fashion_mnist(download=False, progress=False)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int32
    assert train_y.min() == 0 and train_y.max() == 9
    np.testing.assert_array_equal(np.bincount(train_y), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test_y), [1000] * 10)


# --------------------------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------------------------


def test_resize_4x4_to_8x8_gives_the_documented_first_row():
    image = (np.arange(16, dtype=np.uint8) * 10).reshape(4, 4)
    np.testing.assert_array_equal(resize(image, 8)[0], [0, 2, 7, 12, 17, 22, 27, 30])


def test_resize_shape_rules():
    batch = np.zeros((3, 28, 28), np.uint8)
    assert resize(batch, 224).shape == (3, 224, 224)
    assert resize(batch, (20, 40)).shape == (3, 20, 40)  # (h, w)
    assert resize(batch[0], 32).shape == (32, 32)
    assert resize(batch, 96).dtype == np.uint8
    with pytest.raises(TypeError, match="uint8"):
        resize(batch.astype(np.float32), 32)
    with pytest.raises(ShapeError):
        resize(batch[None], 32)
    for bad in (0, (3,), (2, 0), 2.5):
        with pytest.raises(ShapeError):
            resize(batch, bad)


def test_resize_to_the_same_size_is_the_identity():
    batch = np.random.default_rng(1).integers(0, 256, (2, 13, 17), dtype=np.uint8)
    np.testing.assert_array_equal(resize(batch, (13, 17)), batch)


@settings(max_examples=60, deadline=None)
@given(
    value=st.integers(0, 255),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    oh=st.integers(1, 40),
    ow=st.integers(1, 40),
)
def test_resize_keeps_constant_images_constant(value, h, w, oh, ow):
    out = resize(np.full((2, h, w), value, np.uint8), (oh, ow))
    assert out.shape == (2, oh, ow) and (out == value).all()


def float_bilinear(image: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """The obvious slow reference: half-pixel centres, edge pixels repeated, exact real arithmetic."""
    h, w = image.shape
    out = np.empty((oh, ow))
    for i in range(oh):
        y = min(max((i + 0.5) * h / oh - 0.5, 0.0), h - 1.0)
        y0 = math.floor(y)
        y1, ty = min(y0 + 1, h - 1), y - y0
        for j in range(ow):
            x = min(max((j + 0.5) * w / ow - 0.5, 0.0), w - 1.0)
            x0 = math.floor(x)
            x1, tx = min(x0 + 1, w - 1), x - x0
            top = image[y0, x0] * (1 - tx) + image[y0, x1] * tx
            bottom = image[y1, x0] * (1 - tx) + image[y1, x1] * tx
            out[i, j] = top * (1 - ty) + bottom * ty
    return out


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 16),
    w=st.integers(1, 16),
    oh=st.integers(1, 24),
    ow=st.integers(1, 24),
    binary=st.booleans(),
)
def test_resize_is_within_one_of_exact_bilinear_interpolation(seed, h, w, oh, ow, binary):
    image = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    if binary:
        image = np.where(image > 127, 255, 0).astype(np.uint8)  # hardest case: maximal steps
    got = resize(image, (oh, ow)).astype(np.float64)
    assert np.abs(got - float_bilinear(image.astype(np.float64), oh, ow)).max() <= 1.0


@pytest.fixture(scope="module")
def mx():
    try:
        import mxnet
    except Exception:
        pytest.skip("mxnet not importable (numpy 2.x environment)")
    return mxnet


def mx_resize(mx, image: np.ndarray, oh: int, ow: int) -> np.ndarray:
    return mx.image.imresize(mx.nd.array(image[:, :, None], dtype="uint8"), ow, oh).asnumpy()[:, :, 0]


@pytest.mark.parametrize(
    "src, dst",
    [
        ((28, 28), (224, 224)),
        ((28, 28), (96, 96)),
        ((28, 28), (32, 32)),
        ((28, 28), (227, 227)),
        ((28, 28), (20, 20)),
        ((28, 28), (14, 14)),
        ((56, 56), (28, 28)),
        ((224, 224), (28, 28)),
        ((28, 28), (30, 45)),
        ((13, 7), (50, 33)),
        ((28, 28), (1, 1)),
    ],
)
def test_resize_is_bit_exact_with_mxnet(mx, src, dst):
    images = np.random.default_rng(sum(src + dst)).integers(0, 256, (3, *src), dtype=np.uint8)
    images[2] = np.where(images[2] > 127, 255, 0)
    got = resize(images, dst)
    for image, out in zip(images, got):
        np.testing.assert_array_equal(out, mx_resize(mx, image, *dst))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    oh=st.integers(1, 120),
    ow=st.integers(1, 120),
)
def test_resize_is_bit_exact_with_mxnet_for_any_sizes(mx, seed, h, w, oh, ow):
    image = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    np.testing.assert_array_equal(resize(image, (oh, ow)), mx_resize(mx, image, oh, ow))


@pytest.mark.parametrize("size", [96, (40, 20)])  # a pair is (width, height) in Gluon
def test_compose_resize_to_tensor_is_bit_exact_with_gluon(mx, size):
    from mxnet.gluon.data.vision import transforms

    images = np.random.default_rng(3).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    ours = Compose([Resize(size), ToTensor()])(images)
    gluon = transforms.Compose([transforms.Resize(size), transforms.ToTensor()])
    for image, out in zip(images, ours):
        expected = gluon(mx.nd.array(image[:, :, None], dtype="uint8")).asnumpy()
        assert expected.dtype == out.dtype and expected.shape == out.shape
        np.testing.assert_array_equal(out, expected)


def test_to_tensor_scales_to_unit_range_and_adds_the_channel_axis():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(2, axis=0)
    out = to_tensor(images)
    assert out.shape == (2, 1, 16, 16) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_array_equal(out[0, 0], np.float32(images[0]) / np.float32(255))
    assert to_tensor(images[0]).shape == (1, 16, 16)
    assert to_tensor(images, dtype=np.float64).dtype == np.float64


def test_resizing_before_to_tensor_keeps_images_nonzero():
    # Pitfall 10: resize the uint8 image, then divide by 255.
    images = np.full((1, 28, 28), 200, np.uint8)
    out = Compose([Resize(224), ToTensor()])(images)
    assert out.shape == (1, 1, 224, 224) and np.allclose(out, 200 / 255)


# --------------------------------------------------------------------------------------------------------
# loader
# --------------------------------------------------------------------------------------------------------


def numbered(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n 2x2 images whose pixels all equal their index (mod 256), and labels equal to the index."""
    images = (np.arange(n) % 256).astype(np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
    return images, np.arange(n, dtype=np.int32)


def test_loader_counts_batches_and_keeps_the_last_partial_batch():
    loader = DataLoader(*numbered(10), batch_size=4)
    sizes = [len(y) for _, y in loader]
    assert len(loader) == 3 and sizes == [4, 4, 2] and loader.num_samples == 10


def test_loader_without_shuffle_keeps_order_and_applies_to_tensor():
    images, labels = numbered(5)
    batches = list(DataLoader(images, labels, batch_size=2))
    x, y = batches[0]
    assert x.shape == (2, 1, 2, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    np.testing.assert_allclose(x[1], np.float32(1) / 255)


def test_loader_shuffle_gives_a_new_permutation_each_epoch():
    images, labels = numbered(50)
    loader = DataLoader(images, labels, batch_size=8, shuffle=True, seed=0)
    epochs = []
    for _ in range(3):
        seen = np.concatenate([y for _, y in loader])
        np.testing.assert_array_equal(np.sort(seen), labels)  # every sample exactly once
        epochs.append(seen)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    for x, y in loader:  # images travel with their labels
        np.testing.assert_allclose(x[:, 0, 0, 0] * 255, y, atol=1e-4)


def test_loader_same_seed_gives_the_same_orders():
    first = DataLoader(*numbered(20), batch_size=6, shuffle=True, seed=7)
    second = DataLoader(*numbered(20), batch_size=6, shuffle=True, seed=7)
    for _ in range(2):
        a = np.concatenate([y for _, y in first])
        b = np.concatenate([y for _, y in second])
        np.testing.assert_array_equal(a, b)


def test_loader_limit_uses_only_the_first_samples():
    loader = DataLoader(*numbered(100), batch_size=16, shuffle=True, seed=1, limit=40)
    seen = np.concatenate([y for _, y in loader])
    assert len(loader) == 3 and loader.num_samples == 40
    np.testing.assert_array_equal(np.sort(seen), np.arange(40))


def test_loader_applies_the_transform_per_batch():
    images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    loader = DataLoader(images, np.zeros(10, np.int32), batch_size=4, transform=Compose([Resize(32), ToTensor()]))
    shapes = [x.shape for x, _ in loader]
    assert shapes == [(4, 1, 32, 32), (4, 1, 32, 32), (2, 1, 32, 32)]


def test_loader_rejects_mismatched_labels_and_bad_batch_size():
    images, labels = numbered(4)
    with pytest.raises(ShapeError):
        DataLoader(images, labels[:3], batch_size=2)
    with pytest.raises(ValueError):
        DataLoader(images, labels, batch_size=0)


CHAPTER_LOOP = """
def evaluate_accuracy(data_iter,net,ctx):
    acc_sum,n=nd.array([0],ctx=ctx),0
    for X,y in data_iter:
        X,y=X.as_in_context(ctx),y.as_in_context(ctx).astype('float32')
        acc_sum+=( net(X).argmax(axis=1)==y ).sum()
        n+=y.size
    return acc_sum.asscalar()/n

def train_ch5(net,train_iter,test_iter,batch_size,trainer,ctx,num_epochs):
    loss=gloss.SoftmaxCrossEntropyLoss()
    for epoch in range (num_epochs):
        train_l_sum,train_acc_sum,n=0.0,0.0,0
        for X,y in train_iter:
            X,y=X.as_in_context(ctx),y.as_in_context(ctx)
            with autograd.record():
                y_hat=net(X)
                l=loss(y_hat,y).sum()
            l.backward()
            trainer.step(batch_size)
            y=y.astype('float32')
            train_l_sum+=l.asscalar()
            train_acc_sum+=( y_hat.argmax(axis=1)==y ).sum().asscalar()
            n+=y.size
        test_acc=evaluate_accuracy(test_iter,net,ctx)
        results.append((train_l_sum/n,train_acc_sum/n,test_acc))
"""


def test_the_chapters_own_training_loop_runs_on_d2l_batches_and_agrees_with_minicnns(tiny_fashion_dir):
    """The chapter's evaluate_accuracy and train_ch5 as its text writes them (section 5.5, less the prints), on
    `d2l.load_data_fashion_mnist`: its batches are NDArrays, so `X.as_in_context(ctx)` runs, and the numbers are
    minicnn's own `d2l.train_ch5`'s."""
    import minicnn as mc
    from minicnn import autograd, d2l, models

    runs = []
    for own in (True, False):
        mc.random.seed(3)
        train_iter, test_iter = d2l.load_data_fashion_mnist(64, data_dir=tiny_fashion_dir, seed=0)
        net = models.lenet()
        net.initialize(ctx=mc.cpu(), init=mc.init.Xavier())
        trainer = mc.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
        if own:
            scope = {"nd": mc.nd, "gloss": mc.gluon.loss, "autograd": autograd, "results": []}
            exec(CHAPTER_LOOP, scope)
            scope["train_ch5"](net, train_iter, test_iter, 64, trainer, mc.cpu(), 2)
            runs.append(scope["results"])
        else:
            done = d2l.train_ch5(net, train_iter, test_iter, 64, trainer, mc.cpu(), 2, log=lambda line: None)
            runs.append([(r.loss, r.train_acc, r.test_acc) for r in done])
    assert runs[0][1][0] < runs[0][0][0], "the loss did not fall: the chapter's loop did not train"
    X, y = next(iter(train_iter))
    assert isinstance(X, mc.NDArray) and isinstance(y, mc.NDArray) and len(train_iter) == 10
    np.testing.assert_allclose(np.array(runs[0]), np.array(runs[1]), rtol=1e-5)


def test_d2l_data_and_models_are_reachable_after_a_plain_import_minicnn():
    import subprocess
    import sys

    code = "import minicnn as mc; mc.d2l.try_gpu; mc.data.DataLoader; mc.models.lenet; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
