"""Training throughput of the chapter's five networks in minicnn and in MXNet 1.9.1 (and PyTorch where installed).

    ./dev python benchmarks/networks.py [--networks lenet,alexnet,...] [--steps 3] [--min-seconds 2] [--warmup 1]
                                        [--threads N] [--rounds R]

Each (framework, network) pair runs in its own process - minicnn in .venv, MXNet in .venv-ref, PyTorch in
--torch-python when `import torch` works there - so every peak RSS belongs to one network. A process builds the
chapter's network (Xavier initialisation), then runs --warmup untimed and --steps timed SGD steps (forward under
autograd.record, loss summed over the batch, backward, trainer.step(batch)) on one fixed batch of random images
and labels at the chapter's input size and batch size; throughput does not depend on the values. While the timed
steps take less than --min-seconds (default 2: LeNet's take milliseconds) more are timed. MXNet is
asynchronous, so its step ends with nd.waitall(). Reported: images per second from the median step time, and
the process's peak resident memory (ru_maxrss).

--rounds R (default 1) runs each network's frameworks R times over, one after another, the order rotated each
round, so that a slow minute of the machine (its speed drifts by 10-30 % here) falls on all of them alike. Then
images/s is from the median of every timed step of all rounds, peak RSS is the largest of the rounds, and a line
per network under the table gives each round's own ratios.

For AlexNet and VGG-11 a further minicnn process measures the convolution layers' rate (GFLOP/s over their
forward and backward, from a per-layer profile of one step) and NumPy's own float32 GEMM rate (3072^3, best of
3) with the same BLAS and threads: the speed issue asks for conv >= 70% of GEMM. The conv FLOPs are the direct
convolution's (2*N*O*C*KH*KW*OH*OW forward, twice that backward) whichever algorithm ran: for the 3x3 layers that
take the Winograd path (2.25x fewer multiply-adds) the rate is an effective one.

Networks: lenet (28x28, batch 256), alexnet (224, 128), vgg11 (full width, 224, batch 32: batch 128 needs
~6 GiB and minutes per step), vgg11-div4 (the book's small VGG, channels / 4, 224, 128), nin (224, 128),
googlenet (96, 128). --batch-size and --resize override every network's, for a quick run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The environment the workers start from: this process's as it was given, before anything here imported minicnn,
# which sets its own OpenBLAS spin time (minicnn/__init__.py) for itself, not for the MXNet and PyTorch workers.
LAUNCH_ENV = dict(os.environ)

# name -> (registry network, builder options, input side, batch size)
CASES = {
    "lenet": ("lenet", {}, 28, 256),
    "alexnet": ("alexnet", {}, 224, 128),
    "vgg11": ("vgg11", {"width_divisor": 1}, 224, 32),
    "vgg11-div4": ("vgg11", {"width_divisor": 4}, 224, 128),
    "nin": ("nin", {}, 224, 128),
    "googlenet": ("googlenet", {}, 96, 128),
}
LR = {"lenet": 0.9, "alexnet": 0.01, "vgg11": 0.05, "nin": 0.1, "googlenet": 0.1}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CORE_NAME = (  # which kernels NumPy's OpenBLAS picked for this CPU (it reads OPENBLAS_CORETYPE when it loads)
    "import ctypes, numpy\n"
    "path = next(line.split()[-1] for line in open('/proc/self/maps') if 'openblas' in line)\n"
    "lib = ctypes.CDLL(path)\n"
    "for name in ('scipy_openblas_get_corename64_', 'openblas_get_corename64_', 'openblas_get_corename'):\n"
    "    if hasattr(lib, name):\n"
    "        getattr(lib, name).restype = ctypes.c_char_p\n"
    "        print(getattr(lib, name)().decode())\n"
    "        break\n"
)


def openblas_kernels(python, env: dict | None = None) -> str:
    """'SkylakeX' or 'Haswell' ...: the kernels the OpenBLAS of `python`'s NumPy runs, in `env` (default: the one
    this process was given)."""
    core = subprocess.run(
        [str(python), "-c", CORE_NAME], capture_output=True, text=True, check=False, env=env or LAUNCH_ENV
    )
    return core.stdout.strip() or "?"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The training workers' timed steps go on past --steps until they add up to --min-seconds (set by worker()): three
# of LeNet's 8 ms steps are a sample that one stall of the machine could decide. The larger networks' three steps
# take seconds anyway.
MIN_SECONDS = 0.0
MOST_STEPS = 2000


def time_steps(step, warmup: int, steps: int, min_seconds: float = 0.0) -> list[float]:
    for _ in range(warmup):
        step()
    times: list[float] = []
    while len(times) < steps or (sum(times) < min_seconds and len(times) < MOST_STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def random_batch(batch: int, side: int):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.random((batch, 1, side, side), dtype=np.float32), rng.integers(0, 10, batch).astype(np.float32)


# ---- workers: one network in one framework, in this process ---------------------------------------------
def minicnn_on_path() -> None:
    """Make `import minicnn` find this checkout's, unless PYTHONPATH names a directory holding another one: that is
    how ab_env.py times an older checkout (`PYTHONPATH=/tmp/before`) with this script."""
    named = [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not any((p / "minicnn" / "__init__.py").is_file() for p in named):
        sys.path.insert(0, str(ROOT))


def minicnn_setup(name: str, options: dict, side: int, batch: int, device: str):
    """The chapter's network (Xavier), its SGD trainer and a random batch, in minicnn on `device`."""
    minicnn_on_path()
    import minicnn as mc
    from minicnn import init, models, random
    from minicnn.device import parse

    random.seed(0)
    ctx = parse(device)
    net = models.get(name).build(classes=10, **options)
    net.initialize(ctx=ctx, init=init.Xavier())
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": LR[name]})
    x, y = random_batch(batch, side)
    return net, trainer, mc.array(x).as_in_context(ctx), mc.array(y).as_in_context(ctx), ctx


def run_minicnn(name: str, options: dict, side: int, batch: int, warmup: int, steps: int, device: str) -> dict:
    from minicnn import autograd
    from minicnn.loss import SoftmaxCrossEntropyLoss

    net, trainer, X, Y, ctx = minicnn_setup(name, options, side, batch, device)
    loss = SoftmaxCrossEntropyLoss()

    def step():
        with autograd.record():
            l = loss(net(X), Y).sum()
        l.backward()
        trainer.step(batch)
        ctx.backend.synchronize()  # a GPU step is only over when its kernels are

    import minicnn

    checkout = str(Path(minicnn.__file__).resolve().parents[1])  # which minicnn ran: ab_env.py prints it
    return {"step_sec": time_steps(step, warmup, steps, MIN_SECONDS), "device": str(ctx), "checkout": checkout}


def run_minicnn_conv(name: str, options: dict, side: int, batch: int, warmup: int, steps: int, device: str) -> dict:
    """The conv-layer rate, in a process of its own so that the profile does not count in the step's peak RSS."""
    net, trainer, X, Y, ctx = minicnn_setup(name, options, side, batch, device)
    return conv_rates(net, X, Y, trainer, ctx)


CONV_RATE_NETWORKS = ("alexnet", "vgg11")


def gemm_gflops(dtype="float32", size: int = 3072, repeats: int = 3) -> float:
    """NumPy's own GEMM rate in this process (same BLAS, same threads): best of `repeats` square products."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((size, size), dtype=dtype), rng.random((size, size), dtype=dtype)
    a @ b  # BLAS threads start, pages are touched
    best = min(time_steps(lambda: a @ b, 0, repeats))
    return 2 * size**3 / best / 1e9


def conv_rates(net, X, Y, trainer, ctx) -> dict:
    """GFLOP/s of the convolution layers over one training step's forward and backward, from a per-layer profile
    of the same network, flattened so that every convolution is timed on its own. Backward FLOPs: twice the
    forward ones (data and weight gradients), once for the first layer (the images need no gradient)."""
    from minicnn import nn, profile

    layers = []
    for block in net:
        layers.extend(block if isinstance(block, nn.Sequential) else [block])
    flat = nn.Sequential()
    flat.add(*layers)
    prof = profile.profile(flat, X, Y, trainer, ctx.backend.synchronize, steps=1)
    flops = seconds = 0.0
    for k, (layer, row) in enumerate(zip(layers, prof.layers)):
        if isinstance(layer, nn.Conv2D):
            flops += row.flops * (2 if k == 0 else 3)
            seconds += row.forward + row.backward
    return {"conv_gflops": flops / seconds / 1e9, "gemm_gflops": gemm_gflops()}


def run_mxnet(name: str, options: dict, side: int, batch: int, warmup: int, steps: int, device: str) -> dict:
    step = mxnet_step(name, options, side, batch)
    return {"step_sec": time_steps(step, warmup, steps, MIN_SECONDS), "device": "cpu"}


def mxnet_step(name: str, options: dict, side: int, batch: int):
    """The chapter's network in MXNet Gluon and one training step of it on a random batch (mxnet_profile.py
    profiles the same step)."""
    sys.path.insert(0, str(ROOT))
    import mxnet as mx
    from mxnet import autograd, gluon, init, nd
    from mxnet.gluon import loss as gloss

    from reference import gluon_models

    mx.random.seed(0)
    net = gluon_models.build(name, classes=10, **options)
    net.initialize(init=init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR[name]})
    loss = gloss.SoftmaxCrossEntropyLoss()
    x, y = random_batch(batch, side)
    X, Y = nd.array(x), nd.array(y)

    def step():
        with autograd.record():
            l = loss(net(X), Y).sum()
        l.backward()
        trainer.step(batch)
        nd.waitall()  # MXNet queues the work; the step is over when the engine is idle

    return step


def torch_network(name: str, options: dict):
    """The chapter's networks in PyTorch (input channels given explicitly, PyTorch has no deferred shapes)."""
    import torch
    from torch import nn

    def conv(c_in, c_out, k, s=1, p=0):
        return [nn.Conv2d(c_in, c_out, k, s, p), nn.ReLU()]

    class Inception(nn.Module):
        def __init__(self, c_in, c1, c2, c3, c4):
            super().__init__()
            self.p1 = nn.Sequential(*conv(c_in, c1, 1))
            self.p2 = nn.Sequential(*conv(c_in, c2[0], 1), *conv(c2[0], c2[1], 3, p=1))
            self.p3 = nn.Sequential(*conv(c_in, c3[0], 1), *conv(c3[0], c3[1], 5, p=2))
            self.p4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), *conv(c_in, c4, 1))

        def forward(self, x):
            return torch.cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], dim=1)

    def dense_head():  # LazyLinear: the input size follows the image size, like Gluon's deferred shapes
        return [nn.Flatten(), nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
                nn.Dropout(0.5), nn.Linear(4096, 10)]  # fmt: skip

    if name == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2), nn.Conv2d(6, 16, 5), nn.Sigmoid(),
            nn.MaxPool2d(2, 2), nn.Flatten(), nn.LazyLinear(120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, 10),
        )  # fmt: skip
    if name == "alexnet":
        return nn.Sequential(
            *conv(1, 96, 11, 4), nn.MaxPool2d(3, 2), *conv(96, 256, 5, p=2), nn.MaxPool2d(3, 2),
            *conv(256, 384, 3, p=1), *conv(384, 384, 3, p=1), *conv(384, 256, 3, p=1), nn.MaxPool2d(3, 2),
            *dense_head(),
        )  # fmt: skip
    if name == "vgg11":
        layers, c_in = [], 1
        for num_convs, channels in ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)):
            for _ in range(num_convs):
                layers += conv(c_in, channels // options["width_divisor"], 3, p=1)
                c_in = channels // options["width_divisor"]
            layers.append(nn.MaxPool2d(2, 2))
        return nn.Sequential(*layers, *dense_head())
    if name == "nin":

        def block(c_in, c, k, s, p):
            return [*conv(c_in, c, k, s, p), *conv(c, c, 1), *conv(c, c, 1)]

        return nn.Sequential(
            *block(1, 96, 11, 4, 0), nn.MaxPool2d(3, 2), *block(96, 256, 5, 1, 2), nn.MaxPool2d(3, 2),
            *block(256, 384, 3, 1, 1), nn.MaxPool2d(3, 2), nn.Dropout(0.5), *block(384, 10, 3, 1, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
    if name == "googlenet":
        return nn.Sequential(
            *conv(1, 64, 7, 2, 3), nn.MaxPool2d(3, 2, 1),
            *conv(64, 64, 1), *conv(64, 192, 3, p=1), nn.MaxPool2d(3, 2, 1),
            Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64),
            nn.MaxPool2d(3, 2, 1),
            Inception(480, 192, (96, 208), (16, 48), 64), Inception(512, 160, (112, 224), (24, 64), 64),
            Inception(512, 128, (128, 256), (24, 64), 64), Inception(512, 112, (144, 288), (32, 64), 64),
            Inception(528, 256, (160, 320), (32, 128), 128), nn.MaxPool2d(3, 2, 1),
            Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 10),
        )  # fmt: skip
    raise ValueError(name)


def run_torch(name: str, options: dict, side: int, batch: int, warmup: int, steps: int, device: str) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    net = torch_network(name, options)
    x, y = random_batch(batch, side)
    X, Y = torch.from_numpy(x), torch.from_numpy(y).long()
    with torch.no_grad():
        net(X[:1])  # materialises the LazyLinear layers before initialisation
    for m in net.modules():  # Xavier (uniform) weights and zero biases, as the chapter's init.Xavier()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    net.train()
    # reduction="sum" and lr / batch: the chapter's summed loss with trainer.step(batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=LR[name] / batch)
    loss = torch.nn.CrossEntropyLoss(reduction="sum")

    def step():
        opt.zero_grad()
        loss(net(X), Y).backward()
        opt.step()

    return {"step_sec": time_steps(step, warmup, steps, MIN_SECONDS), "device": "cpu"}


WORKERS = {
    "minicnn": run_minicnn,
    "minicnn-conv": run_minicnn_conv,
    "mxnet": run_mxnet,
    "torch": run_torch,
}


def worker(args) -> None:
    global MIN_SECONDS
    if args.import_order == "numpy":  # a user's script or notebook: `import numpy as np` comes first
        import numpy  # noqa: F401
    MIN_SECONDS = args.min_seconds
    name, options, side, batch = case_settings(args.case, args)
    result = WORKERS[args.worker](name, options, side, batch, args.warmup, args.steps, args.device)
    result.update(batch=batch, side=side, peak_rss_mib=peak_rss_mib())
    print("RESULT " + json.dumps(result), flush=True)


# ---- driver ----------------------------------------------------------------------------------------------
def case_settings(case: str, args) -> tuple[str, dict, int, int]:
    name, options, side, batch = CASES[case]
    return name, options, args.resize or side, args.batch_size or batch


def launch(framework: str, python: str, case: str, args) -> dict | None:
    cmd = [python, __file__, "--worker", framework, "--case", case, "--steps", str(args.steps),
           "--min-seconds", str(args.min_seconds), "--warmup", str(args.warmup), "--device", args.device,
           "--import-order", args.import_order]  # fmt: skip
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.resize:
        cmd += ["--resize", str(args.resize)]
    env = dict(LAUNCH_ENV, PYTHONPATH=str(ROOT), **dict.fromkeys(THREAD_VARS, str(args.threads)))
    if framework.startswith("minicnn"):
        env = minicnn_env(env, args)
    print(f"  running {case} in {framework} ...", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    print(f"  {framework} {case}: failed ({' | '.join(tail)})", file=sys.stderr)
    return None


def minicnn_env(env: dict, args) -> dict:
    """env without the variables --minicnn-unset names: minicnn's workers only."""
    drop = {v.strip() for v in (args.minicnn_unset or "").split(",") if v.strip()}
    return {k: v for k, v in env.items() if k not in drop}


def importable(python: str, module: str) -> bool:
    if not python or not Path(python).exists():
        return False
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
    return probe.returncode == 0


def versions(python: str, modules: str) -> str:
    code = f"import importlib; print(' '.join(m + ' ' + importlib.import_module(m).__version__ for m in {modules!r}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def cpu_model() -> str:
    """'AMD EPYC (family 26 model 2), AVX-512': the model, and the widest vector extension numba and BLAS can use."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:40] if ":" in line)
    except OSError:
        return platform.processor() or "unknown CPU"
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = info.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    family, model = info.get("cpu family", "?"), info.get("model", "?")
    return f"{info.get('model name', '?')} (family {family} model {model}), {vector}"


def merge_rounds(runs: list) -> dict | None:
    """One result from a framework's rounds: all their timed steps, the largest peak RSS (None if every round
    failed)."""
    ok = [r for r in runs if r]
    if not ok:
        return None
    merged = dict(ok[0])
    merged["step_sec"] = [t for r in ok for t in r["step_sec"]]
    merged["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
    return merged


def img_per_sec(r: dict | None) -> float | None:
    return r["batch"] / statistics.median(r["step_sec"]) if r else None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per network (median reported)")
    p.add_argument(
        "--min-seconds", type=float, default=2.0, help="more timed steps until they take this long (LeNet's are short)"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (numba compilation, MKLDNN set-up)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS/OpenMP/numba threads per process")
    p.add_argument("--rounds", type=int, default=1, help="alternating runs of each network's frameworks (see above)")
    p.add_argument("--batch-size", type=int, help="override every network's batch size (quick runs)")
    p.add_argument("--resize", type=int, help="override every network's input side (quick runs)")
    p.add_argument("--device", default="cpu", help="minicnn's device (MXNet and PyTorch run on the CPU)")
    p.add_argument("--minicnn-python", default=str(ROOT / ".venv/bin/python"))
    p.add_argument("--mxnet-python", default=str(ROOT / ".venv-ref/bin/python"))
    p.add_argument(
        "--torch-python", default=str(ROOT / ".venv-torch/bin/python"), help="a Python with torch (./dev bench-setup)"
    )
    p.add_argument(
        "--import-order", choices=["numpy", "minicnn"], default="numpy",
        help="what minicnn's worker imports first: numpy, as a user's script or notebook does (default), or minicnn, "
        "as python -m minicnn does",
    )  # fmt: skip
    p.add_argument(
        "--minicnn-unset", metavar="VAR,VAR",
        help="variables minicnn's workers run without, e.g. OPENBLAS_CORETYPE,OPENBLAS_L2_SIZE: a machine whose "
        "environment names an OpenBLAS core for an older OpenBLAS (MXNet's) lets the current one choose its own",
    )  # fmt: skip
    p.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    cases = [c.strip() for c in args.networks.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown network(s) {unknown}; choose from {', '.join(CASES)}")
    frameworks = {"minicnn": args.minicnn_python, "mxnet": args.mxnet_python}
    if importable(args.torch_python, "torch"):
        frameworks["torch"] = args.torch_python
    else:
        print(f"# PyTorch skipped: no `import torch` in {args.torch_python!r} (./dev bench-setup installs it)")
    print(f"# {' '.join(['python', 'benchmarks/networks.py', *sys.argv[1:]])}")
    print(
        f"# {cpu_model()}, {os.cpu_count()} cores, {args.threads} threads per process; minicnn's worker imports "
        f"{args.import_order} first; "
        f"minicnn: {versions(args.minicnn_python, ('numpy', 'numba'))}; "
        f"MXNet: {versions(args.mxnet_python, ('mxnet', 'numpy'))}"
        + (f"; PyTorch: {versions(args.torch_python, ('torch',))}" if "torch" in frameworks else "")
    )
    blas_vars = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    ours = minicnn_env(LAUNCH_ENV, args)
    print(
        f"# OpenBLAS kernels: minicnn's {openblas_kernels(args.minicnn_python, ours)} ("
        + ", ".join(f"{k}={ours.get(k, 'unset')}" for k in blas_vars)
        + f"), MXNet's NumPy's {openblas_kernels(args.mxnet_python)} ("
        + ", ".join(f"{k}={LAUNCH_ENV.get(k, 'unset')}" for k in blas_vars)
        + ")"
    )
    rounds = max(1, args.rounds)
    print(
        f"# {args.warmup} warm-up + {args.steps} timed steps (more up to {args.min_seconds:g} s)"
        + (f", {rounds} alternating rounds" if rounds > 1 else "")
        + "; images/s from the median step time"
    )
    results, per_round = {}, {}
    for case in cases:
        # numba compiles minicnn's kernels on first use and caches them on disk; compiling takes far more memory
        # than running, so a run right after a code change would count it in minicnn's peak RSS. A short run at
        # batch 2 (same input size, so the same convolution paths and kernels) fills the cache first.
        launch("minicnn", args.minicnn_python, case, argparse.Namespace(**{**vars(args), "batch_size": 2,
               "steps": 1, "warmup": 0}))  # fmt: skip
        order = list(frameworks)
        runs = {fw: [] for fw in order}
        for r in range(rounds):
            for fw in order[r % len(order) :] + order[: r % len(order)]:
                runs[fw].append(launch(fw, frameworks[fw], case, args))
        for fw in order:
            results[case, fw] = merge_rounds(runs[fw])
        per_round[case] = runs
        if case_settings(case, args)[0] in CONV_RATE_NETWORKS and results[case, "minicnn"]:
            rates = launch("minicnn-conv", args.minicnn_python, case, args) or {}
            # only the rates: that process's peak RSS (profile, GEMM probe) is not the training step's
            results[case, "minicnn"].update({k: rates[k] for k in ("conv_gflops", "gemm_gflops") if k in rates})
    torch_cols = "torch" in frameworks
    head = "| network | batch | input | minicnn img/s | MXNet img/s | minicnn / MXNet |"
    head += " PyTorch img/s | minicnn / PyTorch |" if torch_cols else ""
    head += " minicnn peak RSS MiB | MXNet peak RSS MiB |" + (" PyTorch peak RSS MiB |" if torch_cols else "")
    head += " minicnn conv GFLOP/s | NumPy GEMM GFLOP/s | conv / GEMM |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for case in cases:
        _, _, side, batch = case_settings(case, args)
        m, x = results[case, "minicnn"], results[case, "mxnet"]
        t = results.get((case, "torch"))
        mi, xi = img_per_sec(m), img_per_sec(x)
        row = f"| {case} | {batch} | {side}x{side} | {fmt(mi, '.1f')} | {fmt(xi, '.1f')} | "
        row += f"{fmt(mi / xi if mi and xi else None, '.2f')} |"
        ti = img_per_sec(t)
        row += f" {fmt(ti, '.1f')} | {fmt(mi / ti if mi and ti else None, '.2f')} |" if torch_cols else ""
        row += f" {fmt(m and m['peak_rss_mib'], '.0f')} | {fmt(x and x['peak_rss_mib'], '.0f')} |"
        row += f" {fmt(t and t['peak_rss_mib'], '.0f')} |" if torch_cols else ""
        conv, gemm = (m.get("conv_gflops"), m.get("gemm_gflops")) if m else (None, None)
        row += f" {fmt(conv, '.0f')} | {fmt(gemm, '.0f')} | {fmt(conv / gemm if conv and gemm else None, '.2f')} |"
        print(row, flush=True)
    if rounds > 1:
        for case in cases:
            runs = per_round[case]
            parts = []
            for fw, label in (("mxnet", "MXNet"), ("torch", "PyTorch")):
                if fw in runs:
                    ratios = [
                        img_per_sec(m) / img_per_sec(o) if m and o else None for m, o in zip(runs["minicnn"], runs[fw])
                    ]
                    parts.append(f"minicnn / {label} " + " ".join(fmt(v, ".2f") for v in ratios))
            print(f"# {case}, round by round: " + "; ".join(parts))


if __name__ == "__main__":
    main()
