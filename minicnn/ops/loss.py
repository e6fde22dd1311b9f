"""Softmax cross-entropy from logits, one loss per sample.

z: (N, K) logits; labels: (N,) class indices, or (N, K) a distribution over the classes for each sample (Gluon's
sparse_label=False). With q[n] the label's distribution (onehot(label[n]) for an index) and lse the log-sum-exp,
    loss[n] = sum_k q[n,k] * (lse(z[n]) - z[n,k])        (= lse(z[n]) - z[n, label[n]] for an index; the max is
                                                           subtracted before exp, so no exp overflows)
    dz[n] = gy[n] * (softmax(z[n]) * sum_k q[n,k] - q[n])
    dq[n] = gy[n] * (lse(z[n]) - z[n])                     (a distribution's own gradient: -log softmax)
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..errors import ShapeError


class SoftmaxCrossEntropy(Function):
    def forward(self, z, labels):
        xp = backend.of(z).xp
        self.sparse = labels.ndim == 1
        if z.ndim != 2 or labels.shape not in ((z.shape[0],), z.shape):
            raise ShapeError(
                f"softmax cross-entropy: expected logits (N, K) and labels (N,) or (N, K), got {tuple(z.shape)} "
                f"and {tuple(labels.shape)}"
            )
        shifted = z - z.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        self.p = e / s
        if self.sparse:
            idx = labels.astype(xp.int64)
            backend.of(z).check_labels(idx, z.shape[1], "softmax cross-entropy")
            rows = xp.arange(z.shape[0])
            self.idx, self.rows = idx, rows
            return xp.log(s[:, 0]) - shifted[rows, idx]
        self.q = labels.astype(z.dtype, copy=False)
        self.neg_log_p = xp.log(s) - shifted  # lse(z) - z, per class
        return (self.q * self.neg_log_p).sum(axis=1)

    def backward(self, gy):
        if self.sparse:
            g = self.p.copy()
            g[self.rows, self.idx] -= 1
            return g * gy[:, None], None
        gz = (self.p * self.q.sum(axis=1, keepdims=True) - self.q) * gy[:, None]
        return gz, self.neg_log_p * gy[:, None] if self.needs_input_grad(1) else None


def softmax_cross_entropy(z, labels):
    return SoftmaxCrossEntropy()(z, labels)
