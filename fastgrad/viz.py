"""Drawing computation graphs with graphviz (micrograd's ``draw_dot``).

graphviz is an optional extra: ``pip install fastgrad[viz]`` installs the Python package;
rendering to SVG/PNG also needs Graphviz's ``dot`` program (the DOT source is available
without it, as ``draw_dot(root).source``).
"""

import importlib

__all__ = ["draw_dot", "trace"]

_RECORD_SPECIALS = str.maketrans({c: "\\" + c for c in '\\{}|<>"'})


def _escape(text):
    """text safe inside a graphviz record label."""
    return str(text).translate(_RECORD_SPECIALS)


def trace(root):
    """All nodes reachable from ``root`` and the edges (child, parent) between them.

    Walks ``_prev`` with an explicit stack, so graphs of any depth are fine. Nodes come out in
    the order they are found, starting from ``root``; an edge is listed once however many times
the parent uses the child.

    >>> from fastgrad import Value
    >>> a = Value(2.0); b = a * 3
    >>> nodes, edges = trace(b)
    >>> len(nodes), len(edges)
    (3, 2)
    """
    seen = {id(root): root}
    nodes = [root]
    edges = []
    stack = [root]
    while stack:
        node = stack.pop()
        # once per distinct child (x * x draws one edge, as micrograd's draw_dot does); sorted for a
        # deterministic drawing where the reference engine gives an order
        children = {id(c): c for c in node._prev}
        for child in sorted(children.values(), key=_order_key):
            edges.append((child, node))
            if id(child) not in seen:
                seen[id(child)] = child
                nodes.append(child)
                stack.append(child)
    return nodes, edges


def _order_key(node):
    slot = getattr(node, "_created", None)  # the reference engine's creation counter
    return (0, slot) if slot is not None else (1, id(node))


def _graphviz():
    try:
        # imported by name: graphviz is an optional extra and ships no type information
        graphviz = importlib.import_module("graphviz")
    except ImportError:
        raise ImportError("draw_dot needs the graphviz package: pip install fastgrad[viz]") from None
    return graphviz


def draw_dot(root, format='svg', rankdir='LR'):
    """A ``graphviz.Digraph`` of the graph below ``root`` (a Value or a Tensor).

    Values: one record node per Value, ``{ label | data 2.0000 | grad 1.0000 }``, and one
    node per op (``+``, ``*``, ``tanh``, ...) pointing at the Value it produced, with each
    input's edge going into that op node, as micrograd draws it. Tensors: the record shows the
    shape, dtype and whether a gradient is stored, the op node the op's name; only inputs that
    require grad are recorded on the tape, so only they appear.

    ``format`` is the render format (``'svg'``, ``'png'``, ...) and ``rankdir`` the layout
    direction (``'LR'`` left to right, ``'TB'`` top to bottom). Render with
    ``dot.render('graph')`` or ``dot.pipe()`` (needs Graphviz's ``dot`` program); the DOT text
    is ``dot.source``. Raises ImportError if the graphviz package is not installed.

    >>> from fastgrad import Value
    >>> x = Value(2.0, label='x'); y = x * x; y.label = 'y'
    >>> y.backward()
    >>> dot = draw_dot(y)
    >>> print(dot.source)  # doctest: +NORMALIZE_WHITESPACE
    digraph {
        graph [rankdir=LR]
        n0 [label="{ y | data 4.0000 | grad 1.0000 }" shape=record]
        n0_op [label="*"]
        n0_op -> n0
        n1 [label="{ x | data 2.0000 | grad 4.0000 }" shape=record]
        n1 -> n0_op
    }
    <BLANKLINE>
    """
    graphviz = _graphviz()
    from fastgrad._tensor import Tensor

    dot = graphviz.Digraph(format=format, graph_attr={'rankdir': rankdir})
    nodes, edges = trace(root)
    names = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    for n in nodes:
        uid = names[id(n)]
        if isinstance(n, Tensor):
            op = '' if n.is_leaf else n._op
            grad = 'grad ' + ('none' if n.grad is None else str(tuple(n.grad.shape)))
            label = "{ %s | %s | %s }" % (_escape(tuple(n.shape)), _escape(n.dtype.name), grad)
        else:
            op = n._op
            label = "{ %s | data %.4f | grad %.4f }" % (_escape(n.label), n.data, n.grad)
        dot.node(name=uid, label=label, shape='record')
        if op:
            dot.node(name=uid + '_op', label=str(op))
            dot.edge(uid + '_op', uid)
    for child, parent in edges:
        target = names[id(parent)]
        op = '' if isinstance(parent, Tensor) and parent.is_leaf else parent._op
        dot.edge(names[id(child)], target + '_op' if op else target)
    return dot
