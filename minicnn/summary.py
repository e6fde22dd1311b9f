"""Layer-by-layer summary: output shape, parameter count and forward FLOPs (the chapter's shape printout, extended).

FLOPs count a multiply-add as 2: conv 2*N*O*OH*OW*C*KH*KW, dense 2*N*K*U, plus one per output element for a bias
and one per element for an activation; pooling counts one operation per window element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import autograd, init, nn
from .autograd import NDArray


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


class _FlopCounter:
    def __init__(self):
        self.flops: dict[int, int] = {}

    def after(self, block, inputs, output):
        if not block.children():
            self.flops[id(block)] = leaf_flops(block, inputs[0].shape, output.shape)


@dataclass
class Row:
    name: str
    shape: tuple
    params: int
    flops: int


def summarize(net: nn.Sequential, input_shape: tuple) -> list[Row]:
    """Run one forward pass on zeros of `input_shape` and describe each top-level layer."""
    if any(not p.initialized and p._deferred is None for p in net.collect_params().values()):
        net.initialize(init=init.Xavier())
    x = NDArray(np.zeros(input_shape, dtype=np.float32))
    rows = []
    with autograd.pause(), nn.observe(_FlopCounter()) as counter:
        for layer in net:
            x = layer(x)
            blocks = [layer]
            stack = [layer]
            while stack:
                b = stack.pop()
                stack.extend(b.children())
                blocks.extend(b.children())
            params = sum(p.size for p in layer.collect_params().values())
            flops = sum(counter.flops.get(id(b), 0) for b in blocks)
            rows.append(Row(layer.name, x.shape, params, flops))
    return rows


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'layer':14} {'output shape':22} {'params':>12} {'FLOPs':>16}"]
    for r in rows:
        lines.append(f"{r.name:14} {str(r.shape):22} {r.params:12,d} {r.flops:16,d}")
    lines.append(f"{'total':14} {'':22} {sum(r.params for r in rows):12,d} {sum(r.flops for r in rows):16,d}")
    return "\n".join(lines)
