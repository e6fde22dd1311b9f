"""The chapter's networks and their chapter defaults (the settings `train_ch5` is called with)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .lenet import lenet


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
}


def get(name: str) -> ModelSpec:
    """The spec of a network by name; a clear error listing the known names."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown network {name!r}: choose one of {', '.join(REGISTRY)}") from None


__all__ = ["REGISTRY", "ModelSpec", "get", "lenet"]
