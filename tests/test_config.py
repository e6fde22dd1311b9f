"""The textbook switch and the fast-path switches (minicnn/config.py): read at call time, in the order the docs give."""

from __future__ import annotations

import threading

import pytest

from minicnn import config


@pytest.fixture(autouse=True)
def no_choice(monkeypatch):
    monkeypatch.delenv("MINICNN_TEXTBOOK", raising=False)
    config.set_textbook(None)
    yield
    config.set_textbook(None)


@pytest.mark.parametrize("value", ["1", "true", "Yes", " on "])
def test_minicnn_textbook_turns_textbook_mode_on_when_an_op_runs_not_at_import(value, monkeypatch):
    assert not config.textbook_mode()
    monkeypatch.setenv("MINICNN_TEXTBOOK", value)
    assert config.textbook_mode()
    monkeypatch.setenv("MINICNN_TEXTBOOK", "0")
    assert not config.textbook_mode()


def test_a_textbook_block_wins_over_set_textbook_which_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("MINICNN_TEXTBOOK", "1")
    config.set_textbook(False)
    assert not config.textbook_mode()
    with config.textbook():
        assert config.textbook_mode()
        with config.textbook(False):
            assert not config.textbook_mode()
        config.set_textbook(None)  # inside a block: the block still wins, and its end still restores
        assert config.textbook_mode()
    assert config.textbook_mode()  # the environment again


def test_a_textbook_block_holds_in_its_own_thread_only():
    seen = []
    with config.textbook():
        worker = threading.Thread(target=lambda: seen.append(config.textbook_mode()))
        worker.start()
        worker.join()
        assert config.textbook_mode()
    assert seen == [False]


@pytest.mark.parametrize(("value", "on"), [("0", False), ("false", False), ("OFF", False), ("no", False),
                                           ("1", True), ("", True), ("yes", True)])  # fmt: skip
def test_a_fast_path_switch_is_off_for_0_false_no_and_off(value, on, monkeypatch):
    monkeypatch.setenv("MINICNN_WINOGRAD", value)
    assert config.fast_path("winograd") is on
    with config.textbook():
        assert not config.fast_path("winograd")
