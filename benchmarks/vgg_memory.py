"""Peak memory of training the chapter's VGG-11 on the CPU: full width, 224x224, batch 128, a few SGD steps.

    ./dev python benchmarks/vgg_memory.py [--steps 2] [--batch-size 128] [--resize 224] [--width-divisor 1]

Random images and labels (memory does not depend on the values). Prints the resident memory after building the
network, after each forward pass and the process peak (ru_maxrss) after each step, and, for the first step, what
the recorded graph holds for backward: every array the operations saved, largest first, so a regression can be
traced to the layer and the array that caused it. Exits 1 when the peak reaches --limit-gib (default 6).
A step at full size is minutes of CPU time (about 6 TFLOPs: forward 1.9, backward twice that).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 1 << 30


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _buffer(a: np.ndarray) -> tuple[int, int]:
    """(start address, bytes) of the memory block an array views, so views of one buffer count once."""
    base = a
    while isinstance(base.base, np.ndarray):
        base = base.base
    return base.__array_interface__["data"][0], base.nbytes


def _label(f) -> str:
    return f"{type(f).__name__} {getattr(f, 'name', '')}".strip()


def saved_for_backward(out, exclude=()) -> list[tuple[int, str, str, tuple, str]]:
    """Arrays the graph behind NDArray `out` keeps alive: (bytes, function, what, shape, dtype), one per buffer,
    largest first. An activation passed between layers is listed once, as the output of the layer that made it
    (even when that layer also keeps it, e.g. a fused ReLU). Buffers in `exclude` (the parameters) are left out."""
    seen, rows, stack, visited = set(exclude), [], [out.creator], set()
    while stack:
        f = stack.pop()
        if f is None or id(f) in visited:
            continue
        visited.add(id(f))
        arrays = []
        for x in f.inputs or ():
            if x.creator is not None:
                arrays.append((_label(x.creator), "output", x.data))
                stack.append(x.creator)
        arrays += [(_label(f), k, v) for k, v in vars(f).items() if isinstance(v, np.ndarray)]
        for label, what, a in arrays:
            key = _buffer(a)
            if key in seen:
                continue
            seen.add(key)
            rows.append((key[1], label, what, tuple(a.shape), str(a.dtype)))
    return sorted(rows, reverse=True)


def trace_peaks(function_base) -> list:
    """Wrap forward and backward of every Function subclass so that each call records (phase, op, resident
    before, resident after, process peak after). The calls during which the peak grew show where it is reached."""
    events = []

    def wrap(cls, phase):
        inner = getattr(cls, phase)

        def traced(self, *args):
            before = current_rss()
            out = inner(self, *args)
            events.append((phase, _label(self), before, current_rss(), peak_rss()))
            return out

        setattr(cls, phase, traced)

    stack = list(function_base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        for phase in ("forward", "backward"):
            if phase in vars(cls):
                wrap(cls, phase)
    return events


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--resize", type=int, default=224)
    p.add_argument("--width-divisor", type=int, default=1)
    p.add_argument("--limit-gib", type=float, default=6.0)
    p.add_argument("--top", type=int, default=12, help="how many saved arrays to list")
    p.add_argument("--trace", action="store_true", help="list the operations during which the peak grew")
    args = p.parse_args()

    import minicnn as mc
    from minicnn import autograd, init, models, random
    from minicnn.loss import SoftmaxCrossEntropyLoss

    events = trace_peaks(autograd.Function) if args.trace else None

    random.seed(0)
    n, side = args.batch_size, args.resize
    net = models.vgg11(width_divisor=args.width_divisor)
    net.initialize(init=init.Xavier())
    with autograd.pause():
        net(mc.array(np.zeros((1, 1, side, side), dtype=np.float32)))  # fixes the deferred shapes
    params = list(net.collect_params().values())
    param_bytes = sum(prm.data().data.nbytes for prm in params)
    trainer = mc.Trainer(params, "sgd", {"learning_rate": 0.05})
    loss = SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(0)
    X = mc.array(rng.random((n, 1, side, side), dtype=np.float32))
    y = mc.array(rng.integers(0, 10, n).astype(np.float32))
    print(
        f"VGG-11 (width / {args.width_divisor}) at {side}x{side}, batch {n}, float32: "
        f"{sum(prm.size for prm in params):,} parameters = {param_bytes / GIB:.2f} GiB (their gradients as much again)"
    )
    print(f"resident after building: {current_rss() / GIB:.2f} GiB", flush=True)
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        with autograd.record():
            l = loss(net(X), y).sum()
        t1 = time.perf_counter()
        after_forward = current_rss()
        if step == 1:
            rows = saved_for_backward(l, exclude={_buffer(prm.data().data) for prm in params})
            total = sum(r[0] for r in rows)
            print(f"step 1: the graph holds {total / GIB:.2f} GiB in {len(rows)} arrays for backward; largest:")
            for nbytes, label, attr, shape, dtype in rows[: args.top]:
                print(f"  {nbytes / GIB:6.3f} GiB  {label:22} {attr:10} {shape} {dtype}")
            del rows
        l.backward()
        trainer.step(n)
        t2 = time.perf_counter()
        print(
            f"step {step}: loss {float(l.data) / n:.4f}, forward {t1 - t0:.1f} s, backward+update {t2 - t1:.1f} s; "
            f"resident after forward {after_forward / GIB:.2f} GiB, peak so far {peak_rss() / GIB:.2f} GiB",
            flush=True,
        )
    if events:
        print("operations during which the peak grew (phase, op, resident before -> after, peak after), GiB:")
        last = 0
        for phase, label, before, after, peak in events:
            if peak > last + (64 << 20):
                print(f"  {phase:8} {label:22} {before / GIB:5.2f} -> {after / GIB:5.2f}   peak {peak / GIB:5.2f}")
                last = peak
    peak = peak_rss()
    verdict = "under" if peak < args.limit_gib * GIB else "NOT under"
    print(f"peak RSS {peak / GIB:.2f} GiB ({peak / 2**20:,.0f} MiB): {verdict} the {args.limit_gib:g} GiB limit")
    return 0 if peak < args.limit_gib * GIB else 1


if __name__ == "__main__":
    sys.exit(main())
