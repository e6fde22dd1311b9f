"""LeNet (chapter 5.5): two conv + max-pool units with sigmoid, then three dense layers.

The chapter's text gives the second convolution 16 output channels (its code listing's 6 is a typo).
Input (N, 1, 28, 28): conv0 (N, 6, 24, 24) -> pool0 (N, 6, 12, 12) -> conv1 (N, 16, 8, 8) -> pool1 (N, 16, 4, 4)
-> dense0 (N, 120) -> dense1 (N, 84) -> dense2 (N, classes).
"""

from __future__ import annotations

from .. import nn


def lenet(classes: int = 10) -> nn.Sequential:
    with nn.fresh_names():
        net = nn.Sequential()
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
