"""Layer-by-layer summary: output shape, parameter count, forward FLOPs and the algorithm each convolution and
pooling layer runs (the chapter's shape printout, extended).

FLOPs count a multiply-add as 2: conv 2*N*O*OH*OW*C*KH*KW, dense 2*N*K*U, plus one per output element for a bias
and one per element for an activation; pooling counts one operation per window element. The algorithm is what
`fast.dispatch` picks for the layer's shapes on the given device: the textbook's ('im2col', 'window loop') in
textbook mode, on the GPU, or where no fast path applies; GoogLeNet's fused 1x1 heads say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import autograd, device, init, nn
from .autograd import NDArray
from .fast import dispatch


def leaf_flops(layer: nn.Block, x_shape: tuple, y_shape: tuple) -> int:
    """Forward FLOPs of one parameter-holding or pooling layer for input x_shape and output y_shape."""
    out = math.prod(y_shape)
    if isinstance(layer, nn.Conv2D):
        c, kh, kw = x_shape[1], *layer.kernel
        flops = 2 * out * c * kh * kw
    elif isinstance(layer, nn.Dense):
        flops = 2 * out * math.prod(x_shape[1:])
    elif isinstance(layer, (nn.MaxPool2D, nn.AvgPool2D)):
        kh, kw = layer.op(layer.pool_size, layer.strides, layer.padding, layer.name).kernel
        return out * kh * kw
    elif isinstance(layer, nn.GlobalAvgPool2D):
        return math.prod(x_shape)
    else:
        return 0
    if getattr(layer, "bias", None) is not None:
        flops += out
    if getattr(layer, "activation", None):
        flops += out
    return flops


def leaf_algorithm(layer: nn.Block, x_shape: tuple, y_shape: tuple, be) -> str | None:
    """The algorithm a convolution or pooling layer runs for these shapes on backend `be` (None for other layers)."""
    if isinstance(layer, nn.Conv2D):
        return dispatch.conv2d(be, x_shape[1], y_shape[1], layer.kernel, layer.stride, layer.pad, y_shape[2:])
    if isinstance(layer, nn.MaxPool2D):
        op = layer.op(layer.pool_size, layer.strides, layer.padding, layer.name)
        return dispatch.max_pool(be, op.kernel, op.stride, op.pad)
    if isinstance(layer, nn.AvgPool2D):
        return dispatch.avg_pool(be)
    if isinstance(layer, nn.GlobalAvgPool2D):
        return "mean"
    return None


class _Counter:
    """FLOPs and algorithm of every leaf layer that runs, in the order they run."""

    def __init__(self, be):
        self.be, self.leaves = be, {}  # id -> (layer, output shape, FLOPs, algorithm)

    def after(self, block, inputs, output, algorithm: str | None = None, **note):
        if not block.children():
            x_shape, y_shape = inputs[0].shape, output.shape
            algorithm = algorithm or leaf_algorithm(block, x_shape, y_shape, self.be)
            self.leaves[id(block)] = (block, y_shape, leaf_flops(block, x_shape, y_shape), algorithm or "")


@dataclass
class Row:
    name: str
    shape: tuple
    params: int
    flops: int
    algorithm: str = ""  # the algorithms of its convolution and pooling layers, in order, each named once


def summarize(net: nn.Sequential, input_shape: tuple, ctx=None, layers: bool = False) -> list[Row]:
    """Run a forward pass on zeros of `input_shape` and describe each top-level layer (`layers`: each layer inside
    the blocks too, one row per convolution, pooling, dense, ... layer); the algorithms are those of device `ctx`
    (default: the CPU)."""
    if any(not p.initialized and not p.pending for p in net.collect_params().values()):
        net.initialize(init=init.Xavier())
    x = NDArray(np.zeros(input_shape, dtype=np.float32))
    rows = []
    with autograd.pause(), nn.observe(_Counter((ctx or device.cpu()).backend)) as counter:
        for layer in net:
            x = layer(x)
            blocks = [layer]
            stack = [layer]
            while stack:
                b = stack.pop()
                stack.extend(b.children())
                blocks.extend(b.children())
            ids = {id(b) for b in blocks}
            ran = [leaf for i, leaf in counter.leaves.items() if i in ids]  # in the order they ran
            if layers and layer.children():
                for leaf, shape, flops, algorithm in ran:
                    params = sum(p.size for p in leaf.collect_params().values())
                    rows.append(Row(leaf.name, shape, params, flops, algorithm))
                continue
            params = sum(p.size for p in layer.collect_params().values())
            algorithm = ", ".join(dict.fromkeys(a for *_, a in ran if a))
            rows.append(Row(layer.name, x.shape, params, sum(f for _, _, f, _ in ran), algorithm))
    return rows


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'layer':14} {'output shape':22} {'params':>12} {'FLOPs':>16}  algorithm"]
    for r in rows:
        lines.append(f"{r.name:14} {str(r.shape):22} {r.params:12,d} {r.flops:16,d}  {r.algorithm}".rstrip())
    lines.append(f"{'total':14} {'':22} {sum(r.params for r in rows):12,d} {sum(r.flops for r in rows):16,d}")
    return "\n".join(lines)
