"""Training-step throughput of every chapter network on the GPU, and of the same networks in PyTorch if installed.

    python benchmarks/gpu_throughput.py                     # all networks, chapter batch sizes and input sizes
    python benchmarks/gpu_throughput.py --models lenet nin --steps 10 --batch-size 64

One step = forward, loss, backward and the SGD update, on a batch already on the device (random images and labels:
the data pipeline is not timed). The first `--warmup` steps are not timed: they compile the CUDA kernels (NVRTC,
then CuPy's disk cache) and draw the deferred parameters. The clock is read only after the device has finished
(`synchronize`), since kernel launches return before the kernels run.

The PyTorch networks are made from the minicnn ones, layer by layer (same shapes, same Fashion-MNIST input), and run
in float32 with TF32 switched off, so both sides do the same arithmetic; PyTorch uses cuDNN for convolution and
pooling where minicnn uses im2col + cuBLAS and its own kernels.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import minicnn as mc  # noqa: E402
from minicnn import autograd, device, init, models, nn  # noqa: E402


def minicnn_step_time(spec, ctx, batch: int, steps: int, warmup: int, dtype: str) -> float:
    """Seconds per training step of `spec`'s network on `ctx`."""
    net = spec.build(**spec.options)
    for p in net.collect_params().values():
        p.dtype = np.dtype(dtype)
    net.initialize(init=init.Xavier(), ctx=ctx)
    trainer = mc.Trainer(net.collect_params(), "sgd", {"learning_rate": spec.lr})
    loss = mc.loss.SoftmaxCrossEntropyLoss()
    side = spec.resize or 28
    rng = np.random.default_rng(0)
    X = mc.array(rng.random((batch, 1, side, side)), ctx=ctx, dtype=dtype)
    y = mc.array(rng.integers(0, 10, batch), ctx=ctx, dtype="int32")
    be = ctx.backend

    def step():
        with autograd.record():
            l = loss(net(X), y).sum()
        l.backward()
        trainer.step(batch)

    for _ in range(warmup):
        step()
    be.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    be.synchronize()
    return (time.perf_counter() - start) / steps


# ---- PyTorch, for comparison -------------------------------------------------------------------------------------


def torch_network(block, torch):
    """The PyTorch twin of a minicnn block (Lazy layers infer input sizes, as minicnn's deferred shapes do)."""
    tnn = torch.nn
    acts = {None: None, "relu": tnn.ReLU, "sigmoid": tnn.Sigmoid}

    def with_act(layer, activation):
        act = acts[activation]
        return layer if act is None else tnn.Sequential(layer, act())

    if isinstance(block, nn.Sequential):
        return tnn.Sequential(*(torch_network(b, torch) for b in block))
    if isinstance(block, nn.Conv2D):
        return with_act(tnn.LazyConv2d(block.channels, block.kernel, block.stride, block.pad), block.activation)
    if isinstance(block, nn.Dense):
        return with_act(tnn.Sequential(tnn.Flatten(), tnn.LazyLinear(block.units)), block.activation)
    if isinstance(block, nn.MaxPool2D):
        return tnn.MaxPool2d(block.pool_size, block.strides, block.padding)
    if isinstance(block, nn.AvgPool2D):
        return tnn.AvgPool2d(block.pool_size, block.strides, block.padding, count_include_pad=True)
    if isinstance(block, nn.GlobalAvgPool2D):
        return tnn.AdaptiveAvgPool2d(1)
    if isinstance(block, nn.Flatten):
        return tnn.Flatten()
    if isinstance(block, nn.Dropout):
        return tnn.Dropout(block.rate)
    if isinstance(block, nn.Activation):
        return acts[block.activation]()
    if type(block).__name__ == "Inception":
        return _torch_inception(block, torch)
    raise TypeError(f"no PyTorch twin for {type(block).__name__}")


def _torch_inception(block, torch):
    class Inception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            seq = torch.nn.Sequential
            self.p1 = torch_network(block.p1_1, torch)
            self.p2 = seq(torch_network(block.p2_1, torch), torch_network(block.p2_2, torch))
            self.p3 = seq(torch_network(block.p3_1, torch), torch_network(block.p3_2, torch))
            self.p4 = seq(torch_network(block.p4_1, torch), torch_network(block.p4_2, torch))

        def forward(self, x):
            return torch.cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], dim=1)

    return Inception()


def torch_step_time(spec, torch, batch: int, steps: int, warmup: int, dtype: str) -> float:
    dev = torch.device("cuda")
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    net = torch_network(spec.build(**spec.options), torch).to(dev, tdtype)
    side = spec.resize or 28
    X = torch.rand(batch, 1, side, side, device=dev, dtype=tdtype)
    y = torch.randint(0, 10, (batch,), device=dev)
    net(X)  # materialise the lazy layers before the optimiser sees the parameters
    opt = torch.optim.SGD(net.parameters(), lr=spec.lr / batch)  # minicnn's Trainer divides by the batch size
    loss = torch.nn.CrossEntropyLoss(reduction="sum")

    def step():
        opt.zero_grad(set_to_none=True)
        loss(net(X), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(models.REGISTRY), choices=list(models.REGISTRY))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per network (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--batch-size", type=int, help="default: each network's chapter batch size")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="gpu", help="gpu, gpu:N or cpu (default gpu)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if it is installed")
    args = parser.parse_args(argv)

    ctx = device.parse(args.device)
    try:
        ctx.backend  # noqa: B018 - fail now, in one line, if the device cannot be used
    except mc.DeviceError as exc:
        print(f"gpu_throughput: {exc}", file=sys.stderr)
        return 2
    torch = None
    if not args.no_torch and ctx.device_type == "gpu":
        try:
            import torch

            if not torch.cuda.is_available():
                print("PyTorch is installed but sees no CUDA device: minicnn only", flush=True)
                torch = None
            else:
                torch.backends.cudnn.allow_tf32 = False  # the same float32 arithmetic as cuBLAS SGEMM in CuPy
                torch.backends.cuda.matmul.allow_tf32 = False
        except ImportError:
            print("PyTorch is not installed: minicnn only", flush=True)

    header = f"{'network':<10} {'batch':>5} {'input':>7}  {'minicnn ms/step':>15} {'img/s':>8}"
    if torch is not None:
        header += f"  {'pytorch ms/step':>15} {'img/s':>8} {'minicnn/pytorch':>15}"
    print(f"training-step throughput on {ctx} ({args.dtype}, {args.steps} timed steps after {args.warmup})")
    print(header, flush=True)
    for name in args.models:
        spec = models.REGISTRY[name]
        batch = args.batch_size or spec.batch_size
        side = spec.resize or 28
        t = minicnn_step_time(spec, ctx, batch, args.steps, args.warmup, args.dtype)
        line = f"{name:<10} {batch:>5} {f'{side}x{side}':>7}  {t * 1e3:>15.1f} {batch / t:>8.0f}"
        if torch is not None:
            tt = torch_step_time(spec, torch, batch, args.steps, args.warmup, args.dtype)
            line += f"  {tt * 1e3:>15.1f} {batch / tt:>8.0f} {t / tt:>14.1f}x"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
