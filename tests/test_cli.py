"""The command line, run as a user runs it: `python -m minicnn ...` in a subprocess."""

from __future__ import annotations

import re

import pytest
from cli_helpers import run_cli


def epoch_lines(stdout: str) -> list[tuple[float, float, float]]:
    pattern = r"epoch (\d+), loss ([\d.]+), train acc ([\d.]+), test acc ([\d.]+), time ([\d.]+) sec"
    return [tuple(map(float, m.groups()[1:4])) for m in re.finditer(pattern, stdout)]


def test_train_prints_one_chapter_style_line_per_epoch(tiny_fashion_dir):
    r = run_cli(
        "train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "2", "--batch-size", "32",
        "--lr", "0.9", "--seed", "3",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "training on cpu(0)" in r.stdout
    lines = epoch_lines(r.stdout)
    assert len(lines) == 2
    assert lines[1][0] < lines[0][0], "the loss should fall from epoch 1 to epoch 2"


def test_limit_trains_on_the_first_n_samples(tiny_fashion_dir):
    r = run_cli("train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "1", "--limit", "64")
    assert r.returncode == 0, r.stderr
    assert "64 train / 64 test images" in r.stdout


def test_progress_bar_is_drawn_on_stderr_when_asked_with_images_per_second(tiny_fashion_dir):
    r = run_cli(
        "train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "1", "--batch-size", "100", "--progress"
    )
    assert r.returncode == 0, r.stderr
    bar = r"epoch 1: +\d+%\|.*\|.*/600 \[.*img/s\]"  # tqdm's bar over the epoch's 600 images
    assert re.search(bar, r.stderr), r.stderr
    assert "epoch 1, loss" in r.stdout and "img/s" not in r.stdout  # the chapter's line stays as it was


def test_no_progress_bar_when_stderr_is_no_terminal(tiny_fashion_dir):
    r = run_cli("train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "1", "--batch-size", "100")
    assert r.returncode == 0, r.stderr
    assert "img/s" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "resnet"], "unknown network 'resnet'"),
        (["train", "lenet", "--epochs", "0"], "expected a positive int"),
        (["train", "lenet", "--lr", "abc"], "expected a positive float"),
        (["train", "lenet", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "lenet", "--width-divisor", "4"], "--width-divisor applies to VGG only"),
        (["train", "lenet", "--seed", "-1"], "expected a non-negative int"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["summary", "lenet", "--input-size", "100000000"],  # 40,000 TiB: more than any address space holds
        ["profile", "lenet", "--batch-size", "1000000000000"],  # 5,700 TiB
    ],
)
def test_sizes_beyond_the_machines_memory_are_one_line_and_exit_2(args):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert "out of memory" in r.stderr and "choose smaller sizes" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("ranks", [1, 2])
def test_running_out_of_memory_in_set_up_is_one_line_and_exit_2_on_every_rank(monkeypatch, capsys, ranks):
    """The set-up of a data-parallel run (`_on_every_rank`) reports it like one process does; here on a pretend
    second rank whose check-in hears from rank 0 only."""
    from minicnn import cli, distributed

    def plan(args):
        raise MemoryError("Unable to allocate 9.00 TiB")

    monkeypatch.setattr(cli, "_plan", plan)
    monkeypatch.setattr(distributed, "size", lambda: ranks)
    monkeypatch.setattr(distributed, "check_in", lambda problem: [(0, problem)] if problem else [])
    assert cli.main(["train", "lenet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory: Unable to allocate 9.00 TiB" in err[0], err


def test_a_data_dir_without_the_files_is_one_line_naming_it_and_exit_2_not_a_fallback(
    tmp_path, tiny_fashion_dir, monkeypatch, capsys
):
    from minicnn import cli
    from minicnn.data import fashion_mnist as fm

    monkeypatch.setattr(fm, "DEBIAN_DIR", tiny_fashion_dir)  # data in a default place: it must not be used
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "no-mxnet"))
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    for named, what in ((empty, "lacks train-images-idx3-ubyte.gz"), (tmp_path / "nonexistent", "does not exist")):
        assert cli.main(["train", "lenet", "--data-dir", str(named), "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert f"data directory {named} {what}" in err and "dataset-fashion-mnist" in err


def test_gpu_without_cuda_is_one_line_and_exit_2():
    pytest.importorskip("numpy")
    try:
        from minicnn.backend import gpu_backend

        gpu_backend()
        pytest.skip("a CUDA device is present: this test is about machines without one")
    except Exception:
        pass
    r = run_cli("train", "lenet", "--device", "gpu", "--epochs", "1")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "GPU" in r.stderr or "CUDA" in r.stderr or "CuPy" in r.stderr


def test_an_unwritable_log_path_is_one_line_and_exit_2(tiny_fashion_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = run_cli(
        "train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "1", "--log", str(blocker / "run.jsonl")
    )
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("minicnn: error")]
    assert len(errors) == 1 and "run.jsonl" in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_every_command_takes_textbook():
    from minicnn import cli

    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == set(cli.COMMANDS)
    for name, sub in commands.items():
        assert any("--textbook" in a.option_strings for a in sub._actions), f"{name} has no --textbook"


def test_train_with_textbook_gives_the_fast_runs_numbers_within_rounding(tiny_fashion_dir):
    """The same seed, the same data: the textbook's and the fast algorithms' epochs agree to float32 rounding."""
    args = ("train", "lenet", "--data-dir", str(tiny_fashion_dir), "--epochs", "2", "--batch-size", "32", "--seed", "3")
    fast, textbook = run_cli(*args, MINICNN_TEXTBOOK="0"), run_cli(*args, "--textbook")
    assert fast.returncode == textbook.returncode == 0, fast.stderr + textbook.stderr
    for (loss, train_acc, test_acc), (loss_t, train_acc_t, test_acc_t) in zip(
        epoch_lines(fast.stdout), epoch_lines(textbook.stdout), strict=True
    ):
        assert abs(loss - loss_t) <= 2e-3
        assert abs(train_acc - train_acc_t) <= 0.02 and abs(test_acc - test_acc_t) <= 0.02


@pytest.mark.parametrize("command", [("profile", "lenet", "--batch-size", "8", "--steps", "1"), ("summary", "nin")])
def test_profile_and_summary_run_in_textbook_mode(command):
    r = run_cli(*command, "--textbook")
    assert r.returncode == 0, r.stderr
