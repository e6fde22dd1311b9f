"""`python -m minicnn show` (pictures of filters and feature maps) and `python -m minicnn profile` (time per layer).

Run in-process through `cli.main` (the subprocess path is the same code, tested in test_cli.py and test_resume.py).
The PNG files are checked by reading their headers: the IHDR chunk's width and height, and the tEXt "Title" that
show.py writes with each picture's title.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import autograd, cli, init, models, show
from minicnn.data import CLASS_NAMES, read_idx
from minicnn.loss import SoftmaxCrossEntropyLoss
from minicnn.optim import Trainer
from minicnn.profile import random_batch, training_step
from minicnn.summary import summarize

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed")


def png_info(path: Path) -> tuple[int, int, dict[str, str]]:
    """(width, height, tEXt entries) of a PNG file, read chunk by chunk (each chunk's CRC checked)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    pos, size, text = 8, None, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"{path}: bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    assert size is not None, f"{path} has no IHDR chunk"
    return size[0], size[1], text


@pytest.fixture(scope="module")
def lenet_checkpoint(tiny_fashion_dir, tmp_path_factory, monkeypatch_module):
    path = tmp_path_factory.mktemp("ckpt") / "lenet.npz"
    args = ["train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "1", "--limit", "64"]
    assert cli.main([*args, "--batch-size", "32", "--seed", "0", "--no-progress", "--save", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_OFFLINE", "1")
        yield mp


# ---- show -----------------------------------------------------------------------------------------------------------
@needs_matplotlib
def test_show_lenet_writes_the_image_the_filters_and_one_picture_per_conv_and_pool_layer(
    lenet_checkpoint, tiny_fashion_dir, tmp_path, capsys
):
    out = tmp_path / "pictures"
    argv = ["show", "lenet", "--load", str(lenet_checkpoint), "--data-dir", str(tiny_fashion_dir)]
    assert cli.main([*argv, "--index", "3", "--out", str(out)]) == 0
    assert "wrote 6 pictures" in capsys.readouterr().out
    # file: (width, height, title); 1.1 inch tiles at 100 dpi in the squarest grid, at least 4.5 inches wide,
    # plus 0.7 inch of title
    expected = {
        "filters.png": (450, 290, "conv0 filters: weight (6, 1, 5, 5)"),
        "features-01-conv0.png": (450, 290, "conv0: output (1, 6, 24, 24)"),  # 6 maps: 2 rows of 3
        "features-02-pool0.png": (450, 290, "pool0: output (1, 6, 12, 12)"),
        "features-03-conv1.png": (450, 510, "conv1: output (1, 16, 8, 8)"),  # 16 maps: 4 rows of 4
        "features-04-pool1.png": (450, 510, "pool1: output (1, 16, 4, 4)"),
        "image.png": (800, 360, "test image 3: true "),
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, (width, height, title) in expected.items():
        w, h, text = png_info(out / name)
        assert (w, h) == (width, height), name
        assert text["Title"].startswith(title), (name, text["Title"])
    label = int(read_idx(tiny_fashion_dir / "t10k-labels-idx1-ubyte.gz")[3])
    title = png_info(out / "image.png")[2]["Title"]
    m = re.fullmatch(r"test image 3: true (.+), predicted (.+) \(\d+\.\d%, (right|wrong)\)", title)
    assert m, title
    assert m.group(1) == CLASS_NAMES[label] and m.group(2) in CLASS_NAMES
    assert (m.group(3) == "right") == (m.group(1) == m.group(2))


@needs_matplotlib
def test_show_writes_into_show_network_by_default_and_rejects_an_index_outside_the_test_set(
    lenet_checkpoint, tiny_fashion_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = ["show", "lenet", "--load", str(lenet_checkpoint), "--data-dir", str(tiny_fashion_dir)]
    assert cli.main(argv) == 0
    assert (tmp_path / "show-lenet" / "image.png").is_file()
    capsys.readouterr()
    assert cli.main([*argv, "--index", "200"]) == 2
    assert capsys.readouterr().err.strip() == (
        "minicnn: error: --index 200 is out of range: the test set has 200 images (0 to 199)"
    )


@needs_matplotlib
def test_show_refuses_a_checkpoint_of_another_network(lenet_checkpoint, capsys):
    assert cli.main(["show", "alexnet", "--load", str(lenet_checkpoint)]) == 2
    assert "is a checkpoint of 'lenet', not 'alexnet'" in capsys.readouterr().err


@needs_matplotlib
def test_wide_layers_show_their_first_64_channels_and_1x1_maps_one_cell_per_channel(tmp_path):
    plt = show.require_matplotlib()
    wide = show.draw_feature_maps(plt, "conv9", np.ones((1, 100, 5, 5)), tmp_path / "wide.png")
    w, h, text = png_info(wide)
    assert text["Title"] == "conv9: output (1, 100, 5, 5), first 64 of 100 channels"
    assert (w, h) == (880, 950)  # 8 x 8 tiles
    flat = show.draw_feature_maps(plt, "pool4", np.arange(1024.0).reshape(1, 1024, 1, 1), tmp_path / "flat.png")
    assert png_info(flat)[2]["Title"] == "pool4: output (1, 1024, 1, 1), one cell per channel"


@pytest.mark.skipif(HAVE_MATPLOTLIB, reason="this is about machines without matplotlib")
def test_show_without_matplotlib_says_how_to_install_it_in_one_line(capsys):
    assert cli.main(["show", "lenet", "--load", "anything.npz"]) == 2
    assert capsys.readouterr().err.strip() == (
        "minicnn: error: drawing needs matplotlib: pip install 'minicnn[plot]' (or pip install matplotlib)"
    )


def test_feature_maps_are_recorded_at_any_depth_in_running_order():
    net = models.googlenet()
    net.initialize(init.Xavier())
    with autograd.pause():
        maps, probs = show.feature_maps(net, mc.array(np.zeros((1, 1, 96, 96), np.float32)))
    names = [name for name, _ in maps]
    assert names[:3] == ["conv0", "pool0", "conv1"]
    assert len(names) == len(set(names)) == 57 + 14  # every conv and pool of GoogLeNet, inside the Inception blocks
    assert maps[-1][1].shape == (1, 1024, 1, 1)  # the global average pool
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-9


# ---- profile ------------------------------------------------------------------------------------------------------
def test_profile_lenet_prints_time_and_flops_for_every_layer(capsys):
    assert cli.main(["profile", "lenet", "--batch-size", "8", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "lenet on cpu(0): one training step, batch 8, input (8, 1, 28, 28) float32" in out
    rows = {}
    for line in out.splitlines():
        m = re.match(r"(\w+)\s+(\([\d, ]*\))\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%\s*([\d,]*)", line)
        if m:
            rows[m.group(1)] = (m.group(2), float(m.group(3)), float(m.group(4)), int(m.group(6).replace(",", "") or 0))
    names = ["conv0", "pool0", "conv1", "pool1", "dense0", "dense1", "dense2", "loss"]
    assert list(rows) == names
    flops = {r.name: r.flops for r in summarize(models.lenet(), (8, 1, 28, 28))}
    for name in names[:-1]:
        shape, forward, backward, row_flops = rows[name]
        assert forward > 0 and backward > 0, name
        assert row_flops == flops[name], name
    assert rows["conv0"][0] == "(8, 6, 24, 24)"
    assert re.search(r"one step: [\d.]+ ms \([\d,]+ images/s\)", out)


def test_profile_says_in_one_line_when_the_input_is_too_small(capsys):
    assert cli.main(["profile", "alexnet", "--input-size", "28", "--batch-size", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minicnn: error: alexnet at 28x28: ") and "larger than the padded input" in err
    assert "\n" not in err


def test_the_layer_by_layer_backward_gives_the_gradients_of_one_whole_backward():
    ctx = mc.cpu()
    X, y = random_batch(4, 28, "float64", ctx, seed=1)
    net = models.lenet()
    for p in net.collect_params().values():
        p.dtype = np.dtype("float64")
    net.initialize(init.Xavier(), ctx=ctx)
    with autograd.pause():
        net(X)
    with autograd.record():
        l = SoftmaxCrossEntropyLoss()(net(X), y).sum()
    l.backward()
    whole = {k: p.grad().asnumpy().copy() for k, p in net.collect_params().items()}
    training_step(net, X, y, Trainer(net.collect_params(), "sgd", {"learning_rate": 0.0}), ctx.backend.synchronize)
    for k, p in net.collect_params().items():
        np.testing.assert_allclose(p.grad().asnumpy(), whole[k], rtol=1e-12, atol=1e-15, err_msg=k)
