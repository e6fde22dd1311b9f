"""Where a convolution layer's time goes: forward and backward of one layer, split into im2col, GEMMs, col2im and
the epilogues (or the Winograd tile transforms), at the chapter's shapes.

    ./dev python benchmarks/conv_parts.py [--layers alexnet.conv1,lenet.conv1] [--repeats 2]
                                          [--paths textbook,auto] [--plane-run-min 1]

--paths: `auto` is what Conv2D picks in fast mode (fast/dispatch.py, conv2d); `textbook` is im2col + GEMM as
ops/conv.py writes it (MINICNN_TEXTBOOK=1); `fused im2col`, `plane`, `winograd` and `direct` force that path onto
every layer it can take at all (stride 1; 3x3 stride 1; no horizontal stride), the others off. With
`textbook,auto` (the default) each layer runs both ways, side by side. GFLOP/s counts the multiply-adds of the
convolution's definition (2*N*O*C*K*K*OH*OW per pass, three passes) on every path, so a Winograd row's rate is an
effective one: it does 2.25x fewer.

Each kernel function is wrapped with a timer (the GEMMs through `numpy.matmul`), the layer runs forward under
autograd.record and backward once untimed, then --repeats times timed; the last run is printed. The parts do not
add up to the totals: the rest is Python and the ops' own array bookkeeping.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (batch, in channels, side, out channels, kernel, stride, padding, activation); the input needs a gradient
# unless it has one channel (a network's first layer, reading the images)
LAYERS = {
    "vgg11.conv0": (32, 1, 224, 64, 3, 1, 1, "relu"),
    "vgg11-div4.conv0": (128, 1, 224, 16, 3, 1, 1, "relu"),
    "googlenet.conv0": (128, 1, 96, 64, 7, 2, 3, "relu"),
    "lenet.conv0": (256, 1, 28, 6, 5, 1, 0, "sigmoid"),
    "lenet.conv1": (256, 6, 12, 16, 5, 1, 0, "sigmoid"),
    "alexnet.conv0": (128, 1, 224, 96, 11, 4, 0, "relu"),
    "alexnet.conv1": (128, 96, 26, 256, 5, 1, 2, "relu"),
    "alexnet.conv3": (128, 384, 12, 384, 3, 1, 1, "relu"),
    "vgg11.conv2": (32, 128, 56, 256, 3, 1, 1, "relu"),
    "vgg11.conv6": (32, 512, 14, 512, 3, 1, 1, "relu"),
    "vgg11-div4.conv1": (128, 16, 112, 32, 3, 1, 1, "relu"),
    "vgg11-div4.conv2": (128, 32, 56, 64, 3, 1, 1, "relu"),
    "vgg11-div4.conv3": (128, 64, 56, 64, 3, 1, 1, "relu"),
    "googlenet.b2-3x3": (128, 64, 24, 192, 3, 1, 1, "relu"),
    "googlenet.b3-3x3": (128, 96, 12, 128, 3, 1, 1, "relu"),
    "googlenet.b3-5x5": (128, 16, 12, 32, 5, 1, 2, "relu"),
    "googlenet.b3b-5x5": (128, 32, 12, 96, 5, 1, 2, "relu"),
    "googlenet.b4a-5x5": (128, 16, 6, 48, 5, 1, 2, "relu"),
    "googlenet.b4e-5x5": (128, 32, 6, 128, 5, 1, 2, "relu"),
    "googlenet.b5-5x5": (128, 48, 3, 128, 5, 1, 2, "relu"),
    "nin.conv-last": (128, 384, 5, 10, 3, 1, 1, "relu"),
    "nin.1x1-54": (128, 96, 54, 96, 1, 1, 0, "relu"),
    "nin.1x1-26": (128, 256, 26, 256, 1, 1, 0, "relu"),
    "googlenet.b2-1x1": (128, 64, 24, 64, 1, 1, 0, "relu"),
    "googlenet.b3-heads": (128, 256, 12, 288, 1, 1, 0, "relu"),
    "googlenet.b4e-heads": (128, 528, 6, 448, 1, 1, 0, "relu"),
    "googlenet.b5-heads": (128, 832, 3, 624, 1, 1, 0, "relu"),
    "googlenet.b4e-3x3": (128, 160, 6, 320, 3, 1, 1, "relu"),
    "googlenet.b5-3x3": (128, 192, 3, 384, 3, 1, 1, "relu"),
    "nin.1x1-5": (128, 10, 5, 10, 1, 1, 0, "relu"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default=",".join(LAYERS), help=f"comma-separated, from: {', '.join(LAYERS)}")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--paths",
        default="textbook,auto",
        help="comma-separated, from: textbook, auto, fused im2col, plane, winograd, direct",
    )
    p.add_argument(
        "--plane-run-min",
        type=int,
        help="cpu_plane.RUN_MIN: the plane kernels interleave samples whose run is shorter (1: sample by sample)",
    )
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import os

    import numpy as np

    import minicnn as mc
    from minicnn import autograd, config, ops
    from minicnn.backend import cpu
    from minicnn.fast import cpu_direct, cpu_epilogue, cpu_im2col, cpu_plane, cpu_winograd, dispatch

    if args.plane_run_min is not None:
        cpu_plane.RUN_MIN = args.plane_run_min
    spent: dict[str, float] = collections.defaultdict(float)

    def timed(owner, name: str, label: str) -> None:
        f = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    for name in ("im2col", "col2im"):
        timed(cpu, name, f"textbook {name}")
        timed(cpu_im2col, name, name)
    for name in ("bias_act", "act_grad"):
        timed(cpu_epilogue, name, name)
    for name in ("input_transform", "output_bias_act", "output_transform_grad", "input_transform_grad"):
        timed(cpu_winograd, name, f"wino.{name}")
    for name in ("forward", "weight_grad", "input_grad"):
        timed(cpu_direct, name, f"direct.{name}")
    for name in ("forward", "backward"):
        timed(cpu_plane, name, f"plane.{name}")
    timed(np, "matmul", "gemm")
    # what forces each fast path onto any layer it can take at all: fast/dispatch.py's switches (MINICNN_<NAME>)
    # and thresholds
    off = {"winograd": "0", "pointwise": "0", "direct": "0", "plane": "0"}
    forced = {
        "fused im2col": (off, {}),
        "plane": ({**off, "plane": "1"}, {"PLANE_SMALL_CHANNELS": 10**9, "PLANE_SMALL_PIXELS": 10**9}),
        "winograd": ({**off, "winograd": "1"}, {"WINOGRAD_MIN_CHANNELS": 1}),
        "direct": ({**off, "direct": "1"}, {"DIRECT_MAX_K": 10**9, "DIRECT_MIN_WIDTH": 1}),
    }
    defaults = {name: getattr(dispatch, name) for _, limits in forced.values() for name in limits}
    environment = dict(os.environ)

    for layer, path in ((layer, path) for layer in args.layers.split(",") for path in args.paths.split(",")):
        n, c, side, o, k, s, pad, act = LAYERS[layer]
        switches, limits = forced.get(path, ({}, {}))
        os.environ.clear()
        os.environ.update(environment, **{f"MINICNN_{key.upper()}": v for key, v in switches.items()})
        for name, value in {**defaults, **limits}.items():
            setattr(dispatch, name, value)
        side_out = (side + 2 * pad - k) // s + 1
        config.set_textbook(path == "textbook")
        taken = dispatch.conv2d(cpu, c, o, (k, k), (s, s), (pad, pad), (side_out, side_out))
        if path not in ("auto", "textbook", taken):
            continue  # a layer the forced path does not take (a strided one, a window other than 3x3)
        rng = np.random.default_rng(0)
        x = mc.array(rng.random((n, c, side, side), dtype=np.float32))
        w = mc.array(rng.standard_normal((o, c, k, k), dtype=np.float32) * 0.05)
        b = mc.array(np.zeros(o, dtype=np.float32))
        for a in (x, w, b) if c > 1 else (w, b):  # a 1-channel input is the images: no gradient, as in training
            a.attach_grad()
        for _ in range(1 + args.repeats):
            spent.clear()
            start = time.perf_counter()
            with autograd.record():
                y = ops.conv2d(x, w, b, stride=s, pad=pad, act=act)
            spent["forward total"] = time.perf_counter() - start
            start = time.perf_counter()
            y.backward()
            spent["backward total"] = time.perf_counter() - start
        flops = 2 * n * o * c * k * k * ((side + 2 * pad - k) // s + 1) ** 2
        parts = "  ".join(f"{key} {v * 1e3:.0f}" for key, v in spent.items() if "total" not in key)
        print(
            f"{layer:18} {taken:12}  forward {spent['forward total'] * 1e3:7.0f} ms  "
            f"backward {spent['backward total'] * 1e3:7.0f}"
            f" ms  ({3 * flops / (spent['forward total'] + spent['backward total']) / 1e9:.0f} GFLOP/s)  |  {parts}"
        )


if __name__ == "__main__":
    main()
