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
