"""Losses, Gluon style: `loss = SoftmaxCrossEntropyLoss(); l = loss(y_hat, y)` gives one value per sample."""

from __future__ import annotations

import math

from . import backend, ops
from .autograd import NDArray
from .errors import ShapeError


class SoftmaxCrossEntropyLoss:
    """pred (N, K) logits, labels (N,) class indices -> loss (N,) = -log softmax(pred)[label]; the chapter's loss.

    Gluon's options, with Gluon's meaning:
    - pred (N, ..., K): every position of the middle axes is scored, and a sample's loss is their mean; labels
      (N, ...) (or with a trailing axis of 1).
    - sparse_label=False: labels (N, ..., K) are a distribution over the classes; loss = -sum(label * log softmax).
    - from_logits=True: pred already holds log-probabilities; loss = -pred[label] (or -sum(label * pred)).
    - weight (a number) and sample_weight (broadcast against the per-position losses, shape (N, ..., 1)) scale the
      loss before the mean.
    The classes are on the last axis (axis=-1), the samples on the first (batch_axis=0).
    """

    def __init__(self, axis=-1, sparse_label: bool = True, from_logits: bool = False, weight=None, batch_axis=0):
        if batch_axis != 0:
            raise ValueError(f"SoftmaxCrossEntropyLoss: batch_axis={batch_axis} is not supported; samples are axis 0")
        self.axis, self.sparse_label, self.from_logits = axis, bool(sparse_label), bool(from_logits)
        self.weight = weight

    def __call__(self, pred: NDArray, label: NDArray, sample_weight: NDArray | None = None) -> NDArray:
        if not isinstance(pred, NDArray) or not isinstance(label, NDArray):
            raise TypeError("SoftmaxCrossEntropyLoss expects NDArrays (predictions, labels)")
        if pred.ndim < 2:
            raise ShapeError(f"SoftmaxCrossEntropyLoss: expected predictions (N, ..., K), got shape {pred.shape}")
        if self.axis not in (-1, pred.ndim - 1):
            raise ValueError(
                f"SoftmaxCrossEntropyLoss: axis={self.axis} is not supported for predictions {pred.shape}; the "
                "classes must be the last axis (axis=-1)"
            )
        lead, k = pred.shape[:-1], pred.shape[-1]
        rows = math.prod(lead)
        z = pred if pred.ndim == 2 else pred.reshape(rows, k)
        q = self._labels(pred, label, rows, k)
        if not self.from_logits:
            loss = ops.softmax_cross_entropy(z, q)
        elif self.sparse_label:  # pred are log-probabilities already: -pred[label]
            idx = q.data.astype(q.xp.int64)
            backend.of(idx).check_labels(idx, k, "SoftmaxCrossEntropyLoss")
            loss = -z[q.xp.arange(rows), idx]
        else:  # and with a distribution: -sum of label * pred
            loss = -(z * q).sum(axis=1)
        if self.weight is None and sample_weight is None and pred.ndim == 2:
            return loss  # the chapter's case: (N,) as it is
        loss = loss.reshape(*lead, 1)
        if self.weight is not None:
            loss = loss * float(self.weight)
        if sample_weight is not None:
            loss = loss * sample_weight
        return loss.mean(axis=tuple(range(1, loss.ndim)))

    def _labels(self, pred: NDArray, label: NDArray, rows: int, k: int) -> NDArray:
        """The labels as the (rows,) indices or (rows, K) distributions the op takes, or a ShapeError."""
        lead = pred.shape[:-1]
        if self.sparse_label:
            if label.shape not in (lead, (*lead, 1)):
                raise ShapeError(
                    f"SoftmaxCrossEntropyLoss: predictions {pred.shape} take class-index labels of shape {lead}, "
                    f"got {label.shape}"
                )
            return label if label.shape == (rows,) else label.reshape(rows)
        if label.shape != pred.shape:
            raise ShapeError(
                f"SoftmaxCrossEntropyLoss: sparse_label=False takes labels of the predictions' shape {pred.shape}, "
                f"got {label.shape}"
            )
        return label if label.ndim == 2 else label.reshape(rows, k)
