"""The chapter's five networks in MXNet Gluon, written as chapter 5.5-5.9 gives them.

Each builder takes the number of classes (the chapter hard-codes 10) and builds its layers inside the
network's own name scope, so layer names count from 0 per network (`sequential3_conv0`, ...) however many
networks the process has built before. Differences from the chapter's listings, all deliberate:
- LeNet's second convolution has 16 channels, as the chapter's text says (its listing's 6 is a typo).
- VGG-11 takes `width_divisor`, which divides every block's channels as the book's small VGG does (ratio 4);
  1 gives the chapter's network.
Parameters are created with deferred shapes; run `net.initialize()` and one forward pass (or
`bridge.materialize`) before reading them.
"""

from __future__ import annotations

from mxnet import nd
from mxnet.gluon import nn

VGG11_CONV_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def lenet(classes: int = 10) -> nn.Sequential:
    """Input (N, 1, 28, 28)."""
    net = nn.Sequential()
    with net.name_scope():
        net.add(
            nn.Conv2D(channels=6, kernel_size=5, activation="sigmoid"),
            nn.MaxPool2D(pool_size=2, strides=2),
            nn.Conv2D(channels=16, kernel_size=5, activation="sigmoid"),
            nn.MaxPool2D(pool_size=2, strides=2),
            nn.Dense(120, activation="sigmoid"),
            nn.Dense(84, activation="sigmoid"),
            nn.Dense(classes),
        )
    return net


def alexnet(classes: int = 10) -> nn.Sequential:
    """Input (N, 1, 224, 224)."""
    net = nn.Sequential()
    with net.name_scope():
        net.add(
            nn.Conv2D(96, kernel_size=11, strides=4, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(256, kernel_size=5, padding=2, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
            nn.Conv2D(384, kernel_size=3, padding=1, activation="relu"),
            nn.Conv2D(256, kernel_size=3, padding=1, activation="relu"),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dense(4096, activation="relu"),
            nn.Dropout(0.5),
            nn.Dense(4096, activation="relu"),
            nn.Dropout(0.5),
            nn.Dense(classes),
        )
    return net


def vgg_block(num_convs: int, num_channels: int) -> nn.Sequential:
    blk = nn.Sequential()
    with blk.name_scope():
        for _ in range(num_convs):
            blk.add(nn.Conv2D(num_channels, kernel_size=3, padding=1, activation="relu"))
        blk.add(nn.MaxPool2D(pool_size=2, strides=2))
    return blk


def vgg(conv_arch=VGG11_CONV_ARCH, classes: int = 10, width_divisor: int = 1) -> nn.Sequential:
    """Input (N, 1, 224, 224). `conv_arch`: (number of convolutions, channels) per block."""
    net = nn.Sequential()
    with net.name_scope():
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
    return vgg(VGG11_CONV_ARCH, classes, width_divisor)


def nin_block(num_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    blk = nn.Sequential()
    with blk.name_scope():
        blk.add(
            nn.Conv2D(num_channels, kernel_size, strides, padding, activation="relu"),
            nn.Conv2D(num_channels, kernel_size=1, activation="relu"),
            nn.Conv2D(num_channels, kernel_size=1, activation="relu"),
        )
    return blk


def nin(classes: int = 10) -> nn.Sequential:
    """Input (N, 1, 224, 224)."""
    net = nn.Sequential()
    with net.name_scope():
        net.add(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2D(pool_size=3, strides=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2D(pool_size=3, strides=2),
            nn.Dropout(0.5),
            nin_block(classes, kernel_size=3, strides=1, padding=1),
            nn.GlobalAvgPool2D(),
            nn.Flatten(),
        )
    return net


class Inception(nn.Block):
    """Four parallel paths joined along channels: 1x1 | 1x1, 3x3 | 1x1, 5x5 | 3x3 max-pool, 1x1."""

    def __init__(self, c1, c2, c3, c4, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.p1_1 = nn.Conv2D(c1, kernel_size=1, activation="relu")
            self.p2_1 = nn.Conv2D(c2[0], kernel_size=1, activation="relu")
            self.p2_2 = nn.Conv2D(c2[1], kernel_size=3, padding=1, activation="relu")
            self.p3_1 = nn.Conv2D(c3[0], kernel_size=1, activation="relu")
            self.p3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation="relu")
            self.p4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
            self.p4_2 = nn.Conv2D(c4, kernel_size=1, activation="relu")

    def forward(self, x):
        p1 = self.p1_1(x)
        p2 = self.p2_2(self.p2_1(x))
        p3 = self.p3_2(self.p3_1(x))
        p4 = self.p4_2(self.p4_1(x))
        return nd.concat(p1, p2, p3, p4, dim=1)


def googlenet(classes: int = 10) -> nn.Sequential:
    """Input (N, 1, 96, 96)."""
    net = nn.Sequential()
    with net.name_scope():
        b1 = nn.Sequential()
        with b1.name_scope():
            b1.add(
                nn.Conv2D(64, kernel_size=7, strides=2, padding=3, activation="relu"),
                nn.MaxPool2D(pool_size=3, strides=2, padding=1),
            )
        b2 = nn.Sequential()
        with b2.name_scope():
            b2.add(
                nn.Conv2D(64, kernel_size=1, activation="relu"),
                nn.Conv2D(192, kernel_size=3, padding=1, activation="relu"),
                nn.MaxPool2D(pool_size=3, strides=2, padding=1),
            )
        b3 = nn.Sequential()
        with b3.name_scope():
            b3.add(
                Inception(64, (96, 128), (16, 32), 32),
                Inception(128, (128, 192), (32, 96), 64),
                nn.MaxPool2D(pool_size=3, strides=2, padding=1),
            )
        b4 = nn.Sequential()
        with b4.name_scope():
            b4.add(
                Inception(192, (96, 208), (16, 48), 64),
                Inception(160, (112, 224), (24, 64), 64),
                Inception(128, (128, 256), (24, 64), 64),
                Inception(112, (144, 288), (32, 64), 64),
                Inception(256, (160, 320), (32, 128), 128),
                nn.MaxPool2D(pool_size=3, strides=2, padding=1),
            )
        b5 = nn.Sequential()
        with b5.name_scope():
            b5.add(
                Inception(256, (160, 320), (32, 128), 128),
                Inception(384, (192, 384), (48, 128), 128),
                nn.GlobalAvgPool2D(),
            )
        net.add(b1, b2, b3, b4, b5, nn.Dense(classes))
    return net


BUILDERS = {"lenet": lenet, "alexnet": alexnet, "vgg11": vgg11, "nin": nin, "googlenet": googlenet}
# The chapter's input side length per network (Fashion-MNIST's 28, or the size the chapter resizes to).
INPUT_SIZES = {"lenet": 28, "alexnet": 224, "vgg11": 224, "nin": 224, "googlenet": 96}


def build(name: str, classes: int = 10, **options) -> nn.Sequential:
    """The Gluon network called `name` (a key of BUILDERS)."""
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}: choose one of {', '.join(BUILDERS)}") from None
    return builder(classes=classes, **options)
