"""Shared test setup: hypothesis profile, fixtures and strategies.

Sections (add to the one that fits, keep each small):
  1. environment   - settings that must be in place before minicnn (and so numba) is imported
  2. hypothesis    - the profile every property test runs under
  3. fixtures      - small pytest fixtures used by several test files
  4. strategies    - hypothesis strategies and plain helpers, imported with `from conftest import ...`
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

# ---- 1. environment --------------------------------------------------------------------------------
# Nothing at present. (numba's cache is kept per numba version by minicnn itself: minicnn/numba_setup.py.)

# ---- 2. hypothesis ---------------------------------------------------------------------------------
# deadline=None: the first example of a test may compile numba kernels (seconds). Each property test sets its
# own max_examples with @settings, sized so the whole suite stays fast.
settings.register_profile("minicnn", deadline=None, print_blob=True)
settings.load_profile("minicnn")


# ---- 3. fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def rng() -> np.random.Generator:
    """A NumPy generator with a fixed seed, so a failing test fails the same way again."""
    return np.random.default_rng(20240601)


@pytest.fixture
def seeded():
    """minicnn's own generators seeded (weights, dropout masks), restored to unseeded afterwards."""
    from minicnn import random

    random.seed(0)
    yield
    random.seed(None)


@pytest.fixture(scope="session")
def tiny_fashion_dir(tmp_path_factory):
    """A synthetic Fashion-MNIST (600 train, 200 test) with a learnable signal: class k is a bright bar at row 2k+4."""
    from cli_helpers import write_idx

    d = tmp_path_factory.mktemp("tiny-fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("t10k", 200)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 2 * k + 4 : 2 * k + 6, 4:24] = 250
        write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
    return d


# ---- 4. strategies and helpers ---------------------------------------------------------------------
FLOAT_DTYPES = (np.float32, np.float64)
float_dtypes = st.sampled_from(FLOAT_DTYPES)


@st.composite
def window_cases(draw, max_kernel: int = 4, max_stride: int = 4, max_extra: int = 4, pool: bool = False):
    """(N, C, H, W) and a window (kernel, stride, pad) that fits, as a dict.

    Covers batch 1, one channel, non-square kernels and inputs, stride > kernel, and an input exactly the
    padded size of the kernel (H + 2*PH == KH, one output row). `pool=True` keeps pad < kernel (MXNet's
    pooling rule); convolution padding may reach the kernel size.
    """
    kh = draw(st.integers(1, max_kernel))
    kw = draw(st.integers(1, max_kernel))
    sh = draw(st.integers(1, max_stride))
    sw = draw(st.integers(1, max_stride))
    ph = draw(st.integers(0, kh - 1 if pool else kh))
    pw = draw(st.integers(0, kw - 1 if pool else kw))
    h = draw(st.integers(max(1, kh - 2 * ph), max(1, kh - 2 * ph) + max_extra))
    w = draw(st.integers(max(1, kw - 2 * pw), max(1, kw - 2 * pw) + max_extra))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    return {"shape": (n, c, h, w), "kernel": (kh, kw), "stride": (sh, sw), "pad": (ph, pw)}


def distinct_values(shape, rng: np.random.Generator, dtype=np.float64, spread: float = 1.0) -> np.ndarray:
    """A shuffled linspace over [-spread, spread]: no two entries tie, so every max has one winner and a
    numerical derivative never crosses a tie (neighbouring values differ by 2*spread/(size-1))."""
    size = int(np.prod(shape))
    values = np.linspace(-spread, spread, size)
    return rng.permutation(values).reshape(shape).astype(dtype)


@contextmanager
def fast_mode(**paths: bool):
    """Fast mode (whatever MINICNN_TEXTBOOK says), with each fast path named turned on or off:
    `with fast_mode(framed=False): ...` runs as MINICNN_FRAMED=0 would."""
    from minicnn import config

    with pytest.MonkeyPatch.context() as mp, config.textbook(False):
        for name, on in paths.items():
            mp.setenv(f"MINICNN_{name.upper()}", "1" if on else "0")
        yield
