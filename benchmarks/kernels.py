"""The CPU kernels one at a time, each against the plain alternative it replaced where there is one.

    ./dev python benchmarks/kernels.py [--repeats 20] [--threads 1]

The median of --repeats runs, in milliseconds, at shapes from the chapter's networks (AlexNet's conv1 and conv3 batch
chunks, its first pool, LeNet's first convolution). --threads sets numba's and BLAS's threads before they start;
1 thread gives the steadiest comparisons on a shared machine.
"""

from __future__ import annotations

import argparse
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

    # AlexNet pool0: (128, 96, 54, 54), 3x3 stride 2
    xp = rng.random((128, 96, 54, 54), dtype=np.float32)
    yp, idx = cpu.max_pool_forward(xp, (3, 3), (2, 2), (0, 0))
    gp = rng.random(yp.shape, dtype=np.float32)
    row("max pool 3x3/2 forward, AlexNet pool0", lambda: cpu.max_pool_forward(xp, (3, 3), (2, 2), (0, 0)))
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

    print(f"# CPU kernels, {args.threads} thread(s), median of {args.repeats}; ms")
    print(f"{'kernel':60} {'ms':>8} {'before':>8}")
    for what, t_new, t_old in rows:
        print(f"{what:60} {t_new:8.2f} {'' if t_old is None else f'{t_old:8.2f}':>8}")


if __name__ == "__main__":
    main()
