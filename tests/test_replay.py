"""fastgrad.record: recorded programs replay forward and backward with a fresh build's numbers."""

import copy
import doctest
import gc
import math
import os
import pickle
import random
import subprocess
import sys
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import COMPILED, RefValue, Value
from test_engine_random_graphs import build, finite, instruction, reference_errors, same

pytestmark = pytest.mark.skipif(not COMPILED, reason="record() replays the compiled engine")

if COMPILED:
    import fastgrad
    from fastgrad._scalar import replay as _replay
    from fastgrad._scalar.value import compact_now
    from fastgrad.datasets import make_moons
    from fastgrad.nn import MLP
    from fastgrad.engine import Program, record, sgd_step

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def rel_close(a, b, rel=1e-12):
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


# ---------------------------------------------------------------------------------------------
# The moons demo: replay vs rebuilding the graph every step


def moons_loss(model, inputs, y):
    """examples/moons.py's loss on input Values: (total loss, scores)."""
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
    return data_loss + reg_loss, scores


def moons_models(seed=1337):
    random.seed(seed)
    rebuilt = MLP(2, [16, 16, 1])
    random.seed(seed)
    replayed = MLP(2, [16, 16, 1])
    return rebuilt, replayed


def test_moons_replay_matches_rebuilding_every_step():
    X, y = make_moons(100, noise=0.1, seed=1337)
    rebuilt, replayed = moons_models()
    inputs = [list(map(Value, row)) for row in X]
    loss, scores = moons_loss(replayed, inputs, y)
    prog = record(loss, inputs=inputs, params=replayed.parameters(), outputs=scores)
    del loss, scores  # the program needs nothing of the original graph
    rng = np.random.default_rng(0)
    for k in range(6):
        # even steps: the same batch; odd steps: streamed new inputs
        Xk = X if k % 2 == 0 else X + rng.normal(0.0, 0.05, X.shape)
        fresh, fresh_scores = moons_loss(rebuilt, [list(map(Value, row)) for row in Xk], y)
        rebuilt.zero_grad()
        fresh.backward()
        value = prog.forward(Xk)
        prog.zero_grad()
        prog.backward()
        assert rel_close(value, fresh.data) and value == fresh.data  # in fact bit for bit
        assert prog.outputs.tolist() == [s.data for s in fresh_scores]
        for p, q in zip(rebuilt.parameters(), replayed.parameters()):
            assert rel_close(q.grad, p.grad) and q.grad == p.grad
            assert q.data == p.data
        lr = 1.0 - 0.9 * k / 100
        for p in rebuilt.parameters():
            p.data -= lr * p.grad
        prog.sgd_step(lr)


def test_streaming_minibatches_with_their_labels():
    # Labels that change from batch to batch are inputs too: here a third column of X.
    X, y = make_moons(60, noise=0.1, seed=7)
    rebuilt, replayed = moons_models(seed=11)
    batch = 10

    def loss_on(model, rows):
        scores = [model(row[:2]) for row in rows]
        losses = [(1 + -row[2] * s).relu() for row, s in zip(rows, scores)]
        return sum(losses) * (1.0 / len(losses))

    rows = [[Value(0.0), Value(0.0), Value(1.0)] for _ in range(batch)]
    prog = record(loss_on(replayed, rows), inputs=rows, params=replayed.parameters())
    data = np.column_stack([X, y])
    for k in range(0, len(data), batch):
        chunk = data[k:k + batch]
        fresh = loss_on(rebuilt, [[Value(v) for v in row] for row in chunk])
        rebuilt.zero_grad()
        fresh.backward()
        prog.zero_grad()
        assert prog.forward(chunk) == fresh.data
        prog.backward()
        assert [p.grad for p in replayed.parameters()] == [p.grad for p in rebuilt.parameters()]
        sgd_step(rebuilt.parameters(), 0.1)
        prog.sgd_step(0.1)


@pytest.mark.skipif(not os.path.isdir(EXAMPLES),
                    reason="examples/ not found (tests run outside the source tree)")
def test_moons_example_replay_prints_the_same_losses():
    script = os.path.join(EXAMPLES, "moons.py")

    def losses(*flags):
        out = subprocess.run([sys.executable, "-X", "dev", script, "--steps", "8", "--plot", "",
                              *flags],
                             capture_output=True, text=True, timeout=300, check=True).stdout
        return [line for line in out.splitlines() if line.startswith("step ")]

    normal = losses()
    assert len(normal) == 8
    assert losses("--replay") == normal


def test_sgd_step_matches_micrograds_python_update():
    ps = [Value(random.uniform(-1, 1)) for _ in range(50)]
    qs = [Value(p.data) for p in ps]
    for p, q in zip(ps, qs):
        p.grad = q.grad = random.uniform(-1, 1)
    for p in ps:
        p.data -= 0.37 * p.grad
    sgd_step(qs, 0.37)
    assert [p.data for p in ps] == [q.data for q in qs]
    with pytest.raises(TypeError):
        sgd_step([Value(1.0), 2.0], 0.1)


# ---------------------------------------------------------------------------------------------
# Random graphs: record on some leaf values, replay on others, compare with a fresh build


def reachable_ids(out):
    """ids of the Values reachable from out (kept alive while walking, so no id is reused)."""
    seen, stack, keep = {id(out)}, [out], [out]
    while stack:
        for c in stack.pop()._prev:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
                keep.append(c)
    return seen


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    leaves=st.lists(finite, min_size=1, max_size=4),
    new_leaves=st.lists(finite, min_size=4, max_size=4),
    program=st.lists(instruction, min_size=1, max_size=25),
    twice=st.booleans(),
)
def test_random_graphs_replay_bit_for_bit(leaves, new_leaves, program, twice):
    new_leaves = new_leaves[:len(leaves)]
    # the same instructions must succeed on both sets of values, so that both build one graph
    assume(reference_errors(leaves, program) == reference_errors(new_leaves, program))
    vs, nodes, out = build(Value, leaves, program)
    used = reachable_ids(out)
    live = [k for k, v in enumerate(vs) if id(v) in used]
    params = [vs[k] for k in live[0::2]]   # even ones: set through .data
    inputs = [vs[k] for k in live[1::2]]   # odd ones: streamed through forward(X)
    watched = [k for k, n in enumerate(nodes) if id(n) in used][::3]  # (not fused away)
    prog = record(out, inputs=inputs or None, params=params, outputs=[nodes[k] for k in watched])
    assert same(prog.value, out.data)
    del nodes, out
    compact_now()  # the recorded graph's slots move or are freed: no matter

    # the fresh build on the new values
    fvs, fnodes, fout = build(Value, new_leaves, program)
    for k in live[0::2]:
        vs[k].data = new_leaves[k]
    X = [new_leaves[k] for k in live[1::2]]
    value = prog.forward(X if inputs else None)
    assert same(value, fout.data)
    assert all(same(a, fnodes[k].data) for a, k in zip(prog.outputs.tolist(), watched))
    assert [v.data for v in vs if id(v) in used] == [new_leaves[k] for k in live]
    prog.backward()
    fout.backward()
    if twice:
        # A program's backward() adds d(out)/d(leaf) as one backward() of a freshly built graph
        # does (a second backward() of one arena graph would also compound its inner grads).
        prog.backward()
        again = iter(fvs)
        build(lambda _: next(again), new_leaves, program)[2].backward()
    for k in live:
        assert same(vs[k].grad, fvs[k].grad), (k, vs[k].grad, fvs[k].grad)
    # and both agree with the reference engine, bit for bit
    rvs, rnodes, rout = build(RefValue, new_leaves, program)
    assert same(value, rout.data)


# ---------------------------------------------------------------------------------------------
# Semantics


def test_leaves_parameters_inputs_and_constants():
    w, b, x = Value(2.0), Value(0.5), Value(3.0)
    c = Value(10.0)
    out = (w * x + b) * c - 1
    prog = record(out, inputs=[x])  # default params: the live non-input leaves w, b, c
    assert prog.params == (w, b, c)
    assert prog.inputs == (x,)
    assert prog.input_shape == (1,)
    assert prog.constants == 1  # the -1 of `- 1`: frozen
    w.data = 1.0
    assert prog.forward([4.0]) == (1.0 * 4.0 + 0.5) * 10.0 - 1
    assert x.data == 4.0
    # a dropped handle's leaf is a constant: its value is frozen
    t = Value(3.0)
    y = t * w
    del t
    prog2 = record(y)
    assert prog2.params == (w,) and prog2.constants == 1
    w.data = 2.0
    assert prog2.forward() == 6.0


def test_backward_uses_micrograds_accumulation_rule():
    x, y = Value(1.5), Value(-2.0)
    fx, fy = Value(1.5), Value(-2.0)
    prog = record((x * y + x).tanh() * x, params=[x, y])
    x.grad, fx.grad = 0.25, 0.25  # existing gradients are added to, in the same order
    for _ in range(3):
        # each backward() is that of a freshly built graph (the training-loop situation)
        prog.backward()
        ((fx * fy + fx).tanh() * fx).backward()
        assert (x.grad, y.grad) == (fx.grad, fy.grad)
    prog.zero_grad()
    assert (x.grad, y.grad) == (0.0, 0.0)


def test_output_that_is_a_leaf():
    x = Value(3.0)
    prog = record(x, inputs=[x])
    assert prog.forward([5.0]) == 5.0
    prog.backward()
    assert x.grad == 1.0


def test_relu_max_min_abs_replay_for_any_values():
    a, b = Value(1.0), Value(-2.0)
    out = a.relu() + a.max(b) * 2 + a.min(b) * 3 + abs(b) * 5
    prog = record(out, inputs=[a, b])
    for va, vb in [(1.0, -2.0), (-1.0, 2.0), (0.0, 0.0), (-3.0, -1.0), (2.0, 2.0)]:
        fa, fb = Value(va), Value(vb)
        fresh = fa.relu() + fa.max(fb) * 2 + fa.min(fb) * 3 + abs(fb) * 5
        prog.zero_grad()
        assert prog.forward([va, vb]) == fresh.data
        prog.backward()
        fresh.backward()
        assert (a.grad, b.grad) == (fa.grad, fb.grad)


def test_input_shapes_and_outputs():
    rows = [[Value(float(i + j)) for j in range(3)] for i in range(4)]
    w = Value(2.0)
    scores = [sum((v * w for v in row), Value(0.0)) for row in rows]
    total = sum(scores)
    prog = record(total, inputs=rows, params=[w], outputs=scores)
    assert prog.input_shape == (4, 3)
    assert [v.data for v in prog.inputs] == [float(i + j) for i in range(4) for j in range(3)]
    X = np.arange(12.0).reshape(4, 3) * 0.5
    assert prog.forward(X) == 2.0 * X.sum()
    assert prog.outputs.shape == (4,)
    assert prog.outputs.tolist() == (2.0 * X.sum(axis=1)).tolist()
    assert prog.forward(X.tolist()) == 2.0 * X.sum()  # nested lists work too
    prog.backward()
    assert w.grad == X.sum()
    assert record(total).outputs is None


def test_forward_raises_what_a_fresh_build_raises():
    x = Value(2.0)
    prog = record(x.log() + (1 / x) + x.exp(), inputs=[x])
    with pytest.raises(ValueError, match="math domain error"):
        prog.forward([-1.0])
    with pytest.raises(RuntimeError, match="forward"):
        prog.backward()  # values are half computed
    with pytest.raises(OverflowError):
        prog.forward([1000.0])
    assert prog.forward([1.0]) == math.log(1.0) + 1.0 + math.exp(1.0)
    prog.backward()
    assert x.grad == 1.0 - 1.0 + math.exp(1.0)
    y = Value(2.0)
    with pytest.raises(ZeroDivisionError):
        record(1 / y, inputs=[y]).forward([0.0])
    with pytest.raises(ValueError, match="fractional power"):
        record(y ** Value(0.5), inputs=[y]).forward([-2.0])
    # inf in, inf out, as a fresh build does without raising
    assert record(y.exp(), inputs=[y]).forward([math.inf]) == math.inf


# ---------------------------------------------------------------------------------------------
# Errors instead of wrong numbers


def test_wrong_input_shapes_and_types():
    rows = [[Value(1.0), Value(2.0)] for _ in range(3)]
    prog = record(sum(v for row in rows for v in row), inputs=rows)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        prog.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(6,\)"):
        prog.forward(np.zeros(6))
    with pytest.raises(TypeError, match="array of numbers"):
        prog.forward([["a", "b"]] * 3)
    no_inputs = record(rows[0][0] * 2)
    with pytest.raises(ValueError, match="without inputs"):
        no_inputs.forward([1.0])


def test_non_value_arguments():
    x = Value(1.0)
    out = x * 2
    with pytest.raises(TypeError, match="needs a Value"):
        record(1.0)
    with pytest.raises(TypeError, match="float"):
        record(out, inputs=[x, 1.0])
    with pytest.raises(TypeError, match="int"):
        record(out, params=3)
    with pytest.raises(TypeError, match="str"):
        record(out, inputs="x")
    with pytest.raises(TypeError, match="another engine"):
        record(RefValue(1.0))
    with pytest.raises(TypeError, match="record"):
        Program()


def test_unknown_non_leaf_and_duplicate_leaves():
    x, y, z = Value(1.0), Value(2.0), Value(3.0)
    h = x * y
    out = h + 1
    with pytest.raises(ValueError, match="not in the graph"):
        record(out, inputs=[x, z])
    with pytest.raises(ValueError, match="not in the graph"):
        record(out, params=[z])
    with pytest.raises(ValueError, match="not a leaf"):
        record(out, inputs=[h])
    with pytest.raises(ValueError, match="twice"):
        record(out, inputs=[x], params=[x, y])
    with pytest.raises(ValueError, match="twice"):
        record(out, inputs=[x, x])
    with pytest.raises(ValueError, match="rectangular"):
        record(out, inputs=[[x], [y, x]])
    with pytest.raises(ValueError, match="flat"):
        record(out, params=[[x, y]])
    with pytest.raises(ValueError, match="outputs"):
        record(out, outputs=[z * 2])


def test_user_built_nodes_cannot_be_recorded():
    x = Value(2.0)
    custom = Value(x.data ** 3, (x,), "cube")
    with pytest.raises(ValueError, match=r"Value\(data, _children, _op\)"):
        record(custom * 2)


def test_leaves_stay_alive_and_reinitialised_leaves_are_refused():
    x = Value(2.0)
    prog = record(x * x, inputs=[x])
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is not None and prog.inputs[0] is ref()  # the program holds its leaves
    assert prog.forward([3.0]) == 9.0

    older = Value(1.0)
    p = Value(5.0)
    prog2 = record(p * 2, params=[p])
    p.__init__(7.0, (older,), "custom")  # p is now a user-built node, no longer a leaf
    with pytest.raises(RuntimeError, match="no longer a leaf"):
        prog2.forward()
    with pytest.raises(RuntimeError, match="forward"):
        prog2.backward()  # the forward failed
    q = Value(5.0)
    prog3 = record(q * 2, params=[q])
    q.__init__(7.0, (older,), "custom")  # this time between a forward and a backward
    with pytest.raises(RuntimeError, match="no longer a leaf"):
        prog3.backward()


def test_backward_refuses_leaves_changed_since_forward():
    w, x = Value(2.0), Value(3.0)
    prog = record(w * x, inputs=[x], params=[w])
    prog.forward([4.0])
    prog.backward()
    prog.sgd_step(0.1)  # w changed: the values of the last forward are stale
    with pytest.raises(RuntimeError, match="parameter 0 changed"):
        prog.backward()
    x.data = 1.0
    prog.forward()  # reads both again
    x.data = 2.0
    with pytest.raises(RuntimeError, match="input 0 changed"):
        prog.backward()


# ---------------------------------------------------------------------------------------------
# Compaction, size, pickling, documentation


def test_compaction_between_record_and_replay_does_not_matter():
    X, y = make_moons(20, noise=0.1, seed=3)
    _, model = moons_models(seed=5)
    inputs = [list(map(Value, row)) for row in X]
    loss, _ = moons_loss(model, inputs, y)
    prog = record(loss, inputs=inputs)  # params by default: the model's (live handles)
    assert set(map(id, prog.params)) == set(map(id, model.parameters()))
    before = prog.forward(X)
    prog.backward()
    grads = [p.grad for p in prog.params]
    del loss
    garbage = [Value(float(i)) * 2 for i in range(5000)]  # shift everything around
    del garbage
    compact_now()
    fresh_first = [Value(0.0) for _ in range(10)]  # new nodes in the freed slots
    prog.zero_grad()
    assert prog.forward(X) == before
    prog.backward()
    assert [p.grad for p in prog.params] == grads
    del fresh_first


def test_size_reporting():
    xs = [Value(float(i)) for i in range(10)]
    w = Value(0.5)
    out = sum((w * x for x in xs), Value(0.0)).relu()  # 10 products, 10 sums, relu
    prog = record(out, inputs=xs, params=[w])
    # leaves: 10 inputs, w, and the dropped Value(0.0) (a constant); 21 ops
    assert prog.nodes == 12 + 21 == len(reachable_ids(out))
    assert prog.instructions == 10 + 1  # each product fused into the sum that uses it
    assert prog.constants == 1
    assert 0 < prog.nbytes <= 64 * prog.nodes
    assert f"{prog.nodes:,} nodes" in repr(prog) and f"{prog.nbytes:,} bytes" in repr(prog)


def test_pickle_round_trip_with_and_without_the_model():
    X, y = make_moons(16, noise=0.1, seed=1)
    _, model = moons_models(seed=2)
    inputs = [list(map(Value, row)) for row in X]
    loss, scores = moons_loss(model, inputs, y)
    prog = record(loss, inputs=inputs, params=model.parameters(), outputs=scores)
    value = prog.forward(X)
    # together: the restored program replays on the restored model's parameters
    model2, prog2 = pickle.loads(pickle.dumps((model, prog)))
    assert all(p is q for p, q in zip(prog2.params, model2.parameters()))
    assert (prog2.nodes, prog2.nbytes, prog2.input_shape) == (prog.nodes, prog.nbytes, (16, 2))
    assert prog2.value == value and prog2.outputs.tolist() == prog.outputs.tolist()
    assert prog2.forward(X) == value
    prog.zero_grad()
    prog2.zero_grad()
    prog.backward()
    prog2.backward()
    assert [p.grad for p in prog2.params] == [p.grad for p in prog.params]
    prog2.sgd_step(0.5)
    assert prog2.forward(X) != value and prog.forward(X) == value  # independent copies
    # alone, and deep-copied: the program brings copies of its leaves
    prog3 = copy.deepcopy(prog)
    assert prog3.params[0] is not prog.params[0]
    assert prog3.forward(X) == value


def test_corrupt_pickles_are_refused():
    x = Value(2.0)
    prog = record((x * x).tanh() + x, inputs=[x])
    func, state = prog.__reduce__()
    assert func(*state).forward([1.0]) == prog.forward([1.0])
    state = list(state)
    ca = np.frombuffer(state[7], dtype=np.int32).copy()
    ca[-1] = len(ca) + 5  # a child above its parent
    bad = list(state)
    bad[7] = ca.tobytes()
    with pytest.raises(ValueError, match="corrupt"):
        func(*bad)
    bad = list(state)
    bad[6] = b"\x03" * len(state[6])  # leaves that are not leaves
    with pytest.raises(ValueError, match="corrupt"):
        func(*bad)
    y = Value(3.0)
    func, state = record(x * y, inputs=[x, y]).__reduce__()
    bad = list(state)
    bad[-4] = (x, x)  # one Value for two leaves
    with pytest.raises(ValueError, match="listed twice"):
        func(*bad)
    bad = list(state)
    bad[0] = 99
    with pytest.raises(ValueError, match="version"):
        func(*bad)


def test_public_names_have_doctested_examples():
    names = [fastgrad.record, Program, Program.forward, Program.backward, Program.zero_grad,
             Program.sgd_step, sgd_step]
    for obj in names:
        assert obj.__doc__ and ">>>" in obj.__doc__, obj
        finder = doctest.DocTestFinder(recurse=False)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        for test in finder.find(obj, name=getattr(obj, "__qualname__", str(obj)),
                                globs={}):
            runner.run(test)
        assert runner.failures == 0, obj
    assert fastgrad.record is _replay.record


def test_stub_matches_the_module():
    import ast
    import inspect

    path = os.path.join(os.path.dirname(_replay.__file__), "replay.pyi")
    with open(path) as f:
        tree = ast.parse(f.read())

    def params_of(fn):
        return [a.arg for a in fn.args.args]

    stubbed = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            stubbed[node.name] = (getattr(_replay, node.name), params_of(node))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                    decorators = [getattr(d, "id", None) for d in item.decorator_list]
                    attr = getattr(_replay.Program, item.name)
                    params = None if "property" in decorators else params_of(item)
                    stubbed[f"{node.name}.{item.name}"] = (attr, params)
    assert set(_replay.__all__) <= set(stubbed) | {"Program"}
    for name, (obj, params) in stubbed.items():
        if params is not None:
            assert list(inspect.signature(obj).parameters) == params, name
