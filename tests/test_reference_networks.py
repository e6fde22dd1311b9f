"""The five chapter networks in minicnn and in MXNet Gluon, with the same parameters: logits, loss, the gradient of
every parameter and the parameters after one SGD step must agree, at the chapter's input sizes.

How the runs are made equal:
- Parameters: minicnn's network is initialised (Xavier, seeded) and copied into the Gluon network by
  `reference.bridge`, which matches the two by structure.
- Dropout (AlexNet, VGG-11, NiN): both run in training mode with the SAME masks. MXNet draws them; a forward hook
  on each Gluon Dropout reads its mask back from its output (output != 0, times 1/(1-rate)), and minicnn's
  mask generator is replaced for the test by one that hands those masks out in order. Where a dropout input is
  exactly 0 (a ReLU zero) the read-back mask says 0 whatever MXNet drew; the output is 0 either way and the
  gradient there is 0 either way (the ReLU, or a max over an all-zero window followed by a ReLU, passes none).
  Prediction mode (`record(train_mode=False)`) is NOT used: MXNet 1.9.1's MKLDNN max pooling, recorded in
  prediction mode, sends every window's gradient to the window's top-left element (it keeps no argmax workspace),
  so its gradients are wrong there.
- dtype: float64 and float32. In float64 the two libraries agree to ~1e-15 everywhere (MXNet's float64 path is its
  native CPU code), so every parameter's gradient and update is checked on its own, elementwise. In float32 (the
  chapter's dtype) logits and losses agree to ~1e-6, but gradients below a max-pool can differ by much more: where
  two values of a pooling window lie within float32 rounding of each other, the two libraries' convolutions (same
  terms, other summation order) can rank them differently, and the window's gradient goes to another element.
  One such window can move a small parameter's gradient by 1e-2, so float32 bounds the network's gradients as one
  vector and each parameter only coarsely; float64 makes the exact per-parameter statement. See
  reference/TOLERANCES.md for the measured numbers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import minicnn as mc
from minicnn import models
from reference import MXNET_SKIP_REASON, load_mxnet

mx = load_mxnet()
if mx is not None:
    G = importlib.import_module("reference.gluon_models")
    bridge = importlib.import_module("reference.bridge")

pytestmark = [pytest.mark.reference, pytest.mark.skipif(mx is None, reason=MXNET_SKIP_REASON)]

NETWORKS = ["lenet", "alexnet", "vgg11", "nin", "googlenet"]
INPUT_SIZES = {"lenet": 28, "alexnet": 224, "vgg11": 224, "nin": 224, "googlenet": 96}  # the chapter's
BATCH = {"lenet": 8, "alexnet": 2, "vgg11": 2, "nin": 2, "googlenet": 2}  # the only thing reduced
DATA_SEED = 1  # inputs and labels
DROPOUT_LAYERS = {"lenet": 0, "alexnet": 2, "vgg11": 2, "nin": 1, "googlenet": 0}


@dataclass(frozen=True)
class Bounds:
    """Bounds for the gradients (or the SGD updates) of a network. `norm` errors are ||ours - theirs|| / ||theirs||,
    `max` errors are max|ours - theirs| / max|theirs|."""

    network: float  # all parameters taken as one vector: norm error
    parameter_norm: float  # each parameter on its own: norm error
    parameter_max: float | None  # each parameter on its own: max error (None: not asserted)


@dataclass(frozen=True)
class Tolerance:
    forward: float  # logits and per-sample losses: norm and max errors
    grads: Bounds
    updates: Bounds  # parameter after the step minus before


TOLERANCES = {
    # Measured worst cases: logits 1.4e-15, losses 1.4e-16, gradients 3.6e-15 (norm) and 5.1e-15 (max) per
    # parameter. The SGD updates differ by 1.5e-8 to 2.6e-8, every element alike: MXNet's optimizer takes the
    # learning rate as a C float (lr = 0.1 becomes 0.100000001490116) even for float64 parameters.
    "float64": Tolerance(forward=1e-12, grads=Bounds(1e-12, 1e-12, 1e-12), updates=Bounds(1e-7, 1e-7, 1e-7)),
    # Measured over 5 data seeds (VGG-11, GoogLeNet, AlexNet) or 1 (the others): logits <= 1.5e-6, losses <= 1.2e-6.
    # Gradients where no pooling window changes its winner (always in LeNet, AlexNet, NiN): <= 4e-6 for the whole
    # network, <= 5e-6 for any parameter. Where some windows do (see the module docstring): whole network up to
    # 4.8e-3, one parameter up to 1.7e-2 (norm) and 6.2e-2 (max), so single parameters get only a coarse norm bound,
    # which a wrong index or sign (errors of order 1) still exceeds. float64 makes the exact per-parameter statement.
    "float32": Tolerance(forward=1e-5, grads=Bounds(3e-2, 0.1, None), updates=Bounds(3e-2, 0.1, None)),
}


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """||ours - theirs|| / ||theirs|| (0 when both are all zeros). Computed in the arrays' dtype: a float32
    norm is accurate to ~1e-7 relative, far below the float32 bounds, and VGG's 100M-element arrays stay cheap."""
    diff = float(np.linalg.norm((ours - theirs).ravel()))
    scale = float(np.linalg.norm(theirs.ravel()))
    return diff / scale if scale else diff


def elementwise_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max|ours - theirs| / max|theirs|: the worst single element, on the scale of the whole array."""
    diff = ours - theirs
    np.abs(diff, out=diff)
    scale = float(np.abs(theirs).max())
    return float(diff.max()) / scale if scale else float(diff.max())


# ---- building and running the two networks -------------------------------------------------------------
def cast_minicnn(net, dtype: str) -> None:
    """Give every parameter of a minicnn network `dtype`, keeping its values (like Gluon's `net.cast`)."""
    for p in net.collect_params().values():
        values = p.data().asnumpy()
        p.dtype = np.dtype(dtype)
        p.initialize(init=mc.init.Zero(), force_reinit=True)
        p.set_data(values)


def iter_gluon_blocks(block):
    yield block
    for child in block._children.values():
        yield from iter_gluon_blocks(child)


_built: dict = {}  # (name, dtype) -> (minicnn net, gluon net); only the latest pair is kept (VGG-11 is 0.5 GB)


def build_pair(name: str, dtype: str):
    """minicnn's network (Xavier, seed 0) and the Gluon network holding the same parameters, in `dtype`."""
    if (name, dtype) in _built:
        return _built[(name, dtype)]
    _built.clear()
    size = INPUT_SIZES[name]
    mc.random.seed(0)
    ours = models.get(name).build()
    ours.initialize(init=mc.init.Xavier())
    bridge.materialize(ours, (1, 1, size, size))
    theirs = G.build(name)
    theirs.initialize()  # values are overwritten by the bridge
    if dtype != "float32":
        cast_minicnn(ours, dtype)
        bridge.materialize(theirs, (1, 1, size, size))
        theirs.cast(dtype)
    bridge.to_gluon(ours, theirs, input_shape=(1, 1, size, size))
    _built[(name, dtype)] = ours, theirs
    return ours, theirs


@dataclass
class Comparison:
    name: str
    dtype: str
    logits: tuple
    losses: tuple
    masks: int
    grads: list = field(default_factory=list)  # per parameter: (name, norm error, max error, max|theirs|)
    grads_network: float = 0.0  # norm error of all gradients as one vector
    updates: list = field(default_factory=list)  # per parameter: (name, norm error, max error, max|theirs|)
    updates_network: float = 0.0


def _network_error(pairs) -> float:
    """||ours - theirs|| / ||theirs|| over all (ours, theirs) array pairs taken as one vector."""
    diff2 = sum(float(np.linalg.norm((a - b).ravel())) ** 2 for a, b in pairs)
    total2 = sum(float(np.linalg.norm(b.ravel())) ** 2 for _, b in pairs)
    return (diff2 / total2) ** 0.5 if total2 else diff2**0.5


def _errors(name, ours, theirs) -> tuple:
    return name, relative_error(ours, theirs), elementwise_error(ours, theirs), float(np.abs(theirs).max())


def compare(name: str, dtype: str) -> Comparison:
    ours, theirs = build_pair(name, dtype)
    rng = np.random.default_rng(DATA_SEED)
    size, batch = INPUT_SIZES[name], BATCH[name]
    x = rng.random((batch, 1, size, size)).astype(dtype)  # like ToTensor's output: [0, 1)
    y = rng.integers(0, 10, size=batch).astype(dtype)  # Gluon's loss takes float labels

    # MXNet first, reading back each dropout mask it draws.
    masks = []

    def keep_mask(block, inputs, output):
        scale = np.asarray(1.0 / (1.0 - block._rate), dtype=dtype)
        masks.append((output.asnumpy() != 0).astype(dtype) * scale)

    hooks = [
        b.register_forward_hook(keep_mask) for b in iter_gluon_blocks(theirs) if isinstance(b, mx.gluon.nn.Dropout)
    ]
    try:
        with mx.autograd.record():  # training mode, as the chapter's train_ch5
            z_ref = theirs(mx.nd.array(x, dtype=dtype))
            l_ref = mx.gluon.loss.SoftmaxCrossEntropyLoss()(z_ref, mx.nd.array(y, dtype=dtype))
            total_ref = l_ref.sum()  # the chapter's l.sum().backward()
        total_ref.backward()
    finally:
        for h in hooks:
            h.detach()

    queue = list(masks)

    def shared_mask(shape, rate, mask_dtype, generator):
        mask = queue.pop(0)
        assert mask.shape == tuple(shape), f"dropout mask {mask.shape} handed to an input of shape {shape}"
        return mask.astype(mask_dtype)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mc.backend.cpu, "dropout_mask", shared_mask)
        with mc.autograd.record():
            z = ours(mc.array(x, dtype=dtype))
            loss = mc.loss.SoftmaxCrossEntropyLoss()(z, mc.array(y, dtype=dtype))
            total = loss.sum()
        total.backward()
    assert not queue, f"{name}: minicnn used {len(masks) - len(queue)} of MXNet's {len(masks)} dropout masks"

    result = Comparison(name, dtype, (z.asnumpy(), z_ref.asnumpy()), (loss.asnumpy(), l_ref.asnumpy()), len(masks))
    matched = bridge.pairs(ours, theirs)
    grads = [(p.grad().asnumpy(), q.grad().asnumpy()) for p, q in matched]
    result.grads = [_errors(p.name, *g) for (p, _), g in zip(matched, grads)]
    result.grads_network = _network_error(grads)
    del grads
    before = [p.data().asnumpy().copy() for p, _ in matched]

    lr = models.get(name).lr  # the chapter's learning rate for this network
    mc.Trainer(ours.collect_params(), "sgd", {"learning_rate": lr}).step(batch)
    mx.gluon.Trainer(theirs.collect_params(), "sgd", {"learning_rate": lr}).step(batch)
    updates = [(p.data().asnumpy() - w0, q.data().asnumpy() - w0) for (p, q), w0 in zip(matched, before)]
    result.updates = [_errors(p.name, *u) for (p, _), u in zip(matched, updates)]
    result.updates_network = _network_error(updates)
    _built.clear()  # the parameters have moved: rebuild for the next comparison
    return result


CASES = [(name, dtype) for name in NETWORKS for dtype in ("float32", "float64")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{n}-{d}" for n, d in CASES])
def run(request):
    return compare(*request.param)


# ---- the comparisons -----------------------------------------------------------------------------------
def test_logits_agree_with_mxnet(run):
    tol = TOLERANCES[run.dtype]
    ours, theirs = run.logits
    assert ours.shape == theirs.shape == (BATCH[run.name], 10)
    errors = relative_error(ours, theirs), elementwise_error(ours, theirs)
    assert max(errors) <= tol.forward, (
        f"{run.name} {run.dtype} logits differ by {errors[0]:.2e} (norm), {errors[1]:.2e} (max)"
    )


def test_per_sample_losses_agree_with_mxnet(run):
    tol = TOLERANCES[run.dtype]
    ours, theirs = run.losses
    assert ours.shape == theirs.shape == (BATCH[run.name],)
    errors = relative_error(ours, theirs), elementwise_error(ours, theirs)
    assert max(errors) <= tol.forward, (
        f"{run.name} {run.dtype} losses differ by {errors[0]:.2e} (norm), {errors[1]:.2e} (max)"
    )


def test_each_dropout_layer_got_mxnets_mask(run):
    assert run.masks == DROPOUT_LAYERS[run.name]


def _check(run, rows, network_error, bounds: Bounds, what: str) -> None:
    assert len(rows) == len(models.get(run.name).build().collect_params())
    assert all(peak > 0 for *_, peak in rows), f"{run.name}: a {what} is all zeros, the comparison would prove little"
    worst = max(rows, key=lambda r: r[1])
    assert network_error <= bounds.network, (
        f"{run.name} {run.dtype}: the network's {what}s differ by {network_error:.2e} > {bounds.network:.0e} "
        f"(worst parameter {worst[0]}: {worst[1]:.2e})"
    )
    for name, norm_error, max_error, _ in rows:
        assert norm_error <= bounds.parameter_norm, f"{run.name} {run.dtype}: {name} {what} off by {norm_error:.2e}"
        if bounds.parameter_max is not None:
            assert max_error <= bounds.parameter_max, (
                f"{run.name} {run.dtype}: an element of {name}'s {what} is off by {max_error:.2e} of its largest"
            )


def test_gradient_of_every_parameter_agrees_with_mxnet(run):
    _check(run, run.grads, run.grads_network, TOLERANCES[run.dtype].grads, "gradient")


def test_parameters_after_one_sgd_step_agree_with_mxnet(run):
    """Both started from the same parameters (bit for bit, by the bridge), so equal updates mean equal parameters."""
    _check(run, run.updates, run.updates_network, TOLERANCES[run.dtype].updates, "SGD update")


# ---- the bridge ----------------------------------------------------------------------------------------
def _initialised(net, shape):
    net.initialize()
    bridge.materialize(net, shape)
    return net


def test_bridge_copies_gluon_parameters_into_minicnn_exactly():
    ours = _initialised(models.lenet(), (1, 1, 28, 28))
    theirs = G.lenet()
    theirs.initialize(mx.init.Xavier())
    bridge.to_minicnn(theirs, ours, input_shape=(1, 1, 28, 28))
    pairs = bridge.pairs(ours, theirs)
    assert len(pairs) == 10
    for p, q in pairs:
        np.testing.assert_array_equal(p.data().asnumpy(), q.data().asnumpy(), err_msg=p.name)


def test_bridge_names_the_first_layer_whose_shapes_differ():
    """The chapter's code listing gives LeNet's second convolution 6 channels; minicnn (like its text) 16."""
    listing = mx.gluon.nn.Sequential()
    listing.add(
        mx.gluon.nn.Conv2D(channels=6, kernel_size=5, activation="sigmoid"),
        mx.gluon.nn.MaxPool2D(pool_size=2, strides=2),
        mx.gluon.nn.Conv2D(channels=6, kernel_size=5, activation="sigmoid"),
        mx.gluon.nn.MaxPool2D(pool_size=2, strides=2),
        mx.gluon.nn.Dense(120, activation="sigmoid"),
        mx.gluon.nn.Dense(84, activation="sigmoid"),
        mx.gluon.nn.Dense(10),
    )
    with pytest.raises(ValueError, match=r"layer 1: minicnn Conv2D conv1 \(weight \(16, 6, 5, 5\).*\(6, 6, 5, 5\)"):
        bridge.to_gluon(_initialised(models.lenet(), (1, 1, 28, 28)), listing, input_shape=(1, 1, 28, 28))


def test_bridge_reports_different_layer_counts():
    ours = mc.nn.Sequential()
    ours.add(mc.nn.Dense(3), mc.nn.Dense(2))
    theirs = mx.gluon.nn.Sequential()
    theirs.add(mx.gluon.nn.Dense(3))
    with pytest.raises(ValueError, match="minicnn network has 2 parameterised layers and the gluon network 1"):
        bridge.to_gluon(_initialised(ours, (1, 4)), theirs, input_shape=(1, 4))


def test_bridge_rejects_a_convolution_with_another_stride():
    ours = mc.nn.Sequential()
    ours.add(mc.nn.Conv2D(2, kernel_size=3, strides=2))
    theirs = mx.gluon.nn.Sequential()
    theirs.add(mx.gluon.nn.Conv2D(2, kernel_size=3, strides=1))
    with pytest.raises(ValueError, match=r"stride \(2, 2\).*stride \(1, 1\)"):
        bridge.to_gluon(_initialised(ours, (1, 1, 8, 8)), theirs, input_shape=(1, 1, 8, 8))


def test_bridge_asks_for_an_input_shape_while_shapes_are_deferred():
    ours = models.lenet()
    ours.initialize()  # the first convolution's input channels are unknown until a forward pass
    with pytest.raises(ValueError, match="pass input_shape"):
        bridge.to_gluon(ours, G.lenet())
