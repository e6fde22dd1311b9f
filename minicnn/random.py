"""Random numbers for initialisation, dropout and shuffling, from one seed.

`seed(s)` makes every later draw (weights, dropout masks, the loader's order) repeatable on the CPU.
Each backend gets its own generator, derived from the seed, so CPU and GPU streams never interleave.
"""

from __future__ import annotations

import numpy as np

_seed: int | None = None
_generators: dict[str, object] = {}


def seed(value: int | None) -> None:
    """Reset every generator to a stream determined by `value` (None: fresh entropy)."""
    global _seed
    _seed = value
    _generators.clear()


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
    """The CPU generator (used for initial weights, whatever the device, so a seed gives the same net)."""
    return generator("cpu")


def get_state() -> dict:
    """Everything needed to continue the same random streams later (for checkpoints)."""
    return {"seed": _seed, "cpu": host_generator().bit_generator.state}


def set_state(state: dict) -> None:
    seed(state["seed"])
    host_generator().bit_generator.state = state["cpu"]
