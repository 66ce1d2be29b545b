"""The tensor engine under threads (docs/threads.md): grad mode is per thread, and concurrent
backward passes over graphs that share leaves or inner nodes lose no contribution. The threads
run with a very short switch interval so that they interleave inside the sweeps; every result is
compared exactly with the same work done in one thread."""

import sys
import threading

import numpy as np
import pytest

import fastgrad.nn.functional as F
from fastgrad import Tensor, is_grad_enabled, no_grad

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(count, target):
    """Run target(i) in count threads started together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors = []

    def body(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# --- grad mode ----------------------------------------------------------------------------


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    w = Tensor([1.0, 2.0], requires_grad=True)
    inside = threading.Event()
    checked = threading.Event()
    seen = []

    def other():
        inside.wait()
        seen.append((is_grad_enabled(), (w * 2.0).requires_grad))
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with no_grad():
        inside.set()
        checked.wait()
        assert not is_grad_enabled()
        assert not (w * 2.0).requires_grad
    t.join()
    assert seen == [(True, True)]


def test_a_new_thread_starts_with_grad_enabled():
    seen = []
    with no_grad():
        t = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]
    assert is_grad_enabled()


def test_no_grad_blocks_in_many_threads_nest_independently(fast_switching):
    w = Tensor(np.ones(4), requires_grad=True)
    bad = []

    def body(i):
        for _ in range(200):
            if i % 2:
                with no_grad():
                    if (w * 2.0).requires_grad or is_grad_enabled():
                        bad.append(i)
            elif not (w * 2.0).requires_grad or not is_grad_enabled():
                bad.append(i)

    run_threads(4, body)
    assert bad == []


# --- concurrent backward passes --------------------------------------------------------------
# Integer-valued data keeps every sum exact, so the expected gradients do not depend on the order
# in which the threads' contributions arrive: any lost contribution shows.


def test_threads_back_propagating_into_one_shared_leaf_lose_nothing(fast_switching):
    x = Tensor(np.zeros((256, 256)), requires_grad=True)
    threads, calls = 4, 60

    def body(i):
        for _ in range(calls):
            (x * float(i + 1)).sum().backward()

    run_threads(threads, body)
    expected = calls * sum(range(1, threads + 1))
    assert np.array_equal(x.grad, np.full((256, 256), float(expected)))


def test_threads_back_propagating_through_a_shared_inner_node_lose_nothing(fast_switching):
    x = Tensor(np.zeros((64, 64)), requires_grad=True)
    h = (x * 2.0).relu() + x * 3.0      # inner nodes used by every thread's graph
    threads, calls = 4, 100

    def body(i):
        for _ in range(calls):
            (h * float(i + 1)).sum().backward()

    run_threads(threads, body)
    # relu'(0) = 0: only the x * 3.0 branch carries gradient
    expected = 3.0 * calls * sum(range(1, threads + 1))
    assert np.array_equal(x.grad, np.full((64, 64), expected))


def _integer_model(rng):
    w1 = Tensor(rng.integers(-3, 4, (16, 8)).astype(float), requires_grad=True)
    b1 = Tensor(rng.integers(-3, 4, 16).astype(float), requires_grad=True)
    w2 = Tensor(rng.integers(-3, 4, (4, 16)).astype(float), requires_grad=True)
    return [w1, b1, w2]


def _integer_loss(params, xb):
    w1, b1, w2 = params
    h = F.linear(Tensor(xb), w1, b1).relu()
    return (F.linear(h, w2) * 2.0).sum() + (h * h).mean(axis=0).sum() * 0.0


def test_threads_training_graphs_that_share_parameters_match_one_thread(fast_switching):
    rng = np.random.default_rng(0)
    params = _integer_model(rng)
    batches = [rng.integers(-2, 3, (8, 8)).astype(float) for _ in range(4)]
    rounds = 30
    expected = [np.zeros(p.shape) for p in params]
    for xb in batches:
        for p in params:
            p.grad = None
        _integer_loss(params, xb).backward()
        for e, p in zip(expected, params):
            e += rounds * p.grad
    for p in params:
        p.grad = None

    def body(i):
        for _ in range(rounds):
            _integer_loss(params, batches[i]).backward()

    run_threads(len(batches), body)
    for e, p in zip(expected, params):
        assert np.array_equal(p.grad, e)


def test_separate_graphs_in_separate_threads_give_the_single_thread_results(fast_switching):
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((32, 8)) for _ in range(3)]
    targets = [rng.integers(0, 4, 32) for _ in range(3)]
    weights = [rng.standard_normal((4, 8)) for _ in range(3)]

    def grads_of(i, steps):
        w = Tensor(weights[i], requires_grad=True)
        for _ in range(steps):
            F.cross_entropy(F.linear(Tensor(inputs[i]), w).tanh(), targets[i]).backward()
        return w.grad

    alone = [grads_of(i, 20) for i in range(3)]
    together = [None] * 3

    def body(i):
        together[i] = grads_of(i, 20)

    run_threads(3, body)
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)


# --- re-entrant backward -----------------------------------------------------------------------
# numpy's floating-point error callback runs Python code in the middle of a sweep (here: log's
# rule divides by x == 0). A backward started there is a sweep of its own: both complete, and
# the leaves receive the contributions of both.


def test_a_backward_started_inside_another_backward_loses_nothing():
    x = Tensor(np.array([0.0, 1.0, 2.0]), requires_grad=True)
    inner_x = x * 5.0               # shared with the outer graph
    with np.errstate(divide="ignore"):
        # the sweep reaches the log after inner_x received the product's contribution, and
        # before it passed it on
        outer = (inner_x * 7.0 + inner_x.log()).sum()
    nested = []

    def on_error(kind, flag):
        if not nested:
            nested.append(kind)
            (inner_x * 11.0).sum().backward()

    old_call = np.seterrcall(on_error)
    old = np.seterr(divide="call", invalid="ignore")
    try:
        outer.backward()
    finally:
        np.seterr(**old)
        np.seterrcall(old_call)
    assert nested == ["divide by zero"]
    expected = np.array([np.inf, 1.0, 0.5]) + 35.0 + 55.0
    assert np.array_equal(x.grad, expected)
