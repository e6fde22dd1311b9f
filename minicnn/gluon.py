"""Gluon's names for minicnn's parts, so that the chapter's imports work with minicnn in place of mxnet:

    from minicnn import autograd, gluon, init, nd
    from minicnn.gluon import loss as gloss, nn
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr})

Each name here is minicnn's own class; mxnet is never imported. `gluon.data` is Gluon's sample-by-sample data
API (gluon_data.py); minicnn's own batch loaders are `minicnn.data`.
"""

from __future__ import annotations

from . import gluon_data as data
from . import loss, nn
from .optim import Trainer

__all__ = ["Trainer", "data", "loss", "nn"]
