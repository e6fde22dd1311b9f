"""The chapter's networks and their chapter defaults (the settings `train_ch5` is called with)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .alexnet import alexnet
from .googlenet import googlenet
from .lenet import lenet
from .nin import nin
from .vgg import vgg11


@dataclass(frozen=True)
class ModelSpec:
    """A network builder and the chapter's training settings for it."""

    name: str
    build: Callable
    lr: float
    batch_size: int
    epochs: int = 5
    resize: int | None = None  # side length the 28x28 images are resized to (None: keep 28)
    options: dict = field(default_factory=dict)  # extra builder arguments, e.g. VGG's width divisor


REGISTRY: dict[str, ModelSpec] = {
    "lenet": ModelSpec("lenet", lenet, lr=0.9, batch_size=256),
    "alexnet": ModelSpec("alexnet", alexnet, lr=0.01, batch_size=128, resize=224),
    "vgg11": ModelSpec("vgg11", vgg11, lr=0.05, batch_size=128, resize=224, options={"width_divisor": 1}),
    "nin": ModelSpec("nin", nin, lr=0.1, batch_size=128, resize=224),
    "googlenet": ModelSpec("googlenet", googlenet, lr=0.1, batch_size=128, resize=96),
}


def get(name: str) -> ModelSpec:
    """The spec of a network by name; a clear error listing the known names."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown network {name!r}: choose one of {', '.join(REGISTRY)}") from None


__all__ = ["REGISTRY", "ModelSpec", "alexnet", "get", "googlenet", "lenet", "nin", "vgg11"]
