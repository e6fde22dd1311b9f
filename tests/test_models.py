"""The five networks against the chapter's listings (5.5-5.9): the layer list with every hyperparameter, the output
shape and parameter count of every top-level layer at the chapter's input size, and the forward FLOPs that
`summary` reports. Expected numbers are written out from the listings here, with the parameter formulas
conv = O*C*K*K + O and dense = I*U + U, so they do not come from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import fast_mode

import minicnn as mc
from minicnn import autograd, config, init, models, nn
from minicnn.models import fused_heads
from minicnn.models.googlenet import Inception
from minicnn.summary import summarize
from reference import load_mxnet

NETWORKS = ["lenet", "alexnet", "vgg11", "nin", "googlenet"]
CHAPTER_SIDE = {"lenet": 28, "alexnet": 224, "vgg11": 224, "nin": 224, "googlenet": 96}


# ---- parameter formulas ------------------------------------------------------------------------------
def conv(c_in: int, c_out: int, k: int) -> int:
    return c_out * c_in * k * k + c_out


def dense(n_in: int, units: int) -> int:
    return n_in * units + units


def inception(c_in: int, c1: int, c2: tuple, c3: tuple, c4: int) -> int:
    return (
        conv(c_in, c1, 1)
        + conv(c_in, c2[0], 1)
        + conv(c2[0], c2[1], 3)
        + conv(c_in, c3[0], 1)
        + conv(c3[0], c3[1], 5)
        + conv(c_in, c4, 1)
    )


def nin_block(c_in: int, c: int, k: int) -> int:
    return conv(c_in, c, k) + 2 * conv(c, c, 1)


def vgg11_params(d: int = 1) -> int:
    chans = [64 // d, 128 // d, 256 // d, 256 // d, 512 // d, 512 // d, 512 // d, 512 // d]
    convs = sum(conv(c_in, c_out, 3) for c_in, c_out in zip([1, *chans[:-1]], chans))
    return convs + dense(chans[-1] * 7 * 7, 4096) + dense(4096, 4096) + dense(4096, 10)


# b3: 192 -> 256 -> 480; b4: 480 -> 512 -> 512 -> 512 -> 528 -> 832; b5: 832 -> 832 -> 1024
INCEPTIONS = {
    "b3": [(192, 64, (96, 128), (16, 32), 32), (256, 128, (128, 192), (32, 96), 64)],
    "b4": [
        (480, 192, (96, 208), (16, 48), 64),
        (512, 160, (112, 224), (24, 64), 64),
        (512, 128, (128, 256), (24, 64), 64),
        (512, 112, (144, 288), (32, 64), 64),
        (528, 256, (160, 320), (32, 128), 128),
    ],
    "b5": [(832, 256, (160, 320), (32, 128), 128), (832, 384, (192, 384), (48, 128), 128)],
}

# (name, output shape, parameters) of each top-level layer at the chapter's input size, batch 1. The names are
# the ones MXNet prints for the chapter's code run in a fresh process (VGG's and NiN's outer Sequential is
# created first, so their blocks start at sequential1; GoogLeNet's b1..b5 are created before `net`).
EXPECTED_ROWS = {
    "lenet": [
        ("conv0", (1, 6, 24, 24), conv(1, 6, 5)),
        ("pool0", (1, 6, 12, 12), 0),
        ("conv1", (1, 16, 8, 8), conv(6, 16, 5)),
        ("pool1", (1, 16, 4, 4), 0),
        ("dense0", (1, 120), dense(16 * 4 * 4, 120)),
        ("dense1", (1, 84), dense(120, 84)),
        ("dense2", (1, 10), dense(84, 10)),
    ],
    "alexnet": [
        ("conv0", (1, 96, 54, 54), conv(1, 96, 11)),
        ("pool0", (1, 96, 26, 26), 0),
        ("conv1", (1, 256, 26, 26), conv(96, 256, 5)),
        ("pool1", (1, 256, 12, 12), 0),
        ("conv2", (1, 384, 12, 12), conv(256, 384, 3)),
        ("conv3", (1, 384, 12, 12), conv(384, 384, 3)),
        ("conv4", (1, 256, 12, 12), conv(384, 256, 3)),
        ("pool2", (1, 256, 5, 5), 0),
        ("dense0", (1, 4096), dense(256 * 5 * 5, 4096)),
        ("dropout0", (1, 4096), 0),
        ("dense1", (1, 4096), dense(4096, 4096)),
        ("dropout1", (1, 4096), 0),
        ("dense2", (1, 10), dense(4096, 10)),
    ],
    "vgg11": [
        ("sequential1", (1, 64, 112, 112), conv(1, 64, 3)),
        ("sequential2", (1, 128, 56, 56), conv(64, 128, 3)),
        ("sequential3", (1, 256, 28, 28), conv(128, 256, 3) + conv(256, 256, 3)),
        ("sequential4", (1, 512, 14, 14), conv(256, 512, 3) + conv(512, 512, 3)),
        ("sequential5", (1, 512, 7, 7), 2 * conv(512, 512, 3)),
        ("dense0", (1, 4096), dense(512 * 7 * 7, 4096)),
        ("dropout0", (1, 4096), 0),
        ("dense1", (1, 4096), dense(4096, 4096)),
        ("dropout1", (1, 4096), 0),
        ("dense2", (1, 10), dense(4096, 10)),
    ],
    "nin": [
        ("sequential1", (1, 96, 54, 54), nin_block(1, 96, 11)),
        ("pool0", (1, 96, 26, 26), 0),
        ("sequential2", (1, 256, 26, 26), nin_block(96, 256, 5)),
        ("pool1", (1, 256, 12, 12), 0),
        ("sequential3", (1, 384, 12, 12), nin_block(256, 384, 3)),
        ("pool2", (1, 384, 5, 5), 0),
        ("dropout0", (1, 384, 5, 5), 0),
        ("sequential4", (1, 10, 5, 5), nin_block(384, 10, 3)),
        ("pool3", (1, 10, 1, 1), 0),
        ("flatten0", (1, 10), 0),
    ],
    "googlenet": [  # the chapter's printout at 96x96
        ("sequential0", (1, 64, 24, 24), conv(1, 64, 7)),
        ("sequential1", (1, 192, 12, 12), conv(64, 64, 1) + conv(64, 192, 3)),
        ("sequential2", (1, 480, 6, 6), sum(inception(*a) for a in INCEPTIONS["b3"])),
        ("sequential3", (1, 832, 3, 3), sum(inception(*a) for a in INCEPTIONS["b4"])),
        ("sequential4", (1, 1024, 1, 1), sum(inception(*a) for a in INCEPTIONS["b5"])),
        ("dense0", (1, 10), dense(1024, 10)),
    ],
}


# ---- layer lists -------------------------------------------------------------------------------------
def relu_conv(c: int, k: int, s: int = 1, p: int = 0) -> tuple:
    return ("conv", c, (k, k), (s, s), (p, p), "relu")


def maxpool(k: int, s: int, p: int = 0) -> tuple:
    return ("maxpool", (k, k), (s, s), (p, p))


def leaves(block: nn.Block) -> list[nn.Block]:
    """Parameter-free and parameter-holding layers in definition order (what `forward` composes)."""
    children = block.children()
    return [block] if not children else [leaf for child in children for leaf in leaves(child)]


def describe(layer: nn.Block) -> tuple:
    if isinstance(layer, nn.Conv2D):
        return ("conv", layer.channels, layer.kernel, layer.stride, layer.pad, layer.activation)
    if isinstance(layer, nn.MaxPool2D):
        f = layer.op(layer.pool_size, layer.strides, layer.padding, layer.name)
        return ("maxpool", f.kernel, f.stride, f.pad)
    if isinstance(layer, nn.Dense):
        return ("dense", layer.units, layer.activation)
    if isinstance(layer, nn.Dropout):
        return ("dropout", layer.rate)
    if isinstance(layer, nn.GlobalAvgPool2D):
        return ("globalavgpool",)
    if isinstance(layer, nn.Flatten):
        return ("flatten",)
    raise AssertionError(f"unexpected layer {layer!r}")


def inception_layers(c1: int, c2: tuple, c3: tuple, c4: int) -> list[tuple]:
    return [
        relu_conv(c1, 1),
        relu_conv(c2[0], 1),
        relu_conv(c2[1], 3, p=1),
        relu_conv(c3[0], 1),
        relu_conv(c3[1], 5, p=2),
        maxpool(3, 1, 1),
        relu_conv(c4, 1),
    ]


def vgg_layers(d: int = 1) -> list[tuple]:
    out = []
    for num_convs, channels in ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)):
        out += [relu_conv(channels // d, 3, p=1)] * num_convs + [maxpool(2, 2)]
    return [
        *out,
        ("dense", 4096, "relu"),
        ("dropout", 0.5),
        ("dense", 4096, "relu"),
        ("dropout", 0.5),
        ("dense", 10, None),
    ]


def nin_layers(c: int, k: int, s: int, p: int) -> list[tuple]:
    return [relu_conv(c, k, s, p), relu_conv(c, 1), relu_conv(c, 1)]


EXPECTED_LAYERS = {
    "lenet": [
        ("conv", 6, (5, 5), (1, 1), (0, 0), "sigmoid"),
        maxpool(2, 2),
        ("conv", 16, (5, 5), (1, 1), (0, 0), "sigmoid"),  # the chapter's text: 16 (its listing's 6 is a typo)
        maxpool(2, 2),
        ("dense", 120, "sigmoid"),
        ("dense", 84, "sigmoid"),
        ("dense", 10, None),
    ],
    "alexnet": [
        relu_conv(96, 11, s=4),
        maxpool(3, 2),
        relu_conv(256, 5, p=2),
        maxpool(3, 2),
        relu_conv(384, 3, p=1),
        relu_conv(384, 3, p=1),
        relu_conv(256, 3, p=1),
        maxpool(3, 2),
        ("dense", 4096, "relu"),
        ("dropout", 0.5),
        ("dense", 4096, "relu"),
        ("dropout", 0.5),
        ("dense", 10, None),
    ],
    "vgg11": vgg_layers(),
    "nin": [
        *nin_layers(96, 11, 4, 0),
        maxpool(3, 2),
        *nin_layers(256, 5, 1, 2),
        maxpool(3, 2),
        *nin_layers(384, 3, 1, 1),
        maxpool(3, 2),
        ("dropout", 0.5),
        *nin_layers(10, 3, 1, 1),
        ("globalavgpool",),
        ("flatten",),
    ],
    "googlenet": [
        relu_conv(64, 7, s=2, p=3),
        maxpool(3, 2, 1),
        relu_conv(64, 1),
        relu_conv(192, 3, p=1),
        maxpool(3, 2, 1),
        *[layer for a in INCEPTIONS["b3"] for layer in inception_layers(*a[1:])],
        maxpool(3, 2, 1),
        *[layer for a in INCEPTIONS["b4"] for layer in inception_layers(*a[1:])],
        maxpool(3, 2, 1),
        *[layer for a in INCEPTIONS["b5"] for layer in inception_layers(*a[1:])],
        ("globalavgpool",),
        ("dense", 10, None),
    ],
}


@pytest.fixture(scope="module")
def chapter_rows():
    """summarize() of each network at the chapter's input size, computed once (VGG-11 at 224 is 15 GFLOPs)."""
    cache = {}

    def rows(name: str):
        if name not in cache:
            cache[name] = summarize(models.get(name).build(), (1, 1, CHAPTER_SIDE[name], CHAPTER_SIDE[name]))
        return cache[name]

    return rows


# ---- tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NETWORKS)
def test_each_network_has_exactly_the_layers_of_the_chapter_listing(name):
    net = models.get(name).build()
    assert [describe(layer) for layer in leaves(net)] == EXPECTED_LAYERS[name]


@pytest.mark.parametrize("name", NETWORKS)
def test_each_top_level_layer_has_the_chapters_output_shape_and_parameter_count(name, chapter_rows):
    rows = chapter_rows(name)
    assert [(r.name, r.shape, r.params) for r in rows] == EXPECTED_ROWS[name]


@pytest.mark.parametrize(
    ("name", "total"),
    [("lenet", 44_426), ("alexnet", 46_764_746), ("vgg11", 128_806_154), ("nin", 1_992_166), ("googlenet", 5_977_530)],
)
def test_total_parameter_counts_match_the_formulas(name, total, chapter_rows):
    # The literal totals guard the formula tables above against a shared mistake with the code.
    assert sum(params for _, _, params in EXPECTED_ROWS[name]) == total
    assert sum(r.params for r in chapter_rows(name)) == total


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_takes_one_channel_and_gives_ten_scores_per_image(name):
    net = models.get(name).build()
    first_conv = next(layer for layer in leaves(net) if isinstance(layer, nn.Conv2D))
    side = 32 if name == "vgg11" else CHAPTER_SIDE[name]  # VGG-11 at 224 is 15 GFLOPs per image
    net.initialize(init=init.Xavier())
    with autograd.pause():
        y = net(mc.array(np.zeros((2, 1, side, side), dtype=np.float32)))
    assert first_conv.weight.shape[1] == 1
    assert y.shape == (2, 10)


def test_summary_flops_follow_the_documented_formulas(chapter_rows):
    rows = {r.name: r for r in chapter_rows("alexnet")}
    # conv: 2 FLOPs per multiply-add over C*KH*KW inputs per output, plus bias and ReLU per output
    out = 96 * 54 * 54
    assert rows["conv0"].flops == 2 * out * 1 * 11 * 11 + 2 * out
    # max-pool: one operation per window element
    assert rows["pool0"].flops == 96 * 26 * 26 * 3 * 3
    # dense: 2 per multiply-add, plus bias and ReLU per unit; dropout costs nothing here
    assert rows["dense0"].flops == 2 * 4096 * 6400 + 2 * 4096
    assert rows["dropout0"].flops == 0
    assert rows["dense2"].flops == 2 * 10 * 4096 + 10


def test_googlenet_sums_the_flops_of_the_layers_inside_its_blocks(chapter_rows):
    b1 = chapter_rows("googlenet")[0]
    conv_out, pool_out = 64 * 48 * 48, 64 * 24 * 24
    assert b1.flops == (2 * conv_out * 1 * 7 * 7 + 2 * conv_out) + pool_out * 3 * 3


def test_inception_is_a_block_whose_forward_concatenates_its_four_paths(seeded):
    blk = Inception(4, (3, 5), (2, 6), 7)
    assert isinstance(blk, nn.Block) and not isinstance(blk, nn.Sequential)
    assert "forward" in vars(Inception)
    blk.initialize(init=init.Xavier())
    x = mc.array(np.random.default_rng(0).standard_normal((2, 8, 6, 5)).astype(np.float32))
    with autograd.pause():
        y = blk(x).asnumpy()
        paths = [
            blk.p1_1(x),
            blk.p2_2(blk.p2_1(x)),
            blk.p3_2(blk.p3_1(x)),
            blk.p4_2(blk.p4_1(x)),
        ]
    assert y.shape == (2, 4 + 5 + 6 + 7, 6, 5)  # c1 + c2[1] + c3[1] + c4 channels, height and width kept
    np.testing.assert_array_equal(y, np.concatenate([p.asnumpy() for p in paths], axis=1))
    assert sum(p.size for p in blk.collect_params().values()) == inception(8, 4, (3, 5), (2, 6), 7)


def test_inceptions_fused_1x1_convolutions_give_the_chapters_forward_and_gradients():
    """fused_heads.forward runs p1_1, p2_1 and p3_1 as one convolution; forward in textbook mode is the chapter's
    code. They may differ only by the rounding of sums taken in another order."""
    blk = Inception(4, (3, 5), (2, 6), 7)
    blk.initialize(init=init.Xavier())
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((2, 8, 6, 5))
    with autograd.pause():
        blk(mc.array(x0))  # the deferred shapes
    for p in blk.collect_params().values():
        p.set_data(mc.array(rng.standard_normal(p.shape)))
    results = []
    for forward in (lambda x: fused_heads.forward(blk, x), blk.forward):
        x = mc.array(x0)
        x.attach_grad()
        with autograd.record(), config.textbook(forward == blk.forward):
            y = forward(x)
            loss = (y * mc.array(np.arange(y.size).reshape(y.shape) % 7)).sum()
        loss.backward()
        grads = {name: p.grad().asnumpy().copy() for name, p in blk.collect_params().items()}
        results.append((y.asnumpy(), x.grad.asnumpy(), grads))
    (y, gx, grads), (y_ref, gx_ref, grads_ref) = results

    def close(a, b, what):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(), err_msg=what)

    close(y, y_ref, "output")
    close(gx, gx_ref, "input gradient")
    assert grads.keys() == grads_ref.keys() and len(grads) == 12  # six convolutions, weight and bias each
    for name, g in grads.items():
        assert np.abs(g).max() > 0, name
        close(g, grads_ref[name], name)


@pytest.mark.parametrize("fused", [True, False])
def test_observers_see_each_layer_of_an_inception_even_the_fused_ones(fused):
    """The summary and the profile count shapes and FLOPs from these calls; the fused heads say how they ran."""
    blk = Inception(4, (3, 5), (2, 6), 7)
    blk.initialize(init=init.Xavier())
    x = mc.array(np.zeros((2, 8, 6, 5), dtype=np.float32))
    with autograd.pause():
        blk(x)  # the deferred shapes

    class Seen:
        def __init__(self):
            self.calls = []

        def after(self, block, inputs, output, **note):
            self.calls.append((block.name, inputs[0].shape, output.shape, note.get("algorithm")))

    with nn.observe(Seen()) as seen, autograd.pause(), fast_mode(heads=fused):
        assert fused_heads.applies(blk) == fused
        blk(x)
    shapes = {name: (x, y) for name, x, y, _ in seen.calls}
    notes = {name: algorithm for name, _, _, algorithm in seen.calls}
    for layer, channels in ((blk.p1_1, 4), (blk.p2_1, 3), (blk.p3_1, 2)):
        assert shapes[layer.name] == ((2, 8, 6, 5), (2, channels, 6, 5))
        assert notes[layer.name] == ("plane (fused heads)" if fused else None)  # 8 -> 9 channels: small planes
    for layer, channels in ((blk.p2_2, 5), (blk.p3_2, 6), (blk.p4_1, 8), (blk.p4_2, 7)):
        assert shapes[layer.name][1] == (2, channels, 6, 5)
    assert len(seen.calls) == 8  # the seven layers and the block itself


@pytest.mark.parametrize(("args", "channels"), [(INCEPTIONS["b3"][0], 256), (INCEPTIONS["b5"][1], 1024)])
def test_inception_output_channels_are_the_sum_of_its_paths(args, channels):
    c_in, *cs = args
    blk = Inception(*cs)
    blk.initialize(init=init.Xavier())
    with autograd.pause():
        y = blk(mc.array(np.zeros((1, c_in, 3, 3), dtype=np.float32)))
    assert y.shape == (1, channels, 3, 3)


@pytest.mark.parametrize("d", [1, 4, 8])
def test_vgg_width_divisor_divides_every_conv_and_keeps_the_dense_layers(d):
    net = models.vgg11(width_divisor=d)
    assert [describe(layer) for layer in leaves(net)] == vgg_layers(d)
    net.initialize(init=init.Xavier())
    with autograd.pause():
        y = net(mc.array(np.zeros((1, 1, 32, 32), dtype=np.float32)))  # 32: the smallest side five pools allow
    assert y.shape == (1, 10)
    # at 32x32 the last block gives (512/d, 1, 1), so dense0 has 512/d inputs instead of 512/d*7*7
    at_32 = vgg11_params(d) - dense(512 // d * 49, 4096) + dense(512 // d, 4096)
    assert sum(p.size for p in net.collect_params().values()) == at_32


def test_the_books_small_vgg_has_a_quarter_of_the_channels_at_224(chapter_rows):
    rows = summarize(models.vgg11(width_divisor=4), (1, 1, 224, 224))
    assert [r.shape for r in rows[:5]] == [(1, 16, 112, 112), (1, 32, 56, 56), (1, 64, 28, 28), (1, 128, 14, 14),
                                          (1, 128, 7, 7)]  # fmt: skip
    assert sum(r.params for r in rows) == vgg11_params(4)


@pytest.mark.parametrize("d", [0, 3, 1024])
def test_a_width_divisor_that_does_not_divide_every_block_is_refused(d):
    with pytest.raises(ValueError, match=f"width_divisor.*got {d}"):
        models.vgg11(width_divisor=d)


def test_the_registry_holds_the_chapters_training_settings():
    got = {n: (s.lr, s.batch_size, s.epochs, s.resize) for n, s in models.REGISTRY.items()}
    assert got == {
        "lenet": (0.9, 256, 5, None),
        "alexnet": (0.01, 128, 5, 224),
        "vgg11": (0.05, 128, 5, 224),
        "nin": (0.1, 128, 5, 224),
        "googlenet": (0.1, 128, 5, 96),
    }
    assert models.get("VGG11").name == "vgg11"
    with pytest.raises(ValueError, match="unknown network 'resnet'.*lenet, alexnet, vgg11, nin, googlenet"):
        models.get("resnet")


def test_layer_names_restart_for_every_network_built():
    models.alexnet()
    a, b = models.alexnet(), models.lenet()
    assert [layer.name for layer in a][:2] == ["conv0", "pool0"]
    assert [layer.name for layer in b][:2] == ["conv0", "pool0"]


mx = load_mxnet()


@pytest.mark.reference
@pytest.mark.skipif(mx is None, reason="needs MXNet 1.9.1 (the reference environment)")
@pytest.mark.parametrize("name", NETWORKS)
def test_parameter_counts_equal_mxnets_for_the_chapters_code(name):
    from reference import gluon_models

    net = gluon_models.build(name)
    net.initialize(mx.init.Xavier())
    side = CHAPTER_SIDE[name]
    net(mx.nd.zeros((1, 1, side, side)))
    theirs = sum(math.prod(p.shape) for p in net.collect_params().values())
    assert theirs == sum(params for _, _, params in EXPECTED_ROWS[name])


def test_the_memory_saving_paths_of_vgg_change_no_gradient(monkeypatch):
    """What keeps VGG-11 at 224x224, batch 128, under 6 GiB on the CPU (benchmarks/vgg_memory.py): a large
    max-pool index is recomputed in backward instead of kept, and a convolution takes its ReLU's gradient chunk by
    chunk. Forcing both everywhere (index never kept, one sample per chunk) must give the same gradients."""
    from minicnn import random
    from minicnn.backend import shapes
    from minicnn.fast import cpu_pool, dispatch
    from minicnn.loss import SoftmaxCrossEntropyLoss

    calls = []
    kernel = cpu_pool.max_pool_forward
    monkeypatch.setattr(cpu_pool, "max_pool_forward", lambda *a: calls.append(1) or kernel(*a))
    x = mc.array(np.random.default_rng(0).random((3, 1, 32, 32)), dtype="float64")
    labels = mc.array(np.array([1.0, 5.0, 9.0]), dtype="float64")

    def gradients(keep_index_bytes: int, chunk_bytes: int) -> tuple[dict, int]:
        monkeypatch.setattr(dispatch, "KEEP_INDEX_BYTES", keep_index_bytes)
        monkeypatch.setattr(shapes, "IM2COL_CHUNK_BYTES", chunk_bytes)
        random.seed(0)
        net = models.vgg11(width_divisor=16)
        for p in net.collect_params().values():
            p.dtype = np.dtype(np.float64)
        net.initialize(init=init.Xavier())
        with autograd.pause():
            net(x)  # fixes the deferred shapes
        calls.clear()
        with autograd.record(train_mode=False):  # dropout off: both runs see the same function
            loss = SoftmaxCrossEntropyLoss()(net(x), labels).sum()
        loss.backward()
        return {k: p.grad().asnumpy() for k, p in net.collect_params().items()}, len(calls)

    with fast_mode():  # the memory-saving paths are fast-mode ones
        plain, plain_calls = gradients(1 << 40, 1 << 40)
        lean, lean_calls = gradients(0, 1)
    assert (plain_calls, lean_calls) == (5, 10)  # five pools; the lean run runs each forward kernel again
    for k, g in plain.items():
        assert np.abs(g).max() > 0, k
        np.testing.assert_allclose(lean[k], g, rtol=1e-9, atol=1e-12 * np.abs(g).max(), err_msg=k)
