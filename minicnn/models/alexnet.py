"""AlexNet (chapter 5.6): five convolutions with ReLU, three max-pools, two dropout-regularised dense layers.

Input (N, 1, 224, 224) -> conv0 (N, 96, 54, 54) -> pool0 (N, 96, 26, 26) -> conv1 (N, 256, 26, 26)
-> pool1 (N, 256, 12, 12) -> conv2..conv4 (N, 384|384|256, 12, 12) -> pool2 (N, 256, 5, 5)
-> dense0 4096 -> dropout -> dense1 4096 -> dropout -> dense2 classes.
"""

from __future__ import annotations

from .. import nn


def alexnet(classes: int = 10) -> nn.Sequential:
    with nn.fresh_names():
        net = nn.Sequential()
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
