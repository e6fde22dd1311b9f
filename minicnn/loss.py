"""Losses, Gluon style: `loss = SoftmaxCrossEntropyLoss(); l = loss(y_hat, y)` gives one value per sample."""

from __future__ import annotations

from . import ops
from .autograd import NDArray


class SoftmaxCrossEntropyLoss:
    """logits (N, K), integer labels (N,) -> loss (N,) = -log softmax(logits)[label]."""

    def __call__(self, pred: NDArray, label: NDArray) -> NDArray:
        if not isinstance(pred, NDArray) or not isinstance(label, NDArray):
            raise TypeError("SoftmaxCrossEntropyLoss expects NDArrays (predictions, labels)")
        return ops.softmax_cross_entropy(pred, label)
