"""Gluon-like layers: deferred shapes, names, parameter collection, Sequential, Dropout, custom Blocks, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import autograd, init, nn, ops
from minicnn.autograd import NDArray
from minicnn.models import lenet

LENET_SHAPES = [
    ("conv0", (1, 6, 24, 24)),
    ("pool0", (1, 6, 12, 12)),
    ("conv1", (1, 16, 8, 8)),
    ("pool1", (1, 16, 4, 4)),
    ("dense0", (1, 120)),
    ("dense1", (1, 84)),
    ("dense2", (1, 10)),
]


def image(shape=(1, 1, 28, 28), seed=0) -> NDArray:
    return mc.array(np.random.default_rng(seed).uniform(0, 1, shape))


# ---- deferred initialisation ------------------------------------------------------------------------
def test_conv_weight_shape_is_deferred_until_the_first_forward():
    conv = nn.Conv2D(6, kernel_size=5)
    assert conv.weight.shape == (6, 0, 5, 5)
    conv.initialize()
    assert conv.weight.shape == (6, 0, 5, 5)
    with pytest.raises(RuntimeError, match="deferred"):
        conv.weight.data()
    y = conv(image())
    assert conv.weight.shape == (6, 1, 5, 5)
    assert conv.weight.data().shape == (6, 1, 5, 5)
    assert conv.bias.data().shape == (6,)
    assert y.shape == (1, 6, 24, 24)


def test_dense_weight_shape_is_deferred_until_the_first_forward():
    dense = nn.Dense(120)
    assert dense.weight.shape == (120, 0)
    dense.initialize()
    dense(image((2, 16, 5, 5)))
    assert dense.weight.shape == (120, 400)


def test_given_in_channels_and_in_units_need_no_deferral():
    conv = nn.Conv2D(4, kernel_size=3, in_channels=2)
    dense = nn.Dense(3, in_units=7)
    conv.initialize()
    dense.initialize()
    assert conv.weight.data().shape == (4, 2, 3, 3)
    assert dense.weight.data().shape == (3, 7)


# ---- names and parameter collection -----------------------------------------------------------------
def test_layer_names_count_per_kind_from_zero_inside_fresh_names():
    with nn.fresh_names():
        layers = [
            nn.Conv2D(2, 3),
            nn.MaxPool2D(),
            nn.Conv2D(2, 3),
            nn.AvgPool2D(),
            nn.GlobalAvgPool2D(),
            nn.Dense(3),
            nn.Dropout(0.5),
            nn.Dense(3),
            nn.Flatten(),
            nn.Sequential(),
        ]
    names = [layer.name for layer in layers]
    assert names == [
        "conv0",
        "pool0",
        "conv1",
        "pool1",
        "pool2",
        "dense0",
        "dropout0",
        "dense1",
        "flatten0",
        "sequential0",
    ]


def test_fresh_names_restarts_the_count_and_restores_the_outer_count_afterwards():
    with nn.fresh_names():
        assert nn.Conv2D(2, 3).name == "conv0"
        with nn.fresh_names():
            assert nn.Conv2D(2, 3).name == "conv0"
        assert nn.Conv2D(2, 3).name == "conv1"


def test_parameter_names_follow_the_layer_names():
    with nn.fresh_names():
        conv = nn.Conv2D(2, 3)
        dense = nn.Dense(4, use_bias=False)
    assert conv.weight.name == "conv0_weight" and conv.bias.name == "conv0_bias"
    assert list(dense.collect_params()) == ["dense0_weight"]


def test_lenet_collects_its_parameters_in_definition_order():
    net = lenet()
    names = list(net.collect_params())
    assert names == [
        f"{layer}_{kind}" for layer in ("conv0", "conv1", "dense0", "dense1", "dense2") for kind in ("weight", "bias")
    ]
    assert list(net.collect_params(".*weight")) == names[::2]
    assert list(lenet().collect_params()) == names  # building it again names it the same way


def test_lenet_prints_the_chapters_output_shape_per_layer(capsys):
    net = lenet()
    net.initialize()
    x = image()
    for layer in net:
        x = layer(x)
        print(layer.name, "output shape:\t", x.shape)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{name} output shape:\t {shape}" for name, shape in LENET_SHAPES]


def test_lenet_parameter_shapes_after_the_first_forward():
    net = lenet()
    net.initialize(init=init.Xavier())
    net(image((2, 1, 28, 28)))
    shapes = {name: p.shape for name, p in net.collect_params().items()}
    assert shapes == {
        "conv0_weight": (6, 1, 5, 5),
        "conv0_bias": (6,),
        "conv1_weight": (16, 6, 5, 5),
        "conv1_bias": (16,),
        "dense0_weight": (120, 256),
        "dense0_bias": (120,),
        "dense1_weight": (84, 120),
        "dense1_bias": (84,),
        "dense2_weight": (10, 84),
        "dense2_bias": (10,),
    }


# ---- Sequential -------------------------------------------------------------------------------------
def test_sequential_add_iterate_index_len_and_slice():
    with nn.fresh_names():
        a, b, c = nn.Conv2D(2, 3, activation="relu"), nn.MaxPool2D(), nn.Dense(4)
        net = nn.Sequential()
    assert net.add(a) is net  # chainable
    net.add(b, c)
    assert len(net) == 3
    assert list(net) == [a, b, c]
    assert net[0] is a and net[-1] is c
    part = net[:2]
    assert isinstance(part, nn.Sequential) and list(part) == [a, b]
    assert len(net[1:]) == 2 and list(net[1:]) == [b, c]
    net.initialize()
    x = image((2, 1, 8, 8))
    np.testing.assert_array_equal(net(x).asnumpy(), c(part(x)).asnumpy())
    assert net.children() == [a, b, c]


def test_sequential_add_rejects_what_is_not_a_block():
    with pytest.raises(TypeError, match="Block"):
        nn.Sequential().add(lambda x: x)


# ---- initialisation and Parameter -------------------------------------------------------------------
def test_initialize_keeps_the_values_unless_force_reinit_redraws_them():
    net = lenet()
    net.initialize(init=init.Xavier())
    net(image())
    before = {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}
    net.initialize(init=init.Xavier())
    for k, p in net.collect_params().items():
        np.testing.assert_array_equal(p.data().asnumpy(), before[k])
    net.initialize(init=init.Xavier(), force_reinit=True)
    for k, p in net.collect_params().items():
        if k.endswith("weight"):
            assert not np.array_equal(p.data().asnumpy(), before[k]), k
        else:  # biases are zero both times
            np.testing.assert_array_equal(p.data().asnumpy(), 0)


def test_parameter_set_data_data_and_grad():
    dense = nn.Dense(2, in_units=3)
    dense.initialize()
    w = dense.weight
    var = w.data()
    w.set_data(np.arange(6.0).reshape(2, 3))
    assert w.data() is var  # in place: a Trainer holding the array sees the new values
    assert w.data().dtype == np.float32
    np.testing.assert_array_equal(w.data().asnumpy(), np.arange(6.0).reshape(2, 3))
    w.set_data(mc.array(np.ones((2, 3))))
    np.testing.assert_array_equal(w.data().asnumpy(), np.ones((2, 3)))
    w.set_data(0.5)
    np.testing.assert_array_equal(w.data().asnumpy(), np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"dense\d+_weight.*\(3, 2\).*\(2, 3\)"):
        w.set_data(np.zeros((3, 2)))

    x = mc.array([[1.0, 2.0, 3.0]])
    with autograd.record():
        y = dense(x)
    y.backward()
    np.testing.assert_array_equal(w.grad().asnumpy(), [[1, 2, 3], [1, 2, 3]])  # dy_u/dw_uk = x_k
    np.testing.assert_array_equal(dense.bias.grad().asnumpy(), [1, 1])
    assert w.grad() is w.data().grad


def test_an_uninitialised_network_says_to_call_initialize():
    net = lenet()
    with pytest.raises(RuntimeError, match=r"conv0_weight.*initialize"):
        net(image())
    p = nn.Dense(3, in_units=2).weight
    with pytest.raises(RuntimeError, match="initialize"):
        p.data()


class _OtherDeviceArray(np.ndarray):
    """Stands in for an array living on another device (the GPU backend may not exist here)."""


def test_an_input_on_another_device_than_the_parameters_is_a_clear_error(monkeypatch):
    from minicnn import device

    real_context_of = device.context_of
    monkeypatch.setattr(
        device, "context_of", lambda a: mc.gpu(0) if isinstance(a, _OtherDeviceArray) else real_context_of(a)
    )
    x = NDArray(np.zeros((1, 1, 6, 6), dtype=np.float32).view(_OtherDeviceArray))
    with nn.fresh_names():
        conv, dense = nn.Conv2D(2, 3, in_channels=1), nn.Dense(2, in_units=36)
    conv.initialize()
    dense.initialize()
    for layer in (conv, dense):
        with pytest.raises((ValueError, mc.DeviceError), match=rf"{layer.name}.*gpu\(0\).*cpu\(0\).*as_in_context"):
            layer(x)


def test_moving_to_a_gpu_without_one_is_a_device_error():
    if mc.try_gpu().device_type == "gpu":
        pytest.skip("a GPU is available here")
    with pytest.raises(mc.DeviceError, match="GPU"):
        image().as_in_context(mc.gpu(0))


# ---- Dense --------------------------------------------------------------------------------------------
def test_dense_flattens_a_4d_input():
    dense = nn.Dense(3, activation="relu")
    dense.initialize(init=init.Normal(1.0))
    x = image((2, 2, 3, 3))
    y = dense(x)
    w, b = dense.weight.data().asnumpy(), dense.bias.data().asnumpy()
    assert y.shape == (2, 3)
    np.testing.assert_allclose(y.asnumpy(), np.maximum(x.asnumpy().reshape(2, 18) @ w.T + b, 0), rtol=1e-5, atol=1e-6)


def test_dense_without_flatten_maps_the_last_axis_and_keeps_the_others():
    dense = nn.Dense(3, activation="relu", flatten=False)
    dense.initialize(init=init.Normal(1.0))
    x = image((2, 4, 5))
    y = dense(x)
    w, b = dense.weight.data().asnumpy(), dense.bias.data().asnumpy()
    assert y.shape == (2, 4, 3) and w.shape == (3, 5)
    np.testing.assert_allclose(y.asnumpy(), np.maximum(x.asnumpy() @ w.T + b, 0), rtol=1e-5, atol=1e-6)


def test_layers_take_gluons_positional_arguments_in_gluons_order():
    assert nn.Dense(3, None, True, False).flatten is False  # units, activation, use_bias, flatten
    conv = nn.Conv2D(4, 3, 1, 1, 1, 1, "NCHW", "relu")  # ..., dilation, groups, layout, activation
    assert conv.activation == "relu" and conv.pad == (1, 1)
    pool = nn.AvgPool2D(3, 2, 1, False, "NCHW", True)  # ..., ceil_mode, layout, count_include_pad
    assert (pool.pool_size, pool.strides, pool.padding) == (3, 2, 1)
    pool = nn.MaxPool2D(3, 2, 1, "NCHW", False)  # ..., layout, ceil_mode: Gluon's MaxPool2D order differs
    assert (pool.pool_size, pool.strides, pool.padding) == (3, 2, 1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.Conv2D(4, 3, dilation=2), "dilation=2 is not supported"),
        (lambda: nn.Conv2D(4, 3, groups=2), "groups=2 is not supported"),
        (lambda: nn.Conv2D(4, 3, layout="NHWC"), "layout='NHWC' is not supported"),
        (lambda: nn.MaxPool2D(2, ceil_mode=True), "ceil_mode=True is not supported"),
        (lambda: nn.AvgPool2D(2, count_include_pad=False), "count_include_pad=False is not supported"),
        (lambda: nn.GlobalAvgPool2D(layout="NHWC"), "layout='NHWC' is not supported"),
        (lambda: nn.Dropout(0.5, axes=(1,)), "axes=(1,) (a mask shared along axes) is not supported"),
        (lambda: nn.Dropout(0.5, axes=1), "axes=1 (a mask shared along axes) is not supported"),
        (lambda: nn.Conv2D(4, 3, params=nn.Conv2D(4, 3).collect_params()), "params= (another block's parameters)"),
        (lambda: nn.MaxPool2D(2, params={}), "params= (another block's parameters)"),
    ],
)
def test_gluon_options_minicnn_lacks_are_refused_when_the_layer_is_made(make, message):
    with pytest.raises(ValueError, match="^(conv|pool|dropout)[0-9]+: ") as err:
        make()
    assert message in str(err.value)


def test_a_prefix_names_the_parameters_and_the_block_as_in_gluon():
    dense = nn.Dense(2, prefix="fc_")
    assert dense.name == "fc" and list(dense.collect_params()) == ["fc_weight", "fc_bias"]


def test_a_custom_block_makes_parameters_with_params_get_as_in_gluon():
    class Scale(nn.Block):
        def __init__(self):
            super().__init__(prefix="scale_")
            with self.name_scope():
                self.gamma = self.params.get("gamma", shape=(1, 3, 1, 1), init=init.One())

        def forward(self, x):
            return x * self.gamma.data()

    block = Scale()
    assert block.params.get("gamma") is block.gamma  # asked again: the same parameter
    block.g = block.gamma  # renamed: known by its attribute, as in Gluon, and saved once
    assert list(block._params_by_place()) == ["g"]
    with pytest.raises(ValueError, match=r"scale_gamma exists with shape \(1, 3, 1, 1\); asked for \(3,\)"):
        block.params.get("gamma", shape=(3,))
    assert block.params.get("frozen", shape=(3,), grad_req="null").grad_req == "null"
    with pytest.raises(ValueError, match="scale_bad: grad_req must be 'write', 'add' or 'null'"):
        block.params.get("bad", shape=(3,), grad_req="none")
    with pytest.raises(TypeError, match="params.get takes shape=, init= and dtype=.*got lr_mult"):
        block.params.get("beta", shape=(3,), lr_mult=2.0)
    assert block.collect_params().get("scale_beta") is None  # a collected dict is a plain dict: no new parameter
    assert list(block.collect_params()) == ["scale_gamma", "scale_frozen"]
    block.initialize()
    x = image((2, 3, 2, 2))
    x.attach_grad()
    with autograd.record():
        y = block(x).sum()
    y.backward()
    np.testing.assert_array_equal(block.gamma.grad().asnumpy(), x.asnumpy().sum(axis=(0, 2, 3)).reshape(1, 3, 1, 1))


def test_a_hybrid_forward_block_is_told_to_define_forward():
    class Old(nn.HybridBlock):
        def hybrid_forward(self, F, x):
            return x

    with pytest.raises(NotImplementedError, match="define forward"):
        Old()(image())


def test_initialize_takes_a_list_naming_one_device_and_refuses_several():
    dense = nn.Dense(2, in_units=3)
    dense.initialize(ctx=[mc.cpu()])
    assert dense.weight.list_ctx() == [mc.cpu()]
    with pytest.raises(ValueError, match="names 2 devices"):
        nn.Dense(2).initialize(ctx=[mc.cpu(), mc.gpu(0)])
    with pytest.raises(TypeError, match="ctx must be a device"):
        nn.Dense(2).initialize(ctx="cpu")


def test_save_parameters_and_load_parameters_carry_a_network_to_another_instance(tmp_path):
    """Names by place (`0.weight`), as Gluon's: the second LeNet's layers are conv2, ... (built outside
    fresh_names), its parameters not even initialised, and it still reads the first one's values."""
    first = lenet()
    first.initialize(init=init.Xavier())
    x = image((2, 1, 28, 28))
    y = first(x).asnumpy()
    first.save_parameters(tmp_path / "lenet.params")
    with nn.fresh_names():
        nn.Conv2D(1, 1), nn.Dense(1)  # names taken: the second LeNet's layers are conv1, ..., dense1, ...
        second = nn.Sequential()
        second.add(*(type(layer)(**kwargs) for layer, kwargs in zip(first, LENET_ARGS)))
    assert second[0].weight.name == "conv1_weight" and first[0].weight.name == "conv0_weight"
    second.load_parameters(tmp_path / "lenet.params")
    np.testing.assert_array_equal(second(x).asnumpy(), y)


def test_load_parameters_reads_a_command_line_checkpoint_and_the_command_line_refuses_values_only(tmp_path):
    """The command line's checkpoints name parameters by layer (conv0_weight): load_parameters falls back to those
    names, as Gluon does for prefix names. A save_parameters file holds no run: checkpoint.load (the command
    line's reader) says so in one line."""
    from minicnn import checkpoint

    net = lenet()
    net.initialize(init=init.Xavier())
    x = image((2, 1, 28, 28))
    y = net(x).asnumpy()
    checkpoint.save(tmp_path / "run.npz", net, {"network": "lenet", "settings": {}})
    again = lenet()
    again.load_parameters(tmp_path / "run.npz")
    np.testing.assert_array_equal(again(x).asnumpy(), y)
    net.save_parameters(tmp_path / "values.npz")
    with pytest.raises(mc.DataError, match="written by save_parameters, not a training run's checkpoint"):
        checkpoint.load(tmp_path / "values.npz")


def test_load_parameters_checks_everything_before_it_writes_anything(tmp_path):
    dense = nn.Dense(2, in_units=3)
    dense.initialize()
    dense.save_parameters(tmp_path / "f32.params")
    wide = nn.Dense(2, in_units=3, dtype="float64")
    wide.initialize()
    before = wide.weight.data().asnumpy().copy()
    with pytest.raises(mc.DataError, match="is float32 in the file and float64 in the network; pass cast_dtype=True"):
        wide.load_parameters(tmp_path / "f32.params")
    with pytest.raises(mc.DeviceError):
        wide.load_parameters(tmp_path / "f32.params", ctx=mc.gpu(7))  # no such device here: refused first
    np.testing.assert_array_equal(wide.weight.data().asnumpy(), before)  # untouched
    wide.load_parameters(tmp_path / "f32.params", cast_dtype=True)
    assert wide.weight.data().dtype == np.float64
    np.testing.assert_array_equal(wide.weight.data().asnumpy(), dense.weight.data().asnumpy())


LENET_ARGS = [  # the chapter's LeNet, layer by layer
    {"channels": 6, "kernel_size": 5, "activation": "sigmoid"},
    {"pool_size": 2, "strides": 2},
    {"channels": 16, "kernel_size": 5, "activation": "sigmoid"},
    {"pool_size": 2, "strides": 2},
    {"units": 120, "activation": "sigmoid"},
    {"units": 84, "activation": "sigmoid"},
    {"units": 10},
]


def test_load_parameters_refuses_another_networks_file_unless_told_what_to_skip(tmp_path):
    small = nn.Sequential()
    small.add(nn.Dense(4, in_units=3))
    small.initialize()
    small.save_parameters(tmp_path / "small.params")
    bigger = nn.Sequential()
    bigger.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    bigger.initialize()
    with pytest.raises(mc.DataError, match=r"another network \(it lacks \['1.weight', '1.bias'\]\); .*allow_missing"):
        bigger.load_parameters(tmp_path / "small.params")
    bigger.load_parameters(tmp_path / "small.params", allow_missing=True)
    np.testing.assert_array_equal(bigger[0].weight.data().asnumpy(), small[0].weight.data().asnumpy())
    bigger.save_parameters(tmp_path / "bigger.params")
    small.load_parameters(tmp_path / "bigger.params", ignore_extra=True)
    wrong = nn.Sequential()
    wrong.add(nn.Dense(5, in_units=3))
    with pytest.raises(mc.DataError, match=r"parameter 0.weight has shape \(4, 3\) in the checkpoint but \(5, 3\)"):
        wrong.load_parameters(tmp_path / "small.params")


def test_nd_and_gluon_are_attributes_of_the_package_as_in_mxnet():
    assert mc.nd.array([1, 2]).shape == (2,)
    assert mc.gluon.nn.Dense is nn.Dense and mc.gluon.loss.SoftmaxCrossEntropyLoss is mc.loss.SoftmaxCrossEntropyLoss


def test_activation_layer_and_unknown_activation_names():
    x = mc.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(nn.Activation("relu")(x).asnumpy(), [[0.0, 2.0]])
    with pytest.raises(ValueError, match="tanh"):
        nn.Conv2D(2, 3, activation="tanh")


# ---- Dropout ------------------------------------------------------------------------------------------
def test_dropout_is_the_identity_outside_record_and_in_predict_mode(seeded):
    layer = nn.Dropout(0.5)
    x = image((4, 3, 5, 5))
    np.testing.assert_array_equal(layer(x).asnumpy(), x.asnumpy())
    with autograd.record(train_mode=False):
        np.testing.assert_array_equal(layer(x).asnumpy(), x.asnumpy())


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_dropout_in_training_zeroes_a_fraction_rate_and_scales_the_rest_by_one_over_one_minus_rate(rate, seeded):
    n = 200_000
    x = mc.array(np.random.default_rng(1).uniform(1, 2, (n // 100, 100)))  # no zeros of its own
    with autograd.record():
        y = nn.Dropout(rate)(x).asnumpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], x.asnumpy()[kept] / (1 - rate), rtol=1e-6)
    # The kept count is Binomial(n, 1 - rate): its fraction has standard deviation sqrt(rate (1 - rate) / n)
    # (<= 0.0011 here). Six of them: a correct dropout fails this with probability about 2e-9.
    bound = 6 * math.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < bound


def test_dropout_draws_a_new_mask_on_every_call(seeded):
    x = mc.ones((10, 100))
    with autograd.record():
        a = nn.Dropout(0.5)(x).asnumpy()
        b = nn.Dropout(0.5)(x).asnumpy()
    assert not np.array_equal(a, b)


def test_dropout_backward_goes_through_the_mask(seeded):
    x = mc.array(np.random.default_rng(2).uniform(1, 2, (8, 50)))
    x.attach_grad()
    with autograd.record():
        y = nn.Dropout(0.3)(x)
    y.backward()
    mask = y.asnumpy() / x.asnumpy()  # 0 or 1/(1-p) per element
    np.testing.assert_allclose(x.grad.asnumpy(), mask, rtol=1e-6)
    np.testing.assert_allclose(np.unique(np.round(mask, 4)), [0.0, round(1 / 0.7, 4)])  # both kinds occur


# ---- custom Blocks ------------------------------------------------------------------------------------
class Inception(nn.Block):
    """Four parallel paths joined along channels, as in chapter 5.9."""

    def __init__(self, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2D(c1, kernel_size=1, activation="relu")
        self.p2 = nn.Sequential()
        self.p2.add(
            nn.Conv2D(c2[0], kernel_size=1, activation="relu"), nn.Conv2D(c2[1], 3, padding=1, activation="relu")
        )
        self.p3_1 = nn.Conv2D(c3[0], kernel_size=1, activation="relu")
        self.p3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation="relu")
        self.p4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
        self.p4_2 = nn.Conv2D(c4, kernel_size=1, activation="relu")

    def forward(self, x):
        p1 = self.p1_1(x)
        p2 = self.p2(x)
        p3 = self.p3_2(self.p3_1(x))
        p4 = self.p4_2(self.p4_1(x))
        return ops.concat(p1, p2, p3, p4, dim=1)


def test_a_custom_block_registers_its_children_and_their_parameters():
    with nn.fresh_names():
        block = Inception(2, (2, 3), (1, 2), 2)
    assert block.name == "inception0"
    assert list(block._children) == ["p1_1", "p2", "p3_1", "p3_2", "p4_1", "p4_2"]
    names = list(block.collect_params())
    assert names == [f"conv{i}_{kind}" for i in range(6) for kind in ("weight", "bias")]


def test_a_custom_block_inside_a_sequential_trains_end_to_end(seeded):
    # seeded: with some draws a 1-channel ReLU branch is dead for both images and its weight gets no gradient
    with nn.fresh_names():
        net = nn.Sequential()
        net.add(nn.Conv2D(4, 3, padding=1), Inception(2, (2, 3), (1, 2), 2), nn.GlobalAvgPool2D(), nn.Dense(3))
    net.initialize(init=init.Xavier())
    x = image((2, 1, 6, 6))
    with autograd.record():
        y = net(x)
        loss = mc.loss.SoftmaxCrossEntropyLoss()(y, mc.array([0, 2])).sum()
    assert net[1](net[0](x)).shape == (2, 2 + 3 + 2 + 2, 6, 6)
    assert y.shape == (2, 3)
    loss.backward()
    params = net.collect_params()
    assert len(params) == 2 + 12 + 2
    for name, p in params.items():
        assert p.grad().shape == p.shape, name
    # Every weight got some gradient (an unregistered child's parameters would keep a zero one).
    assert all(np.abs(p.grad().asnumpy()).sum() > 0 for name, p in params.items() if name.endswith("weight"))
