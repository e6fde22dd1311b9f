"""NiN (chapter 5.8): NiN blocks (a convolution and two 1x1 convolutions), max-pools, and a global average pool
in place of dense layers."""

from __future__ import annotations

from .. import nn


def nin_block(num_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    blk = nn.Sequential()
    blk.add(
        nn.Conv2D(num_channels, kernel_size, strides, padding, activation="relu"),
        nn.Conv2D(num_channels, kernel_size=1, activation="relu"),
        nn.Conv2D(num_channels, kernel_size=1, activation="relu"),
    )
    return blk


def nin(classes: int = 10) -> nn.Sequential:
    with nn.fresh_names():
        net = nn.Sequential()
        net.add(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dropout(0.5),
            nin_block(classes, kernel_size=3, strides=1, padding=1),  # one output channel per class
            nn.GlobalAvgPool2D(),  # (N, classes, 1, 1)
            nn.Flatten(),  # (N, classes)
        )
    return net
