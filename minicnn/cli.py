"""Command line: `python -m minicnn train lenet [--device cpu|gpu|auto] [--epochs N] ...`.

User errors (unknown network, bad number, missing data, no GPU) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from . import models
from .errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str):
        self.exit(2, f"minicnn: error: {message} (see --help)\n")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not 0 < value < float("inf"):  # also rejects nan
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _network_name(text: str) -> str:
    try:
        return models.get(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m minicnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a network on Fashion-MNIST with the chapter's settings")
    t.add_argument("network", type=_network_name, help=f"one of: {', '.join(models.REGISTRY)}")
    t.add_argument("--device", default="cpu", help="cpu, gpu, gpu:N or auto (default cpu)")
    t.add_argument("--epochs", type=_positive(int), help="default: the chapter's (5)")
    t.add_argument("--batch-size", type=_positive(int), help="default: the chapter's (LeNet 256, others 128)")
    t.add_argument("--lr", type=_positive(float), help="learning rate; default: the chapter's")
    t.add_argument("--resize", type=_positive(int), help="image side after resizing; default: the chapter's")
    t.add_argument("--width-divisor", type=_positive(int), help="VGG only: divide every block's channels")
    t.add_argument("--seed", type=int, help="seed for initialisation, shuffling and dropout (default: random)")
    t.add_argument("--data-dir", help="directory with the four Fashion-MNIST .gz files")
    t.add_argument("--limit", type=_positive(int), help="use only the first N training (and test) images")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    bar = t.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show the bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show the bar")
    return parser


def _settings(args) -> dict:
    spec = models.get(args.network)
    options = dict(spec.options)
    if args.width_divisor is not None:
        if "width_divisor" not in options:
            raise UserError(f"--width-divisor applies to VGG only, not {spec.name}")
        options["width_divisor"] = args.width_divisor
    return {
        "network": spec.name,
        "epochs": args.epochs or spec.epochs,
        "batch_size": args.batch_size or spec.batch_size,
        "lr": args.lr or spec.lr,
        "resize": args.resize or spec.resize,
        "options": options,
        "dtype": args.dtype,
    }


def make_loaders(data, settings: dict, ctx, seed, limit=None):
    """Train and test loaders over data already on the device; resizing happens per batch."""
    from .data import Compose, DataLoader, Resize, ToTensor

    train_x, train_y, test_x, test_y = data
    be = ctx.backend
    steps = ([Resize(settings["resize"])] if settings["resize"] else []) + [ToTensor(settings["dtype"])]
    transform = Compose(steps)
    bs = settings["batch_size"]
    train_iter = DataLoader(
        be.asarray(train_x), be.asarray(train_y), bs, shuffle=True, seed=seed, transform=transform, limit=limit
    )
    test_iter = DataLoader(be.asarray(test_x), be.asarray(test_y), bs, transform=transform, limit=limit)
    return train_iter, test_iter


def cmd_train(args) -> int:
    from . import device, init, random
    from .data import load_fashion_mnist
    from .optim import Trainer
    from .train import train_ch5

    settings = _settings(args)
    ctx = device.parse(args.device)
    ctx.backend  # noqa: B018 - fail now, with one line, if the device cannot be used
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    random.seed(seed)
    # MINICNN_OFFLINE=1: never try the download mirrors (tests, air-gapped machines)
    data = load_fashion_mnist(args.data_dir, download=os.environ.get("MINICNN_OFFLINE") != "1")
    train_iter, test_iter = make_loaders(data, settings, ctx, seed, args.limit)

    spec = models.get(settings["network"])
    try:
        net = spec.build(classes=10, **settings["options"])
    except ValueError as exc:  # impossible builder options, e.g. a width divisor that does not divide
        raise UserError(str(exc)) from None
    for p in net.collect_params().values():
        p.dtype = np.dtype(settings["dtype"])
    net.initialize(force_reinit=True, ctx=ctx, init=init.Xavier())
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": settings["lr"]})
    print(
        f"{spec.name}: {settings['epochs']} epochs, batch {settings['batch_size']}, lr {settings['lr']}, "
        f"resize {settings['resize'] or 28}, {train_iter.num_samples} train / {test_iter.num_samples} test images, "
        f"seed {seed}",
        flush=True,
    )
    train_ch5(
        net,
        train_iter,
        test_iter,
        settings["batch_size"],
        trainer,
        ctx,
        settings["epochs"],
        progress=args.progress,
        log=lambda line: print(line, flush=True),
    )
    return 0


COMMANDS = {"train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"minicnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minicnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
