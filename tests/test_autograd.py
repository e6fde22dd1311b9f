"""Specification of the autograd engine: NDArray arithmetic, backward, graph lifetime, grad_req, modes, dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
from minicnn import autograd, ops
from minicnn.autograd import Function, NDArray


def leaf(values, dtype="float64", grad_req="write") -> NDArray:
    x = mc.array(np.asarray(values), dtype=dtype)
    x.attach_grad(grad_req)
    return x


def reduce_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """What a broadcast gradient must sum back to: sum over leading axes, then over stretched size-1 axes."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


# ---- arithmetic ---------------------------------------------------------------------------------------
BINARY = {
    # name: (minicnn op, value, d/da, d/db) with a, b NumPy arrays
    "add": (lambda a, b: a + b, lambda a, b: a + b, lambda a, b: np.ones_like(a + b), lambda a, b: np.ones_like(a + b)),
    "sub": (
        lambda a, b: a - b,
        lambda a, b: a - b,
        lambda a, b: np.ones_like(a + b),
        lambda a, b: -np.ones_like(a + b),
    ),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, lambda a, b: b + 0 * a, lambda a, b: a + 0 * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b, lambda a, b: 1 / b + 0 * a, lambda a, b: -a / b**2),
}
BROADCAST_SHAPES = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 3), (2, 1)),
    ((1, 3), (4, 1)),
    ((2, 3, 4), (3, 1)),
    ((3,), ()),
]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize(("shape_a", "shape_b"), BROADCAST_SHAPES)
def test_binary_ops_backward_sum_broadcast_gradients_back_to_each_input_shape(name, shape_a, shape_b, rng):
    op, value, da, db = BINARY[name]
    a_np = rng.uniform(0.5, 2.0, shape_a)  # away from 0 so division is tame
    b_np = rng.uniform(0.5, 2.0, shape_b)
    a, b = leaf(a_np), leaf(b_np)
    with autograd.record():
        y = op(a, b)
    r = rng.standard_normal(y.shape)
    y.backward(mc.array(r, dtype="float64"))
    np.testing.assert_allclose(y.asnumpy(), value(a_np, b_np), rtol=1e-12)
    np.testing.assert_allclose(a.grad.asnumpy(), reduce_to(r * da(a_np, b_np), shape_a), rtol=1e-12)
    np.testing.assert_allclose(b.grad.asnumpy(), reduce_to(r * db(a_np, b_np), shape_b), rtol=1e-12)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b


SCALAR_CASES = {
    "x + 2": (lambda x: x + 2, lambda v: v + 2, np.ones_like),
    "2 + x": (lambda x: 2 + x, lambda v: 2 + v, np.ones_like),
    "x - 2": (lambda x: x - 2, lambda v: v - 2, np.ones_like),
    "2 - x": (lambda x: 2 - x, lambda v: 2 - v, lambda v: -np.ones_like(v)),
    "x * 3": (lambda x: x * 3, lambda v: v * 3, lambda v: np.full_like(v, 3)),
    "3 * x": (lambda x: 3 * x, lambda v: 3 * v, lambda v: np.full_like(v, 3)),
    "x / 4": (lambda x: x / 4, lambda v: v / 4, lambda v: np.full_like(v, 0.25)),
    "4 / x": (lambda x: 4 / x, lambda v: 4 / v, lambda v: -4 / v**2),
    "-x": (lambda x: -x, lambda v: -v, lambda v: -np.ones_like(v)),
    "np.float64(2) * x": (lambda x: np.float64(2) * x, lambda v: 2 * v, lambda v: np.full_like(v, 2)),
}


@pytest.mark.parametrize("case", SCALAR_CASES)
def test_arithmetic_with_python_scalars_on_either_side(case):
    f, value, grad = SCALAR_CASES[case]
    v = np.array([[0.5, 1.0, 2.0], [-1.5, 3.0, -0.25]])
    x = leaf(v)
    with autograd.record():
        y = f(x)
    assert isinstance(y, NDArray)
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), value(v), rtol=1e-12)
    np.testing.assert_allclose(x.grad.asnumpy(), grad(v), rtol=1e-12)


REDUCTIONS = {
    "sum()": (lambda x: x.sum(), lambda v: v.sum(), lambda v, r: np.broadcast_to(r, v.shape)),
    "sum(axis=1)": (
        lambda x: x.sum(axis=1),
        lambda v: v.sum(axis=1),
        lambda v, r: np.broadcast_to(r[:, None], v.shape),
    ),
    "sum(axis=-1)": (
        lambda x: x.sum(axis=-1),
        lambda v: v.sum(-1),
        lambda v, r: np.broadcast_to(r[..., None], v.shape),
    ),
    "sum(axis=(0, 2), keepdims)": (
        lambda x: x.sum(axis=(0, 2), keepdims=True),
        lambda v: v.sum(axis=(0, 2), keepdims=True),
        lambda v, r: np.broadcast_to(r, v.shape),
    ),
    "mean()": (lambda x: x.mean(), lambda v: v.mean(), lambda v, r: np.broadcast_to(r / v.size, v.shape)),
    "mean(axis=0)": (lambda x: x.mean(axis=0), lambda v: v.mean(0), lambda v, r: np.broadcast_to(r / 2, v.shape)),
    "mean(axis=(1, 2))": (
        lambda x: x.mean(axis=(1, 2)),
        lambda v: v.mean(axis=(1, 2)),
        lambda v, r: np.broadcast_to(r[:, None, None] / 12, v.shape),
    ),
    "reshape(-1)": (lambda x: x.reshape(-1), lambda v: v.reshape(-1), lambda v, r: r.reshape(v.shape)),
    "reshape((4, 6))": (lambda x: x.reshape((4, 6)), lambda v: v.reshape(4, 6), lambda v, r: r.reshape(v.shape)),
    "reshape(2, 12)": (lambda x: x.reshape(2, 12), lambda v: v.reshape(2, 12), lambda v, r: r.reshape(v.shape)),
    "flatten()": (lambda x: x.flatten(), lambda v: v.reshape(2, 12), lambda v, r: r.reshape(v.shape)),
}


@pytest.mark.parametrize("case", REDUCTIONS)
def test_sum_mean_reshape_values_and_gradients(case, rng):
    f, value, grad = REDUCTIONS[case]
    v = rng.standard_normal((2, 3, 4))
    x = leaf(v)
    with autograd.record():
        y = f(x)
    r = rng.standard_normal(y.shape)
    y.backward(mc.array(r, dtype="float64"))
    np.testing.assert_allclose(y.asnumpy(), value(v), rtol=1e-12)
    np.testing.assert_allclose(x.grad.asnumpy(), grad(v, r), rtol=1e-12)


def test_sum_of_everything_is_a_zero_dim_array_whose_asnumpy_is_an_ndarray():
    s = mc.array(np.arange(6.0)).sum()
    assert s.shape == ()
    assert isinstance(s.asnumpy(), np.ndarray)
    assert s.asscalar() == 15.0


def test_sum_over_the_empty_tuple_of_axes_sums_everything_as_in_mxnet():
    x = mc.array(np.arange(6.0).reshape(2, 3))
    x.attach_grad()
    with autograd.record():
        s = (x * x).sum(axis=())
    s.backward()
    assert s.asscalar() == 55.0
    np.testing.assert_array_equal(x.grad.asnumpy(), 2 * x.asnumpy())


def test_comparisons_and_argmax_give_numbers_in_the_arrays_dtype_not_booleans_or_int64():
    x = mc.array(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), dtype="float32")
    hits = x.argmax(axis=1) == mc.array(np.array([1.0, 2.0]))
    assert hits.dtype == np.float32 and hits.asnumpy().tolist() == [1.0, 0.0]
    assert hits.sum().asscalar() == 1.0
    for above in (x > 2, 2 < x):
        assert above.dtype == np.float32 and above.asnumpy().tolist() == [[0, 1, 0], [1, 0, 1]]
    assert x.argmax().dtype == np.float32 and x.argmax().asscalar() == 3.0


def test_asnumpy_is_a_snapshot_that_later_training_does_not_change():
    w = mc.array(np.array([1.0, 2.0]))
    w.attach_grad()
    snapshots = []
    for k in (1.0, 10.0):
        with autograd.record():
            loss = (w * k).sum()
        loss.backward()
        snapshots.append(w.grad.asnumpy())
    assert [s.tolist() for s in snapshots] == [[1.0, 1.0], [10.0, 10.0]]
    host = w.asnumpy()
    host[0] = 99.0
    assert w.asnumpy().tolist() == [1.0, 2.0]


def test_in_place_operators_change_the_array_itself_and_keep_its_gradient():
    w = mc.array(np.array([1.0, 2.0]))
    w.attach_grad()
    same = w
    with autograd.record():
        loss = (w * w).sum()
    loss.backward()
    w -= 0.5 * w.grad  # the hand-written SGD step of d2l's earlier chapters
    w *= 2
    w += 1
    w /= 2
    assert w is same and w.asnumpy().tolist() == [0.5, 0.5]
    with autograd.record():
        loss = (w * 3).sum()
    loss.backward()
    assert w.grad.asnumpy().tolist() == [3.0, 3.0]
    with autograd.record(), pytest.raises(RuntimeError, match=r"x \+= y inside autograd.record"):
        w += 1
    x = mc.array(np.array([3.0, 4.0]))  # no gradient of its own, but the graph keeps it for w's
    with autograd.record():
        loss = (w * x).sum()
        with pytest.raises(RuntimeError, match=r"x \*= y inside autograd.record"):
            x *= 2
    loss.backward()
    assert w.grad.asnumpy().tolist() == [3.0, 4.0]
    frozen = mc.array(np.zeros(2))
    frozen.data.flags.writeable = False
    with pytest.raises(ValueError, match=r"x is read-only .*take x.copy\(\) first"):
        frozen += 1
    with pytest.raises(ValueError, match=r"y's shape \(3,\) does not broadcast to x's \(2,\)"):
        w += mc.array(np.ones(3))


def test_first_axis_items_and_slices_share_memory_and_every_other_selection_is_a_copy_as_in_mxnet():
    x = mc.array(np.zeros((3, 4)))
    row, rows = x[1], x[0:2]
    row += 1
    rows[:] = rows + 2
    column, corner, t = x[:, 1], x[1:, 1:], x.T
    column += 10
    corner += 10
    t += 10
    assert x.asnumpy().tolist() == [[2, 2, 2, 2], [3, 3, 3, 3], [0, 0, 0, 0]]


def test_copyto_copies_to_a_device_or_into_an_array_and_float_index_arrays_index():
    x = mc.array(np.array([[1.0, 2.0], [3.0, 4.0]]))
    y = x.copyto(mc.cpu())
    y[:] = 0
    assert x.asnumpy().sum() == 10.0
    target = mc.nd.zeros((2, 2), dtype="float64")
    assert x.copyto(target) is target and target.dtype == np.float64 and target.asnumpy().sum() == 10.0
    with pytest.raises(ValueError, match=r"shape \(2, 2\), the target \(3,\)"):
        x.copyto(mc.nd.zeros((3,)))
    assert x[mc.array(np.array([1.0, 0.0]))].asnumpy().tolist() == [[3.0, 4.0], [1.0, 2.0]]
    assert x[mc.array(np.array([0.0, 1.0])), mc.array(np.array([1.0, 1.0]))].asnumpy().tolist() == [2.0, 4.0]


def test_reshape_to_an_impossible_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 2\)"):
        mc.array(np.zeros((2, 3))).reshape(4, 2)


def test_exp_and_log_gradients():
    v = np.array([0.5, 1.0, 2.0])
    x = leaf(v)
    with autograd.record():
        y = x.exp() + x.log()
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), np.exp(v) + 1 / v, rtol=1e-12)


def test_indexing_scatters_the_gradient_and_repeated_indices_add_up():
    x = leaf(np.arange(5.0))
    with autograd.record():
        y = x[np.array([0, 2, 2, 4])] * 1.0 + x[1:3].sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [1.0, 4.0, 6.0, 0.0, 1.0])


@pytest.mark.parametrize("key", [(slice(None), slice(1, 3)), (Ellipsis, slice(None, None, 2)), (1,), (-1, None, 0)])
def test_basic_indexing_sends_the_gradient_to_the_picked_elements_only(key):
    v = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(v)
    with autograd.record():
        y = (x[key] * 2.0).sum()
    y.backward()
    want = np.zeros_like(v)
    want[key] = 2.0
    np.testing.assert_array_equal(x.grad.asnumpy(), want)


# ---- graph structure ----------------------------------------------------------------------------------
def test_a_node_used_several_times_sums_the_gradients_of_all_uses():
    v = np.array([-2.0, 0.5, 3.0])
    x = leaf(v)
    with autograd.record():
        y = x * x + x  # x feeds three uses
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * v + 1)


def test_a_shared_intermediate_receives_every_consumers_gradient_before_its_own_backward_runs():
    # a = 2x feeds a*a and 3a (a diamond, like an Inception input feeding four paths): dy/dx = (2a + 3) * 2
    v = np.array([1.0, -0.5])
    x = leaf(v)
    with autograd.record():
        a = x * 2
        y = a * a + a * 3 + (a + 1) * 0.5
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), (2 * (2 * v) + 3 + 0.5) * 2)


def test_a_deep_chain_of_5000_ops_does_not_hit_the_recursion_limit():
    x = leaf([1.0, 2.0])
    with autograd.record():
        y = x
        for _ in range(5000):
            y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [1.0001**5000] * 2, rtol=1e-9)


def test_the_graph_is_freed_after_backward_so_a_second_backward_raises():
    x = leaf([1.0, 2.0])
    with autograd.record():
        sq = x * x
        y = sq.sum()
    mul = sq.creator
    y.backward()
    assert mul.inputs is None and not hasattr(mul, "a")  # links and the arrays saved for backward are gone
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_keeps_the_graph_for_a_second_backward():
    x = leaf([1.0, 2.0], grad_req="add")
    with autograd.record():
        y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * (2 * np.array([1.0, 2.0])))


def test_backward_through_a_subgraph_freed_by_an_earlier_backward_raises_instead_of_keeping_stale_grads():
    # MXNet 1.9.1 raises here too; silently skipping the freed part would leave x.grad from the first call.
    x = leaf([1.0, 2.0])
    with autograd.record():
        y = x * 2
        a = y + 1
        b = y * y
    a.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        b.backward()


def test_with_retain_graph_two_outputs_sharing_a_subgraph_can_both_backpropagate():
    x = leaf([1.0, 2.0])
    with autograd.record():
        y = x * 2
        a = y + 1
        b = y * y
    a.backward(retain_graph=True)
    b.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 8 * np.array([1.0, 2.0]))  # d(4x^2)/dx


class _FirstOnly(Function):
    """y = a (b only rides along): backward returns None for b, which the engine must accept."""

    def forward(self, a, b):
        return a.copy()

    def backward(self, gy):
        return gy, None


def test_a_function_may_return_none_for_an_input_that_was_itself_computed():
    x = leaf([1.0, 2.0])
    with autograd.record():
        other = x * 5  # has a creator, but its gradient never arrives
        y = _FirstOnly()(x, other)
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [1.0, 1.0])


def test_backward_on_a_leaf_gives_ones():
    x = leaf([3.0, 4.0])
    x.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [1.0, 1.0])


def test_backward_with_an_out_grad_of_the_wrong_shape_raises():
    x = leaf([1.0, 2.0])
    with autograd.record():
        y = x * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        y.backward(mc.array(np.ones(3), dtype="float64"))


# ---- recording and modes ------------------------------------------------------------------------------
def test_nothing_is_recorded_outside_record():
    x = leaf([1.0, 2.0])
    y = x * 2 + 1
    assert y.creator is None
    with pytest.raises(RuntimeError, match="record"):
        y.backward()


def test_nothing_is_recorded_inside_pause():
    x = leaf([1.0, 2.0])
    with autograd.record():
        with autograd.pause():
            y = x * 2
        z = x * 3
    assert y.creator is None
    assert z.creator is not None


def test_operations_on_arrays_without_attach_grad_are_not_recorded():
    x = mc.array([1.0, 2.0], dtype="float64")
    with autograd.record():
        y = x * 2
    assert y.creator is None


def test_is_training_only_inside_record_in_train_mode():
    assert not autograd.is_training() and not autograd.is_recording()
    with autograd.record():
        assert autograd.is_training() and autograd.is_recording()
        with autograd.pause():
            assert not autograd.is_training() and not autograd.is_recording()
        assert autograd.is_training()
    with autograd.record(train_mode=False):
        assert not autograd.is_training() and autograd.is_recording()
    with autograd.train_mode():
        assert autograd.is_training() and not autograd.is_recording()
    assert not autograd.is_training() and not autograd.is_recording()


def test_record_restores_the_mode_when_its_body_raises():
    with pytest.raises(KeyError), autograd.record():
        raise KeyError("boom")
    assert not autograd.is_recording() and not autograd.is_training()


# ---- grad_req -----------------------------------------------------------------------------------------
def _backward_twice(grad_req: str) -> np.ndarray:
    x = leaf([1.0, 2.0], grad_req=grad_req)
    for scale in (3.0, 5.0):
        with autograd.record():
            y = x * scale
        y.backward()
    return x.grad.asnumpy()


def test_grad_req_write_overwrites_the_previous_gradient():
    np.testing.assert_array_equal(_backward_twice("write"), [5.0, 5.0])


def test_grad_req_add_accumulates_across_backward_calls():
    np.testing.assert_array_equal(_backward_twice("add"), [8.0, 8.0])


def test_attach_grad_starts_from_zero_and_rejects_unknown_grad_req():
    x = mc.array([1.0, 2.0])
    x.attach_grad()
    np.testing.assert_array_equal(x.grad.asnumpy(), [0.0, 0.0])
    with pytest.raises(ValueError, match="grad_req"):
        x.attach_grad("sum")


# ---- conversions --------------------------------------------------------------------------------------
def test_argmax_asnumpy_asscalar_and_shape():
    x = mc.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    np.testing.assert_array_equal(x.argmax(axis=1).asnumpy(), [1, 0])  # a tie picks the first
    assert x.argmax().asscalar() == 3
    a = x.asnumpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1, 5, 2], [7, 0, 7]])
    assert x[1, 2].asscalar() == 7.0 and isinstance(x[1, 2].asscalar(), float)
    with pytest.raises(ValueError, match=r"size 1.*\(2, 3\)"):
        x.asscalar()


def test_array_defaults_to_float32_like_mxnet_and_keeps_a_requested_dtype():
    assert mc.array([1, 2]).dtype == np.float32
    assert mc.array(np.arange(3.0)).dtype == np.float32
    assert mc.array([1, 2], dtype="float64").dtype == np.float64


def test_comparisons_give_arrays_that_sum_to_a_count():
    y_hat = mc.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    y = mc.array([1, 1, 1])
    correct = (y_hat.argmax(axis=1) == y).sum().asscalar()
    assert correct == 2


# ---- dtypes: no op upcasts float32, none downcasts float64 --------------------------------------------
def _conv(x, w, b):
    return ops.conv2d(x, w, b, stride=1, pad=1)


OPS_FOR_DTYPE = {
    # name: (function of the inputs, input shapes)
    "add": (lambda a, b: a + b, [(2, 3), (3,)]),
    "sub": (lambda a, b: a - b, [(2, 3), (2, 1)]),
    "mul": (lambda a, b: a * b, [(2, 3), (2, 3)]),
    "div": (lambda a, b: a / (b * b + 1), [(2, 3), (3,)]),
    "scalar arithmetic": (lambda a: (2 - a * 3 + 1.5) / 4 - (-a) + 1 / (a * a + 1), [(2, 3)]),
    "sum": (lambda a: a.sum(), [(2, 3)]),
    "sum axis": (lambda a: a.sum(axis=1), [(2, 3)]),
    "mean": (lambda a: a.mean(), [(2, 3)]),
    "mean axis": (lambda a: a.mean(axis=(0,)), [(2, 3)]),
    "reshape": (lambda a: a.reshape(3, 2), [(2, 3)]),
    "getitem": (lambda a: a[:, 1:], [(2, 3)]),
    "exp log": (lambda a: (a * a + 1).log() + a.exp(), [(2, 3)]),
    "relu": (ops.relu, [(2, 3)]),
    "sigmoid": (ops.sigmoid, [(2, 3)]),
    "flatten": (ops.flatten, [(2, 3, 2, 2)]),
    "conv2d": (_conv, [(2, 3, 5, 5), (4, 3, 3, 3), (4,)]),
    "conv2d 1x1": (ops.conv2d, [(2, 3, 4, 4), (2, 3, 1, 1)]),
    "max_pool2d": (lambda x: ops.max_pool2d(x, 3, 2, 1), [(2, 3, 5, 5)]),
    "avg_pool2d": (lambda x: ops.avg_pool2d(x, 3, 2, 1), [(2, 3, 5, 5)]),
    "global_avg_pool2d": (ops.global_avg_pool2d, [(2, 3, 5, 5)]),
    "dense": (ops.dense, [(2, 3, 2, 2), (5, 12), (5,)]),
    "conv2d + fused sigmoid": (lambda x, w, b: ops.conv2d(x, w, b, act="sigmoid"), [(2, 1, 3, 3), (2, 1, 2, 2), (2,)]),
    "dense + fused relu": (lambda x, w, b: ops.dense(x, w, b, act="relu"), [(2, 6), (3, 6), (3,)]),
    "concat": (lambda a, b: ops.concat(a, b, dim=1), [(2, 3, 2), (2, 1, 2)]),
    "softmax cross-entropy": (lambda z: ops.softmax_cross_entropy(z, mc.array([0, 2])), [(2, 3)]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", OPS_FOR_DTYPE)
def test_outputs_and_gradients_keep_the_input_dtype(name, dtype, rng):
    f, shapes = OPS_FOR_DTYPE[name]
    xs = [leaf(rng.uniform(0.5, 1.5, s), dtype=dtype) for s in shapes]
    with autograd.record():
        y = f(*xs)
        loss = (y * 0.5).sum()
    assert y.dtype == np.dtype(dtype), f"{name} output is {y.dtype}"
    assert loss.dtype == np.dtype(dtype)
    loss.backward()
    for i, x in enumerate(xs):
        assert x.grad.dtype == np.dtype(dtype), f"{name} gradient of input {i} is {x.grad.dtype}"
        assert x.grad.data.dtype == np.dtype(dtype)
        assert np.any(x.grad.asnumpy() != 0), f"{name} gradient of input {i} is all zero"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_keeps_the_dtype_of_output_and_gradient(dtype):
    x = leaf(np.ones((4, 5)), dtype=dtype)
    with autograd.record():
        y = ops.dropout(x, 0.5)
    y.backward()
    assert y.dtype == np.dtype(dtype) and x.grad.dtype == np.dtype(dtype)


def test_truth_of_an_ndarray_is_its_single_value_and_ambiguous_otherwise():
    assert bool(mc.array([3.0]) > 2)
    assert not bool(mc.array([1.0]) > 2)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(mc.array([1.0, 2.0]) > 0)
