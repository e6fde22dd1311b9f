"""LeNet's training step and chapter epoch wherever minicnn is run: both import orders, the command line, a Jupyter
kernel, both environments, and a first run on an empty kernel cache.

    ./dev python benchmarks/where_it_runs.py [--rounds 2] [--steps 100] [--no-first-run]

Forms, each in a fresh process of the environment's Python (current, .venv: numpy 2.x; MXNet env, .venv-ref: numpy
1.23.5, numba 0.60):
- `numpy first`: a user's script, `import numpy as np` and then `import minicnn`;
- `minicnn first`: the same script with the imports the other way round;
- `python -m minicnn`: `python -m minicnn train lenet --epochs 2` (its epoch line; it times no single step);
- `Jupyter kernel`: the numpy-first script sent to an IPython kernel of the environment (where it has ipykernel).
Step: the median of --steps timed SGD steps (batch 256, random images, after 5 warm-up steps). Epoch: the second
of two chapter epochs on Fashion-MNIST (60,000 training images and the 10,000-image test pass, as `train_ch5`
times it). --rounds runs every form that many times, alternating; each cell lists the rounds' values.
First run: `python -m minicnn train lenet --epochs 2` with NUMBA_CACHE_DIR pointing at an empty directory, so that
numba compiles every kernel LeNet uses: the seconds from start to the first epoch line, and both epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from networks import cpu_model, openblas_kernels  # benchmarks/ is this script's directory, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = {"current": ROOT / ".venv/bin/python", "MXNet env": ROOT / ".venv-ref/bin/python"}
FORMS = ("numpy first", "minicnn first", "python -m minicnn", "Jupyter kernel")
EPOCH = re.compile(r"epoch (\d+), .* time ([\d.]+) sec")


def measure(steps: int) -> dict:
    """The step and the epoch, in this process (minicnn already imported in the order being measured)."""
    import numpy as np

    import minicnn as mc
    from minicnn import autograd, init, models, random
    from minicnn.cli import make_loaders
    from minicnn.data import load_fashion_mnist
    from minicnn.fast import tuning
    from minicnn.profile import random_batch
    from minicnn.train import train_ch5

    random.seed(0)
    net = models.get("lenet").build()
    net.initialize(init=init.Xavier())
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    loss = mc.loss.SoftmaxCrossEntropyLoss()
    X, y = random_batch(256, 28, "float32", mc.cpu())
    times = []
    for i in range(5 + steps):
        start = time.perf_counter()
        with autograd.record():
            l = loss(net(X), y).sum()
        l.backward()
        trainer.step(256)
        if i >= 5:
            times.append(time.perf_counter() - start)
    settings = {"batch_size": 256, "resize": None, "dtype": "float32"}
    train_iter, test_iter = make_loaders(load_fashion_mnist(), settings, mc.cpu(), 0)
    net = models.get("lenet").build()
    net.initialize(init=init.Xavier())
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.9})
    results = train_ch5(net, train_iter, test_iter, 256, trainer, mc.cpu(), 2, progress=False, log=lambda line: None)
    return {"step_ms": float(np.median(times)) * 1e3, "epoch_s": results[-1].seconds, "tuning": tuning.state()}


def worker_code(form: str, steps: int) -> str:
    first = (
        "import numpy as np\nimport minicnn\n" if form != "minicnn first" else "import minicnn\nimport numpy as np\n"
    )
    return (
        first
        + f"import sys, json\nsys.path.insert(0, {str(ROOT / 'benchmarks')!r})\nimport where_it_runs\n"
        + f"print('RESULT ' + json.dumps(where_it_runs.measure({steps})))\n"
    )


def run_script(python: Path, form: str, steps: int) -> dict | None:
    out = subprocess.run(
        [str(python), "-c", worker_code(form, steps)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"# {python} {form} failed: {out.stderr[-500:]}", file=sys.stderr)
    return None


def run_kernel(python: Path, steps: int) -> dict | None:
    """The numpy-first script in an IPython kernel of `python`'s environment, as a notebook cell runs it."""
    check = subprocess.run([str(python), "-c", "import ipykernel, jupyter_client"], capture_output=True, check=False)
    if check.returncode != 0:
        return None
    code = (
        "import jupyter_client, json, sys\n"
        "km, kc = jupyter_client.manager.start_new_kernel(kernel_name='python3')\n"
        "out = []\n"
        "hook = lambda m: out.append(m['content'].get('text', '')) if m['msg_type'] == 'stream' else None\n"
        f"kc.execute_interactive({worker_code('numpy first', steps)!r}, timeout=600, output_hook=hook)\n"
        "kc.stop_channels(); km.shutdown_kernel(now=True)\n"
        "print(''.join(out))\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"# {python} Jupyter kernel failed: {out.stderr[-500:]}", file=sys.stderr)
    return None


def run_cli(python: Path, env: dict | None = None) -> dict | None:
    """python -m minicnn train lenet --epochs 2: seconds to the first epoch line, and each epoch's time."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), "-m", "minicnn", "train", "lenet", "--epochs", "2", "--seed", "0", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    epochs, first_line = [], None
    for line in proc.stdout:
        m = EPOCH.search(line)
        if m:
            first_line = first_line or time.perf_counter() - start
            epochs.append(float(m.group(2)))
    proc.wait()
    if proc.returncode != 0 or len(epochs) != 2:
        print(f"# {python} -m minicnn failed: {proc.stderr.read()[-500:]}", file=sys.stderr)
        return None
    return {"epoch_s": epochs[-1], "epochs": epochs, "to_first_epoch_s": first_line}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--no-first-run", action="store_true", help="skip the runs on an empty kernel cache")
    args = ap.parse_args()
    blas = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    print(f"# {cpu_model()}, {os.cpu_count()} cores; {blas}")
    for env, python in ENVIRONMENTS.items():
        print(f"# {env}: OpenBLAS runs its {openblas_kernels(python)} kernels")
    cells: dict = {}
    for _ in range(args.rounds):
        for env, python in ENVIRONMENTS.items():
            for form in FORMS:
                if form == "python -m minicnn":
                    r = run_cli(python)
                elif form == "Jupyter kernel":
                    r = run_kernel(python, args.steps)
                else:
                    r = run_script(python, form, args.steps)
                if r is not None:
                    cells.setdefault((env, form), []).append(r)
    print("\n| environment | form | step, ms | epoch, s |")
    print("|---|---|---|---|")
    for (env, form), runs in cells.items():
        steps = " ".join(f"{r['step_ms']:.2f}" for r in runs if "step_ms" in r) or "-"
        digits = 1 if form == "python -m minicnn" else 2  # the command line prints its epoch time to 0.1 s
        epochs = " ".join(f"{r['epoch_s']:.{digits}f}" for r in runs)
        print(f"| {env} | {form} | {steps} | {epochs} |")
    if args.no_first_run:
        return
    print("\nFirst run, empty kernel cache: `python -m minicnn train lenet --epochs 2`")
    print("| environment | to the first epoch line, s | epoch 1, s | epoch 2, s |")
    print("|---|---|---|---|")
    for env, python in ENVIRONMENTS.items():
        with tempfile.TemporaryDirectory() as cache:
            r = run_cli(python, dict(os.environ, NUMBA_CACHE_DIR=cache))
        if r is not None:
            print(f"| {env} | {r['to_first_epoch_s']:.1f} | {r['epochs'][0]:.1f} | {r['epochs'][1]:.1f} |")


if __name__ == "__main__":
    main()
