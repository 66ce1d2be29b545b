"""A polynomial on fastgrad: forward mode, reverse mode, and gradient descent.

p(d, x, y) = x (x + y + d) + y^2 with d = 2. At (x, y) = (2, 3): p = 23, dp/dx = 9 and
dp/dy = 8, computed here both by forward mode (a tangent sweep per input,
fastgrad.autograd.jvp) and by reverse mode (one backward sweep). Then gradient descent from
(-3, -5) with step 1e-3 finds the minimum p = -4/3 at (-4/3, 2/3).

    python examples/polynomial.py [--steps 5000] [--lr 1e-3]
"""

import argparse

from fastgrad import Value
from fastgrad.autograd import forward_grad, jvp

MINIMUM = -4 / 3


def p(d, x, y):
    """p = x (x + y + d) + y**2."""
    return x * (x + y + d) + y * y


def gradients_both_ways():
    d, x, y = Value(2.0, label='d'), Value(2.0, label='x'), Value(3.0, label='y')
    z = p(d, x, y)
    print(f"p(2, 3) = {z.data}")

    # forward mode: one tangent sweep per input direction, grads untouched
    fx, fy, fd = forward_grad(z, [x, y, d])
    print(f"forward mode: dp/dx = {fx}, dp/dy = {fy}, dp/dd = {fd}")
    # any direction at once: d/dt p(x + t, y + t) = dp/dx + dp/dy
    print(f"forward mode along (1, 1): {jvp(z, {x: 1.0, y: 1.0})}")

    # reverse mode: one backward sweep gives all three
    z.backward()
    print(f"reverse mode: dp/dx = {x.grad}, dp/dy = {y.grad}, dp/dd = {d.grad}")
    assert (fx, fy) == (x.grad, y.grad) == (9.0, 8.0)


def gradient_descent(steps, lr):
    x, y = Value(-3.0), Value(-5.0)
    d = Value(2.0)  # a constant: not updated
    for k in range(steps):
        z = p(d, x, y)
        x.grad = y.grad = 0.0
        z.backward()
        x.data -= lr * x.grad
        y.data -= lr * y.grad
        if (k < 1000 and k % 100 == 0) or k % 1000 == 0:
            print(f"step {k:5d}  p = {z.data:.6f}")
    z = p(d, x, y)
    gap = abs(z.data - MINIMUM)
    print(f"after {steps} steps: p = {z.data:.6f} at (x, y) = ({x.data:.4f}, {y.data:.4f}); "
          f"minimum -4/3, off by {gap:.2e}")
    return gap


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    gradients_both_ways()
    gap = gradient_descent(args.steps, args.lr)
    print("reached the minimum within 1e-3" if gap < 1e-3 else "not within 1e-3 of the minimum")


if __name__ == "__main__":
    main()
