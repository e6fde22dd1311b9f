"""The fast CPU kernels one at a time, each against its textbook counterpart (rows "fast | textbook").

    ./dev python benchmarks/kernels.py [--repeats 20] [--threads 1]

The median of --repeats runs, in milliseconds, at shapes from the chapter's networks (AlexNet's conv1 batch chunk
and first pool, GoogLeNet's 5x5 layer and inception pools, LeNet's layers and pools). --threads sets numba's and
BLAS's threads before they start; 1 thread gives the steadiest comparisons on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_ms(f, repeats: int) -> float:
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    importlib.import_module("minicnn")
    import numpy as np

    from minicnn import config, ops
    from minicnn.backend import cpu
    from minicnn.fast import cpu_epilogue, cpu_im2col, cpu_pool, cpu_sgd, cpu_sigmoid

    rng = np.random.default_rng(0)
    rows = []

    def row(what: str, new, old=None) -> None:
        t_new = median_ms(new, args.repeats)
        t_old = median_ms(old, args.repeats) if old is not None else None
        rows.append((what, t_new, t_old))

    def with_env(name: str, value: str, f):
        def run():
            saved = os.environ.get(name)
            os.environ[name] = value
            try:
                return f()
            finally:
                os.environ.pop(name) if saved is None else os.environ.__setitem__(name, saved)

        return run

    # im2col and col2im: AlexNet conv1, one 32 MiB chunk (5 samples, 96 channels, 26x26, 5x5, padding 2), and
    # GoogLeNet's 5x5 layer on 12x12 planes (32 channels, whole batch); the fast kernels write into a reused buffer
    xg = rng.random((128, 32, 12, 12), dtype=np.float32)
    for what, xs, win in [
        ("AlexNet conv1 chunk", rng.random((5, 96, 26, 26), dtype=np.float32), ((5, 5), (1, 1), (2, 2))),
        ("GoogLeNet 5x5 on 12x12", xg, ((5, 5), (1, 1), (2, 2))),
    ]:
        cs, ds = cpu.im2col(xs, *win), np.empty_like(xs)
        im = lambda xs=xs, win=win, cs=cs: cpu_im2col.im2col(xs, *win, out=cs)  # noqa: E731
        c2i = lambda xs=xs, win=win, cs=cs, ds=ds: cpu_im2col.col2im(cs, xs.shape, *win, out=ds)  # noqa: E731
        row(f"im2col, {what}: fast (framed) | textbook", im, lambda xs=xs, win=win: cpu.im2col(xs, *win))
        row(f"im2col, {what}: fast rows | framed", with_env("MINICNN_FRAMED", "0", im), im)
        row(
            f"col2im, {what}: fast (framed) | textbook",
            c2i,
            lambda cs=cs, xs=xs, win=win: cpu.col2im(cs, xs.shape, *win),
        )
    xa = rng.random((5, 1, 224, 224), dtype=np.float32)
    wa = ((11, 11), (4, 4), (0, 0))
    row("im2col, AlexNet conv0 11x11/4: fast (shifted rows) | textbook", lambda: cpu_im2col.im2col(xa, *wa),
        lambda: cpu.im2col(xa, *wa))  # fmt: skip

    # The epilogues at AlexNet conv0's chunk (23 samples, 96 channels, 54x54): fused kernel | the textbook's steps
    n, o, q = 23, 96, 54 * 54
    y2 = rng.standard_normal((o, n * q), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    out = np.empty((n, o, q), np.float32)

    def textbook_bias_act():
        y = y2.reshape(o, n, q).transpose(1, 0, 2) + b.reshape(1, o, 1)
        return ops.activation.apply_("relu", y)

    row("bias + relu + to NCHW: fused | textbook", lambda: cpu_epilogue.bias_act(y2, b, "relu", out), textbook_bias_act)
    y = np.maximum(rng.standard_normal((n, o, q), dtype=np.float32), 0)
    gy = rng.standard_normal((n, o, q), dtype=np.float32)
    g2 = np.empty((o, n * q), np.float32)
    gb = np.zeros(o, np.float32)

    def textbook_act_grad():
        g = ops.activation.grad("relu", y, gy)
        return g.transpose(1, 0, 2).reshape(o, -1), g.sum(axis=(0, 2))

    row("relu grad + bias grad + to (O, N*P): fused | textbook", lambda: cpu_epilogue.act_grad(y, gy, "relu", g2, gb),
        textbook_act_grad)  # fmt: skip

    # Max pooling forward: fast (runs, or 2x2 tiles) | the textbook window loop
    for what, shape, window in [
        ("AlexNet pool0", (128, 96, 54, 54), ((3, 3), (2, 2), (0, 0))),
        ("GoogLeNet 3x3/1 pad 1", (128, 256, 12, 12), ((3, 3), (1, 1), (1, 1))),
        ("GoogLeNet 3x3/1 pad 1 on 6x6", (128, 512, 6, 6), ((3, 3), (1, 1), (1, 1))),
        ("VGG-11 pool0 at batch 32", (32, 64, 224, 224), ((2, 2), (2, 2), (0, 0))),
        ("LeNet pool0", (256, 6, 24, 24), ((2, 2), (2, 2), (0, 0))),
        ("LeNet pool1", (256, 16, 8, 8), ((2, 2), (2, 2), (0, 0))),
    ]:
        xp = rng.random(shape, dtype=np.float32)
        k, s = window[0][0], window[1][0]
        new = "2x2 tiles" if window == ((2, 2), (2, 2), (0, 0)) else "runs"
        fast = lambda xp=xp, window=window: cpu_pool.max_pool_forward(xp, *window)  # noqa: E731
        row(f"max pool {k}x{k}/{s} forward, {what}: {new} | textbook", fast,
            lambda xp=xp, window=window: cpu.max_pool_forward(xp, *window))  # fmt: skip
        if new == "2x2 tiles":
            row(f"max pool 2x2/2 forward, {what}: 2x2 tiles | runs", fast, with_env("MINICNN_POOL_2X2", "0", fast))

    # The sigmoid of LeNet conv0's output, in place (from a copy, both sides): cpu_sigmoid | the textbook formula
    xs = rng.standard_normal((256, 6, 24, 24), dtype=np.float32)
    ys = np.empty_like(xs)

    def textbook_sigmoid():
        np.copyto(ys, xs)
        with config.textbook():
            ops.activation.sigmoid_(ys)

    row("sigmoid, LeNet conv0's output, copy + in place: kernel | textbook",
        lambda: cpu_sigmoid.sigmoid_((np.copyto(ys, xs), ys)[1]), textbook_sigmoid)  # fmt: skip

    xp = rng.random((128, 96, 54, 54), dtype=np.float32)
    yp, idx = cpu.max_pool_forward(xp, (3, 3), (2, 2), (0, 0))
    gp = rng.random(yp.shape, dtype=np.float32)
    row("max pool backward (the textbook's scatter), AlexNet pool0", lambda: cpu.max_pool_backward(gp, idx, xp.shape))

    # LeNet conv0's forward GEMM, (6 x 25) @ (25 x 147456): transposed | as written
    w2 = rng.random((6, 25), dtype=np.float32)
    c0 = rng.random((25, 256 * 576), dtype=np.float32)
    row("GEMM with 6 result rows: (B^T A^T)^T | A @ B", lambda: c0.T @ w2.T, lambda: w2 @ c0)

    # SGD on AlexNet's largest parameter, dense0 (4096 x 6400)
    w = rng.standard_normal((4096, 6400), dtype=np.float32)
    g = rng.standard_normal((4096, 6400), dtype=np.float32)

    def textbook_sgd():
        w.__isub__(np.float32(1e-4) * g)

    row("SGD update, 26M parameters: one pass | textbook w -= lr * g", lambda: cpu_sgd.axpy_(w, -1e-4, g), textbook_sgd)

    # The GoogLeNet pool once more, timed right after an (untimed) GEMM: while OpenBLAS's idle threads spin
    # (OPENBLAS_THREAD_TIMEOUT, fast/tuning.py) they take a core from it
    xp = rng.random((128, 256, 12, 12), dtype=np.float32)
    a = rng.random((512, 512), dtype=np.float32)
    after = []
    for _ in range(args.repeats):
        a @ a
        start = time.perf_counter()
        cpu_pool.max_pool_forward(xp, (3, 3), (1, 1), (1, 1))
        after.append(time.perf_counter() - start)
    alone = median_ms(lambda: cpu_pool.max_pool_forward(xp, (3, 3), (1, 1), (1, 1)), args.repeats)
    rows.append(
        ("max pool 3x3/1 forward, GoogLeNet: right after a GEMM | alone", statistics.median(after) * 1e3, alone)
    )

    print(f"# CPU kernels, {args.threads} thread(s), median of {args.repeats}; ms")
    print(f"{'kernel: A | B':72} {'A ms':>8} {'B ms':>8}")
    for what, t_new, t_old in rows:
        print(f"{what:72} {t_new:8.2f} {'' if t_old is None else f'{t_old:8.2f}':>8}")


if __name__ == "__main__":
    main()
