"""Data-parallel training on one machine: 1 process with 2 threads against 2 processes (mpiexec) with 1 thread each.

    ./dev python benchmarks/distributed.py [--networks lenet,alexnet,...] [--steps 3] [--json PATH]

For each network at the chapter's input size and global batch (VGG-11: the book's trained variant, channels / 4),
both set-ups run the same training step on one fixed batch of random images: forward and backward over the
process's rows (compute), a barrier (wait: the time one rank waits for the slower one), the gradients summed over
the ranks (`trainer.allreduce_grads()`, communication) and the SGD update (compute). Reported per set-up: the
median of --steps timed steps after one warm-up step (the slower rank's), split into those parts (each the mean
over the ranks of its median), and the bytes of gradient each rank puts into the Allreduce per step.

A second part measures MPI's Allreduce between two processes on this machine for 4 KiB to 64 MiB (the link of the
cost model in docs/distributed.md, here shared memory). A third prints what that cost model predicts for N = 2 to
64 machines like this one on 10, 25 and 100 Gbit/s Ethernet, from the measured one-process step, and checks its
communication part against the two-process run here.

The workers are this file run under mpiexec (`--worker NET` / `--probe`); they print one JSON line each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from networks import cpu_model  # noqa: E402 - a sibling script, not a package


def cpu() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores"


MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
# name -> (registry network, builder options, input side, global batch, learning rate)
CASES = {
    "lenet": ("lenet", {}, 28, 256, 0.9),
    "alexnet": ("alexnet", {}, 224, 128, 0.01),
    "vgg11-div4": ("vgg11", {"width_divisor": 4}, 224, 128, 0.05),
    "nin": ("nin", {}, 224, 128, 0.1),
    "googlenet": ("googlenet", {}, 96, 128, 0.1),
}
SETUPS = ((1, 2), (2, 1))  # (processes, threads each)
LINKS_GBIT = (10, 25, 100)
MACHINES = (2, 4, 8, 16, 32, 64)
LATENCY_S = 20e-6  # one message's start-up over TCP on Ethernet, per ring step (the alpha of the alpha-beta model)


# ---- the workers, run under mpiexec --------------------------------------------------------------------------------
def worker(name: str, steps: int) -> None:
    import numpy as np

    import minicnn as mc
    from minicnn import autograd, distributed, random
    from minicnn.cli import build_network
    from minicnn.loss import SoftmaxCrossEntropyLoss
    from minicnn.profile import random_batch

    network, options, side, batch, lr = CASES[name]
    settings = {"network": network, "options": options, "resize": side, "dtype": "float32"}
    random.seed(0)
    net = build_network(settings, mc.cpu())
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": lr}, kvstore="dist_sync")
    X, y = random_batch(batch, side, "float32", mc.cpu())
    lo, hi = distributed.shard(batch)
    X, y = mc.NDArray(X.data[lo:hi]), mc.NDArray(y.data[lo:hi])
    loss = SoftmaxCrossEntropyLoss()
    parts = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with autograd.record():
            l = loss(net(X), y).sum()
        l.backward()
        t1 = time.perf_counter()
        distributed.barrier()
        t2 = time.perf_counter()
        trainer.allreduce_grads()
        t3 = time.perf_counter()
        trainer.update(batch)
        t4 = time.perf_counter()
        parts.append((t1 - t0 + t4 - t3, t2 - t1, t3 - t2, t4 - t0))
    timed = parts[1:]
    median = [statistics.median(p[i] for p in timed) for i in range(4)]
    grads = [p.data().grad.data for p in net.collect_params().values()]
    buckets = distributed._buckets(grads)
    calls = sum(1 if len(g) > 1 else -(-g[0].nbytes // distributed.BUCKET_BYTES) for g in buckets)
    bucketed = sum(a.nbytes for g in buckets if len(g) > 1 for a in g)  # copied into a bucket and back
    per_rank = distributed.world().gather(median, root=0) if distributed.size() > 1 else [median]
    if distributed.rank() == 0:
        compute, wait, comm = (statistics.mean(r[i] for r in per_rank) for i in range(3))
        print(json.dumps({
            "network": name, "processes": distributed.size(), "rows_per_process": hi - lo, "compute_s": compute,
            "wait_s": wait, "allreduce_s": comm, "step_s": max(r[3] for r in per_rank),
            "grad_bytes": sum(g.nbytes for g in grads), "allreduce_calls": calls, "bucketed_bytes": bucketed,
            "params": int(sum(g.size for g in grads)), "dtype": str(np.dtype("float32")),
        }))  # fmt: skip


def probe() -> None:
    """Allreduce of 4 KiB to 64 MiB between the ranks: median seconds of 9 after a warm-up."""
    import numpy as np

    from minicnn import distributed

    rows = []
    for nbytes in (4 << 10, 256 << 10, 4 << 20, 16 << 20, 64 << 20):
        buf = np.ones(nbytes // 4, np.float32)
        times = []
        for _ in range(10):
            distributed.barrier()
            t = time.perf_counter()
            distributed.allreduce([buf])
            times.append(time.perf_counter() - t)
        rows.append({"bytes": nbytes, "seconds": statistics.median(times[1:])})
    src, dst = np.ones(16 << 20, np.float32), np.zeros(16 << 20, np.float32)
    copies = []
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(dst, src)
        copies.append(time.perf_counter() - t)
    if distributed.rank() == 0:
        copy_rate = src.nbytes / statistics.median(copies)
        print(json.dumps({"probe": rows, "processes": distributed.size(), "copy_bytes_per_s": copy_rate}))


# ---- the driver ---------------------------------------------------------------------------------------------------
def run(processes: int, threads: int, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [MPIEXEC, "-n", str(processes), sys.executable, str(Path(__file__).resolve()), *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"distributed.py: {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ring_seconds(grad_bytes: int, machines: int, gbit: float, calls: int, latency: float = LATENCY_S) -> float:
    """Ring Allreduce of grad_bytes in `calls` calls: 2(N-1) steps each, every step moving 1/N of the data over
    every link at once and paying one message's start-up."""
    return 2 * (machines - 1) / machines * grad_bytes / (gbit * 1e9 / 8) + calls * 2 * (machines - 1) * latency


def predict(one: dict, machines: int, gbit: float) -> tuple[float, float]:
    """(step seconds, efficiency) of `machines` machines like this one, global batch fixed: each computes
    1/N of the batch (compute taken as proportional to rows), then sums the gradient in as many calls as minicnn
    makes (its buckets and the pieces of large gradients), plus the step's two small sums (loss and accuracy, the
    stop request)."""
    calls = one["allreduce_calls"] + 2
    step = one["compute_s"] / machines + ring_seconds(one["grad_bytes"], machines, gbit, calls)
    return step, one["step_s"] / (machines * step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default=",".join(CASES))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", metavar="PATH", help="also write every measurement to PATH")
    ap.add_argument("--from-json", metavar="PATH", help="print the tables from the measurements a --json run wrote")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps)
    if args.probe:
        return probe()

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        names = list(dict.fromkeys(r["network"] for r in saved["runs"]))
        results = {
            n: {(r["processes"], 3 - r["processes"]): r for r in saved["runs"] if r["network"] == n} for n in names
        }
        print(f"CPU: {saved['cpu']}; float32; measurements from {args.from_json}\n")
        return report(names, results, saved["link"])
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"distributed.py: unknown network {unknown[0]!r}; choose from {', '.join(CASES)}")
    print(f"CPU: {cpu()}; float32; median of {args.steps} steps after 1 warm-up step\n")
    results = {n: {s: run(*s, ["--worker", n, "--steps", str(args.steps)]) for s in SETUPS} for n in names}
    link = run(2, 1, ["--probe"])
    if args.json:
        flat = [r for n in names for r in results[n].values()]
        Path(args.json).write_text(json.dumps({"cpu": cpu(), "runs": flat, "link": link}, indent=1) + "\n")
    report(names, results, link)


def report(names: list[str], results: dict, link: dict) -> None:
    """The tables: each set-up's step, MPI's Allreduce here, the predictions, the check against two processes."""
    print("| network | params | gradient bytes per step | 1 process x 2 threads: step | 2 processes x 1 thread: "
          "step = compute + wait + allreduce | speed-up |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for n in names:
        one, two = results[n][(1, 2)], results[n][(2, 1)]
        ms = {k: v * 1e3 for k, v in two.items() if k.endswith("_s")}
        print(
            f"| {n} | {one['params'] / 1e6:.2f} M | {one['grad_bytes'] / 2**20:.1f} MiB | "
            f"{one['step_s'] * 1e3:.0f} ms | {ms['step_s']:.0f} = {ms['compute_s']:.0f} + {ms['wait_s']:.0f} + "
            f"{ms['allreduce_s']:.1f} ms | {one['step_s'] / two['step_s']:.2f}x |"
        )
    print("\nMPI Allreduce between the 2 processes on this machine (shared memory):")
    for row in link["probe"]:
        rate = row["bytes"] / row["seconds"] / 1e9
        print(f"  {row['bytes'] / 1024:8.0f} KiB: {row['seconds'] * 1e3:7.3f} ms, {rate:5.2f} GB/s")
    big = link["probe"][-1]
    shm_gbit = big["bytes"] / big["seconds"] * 8 / 1e9 / (2 * (2 - 1) / 2)  # the ring formula solved for bandwidth

    print(
        "\nPredicted efficiency (one process's step time / (N x step time)), global batch fixed, for N machines like "
        f"this one; ring Allreduce with {LATENCY_S * 1e6:.0f} us per message and step, once per call (the buckets and "
        "pieces of the gradient, and the step's two small sums); compute taken as linear in rows:"
    )
    header = " | ".join(f"N={m}" for m in MACHINES)
    for gbit in LINKS_GBIT:
        print(f"\n{gbit} Gbit/s | {header}\n|---|" + "---:|" * len(MACHINES))
        for n in names:
            cells = " | ".join(f"{predict(results[n][(1, 2)], m, gbit)[1]:.0%}" for m in MACHINES)
            print(f"| {n} | {cells} |")
    latency = link["probe"][0]["seconds"] / 2  # a 4 KiB Allreduce of two ranks: 2(N-1) = 2 message start-ups
    print(
        f"\nCheck on this machine: two processes sharing its {os.cpu_count()} cores; the link is the shared-memory "
        f"Allreduce above ({shm_gbit:.0f} Gbit/s at 64 MiB, {latency * 1e6:.0f} us per message at 4 KiB); predicted "
        "allreduce = the ring formula + the start-up of each call + copying the small gradients into their buckets "
        f"and back ({link['copy_bytes_per_s'] / 1e9:.1f} GB/s, np.copyto of 64 MiB):"
    )
    print("| network | calls | bucketed | predicted allreduce | measured allreduce | measured compute (2 x 1 thread) |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in names:
        two = results[n][(2, 1)]
        calls, bucketed = two["allreduce_calls"], two["bucketed_bytes"]
        predicted = (
            ring_seconds(two["grad_bytes"], 2, shm_gbit, calls, latency) + 2 * bucketed / link["copy_bytes_per_s"]
        )
        measured = f"{two['allreduce_s'] * 1e3:.1f} ms | {two['compute_s'] * 1e3:.0f} ms"
        print(f"| {n} | {calls} | {bucketed / 2**20:.1f} MiB | {predicted * 1e3:.1f} ms | {measured} |")


if __name__ == "__main__":
    main()
