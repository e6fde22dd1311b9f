"""A fast path of GoogLeNet's Inception block: its three 1x1 convolutions that read the block's input (p1_1, p2_1,
p3_1) run as one convolution, with their weights and biases stacked, and the output is cut back into three along
channels. x is laid out for the GEMM once instead of three times, and backward adds one gradient onto x instead of
three (docs/fast-paths.md). `Inception.forward` (googlenet.py) is the chapter's code and asks `applies` first.

It lives beside the model rather than in minicnn/fast/ because it is made of layers and ops, which sit above
fast/ (docs/architecture.md); its switch is `fast.dispatch.inception_heads` (MINICNN_HEADS=0 turns it off).
"""

from __future__ import annotations

from .. import nn, ops
from ..fast import dispatch
from ..nn.block import notify
from ..ops import concat


def applies(block) -> bool:
    """Whether `block` (an Inception) takes this path: outside textbook mode, when p1_1, p2_1 and p3_1 are plain 1x1
    convolutions with biases and one activation (always so as built; a user who replaced one gets the chapter's
    forward)."""
    heads = (block.p1_1, block.p2_1, block.p3_1)
    return dispatch.inception_heads() and all(
        type(h) is nn.Conv2D
        and (h.kernel, h.stride, h.pad) == ((1, 1), (1, 1), (0, 0))
        and h.bias is not None
        and h.activation == block.p1_1.activation
        for h in heads
    )


def forward(block, x):
    """What `Inception.forward` computes, with p1_1, p2_1 and p3_1 run as one convolution (`pointwise_heads`)."""
    p1, p2, p3 = pointwise_heads(block, x)
    p2 = block.p2_2(p2)
    p3 = block.p3_2(p3)
    p4 = block.p4_2(block.p4_1(x))
    return concat(p1, p2, p3, p4, dim=1)


def pointwise_heads(block, x):
    """(p1_1(x), p2_1(x), p3_1(x)) from one convolution: weights (c1 + c2[0] + c3[0], C, 1, 1) and biases stacked.
    Observers (summary, profile) see the three layers as if each had been called, and the algorithm that ran."""
    heads = (block.p1_1, block.p2_1, block.p3_1)
    args = [h.checked_args(x) for h in heads]
    x = args[0][0]
    w = concat(*(w for _, w, _ in args), dim=0)
    b = concat(*(b for _, _, b in args), dim=0)
    conv = ops.Conv2D(name=f"{block.name}.pointwise_heads", act=block.p1_1.activation)
    y = conv(x, w, b)
    out, start = [], 0
    for head in heads:
        out.append(y[:, start : start + head.channels])
        start += head.channels
        notify(head, (x,), out[-1], algorithm=f"{conv.algorithm} (fused heads)")
    return tuple(out)
