"""fastgrad.nn: micrograd's Module/Neuron/Layer/MLP, number for number."""

import copy
import pickle
import random

import micrograd.engine
import micrograd.nn
import numpy as np
import pytest

import fastgrad.nn as nn
from conftest import COMPILED, Value
from fastgrad._scalar import reference

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


def moons(n, seed):
    """Two interleaved half circles with labels -1/+1 (sklearn's make_moons, without sklearn)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, n)
    upper = np.arange(n) < n // 2
    X = np.where(upper[:, None],
                 np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    X += rng.normal(0.0, 0.1, X.shape)
    return X, np.where(upper, -1, 1)


def train(nn_module, V, steps, X, y, seed=1337, sizes=(16, 16, 1)):
    """micrograd's demo loop: svm loss + L2, SGD; returns the losses and the final parameters."""
    random.seed(seed)
    model = nn_module.MLP(2, list(sizes))
    losses = []
    for k in range(steps):
        inputs = [list(map(V, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        data_loss = sum((1 + -yi * si).relu() for yi, si in zip(y, scores)) * (1.0 / len(scores))
        reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
        total = data_loss + reg_loss
        model.zero_grad()
        total.backward()
        lr = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= lr * p.grad
        losses.append(float(total.data))
    return losses, [float(p.data) for p in model.parameters()], model


def test_seeded_mlp_has_micrograds_parameters_and_repr():
    random.seed(7)
    ours = nn.MLP(3, [4, 4, 1])
    next_after_ours = random.random()
    random.seed(7)
    theirs = micrograd.nn.MLP(3, [4, 4, 1])
    next_after_theirs = random.random()
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    assert repr(ours) == repr(theirs)
    # the same number of random.uniform calls: a script's later random draws match too
    assert next_after_ours == next_after_theirs


def test_seeded_training_follows_micrograds_losses():
    X, y = moons(40, seed=3)
    ours, ours_params, _ = train(nn, Value, 5, X, y)
    theirs, their_params, _ = train(micrograd.nn, micrograd.engine.Value, 5, X, y)
    # step 0 is the same arithmetic in the same order: identical to the last bit
    assert ours[0] == theirs[0]
    # later steps: micrograd's backward order follows set iteration, so allow rounding
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert ours_params == pytest.approx(their_params, rel=1e-9, abs=1e-12)
    assert ours[-1] < ours[0]


def test_neuron_forward_is_micrograds_sum():
    random.seed(0)
    n = nn.Neuron(3)
    n.b.data = 0.25
    x = [Value(0.5), 2.0, np.float64(-1.5)]
    out = n(x)
    expected = n.b.data
    for w, xi in zip(n.w, [0.5, 2.0, -1.5]):
        expected = expected + w.data * xi
    assert out.data == max(expected, 0.0)
    assert out._op == "ReLU"
    out.backward()
    assert [w.grad for w in n.w] == ([0.5, 2.0, -1.5] if expected > 0 else [0.0] * 3)
    assert x[0].grad == (n.w[0].data if expected > 0 else 0.0)
    linear = nn.Neuron(3, nonlin=False)
    assert linear(x)._op == "+"
    assert repr(linear) == "LinearNeuron(3)" and repr(n) == "ReLUNeuron(3)"


def test_neuron_accepts_any_sequence_and_checks_length():
    random.seed(0)
    n = nn.Neuron(2)
    assert n(np.array([1.0, 2.0])).data == n([1.0, 2.0]).data
    assert n(x for x in (1.0, 2.0)).data == n((1.0, 2.0)).data
    with pytest.raises(ValueError, match="expected 2 inputs"):
        n([1.0])
    with pytest.raises(TypeError):
        n([1.0, "a"])
    with pytest.raises(TypeError):
        n(5)


def test_neuron_without_inputs_returns_its_bias():
    n = nn.Neuron(0, nonlin=False)
    assert n([]) is n.b


def test_parameters_order_and_zero_grad():
    random.seed(1)
    m = nn.MLP(2, [3, 1])
    params = m.parameters()
    assert len(params) == (2 + 1) * 3 + (3 + 1) * 1
    assert params[:3] == m.layers[0].neurons[0].w + [m.layers[0].neurons[0].b]
    out = m([1.0, -2.0])
    out.backward()
    assert any(p.grad != 0 for p in params)
    m.zero_grad()
    assert all(p.grad == 0 for p in params)
    assert list(nn.Module().parameters()) == []  # an iterator, as in PyTorch


def test_layer_returns_a_list_or_a_single_value():
    random.seed(2)
    assert isinstance(nn.Layer(2, 3)([1.0, 2.0]), list)
    assert isinstance(nn.Layer(2, 1)([1.0, 2.0]), type(Value(0.0)))


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_modules_copy_and_pickle(clone):
    random.seed(3)
    m = nn.MLP(2, [4, 1])
    m2 = clone(m)
    assert repr(m2) == repr(m)
    assert [p.data for p in m2.parameters()] == [p.data for p in m.parameters()]
    assert m2([0.3, -0.2]).data == m([0.3, -0.2]).data
    m2.parameters()[0].data += 1.0
    assert m2.parameters()[0].data != m.parameters()[0].data
    # the copy trains on its own
    out = m2([0.3, -0.2])
    out.backward()
    assert all(p.grad == 0 for p in m.parameters())


def test_pure_engine_nn_gives_the_same_numbers():
    """The reference engine's Neuron (a Python sum) and the core's one-call Neuron agree."""
    X, y = moons(20, seed=5)
    random.seed(11)
    model = nn.MLP(2, [8, 1])
    params = [p.data for p in model.parameters()]
    ref_params = [reference.Value(p) for p in params]
    out = sum(model(list(row)) for row in X)
    # rebuild the same network by hand on the reference engine
    it = iter(ref_params)
    ref_layers = []
    for layer in model.layers:
        ref_layers.append([([next(it) for _ in n.w], next(it), n.nonlin) for n in layer.neurons])

    def ref_forward(row):
        x = list(row)
        for neurons in ref_layers:
            x = [reference.linear_combination(w, x, b, relu=nl) for (w, b, nl) in neurons]
        return x[0]

    ref_out = sum(ref_forward(row) for row in X)
    assert out.data == ref_out.data
    out.backward()
    ref_out.backward()
    assert [p.grad for p in model.parameters()] == [p.grad for p in ref_params]


def test_layer_in_one_call_equals_neuron_by_neuron():
    random.seed(4)
    layer = nn.Layer(3, 4)
    x = [Value(0.3), -1.2, np.float64(0.7)]
    together = layer(x)
    one_by_one = [n(x) for n in layer.neurons]
    assert [v.data for v in together] == [v.data for v in one_by_one]
    assert [v._op for v in together] == [v._op for v in one_by_one]
    sum(together).backward()
    grads = [p.grad for p in layer.parameters()] + [x[0].grad]
    layer.zero_grad()
    x[0].grad = 0.0
    sum(one_by_one).backward()
    assert grads == [p.grad for p in layer.parameters()] + [x[0].grad]


def test_layer_keeps_a_neuron_subclass_own_call():
    class TanhNeuron(nn.Neuron):
        def __call__(self, x):
            return super().__call__(x).tanh()

    random.seed(5)
    layer = nn.Layer(2, 3, nonlin=False)
    layer.neurons[1] = TanhNeuron(2, nonlin=False)
    out = layer([0.5, -0.5])
    assert [v._op for v in out] == ["+", "tanh", "+"]


def test_layer_checks_its_inputs():
    random.seed(6)
    layer = nn.Layer(2, 3)
    with pytest.raises(ValueError, match="expected 2 inputs"):
        layer([1.0])
    with pytest.raises(TypeError):
        layer([1.0, "x"])
    # a number as bias, or as a weight, works as in micrograd (through Python's operators)
    layer.neurons[0].b = 0.5
    layer.neurons[1].w[0] = 2.0
    out = layer([1.0, 2.0])
    w = layer.neurons[0].w
    assert out[0].data == max(0.0, 0.5 + w[0].data * 1.0 + w[1].data * 2.0)
    assert out[1].data == max(0.0, 0.0 + 2.0 * 1.0 + layer.neurons[1].w[1].data * 2.0)
    # every neuron sees the whole input, even when it comes from a generator
    random.seed(6)
    layer = nn.Layer(2, 3)
    assert [v.data for v in layer(x for x in (1.0, 2.0))] == [v.data for v in layer([1.0, 2.0])]
