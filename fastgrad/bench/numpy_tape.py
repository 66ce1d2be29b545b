"""The reference of the tensor benchmarks: a pure-Python numpy tape, the
plain way to write tensor autograd in Python.

Every op creates a node holding its value, its parents and a backward closure, numbered in
creation order; backward() collects the nodes reachable from the loss, walks them from the
newest to the oldest and runs each closure, which adds into its parents' gradient arrays
(un-broadcasting the contribution to the parent's shape).

Two variants of the sweep, both timed by the benchmark:
  * `backward(naive=True)`: the naive memory model, a zeroed gradient buffer for every
    reachable node (inputs and constants too) that the closures add into in place;
  * `backward()`: a tuned version of the same design, buffers created by the first
    contribution. Both use a set for reachability (a list search, `d not in frontier`, would be
    quadratic; that is not what we want to measure).
"""

import itertools

import numpy as np

_counter = itertools.count()


def unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added or stretched to reach g.shape."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes).reshape(shape)


class NTensor:
    def __init__(self, value, parents=(), back=None):
        value = np.asarray(value)           # numpy scalars (a loss) keep their float dtype
        self.value = value if value.dtype.kind == "f" else value.astype(float)
        self.parents = parents
        self.back = back
        self.order = next(_counter)
        self.grad = None
        self.owned = False

    def _acc(self, g):
        g = unbroadcast(g, self.value.shape)
        if self.grad is None:
            self.grad = g
        elif self.owned:
            self.grad += g      # naive: into the node's own zeroed buffer
        else:
            self.grad = self.grad + g   # g may be shared (an add passes its grad to both sides)

    def __add__(self, other):
        def back(t):
            self._acc(t.grad)
            other._acc(t.grad)
        return NTensor(self.value + other.value, (self, other), back)

    def __sub__(self, other):
        def back(t):
            self._acc(t.grad)
            other._acc(-t.grad)
        return NTensor(self.value - other.value, (self, other), back)

    def __matmul__(self, other):
        def back(t):
            self._acc(t.grad @ other.value.T)
            other._acc(self.value.T @ t.grad)
        return NTensor(self.value @ other.value, (self, other), back)

    @property
    def T(self):
        def back(t):
            self._acc(t.grad.T)
        return NTensor(self.value.T, (self,), back)

    def relu(self):
        def back(t):
            self._acc(t.grad * (self.value > 0))
        return NTensor(np.maximum(self.value, 0), (self,), back)

    def mse(self, target):
        diff = self.value - target

        def back(t):
            self._acc(t.grad * 2.0 * diff / diff.size)
        return NTensor(np.mean(diff * diff), (self,), back)

    def cross_entropy(self, targets):
        z = self.value - self.value.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        n = z.shape[0]
        loss = (np.log(s[:, 0]) - z[np.arange(n), targets]).mean()

        def back(t):
            p = e / s
            p[np.arange(n), targets] -= 1.0
            self._acc(t.grad * p / n)
        return NTensor(loss, (self,), back)

    def backward(self, naive=False):
        nodes, stack, seen = [], [self], {id(self)}
        while stack:
            node = stack.pop()
            nodes.append(node)
            for p in node.parents:
                if id(p) not in seen:
                    seen.add(id(p))
                    stack.append(p)
        nodes.sort(key=lambda t: -t.order)
        for node in nodes:
            node.owned = naive
            if naive:
                node.grad = np.zeros_like(node.value)
            elif node.parents:
                node.grad = None
        self.grad = np.ones_like(self.value)
        for node in nodes:
            if node.back is not None and node.grad is not None:
                node.back(node)


class NLinear:
    def __init__(self, weight, bias):
        self.weight, self.bias = NTensor(weight.copy()), NTensor(bias.copy())

    def __call__(self, x):
        return x @ self.weight.T + self.bias


def sgd_step(params, lr):
    for p in params:
        p.value -= lr * p.grad
        p.grad = None


class NAdam:
    """torch.optim.Adam's rule on numpy arrays."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [np.zeros_like(p.value) for p in params]
        self.v = [np.zeros_like(p.value) for p in params]

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m += (1 - b1) * (g - m)
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(1 - b2 ** self.t) + self.eps
            p.value -= self.lr / (1 - b1 ** self.t) * m / denom
            p.grad = None
