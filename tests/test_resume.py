"""Interrupting, resuming, diverging and repeating a training run.

Through the command line in subprocesses (as a user runs it) on the tiny synthetic Fashion-MNIST of conftest, and
through `train_ch5` in-process for what the command line cannot reach cheaply (dropout, momentum, the GPU's
deferred NaN check run on NumPy arrays).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess

import numpy as np
import pytest
from cli_helpers import cli_command, cli_env, run_cli

import minicnn as mc
from minicnn import autograd, checkpoint, cli, init, nn
from minicnn import random as mc_random
from minicnn.data import DataLoader
from minicnn.optim import Trainer
from minicnn.train import train_ch5
from minicnn.train_state import Diverged, Interrupted, TrainState, _LossWatch

# LeNet, 96 images in batches of 16: 6 steps per epoch, 2 epochs.
TINY = ("--limit", "96", "--batch-size", "16", "--epochs", "2", "--seed", "5", "--no-progress")


def problems(stderr: str) -> list[str]:
    """stderr without the synthetic data's 'matches no known copy' warnings and the compiling notice (a busy
    machine can take a second for it)."""
    ignored = ("minicnn: warning:", "compiling kernels")
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(ignored)]


def epoch_lines(stdout: str) -> list[str]:
    """The chapter-style epoch lines without their (never repeatable) time."""
    return re.findall(r"epoch \d+, loss [^,]+, train acc [^,]+, test acc [\d.]+", stdout)


def params_of(path) -> dict[str, np.ndarray]:
    return checkpoint.load(path)[1]


def meta_of(path) -> dict:
    return checkpoint.load(path)[0]


def assert_bit_identical(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name, x in a.items():
        assert x.dtype == b[name].dtype and x.shape == b[name].shape, name
        assert x.tobytes() == b[name].tobytes(), f"{name} differs"


@pytest.fixture(scope="module")
def uninterrupted(tiny_fashion_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("uninterrupted")
    r = run_cli(
        "train", "lenet", "--data-dir", tiny_fashion_dir, *TINY, "--save", d / "full.npz", "--log", d / "full.jsonl"
    )
    assert r.returncode == 0, r.stderr
    return r, d


# ---- interrupt and resume -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stop_check", "position"),
    [
        (3, (1, 3)),  # in the middle of epoch 1
        (6, (1, 6)),  # after epoch 1's last step, before its evaluation
        (7, (2, 0)),  # at the end of epoch 1 (the 7th check is the epoch's own)
        (9, (2, 2)),  # in the middle of epoch 2
    ],
)
def test_a_run_interrupted_by_ctrl_c_and_resumed_ends_with_bit_identical_parameters(
    stop_check, position, uninterrupted, tiny_fashion_dir, tmp_path
):
    full, full_dir = uninterrupted
    path, log = tmp_path / "run.npz", tmp_path / "run.jsonl"
    first = run_cli(
        "train", "lenet", "--data-dir", tiny_fashion_dir, *TINY, "--save", path, "--log", log,
        MINICNN_TEST_INTERRUPT_AFTER=stop_check,
    )  # fmt: skip
    assert first.returncode == 130, first.stderr
    epoch, batch = position
    assert problems(first.stderr)[-1] == (
        f"minicnn: interrupted in epoch {epoch} after batch {batch}; saved the training state to {path}; "
        f"continue with: python -m minicnn train lenet --resume {path}"
    )
    assert (meta_of(path)["train"]["epoch"], meta_of(path)["train"]["batch"]) == position

    # --data-dir, --limit, --seed and the rest come from the checkpoint; the final parameters go back to --save's path
    second = run_cli("train", "lenet", "--resume", path, "--log", log, "--no-progress")
    assert second.returncode == 0, second.stderr
    assert f"resuming {path} at epoch {epoch} after batch {batch}" in second.stdout

    assert_bit_identical(params_of(full_dir / "full.npz"), params_of(path))
    assert epoch_lines(first.stdout) + epoch_lines(second.stdout) == epoch_lines(full.stdout)
    timing = ("seconds", "images_per_sec")
    records = [{k: v for k, v in json.loads(line).items() if k not in timing} for line in log.read_text().splitlines()]
    expected = [
        {k: v for k, v in json.loads(line).items() if k not in timing}
        for line in (full_dir / "full.jsonl").read_text().splitlines()
    ]
    assert records == expected


def test_a_real_ctrl_c_without_save_writes_the_default_path_and_the_run_resumes_from_it(tiny_fashion_dir, tmp_path):
    proc = subprocess.Popen(
        cli_command(
            "train", "lenet", "--data-dir", tiny_fashion_dir, "--limit", "32", "--batch-size", "16",
            "--epochs", "1000000", "--seed", "1", "--no-progress",
        ),
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:  # the handler is in place before train_ch5 prints this line
            if line.startswith("training on"):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    saved = tmp_path / "minicnn-lenet-interrupted.npz"
    assert "stopping after this step" in err
    assert f"saved the training state to {saved.name}; continue with" in err
    state = meta_of(saved)["train"]
    # run on to the end of the next epoch: the signal may have landed mid-epoch or just after an epoch ended,
    # and "finish the interrupted epoch" would be an error ("all epochs done") in the second case
    last = state["epoch"] + 1
    r = run_cli("train", "lenet", "--resume", saved, "--epochs", last, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert epoch_lines(r.stdout)[-1].startswith(f"epoch {last}, loss")


def test_resume_refuses_settings_that_differ_from_the_checkpoints(uninterrupted):
    _, d = uninterrupted
    r = run_cli("train", "lenet", "--resume", d / "full.npz", "--lr", "0.5", "--epochs", "3")
    assert r.returncode == 2
    assert problems(r.stderr) == [
        f"minicnn: error: --resume continues {d / 'full.npz'} with the settings it was started with: "
        "--lr 0.5 differs from its 0.9; leave --lr out"
    ]


def test_resuming_a_finished_run_asks_for_more_epochs(uninterrupted):
    _, d = uninterrupted
    r = run_cli("train", "lenet", "--resume", d / "full.npz")
    assert r.returncode == 2
    assert "has finished all 2 epochs; pass --epochs N (more than 2)" in r.stderr


def test_resuming_a_checkpoint_of_another_network_is_refused(uninterrupted):
    _, d = uninterrupted
    r = run_cli("train", "nin", "--resume", d / "full.npz")
    assert r.returncode == 2
    assert "is a checkpoint of 'lenet', not 'nin'" in r.stderr


def test_a_second_ctrl_c_interrupts_at_once():
    before = signal.getsignal(signal.SIGINT)
    with cli._StopOnCtrlC() as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)
        assert stop(), "the first Ctrl-C only asks training to stop"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before, "the handler is removed after training"


# ---- reproducibility ----------------------------------------------------------------------------------------------
def test_the_same_seed_on_the_cpu_repeats_every_printed_digit(uninterrupted, tiny_fashion_dir):
    full, _ = uninterrupted
    again = run_cli("train", "lenet", "--data-dir", tiny_fashion_dir, *TINY)
    assert again.returncode == 0, again.stderr
    assert len(epoch_lines(full.stdout)) == 2
    assert epoch_lines(again.stdout) == epoch_lines(full.stdout)
    other = run_cli("train", "lenet", "--data-dir", tiny_fashion_dir, *TINY[:-3], "--seed", "6", "--no-progress")
    assert other.returncode == 0, other.stderr
    assert epoch_lines(other.stdout) != epoch_lines(full.stdout), "the seed should matter"


# ---- divergence ---------------------------------------------------------------------------------------------------
def test_lr_1000_stops_with_one_line_exit_1_and_leaves_the_last_good_checkpoint(tiny_fashion_dir, tmp_path):
    # LeNet's sigmoids saturate, so its loss stays finite at any learning rate; VGG's ReLUs let it blow up.
    vgg = ("vgg11", "--width-divisor", "16", "--resize", "32", "--limit", "32", "--batch-size", "16", "--seed", "1")
    path = tmp_path / "vgg.npz"
    settings = cli._settings(cli.build_parser().parse_args(["train", *vgg]))
    checkpoint.save(path, cli.build_network(settings), {"network": "vgg11", "settings": settings})
    before = path.read_bytes()

    r = run_cli("train", *vgg, "--data-dir", tiny_fashion_dir, "--epochs", "3", "--lr", "1000", "--save", path)
    assert r.returncode == 1, r.stderr
    [line] = problems(r.stderr)
    m = re.fullmatch(
        r"minicnn: training diverged: the loss became (nan|inf|-inf) at epoch (\d), batch (\d); (.*); "
        r"try a smaller learning rate \(e\.g\. --lr 100\)",
        line,
    )
    assert m, line
    epoch = int(m.group(2))
    if epoch == 1:  # nothing good came out of this run: the earlier checkpoint is untouched
        assert m.group(4) == f"{path} was not written"
        assert path.read_bytes() == before
    else:  # the checkpoint holds the last good epoch, whose parameters are finite
        assert m.group(4) == f"{path} keeps epoch {epoch - 1}"
        assert meta_of(path)["epochs_done"] == epoch - 1
        assert all(np.isfinite(p).all() for p in params_of(path).values())
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def _batches_with_a_nan_in(bad_batch: int, n_batches: int = 4):
    rng = np.random.default_rng(0)
    out = []
    for i in range(1, n_batches + 1):
        X = rng.random((4, 1, 8, 8)).astype(np.float32)
        if i == bad_batch:
            X[0, 0, 0, 0] = np.nan
        out.append((mc.array(X), mc.array(rng.integers(0, 10, 4).astype(np.float32))))
    return out


def _small_net():
    with nn.fresh_names():
        net = nn.Sequential()
        net.add(nn.Conv2D(4, 3, activation="relu"), nn.MaxPool2D(2), nn.Dense(16, activation="relu"), nn.Dropout(0.5))
        net.add(nn.Dense(10))
    net.initialize(init.Xavier())
    with autograd.pause():
        net(mc.array(np.zeros((1, 1, 8, 8), np.float32)))  # fixes the deferred shapes, as build_network does
    return net


def test_a_nan_loss_raises_diverged_naming_epoch_and_batch_before_any_epoch_callback():
    mc_random.seed(0)
    net = _small_net()
    seen = []
    with pytest.raises(Diverged, match=r"^the loss became (nan|inf|-inf) at epoch 1, batch 3$"):
        train_ch5(
            net, _batches_with_a_nan_in(3), [], 4, Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}),
            mc.cpu(), 2, progress=False, log=lambda line: None, on_epoch=seen.append, on_state=seen.append,
        )  # fmt: skip
    assert seen == []


def test_the_deferred_gpu_style_check_names_the_first_bad_batch_every_k_batches_and_at_the_end():
    watch = _LossWatch(epoch=2, every=4, deferred=True)
    losses = [1.0, 2.0, float("inf"), float("nan"), 3.0]
    watch.add(1, np.asarray(losses[0], np.float32))
    watch.add(2, np.asarray(losses[1], np.float32))
    watch.add(3, np.asarray(losses[2], np.float32))  # recorded, not yet looked at
    with pytest.raises(Diverged, match=r"^the loss became inf at epoch 2, batch 3$"):
        watch.add(4, np.asarray(losses[3], np.float32))  # the 4th batch: the host looks
    late = _LossWatch(epoch=1, every=50, deferred=True)
    for i, v in enumerate([1.0, float("nan"), float("inf")], 1):
        late.add(i, np.asarray(v, np.float64))
    with pytest.raises(Diverged, match="nan at epoch 1, batch 2"):
        late.check()  # the end of the epoch
    fine = _LossWatch(epoch=1, deferred=True)
    fine.add(1, np.asarray(0.5, np.float32))
    fine.check()


# ---- the same, in-process, with dropout and momentum ----------------------------------------------------------------
def _loaders(seed: int):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 8, 8)).astype(np.uint8)
    labels = rng.integers(0, 10, 40)
    return DataLoader(images, labels, 8, shuffle=True, seed=seed), DataLoader(images, labels, 8)


def _fresh_run(seed: int = 3):
    mc_random.seed(seed)
    train_iter, test_iter = _loaders(seed)
    net = _small_net()
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": 0.2, "momentum": 0.9, "wd": 1e-3})
    return net, trainer, train_iter, test_iter


@pytest.mark.parametrize("stop_at", [2, 6, 9])
def test_train_ch5_resumes_bit_exactly_with_dropout_and_momentum_through_a_checkpoint_file(stop_at, tmp_path):
    quiet = {"progress": False, "log": lambda line: None}
    net, trainer, train_iter, test_iter = _fresh_run()
    expected = train_ch5(net, train_iter, test_iter, 8, trainer, mc.cpu(), 3, **quiet)
    expected_params = {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}

    net, trainer, train_iter, test_iter = _fresh_run()
    checks = iter(range(1, 100))
    with pytest.raises(Interrupted) as stopped:
        train_ch5(net, train_iter, test_iter, 8, trainer, mc.cpu(), 3, stop=lambda: next(checks) == stop_at, **quiet)
    meta = {"network": "small", "settings": {}, "train": stopped.value.state.to_json()}
    checkpoint.save(tmp_path / "stop.npz", net, meta, trainer)

    net, trainer, train_iter, test_iter = _fresh_run()  # a new process would start like this
    meta, params, opt = checkpoint.load(tmp_path / "stop.npz")
    checkpoint.apply(tmp_path / "stop.npz", net, params)
    trainer.load_state_dict(opt)
    state = TrainState.from_json(meta["train"], mc.cpu())
    results = train_ch5(net, train_iter, test_iter, 8, trainer, mc.cpu(), 3, state=state, **quiet)

    assert_bit_identical(expected_params, {k: p.data().asnumpy() for k, p in net.collect_params().items()})
    strip = [(r.epoch, r.loss, r.train_acc, r.test_acc, r.batch_losses) for r in results]
    assert strip == [(r.epoch, r.loss, r.train_acc, r.test_acc, r.batch_losses) for r in expected]
