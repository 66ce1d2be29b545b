"""The Value facade: micrograd's attributes, operators with numbers, errors, copying."""

import copy
import pickle

import numpy as np
import pytest

from conftest import RefValue, Value, compiled_only


def micrograd_readme_graph(V):
    a = V(-4.0)
    b = V(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return a, b, g


def test_micrograd_readme_example():
    a, b, g = micrograd_readme_graph(Value)
    g.backward()
    assert f"{g.data:.4f}" == "24.7041"
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


@compiled_only
def test_data_and_grad_are_readable_and_writable():
    v = Value(3)
    assert v.data == 3.0 and isinstance(v.data, float)
    assert v.grad == 0.0
    v.data = 5
    v.grad = 0.25
    assert (v.data, v.grad) == (5.0, 0.25)
    v.data -= 0.5 * v.grad
    assert v.data == 5.0 - 0.125
    w = v * 2
    w.data = 1.0  # writable on inner nodes too, as in micrograd
    assert w.data == 1.0
    with pytest.raises(TypeError):
        v.data = "x"
    with pytest.raises(TypeError):
        v.grad = None


def test_repr_has_micrograds_format():
    v = Value(2.5)
    assert repr(v) == "Value(data=2.5, grad=0.0)"
    w = v * v
    w.backward()
    assert repr(v) == "Value(data=2.5, grad=5.0)"


def test_prev_holds_the_callers_objects():
    x, y = Value(1.0), Value(2.0)
    z = x * y
    assert z._prev == {x, y}
    assert x in z._prev and y in z._prev
    assert all(c is x or c is y for c in z._prev)
    assert Value(1.0)._prev == set()
    s = x + x
    assert s._prev == {x}


def test_prev_of_dropped_children_are_live_values_of_the_graph():
    x = Value(1.5)
    z = (x * 2.0).tanh()
    (inner,) = z._prev
    assert inner._op == "*"
    assert inner.data == 3.0
    assert x in inner._prev
    # the constant operand appears as a leaf Value, as in micrograd
    assert sorted(c.data for c in inner._prev) == [1.5, 2.0]
    z.backward()
    assert inner.grad == pytest.approx(1 - np.tanh(3.0) ** 2)
    # handles re-created for the same node stay the same object while one is alive
    (again,) = z._prev
    assert again is inner


def test_label_survives_the_handle():
    x = Value(2.0, label="x")
    assert x.label == "x"
    y = x * 3
    y.label = "y"
    z = y + 1
    del y
    (y_again,) = [c for c in z._prev if c._op == "*"]
    assert y_again.label == "y"
    y_again.label = ""
    assert y_again.label == ""
    assert Value(1.0).label == ""


@compiled_only
def test_constructor_with_children_and_op_like_micrograd():
    a, b = Value(1.0), Value(2.0)
    c = Value(3.0, (a, b), "custom")
    assert c._prev == {a, b}
    assert c._op == "custom"
    c.backward()  # no derivative rule: like micrograd's default no-op _backward
    assert (a.grad, b.grad, c.grad) == (0.0, 0.0, 1.0)
    with pytest.raises(TypeError):
        Value(1.0, (1.0,))


def test_hashing_is_by_identity():
    x, y = Value(1.0), Value(1.0)
    assert x != y and x == x
    assert len({x, y, x}) == 2
    d = {x: "x"}
    assert d[x] == "x"


def test_backward_twice_accumulates_as_micrograd_does():
    import micrograd.engine as mg

    def graph(V):
        x = V(0.7)
        y = V(-1.3)
        h = (x * y - x).relu()
        return x, y, h * x + y ** 2 - x / y

    x, y, out = graph(Value)
    mx, my, mout = graph(mg.Value)
    for _ in range(3):
        out.backward()
        mout.backward()
        assert x.grad == pytest.approx(mx.grad, rel=1e-12)
        assert y.grad == pytest.approx(my.grad, rel=1e-12)
    # accumulation really happened: not just the single-pass gradient
    fresh_x, fresh_y, fresh = graph(Value)
    fresh.backward()
    assert abs(x.grad) > abs(fresh_x.grad)


@pytest.mark.parametrize("scalar", [np.float64(2.5), np.float32(2.5), np.int64(3), np.int32(-2)])
def test_numpy_scalars_work_on_both_sides(scalar):
    v = Value(1.5)
    s = float(scalar)
    for result, expected in [
        (scalar * v, s * 1.5), (v * scalar, 1.5 * s),
        (scalar + v, s + 1.5), (v + scalar, 1.5 + s),
        (scalar - v, s - 1.5), (v - scalar, 1.5 - s),
        (scalar / v, s * 1.5 ** -1), (v / scalar, 1.5 * s ** -1),
        (v ** scalar, 1.5 ** s), (scalar ** Value(2.0), s ** 2.0),
    ]:
        assert type(result) is Value
        assert result.data == pytest.approx(expected, rel=1e-15)
    assert Value(scalar).data == s


@pytest.mark.parametrize("bad", ["a", [1], None, {1: 2}, 1j, object()])
def test_bad_operands_raise_pythons_type_error(bad):
    v = Value(1.0)
    with pytest.raises(TypeError, match="unsupported operand|can't multiply sequence"):
        v + bad
    with pytest.raises(TypeError):
        bad + v
    with pytest.raises(TypeError):
        v * bad
    with pytest.raises(TypeError):
        bad * v
    with pytest.raises(TypeError):
        v - bad
    with pytest.raises(TypeError):
        bad - v
    with pytest.raises(TypeError):
        v / bad
    with pytest.raises(TypeError):
        bad / v
    with pytest.raises(TypeError):
        v ** bad


def test_pythons_own_wording_for_bad_operands():
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \+: '.*Value' and 'str'"):
        Value(1) + "a"
    with pytest.raises(TypeError, match="can't multiply sequence by non-int of type '.*Value'"):
        [1] * Value(1)
    with pytest.raises(TypeError, match="must be real number, not str"):
        Value("abc")
    with pytest.raises(TypeError):
        pow(Value(2.0), 2, 3)


def test_pickle_round_trip_keeps_the_graph():
    a, b, g = micrograd_readme_graph(Value)
    g.label = "g"
    g.backward()
    g2 = pickle.loads(pickle.dumps(g))
    assert g2 is not g
    assert (g2.data, g2.grad, g2.label, g2._op) == (g.data, g.grad, "g", g._op)
    # the copy is a working graph: backprop through it gives the original gradients
    def leaves(root):
        seen, stack, out = set(), [root], []
        while stack:
            v = stack.pop()
            if v not in seen:
                seen.add(v)
                stack.extend(v._prev)
                if not v._prev:
                    out.append(v)
        return out
    for leaf in leaves(g2):
        leaf.grad = 0.0
    g2.backward()
    copied = sorted(leaf.grad for leaf in leaves(g2))
    for leaf in leaves(g):
        leaf.grad = 0.0
    g.backward()
    assert copied == sorted(leaf.grad for leaf in leaves(g))


@compiled_only
def test_deepcopy_is_independent():
    x = Value(2.0, label="x")
    y = copy.deepcopy(x)
    assert (y.data, y.label) == (2.0, "x") and y is not x
    y.data = 5.0
    assert x.data == 2.0
    # deepcopy copies the graph below; copy.copy (as for micrograd's Value) shares the children
    z = x * x
    deep = copy.deepcopy(z)
    assert deep.data == 4.0 and x not in deep._prev
    shallow = copy.copy(z)
    assert shallow is not z and shallow.data == 4.0 and shallow._prev == {x}
    shallow.backward()
    assert x.grad == 4.0


def test_same_numbers_as_reference_engine_on_readme_graph():
    a, b, g = micrograd_readme_graph(Value)
    ra, rb, rg = micrograd_readme_graph(RefValue)
    g.backward()
    rg.backward()
    assert (g.data, a.grad, b.grad) == (rg.data, ra.grad, rb.grad)
