"""Gluon-like layers: `nn.Sequential().add(nn.Conv2D(6, 5, activation='sigmoid'), ...)`."""

from .basic import Activation, Dense, Dropout, Flatten
from .block import Block, HybridBlock, HybridSequential, Sequential, fresh_names, observe
from .conv import Conv2D
from .parameter import Parameter, ParameterDict
from .pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D

__all__ = [
    "Activation",
    "AvgPool2D",
    "Block",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "HybridBlock",
    "HybridSequential",
    "MaxPool2D",
    "Parameter",
    "ParameterDict",
    "Sequential",
    "fresh_names",
    "observe",
]
