"""GoogLeNet (chapter 5.9): five stages; stages 3-5 are Inception blocks with four parallel paths.

At 96x96 the stages output (1, 64, 24, 24), (1, 192, 12, 12), (1, 480, 6, 6), (1, 832, 3, 3), (1, 1024, 1, 1),
then dense0 gives (1, 10), as the chapter prints.
"""

from __future__ import annotations

from .. import nn
from ..ops import concat
from . import fused_heads


class Inception(nn.Block):
    """Four paths over the same input, joined along channels.

    c1: 1x1 conv | c2: 1x1 conv -> 3x3 conv | c3: 1x1 conv -> 5x5 conv | c4: 3x3 max-pool -> 1x1 conv.
    Output channels c1 + c2[1] + c3[1] + c4; height and width are kept (padding 1, 2, 1).
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
        if fused_heads.applies(self):  # a fast path: p1_1, p2_1 and p3_1 as one convolution (fused_heads.py)
            return fused_heads.forward(self, x)
        p1 = self.p1_1(x)
        p2 = self.p2_2(self.p2_1(x))
        p3 = self.p3_2(self.p3_1(x))
        p4 = self.p4_2(self.p4_1(x))
        return concat(p1, p2, p3, p4, dim=1)


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
