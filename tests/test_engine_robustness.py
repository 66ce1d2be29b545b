"""The compiled core under hostile conditions: user code running mid-operation, re-entrant
collections, corrupt pickles. Nothing may crash, corrupt the tape or give a wrong number."""

import gc
import math
import numbers
import pickle
import weakref

import pytest

from conftest import RefValue, Value, compiled_only

pytestmark = compiled_only


def fill_arena():
    """Use up the arena's free room, so that the next new node compacts it."""
    from fastgrad._scalar.value import arena_stats
    st = arena_stats()
    return [Value(0.0) for _ in range(st["capacity"] - st["size"])]


def compact_soon():
    """Fill the arena and then allocate once more: a compaction (and maybe growth) happens."""
    fill_arena()
    Value(0.0)


class Trigger:
    """Cyclic garbage whose finalizer runs an action: with the collector's threshold at 1, the
    next allocation of a container (on Python < 3.12 that can be deep inside an operation)
    collects it and runs the action there."""

    action = None

    def __init__(self):
        self.cycle = self

    def __del__(self):
        action, Trigger.action = Trigger.action, None
        if action:
            action()


def arm(action):
    gc.collect()
    Trigger.action = action
    Trigger()
    gc.set_threshold(1)


def disarm():
    Trigger.action = None
    gc.set_threshold(700)
    gc.collect()


def test_inputs_converted_by_user_code_cannot_change_what_is_built():
    from fastgrad.engine import linear_combination

    ws = [Value(1.0), Value(2.0), Value(3.0)]

    class Sneaky:
        def __float__(self):
            ws.append(Value(4.0))  # mutate the caller's lists mid-call
            xs.clear()
            compact_soon()         # and move every slot
            return 1.0

    numbers.Real.register(Sneaky)
    xs = [Sneaky(), 2.0, 3.0]
    out = linear_combination(ws, xs, Value(0.0))
    assert out.data == 1.0 * 1.0 + 2.0 * 2.0 + 3.0 * 3.0


def test_neuron_attributes_running_code_cannot_change_what_is_built():
    from fastgrad.engine import linear_layer

    class N:
        def __init__(self, w, hook=None):
            self._w, self.b, self.nonlin, self.hook = w, Value(0.0), False, hook

        @property
        def w(self):
            if self.hook:
                self.hook()
            return self._w

    w0 = [Value(1.0), Value(2.0)]
    n0 = N(w0)
    n1 = N([Value(1.0), Value(1.0)], hook=lambda: (w0.__setitem__(0, None), compact_soon()))
    out = linear_layer([n0, n1], [1.0, 2.0])
    assert [v.data for v in out] == [5.0, 3.0]


def test_an_exponent_whose_type_check_runs_code_cannot_overrun_the_arena():
    class Exponent:
        checks = 0

        @property
        def __class__(self):
            Exponent.checks += 1
            fill_arena()  # uses up any room reserved before this check
            return Exponent

        def __float__(self):
            return 2.0

    from fastgrad._scalar.value import arena_stats
    numbers.Real.register(Exponent)
    assert (Value(3.0) ** Exponent()).data == 9.0
    stats = arena_stats()
    assert stats["size"] <= stats["capacity"]


def test_compaction_inside_a_collection_keeps_labels_on_their_values():
    for k in range(1, 6):
        gc.collect()
        live = []
        for i in range(60):
            v = Value(float(i), label=f"L{i}")
            live.append(v)
            Value(-1.0, label="dead")  # dies at once
        fill_arena()
        calls = [0]

        def maybe_compact():
            calls[0] += 1
            compact_soon()

        arm(maybe_compact)
        for _ in range(k):
            Value(0.0)
        disarm()
        assert [v.label for v in live] == [f"L{i}" for i in range(60)]


def test_prev_and_pickling_while_the_collector_compacts():
    junk = [Value(float(i)) for i in range(200)]
    a, b = Value(2.0), Value(3.0)
    p = a * b
    y = (p + 1.0).tanh()
    keep = [Value(10.0) + Value(20.0) for _ in range(5)]  # live nodes above p
    del junk
    arm(compact_soon)
    children = p._prev  # the set's allocation may collect: slots move under the call
    disarm()
    assert children == {a, b}
    expected = pickle.dumps(y)
    junk = [Value(float(i)) for i in range(300)]
    del junk
    arm(compact_soon)
    state = y.__reduce__()
    disarm()
    assert pickle.dumps(state[0](*state[1])) == expected
    del keep


def test_labels_and_op_names_are_strings():
    class Name(str):
        def __del__(self):
            compact_soon()

    v = Value(1.0, (), Name("myop"), label=Name("x"))
    assert type(v._op) is str and type(v.label) is str
    assert (v._op, v.label) == ("myop", "x")
    with pytest.raises(TypeError, match="label must be a str"):
        v.label = object()
    with pytest.raises(TypeError, match="_op must be a str"):
        Value(1.0, (), 5)


def test_reinitialising_is_checked():
    v = Value(1.0)
    with pytest.raises(ValueError, match="own child"):
        v.__init__(2.0, (v,), "loop")
    older = Value(7.0)
    w = Value(1.0)
    younger = Value(5.0)
    w.__init__(3.0, (older,), "re")  # older children are fine, in place, as micrograd mutates
    assert (w.data, w._op, w._prev) == (3.0, "re", {older})
    w.backward()
    assert w.grad == 1.0
    # children created after it: the handle moves to a node above them (a subclass's __init__
    # may build its children before calling super().__init__)
    w.label = "w"
    w.__init__(4.0, (younger, older), "newer")
    assert (w.data, w._op, w._prev, w.label) == (4.0, "newer", {younger, older}, "")
    w._backward = lambda: setattr(younger, "grad", younger.grad + w.grad)
    w.backward()
    assert younger.grad == 1.0


@pytest.mark.parametrize("a,b", [
    ([-1, 0], [-1, -0.5]),   # a float index
    ([-1, 1], [-1, -1]),     # a child that is not below its parent
    ([-1, 0], [-1, 5]),      # out of range
    ([-1, 0], [-1, True]),   # not exactly an int
])
def test_corrupt_pickles_are_rejected(a, b):
    from fastgrad._scalar.value import rebuild_graph
    with pytest.raises(ValueError, match="corrupt"):
        rebuild_graph(bytes([1, 4]), bytes(2), a, b, [2.0, 6.0], [0.0] * 2, [0.0] * 2, {}, {})


def test_zero_to_minus_infinity_is_infinity_as_in_python():
    for V in (Value, RefValue):
        assert (V(0.0) ** -math.inf).data == math.inf
        assert (V(0.0) ** V(-math.inf)).data == math.inf
        assert (0.0 ** V(-math.inf)).data == math.inf


def test_values_can_be_weakly_referenced():
    v = Value(1.0)
    r = weakref.ref(v)
    assert r() is v
    del v
    assert r() is None


def test_the_arena_gives_memory_back_after_a_big_graph_is_dropped():
    from fastgrad._scalar.value import compact_now, arena_stats
    x = Value(1.0)
    y = x
    # more nodes than the arena holds now (earlier tests may have left it large), so it grows
    for _ in range(arena_stats()["capacity"] + 200_000):
        y = y + x
    big = arena_stats()["capacity"]
    assert big >= 262_144
    del y
    compact_now()
    for _ in range(3):
        compact_soon()  # the next compactions find it mostly dead and shrink it
    # down to a quarter or less (65,536 slots, below which an arena keeps its memory)
    assert arena_stats()["capacity"] <= big // 4
    (x * x).backward()
    assert x.grad == 2.0
