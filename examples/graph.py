"""A tanh neuron, back-propagated and drawn with fastgrad.draw_dot.

o = tanh(x1*w1 + x2*w2 + b) with x1 = 2, x2 = 0, w1 = -3, w2 = 1 and b = 6.8813735870195432
(chosen so that n = 0.8814 and do/dn = 0.5). Prints every Value's data and grad, then draws
the graph: an SVG when Graphviz's `dot` program is installed, otherwise the DOT source (the
graphviz Python package is `pip install "fastgrad[viz]"`). With --tanh-from-exp, o is built
as (e - 1) / (e + 1) with e = exp(2n), as the micrograd lecture's exercise does: same grads, more nodes.

    python examples/graph.py [--out neuron] [--tanh-from-exp]
"""

import argparse
import shutil

from fastgrad import Value


def neuron(tanh_from_exp=False):
    x1 = Value(2.0, label='x1')
    x2 = Value(0.0, label='x2')
    w1 = Value(-3.0, label='w1')
    w2 = Value(1.0, label='w2')
    b = Value(6.8813735870195432, label='b')
    x1w1 = x1 * w1; x1w1.label = 'x1*w1'
    x2w2 = x2 * w2; x2w2.label = 'x2*w2'
    x1w1x2w2 = x1w1 + x2w2; x1w1x2w2.label = 'x1*w1 + x2*w2'
    n = x1w1x2w2 + b; n.label = 'n'
    if tanh_from_exp:
        e = (2 * n).exp(); e.label = 'e'
        o = (e - 1) / (e + 1)
    else:
        o = n.tanh()
    o.label = 'o'
    o.backward()
    return o, [o, n, b, x1w1x2w2, x1w1, x2w2, x1, w1, x2, w2]


def draw(o, out):
    """Write out.svg if `dot` is installed, else out.dot; returns the path written."""
    try:
        from fastgrad import draw_dot
        dot = draw_dot(o, format='svg', rankdir='LR')
    except ImportError as exc:
        print(f"{exc}: not drawing")
        return None
    if shutil.which('dot'):
        path = out + '.svg'
        with open(path, 'wb') as f:
            f.write(dot.pipe(format='svg'))
        print(f"drew the graph to {path}")
    else:
        path = out + '.dot'
        with open(path, 'w') as f:
            f.write(dot.source)
        print(f"Graphviz's dot program is not installed: wrote the DOT source to {path} "
              f"(render it with `dot -Tsvg {path}`)")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="neuron", help="output path without extension")
    parser.add_argument("--tanh-from-exp", action="store_true",
                        help="build tanh from exp (same grads, more nodes)")
    args = parser.parse_args()
    o, values = neuron(args.tanh_from_exp)
    for v in values:
        print(f"{v.label:>14}: data {v.data:8.4f}  grad {v.grad:8.4f}")
    print(f"o.grad={o.grad:g}, x1.grad={values[6].grad:g}, w1.grad={values[7].grad:g}, "
          f"x2.grad={values[8].grad:g}, w2.grad={values[9].grad:g}")
    draw(o, args.out)


if __name__ == "__main__":
    main()
