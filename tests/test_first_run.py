"""The first run compiles numba's kernels before the first epoch, says so, and changes nothing of the run."""

from __future__ import annotations

import io
import time

import numpy as np
from cli_helpers import run_cli

import minicnn as mc
from minicnn import init, nn, train, train_state
from minicnn import random as mc_random
from minicnn.data import DataLoader


def _run(warm: bool, monkeypatch):
    if not warm:
        monkeypatch.setattr(train, "compile_kernels", lambda *a, **k: None)
    mc_random.seed(4)
    rng = np.random.default_rng(2)
    images, labels = rng.integers(0, 256, (48, 8, 8)).astype(np.uint8), rng.integers(0, 10, 48)
    with nn.fresh_names():
        net = nn.Sequential()
        net.add(nn.Conv2D(4, 3, activation="sigmoid"), nn.MaxPool2D(2), nn.Dropout(0.5), nn.Dense(10))
    net.initialize(init=init.Xavier())
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    loaders = DataLoader(images, labels, 16, shuffle=True, seed=1), DataLoader(images, labels, 16)
    results = train.train_ch5(net, *loaders, 16, trainer, mc.cpu(), 2, progress=False, log=lambda line: None)
    return [(r.loss, r.train_acc, r.test_acc) for r in results], {
        k: p.data().asnumpy() for k, p in net.collect_params().items()
    }


def test_compiling_before_the_first_epoch_changes_no_number_of_the_run(monkeypatch):
    """The warm-up pass draws no dropout mask that training would have drawn, updates nothing and leaves no
    gradient behind: the same losses and the same parameters, bit for bit, as a run without it."""
    warm = _run(True, monkeypatch)
    cold = _run(False, monkeypatch)
    assert warm[0] == cold[0]
    for k in warm[1]:
        np.testing.assert_array_equal(warm[1][k], cold[1][k])


def test_the_compiling_notice_appears_only_when_the_block_takes_longer_than_a_second():
    said = io.StringIO()
    with train_state.compiling_notice(said, after=0.05):
        time.sleep(0.3)
    assert said.getvalue() == "compiling kernels (first run only) ...\n"
    quiet = io.StringIO()
    with train_state.compiling_notice(quiet, after=0.5):
        pass
    time.sleep(0.6)
    assert quiet.getvalue() == ""


def test_the_compile_command_compiles_ahead_of_time_and_says_where_the_kernels_are():
    r = run_cli("compile", "--dtype", "float32")
    assert r.returncode == 0, r.stderr
    assert (
        "compiled the fast kernels for float32" in r.stdout and "compiled the textbook kernels for float32" in r.stdout
    )
    assert "numba keeps them in" in r.stdout
