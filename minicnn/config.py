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
from contextvars import ContextVar

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_block: ContextVar[bool | None] = ContextVar("minicnn_textbook_block", default=None)  # the innermost textbook()
_chosen: bool | None = None  # set_textbook's choice, for the whole process


def textbook_mode() -> bool:
    """Whether ops run only the textbook algorithms: the innermost `textbook()` block, else `set_textbook`'s
    choice, else MINICNN_TEXTBOOK (1, true, yes or on)."""
    block = _block.get()
    if block is not None:
        return block
    if _chosen is not None:
        return _chosen
    return os.environ.get("MINICNN_TEXTBOOK", "").strip().lower() in _TRUE


@contextmanager
def textbook(on: bool = True) -> Iterator[None]:
    """Run the block in textbook mode (`on=False`: in fast mode, whatever else says). A context variable holds it,
    so it applies to this thread (and asyncio task) only."""
    token = _block.set(bool(on))
    try:
        yield
    finally:
        _block.reset(token)


def set_textbook(on: bool | None) -> None:
    """Textbook mode on (True) or off (False) from now on, for the whole process (a `textbook()` block still wins
    inside it); None: follow MINICNN_TEXTBOOK again."""
    global _chosen
    _chosen = None if on is None else bool(on)


def fast_path(name: str) -> bool:
    """Whether fast path `name` may run: not in textbook mode, and not turned off by MINICNN_<NAME>=0."""
    return not textbook_mode() and switch(name)


def switch(name: str) -> bool:
    """Whether fast path `name` is left on by MINICNN_<NAME> (off: 0, false, no or off), textbook mode aside: for
    callers that have asked `textbook_mode()` already."""
    return os.environ.get(f"MINICNN_{name.upper()}", "1").strip().lower() not in _FALSE
