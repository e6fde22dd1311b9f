"""The CPU kernels one at a time, each against the plain alternative it replaced where there is one.

    ./dev python benchmarks/kernels.py [--repeats 20] [--threads 1]

The median of --repeats runs, in milliseconds, at shapes from the chapter's networks (AlexNet's conv1 and conv3 batch
chunks, its first pool, LeNet's first convolution). --threads sets numba's and BLAS's threads before they start;
1 thread gives the steadiest comparisons on a shared machine.
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


def window_max_pool():
    """The max-pool forward kernel that session 6's replaced, as it was (`git show 00048c7:minicnn/backend/cpu.py`):
    each plane in a -inf-framed buffer, then one window at a time, its pixels scanned with compares and selects.
    Same results; for the 'before' column. (The clipped, branching scan before it: `git show 43af934`.)"""
    import numpy as np
    from numba import njit, prange

    @njit(inline="always")
    def _window_max(src, r0, c0, kh, kw, best, at, w_, ph, pw):
        # the window at (r0, c0) in row-major order; strict '>' keeps the first maximum
        for i in range(kh):
            for j in range(kw):
                v = src[r0 + i, c0 + j]
                take = v > best
                best = v if take else best
                at = (r0 + i - ph) * w_ + c0 + j - pw if take else at
        return best, at

    @njit(parallel=True, cache=True)
    def kernel(x, kh, kw, sh, sw, ph, pw, out, idx):
        # Planes in 64 parallel chunks; the running maximum starts at the window's first pixel inside the image.
        n_, c_, h_, w_ = x.shape
        oh, ow = out.shape[2], out.shape[3]
        planes = n_ * c_
        chunks = min(planes, 64)
        for chunk in prange(chunks):
            buf = np.full((h_ + 2 * ph, w_ + 2 * pw), -np.inf, dtype=x.dtype)
            for nc in range(chunk * planes // chunks, (chunk + 1) * planes // chunks):
                plane = x[nc // c_, nc % c_]
                for r in range(h_):
                    buf[ph + r, pw : pw + w_] = plane[r]
                dst, arg = out[nc // c_, nc % c_], idx[nc // c_, nc % c_]
                for y in range(oh):
                    r0 = y * sh
                    i_first = max(r0 - ph, 0)
                    for xo in range(ow):
                        c0 = xo * sw
                        j_first = max(c0 - pw, 0)
                        best, at = plane[i_first, j_first], i_first * w_ + j_first
                        if kh == 3 and kw == 3:
                            best, at = _window_max(buf, r0, c0, 3, 3, best, at, w_, ph, pw)
                        elif kh == 2 and kw == 2:
                            best, at = _window_max(buf, r0, c0, 2, 2, best, at, w_, ph, pw)
                        else:
                            best, at = _window_max(buf, r0, c0, kh, kw, best, at, w_, ph, pw)
                        dst[y, xo] = best
                        arg[y, xo] = at

    def run(x, kernel_size, stride, pad, out, idx):
        kernel(x, *kernel_size, *stride, *pad, out, idx)

    return run


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
    importlib.import_module("minicnn")  # first: it sets OpenBLAS's spin time, which numpy's import fixes
    import numpy as np

    from minicnn.backend import cpu, epilogue

    rng = np.random.default_rng(0)
    rows = []

    def row(what: str, new, old=None) -> None:
        t_new = median_ms(new, args.repeats)
        t_old = median_ms(old, args.repeats) if old is not None else None
        rows.append((what, t_new, t_old))

    # AlexNet conv1, one 32 MiB chunk: 5 samples, 96 channels, 26x26, 5x5 kernel, padding 2
    x = rng.random((5, 96, 26, 26), dtype=np.float32)
    window = ((5, 5), (1, 1), (2, 2))
    cols = cpu.im2col(x, *window)
    row("im2col, conv1 chunk: reused buffer | fresh array", lambda: cpu.im2col(x, *window, out=cols),
        lambda: cpu.im2col(x, *window))  # fmt: skip
    dx = np.empty_like(x)
    row("col2im, conv1 chunk: into the gradient | fresh array", lambda: cpu.col2im(cols, x.shape, *window, out=dx),
        lambda: cpu.col2im(cols, x.shape, *window))  # fmt: skip

    # Stride-1 windows: the framed kernels | the general ones (cpu.USE_FRAMED), at AlexNet conv1's chunk above and
    # at GoogLeNet's 5x5 layer on 12x12 planes (32 channels, whole batch)
    def general(f):
        def run():
            cpu.USE_FRAMED = False
            try:
                f()
            finally:
                cpu.USE_FRAMED = True

        return run

    xg = rng.random((128, 32, 12, 12), dtype=np.float32)
    wg = ((5, 5), (1, 1), (2, 2))
    cg, dg = cpu.im2col(xg, *wg), np.empty_like(xg)
    for what, xs, win, cs, ds in [
        ("AlexNet conv1 chunk", x, window, cols, dx),
        ("GoogLeNet 5x5 on 12x12", xg, wg, cg, dg),
    ]:
        im = lambda xs=xs, win=win, cs=cs: cpu.im2col(xs, *win, out=cs)  # noqa: E731
        c2i = lambda xs=xs, win=win, cs=cs, ds=ds: cpu.col2im(cs, xs.shape, *win, out=ds)  # noqa: E731
        row(f"im2col, {what}: framed | general", im, general(im))
        row(f"col2im, {what}: framed | general", c2i, general(c2i))

    # The epilogues at AlexNet conv0's chunk (23 samples, 96 channels, 54x54): fused kernel | plain NumPy
    n, o, q = 23, 96, 54 * 54
    y2 = rng.standard_normal((o, n * q), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    out = np.empty((n, o, q), np.float32)
    row("bias + relu + to NCHW: fused | NumPy", lambda: cpu.bias_act(y2, b, "relu", out),
        lambda: epilogue.bias_act(y2, b, "relu", out))  # fmt: skip
    y = np.maximum(rng.standard_normal((n, o, q), dtype=np.float32), 0)
    gy = rng.standard_normal((n, o, q), dtype=np.float32)
    g2 = np.empty((o, n * q), np.float32)
    gb = np.zeros(o, np.float32)
    row("relu grad + bias grad + to (O, N*P): fused | NumPy", lambda: cpu.act_grad(y, gy, "relu", g2, gb),
        lambda: epilogue.act_grad(y, gy, "relu", g2, gb))  # fmt: skip

    # Max pooling: AlexNet pool0 (128, 96, 54, 54), 3x3 stride 2; GoogLeNet inception pools (128, 256, 12, 12) and
    # (128, 512, 6, 6), 3x3 stride 1 padding 1; VGG-11's first pool at batch 32, 2x2 stride 2
    old_pool = window_max_pool()
    for what, shape, window in [
        ("AlexNet pool0", (128, 96, 54, 54), ((3, 3), (2, 2), (0, 0))),
        ("GoogLeNet 3x3/1 pad 1", (128, 256, 12, 12), ((3, 3), (1, 1), (1, 1))),
        ("GoogLeNet 3x3/1 pad 1 on 6x6", (128, 512, 6, 6), ((3, 3), (1, 1), (1, 1))),
        ("VGG-11 pool0 at batch 32", (32, 64, 224, 224), ((2, 2), (2, 2), (0, 0))),
    ]:
        xp = rng.random(shape, dtype=np.float32)
        yp, idx = cpu.max_pool_forward(xp, *window)
        y_old, idx_old = np.empty_like(yp), np.empty_like(idx)
        old_pool(xp, *window, y_old, idx_old)
        assert np.array_equal(yp, y_old) and np.array_equal(idx, idx_old)
        k, s = window[0][0], window[1][0]
        new = "2x2 kernel" if window == ((2, 2), (2, 2), (0, 0)) else "runs"
        row(f"max pool {k}x{k}/{s} forward, {what}: {new} | windows",
            lambda xp=xp, window=window: cpu.max_pool_forward(xp, *window),
            lambda xp=xp, window=window, y=y_old, i=idx_old: old_pool(xp, *window, y, i))  # fmt: skip

    # LeNet's pools, 2x2 stride 2: the kernel for those windows | the general one (runs)
    def general_pool(xp, window):
        cpu.USE_POOL_2X2 = False
        try:
            return cpu.max_pool_forward(xp, *window)
        finally:
            cpu.USE_POOL_2X2 = True

    for what, shape in [("LeNet pool0", (256, 6, 24, 24)), ("LeNet pool1", (256, 16, 8, 8))]:
        xp = rng.random(shape, dtype=np.float32)
        window = ((2, 2), (2, 2), (0, 0))
        row(f"max pool 2x2/2 forward, {what}: 2x2 kernel | runs",
            lambda xp=xp, window=window: cpu.max_pool_forward(xp, *window),
            lambda xp=xp, window=window: general_pool(xp, window))  # fmt: skip

    # The sigmoid of LeNet conv0's output, in place (from a copy, both sides): cpu_sigmoid | NumPy's formula
    xs = rng.standard_normal((256, 6, 24, 24), dtype=np.float32)
    ys = np.empty_like(xs)
    row("sigmoid, LeNet conv0's output, copy + in place: kernel | NumPy",
        lambda: cpu.sigmoid_((np.copyto(ys, xs), ys)[1]),
        lambda: epilogue.sigmoid_((np.copyto(ys, xs), ys)[1], np))  # fmt: skip

    xp = rng.random((128, 96, 54, 54), dtype=np.float32)
    yp, idx = cpu.max_pool_forward(xp, (3, 3), (2, 2), (0, 0))
    gp = rng.random(yp.shape, dtype=np.float32)
    row("max pool backward, AlexNet pool0", lambda: cpu.max_pool_backward(gp, idx, xp.shape))

    # LeNet conv0's forward GEMM, (6 x 25) @ (25 x 147456): transposed | as written
    w2 = rng.random((6, 25), dtype=np.float32)
    c0 = rng.random((25, 256 * 576), dtype=np.float32)
    row("GEMM with 6 result rows: (B^T A^T)^T | A @ B", lambda: c0.T @ w2.T, lambda: w2 @ c0)

    # SGD on AlexNet's largest parameter, dense0 (4096 x 6400)
    w = rng.standard_normal((4096, 6400), dtype=np.float32)
    g = rng.standard_normal((4096, 6400), dtype=np.float32)

    def numpy_sgd():
        w.__isub__(np.float32(1e-4) * g)

    row("SGD update, 26M parameters: one pass | w -= lr * g", lambda: cpu.axpy_(w, -1e-4, g), numpy_sgd)

    # The GoogLeNet pool once more, timed right after an (untimed) GEMM: while OpenBLAS's idle threads spin
    # (OPENBLAS_THREAD_TIMEOUT, minicnn/__init__.py) they take a core from it
    xp = rng.random((128, 256, 12, 12), dtype=np.float32)
    a = rng.random((512, 512), dtype=np.float32)
    after = []
    for _ in range(args.repeats):
        a @ a
        start = time.perf_counter()
        cpu.max_pool_forward(xp, (3, 3), (1, 1), (1, 1))
        after.append(time.perf_counter() - start)
    alone = median_ms(lambda: cpu.max_pool_forward(xp, (3, 3), (1, 1), (1, 1)), args.repeats)
    rows.append(
        ("max pool 3x3/1 forward, GoogLeNet: right after a GEMM | alone", statistics.median(after) * 1e3, alone)
    )

    print(f"# CPU kernels, {args.threads} thread(s), median of {args.repeats}; ms")
    print(f"{'kernel':72} {'ms':>8} {'before':>8}")
    for what, t_new, t_old in rows:
        print(f"{what:72} {t_new:8.2f} {'' if t_old is None else f'{t_old:8.2f}':>8}")


if __name__ == "__main__":
    main()
