"""Initialisers (MXNet's Xavier, biases at zero, seeding) and the SGD Trainer's update rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import autograd, init, nn
from minicnn.models import lenet


def xavier_bound(shape) -> float:
    """MXNet's Xavier(rnd_type='uniform', factor_type='avg', magnitude=3): U(-b, b)."""
    field = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * field, shape[0] * field
    return math.sqrt(3 / ((fan_in + fan_out) / 2))


def assert_uniform_on(w: np.ndarray, b: float) -> None:
    """w looks like n independent U(-b, b) samples.

    - every sample within [-b, b];
    - the largest |w| is near b: P(max |w| < b (1 - 20/n)) = (1 - 20/n)^n < e^-20 for a correct draw;
    - the mean of w^2 is b^2/3 within 6 standard deviations: Var(w^2) = b^4/5 - b^4/9 = 4 b^4/45, so the
      relative standard deviation of the mean of n squares is sqrt(4/45 / n) * 3 = sqrt(0.8 / n).
    """
    n = w.size
    assert np.abs(w).max() <= b
    assert np.abs(w).max() > b * (1 - 20 / n)
    second_moment = float((w.astype(np.float64) ** 2).mean())
    assert abs(second_moment / (b * b / 3) - 1) < 6 * math.sqrt(0.8 / n)


# ---- Xavier -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(6, 1, 5, 5), (16, 6, 5, 5), (96, 1, 11, 11), (64, 3, 3, 2), (120, 400), (84, 120), (10, 84), (1000, 3)],
)
def test_xavier_draws_uniformly_within_the_mxnet_bound(shape):
    w = init.Xavier()(shape, np.random.default_rng(0))
    assert w.shape == shape
    assert_uniform_on(w, xavier_bound(shape))


def test_xavier_bound_of_lenets_first_conv_worked_by_hand():
    # fan_in = 1*5*5 = 25, fan_out = 6*5*5 = 150, b = sqrt(3 / 87.5)
    assert xavier_bound((6, 1, 5, 5)) == pytest.approx(0.185164, rel=1e-5)
    w = init.Xavier()((6, 1, 5, 5), np.random.default_rng(1))
    assert np.abs(w).max() <= 0.185164


def test_xavier_through_the_layers_of_lenet_and_biases_start_at_zero():
    net = lenet()
    net.initialize(init=init.Xavier())
    net(mc.array(np.zeros((1, 1, 28, 28))))
    for name, p in net.collect_params().items():
        w = p.data().asnumpy()
        assert w.dtype == np.float32
        if name.endswith("bias"):
            np.testing.assert_array_equal(w, 0, err_msg=name)
        else:
            b = xavier_bound(p.shape)
            assert np.abs(w).max() <= b * (1 + 1e-6), name  # float32 rounding of a value at the bound
            if w.size >= 1000:  # enough samples for the statistical checks to be tight
                assert_uniform_on(w.astype(np.float64).clip(-b, b), b)


def test_the_default_initialiser_is_mxnets_uniform_0_07():
    dense = nn.Dense(50, in_units=40)
    dense.initialize()
    assert_uniform_on(dense.weight.data().asnumpy().astype(np.float64).clip(-0.07, 0.07), 0.07)
    np.testing.assert_array_equal(dense.bias.data().asnumpy(), 0)


def test_a_layers_own_initialiser_wins_over_the_global_one():
    dense = nn.Dense(3, in_units=4, weight_initializer=init.Constant(0.25), bias_initializer=init.One())
    dense.initialize(init=init.Xavier())
    np.testing.assert_array_equal(dense.weight.data().asnumpy(), 0.25)
    np.testing.assert_array_equal(dense.bias.data().asnumpy(), 1)


def test_normal_initialiser_has_the_requested_spread():
    w = init.Normal(0.5)((200, 100), np.random.default_rng(2))
    # the sample std of 20,000 normals is within 2% of sigma with overwhelming probability (sd ~ 0.5%)
    assert w.std() == pytest.approx(0.5, rel=0.02)
    assert abs(w.mean()) < 0.02


def test_initialisers_by_name_and_errors():
    assert isinstance(init.create("xavier"), init.Xavier)
    assert isinstance(init.create("zeros"), init.Zero)
    with pytest.raises(ValueError, match="glorot"):
        init.create("glorot")
    with pytest.raises(ValueError, match="rnd_type"):
        init.Xavier(rnd_type="triangular")
    with pytest.raises(ValueError, match=r"\(5,\)"):
        init.Xavier()((5,), np.random.default_rng(0))


# ---- seeding ------------------------------------------------------------------------------------------
def _lenet_weights(seed: int) -> dict[str, np.ndarray]:
    mc.random.seed(seed)
    net = lenet()
    net.initialize(init=init.Xavier())
    net(mc.array(np.zeros((1, 1, 28, 28))))
    return {k: p.data().asnumpy().copy() for k, p in net.collect_params().items()}


def test_seed_makes_initialisation_repeatable():
    try:
        first, again, other = _lenet_weights(3), _lenet_weights(3), _lenet_weights(4)
    finally:
        mc.random.seed(None)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k], err_msg=k)
    assert not np.array_equal(first["conv0_weight"], other["conv0_weight"])


def test_seed_makes_dropout_masks_repeatable():
    x = mc.ones((20, 20))
    masks = []
    try:
        for _ in range(2):
            mc.random.seed(5)
            with autograd.record():
                masks.append(nn.Dropout(0.5)(x).asnumpy())
    finally:
        mc.random.seed(None)
    np.testing.assert_array_equal(masks[0], masks[1])


# ---- Trainer / SGD ------------------------------------------------------------------------------------
def make_param(name: str, values: np.ndarray) -> nn.Parameter:
    p = nn.Parameter(name, values.shape)
    p.initialize(init.Zero())
    p.set_data(values)
    return p


def backward_with_grad(params, grads) -> None:
    """Set each parameter's gradient to `grad` the way training does: backward of sum(w * grad)."""
    with autograd.record():
        loss = sum(((p.data() * mc.array(g)).sum() for p, g in zip(params, grads)), start=mc.zeros(()))
    loss.backward()


@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_sgd_step_subtracts_lr_times_grad_over_batch_size(batch_size):
    gen = np.random.default_rng(0)
    w0, g = gen.standard_normal((3, 4)).astype(np.float32), gen.standard_normal((3, 4)).astype(np.float32)
    p = make_param("w", w0)
    trainer = mc.Trainer([p], "sgd", {"learning_rate": 0.1})
    backward_with_grad([p], [g])
    np.testing.assert_array_equal(p.grad().asnumpy(), g)
    trainer.step(batch_size)
    np.testing.assert_allclose(p.data().asnumpy(), w0 - 0.1 * g / batch_size, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("momentum", "wd"), [(0.0, 0.0), (0.0, 1e-3), (0.9, 0.0), (0.9, 5e-4)])
def test_sgd_with_momentum_and_weight_decay_follows_mxnets_update(momentum, wd):
    # MXNet's sgd(_mom)_update with rescale_grad = 1/batch_size:
    #   g = grad / batch_size + wd * w;  v = momentum * v - lr * g;  w = w + v     (momentum 0: w = w - lr * g)
    lr, batch_size, steps = 0.05, 8, 4
    gen = np.random.default_rng(1)
    w0 = gen.standard_normal((2, 3)).astype(np.float32)
    b0 = gen.standard_normal(3).astype(np.float32)
    grads = [(gen.standard_normal((2, 3)), gen.standard_normal(3)) for _ in range(steps)]
    params = [make_param("w", w0), make_param("b", b0)]
    options = {"learning_rate": lr}
    if momentum:
        options["momentum"] = momentum
    if wd:
        options["wd"] = wd
    trainer = mc.Trainer(params, "sgd", options)

    expected = [w0.astype(np.float64), b0.astype(np.float64)]
    velocity = [np.zeros_like(e) for e in expected]
    for step_grads in grads:
        backward_with_grad(params, [g.astype(np.float32) for g in step_grads])
        trainer.step(batch_size)
        for i, grad in enumerate(step_grads):
            grad32 = grad.astype(np.float32).astype(np.float64)
            g = grad32 / batch_size + wd * expected[i]
            velocity[i] = momentum * velocity[i] - lr * g
            expected[i] = expected[i] + velocity[i]
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data().asnumpy(), e, rtol=1e-5, atol=1e-6, err_msg=p.name)


def test_momentum_carries_over_between_steps():
    # With the same gradient twice, the second step moves (1 + momentum) times as far as the first.
    p = make_param("w", np.zeros(3, dtype=np.float32))
    trainer = mc.Trainer([p], "sgd", {"learning_rate": 1.0, "momentum": 0.5})
    moves = []
    for _ in range(2):
        before = p.data().asnumpy().copy()
        backward_with_grad([p], [np.ones(3, dtype=np.float32)])
        trainer.step(1)
        moves.append(p.data().asnumpy() - before)
    np.testing.assert_allclose(moves[0], -1.0)
    np.testing.assert_allclose(moves[1], -1.5)


def test_trainer_takes_a_networks_parameter_dict_and_updates_every_parameter():
    net = lenet()
    net.initialize(init=init.Xavier())
    x, y = mc.array(np.random.default_rng(2).uniform(0, 1, (4, 1, 28, 28))), mc.array([0, 1, 2, 3])
    net(x)
    params = net.collect_params()
    trainer = mc.Trainer(params, "sgd", {"learning_rate": 0.9})
    before = {k: p.data().asnumpy().copy() for k, p in params.items()}
    with autograd.record():
        loss = mc.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    trainer.step(4)
    for k, p in params.items():
        np.testing.assert_allclose(p.data().asnumpy(), before[k] - 0.9 * p.grad().asnumpy() / 4, rtol=1e-5, atol=1e-7)
        assert np.any(p.data().asnumpy() != before[k]), k


def _lenet_step(net, trainer, x, y):
    with autograd.record():
        loss = mc.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    trainer.step(len(y))


def test_a_frozen_layer_keeps_its_values_and_has_no_gradient_while_the_rest_trains():
    net = lenet()
    net.initialize(init=init.Xavier())
    x, y = mc.array(np.random.default_rng(2).uniform(0, 1, (4, 1, 28, 28))), mc.array([0, 1, 2, 3])
    net(x)
    net.collect_params(".*conv0.*").setattr("grad_req", "null")
    params = net.collect_params()
    trainer = mc.Trainer(params, "sgd", {"learning_rate": 0.9})
    before = {k: p.data().asnumpy().copy() for k, p in params.items()}
    _lenet_step(net, trainer, x, y)
    for k, p in params.items():
        moved = np.any(p.data().asnumpy() != before[k])
        assert moved == ("conv0" not in k), k
    with pytest.raises(RuntimeError, match="conv0_weight.*grad_req is 'null'"):
        params["conv0_weight"].grad()
    params["conv0_weight"].grad_req = "write"  # thawed: a gradient of zeros again, and trained
    assert not params["conv0_weight"].grad().asnumpy().any()
    _lenet_step(net, trainer, x, y)
    assert np.any(params["conv0_weight"].data().asnumpy() != before["conv0_weight"])


def test_grad_req_add_sums_the_gradients_of_two_backward_passes_until_zero_grad():
    net = lenet()
    net.initialize(init=init.Xavier())
    x, y = mc.array(np.random.default_rng(3).uniform(0, 1, (2, 1, 28, 28))), mc.array([4, 7])
    net(x)
    params = net.collect_params()
    loss = mc.loss.SoftmaxCrossEntropyLoss()

    def grads():
        with autograd.record():
            total = loss(net(x), y).sum()
        total.backward()
        return {k: p.grad().asnumpy().copy() for k, p in params.items()}

    once = grads()
    params.setattr("grad_req", "add")
    assert all(not p.grad().asnumpy().any() for p in params.values())
    grads()
    twice = grads()
    for k in params:
        np.testing.assert_allclose(twice[k], 2 * once[k], rtol=1e-5, atol=1e-7, err_msg=k)
    params.zero_grad()
    for k, g in grads().items():
        np.testing.assert_allclose(g, once[k], rtol=1e-6, atol=1e-8, err_msg=k)


def test_grad_req_takes_gluons_three_values_and_setattr_only_grad_req():
    params = lenet().collect_params()
    with pytest.raises(ValueError, match="conv0_weight: grad_req must be 'write', 'add' or 'null', got 'none'"):
        params["conv0_weight"].grad_req = "none"
    with pytest.raises(AttributeError, match="grad_req only, not 'lr_mult'"):
        params.setattr("lr_mult", 0.5)


@pytest.mark.parametrize(
    ("optimizer", "options", "pattern"),
    [
        ("adam", {"learning_rate": 0.1}, "adam"),
        ("sgd", {"lr": 0.1}, "lr"),
        ("sgd", {"learning_rate": 0.1, "nesterov": True}, "nesterov"),
    ],
)
def test_unknown_optimizers_and_options_are_value_errors(optimizer, options, pattern):
    p = make_param("w", np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match=pattern):
        mc.Trainer([p], optimizer, options)


def test_step_rejects_a_non_positive_batch_size():
    trainer = mc.Trainer([make_param("w", np.zeros(2, dtype=np.float32))], "sgd", {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="batch_size"):
        trainer.step(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_sgd_update_in_one_pass_rounds_exactly_like_the_textbook_w_minus_lr_times_g(dtype, contiguous):
    from conftest import fast_mode

    from minicnn import config
    from minicnn.fast import cpu_sgd, dispatch

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 33)).astype(dtype)
    g = rng.standard_normal((64, 33)).astype(dtype)
    if not contiguous:
        w, g = w[:, ::2], g[:, ::2]
    want = w.copy()
    want -= (0.9 * (1 / 256)) * g  # the textbook's update
    with fast_mode():
        assert dispatch.sgd(w, g) == contiguous  # a strided parameter takes the textbook's update
    if contiguous:
        cpu_sgd.axpy_(w, -0.9 * (1 / 256), g)
        np.testing.assert_array_equal(w, want)
    start, results = rng.standard_normal((5, 7)), []
    for textbook in (True, False):  # the same through Trainer.step in both modes
        p = make_param("w", start)
        backward_with_grad([p], [g[:5, :7]])
        with config.textbook(textbook):
            mc.Trainer([p], "sgd", {"learning_rate": 0.9}).step(256)
        results.append(p.data().asnumpy())
    np.testing.assert_array_equal(results[0], results[1])


def test_a_custom_initializer_may_fill_data_in_place_with_gluons_init_weight():
    """The book's own custom initializer (section 4.2): `_init_weight(name, data)` gets each weight's name and an
    NDArray to fill; biases keep their zeros."""
    seen = []

    class MyInit(init.Initializer):
        def _init_weight(self, name, data):
            seen.append((name, data.shape))
            data[:] = mc.nd.random.uniform(low=-10, high=10, shape=data.shape)
            data *= data.abs() >= 5

    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"), nn.Dense(10))
    net.initialize(MyInit(), force_reinit=True)
    with autograd.record():  # the shapes are known at the first forward pass, here inside record()
        net(mc.nd.random.uniform(shape=(2, 20)))
    assert seen == [(net[0].weight.name, (256, 20)), (net[1].weight.name, (10, 256))]
    w = net[0].weight.data().asnumpy()
    assert ((np.abs(w) >= 5) | (w == 0)).all() and (np.abs(w) <= 10).all() and (w == 0).mean() > 0.3
    assert not net[0].bias.data().asnumpy().any()


def test_an_initializer_that_defines_neither_way_of_drawing_says_so():
    class Nothing(init.Initializer):
        pass

    net = nn.Dense(3, in_units=2)
    with pytest.raises(NotImplementedError, match=r"Nothing draws nothing: define __call__.*or Gluon's _init_weight"):
        net.initialize(Nothing())
