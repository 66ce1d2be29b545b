"""draw_dot: micrograd-style drawings of Value graphs, and of tensor graphs."""

import re
import shutil
import sys

import numpy as np
import pytest

import fastgrad
from fastgrad import draw_dot
from fastgrad.viz import trace

from conftest import Value

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

pytest.importorskip("graphviz", reason="graphviz not installed (pip install fastgrad[viz])")

HAVE_DOT = shutil.which("dot") is not None


def tanh_neuron():
    """A neuron o = tanh(x1*w1 + x2*w2 + b), back-propagated."""
    x1 = Value(2.0, label='x1')
    x2 = Value(0.0, label='x2')
    w1 = Value(-3.0, label='w1')
    w2 = Value(1.0, label='w2')
    b = Value(6.8813735870195432, label='b')
    x1w1 = x1 * w1; x1w1.label = 'x1*w1'
    x2w2 = x2 * w2; x2w2.label = 'x2*w2'
    x1w1x2w2 = x1w1 + x2w2; x1w1x2w2.label = 'x1*w1 + x2*w2'
    n = x1w1x2w2 + b; n.label = 'n'
    o = n.tanh(); o.label = 'o'
    o.backward()
    return o, (x1, x2, w1, w2, b, x1w1, x2w2, x1w1x2w2, n, o)


def records(source):
    return re.findall(r'label="(\{[^"]*\})" shape=record', source)


def test_tanh_neuron_source():
    o, keep = tanh_neuron()
    dot = draw_dot(o)
    assert dot.format == 'svg'
    assert 'rankdir=LR' in dot.source
    labels = records(dot.source)
    assert len(labels) == 10  # one record per Value
    for text in ["{ o | data 0.7071 | grad 1.0000 }",
                 "{ x1 | data 2.0000 | grad -1.5000 }",
                 "{ w1 | data -3.0000 | grad 1.0000 }",
                 "{ x2 | data 0.0000 | grad 0.5000 }",
                 "{ w2 | data 1.0000 | grad 0.0000 }",
                 "{ b | data 6.8814 | grad 0.5000 }",
                 "{ n | data 0.8814 | grad 0.5000 }"]:
        assert text in labels, (text, labels)
    ops = [op.strip('"') for op in re.findall(r'label=("[^"{]*"|\w+)\]', dot.source)]
    assert sorted(ops) == sorted(['*', '*', '+', '+', 'tanh'])  # one node per op
    edges = re.findall(r'^\s*(\S+) -> (\S+)', dot.source, re.M)
    assert len(edges) == 5 + 9  # op -> its Value, and each input -> the op that uses it


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program not installed")
def test_tanh_neuron_renders_to_svg():
    o, keep = tanh_neuron()
    svg = draw_dot(o).pipe(format='svg').decode()
    assert svg.lstrip().startswith('<?xml') and '<svg' in svg
    for text in ['x1', 'data 2.0000', 'grad &#45;1.5000', 'tanh', 'data 0.7071']:
        assert text in svg, text


def test_options_and_escaping():
    x = Value(1.0, label='a|b {c}')
    y = x.relu()
    dot = draw_dot(y, format='png', rankdir='TB')
    assert dot.format == 'png' and 'rankdir=TB' in dot.source
    assert r'a\|b \{c\}' in dot.source
    assert 'ReLU' in dot.source


def test_opaque_node_without_op_name_links_its_children_directly():
    x = Value(1.0, label='x')
    f = Value(2.0, (x,), '', label='f')
    dot = draw_dot(f)
    assert len(records(dot.source)) == 2
    assert len(re.findall(r' -> ', dot.source)) == 1


def test_deep_graph_is_walked_without_recursion():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y.tanh()
    nodes, edges = trace(y)
    assert len(nodes) == 5001 and len(edges) == 5000
    assert len(records(draw_dot(y).source)) == 5001


def test_shared_child_is_drawn_once():
    x = Value(3.0, label='x')
    y = x * x
    assert len(records(draw_dot(y).source)) == 2
    assert len(re.findall(r' -> ', draw_dot(y).source)) == 2  # op -> y, x -> op (once, as micrograd draws it)
    t = fastgrad.Tensor(np.ones(2), requires_grad=True)
    assert len(re.findall(r' -> ', draw_dot(t * t).source)) == 2


def test_tensor_graph_shows_shape_dtype_and_op():
    a = fastgrad.Tensor(np.ones((3, 4)), requires_grad=True)
    b = fastgrad.Tensor(np.ones((4, 2), dtype=np.float32), requires_grad=True)
    loss = (a @ b).relu().sum()
    loss.backward()
    dot = draw_dot(loss)
    labels = records(dot.source)
    assert len(labels) == 5
    assert "{ (3, 4) | float64 | grad (3, 4) }" in labels
    assert "{ (4, 2) | float32 | grad (4, 2) }" in labels
    assert "{ () | float64 | grad none }" in labels
    for op in ['matmul', 'relu', 'sum']:
        assert f'label={op}' in dot.source or f'label="{op}"' in dot.source


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program not installed")
def test_tensor_graph_renders():
    a = fastgrad.Tensor(np.ones((2, 2)), requires_grad=True)
    svg = draw_dot((a * 2).tanh().mean()).pipe(format='svg').decode()
    assert '(2, 2)' in svg and 'tanh' in svg and 'mean' in svg


def test_missing_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'graphviz', None)
    with pytest.raises(ImportError, match=r"pip install fastgrad\[viz\]"):
        draw_dot(Value(1.0))
