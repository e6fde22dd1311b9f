"""Training curves as a PNG: loss, and train/test accuracy, against epochs (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


def require_matplotlib():
    """The pyplot module with a file-only backend, or a UserError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("drawing needs matplotlib: pip install 'minicnn[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(results, path, title: str = "") -> Path:
    """results: EpochResult-like objects (epoch, loss, train_acc, test_acc) -> PNG at path."""
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
