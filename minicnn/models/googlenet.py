"""GoogLeNet (chapter 5.9): five stages; stages 3-5 are Inception blocks with four parallel paths.

At 96x96 the stages output (1, 64, 24, 24), (1, 192, 12, 12), (1, 480, 6, 6), (1, 832, 3, 3), (1, 1024, 1, 1),
then dense0 gives (1, 10), as the chapter prints.
"""

from __future__ import annotations

from .. import nn, ops
from ..fast import dispatch
from ..nn.block import notify
from ..ops import concat


class Inception(nn.Block):
    """Four paths over the same input, joined along channels.

    c1: 1x1 conv | c2: 1x1 conv -> 3x3 conv | c3: 1x1 conv -> 5x5 conv | c4: 3x3 max-pool -> 1x1 conv.
    Output channels c1 + c2[1] + c3[1] + c4; height and width are kept (padding 1, 2, 1).

    `forward` is the chapter's code. Outside textbook mode (`fast.dispatch.inception_heads`) the three 1x1
    convolutions that read x run as one, their weights stacked (`forward_fused_heads`): x is laid out for the GEMM
    once instead of three times, and backward adds one gradient onto x instead of three. The tests hold the two
    forwards and their gradients to each other (docs/fast-paths.md).
    """

    def __init__(self, c1: int, c2: tuple, c3: tuple, c4: int, **kwargs):
        super().__init__(**kwargs)
        self.p1_1 = nn.Conv2D(c1, kernel_size=1, activation="relu")
        self.p2_1 = nn.Conv2D(c2[0], kernel_size=1, activation="relu")
        self.p2_2 = nn.Conv2D(c2[1], kernel_size=3, padding=1, activation="relu")
        self.p3_1 = nn.Conv2D(c3[0], kernel_size=1, activation="relu")
        self.p3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation="relu")
        self.p4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
        self.p4_2 = nn.Conv2D(c4, kernel_size=1, activation="relu")

    def forward(self, x):
        if dispatch.inception_heads() and self._heads_fuse():
            return self.forward_fused_heads(x)
        p1 = self.p1_1(x)
        p2 = self.p2_2(self.p2_1(x))
        p3 = self.p3_2(self.p3_1(x))
        p4 = self.p4_2(self.p4_1(x))
        return concat(p1, p2, p3, p4, dim=1)

    def forward_fused_heads(self, x):
        """What `forward` computes, with p1_1, p2_1 and p3_1 run as one convolution (`pointwise_heads`)."""
        p1, p2, p3 = self.pointwise_heads(x)
        p2 = self.p2_2(p2)
        p3 = self.p3_2(p3)
        p4 = self.p4_2(self.p4_1(x))
        return concat(p1, p2, p3, p4, dim=1)

    def _heads_fuse(self) -> bool:
        """Whether p1_1, p2_1 and p3_1 are what pointwise_heads assumes: plain 1x1 convolutions with biases and one
        activation (always so as built here; a user who replaced one gets the chapter's forward), and every
        parameter has its values: the first call, which draws the deferred ones, runs the chapter's forward, so that
        a seed gives the same weights in both modes (they are drawn in the order the layers first run)."""
        heads = (self.p1_1, self.p2_1, self.p3_1)
        return all(
            type(h) is nn.Conv2D
            and (h.kernel, h.stride, h.pad) == ((1, 1), (1, 1), (0, 0))
            and h.bias is not None
            and h.activation == self.p1_1.activation
            for h in heads
        ) and all(p.initialized for p in self.collect_params().values())

    def pointwise_heads(self, x):
        """(p1_1(x), p2_1(x), p3_1(x)) from one convolution: weights (c1 + c2[0] + c3[0], C, 1, 1) and biases
        stacked, the output cut back into three along channels. Observers (summary, profile) see the three
        layers as if each had been called."""
        heads = (self.p1_1, self.p2_1, self.p3_1)
        args = [h.checked_args(x) for h in heads]
        x = args[0][0]
        w = concat(*(w for _, w, _ in args), dim=0)
        b = concat(*(b for _, _, b in args), dim=0)
        y = ops.Conv2D(name=f"{self.name}.pointwise_heads", act=self.p1_1.activation)(x, w, b)
        out, start = [], 0
        for head in heads:
            out.append(y[:, start : start + head.channels])
            start += head.channels
            notify(head, (x,), out[-1])
        return tuple(out)


def googlenet(classes: int = 10) -> nn.Sequential:
    with nn.fresh_names():
        b1 = nn.Sequential()
        b1.add(
            nn.Conv2D(64, kernel_size=7, strides=2, padding=3, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1),
        )
        b2 = nn.Sequential()
        b2.add(
            nn.Conv2D(64, kernel_size=1, activation="relu"),
            nn.Conv2D(192, kernel_size=3, padding=1, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1),
        )
        b3 = nn.Sequential()
        b3.add(
            Inception(64, (96, 128), (16, 32), 32),
            Inception(128, (128, 192), (32, 96), 64),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1),
        )
        b4 = nn.Sequential()
        b4.add(
            Inception(192, (96, 208), (16, 48), 64),
            Inception(160, (112, 224), (24, 64), 64),
            Inception(128, (128, 256), (24, 64), 64),
            Inception(112, (144, 288), (32, 64), 64),
            Inception(256, (160, 320), (32, 128), 128),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1),
        )
        b5 = nn.Sequential()
        b5.add(
            Inception(256, (160, 320), (32, 128), 128),
            Inception(384, (192, 384), (48, 128), 128),
            nn.GlobalAvgPool2D(),
        )
        net = nn.Sequential()
        net.add(b1, b2, b3, b4, b5, nn.Dense(classes))
    return net
