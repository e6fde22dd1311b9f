"""Weight initialisers (MXNet's `mxnet.init`). Each draws a host array with the seeded CPU generator.

Biases start at zero whatever the global initialiser: the layers give them `Zero()` explicitly.
"""

from __future__ import annotations

import math

import numpy as np


class Initializer:
    """Called with a shape and a `numpy.random.Generator`; returns a float64 host array.

    A subclass defines `__call__(shape, rng)`, or, as in Gluon, `_init_weight(self, name, data)`, which fills the
    NDArray `data` in place (`data[:] = ...`); the parameter calls it with its name."""

    def __call__(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(
            f"{type(self).__name__} draws nothing: define __call__(self, shape, rng) returning an array, or Gluon's "
            "_init_weight(self, name, data) filling data in place"
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Zero(Initializer):
    def __call__(self, shape, rng):
        return np.zeros(shape)


class One(Initializer):
    def __call__(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value: float):
        self.value = value

    def __call__(self, shape, rng):
        return np.full(shape, self.value, dtype=np.float64)


class Uniform(Initializer):
    """U(-scale, scale); MXNet's default initialiser (scale 0.07)."""

    def __init__(self, scale: float = 0.07):
        self.scale = scale

    def __call__(self, shape, rng):
        return rng.uniform(-self.scale, self.scale, size=shape)


class Normal(Initializer):
    """N(0, sigma^2)."""

    def __init__(self, sigma: float = 0.01):
        self.sigma = sigma

    def __call__(self, shape, rng):
        return rng.normal(0.0, self.sigma, size=shape)


class Xavier(Initializer):
    """Glorot initialisation as MXNet defines it.

    fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (receptive field = KH*KW for a
    conv weight, 1 for a dense one); factor = fan_in, fan_out or their mean ("avg");
    scale = sqrt(magnitude / factor); 'uniform' draws U(-scale, scale), 'gaussian' draws N(0, scale^2).
    """

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3):
        if rnd_type not in ("uniform", "gaussian") or factor_type not in ("avg", "in", "out"):
            raise ValueError(
                f"Xavier: rnd_type must be 'uniform' or 'gaussian' and factor_type 'avg', 'in' or 'out', "
                f"got {rnd_type!r}, {factor_type!r}"
            )
        self.rnd_type, self.factor_type, self.magnitude = rnd_type, factor_type, float(magnitude)

    def __call__(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Xavier needs a weight with at least 2 dimensions, got shape {shape}")
        field = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * field, shape[0] * field
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[self.factor_type]
        scale = math.sqrt(self.magnitude / factor)
        if self.rnd_type == "uniform":
            return rng.uniform(-scale, scale, size=shape)
        return rng.normal(0.0, scale, size=shape)


_BY_NAME = {"zeros": Zero, "ones": One, "uniform": Uniform, "normal": Normal, "xavier": Xavier}


def create(init) -> Initializer:
    """An Initializer from an instance or a name ('zeros', 'xavier', ...)."""
    if isinstance(init, Initializer):
        return init
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]()
    raise ValueError(f"unknown initializer {init!r}: use an minicnn.init object or one of {sorted(_BY_NAME)}")
