"""The five networks from the command line, run as a user runs them: `python -m minicnn train|eval|summary ...`.

Why the training runs use a synthetic data set with skewed labels: with Xavier initialisation the chapter's deep
ReLU networks start on a plateau (logits of order 1e-3, every prediction ~1/10) and need a few hundred SGD steps
to leave it; MXNet 1.9.1 behaves the same (measured: VGG-11/8 at 32x32, NiN at 67x67, GoogLeNet at 24x24 all
stay at loss 2.30 +- 0.01 over 2000 real Fashion-MNIST images, at the chapter's and at 3-10x larger learning
rates). What one affordable epoch can show is the output layer learning the label frequencies: half of the
labels here are class 0, so a network that learns moves its loss from ln(10) = 2.303 towards the labels'
entropy (1.79), far outside batch-to-batch noise. Whether the convolutions' gradients are right is checked
elsewhere (gradient checks, and against MXNet layer by layer in the reference tests).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli, write_idx

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
LOG_KEYS = {
    "epoch", "loss", "train_acc", "test_acc", "seconds", "images_per_sec", "first_batches_loss", "last_batches_loss",
}  # fmt: skip


@pytest.fixture(scope="module")
def skewed_dir(tmp_path_factory) -> Path:
    """Fashion-MNIST-format files: 2400 training and 200 test images; class k is a bright bar at row 2k+4 on
    noise; half of all labels are class 0 (see the module docstring). 200 test images keep the test pass short."""
    d = tmp_path_factory.mktemp("skewed-fashion")
    rng = np.random.default_rng(0)
    p = np.array([0.5] + [0.5 / 9] * 9)
    for split, n in (("train", 2400), ("t10k", 200)):
        labels = rng.choice(10, n, p=p)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 * k + 4 : 2 * k + 6, 4:24] = 250
        write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
    return d


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def epoch_line_count(stdout: str) -> int:
    return len(re.findall(r"^epoch \d+, loss [\d.]+, train acc [\d.]+, test acc [\d.]+, time", stdout, re.M))


# Smallest inputs the networks' kernels allow (AlexNet and NiN need 67: 11x11/4, then three 3x3/2 pools), so the
# five runs together take about a minute of one core. Chapter batch sizes and learning rates, except AlexNet's:
# at lr 0.01 its 16 steps move the output bias by too little to see.
FAST = {
    "lenet": [],
    "alexnet": ["--resize", "67", "--lr", "0.05"],
    "vgg11": ["--resize", "32", "--width-divisor", "8"],
    "nin": ["--resize", "67"],
    "googlenet": ["--resize", "24"],
}
# what the run's first line must say: the chapter's batch size and learning rate unless overridden above
SETTINGS_LINE = {
    "lenet": "lenet: 1 epochs, batch 256, lr 0.9, resize 28",
    "alexnet": "alexnet: 1 epochs, batch 128, lr 0.05, resize 67",
    "vgg11": "vgg11: 1 epochs, batch 128, lr 0.05, resize 32",
    "nin": "nin: 1 epochs, batch 128, lr 0.1, resize 67",
    "googlenet": "googlenet: 1 epochs, batch 128, lr 0.1, resize 24",
}


@pytest.mark.parametrize("name", list(FAST))
def test_each_network_trains_one_epoch_of_2000_images_from_the_cli_and_its_loss_falls(name, skewed_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    r = run_cli(
        "train", name, "--data-dir", skewed_dir, "--limit", 2000, "--epochs", 1, "--seed", 0, "--log", log, *FAST[name]
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(SETTINGS_LINE[name]), r.stdout
    assert "2000 train / 200 test images" in r.stdout
    assert epoch_line_count(r.stdout) == 1, r.stdout
    (record,) = read_log(log)
    first, last = record["first_batches_loss"], record["last_batches_loss"]
    assert last < first - 0.1, record
    assert last < math.log(10) - 0.1, record  # below the loss of a network that has learned nothing
    assert record["test_acc"] > 0.3, record  # more than chance (0.1): at least the label frequencies were learned


def test_the_log_has_one_json_line_per_epoch_with_every_field(skewed_dir, tmp_path):
    log = tmp_path / "log.jsonl"
    r = run_cli(
        "train", "lenet", "--data-dir", skewed_dir, "--limit", 512, "--epochs", 2, "--batch-size", 64, "--seed", 1,
        "--log", log,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    records = read_log(log)
    assert [rec["epoch"] for rec in records] == [1, 2]
    for rec in records:
        assert set(rec) == LOG_KEYS
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in rec.values()), rec
        assert 0 <= rec["train_acc"] <= 1 and 0 <= rec["test_acc"] <= 1
        assert rec["images_per_sec"] == pytest.approx(512 / rec["seconds"], rel=1e-6)
    # the printed epoch lines and the log agree
    printed = re.findall(r"epoch (\d+), loss ([\d.]+), train acc ([\d.]+), test acc ([\d.]+)", r.stdout)
    assert [(int(e), float(lo)) for e, lo, _, _ in printed] == [(r["epoch"], round(r["loss"], 4)) for r in records]


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="drawing needs matplotlib (not installed in this environment)")
def test_plot_draws_the_training_curves_as_a_png(skewed_dir, tmp_path):
    import matplotlib.image

    png = tmp_path / "curves" / "lenet.png"
    r = run_cli("train", "lenet", "--data-dir", skewed_dir, "--limit", 256, "--epochs", 2, "--seed", 1, "--plot", png)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] >= 200 and image.shape[1] >= 400  # two panels side by side
    assert image[..., :3].std() > 0.01  # something is drawn, not a blank canvas


@pytest.mark.skipif(HAVE_MATPLOTLIB, reason="this is about environments without matplotlib")
def test_plot_without_matplotlib_fails_before_training_in_one_line(skewed_dir, tmp_path):
    r = run_cli("train", "lenet", "--data-dir", skewed_dir, "--limit", 256, "--epochs", 1, "--plot", tmp_path / "x.png")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "matplotlib" in r.stderr
    assert epoch_line_count(r.stdout) == 0


# ---- summary -----------------------------------------------------------------------------------------
GOOGLENET_AT_96 = [  # the chapter's printout: layer.name, 'output shape:', X.shape for X of shape (1, 1, 96, 96)
    ("sequential0", (1, 64, 24, 24)),
    ("sequential1", (1, 192, 12, 12)),
    ("sequential2", (1, 480, 6, 6)),
    ("sequential3", (1, 832, 3, 3)),
    ("sequential4", (1, 1024, 1, 1)),
    ("dense0", (1, 10)),
]


SUMMARY_ROW = r"^(\w+)\s+(\([\d, ]+\))\s+([\d,]+)\s+([\d,]+)(?:  (.+))?$"


def summary_rows(stdout: str) -> list[tuple[str, tuple, int, int]]:
    rows = []
    for m in re.finditer(SUMMARY_ROW, stdout, re.M):
        shape = tuple(int(v) for v in m.group(2).strip("()").split(",") if v.strip())
        rows.append((m.group(1), shape, int(m.group(3).replace(",", "")), int(m.group(4).replace(",", ""))))
    return rows


def summary_algorithms(stdout: str) -> dict[str, list[str]]:
    """Each row's algorithm column, split into its names (an empty list for layers without one)."""
    found = {}
    for m in re.finditer(SUMMARY_ROW, stdout, re.M):
        found[m.group(1)] = m.group(5).split(", ") if m.group(5) else []
    return found


@pytest.mark.parametrize("network", ["lenet", "googlenet", "nin"])
def test_summary_names_each_layers_algorithm_the_textbook_ones_with_textbook(network):
    fast, textbook = run_cli("summary", network, MINICNN_TEXTBOOK="0"), run_cli("summary", network, "--textbook")
    assert fast.returncode == textbook.returncode == 0, fast.stderr + textbook.stderr
    assert "in fast mode" in fast.stdout.splitlines()[0] and "in textbook mode" in textbook.stdout.splitlines()[0]
    names = {n for row in summary_algorithms(textbook.stdout).values() for n in row}
    assert names <= {"im2col", "window loop", "mean"} and "im2col" in names
    fast_names = {n for row in summary_algorithms(fast.stdout).values() for n in row}
    assert fast_names - {"im2col", "window loop", "mean"}, fast.stdout  # every network has a fast path somewhere
    assert summary_rows(fast.stdout) == summary_rows(textbook.stdout)  # the same shapes, parameters and FLOPs


def test_summary_names_lenets_plane_convolutions_and_2x2_pools():
    algorithms = summary_algorithms(run_cli("summary", "lenet", MINICNN_TEXTBOOK="0").stdout)
    assert algorithms["conv0"] == algorithms["conv1"] == ["plane"]
    assert algorithms["pool0"] == algorithms["pool1"] == ["2x2 tiles"]
    assert algorithms["dense0"] == []
    textbook = summary_algorithms(run_cli("summary", "lenet", "--textbook").stdout)
    assert textbook["conv0"] == ["im2col"] and textbook["pool0"] == ["window loop"]


def test_minicnn_textbook_1_in_the_environment_is_the_textbook_switch_too():
    r = run_cli("summary", "lenet", MINICNN_TEXTBOOK="1")
    assert summary_algorithms(r.stdout)["conv0"] == ["im2col"], r.stdout + r.stderr


def test_summary_googlenet_prints_the_chapters_shapes_at_96(tmp_path):
    r = run_cli("summary", "googlenet")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("googlenet, input (1, 1, 96, 96)")
    rows = summary_rows(r.stdout)
    assert [(name, shape) for name, shape, _, _ in rows] == GOOGLENET_AT_96
    total = re.search(r"^total\s+([\d,]+)\s+([\d,]+)$", r.stdout, re.M)
    assert int(total.group(1).replace(",", "")) == sum(p for _, _, p, _ in rows) == 5_977_530
    assert int(total.group(2).replace(",", "")) == sum(f for _, _, _, f in rows)
    assert all(f > 0 for _, _, _, f in rows)


def test_summary_input_size_changes_the_shapes_and_flops():
    small, big = run_cli("summary", "googlenet", "--input-size", "48"), run_cli("summary", "googlenet")
    rows_small, rows_big = summary_rows(small.stdout), summary_rows(big.stdout)
    assert rows_small[0][1] == (1, 64, 12, 12)
    assert [p for _, _, p, _ in rows_small] == [p for _, _, p, _ in rows_big]  # parameters do not depend on it
    assert rows_small[0][3] * 4 == rows_big[0][3]  # b1 is conv + pool: FLOPs scale with the pixels


def test_summary_of_an_input_too_small_for_the_kernels_is_one_line_exit_2():
    r = run_cli("summary", "alexnet", "--input-size", "32")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "alexnet at 32x32" in r.stderr


# ---- checkpoints -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lenet_run(skewed_dir, tmp_path_factory):
    """A LeNet trained for two epochs with --save and --log: (checkpoint path, log records)."""
    d = tmp_path_factory.mktemp("lenet-run")
    ckpt, log = d / "lenet.npz", d / "lenet.jsonl"
    r = run_cli(
        "train", "lenet", "--data-dir", skewed_dir, "--limit", 1024, "--epochs", 2, "--batch-size", 32, "--seed", 2,
        "--save", ckpt, "--log", log,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"saved {ckpt}" in r.stdout
    return ckpt, read_log(log)


def eval_acc(stdout: str) -> float:
    return float(re.search(r"test acc ([\d.]+) on \d+ images", stdout).group(1))


def test_eval_of_a_saved_checkpoint_gives_the_last_epochs_test_accuracy(lenet_run, skewed_dir):
    ckpt, records = lenet_run
    r = run_cli("eval", "lenet", "--load", ckpt, "--data-dir", skewed_dir, "--limit", 1024)
    assert r.returncode == 0, r.stderr
    assert "on 200 images" in r.stdout
    assert eval_acc(r.stdout) == round(records[-1]["test_acc"], 4)
    # an evaluation batch size other than the training one changes nothing
    r2 = run_cli("eval", "lenet", "--load", ckpt, "--data-dir", skewed_dir, "--batch-size", 7)
    assert eval_acc(r2.stdout) == eval_acc(r.stdout)


def test_the_checkpoint_is_an_npz_of_plain_arrays_naming_the_network_and_its_settings(lenet_run):
    ckpt, _ = lenet_run
    with np.load(ckpt, allow_pickle=False) as archive:  # no pickled objects anywhere
        meta = json.loads(str(archive["meta"]))
        params = {k: archive[k] for k in archive.files if k.startswith("param/")}
    assert meta["network"] == "lenet"
    assert meta["settings"]["batch_size"] == 32 and meta["settings"]["lr"] == 0.9
    assert {k: v.shape for k, v in params.items()} == {
        "param/conv0_weight": (6, 1, 5, 5), "param/conv0_bias": (6,),
        "param/conv1_weight": (16, 6, 5, 5), "param/conv1_bias": (16,),
        "param/dense0_weight": (120, 256), "param/dense0_bias": (120,),
        "param/dense1_weight": (84, 120), "param/dense1_bias": (84,),
        "param/dense2_weight": (10, 84), "param/dense2_bias": (10,),
    }  # fmt: skip
    assert not list(ckpt.parent.glob(".*.tmp")), "the atomic write left a temporary file behind"


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_loading_another_networks_checkpoint_is_one_line_exit_2(lenet_run, skewed_dir):
    ckpt, _ = lenet_run
    line = one_line_error(run_cli("eval", "alexnet", "--load", ckpt, "--data-dir", skewed_dir))
    assert "checkpoint of 'lenet', not 'alexnet'" in line


def test_loading_a_vgg_checkpoint_with_another_width_divisor_is_one_line_exit_2(skewed_dir, tmp_path):
    ckpt = tmp_path / "vgg16th.npz"
    r = run_cli(
        "train", "vgg11", "--data-dir", skewed_dir, "--resize", 32, "--width-divisor", 16, "--limit", 16,
        "--batch-size", 16, "--epochs", 1, "--seed", 0, "--save", ckpt,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    line = one_line_error(run_cli("eval", "vgg11", "--load", ckpt, "--data-dir", skewed_dir, "--width-divisor", 8))
    assert "conv0_weight" in line and "(4, 1, 3, 3)" in line and "(8, 1, 3, 3)" in line, line
    assert "--width-divisor" in line
    # the divisor it was trained with, given or not, loads
    for extra in ([], ["--width-divisor", "16"]):
        ok = run_cli("eval", "vgg11", "--load", ckpt, "--data-dir", skewed_dir, "--limit", 16, *extra)
        assert ok.returncode == 0, ok.stderr


def test_a_truncated_checkpoint_is_one_line_exit_2(lenet_run, skewed_dir, tmp_path):
    ckpt, _ = lenet_run
    cut = tmp_path / "cut.npz"
    data = ckpt.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    line = one_line_error(run_cli("eval", "lenet", "--load", cut, "--data-dir", skewed_dir))
    assert str(cut) in line and "not a readable minicnn checkpoint" in line


def test_summary_layers_gives_every_layer_and_names_googlenets_fused_heads():
    r = run_cli("summary", "googlenet", "--layers", MINICNN_TEXTBOOK="0")
    assert r.returncode == 0, r.stderr
    algorithms = summary_algorithms(r.stdout)
    assert algorithms["conv0"] == ["fused im2col"] and algorithms["conv2"] == ["winograd"]
    assert algorithms["conv3"] == ["fused im2col (fused heads)"]  # the first Inception's first 1x1 head
    assert algorithms["pool0"] == ["runs"] and algorithms["pool13"] == ["mean"]  # the last pool: global average
    assert len(summary_rows(r.stdout)) == 2 + 3 + 9 * 7 + 3 + 1  # b1, b2, nine Inceptions, three pools, dense0
    textbook = summary_algorithms(run_cli("summary", "googlenet", "--layers", "--textbook").stdout)
    assert textbook["conv3"] == ["im2col"] and textbook["pool0"] == ["window loop"]
