"""Command line: `python -m minicnn train lenet [--device cpu|gpu|auto] [--epochs N] ...`.

User errors (unknown network, bad number, missing data, no GPU) print one line and exit with status 2.
A training loss that becomes NaN or infinite prints one line and exits 1; Ctrl-C during training saves a
checkpoint to continue from (`train ... --resume PATH`) and exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import numpy as np

from . import config, distributed, models
from .errors import UserError
from .fast import tuning


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str):
        speak = distributed.launcher_rank() == 0  # under mpiexec every process meets it: one says so
        self.exit(2, f"minicnn: error: {message} (see --help)\n" if speak else None)


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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative int, got {text!r}")
    return value


def _network_name(text: str) -> str:
    try:
        return models.get(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_network_options(p) -> None:
    p.add_argument("network", type=_network_name, help=f"one of: {', '.join(models.REGISTRY)}")
    p.add_argument("--width-divisor", type=_positive(int), help="VGG only: divide every block's channels")
    _add_textbook_option(p)


def _add_textbook_option(p) -> None:
    p.add_argument(
        "--textbook", action="store_true",
        help="run only the textbook algorithms (im2col + GEMM, the window loops), as MINICNN_TEXTBOOK=1 does",
    )  # fmt: skip


_DATA_DIR_HELP = (
    "directory with the four Fashion-MNIST .gz files, the only one used (missing ones are downloaded into it)"
)


def _add_data_options(p) -> None:
    p.add_argument("--device", default="cpu", help="cpu, gpu, gpu:N or auto (default cpu)")
    p.add_argument("--batch-size", type=_positive(int), help="default: the chapter's (LeNet 256, others 128)")
    p.add_argument("--data-dir", help=_DATA_DIR_HELP)
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
    t.add_argument(
        "--seed", type=_non_negative_int, help="seed for initialisation, shuffling and dropout (default: random)"
    )
    t.add_argument("--dtype", choices=["float32", "float64"], help="default: float32")
    t.add_argument(
        "--save", metavar="PATH",
        help="write the parameters and training state to PATH (.npz) after every epoch, atomically",
    )  # fmt: skip
    t.add_argument(
        "--resume", metavar="PATH",
        help="continue the run saved in PATH (by --save or Ctrl-C) exactly where it stopped; --epochs may extend it",
    )  # fmt: skip
    t.add_argument(
        "--log", metavar="PATH",
        help="write one JSON line per epoch to PATH (loss, accuracies, seconds, images/s, and the mean batch loss "
        "of the epoch's first and last tenth of batches)",
    )  # fmt: skip
    t.add_argument("--plot", metavar="PATH", help="draw the training curves into PATH (.png; needs matplotlib)")
    bar = t.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show the bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show the bar")

    e = sub.add_parser("eval", help="test accuracy of a saved checkpoint")
    _add_network_options(e)
    _add_data_options(e)
    e.add_argument("--load", metavar="PATH", required=True, help="checkpoint written by train --save")

    s = sub.add_parser("summary", help="output shape, parameters, FLOPs and algorithm of every layer")
    _add_network_options(s)
    s.add_argument("--input-size", type=_positive(int), help="image side (default: the chapter's resize, or 28)")
    s.add_argument("--device", default="cpu", help="the device whose algorithms to name: cpu, gpu, gpu:N or auto")
    s.add_argument("--layers", action="store_true", help="a row for every layer inside the blocks too")

    w = sub.add_parser("show", help="pictures of the first filters and of every conv/pool layer's feature maps")
    w.add_argument("network", type=_network_name, help=f"one of: {', '.join(models.REGISTRY)}")
    w.add_argument("--load", metavar="PATH", required=True, help="checkpoint written by train --save")
    w.add_argument("--index", type=int, default=0, help="which test image (default 0)")
    w.add_argument("--out", metavar="DIR", help="directory for the PNG files (default ./show-NETWORK)")
    w.add_argument("--data-dir", help=_DATA_DIR_HELP)
    w.add_argument("--device", default="cpu", help="cpu, gpu, gpu:N or auto (default cpu)")
    _add_textbook_option(w)

    f = sub.add_parser("profile", help="forward and backward time and FLOPs of every layer for one training step")
    _add_network_options(f)
    f.add_argument("--batch-size", type=_positive(int), help="default: the chapter's (LeNet 256, others 128)")
    f.add_argument("--device", default="cpu", help="cpu, gpu, gpu:N or auto (default cpu)")
    f.add_argument("--input-size", type=_positive(int), help="image side (default: the chapter's resize, or 28)")
    f.add_argument("--dtype", choices=["float32", "float64"], help="default: float32")
    f.add_argument("--steps", type=_positive(int), default=3, help="timed steps after the warm-up (median shown)")

    c = sub.add_parser("compile", help="compile the CPU kernels ahead of time (numba keeps them on disk)")
    c.add_argument(
        "--dtype", choices=["float32", "float64"], action="append", help="the dtypes to compile for (default: both)"
    )
    c.add_argument("--quiet", action="store_true", help="say nothing unless it compiled (took over 10 s)")
    _add_textbook_option(c)
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
        "dtype": getattr(args, "dtype", None) or "float32",
    }


def build_network(settings: dict, ctx=None):
    """The network of `settings`, initialised (Xavier) on ctx, its shapes fixed by one forward pass."""
    from . import autograd, device, init
    from .autograd import NDArray
    from .train_state import compiling_notice

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
    with autograd.pause(), compiling_notice():
        net(NDArray(ctx.backend.xp.zeros((1, 1, side, side), dtype=settings["dtype"])))
    return net


def make_loaders(data, settings: dict, ctx, seed, limit=None, shard=(0, 1)):
    """Train and test loaders over data already read, moved to the device once; resizing happens per batch.
    `shard` (rank, ranks): this process's rows of each batch in a data-parallel run."""
    from .data.iterators import loaders

    return loaders(data, settings["batch_size"], settings["resize"], ctx, seed, limit, settings["dtype"], shard)


def _load_data(args, data_dir=None, quiet: bool = False):
    """The four Fashion-MNIST arrays; `quiet`: without the warnings and the download bar on stderr."""
    from .data.fashion_mnist import downloads_allowed, load_fashion_mnist

    download = downloads_allowed()
    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        return load_fashion_mnist(data_dir or args.data_dir, download=download, progress=not quiet)


def _device(args):
    """The device of --device. In a data-parallel run, `gpu` and `auto` mean the GPU numbered local rank % GPUs
    on this machine, so that the processes on one machine share its GPUs out."""
    from . import backend, device
    from .errors import DeviceError

    name = args.device.strip().lower()
    if distributed.size() > 1 and name in ("gpu", "auto"):
        try:
            ctx = device.gpu(distributed.local_rank() % backend.gpu_backend().device_count())
        except DeviceError:
            if name == "gpu":
                raise
            ctx = device.cpu()  # auto: no usable GPU here
    else:
        ctx = device.parse(name)
        if ctx.device_type == "gpu" and distributed.local_size() > 1:
            raise UserError(
                f"--device {args.device} puts all {distributed.local_size()} processes of this machine on one GPU; "
                "use --device gpu to give each process a GPU of its own"
            )
    ctx.backend  # noqa: B018 - fail now, with one line, if the device cannot be used
    return ctx


class _StopOnCtrlC:
    """While training runs, the first Ctrl-C (SIGINT) only asks it to stop after the current step (train_ch5 then
    raises Interrupted, and the caller saves a checkpoint); a second Ctrl-C interrupts at once, as usual.

    Test hook: MINICNN_TEST_INTERRUPT_AFTER=K makes this process send itself a real SIGINT at the K-th stop check
    (train_ch5 checks after every step and at the end of every epoch), so a test can interrupt at a known point.
    """

    def __init__(self):
        self.requested = False
        self.checks = 0
        self.interrupt_after = int(os.environ.get("MINICNN_TEST_INTERRUPT_AFTER") or 0)
        self.previous = None

    def __enter__(self):
        # Python lets only the main thread set handlers, and a SIGINT that was ignored (nohup) stays ignored.
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if distributed.launcher_rank() == 0:  # mpiexec passes Ctrl-C to every process; one of them says so
            print(
                "minicnn: stopping after this step to save the training state (Ctrl-C again to quit without saving)",
                file=sys.stderr,
                flush=True,
            )

    def __call__(self) -> bool:
        self.checks += 1
        if self.checks == self.interrupt_after:
            signal.raise_signal(signal.SIGINT)  # runs _on_sigint before returning
        return self.requested


def _resume_point(args):
    """(meta, params, optimizer state) of the checkpoint to resume, checked against the command line."""
    from . import checkpoint

    meta, params, opt = checkpoint.load(args.resume)
    if meta["network"] != args.network:
        raise UserError(f"{args.resume} is a checkpoint of {meta['network']!r}, not {args.network!r}")
    if not isinstance(meta.get("train"), dict):
        raise UserError(f"{args.resume} holds parameters but no training state to resume (use it with eval or show)")
    saved = meta["settings"]
    given = {
        "--lr": (args.lr, saved.get("lr")), "--batch-size": (args.batch_size, saved.get("batch_size")),
        "--resize": (args.resize, saved.get("resize")), "--dtype": (args.dtype, saved.get("dtype")),
        "--width-divisor": (args.width_divisor, saved.get("options", {}).get("width_divisor")),
        "--seed": (args.seed, meta.get("seed")), "--limit": (args.limit, meta.get("limit")),
    }  # fmt: skip
    for flag, (value, theirs) in given.items():
        if value is not None and value != theirs:
            raise UserError(
                f"--resume continues {args.resume} with the settings it was started with: {flag} {value} differs "
                f"from its {theirs}; leave {flag} out"
            )
    return meta, params, opt


def _plan(args) -> tuple[dict, dict | None]:
    """What to train: (plan, the checkpoint's parameters to resume from or None). The plan holds the settings,
    seed, --limit, data directory, --save path and, when resuming, the checkpoint's meta and optimizer state."""
    from . import random

    if not args.resume:
        seed = args.seed if args.seed is not None else random.fresh_seed()  # rank 0's, in a data-parallel run
        plan = {"settings": _settings(args), "seed": seed, "limit": args.limit, "data_dir": args.data_dir}
        return {**plan, "save": args.save, "resumed": None, "opt": None}, None
    meta, params, opt = _resume_point(args)
    plan = {
        "settings": dict(meta["settings"], epochs=args.epochs or meta["settings"]["epochs"]),
        "seed": meta.get("seed"), "limit": meta.get("limit"), "data_dir": args.data_dir or meta.get("data_dir"),
        "save": args.save or meta.get("save"), "resumed": meta, "opt": opt,
    }  # fmt: skip
    return plan, params


class _RanksFailed(Exception):
    """Set-up failed on some ranks of a data-parallel run: [(rank, (one-line message, exit status))]; every rank
    stops with the worst status (2 for a user's mistake, 1 for anything else)."""

    def __init__(self, failed: list):
        self.failed = failed
        self.code = max(code for _, (_, code) in failed)
        super().__init__("; ".join(f"rank {r}: {m}" for r, (m, _) in failed))

    def lines(self) -> list[str]:
        """One line per distinct message, naming its ranks unless every rank met it."""
        ranks_of: dict[str, list[int]] = {}
        for r, (message, _) in self.failed:
            ranks_of.setdefault(message, []).append(r)
        return [
            m if len(ranks) == distributed.size() else f"{m} (on rank {', '.join(map(str, ranks))})"
            for m, ranks in ranks_of.items()
        ]


def _on_every_rank(step):
    """step() here; in a data-parallel run every rank then learns whether it failed anywhere, and all of them stop
    together (`_RanksFailed`) instead of waiting for the failed ones. A UserError or OSError is the user's (one
    line, exit 2), and so is running out of memory; anything else is reported with its traceback by the rank that
    met it (exit 1)."""
    if distributed.size() == 1:
        return step()
    value, problem = None, None
    try:
        value = step()
    except UserError as exc:
        problem = (f"minicnn: error: {exc}", 2)
    except OSError as exc:
        problem = (_os_error_line(exc), 2)
    except MemoryError as exc:
        problem = (_memory_error_line(exc), 2)
    except Exception as exc:
        traceback.print_exc()
        problem = (f"minicnn: error: {type(exc).__name__}: {exc}", 1)
    failed = distributed.check_in(problem)
    if failed:
        raise _RanksFailed(failed)
    return value


def cmd_train(args) -> int:
    """Set up (each step checked on every rank of a data-parallel run, `_on_every_rank`), then `_train`."""
    from . import checkpoint, random
    from .errors import DataError
    from .train_state import TrainState

    ranks, root = distributed.size(), distributed.rank() == 0  # 1 and True without mpiexec
    # What to run: the command line's settings, or the checkpoint's, read by rank 0 and sent to the others.
    plan, params = _on_every_rank(lambda: _plan(args) if root else (None, None))
    plan = distributed.same_on_all(plan)
    settings, seed, limit, data_dir, save_path = (plan[k] for k in ("settings", "seed", "limit", "data_dir", "save"))

    def device_and_data():
        if root and args.plot:
            from .plot import require_matplotlib

            require_matplotlib()  # fail before training, not after it
        if root and args.log:
            Path(args.log).open("a").close()  # a path that cannot be written fails now, not after an epoch
        ctx = _device(args)
        # every rank reads the files on its own machine; the first one there alone says what it finds or downloads
        data = distributed.first_on_each_machine(lambda: _load_data(args, data_dir, quiet=distributed.local_rank() > 0))
        random.seed(seed)
        return ctx, make_loaders(data, settings, ctx, seed, limit, shard=(distributed.rank(), ranks))

    ctx, (train_iter, test_iter) = _on_every_rank(device_and_data)

    def network_and_state():
        net = build_network(settings, ctx)
        if plan["resumed"] is None:
            return net, None
        if root:
            checkpoint.apply(args.resume, net, params)  # the Trainer below sends rank 0's parameters to all
        try:
            state = TrainState.from_json(plan["resumed"]["train"], ctx)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{args.resume} has a damaged training state ({type(exc).__name__}: {exc})") from None
        if state.epoch > settings["epochs"]:
            raise UserError(
                f"{args.resume} has finished all {state.epoch - 1} epochs; pass --epochs N (more than "
                f"{state.epoch - 1}) to train further"
            )
        return net, state

    net, state = _on_every_rank(network_and_state)
    with _one_fails_all_stop(ranks):
        return _train(args, plan, net, state, train_iter, test_iter, ctx)


def _train(args, plan, net, state, train_iter, test_iter, ctx) -> int:
    """Train as `plan` says, from `state` (None: the beginning); the exit status."""
    from . import checkpoint
    from .optim import Trainer
    from .train import train_ch5
    from .train_state import Diverged, Interrupted, TrainState

    ranks, root = distributed.size(), distributed.rank() == 0
    say = print if root else (lambda *a, **k: None)  # only rank 0 speaks and writes files
    settings, seed, limit, data_dir, save_path = (plan[k] for k in ("settings", "seed", "limit", "data_dir", "save"))
    kvstore = "dist_sync" if ranks > 1 else "device"
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": settings["lr"]}, kvstore=kvstore)
    if plan["opt"] is not None:
        trainer.load_state_dict(plan["opt"])
    bs = settings["batch_size"]
    say(
        f"{settings['network']}: {settings['epochs']} epochs, batch {bs}, lr {settings['lr']}, "
        f"resize {settings['resize'] or 28}, {train_iter.num_samples} train / {test_iter.num_samples} test images, "
        f"seed {seed}"
        + (f"; {ranks} processes, {_per_rank(bs, ranks)} images each per batch" if ranks > 1 else "")
        + (f"; resuming {args.resume} at epoch {state.epoch} after batch {state.batch}" if state else ""),
        flush=True,
    )
    # A resumed run appends to its log, so one file holds the whole run.
    log_file = open(args.log, "a" if state else "w") if args.log and root else None  # noqa: SIM115 - closed below
    results = list(state.results) if state else []
    saved_epochs = []  # epochs whose end this run wrote to save_path

    def on_epoch(r) -> None:
        results.append(r)
        if log_file:
            first, last = r.edge_losses(0.1)  # the loss within the epoch: its first and last tenth of batches
            record = {
                "epoch": r.epoch, "loss": r.loss, "train_acc": r.train_acc, "test_acc": r.test_acc,
                "seconds": r.seconds, "images_per_sec": r.images_per_sec,
                "first_batches_loss": first, "last_batches_loss": last,
            }  # fmt: skip
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if args.plot and root:
            from .plot import training_curves

            training_curves(results, args.plot, title=f"{settings['network']} on Fashion-MNIST")

    def meta_for(st: TrainState) -> dict:
        return {
            "network": settings["network"], "settings": settings, "seed": seed, "limit": limit,
            "data_dir": str(Path(data_dir).resolve()) if data_dir else None, "save": save_path,
            "epochs_done": st.epoch - 1, "test_acc": results[-1].test_acc if results else None,
            "train": st.to_json(),
        }  # fmt: skip

    def on_state(st: TrainState) -> None:
        # After every good epoch, so a later divergence or crash leaves the last good epoch on disk.
        if save_path and root:
            checkpoint.save(save_path, net, meta_for(st), trainer)
        if save_path:
            saved_epochs.append(st.epoch - 1)

    try:
        with _StopOnCtrlC() as ctrl_c:
            stop = ctrl_c if ranks == 1 else (lambda: distributed.any_rank(ctrl_c()))  # all ranks stop together
            train_ch5(
                net, train_iter, test_iter, bs, trainer, ctx, settings["epochs"],
                progress=args.progress if root else False, log=lambda line: say(line, flush=True),
                on_epoch=on_epoch, state=state, stop=stop, on_state=on_state,
            )  # fmt: skip
    except Interrupted as exc:
        st = exc.state
        path = save_path or f"minicnn-{settings['network']}-interrupted.npz"
        if root:
            checkpoint.save(path, net, meta_for(st), trainer)
            print(
                f"minicnn: interrupted in epoch {st.epoch} after batch {st.batch}; saved the training state to "
                f"{path}; continue with: {_command(ranks)} train {settings['network']} --resume {path}",
                file=sys.stderr,
            )
        distributed.barrier()  # every rank exits once the checkpoint is on disk
        return 130
    except Diverged as exc:
        if saved_epochs:
            kept = f"{save_path} keeps epoch {saved_epochs[-1]}"
        elif save_path:
            kept = f"{save_path} was not written"
        else:
            kept = "nothing was saved"
        if root:
            print(
                f"minicnn: training diverged: {exc}; {kept}; "
                f"try a smaller learning rate (e.g. --lr {settings['lr'] / 10:g})",
                file=sys.stderr,
            )
        return 1
    finally:
        if log_file:
            log_file.close()
    if save_path:
        say(f"saved {save_path}")
    distributed.barrier()
    return 0


def _per_rank(batch: int, ranks: int) -> str:
    low, high = batch // ranks, -(-batch // ranks)
    return str(low) if low == high else f"{low} or {high}"


def _command(ranks: int) -> str:
    """How to run minicnn again the same way: `python -m minicnn`, under mpiexec for a data-parallel run."""
    return "python -m minicnn" if ranks == 1 else f"mpiexec -n {ranks} python -m minicnn"


def cmd_eval(args) -> int:
    from . import checkpoint
    from .train import evaluate_accuracy

    meta, params, _ = checkpoint.load(args.load)
    if meta.get("network") != args.network:
        raise UserError(f"{args.load} is a checkpoint of {meta.get('network')!r}, not {args.network!r}")
    settings = dict(meta["settings"])
    if args.batch_size:
        settings["batch_size"] = args.batch_size
    if args.width_divisor is not None:  # build the network asked for; apply() rejects parameters of another width
        settings["options"] = {**settings["options"], **_settings(args)["options"]}
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
    ctx = _device(args)
    try:
        net = spec.build(classes=10, **settings["options"])
        rows = summarize(net, (1, 1, side, side), ctx, layers=args.layers)
    except ValueError as exc:  # e.g. an input too small for the network's kernels
        raise UserError(f"{settings['network']} at {side}x{side}: {exc}") from None
    mode = "textbook" if config.textbook_mode() else "fast"
    print(f"{settings['network']}, input (1, 1, {side}, {side}), algorithms on {ctx} in {mode} mode")
    print(format_rows(rows))
    return 0


def cmd_show(args) -> int:
    from . import checkpoint
    from .plot import require_matplotlib
    from .show import write_pictures

    require_matplotlib()  # fail before loading anything
    meta, params, _ = checkpoint.load(args.load)
    if meta["network"] != args.network:
        raise UserError(f"{args.load} is a checkpoint of {meta['network']!r}, not {args.network!r}")
    settings = meta["settings"]
    ctx = _device(args)
    net = build_network(settings, ctx)
    checkpoint.apply(args.load, net, params)
    _, _, test_x, test_y = _load_data(args)
    if not 0 <= args.index < len(test_x):
        last = len(test_x) - 1
        raise UserError(f"--index {args.index} is out of range: the test set has {len(test_x)} images (0 to {last})")
    out = Path(args.out or f"show-{args.network}")
    paths = write_pictures(net, settings, test_x[args.index], int(test_y[args.index]), args.index, out, ctx)
    print(f"wrote {len(paths)} pictures to {out}/: {', '.join(p.name for p in paths)}")
    return 0


def cmd_profile(args) -> int:
    from . import random
    from .optim import Trainer
    from .profile import format_profile, profile, random_batch

    settings = _settings(args)
    ctx = _device(args)
    side = args.input_size or settings["resize"] or 28
    settings["resize"] = side
    random.seed(0)
    try:
        net = build_network(settings, ctx)
    except ValueError as exc:  # e.g. an input too small for the network's kernels
        raise UserError(f"{settings['network']} at {side}x{side}: {exc}") from None
    trainer = Trainer(net.collect_params(), "sgd", {"learning_rate": settings["lr"]})
    bs = settings["batch_size"]
    X, y = random_batch(bs, side, settings["dtype"], ctx)
    print(
        f"{settings['network']} on {ctx}: one training step, batch {bs}, input {X.shape} {settings['dtype']}; "
        f"median of {args.steps} steps after 1 warm-up step",
        flush=True,
    )
    print(format_profile(profile(net, X, y, trainer, ctx.backend.synchronize, steps=args.steps), bs))
    return 0


def cmd_compile(args) -> int:
    from .numba_setup import cache_dir
    from .precompile import compile_all

    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    seconds = compile_all(tuple(args.dtype or ("float32", "float64")), log=log)
    if not args.quiet or seconds > 10:
        print(f"compiled the CPU kernels in {seconds:.1f} s; numba keeps them in {cache_dir or '__pycache__'}")
    return 0


COMMANDS = {
    "train": cmd_train, "eval": cmd_eval, "summary": cmd_summary, "show": cmd_show, "profile": cmd_profile,
    "compile": cmd_compile,
}  # fmt: skip


def _memory_error_line(exc: MemoryError) -> str:
    """A run too large for the machine's (or the GPU's) memory, as one line: the sizes are the user's to choose."""
    what = str(exc).strip() or "a buffer could not be allocated"
    return f"minicnn: error: out of memory: {what}; choose smaller sizes (--batch-size, --input-size, --resize)"


def _os_error_line(exc: OSError) -> str:
    """A path given on the command line cannot be written or read (--save, --log, --out, ...), as one line."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"minicnn: error: {exc.strerror or exc}{where}; check the path and its permissions"


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. Under mpiexec, `train` trains data-parallel (distributed.py), and an error
    that every process meets is reported once, by rank 0."""
    args = build_parser().parse_args(argv)
    if args.textbook:
        tuning.undo()  # no process tuning either (MINICNN_TEXTBOOK=1 at start-up never applies it)
    speak = distributed.launcher_rank() == 0
    try:
        if args.command != "train" and distributed.size() > 1:
            raise UserError(f"only train runs on several processes; run {args.command} without mpiexec")
        with config.textbook(True) if args.textbook else contextlib.nullcontext():
            return COMMANDS[args.command](args)
    except _RanksFailed as exc:
        lines, code = exc.lines(), exc.code
    except UserError as exc:
        lines, code = [f"minicnn: error: {exc}"], 2
    except OSError as exc:
        lines, code = [_os_error_line(exc)], 2
    except MemoryError as exc:
        lines, code = [_memory_error_line(exc)], 2
    except KeyboardInterrupt:
        lines, code = ["minicnn: interrupted"], 130
    for line in lines if speak else ():
        print(line, file=sys.stderr)
    return code


@contextlib.contextmanager
def _one_fails_all_stop(ranks: int):
    """In a data-parallel run, an error in one process once training has begun (bad data on its shard, out of
    memory, a second Ctrl-C) ends every process, with one line naming the rank, instead of leaving the others
    waiting in a reduction for ever. (A process killed outright is reported by mpiexec itself.)"""
    if ranks == 1:
        yield
        return
    try:
        yield
    except UserError as exc:
        distributed.abort(f"error: {exc}", 2)
    except OSError as exc:
        distributed.abort(_os_error_line(exc).removeprefix("minicnn: "), 2)
    except MemoryError as exc:
        distributed.abort(_memory_error_line(exc).removeprefix("minicnn: "), 2)
    except KeyboardInterrupt:
        distributed.abort("interrupted", 130)
    except Exception as exc:
        traceback.print_exc()  # a bug: where it happened matters, as in one process
        distributed.abort(f"{type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":
    sys.exit(main())
