"""Bad input, tried as a new user (or a hostile file) would: every case ends in one clear error, never a hang, a
crash of the interpreter, or code run from a file.

Not repeated here (see the files named): IDX garbage from hypothesis, plain and gzip-wrapped (test_data.py);
zero/negative layer sizes, kernels larger than the padded input, wrong ndim and channels for single layers
(test_ops_gradcheck.py).
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minicnn as mc
from minicnn import autograd, checkpoint, cli, init, models, nn
from minicnn.data import read_idx
from minicnn.errors import DataError, ShapeError

PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# ---- IDX files cut anywhere -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_an_idx_file_cut_at_any_byte_is_a_data_error_naming_the_file(tmp_path, gz):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    data = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", *images.shape) + images.tobytes()
    if gz:
        data = gzip.compress(data, mtime=0)
    path = tmp_path / ("cut.gz" if gz else "cut-idx3-ubyte")
    path.write_bytes(data)
    np.testing.assert_array_equal(read_idx(path), images)  # whole, it reads
    for end in range(len(data)):
        path.write_bytes(data[:end])
        with pytest.raises(DataError) as exc:
            read_idx(path)
        assert str(path) in one_line(exc), end


def test_garbage_after_a_gzip_member_is_a_data_error(tmp_path):
    data = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 3) + b"abc"
    path = tmp_path / "tail.gz"
    path.write_bytes(gzip.compress(data) + b"garbage")
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


# ---- checkpoint files ---------------------------------------------------------------------------------------------
def _small_checkpoint(path: Path) -> Path:
    net = nn.Dense(3, in_units=2, prefix="dense0_")
    net.initialize(init.Xavier())
    return checkpoint.save(path, net, {"network": "tiny", "settings": {}})


def _npz(path: Path, **members) -> Path:
    """A zip of .npy members written by hand (allow_pickle=True where a member is an object array)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, array in members.items():
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=True)
            z.writestr(f"{name}.npy", buf.getvalue())
    return path


def _meta(**fields) -> np.ndarray:
    return np.array(json.dumps({"format": checkpoint.FORMAT, "network": "tiny", "settings": {}, **fields}))


def _load_fails(path: Path, pattern: str | None = None) -> str:
    with pytest.raises(DataError, match=pattern) as exc:
        checkpoint.load(path)
    text = one_line(exc)
    assert str(path) in text
    assert not any(advice in text for advice in UNSAFE_ADVICE), text
    return text


# NumPy's advice on a pickled file: "... load it unsafely using the `allow_pickle=` keyword argument or `pickle.load()`"
UNSAFE_ADVICE = ("allow_pickle", "pickle.load", "unsafe")


def _png() -> bytes:
    """A valid 1x1 grey PNG, as a user might pass by mistake."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


def _npy(path: Path, array: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=True)
    return path


@PROFILE
@given(data=st.one_of(st.binary(max_size=600), st.binary(max_size=600).map(lambda b: b"PK\x03\x04" + b)))
def test_random_bytes_as_a_checkpoint_are_a_one_line_data_error(tmp_path, data):
    path = tmp_path / "random.npz"
    path.write_bytes(data)
    _load_fails(path)


@PROFILE
@given(
    cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4), end=st.floats(0, 1)
)
def test_a_damaged_checkpoint_loads_or_is_a_data_error_never_anything_else(tmp_path, cuts, end):
    good = _small_checkpoint(tmp_path / "good.npz").read_bytes()
    damaged = bytearray(good[: max(1, int(len(good) * end))] if end < 1 else good)
    for offset, xor in cuts:
        damaged[offset % len(damaged)] ^= xor
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(damaged))
    try:
        meta, params, opt = checkpoint.load(path)
    except DataError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:  # a flipped bit inside an array's data cannot be noticed: the file is still a checkpoint
        assert meta["network"] == "tiny" and all(isinstance(v, np.ndarray) for v in params.values())


class _Payload:
    """Unpickling this calls open(marker, "w"): it creates a file, the harmless stand-in for any code at all."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickled_object_array_in_a_checkpoint_is_refused_and_never_unpickled(tmp_path):
    # The payload is real: NumPy with allow_pickle=True runs it.
    proof = tmp_path / "proof-it-runs"
    _npz(tmp_path / "proof.npz", meta=np.array([_Payload(proof)], dtype=object))
    with np.load(tmp_path / "proof.npz", allow_pickle=True) as z:
        z["meta"]
    assert proof.exists()

    marker = tmp_path / "code-ran"
    never = "holds pickled Python objects, which minicnn never writes and never loads"
    for name, members in {
        "meta.npz": {"meta": np.array([_Payload(marker)], dtype=object)},
        "param.npz": {"meta": _meta(), "param/dense0_weight": np.array([_Payload(marker)], dtype=object)},
    }.items():
        key = "meta" if name == "meta.npz" else "param/dense0_weight"
        text = _load_fails(_npz(tmp_path / name, **members), f"its entry '{key}' {never}")
        assert text.endswith("never loads")  # and stops there: no advice on how to load it after all
    _load_fails(_npy(tmp_path / "objects.npy", np.array([_Payload(marker)], dtype=object)), f"it {never}")
    plain_pickle = tmp_path / "pickle.npz"
    import pickle

    plain_pickle.write_bytes(pickle.dumps(_Payload(marker)))
    _load_fails(plain_pickle, f"it {never}")
    assert not marker.exists(), "loading a checkpoint ran code from it"


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("picture.png", _png(), "it is not an .npz archive"),
        ("random.npz", bytes(range(7, 250)), "it is not an .npz archive"),
        ("array.npy", None, r"it is a single NumPy array \(.npy\)"),
        ("empty.npz", b"", "it is not an .npz archive"),
    ],
)
def test_a_file_that_is_not_an_npz_archive_is_not_a_minicnn_checkpoint(tmp_path, name, content, says):
    path = tmp_path / name
    if content is None:
        _npy(path, np.zeros((2, 3), np.float32))
    else:
        path.write_bytes(content)
    assert _load_fails(path, says).startswith(f"{path} is not a minicnn checkpoint: ")


@pytest.mark.parametrize(
    ("members", "pattern"),
    [
        ({"param/w": np.zeros(3)}, "no 'meta' entry"),
        ({"meta": np.array("not json")}, "its 'meta' entry is not JSON text"),
        ({"meta": np.array(json.dumps([1, 2]))}, "format 'list'"),
        ({"meta": np.array(json.dumps({"format": "keras/2"}))}, "format 'keras/2'"),
        ({"meta": np.array(json.dumps({"format": checkpoint.FORMAT}))}, "lacks the network name or settings"),
        ({"meta": np.arange(3)}, "its 'meta' entry is not JSON text"),
        ({"meta": np.array("[" * 100_000)}, "its 'meta' entry is not JSON text"),
    ],
)
def test_a_zip_with_the_wrong_entries_is_a_data_error_saying_what_is_wrong(tmp_path, members, pattern):
    _load_fails(_npz(tmp_path / "wrong.npz", **members), pattern)


def test_a_zip_member_that_is_not_npy_is_a_data_error(tmp_path):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta", b"{}")
    _load_fails(path)


def test_an_array_header_declaring_an_impossible_size_is_refused_without_allocating_it(tmp_path):
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6, 10**6)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        buf_meta = io.BytesIO()
        np.save(buf_meta, _meta())
        z.writestr("meta.npy", buf_meta.getvalue())
        z.writestr("param/w.npy", buf.getvalue() + b"\0" * 64)
    _load_fails(path)


def test_a_checkpoint_with_integer_parameters_or_other_shapes_is_not_applied(tmp_path):
    net = nn.Dense(3, in_units=2, prefix="dense0_")
    net.initialize(init.Xavier())
    path = _npz(
        tmp_path / "ints.npz", meta=_meta(), **{"param/dense0_weight": np.zeros((3, 2), np.int64),
                                                 "param/dense0_bias": np.zeros(3, np.float32)},
    )  # fmt: skip
    _, params, _ = checkpoint.load(path)
    with pytest.raises(DataError, match="dense0_weight holds int64 values"):
        checkpoint.apply(path, net, params)
    params["dense0_weight"] = np.zeros((2, 3), np.float32)
    with pytest.raises(DataError, match=r"dense0_weight has shape \(2, 3\) in the checkpoint but \(3, 2\)"):
        checkpoint.apply(path, net, params)


def test_missing_and_directory_checkpoints_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist; train with --save"):
        checkpoint.load(tmp_path / "nothing.npz")
    with pytest.raises(DataError, match="does not exist"):
        checkpoint.load(tmp_path)


def test_eval_on_a_garbage_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip file")
    assert cli.main(["eval", "lenet", "--load", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"minicnn: error: {path} is not a readable minicnn checkpoint")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train --resume", "eval --load", "show --load"])
@pytest.mark.parametrize("kind", ["pickled.npz", "objects.npy", "picture.png"])
def test_a_pickled_or_foreign_file_given_as_a_checkpoint_is_one_line_exit_2_without_unsafe_advice(
    tmp_path, capsys, command, kind
):
    if command.startswith("show"):
        pytest.importorskip("matplotlib", reason="show needs matplotlib before it reads the checkpoint")
    marker = tmp_path / "code-ran"
    path = tmp_path / kind
    if kind == "pickled.npz":
        _npz(path, meta=_meta(), **{"param/conv0_weight": np.array([_Payload(marker)], dtype=object)})
    elif kind == "objects.npy":
        _npy(path, np.array([_Payload(marker)], dtype=object))
    else:
        path.write_bytes(_png())
    subcommand, option = command.split()
    assert cli.main([subcommand, "lenet", option, str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"minicnn: error: {path} is not a minicnn checkpoint: ")
    if kind != "picture.png":
        assert err.rstrip().endswith("holds pickled Python objects, which minicnn never writes and never loads")
    assert not any(advice in err for advice in UNSAFE_ADVICE), err
    assert not marker.exists()


def test_resuming_a_checkpoint_with_a_damaged_training_state_is_one_line_and_exit_2(
    tiny_fashion_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    args = ["lenet", "--data-dir", str(tiny_fashion_dir), "--limit", "16", "--batch-size", "16", "--epochs", "1"]
    settings_ = cli._settings(cli.build_parser().parse_args(["train", *args]))
    path = tmp_path / "damaged-state.npz"
    meta = {"network": "lenet", "settings": settings_, "seed": None, "limit": 16, "train": {"epoch": 1}}
    checkpoint.save(path, cli.build_network(settings_), meta)
    assert cli.main(["train", "lenet", "--resume", str(path), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("minicnn: warning:")]
    assert err == [f"minicnn: error: {path} has a damaged training state (KeyError: 'batch_l_dtype')"]


# ---- layer arguments and inputs, as a new user gets them wrong ------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.Conv2D(0, kernel_size=3), "conv0: channels must be positive, got 0"),
        (lambda: nn.Conv2D(4, kernel_size=(3, -1)), "conv0: kernel (3, -1) and strides (1, 1) must be positive"),
        (lambda: nn.MaxPool2D(pool_size=2, strides=0), "pool0: kernel (2, 2) and strides (0, 0) must be positive"),
        (lambda: nn.Dense(-1), "dense0: units must be positive, got -1"),
        (lambda: nn.Conv2D(4, kernel_size=2.5), "conv0: kernel_size must be an int or a pair of ints, got 2.5"),
        (lambda: nn.Conv2D(4, kernel_size=(3, 3, 3)), "conv0: kernel_size must be an int or a pair of ints"),
        (lambda: nn.Conv2D(4, kernel_size="3"), "conv0: kernel_size must be an int or a pair of ints, got '3'"),
        (lambda: nn.Conv2D(6.0, kernel_size=5), "conv0: channels must be an integer, got 6.0"),
        (lambda: nn.Dense(2.5), "dense0: units must be an integer, got 2.5"),
        (lambda: nn.AvgPool2D(pool_size=(2, 1.5)), "pool0: pool_size must be an int or a pair of ints"),
    ],
)
def test_impossible_layer_arguments_are_value_errors_naming_the_layer_and_the_value(make, message):
    with nn.fresh_names(), pytest.raises(ValueError) as exc:
        make()
    assert one_line(exc).startswith(message)


@pytest.fixture(scope="module")
def lenet_at_28():
    net = models.lenet()
    net.initialize(init.Xavier())
    with autograd.pause():
        net(mc.array(np.zeros((2, 1, 28, 28), np.float32)))
    return net


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ((2, 3, 28, 28), r"conv0: input \(2, 3, 28, 28\) has 3 channels but the layer was initialised for 1"),
        ((2, 28, 28), r"conv0: expected a 4-D input \(N, C, H, W\), got shape \(2, 28, 28\)"),
        ((28, 28), r"conv0: expected a 4-D input \(N, C, H, W\), got shape \(28, 28\)"),
        ((2, 1, 32, 32), r"dense0: input \(2, 16, 5, 5\) flattens to 400 features but .* initialised for 256"),
        ((2, 1, 8, 8), r"conv1: kernel 5x5 is larger than the padded input 2x2 \(input \(2, 6, 2, 2\)"),
    ],
)
def test_an_initialised_lenet_fed_the_wrong_images_names_the_layer_and_the_shapes(lenet_at_28, shape, pattern):
    with pytest.raises(ShapeError, match=pattern) as exc, autograd.pause():
        lenet_at_28(mc.array(np.zeros(shape, np.float32)))
    one_line(exc)


def test_alexnet_without_its_resize_names_the_layer_that_no_longer_fits():
    net = models.alexnet()
    net.initialize(init.Xavier())
    with pytest.raises(ShapeError, match=r"^(conv|pool)\d+: kernel \dx\d is larger than the padded input") as exc:
        with autograd.pause():
            net(mc.array(np.zeros((1, 1, 28, 28), np.float32)))
    one_line(exc)
