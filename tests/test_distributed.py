"""Data-parallel training over MPI (minicnn/distributed.py): N processes train as one process would.

The multi-process tests start `mpiexec -n 2` (MPICH from PyPI, in the test environment) on the tiny synthetic
Fashion-MNIST of conftest, in float64, and compare with one process: the parameters agree to 1e-12 of each
parameter's largest value (they differ only in the order of additions), and an interrupted and resumed run is
bit-identical to an uninterrupted one of the same number of processes. The rest runs in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ROOT, cli_env

import minicnn as mc
from minicnn import autograd, checkpoint, distributed, ops
from minicnn import random as mc_random
from minicnn.data import DataLoader

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
try:
    import mpi4py  # noqa: F401

    HAVE_MPI = MPIEXEC is not None
except ImportError:
    HAVE_MPI = False
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="mpi4py and mpiexec are not installed (pip install 'minicnn[mpi]')")

# float64 LeNet on 45 images in batches of 11: 4 batches split 5 + 6, then a last batch of 1 image that rank 0 has
# no row of; 2 epochs.
UNEVEN = ("--limit", "45", "--batch-size", "11", "--epochs", "2", "--seed", "4", "--dtype", "float64", "--no-progress")


def mpirun(n: int, *args, env: dict | None = None, timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    """`mpiexec -n n python -m minicnn *args`; `args` may hold ':'-separated sections for other ranks."""
    return subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, "-m", "minicnn", *map(str, args)],
        cwd=ROOT, env=cli_env(**(env or {})), capture_output=True, text=True, timeout=timeout, check=False, **popen,
    )  # fmt: skip


def problems(stderr: str) -> list[str]:
    """stderr without the synthetic data's warnings and the compiling notice (a busy machine can take a second)."""
    ignored = ("minicnn: warning:", "compiling kernels")
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(ignored)]


def epoch_lines(stdout: str) -> list[str]:
    return re.findall(r"epoch \d+, loss [^,]+, train acc [^,]+, test acc [\d.]+", stdout)


def assert_close_to_one_process(one: dict, many: dict, rel: float = 1e-12) -> None:
    assert list(one) == list(many)
    for name, a in one.items():
        scale = float(np.max(np.abs(a)))
        assert float(np.max(np.abs(a - many[name]))) <= rel * scale, name


def params(path) -> dict[str, np.ndarray]:
    return checkpoint.load(path)[1]


# ---- the arithmetic of sharding, in this process ------------------------------------------------------------------
@pytest.mark.parametrize(("n", "ranks"), [(11, 2), (10, 2), (1, 2), (7, 3), (256, 8), (0, 2)])
def test_shards_cover_every_row_once_in_rank_order_with_sizes_differing_by_at_most_one(n, ranks):
    bounds = [distributed.shard(n, r, ranks) for r in range(ranks)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(bounds[r][1] == bounds[r + 1][0] for r in range(ranks - 1))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_a_sharded_loader_gives_each_rank_its_rows_of_the_same_global_batches():
    images = np.arange(23 * 2 * 2, dtype=np.uint8).reshape(23, 2, 2) % 251
    labels = np.arange(23)
    whole = [y.tolist() for _, y in DataLoader(images, labels, 5, shuffle=True, seed=9)]
    parts = [
        [y.tolist() for _, y in DataLoader(images, labels, 5, shuffle=True, seed=9, shard=(r, 3))] for r in range(3)
    ]
    assert [sum((p[b] for p in parts), []) for b in range(len(whole))] == whole
    assert mc_random.batch_rows() is None  # the loader says nothing about rows once its epoch is over


def test_dropout_on_a_shard_uses_the_rows_of_the_mask_one_process_draws_for_the_whole_batch():
    x = mc.array(np.ones((7, 3, 2, 2)), dtype="float64")
    mc_random.seed(11)
    with autograd.record():
        whole = ops.dropout(x, 0.5).asnumpy()
    for lo, hi in [(0, 3), (3, 7), (7, 7)]:
        mc_random.seed(11)
        mc_random.set_batch_rows((lo, hi, 7))
        try:
            with autograd.record():
                part = ops.dropout(mc.array(np.ones((hi - lo, 3, 2, 2)), dtype="float64"), 0.5).asnumpy()
        finally:
            mc_random.set_batch_rows(None)
        np.testing.assert_array_equal(part, whole[lo:hi])
    mc_random.seed(None)


def test_small_gradients_share_a_bucket_and_a_large_one_goes_alone():
    small = [np.zeros(1000, np.float32) for _ in range(3)]
    large = np.zeros(distributed.BUCKET_BYTES // 4 + 1, np.float32)
    other = np.zeros(10, np.float64)
    groups = distributed._buckets([*small, large, small[0], other])
    assert [len(g) for g in groups] == [3, 1, 1, 1]  # a dtype change starts a new bucket too
    assert groups[1][0] is large


def test_outside_mpiexec_dist_sync_trains_as_the_default_kvstore_and_never_imports_mpi4py():
    assert not distributed.launched() and distributed.size() == 1 and distributed.rank() == 0
    p = mc.nn.Dense(2)
    p.initialize()
    trainer = mc.Trainer(p.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="dist_sync")
    assert not trainer.distributed
    assert "mpi4py.MPI" not in sys.modules


def test_an_unknown_kvstore_is_refused_naming_the_ones_there_are():
    with pytest.raises(ValueError, match="unknown kvstore 'dist_async'.*'dist_sync'"):
        mc.Trainer([], "sgd", kvstore="dist_async")


def test_an_empty_batch_gives_loss_zero_and_zero_gradients():
    """A rank whose shard of a short last batch is empty still joins the step, with nothing to add."""
    net = mc.nn.Sequential()
    net.add(mc.nn.Conv2D(2, kernel_size=3, activation="relu"), mc.nn.MaxPool2D(2), mc.nn.Dense(3))
    net.initialize()
    net(mc.array(np.zeros((1, 1, 8, 8))))
    with autograd.record():
        loss = mc.loss.SoftmaxCrossEntropyLoss()(net(mc.array(np.zeros((0, 1, 8, 8)))), mc.array(np.zeros(0))).sum()
    loss.backward()
    assert float(loss.asnumpy()) == 0.0
    assert all(not p.grad().asnumpy().any() for p in net.collect_params().values())


def test_under_mpiexec_without_mpi4py_training_is_one_line_and_exit_2(tmp_path, tiny_fashion_dir):
    fake = tmp_path / "mpi4py"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    env = cli_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", PMI_SIZE="2", PMI_RANK="0")
    r = subprocess.run(
        [sys.executable, "-m", "minicnn", "train", "lenet", "--data-dir", tiny_fashion_dir, "--limit", "16"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert problems(r.stderr) == [
        "minicnn: error: this process was started by mpiexec, but mpi4py is not installed: pip install "
        "'minicnn[mpi]' (mpi4py and MPICH), then run mpiexec from that environment"
    ]


# ---- two processes ------------------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize(
    "network",
    [
        ("lenet",),  # uneven shards and a last batch of one image
        ("nin", "--resize", "96"),  # dropout
        ("googlenet", "--resize", "32"),  # concat
    ],
    ids=lambda n: n[0],
)
def test_two_processes_end_with_the_parameters_of_one_process_to_1e_12(network, tiny_fashion_dir, tmp_path):
    args = ("train", *network, "--data-dir", tiny_fashion_dir, *UNEVEN)
    if network[0] != "lenet":
        args = (*args, "--epochs", "1", "--limit", "23")  # two batches of 11 and one of 1: three steps
    one = mpirun(1, *args, "--save", tmp_path / "one.npz")
    two = mpirun(2, *args, "--save", tmp_path / "two.npz")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert_close_to_one_process(params(tmp_path / "one.npz"), params(tmp_path / "two.npz"))
    assert epoch_lines(two.stdout) == epoch_lines(one.stdout)
    assert "2 processes, 5 or 6 images each per batch" in two.stdout
    assert two.stdout.count("training on") == 1  # rank 0 alone prints


@needs_mpi
def test_a_users_script_with_kvstore_dist_sync_trains_as_one_process_with_dropout_concat_and_momentum(tmp_path):
    script = ROOT / "tests" / "distributed_worker.py"
    for n in (1, 2):
        r = subprocess.run(
            [MPIEXEC, "-n", str(n), sys.executable, str(script), str(tmp_path / f"{n}.npz")],
            cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    one, two = dict(np.load(tmp_path / "1.npz")), dict(np.load(tmp_path / "2.npz"))
    assert_close_to_one_process(one, two)


STALE_SCRIPT = """
import json
import sys
import numpy as np
import minicnn as mc
from minicnn import distributed

rank = distributed.rank()
a, b = mc.nn.Parameter("a", (2,)), mc.nn.Parameter("b", (2,))
for p, v in ((a, [1.0, 2.0]), (b, [3.0, 4.0])):
    p.initialize()
    p.set_data(np.array(v))
trainer = mc.Trainer([a, b], "sgd", {"learning_rate": 0.5, "momentum": 0.9}, kvstore="dist_sync")
x = mc.nd.array([1.0, -1.0])

def backward(used):
    with mc.autograd.record():
        loss = sum((p.data() * x).sum() for p in used)
    loss.backward()

backward([a, b])
trainer.step(2)
after_one = b.data().asnumpy().tolist()
backward([a, b] if rank == 0 else [a])  # b's gradient comes from rank 0 alone
trainer.step(2, ignore_stale_grad=True)
backward([a])  # no rank reached b
try:
    trainer.step(2)
    status = "stepped"
except UserWarning:
    status = "refused"
result = [status, after_one, a.data().asnumpy().tolist(), b.data().asnumpy().tolist()]
with open(f"{sys.argv[1]}.{rank}", "w") as f:  # a file per rank: the ranks' prints may interleave
    json.dump(result, f)
"""


@needs_mpi
def test_ranks_agree_on_stale_gradients_a_rank_without_one_adds_zeros_and_all_refuse_together(tmp_path):
    out = tmp_path / "result"
    r = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", STALE_SCRIPT, str(out)],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    results = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in (0, 1)]
    assert len(results) == 2 and results[0] == results[1], results  # the same values and decision on each rank
    status, after_one, _, b = results[0]
    assert status == "refused"
    # the second step's gradient for b is x from rank 0 plus zeros, over the batch of 2: v = 0.9 v - 0.5 x / 2
    v1 = [-0.5 * 2 * xi / 2 for xi in (1.0, -1.0)]
    expected = [w + 0.9 * v + (-0.5 * xi / 2) for w, v, xi in zip(after_one, v1, (1.0, -1.0))]
    np.testing.assert_allclose(b, expected, rtol=1e-6)  # float32 parameters


@needs_mpi
def test_an_interrupt_on_one_rank_stops_all_and_the_resumed_run_is_bit_identical(tiny_fashion_dir, tmp_path):
    args = ("train", "lenet", "--data-dir", tiny_fashion_dir, *UNEVEN)
    full = mpirun(2, *args, "--save", tmp_path / "full.npz")
    assert full.returncode == 0, full.stderr
    path = tmp_path / "run.npz"
    rank0 = (*args, "--save", path)
    # MPMD: rank 1 alone gets the test hook, which sends it a real SIGINT at its 3rd stop check
    first = subprocess.run(
        [MPIEXEC, "-n", "1", sys.executable, "-m", "minicnn", *map(str, rank0), ":",
         "-n", "1", "-env", "MINICNN_TEST_INTERRUPT_AFTER", "3", sys.executable, "-m", "minicnn", *map(str, rank0)],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert first.returncode == 130, first.stderr
    assert problems(first.stderr) == [
        f"minicnn: interrupted in epoch 1 after batch 3; saved the training state to {path}; "
        f"continue with: mpiexec -n 2 python -m minicnn train lenet --resume {path}"
    ]
    second = mpirun(2, "train", "lenet", "--resume", path, "--no-progress")
    assert second.returncode == 0, second.stderr
    a, b = params(tmp_path / "full.npz"), params(path)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert epoch_lines(first.stdout) + epoch_lines(second.stdout) == epoch_lines(full.stdout)


@needs_mpi
def test_ctrl_c_to_mpiexec_saves_one_checkpoint_and_every_rank_exits_130(tiny_fashion_dir, tmp_path):
    path = tmp_path / "ctrl-c.npz"
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "minicnn", "train", "lenet", "--data-dir", str(tiny_fashion_dir),
           "--batch-size", "8", "--epochs", "500", "--seed", "1", "--no-progress", "--save", str(path)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 1,"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ours = [line for line in problems(err) if not line.startswith("[mpiexec@")]  # MPICH's: "Sending Ctrl-C ..."
    assert len(ours) == 2 and ours[0].startswith("minicnn: stopping after this step")
    assert ours[1].startswith("minicnn: interrupted in epoch") and str(path) in ours[1]
    assert checkpoint.load(path)[0]["train"]["epoch"] >= 1


@needs_mpi
def test_a_nan_loss_stops_every_rank_at_the_same_batch_with_exit_1(tiny_fashion_dir):
    vgg = ("vgg11", "--width-divisor", "16", "--resize", "32", "--limit", "32", "--batch-size", "16", "--seed", "1")
    one = mpirun(1, "train", *vgg, "--data-dir", tiny_fashion_dir, "--epochs", "3", "--lr", "1000")
    two = mpirun(2, "train", *vgg, "--data-dir", tiny_fashion_dir, "--epochs", "3", "--lr", "1000")
    assert one.returncode == two.returncode == 1
    [line] = problems(two.stderr)
    assert line.startswith("minicnn: training diverged: the loss became") and line == problems(one.stderr)[0]


def _rank_pid(rank: int, marker: str, timeout: float = 60) -> int:
    """The pid of the process of rank `rank` whose command line holds `marker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    env = (proc / "environ").read_bytes().split(b"\0")
                    if f"PMI_RANK={rank}".encode() in env:
                        return int(proc.name)
            except (OSError, ValueError):
                continue
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} process with {marker} in its command line")


@needs_mpi
@pytest.mark.parametrize("how", ["killed", "hangs"])
def test_a_rank_that_dies_or_hangs_ends_the_run_with_a_clear_message_within_a_time_limit(
    how, tiny_fashion_dir, tmp_path
):
    path = tmp_path / f"{how}.npz"  # also the marker that finds this run's processes
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "minicnn", "train", "lenet", "--data-dir", str(tiny_fashion_dir),
           "--batch-size", "8", "--epochs", "1000", "--seed", "1", "--no-progress", "--save", str(path)]  # fmt: skip
    env = cli_env(MINICNN_DIST_TIMEOUT=5)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 2,"):  # epoch 1's checkpoint is on disk (saved before epoch 2 began)
            break
    victim = _rank_pid(1, str(path))
    start = time.monotonic()
    os.kill(victim, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if how == "hangs":
            with contextlib.suppress(ProcessLookupError):  # mpiexec has ended it already
                os.kill(victim, signal.SIGKILL)
    assert proc.returncode != 0 and time.monotonic() - start < 60, out + err
    if how == "killed":
        assert "BAD TERMINATION" in out and "Killed (signal 9)" in out  # mpiexec's report of the dead rank (stdout)
    else:
        assert "minicnn: rank 0 of 2: no answer from the other ranks for 5 s" in err, out + err
    checkpoint.load(path)  # what --save left is a whole checkpoint, never a torn one


@needs_mpi
def test_bad_data_on_one_rank_stops_every_rank_with_one_line_naming_it(tiny_fashion_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_fashion_dir, bad)
    from cli_helpers import write_idx

    write_idx(bad / "train-labels-idx1-ubyte.gz", np.full(600, 12))
    common = ("train", "lenet", "--limit", "16", "--no-progress")
    r = subprocess.run(
        [MPIEXEC, "-n", "1", "-env", "MINICNN_DATA", str(tiny_fashion_dir), sys.executable, "-m", "minicnn", *common,
         ":", "-n", "1", "-env", "MINICNN_DATA", str(bad), sys.executable, "-m", "minicnn", *common],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    [line] = problems(r.stderr)
    assert line.startswith(f"minicnn: error: {bad}/train-labels-idx1-ubyte.gz holds label 12, outside 0..9")
    assert line.endswith("(on rank 1)")


@needs_mpi
def test_a_bad_argument_is_reported_once_and_other_commands_refuse_several_processes():
    r = mpirun(2, "train", "lenet", "--epochs", "x")
    assert r.returncode == 2 and problems(r.stderr) == [
        "minicnn: error: argument --epochs: expected a positive int, got 'x' (see --help)"
    ]
    r = mpirun(2, "summary", "lenet")
    assert r.returncode == 2 and problems(r.stderr) == [
        "minicnn: error: only train runs on several processes; run summary without mpiexec"
    ]


@needs_mpi
def test_two_ranks_on_two_cores_take_one_thread_each_for_blas_and_numba(tmp_path):
    code = (
        "import sys, minicnn, numba; from minicnn import distributed; from minicnn.fast import tuning; "
        "distributed.world(); "
        "open(f'{sys.argv[1]}/{distributed.rank()}', 'w').write(f'{tuning.blas_threads()} {numba.get_num_threads()}')"
    )
    env = {k: v for k, v in cli_env().items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env.pop("NUMBA_NUM_THREADS", None)
    r = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert [(tmp_path / str(rank)).read_text() for rank in (0, 1)] == [f"[{share}] {share}"] * 2


def test_a_shuffling_sharded_loader_without_a_shared_seed_is_refused():
    images, labels = np.zeros((4, 2, 2), np.uint8), np.zeros(4)
    with pytest.raises(ValueError, match=r"needs a seed that every rank shares.*distributed.shared_seed\(\)"):
        DataLoader(images, labels, 2, shuffle=True, shard=(0, 2))
    assert isinstance(distributed.shared_seed(), int)  # one process: its own fresh seed


@needs_mpi
@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        ("RuntimeError('a bug')", 1, "minicnn: rank 1 of 2: RuntimeError: a bug"),  # a bug: exit 1
        (
            "MemoryError('cannot allocate 2 GiB')",
            2,
            "minicnn: rank 1 of 2: error: out of memory: cannot allocate 2 GiB; choose smaller sizes (--batch-size, "
            "--input-size, --resize)",
        ),
    ],
)
def test_an_error_in_one_rank_during_training_ends_every_rank_with_a_line_naming_it(error, status, line):
    code = (
        "import numpy as np; from minicnn import cli, distributed\n"
        "with cli._one_fails_all_stop(distributed.size()):\n"
        "    if distributed.rank() == 1:\n"
        f"        raise {error}\n"
        "    distributed.allreduce([np.zeros(3)])  # rank 0 waits for rank 1, which never comes\n"
    )
    start = time.monotonic()
    r = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert r.returncode == status and time.monotonic() - start < 60
    assert line in problems(r.stderr)


def test_with_several_processes_gpu_means_local_rank_modulo_the_gpus_of_the_machine(monkeypatch):
    from types import SimpleNamespace

    from minicnn import backend, cli

    used = []
    fake_gpu = SimpleNamespace(device_count=lambda: 2, use_device=used.append)
    monkeypatch.setattr(backend, "gpu_backend", lambda: fake_gpu)  # a stand-in for CuPy with two GPUs
    monkeypatch.setattr(distributed, "size", lambda: 4)
    for local, device in [(0, "gpu"), (1, "gpu"), (2, "auto"), (3, "gpu"), (3, "gpu:0")]:
        monkeypatch.setattr(distributed, "local_rank", lambda local=local: local)
        ctx = cli._device(SimpleNamespace(device=device))
        expected = 0 if device == "gpu:0" else local % 2
        assert (ctx.device_type, ctx.device_id) == ("gpu", expected)
        assert used[-1] == expected  # the device made current


class _FakeNccl:
    """A stand-in for cupy.cuda.nccl that records what it is asked to do."""

    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT64, NCCL_SUM = 7, 8, 4, 0

    def __init__(self, available=True):
        self.available, self.calls = available, []

    def get_unique_id(self):
        return (1, 2, 3)

    def NcclCommunicator(self, size, unique_id, rank):  # noqa: N802 - CuPy's name
        self.calls.append(("join", size, unique_id, rank))
        return self

    def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802
        self.calls.append(("allReduce", send, recv, count, dtype, op, stream))

    def bcast(self, buf, count, dtype, root, stream):
        self.calls.append(("bcast", buf, count, dtype, root, stream))


def _fake_cupy(monkeypatch, nccl):
    from types import ModuleType, SimpleNamespace

    cupy, cuda = ModuleType("cupy"), ModuleType("cupy.cuda")
    cuda.nccl = nccl
    cuda.Device = lambda: SimpleNamespace(id=1)
    cuda.get_current_stream = lambda: SimpleNamespace(ptr=99)
    cupy.cuda = cuda
    for name, module in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, module)


class _FakeGpuArray:
    """What the collectives use of a CuPy array: its pointer, size and dtype, and get/set for host copies."""

    def __init__(self, values):
        from types import SimpleNamespace

        self.values, self.size, self.dtype = np.asarray(values), len(values), np.asarray(values).dtype
        self.data = SimpleNamespace(ptr=1234)

    def get(self):
        return self.values.copy()

    def set(self, host):
        self.values = host


def test_gpu_gradients_go_over_nccl_whose_id_rank_0_sends_to_the_others(monkeypatch):
    from types import SimpleNamespace

    from minicnn import distributed_nccl

    nccl = _FakeNccl()
    _fake_cupy(monkeypatch, nccl)
    sent = []
    comm = SimpleNamespace(Get_rank=lambda: 1, Get_size=lambda: 4, bcast=lambda v, root: sent.append(v) or (5, 6))
    monkeypatch.setattr(distributed, "world", lambda: comm)
    monkeypatch.setattr(distributed_nccl, "_communicators", {})
    distributed._collective(_FakeGpuArray(np.zeros(6, np.float32)), "sum")
    distributed._collective(_FakeGpuArray(np.zeros(3, np.float64)), "bcast", root=0)
    assert sent == [None]  # rank 1 makes no id of its own: it takes rank 0's
    assert nccl.calls == [
        ("join", 4, (5, 6), 1),
        ("allReduce", 1234, 1234, 6, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 99),
        ("bcast", 1234, 3, nccl.NCCL_FLOAT64, 0, 99),
    ]


def test_without_nccl_gpu_arrays_are_summed_through_host_copies_over_mpi(monkeypatch):
    nccl = _FakeNccl(available=False)
    _fake_cupy(monkeypatch, nccl)
    monkeypatch.setattr(distributed, "_mpi", lambda host, op, root: host.__imul__(2))  # as two equal ranks would
    buf = _FakeGpuArray(np.arange(4.0))
    distributed._collective(buf, "sum")
    np.testing.assert_array_equal(buf.values, [0, 2, 4, 6])
    assert nccl.calls == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PMI_SIZE": "2", "PMI_RANK": "1"}, True),
        ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "0"}, True),
        ({"PMI_SIZE": "1", "PMI_RANK": "0"}, False),  # mpiexec -n 1: one process, no MPI needed
        ({"PMIX_RANK": "0"}, False),  # a one-task srun says no size
        ({"SLURM_NTASKS": "4"}, False),  # a batch script, not one of srun's tasks
        ({"SLURM_NTASKS": "4", "SLURM_PROCID": "2", "PMIX_RANK": "2"}, True),
    ],
)
def test_a_launcher_is_recognised_only_where_it_started_two_or_more_processes(monkeypatch, env, expected):
    for var in (*distributed._SIZE_VARIABLES, *distributed._RANK_VARIABLES):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert distributed.launched() is expected


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf", "nan"])
def test_a_bad_minicnn_dist_timeout_is_one_line(monkeypatch, value):
    monkeypatch.setenv("MINICNN_DIST_TIMEOUT", value)
    with pytest.raises(mc.UserError, match=f"MINICNN_DIST_TIMEOUT must be a positive number of seconds, got '{value}'"):
        distributed.timeout()
    monkeypatch.setenv("MINICNN_DIST_TIMEOUT", "2.5")
    assert distributed.timeout() == 2.5


def test_sharded_loaders_without_a_dist_sync_trainer_or_the_other_way_round_are_refused():
    from minicnn.train import train_ch5

    images, labels = np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64)
    net = mc.nn.Dense(2)
    net.initialize()
    trainer = mc.Trainer(net.collect_params(), "sgd")
    half = DataLoader(images, labels, 4, shard=(0, 2))
    with pytest.raises(ValueError, match="train_iter is sharded over 2 processes, but this run has 1"):
        train_ch5(net, half, half, 4, trainer, mc.cpu(), 1, progress=False, log=lambda line: None)


def test_one_gpu_named_for_several_processes_of_a_machine_is_refused(monkeypatch):
    from types import SimpleNamespace

    from minicnn import cli

    monkeypatch.setattr(distributed, "size", lambda: 2)
    monkeypatch.setattr(distributed, "local_size", lambda: 2)
    with pytest.raises(mc.UserError, match="--device gpu:1 puts all 2 processes of this machine on one GPU"):
        cli._device(SimpleNamespace(device="gpu:1"))


@needs_mpi
def test_an_unexpected_set_up_error_on_one_rank_ends_every_rank_with_exit_1_not_a_hang(tmp_path):
    code = (
        "import sys\n"
        "from minicnn import cli, distributed\n"
        "def step():\n"
        "    if distributed.rank() == 1:\n"
        "        raise ZeroDivisionError('a bug in the set-up')\n"
        "try:\n"
        "    cli._on_every_rank(step)\n"
        "except cli._RanksFailed as exc:\n"
        "    open(f'{sys.argv[1]}/{distributed.rank()}', 'w').write(f'{exc.code} {exc.lines()}')\n"
    )
    r = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", code, str(tmp_path)], env=cli_env(MINICNN_DIST_TIMEOUT=20),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    expected = "1 ['minicnn: error: ZeroDivisionError: a bug in the set-up (on rank 1)']"
    assert [(tmp_path / str(rank)).read_text() for rank in (0, 1)] == [expected, expected]
    assert "Traceback" in r.stderr  # the rank that met it shows where


@needs_mpi
def test_three_processes_and_a_resume_on_one_process_give_the_parameters_of_one(tiny_fashion_dir, tmp_path):
    args = ("train", "lenet", "--data-dir", tiny_fashion_dir, *UNEVEN)
    one = mpirun(1, *args, "--save", tmp_path / "one.npz")
    three = mpirun(3, *args, "--save", tmp_path / "three.npz", "--log", tmp_path / "three.jsonl")
    assert one.returncode == 0 and three.returncode == 0, one.stderr + three.stderr
    assert_close_to_one_process(params(tmp_path / "one.npz"), params(tmp_path / "three.npz"))
    assert len((tmp_path / "three.jsonl").read_text().splitlines()) == 2  # rank 0 alone writes the log
    path = tmp_path / "moved.npz"
    first = mpirun(2, *args, "--save", path, env={"MINICNN_TEST_INTERRUPT_AFTER": 4})
    assert first.returncode == 130, first.stderr
    rest = mpirun(1, "train", "lenet", "--resume", path, "--no-progress")  # on one process now
    assert rest.returncode == 0, rest.stderr
    assert_close_to_one_process(params(tmp_path / "one.npz"), params(path))
