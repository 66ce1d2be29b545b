"""Values from several threads: building graphs and back-propagating them concurrently loses
no contribution (docs/threads.md). Runs on both engines."""

import pytest

from conftest import COMPILED, Value
from test_tensor_threads import fast_switching, run_threads  # noqa: F401 - a fixture


@pytest.mark.skipif(not COMPILED, reason="the reference engine's `+=` on .grad is Python code")
def test_concurrent_backward_into_shared_leaves_loses_nothing(fast_switching):
    # integer-valued data: every sum is exact, so the totals do not depend on the order
    w = [Value(float(i % 5 - 2)) for i in range(40)]
    rounds = 30

    def work(k):
        for r in range(rounds):
            xs = [float((i + k + r) % 3) for i in range(len(w))]
            loss = sum((wi * xi for wi, xi in zip(w, xs)), Value(0.0))
            (loss * loss).backward()

    run_threads(4, work)
    expected = [0.0] * len(w)
    for k in range(4):
        for r in range(rounds):
            xs = [float((i + k + r) % 3) for i in range(len(w))]
            s = sum(wi.data * xi for wi, xi in zip(w, xs))
            for i, xi in enumerate(xs):
                expected[i] += 2 * s * xi
    assert [wi.grad for wi in w] == expected


def test_threads_building_separate_graphs_get_their_own_numbers(fast_switching):
    results = {}

    def work(k):
        x = Value(float(k + 1))
        y = x
        for _ in range(2000):  # long enough to be interleaved, and to trigger compactions
            y = y * 1.0 + 0.0
        y = (y * y).tanh()
        y.backward()
        results[k] = (y.data, x.grad)

    run_threads(4, work)
    for k, got in results.items():
        x = Value(float(k + 1))
        y = (x * x).tanh()
        y.backward()
        assert got == (y.data, x.grad)
