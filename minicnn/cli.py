"""Command line: `python -m minicnn train lenet [--device cpu|gpu|auto] [--epochs N] ...`.

User errors (unknown network, bad number, missing data, no GPU) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
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


def _add_network_options(p) -> None:
    p.add_argument("network", type=_network_name, help=f"one of: {', '.join(models.REGISTRY)}")
    p.add_argument("--width-divisor", type=_positive(int), help="VGG only: divide every block's channels")


def _add_data_options(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu, gpu, gpu:N or auto (default cpu)")
    p.add_argument("--batch-size", type=_positive(int), help="default: the chapter's (LeNet 256, others 128)")
    p.add_argument("--data-dir", help="directory with the four Fashion-MNIST .gz files")
    p.add_argument("--limit", type=_positive(int), help="use only the first N training (and test) images")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m minicnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a network on Fashion-MNIST with the chapter's settings")
    _add_network_options(t)
    _add_data_options(t)
    t.add_argument("--epochs", type=_positive(int), help="default: the chapter's (5)")
    t.add_argument("--lr", type=_positive(float), help="learning rate; default: the chapter's")
    t.add_argument("--resize", type=_positive(int), help="image side after resizing; default: the chapter's")
    t.add_argument("--seed", type=int, help="seed for initialisation, shuffling and dropout (default: random)")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--save", metavar="PATH", help="write the trained parameters to PATH (.npz)")
    t.add_argument("--log", metavar="PATH", help="write one JSON line per epoch to PATH")
    t.add_argument("--plot", metavar="PATH", help="draw the training curves into PATH (.png; needs matplotlib)")
    bar = t.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show the bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show the bar")

    e = sub.add_parser("eval", help="test accuracy of a saved checkpoint")
    _add_network_options(e)
    _add_data_options(e)
    e.add_argument("--load", metavar="PATH", required=True, help="checkpoint written by train --save")

    s = sub.add_parser("summary", help="output shape, parameters and FLOPs of every layer")
    _add_network_options(s)
    s.add_argument("--input-size", type=_positive(int), help="image side (default: the chapter's resize, or 28)")
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
        "epochs": getattr(args, "epochs", None) or spec.epochs,
        "batch_size": getattr(args, "batch_size", None) or spec.batch_size,
        "lr": getattr(args, "lr", None) or spec.lr,
        "resize": getattr(args, "resize", None) or spec.resize,
        "options": options,
        "dtype": getattr(args, "dtype", "float32"),
    }


def build_network(settings: dict, ctx=None):
    """The network of `settings`, initialised (Xavier) on ctx, its shapes fixed by one forward pass."""
    from . import autograd, device, init
    from .autograd import NDArray

    spec = models.get(settings["network"])
    try:
        net = spec.build(classes=10, **settings["options"])
    except ValueError as exc:  # impossible builder options, e.g. a width divisor that does not divide
        raise UserError(str(exc)) from None
    ctx = ctx or device.cpu()
    for p in net.collect_params().values():
        p.dtype = np.dtype(settings["dtype"])
    net.initialize(force_reinit=True, ctx=ctx, init=init.Xavier())
    side = settings["resize"] or 28
    with autograd.pause():
        net(NDArray(ctx.backend.xp.zeros((1, 1, side, side), dtype=settings["dtype"])))
    return net


def _checkpoint_meta(settings: dict, **extra) -> dict:
    return {"network": settings["network"], "settings": settings, **extra}


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


def _load_data(args):
    from .data import load_fashion_mnist

    # MINICNN_OFFLINE=1: never try the download mirrors (tests, air-gapped machines)
    return load_fashion_mnist(args.data_dir, download=os.environ.get("MINICNN_OFFLINE") != "1")


def _device(args):
    from . import device

    ctx = device.parse(args.device)
    ctx.backend  # noqa: B018 - fail now, with one line, if the device cannot be used
    return ctx


def cmd_train(args) -> int:
    from . import checkpoint, random
    from .optim import Trainer
    from .train import train_ch5

    settings = _settings(args)
    ctx = _device(args)
    if args.plot:
        from .plot import require_matplotlib

        require_matplotlib()  # fail before training, not after it
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    random.seed(seed)
    train_iter, test_iter = make_loaders(_load_data(args), settings, ctx, seed, args.limit)
    net = build_network(settings, ctx)
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": settings["lr"]})
    print(
        f"{settings['network']}: {settings['epochs']} epochs, batch {settings['batch_size']}, lr {settings['lr']}, "
        f"resize {settings['resize'] or 28}, {train_iter.num_samples} train / {test_iter.num_samples} test images, "
        f"seed {seed}",
        flush=True,
    )
    log_file = open(args.log, "w") if args.log else None  # noqa: SIM115 - closed below
    results = []

    def on_epoch(r) -> None:
        results.append(r)
        if log_file:
            record = {
                "epoch": r.epoch, "loss": r.loss, "train_acc": r.train_acc, "test_acc": r.test_acc,
                "seconds": r.seconds, "images_per_sec": r.images_per_sec,
            }  # fmt: skip
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if args.plot:
            from .plot import training_curves

            training_curves(results, args.plot, title=f"{settings['network']} on Fashion-MNIST")

    try:
        train_ch5(
            net, train_iter, test_iter, settings["batch_size"], trainer, ctx, settings["epochs"],
            progress=args.progress, log=lambda line: print(line, flush=True), on_epoch=on_epoch,
        )  # fmt: skip
    finally:
        if log_file:
            log_file.close()
    if args.save:
        meta = _checkpoint_meta(settings, seed=seed, epochs_done=len(results), test_acc=results[-1].test_acc)
        print(f"saved {checkpoint.save(args.save, net, meta)}")
    return 0


def cmd_eval(args) -> int:
    from . import checkpoint
    from .train import evaluate_accuracy

    meta, params, _ = checkpoint.load(args.load)
    if meta.get("network") != args.network:
        raise UserError(f"{args.load} is a checkpoint of {meta.get('network')!r}, not {args.network!r}")
    settings = dict(meta["settings"])
    if args.batch_size:
        settings["batch_size"] = args.batch_size
    ctx = _device(args)
    net = build_network(settings, ctx)
    checkpoint.apply(args.load, net, params)
    _, test_iter = make_loaders(_load_data(args), settings, ctx, seed=0, limit=args.limit)
    acc = evaluate_accuracy(test_iter, net, ctx)
    print(f"{args.network} ({args.load}): test acc {acc:.4f} on {test_iter.num_samples} images")
    return 0


def cmd_summary(args) -> int:
    from .summary import format_rows, summarize

    settings = _settings(args)
    side = args.input_size or settings["resize"] or 28
    spec = models.get(settings["network"])
    try:
        net = spec.build(classes=10, **settings["options"])
        rows = summarize(net, (1, 1, side, side))
    except ValueError as exc:  # e.g. an input too small for the network's kernels
        raise UserError(f"{settings['network']} at {side}x{side}: {exc}") from None
    print(f"{settings['network']}, input (1, 1, {side}, {side})")
    print(format_rows(rows))
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "summary": cmd_summary}


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
