"""gradcheck: passes on correct gradients, names the worst entry on wrong ones."""

import math

import numpy as np
import pytest

import fastgrad
from fastgrad import Tensor
from fastgrad.autograd import GradcheckError, gradcheck

from conftest import Value

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


@pytest.mark.parametrize("f", [
    lambda x, y: x * y + y.exp(),
    lambda x, y: (x * y).tanh() / (1 + y ** 2),
    lambda x, y: (x - y).sigmoid().log(),
    lambda x, y: x.max(y) + abs(x) + x.min(y) * 3,
])
def test_values_pass(f):
    assert gradcheck(f, [Value(0.7), Value(-0.4)]) is True


def test_pow_values_pass():
    assert gradcheck(lambda x, y: (x ** y) + (2 ** x), [Value(0.7), Value(1.3)])


def test_opaque_value_has_no_gradient_and_fails():
    x, y = Value(1.5), Value(0.25)
    square = lambda x, y: Value(x.data ** 2, (x,), 'square') + y  # noqa: E731
    with pytest.raises(GradcheckError) as info:
        gradcheck(square, [x, y])
    err = info.value
    assert isinstance(err, AssertionError)
    assert (err.input_index, err.element, err.analytic) == (0, (), 0.0)
    assert err.numeric == pytest.approx(3.0, rel=1e-6)
    assert err.abs_error == pytest.approx(3.0, rel=1e-6) and err.rel_error == pytest.approx(1.0)
    assert "input 0" in str(err) and "analytic 0.0" in str(err)


def test_inputs_are_restored():
    x, y = Value(0.5), Value(2.0)
    x.grad, y.grad = 11.0, 12.0
    gradcheck(lambda x, y: x * y, [x, y])
    assert (x.data, y.data, x.grad, y.grad) == (0.5, 2.0, 11.0, 12.0)


def test_tolerances_decide():
    # a gradient off by 0.5% relative: fails at the default rtol, passes with a looser one
    x = Value(2.0)

    def slightly_wrong(x):
        return x * x + Value(x.data * 2e-2, (x,), 'bias')  # numeric 4.02, analytic 4

    with pytest.raises(GradcheckError):
        gradcheck(slightly_wrong, [x])
    assert gradcheck(slightly_wrong, [x], rtol=1e-2)


def tensors(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


@pytest.mark.parametrize("f, shapes", [
    (lambda a, b: (a @ b).tanh().sum(), [(3, 4), (4, 2)]),          # scalar output
    (lambda a, b: (a @ b).sigmoid(), [(3, 4), (4, 2)]),             # matrix output: projected
    (lambda a, b: (a * b).exp() - a / (1 + b * b), [(2, 3), (3,)]),  # broadcasting
    (lambda a: a.softmax(-1), [(2, 5)]),
    (lambda a: fastgrad.nn.functional.log_softmax(a, -1).mean(), [(4, 3)]),
])
def test_tensors_pass(f, shapes):
    assert gradcheck(f, tensors(*shapes)) is True


def test_wrong_tensor_gradient_names_the_worst_element():
    a, = tensors((2, 3))

    def f(a):
        # the backward of .detach() is missing: d/da of the second term is lost
        return (a * a).sum() + (a.detach() * Tensor(np.arange(6.0).reshape(2, 3)) * a).sum()

    with pytest.raises(GradcheckError) as info:
        gradcheck(f, [a])
    err = info.value
    assert err.input_index == 0
    assert err.element == (1, 2)  # the largest missing term: 5 * a[1, 2]
    assert err.analytic == pytest.approx(2 * a.numpy()[1, 2] + 5 * a.numpy()[1, 2], rel=1e-9)
    assert err.numeric == pytest.approx(2 * a.numpy()[1, 2] + 10 * a.numpy()[1, 2], rel=1e-6)
    assert "input 0, element (1, 2)" in str(err)


def test_tensor_inputs_are_restored_and_need_grad():
    a, b = tensors((2, 2), (2, 2))
    before = a.numpy().copy()
    gradcheck(lambda a, b: a * b, [a, b])
    assert np.array_equal(a.data, before) and a.grad is None
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda x: x * 2, [Tensor(np.ones(2))])
    with pytest.raises(TypeError, match="all Values or all Tensors"):
        gradcheck(lambda x, y: x, [a, Value(1.0)])


def test_nan_gradient_fails():
    x = Value(-2.0)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: Value(math.nan, (x,), 'nan') + x, [x])

