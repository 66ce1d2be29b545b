"""Every scalar op: value and gradient vs finite differences and vs the reference engine."""

import math

import pytest

from conftest import RefValue, Value, central_difference

# name -> (arity, function of Values, points where the op is defined and smooth)
GENERAL = [-2.3, -0.7, 0.4, 1.9]
POSITIVE = [1e-3, 0.4, 1.9, 7.0]
OPS = {
    "add": (2, lambda x, y: x + y, [(-2.3, 0.4), (1.9, -0.7)]),
    "radd": (1, lambda x: 2.5 + x, GENERAL),
    "add_number": (1, lambda x: x + 2.5, GENERAL),
    "sub": (2, lambda x, y: x - y, [(-2.3, 0.4), (1.9, -0.7)]),
    "sub_number": (1, lambda x: x - 1.5, GENERAL),
    "rsub": (1, lambda x: 2.5 - x, GENERAL),
    "mul": (2, lambda x, y: x * y, [(-2.3, 0.4), (1.9, -0.7)]),
    "mul_self": (1, lambda x: x * x, GENERAL),
    "rmul": (1, lambda x: 3 * x, GENERAL),
    "mul_number": (1, lambda x: x * -0.5, GENERAL),
    "div": (2, lambda x, y: x / y, [(-2.3, 0.4), (1.9, -0.7)]),
    "div_number": (1, lambda x: x / 4.0, GENERAL),
    "div_int": (1, lambda x: x / 3, GENERAL),
    "rdiv": (1, lambda x: 2 / x, GENERAL),
    "neg": (1, lambda x: -x, GENERAL),
    "pow2": (1, lambda x: x ** 2, GENERAL),
    "pow3": (1, lambda x: x ** 3, GENERAL),
    "pow_negative_int": (1, lambda x: x ** -2, GENERAL),
    "pow_half": (1, lambda x: x ** 0.5, POSITIVE),
    "pow_negative_fraction": (1, lambda x: x ** -1.5, POSITIVE),
    "pow_float_integral": (1, lambda x: x ** 3.0, GENERAL),
    "pow_value": (2, lambda x, y: x ** y, [(0.4, -0.7), (1.9, 2.3), (7.0, 0.5)]),
    "rpow": (1, lambda x: 2 ** x, GENERAL),
    "relu": (1, lambda x: x.relu(), GENERAL),
    "tanh": (1, lambda x: x.tanh(), GENERAL + [12.0, -20.0]),
    "exp": (1, lambda x: x.exp(), GENERAL + [-700.0, 700.0]),
    "log": (1, lambda x: x.log(), POSITIVE + [1e-8, 1e-300]),
    "sigmoid": (1, lambda x: x.sigmoid(), GENERAL + [-800.0, 800.0]),
    "max": (2, lambda x, y: x.max(y), [(-2.3, 0.4), (1.9, -0.7)]),
    "max_number": (1, lambda x: x.max(0.5), GENERAL),
    "min": (2, lambda x, y: x.min(y), [(-2.3, 0.4), (1.9, -0.7)]),
    "min_number": (1, lambda x: x.min(0.5), GENERAL),
    "abs": (1, lambda x: abs(x), GENERAL),
}


def cases():
    for name, (arity, fn, points) in OPS.items():
        for p in points:
            yield pytest.param(name, arity, fn, p if arity == 2 else (p,), id=f"{name}{p}")


def evaluate(V, fn, point):
    leaves = [V(x) for x in point]
    out = fn(*leaves)
    out.backward()
    return out, leaves


@pytest.mark.parametrize("name,arity,fn,point", list(cases()))
def test_matches_reference_engine_bit_for_bit(name, arity, fn, point):
    out, leaves = evaluate(Value, fn, point)
    ref, ref_leaves = evaluate(RefValue, fn, point)
    assert out.data == ref.data or (math.isnan(out.data) and math.isnan(ref.data))
    assert [v.grad for v in leaves] == [v.grad for v in ref_leaves]
    assert out._op == ref._op


@pytest.mark.parametrize("name,arity,fn,point", list(cases()))
def test_gradient_matches_finite_differences(name, arity, fn, point):
    out, leaves = evaluate(Value, fn, point)

    def f(xs):
        return fn(*[Value(x) for x in xs]).data

    for i, leaf in enumerate(leaves):
        x = point[i]
        h = 1e-6 * max(abs(x), 1e-300) if name in ("log", "pow_half", "pow_negative_fraction") else 1e-6
        numeric = central_difference(f, point, i, h)
        assert leaf.grad == pytest.approx(numeric, rel=1e-5, abs=1e-7), (name, point, i)


def test_relu_gradient_at_zero_is_zero_as_in_micrograd():
    x = Value(0.0)
    y = x.relu()
    y.backward()
    assert y.data == 0.0 and x.grad == 0.0
    x = Value(-1e-300)
    x.relu().backward()
    assert x.grad == 0.0
    x = Value(1e-300)
    x.relu().backward()
    assert x.grad == 1.0


@pytest.mark.parametrize("V", [Value, RefValue], ids=["compiled", "reference"])
def test_max_and_min_send_the_gradient_to_the_chosen_operand_and_to_the_first_on_a_tie(V):
    # a Max op: the gradient flows only to the operand whose value was taken
    a, b = V(1.0), V(2.0)
    a.max(b).backward()
    assert (a.grad, b.grad) == (0.0, 1.0)
    a, b = V(1.0), V(2.0)
    a.min(b).backward()
    assert (a.grad, b.grad) == (1.0, 0.0)
    for op in ("max", "min"):
        a, b = V(3.0), V(3.0)
        out = getattr(a, op)(b)
        out.backward()
        assert (out.data, a.grad, b.grad) == (3.0, 1.0, 0.0)
    x = V(0.0)
    abs(x).backward()
    assert x.grad == 0.0  # no gradient at the kink, like relu
    with pytest.raises(TypeError, match="max\\(\\) needs a Value or a real number, not str"):
        V(1.0).max("2")


def test_tanh_built_from_exp_equals_tanh():
    # an exercise: tanh(n) = (e**2n - 1) / (e**2n + 1), written with exp, -, /
    for x in (-2.1, -0.3, 0.0, 0.8813735870195432, 1.7):
        n1 = Value(x)
        e = (2 * n1).exp()
        built = (e - 1) / (e + 1)
        built.backward()
        n2 = Value(x)
        direct = n2.tanh()
        direct.backward()
        assert built.data == pytest.approx(direct.data, rel=1e-12, abs=1e-15)
        assert n1.grad == pytest.approx(n2.grad, rel=1e-12, abs=1e-15)


def test_op_spellings_follow_micrograd():
    x, y = Value(2.0), Value(3.0)
    assert (x + y)._op == "+"
    assert (x * y)._op == "*"
    assert (x ** 2)._op == "**2"
    assert (x ** 2.0)._op == "**2.0"
    assert (x ** -1)._op == "**-1"
    assert (x ** 0.5)._op == "**0.5"
    assert x.relu()._op == "ReLU"
    assert x.tanh()._op == "tanh"
    assert x.exp()._op == "exp"
    assert x.log()._op == "log"
    assert x.sigmoid()._op == "sigmoid"
    assert x.max(y)._op == "max"
    assert x.min(y)._op == "min"
    assert abs(x)._op == "abs"
    assert (x ** y)._op == "**"
    assert x._op == ""
    # subtraction and division are built from + * ** as micrograd builds them
    assert (x - y)._op == "+"
    assert {c._op for c in (x - y)._prev} == {"", "*"}
    assert (x / y)._op == "*"
    assert {c._op for c in (x / y)._prev} == {"", "**-1"}
    assert (-x)._op == "*"


def test_domain_errors_are_python_exceptions():
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / Value(0.0)
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / 0
    with pytest.raises(ZeroDivisionError):
        2.0 / Value(0.0)
    with pytest.raises(ZeroDivisionError):
        Value(0.0) ** -2
    with pytest.raises(ValueError, match="fractional power"):
        Value(-8.0) ** (1 / 3)
    with pytest.raises(ValueError, match="fractional power"):
        Value(-8.0) ** Value(0.5)
    with pytest.raises(ValueError, match="log"):
        Value(0.0).log()
    with pytest.raises(ValueError, match="log"):
        Value(-1.0).log()
    with pytest.raises(OverflowError):
        Value(710.0).exp()
    with pytest.raises(OverflowError):
        Value(1e200) ** 2
    # a negative base with an integral exponent is fine, as in Python
    assert (Value(-2.0) ** 3).data == -8.0
    assert (Value(-2.0) ** Value(2.0)).data == 4.0


def test_pow_value_gradient_for_negative_base_is_nan_not_a_made_up_number():
    x, y = Value(-2.0), Value(2.0)
    z = x ** y
    z.backward()
    assert x.grad == -4.0
    assert math.isnan(y.grad)


def test_nan_and_inf_propagate_like_python_floats():
    assert math.isnan((Value(math.nan) + 1).data)
    assert (Value(math.inf) * 2).data == math.inf
    assert math.isnan(Value(math.nan).relu().data)
    assert Value(-0.0).relu().data == 0.0
