"""The switches between the textbook algorithms and the fast paths, read at call time.

minicnn runs every op in one of two modes:

- **textbook**: only the plain algorithms a learner reads first (`minicnn/ops/`, `minicnn/backend/cpu.py`):
  convolution as im2col + one GEMM + bias + activation, pooling as the window loop, the plain SGD update,
  GoogLeNet's Inception as the chapter writes it;
- **fast** (the default): the same ops, with a faster algorithm wherever `minicnn/fast/dispatch.py` has one for
  the shapes at hand (docs/fast-paths.md). The tests hold every fast path to the textbook's results.

Turn the textbook mode on with `MINICNN_TEXTBOOK=1` in the environment, `--textbook` on the command line, or in
Python:

    with minicnn.config.textbook():          # or minicnn.config.set_textbook(True)
        y = net(x)

Each fast path can also be turned off alone (`MINICNN_WINOGRAD=0`, ...: `fast_path`); docs/configuration.md lists
every variable. Everything here is read when an op runs, so a change takes effect at the next call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_TRUE = ("1", "true", "yes", "on")
_override: list[bool] = []  # set_textbook / textbook(): the innermost wins over the environment


def textbook_mode() -> bool:
    """Whether ops run only the textbook algorithms (MINICNN_TEXTBOOK=1, `textbook()` or `set_textbook(True)`)."""
    if _override:
        return _override[-1]
    return os.environ.get("MINICNN_TEXTBOOK", "").strip().lower() in _TRUE


@contextmanager
def textbook(on: bool = True) -> Iterator[None]:
    """Run the block in textbook mode (`on=False`: in fast mode, whatever the environment says)."""
    _override.append(bool(on))
    try:
        yield
    finally:
        _override.pop()


def set_textbook(on: bool | None) -> None:
    """Textbook mode on (True) or off (False) from now on; None: follow MINICNN_TEXTBOOK again."""
    _override.clear()
    if on is not None:
        _override.append(bool(on))


def fast_path(name: str) -> bool:
    """Whether fast path `name` may run: not in textbook mode, and not turned off by MINICNN_<NAME>=0."""
    return not textbook_mode() and switch(name)


def switch(name: str) -> bool:
    """Whether fast path `name` is left on by MINICNN_<NAME> (anything but 0), textbook mode aside: for callers
    that have asked `textbook_mode()` already."""
    return os.environ.get(f"MINICNN_{name.upper()}", "1").strip() != "0"
