"""Gluon's names for minicnn's parts, so that the chapter's imports work with minicnn in place of mxnet:

    from minicnn import autograd, gluon, init, nd
    from minicnn.gluon import loss as gloss, nn
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})

Each name here is minicnn's own class; mxnet is never imported.
"""

from __future__ import annotations

from . import data, loss, nn
from .optim import Trainer

__all__ = ["Trainer", "data", "loss", "nn"]
