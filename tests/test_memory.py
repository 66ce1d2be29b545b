"""Lifetime: deep graphs, reclaimed slots, flat memory over training, no cyclic-GC work."""

import gc
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import COMPILED, Value, compiled_only

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


def run_python(code, timeout=600):
    """Run code in a fresh interpreter with the same engine; return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_million_deep_chain_builds_backprops_and_frees():
    depth = 1_000_000 if COMPILED else 200_000
    out = run_python(f"""
        import sys
        sys.setrecursionlimit(1000)  # nothing may recurse
        from fastgrad.engine import Value, ENGINE
        x = Value(0.5)
        y = x
        for _ in range({depth}):
            y = y * 1.0 + 0.0
        y.backward()
        assert x.grad == 1.0, x.grad
        assert y.data == 0.5
        if ENGINE == "compiled":
            from fastgrad._scalar.value import arena_stats
            before = arena_stats()["live"]
            del y
            after = arena_stats()["live"]
            print(before - after)
        else:
            del y
            print("freed")
    """)
    if COMPILED:
        # every op built a node and a constant leaf; all but the leaf x are reclaimed
        assert int(out) == 4 * 1_000_000
    else:
        assert out.strip() == "freed"


@compiled_only
def test_dropped_graphs_return_their_slots():
    from fastgrad._scalar.value import arena_stats
    gc.collect()
    base = arena_stats()["live"]
    x = Value(2.0)
    y = (x * x + 1).tanh() / (x - 3)
    assert arena_stats()["live"] > base + 5
    del y
    assert arena_stats()["live"] == base + 1
    del x
    assert arena_stats()["live"] == base


@compiled_only
def test_a_graph_outlives_the_handles_of_its_inner_nodes():
    x = Value(3.0)
    h = x * x
    out = h + x
    del h  # out still needs it
    out.backward()
    assert x.grad == 7.0
    (inner,) = [c for c in out._prev if c is not x]
    assert inner.data == 9.0 and inner.grad == 1.0


@compiled_only
def test_handles_are_not_tracked_by_the_cyclic_gc():
    x = Value(1.0)
    assert not gc.is_tracked(x)
    assert not gc.is_tracked(x * x)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc (Linux)")
def test_training_loop_keeps_rss_flat():
    steps = 2000 if COMPILED else 300
    out = run_python(f"""
        import random
        from fastgrad.engine import Value
        from fastgrad.nn import MLP

        def rss_kib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4

        random.seed(0)
        model = MLP(2, [16, 16, 1])
        data = [([random.uniform(-1, 1), random.uniform(-1, 1)], random.choice([-1, 1])) for _ in range(20)]
        samples = []
        for step in range({steps}):
            scores = [model(x) for x, _ in data]
            loss = sum((1 + -y * s).relu() for (_, y), s in zip(data, scores)) * (1.0 / len(data))
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data -= 0.01 * p.grad
            if step in ({steps} // 10, {steps} - 1):
                samples.append(rss_kib())
        print(samples[0], samples[1])
    """)
    early, late = map(int, out.split())
    # Leaking even one 8-byte slot per node would add megabytes over these steps.
    assert late - early < 1024, f"RSS grew from {early} KiB to {late} KiB"


@compiled_only
def test_compaction_moves_slots_but_keeps_graphs_handles_and_labels():
    from fastgrad._scalar import reference
    from fastgrad._scalar.value import compact_now, arena_stats

    def graph(V):
        garbage_before = [V(float(i)) * 2 for i in range(50)]  # dies: leaves holes below
        x, w = V(0.5, label="x"), V(-1.5, label="w")
        h = (x * w + 1.0).tanh()
        h.label = "h"
        out = h * h + x / w
        del garbage_before
        return x, w, out

    x, w, out = graph(Value)
    rx, rw, rout = graph(reference.Value)
    size_before = arena_stats()["size"]
    compact_now()
    assert arena_stats()["size"] < size_before
    # the inner node h has no handle now; its label survived the move
    labels = set()
    stack = [out]
    while stack:
        v = stack.pop()
        labels.add(v.label)
        stack.extend(v._prev)
    assert {"x", "w", "h"} <= labels
    assert (x.label, w.label) == ("x", "w")
    out.backward()
    rout.backward()
    assert (out.data, x.grad, w.grad) == (rout.data, rx.grad, rw.grad)
    # new nodes after a compaction still go above everything alive
    y = out * x
    y.backward()
    assert x.grad != rx.grad
