"""Training curves: loss, and train/test accuracy, against epochs (matplotlib, an optional extra), as a PNG file
(`train --plot`) or as a figure a notebook shows inline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import UserError


def require_matplotlib():
    """The pyplot module, or a UserError saying how to install it. Outside a Jupyter kernel its backend draws into
    files only (Agg), so that no window opens; inside one, figures show inline."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("drawing needs matplotlib: pip install 'minicnn[plot]' (or pip install matplotlib)") from None
    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(results, title: str = ""):
    """results: EpochResult-like objects (epoch, loss, train_acc, test_acc) -> a matplotlib figure of the curves."""
    plt = require_matplotlib()
    epochs = [r.epoch for r in results]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r.loss for r in results], "o-", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [r.train_acc for r in results], "o-", label="train acc")
    ax_acc.plot(epochs, [r.test_acc for r in results], "s-", label="test acc")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(results, path, title: str = "") -> Path:
    """The curves of `curves` written to the PNG file `path`."""
    plt = require_matplotlib()
    fig = curves(results, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
