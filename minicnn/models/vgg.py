"""VGG-11 (chapter 5.7): five VGG blocks (3x3 convolutions with padding 1, then a 2x2/2 max-pool), three dense layers.

`conv_arch` lists (number of convolutions, channels) per block. `width_divisor` divides every block's channels,
as the book does for its smaller VGG (ratio 4); the dense layers keep 4096 units, as in the chapter.
"""

from __future__ import annotations

from .. import nn

CONV_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, num_channels: int) -> nn.Sequential:
    blk = nn.Sequential()
    for _ in range(num_convs):
        blk.add(nn.Conv2D(num_channels, kernel_size=3, padding=1, activation="relu"))
    blk.add(nn.MaxPool2D(pool_size=2, strides=2))
    return blk


def vgg(conv_arch=CONV_ARCH, classes: int = 10, width_divisor: int = 1) -> nn.Sequential:
    if width_divisor < 1 or any(c % width_divisor for _, c in conv_arch):
        raise ValueError(
            f"vgg: width_divisor must be a positive divisor of every block's channels {[c for _, c in conv_arch]}, "
            f"got {width_divisor}"
        )
    with nn.fresh_names():
        net = nn.Sequential()
        for num_convs, num_channels in conv_arch:
            net.add(vgg_block(num_convs, num_channels // width_divisor))
        net.add(
            nn.Dense(4096, activation="relu"),
            nn.Dropout(0.5),
            nn.Dense(4096, activation="relu"),
            nn.Dropout(0.5),
            nn.Dense(classes),
        )
    return net


def vgg11(classes: int = 10, width_divisor: int = 1) -> nn.Sequential:
    return vgg(CONV_ARCH, classes, width_divisor)
