"""Differentiable operations: each is a Function with its forward and backward side by side."""

import math

from .activation import ReLU, Sigmoid, relu, sigmoid
from .concat import Concat, concat
from .conv import Conv2D, conv2d
from .dense import Dense, dense
from .dropout import Dropout, dropout
from .loss import SoftmaxCrossEntropy, softmax_cross_entropy
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D, avg_pool2d, global_avg_pool2d, max_pool2d


def flatten(x):
    """(N, ...) -> (N, prod(...))."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # not -1: an empty batch has no -1


__all__ = [
    "AvgPool2D",
    "Concat",
    "Conv2D",
    "Dense",
    "Dropout",
    "GlobalAvgPool2D",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "avg_pool2d",
    "concat",
    "conv2d",
    "dense",
    "dropout",
    "flatten",
    "global_avg_pool2d",
    "max_pool2d",
    "relu",
    "sigmoid",
    "softmax_cross_entropy",
]
