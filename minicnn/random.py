"""Random numbers for initialisation, dropout and shuffling, from one seed.

`seed(s)` makes every later draw (weights, dropout masks, the loader's order) repeatable on the CPU.
Each backend gets its own generator for dropout masks, derived from the seed, so CPU and GPU streams never
interleave. Each parameter draws its initial values from a stream of its own, keyed by its name (and by how many
times that name was drawn since the seed), so a network's weights do not depend on the order in which its layers
first run: a deferred shape is fixed by the first forward pass, whatever else that pass draws.

In data-parallel training (distributed.py) each process holds some rows of a global batch; its loader says which
(`set_batch_rows`), and dropout then draws the masks of the whole global batch, as one process would, and keeps
those rows: every process draws the same numbers, and together they use the masks one process would use.
"""

from __future__ import annotations

import zlib

import numpy as np

_seed: int | None = None
_generators: dict[str, object] = {}
_draws: dict[str, int] = {}  # parameter name -> how many times it was initialised since seed()
_batch_rows: tuple[int, int, int] | None = None  # (lo, hi, n): the batch in hand is rows lo:hi of a batch of n


def seed(value: int | None) -> None:
    """Reset every generator to a stream determined by `value` (None: fresh entropy)."""
    global _seed
    _seed = value
    _generators.clear()
    _draws.clear()


def fresh_seed() -> int:
    """A seed drawn from the operating system's entropy (what a run without --seed uses, and reports)."""
    return int(np.random.SeedSequence().entropy % 2**31)


def parameter_generator(name: str) -> np.random.Generator:
    """A generator for one initialisation of parameter `name`: the same seed, name and count give the same values,
    whichever other parameters were drawn before."""
    count = _draws.get(name, 0)
    _draws[name] = count + 1
    if _seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence(_seed, spawn_key=(2, zlib.crc32(name.encode()), count)))


def generator(backend_name: str = "cpu"):
    """The generator of a backend: a `numpy.random.Generator` for 'cpu'; the GPU backend makes its own."""
    if backend_name not in _generators:
        stream = {"cpu": 0, "gpu": 1}[backend_name]  # a fixed stream per backend, whatever is used first
        child = np.random.SeedSequence(_seed).spawn(2)[stream] if _seed is not None else None
        if backend_name == "cpu":
            _generators[backend_name] = np.random.default_rng(child)
        else:
            from . import backend

            _generators[backend_name] = backend.for_device(backend_name).make_generator(child)
    return _generators[backend_name]


def host_generator() -> np.random.Generator:
    """The CPU generator (dropout masks on the CPU; `nd.random`), whatever the device."""
    return generator("cpu")


def set_batch_rows(rows: tuple[int, int, int] | None) -> None:
    """Say that the batch in hand is rows lo:hi of a global batch of n rows, `rows` = (lo, hi, n); None: it is the
    whole batch (one process). Set by a sharded DataLoader before each batch it yields."""
    global _batch_rows
    _batch_rows = rows


def batch_rows() -> tuple[int, int, int] | None:
    """(lo, hi, n) as `set_batch_rows` last said, or None."""
    return _batch_rows


def get_state() -> dict:
    """Everything needed to continue the same random streams later (for checkpoints)."""
    return {"seed": _seed, "cpu": host_generator().bit_generator.state, "draws": dict(_draws)}


def set_state(state: dict) -> None:
    seed(state["seed"])
    host_generator().bit_generator.state = state["cpu"]
    _draws.update(state.get("draws", {}))
