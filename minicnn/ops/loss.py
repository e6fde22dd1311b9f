"""Softmax cross-entropy from logits with integer labels, one loss per sample.

z: (N, K) logits, labels: (N,) class indices.
    loss[n] = log sum_k exp(z[n,k]) - z[n, label[n]]      (the max is subtracted first, so no exp overflows)
    dz[n] = gy[n] * (softmax(z[n]) - onehot(label[n]))
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..errors import ShapeError


class SoftmaxCrossEntropy(Function):
    def forward(self, z, labels):
        xp = backend.of(z).xp
        if z.ndim != 2 or labels.shape != (z.shape[0],):
            raise ShapeError(
                f"softmax cross-entropy: expected logits (N, K) and labels (N,), got {tuple(z.shape)} "
                f"and {tuple(labels.shape)}"
            )
        idx = labels.astype(xp.int64)
        backend.of(z).check_labels(idx, z.shape[1], "softmax cross-entropy")
        shifted = z - z.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = xp.arange(z.shape[0])
        self.p, self.idx, self.rows = e / s, idx, rows
        return xp.log(s[:, 0]) - shifted[rows, idx]

    def backward(self, gy):
        g = self.p.copy()
        g[self.rows, self.idx] -= 1
        return g * gy[:, None], None


def softmax_cross_entropy(z, labels):
    return SoftmaxCrossEntropy()(z, labels)
