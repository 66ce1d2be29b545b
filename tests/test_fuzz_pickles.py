"""Damaged and forged pickles of scalar Values, recorded Programs, micrograd-style MLPs and
optimizers with state: each must load or fail with a clean exception, never crash, and what
loads must be usable (repr, backward, replay, another pickle) without crashing.

The fuzzing runs in child processes (tests/_pickle_fuzz.py, started by tests/crashsafe.py) so
that a crash fails one test and names the case. The seed is fixed (FASTGRAD_FUZZ_SEED=N runs
other cases); every case has its own RNG, so the failure message's command reproduces it alone.
"""

import json
import os
import textwrap

import pytest

from conftest import COMPILED, compiled_only
from crashsafe import ChildCrashed, run_isolated

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

SEED = int(os.environ.get("FASTGRAD_FUZZ_SEED", "0"))
TESTS = os.path.dirname(os.path.abspath(__file__))

# (kind, first case, end): 8,000 cases in six children, about 10 s in all on the development VM.
BATCHES = [
    ("value", 0, 1500), ("value", 1500, 3000),
    pytest.param("program", 0, 1500, marks=compiled_only),
    pytest.param("program", 1500, 3000, marks=compiled_only),
    ("mlp", 0, 1000),
    ("optimizer", 0, 1000),
]


def fuzz(kind, start, stop):
    """Run cases start..stop-1 of kind in a child; return its result (see _pickle_fuzz.main)."""
    code = (f"import sys; sys.path.insert(0, {TESTS!r}); import _pickle_fuzz; "
            f"_pickle_fuzz.main({kind!r}, {SEED}, {start}, {stop})")
    try:
        proc = run_isolated(code, timeout=600)
    except ChildCrashed as exc:
        started = [line.split()[1] for line in exc.proc.stdout.splitlines()
                   if line.startswith("case ")]
        case = started[-1] if started else start
        raise ChildCrashed(
            f"{kind} case {case} (seed {SEED}) crashed the child. Reproduce it alone with:\n"
            f"  python -X dev -c \"import sys; sys.path.insert(0, 'tests'); import _pickle_fuzz; "
            f"_pickle_fuzz.main('{kind}', {SEED}, {case}, {int(case) + 1})\"\n{exc}",
            exc.proc) from None
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("result ")]
    assert len(lines) == 1, proc.stdout[-3000:]
    return json.loads(lines[0][len("result "):])


@pytest.mark.parametrize("kind,start,stop", BATCHES)
def test_damaged_pickles_load_or_fail_cleanly(kind, start, stop):
    result = fuzz(kind, start, stop)
    assert result["unexpected"] == []
    assert result["cases"] + result["skipped"] == stop - start
    # the damage is neither always fatal nor always harmless: both paths were exercised
    assert 0 < result["loaded"] < result["cases"]
    assert result["used"] > 0
    if kind in ("value", "program") and COMPILED:
        assert 0 < result["forged_loaded"] < result["forged"]
    # few cases are skipped (those where CPython's unpickler would allocate gigabytes)
    assert result["skipped"] < 0.15 * (stop - start)


# -- Value states forged by hand -----------------------------------------------------------------
#
# A Value pickles as rebuild_graph(ops, flags, a, b, vals, grads, auxs, labels, op_names), the
# graph below it in topological order. The base graph here is tanh(x * 3.0), labelled:
#   ops  b'\x01\x01\x04\x08'   leaf x, leaf 3.0, MUL(0, 1), TANH(2)
#   a    [-1, -1, 0, 2]         b [-1, -1, 1, -1]     labels {0: 'x', 3: 'y'}

FORGE_CHILD = """
import copy, pickle
from fastgrad.engine import Value
from fastgrad._scalar.value import rebuild_graph

x = Value(2.0, label="x")
y = (x * 3.0).tanh()
y.label = "y"
ops, flags, a, b, vals, grads, auxs, labels, op_names, classes = y.__reduce__()[1]
assert (ops, a, b) == (b"\\x01\\x01\\x04\\x08", [-1, -1, 0, 2], [-1, -1, 1, -1])

class Forged:  # a well-formed pickle of a forged state
    def __reduce__(self):
        return rebuild_graph, (ops, flags, a, b, vals, grads, auxs, labels, op_names, classes)

{edit}
try:
    if {via_pickle}:
        v = pickle.loads(pickle.dumps(Forged()))
    else:
        v = rebuild_graph(ops, flags, a, b, vals, grads, auxs, labels, op_names, classes)
except Exception as exc:  # the loader's own error is both an UnpicklingError and a ValueError
    print("rejected", "ValueError" if isinstance(exc, ValueError) else type(exc).__name__)
else:
    nodes, stack = [], [v]
    while stack:
        nodes.append(stack.pop())
        stack.extend(nodes[-1]._prev)
    print("accepted", *sorted({{type(n.label).__name__ for n in nodes}}),
          *sorted({{type(n._op).__name__ for n in nodes}}))
    try:
        for n in nodes:
            repr(n), copy.copy(n)
        v.backward(), pickle.loads(pickle.dumps(v))
    except Exception as exc:
        print("unusable", type(exc).__name__)
"""


def forged_value(edit, via_pickle=True):
    """'rejected <exception type>', or 'accepted' and the types of the graph's labels, then
    of its op names ('accepted str str' for a valid graph), then '; unusable <exception type>'
    if copying, backward or pickling it again raised."""
    code = FORGE_CHILD.format(edit=textwrap.dedent(edit), via_pickle=via_pickle)
    proc = run_isolated(code, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return "; ".join(proc.stdout.splitlines())


REJECTED = [
    # op codes
    ("op byte out of range", "ops = ops[:3] + bytes([200])"),
    ("op code SOP_FREE", "ops = ops[:3] + bytes([0])"),
    ("op code SOP_COUNT", "ops = ops[:3] + bytes([15])"),
    ("program-only op code (MULADD)", "ops = ops[:3] + bytes([100])"),
    ("a leaf with children", "ops = bytes([1, 1, 1, 8])"),
    ("a unary op given two children", "ops = ops[:2] + bytes([8, 8])"),
    ("a binary op given one child", "ops = ops[:3] + bytes([3])"),
    # child indices
    ("a child pointing at its own node", "a[2] = 2"),
    ("a child pointing forward", "a[2] = 3"),
    ("a child index below -1", "a[3] = -2"),
    ("a huge child index", "b[2] = 2 ** 40"),
    ("a child index that is a float", "a[3] = 2.0"),
    ("a child index that is a bool", "b[2] = True"),
    ("a node no one uses (two roots)", "a[3] = 0"),
    # sizes and types of the fields
    ("no nodes", "ops, flags, a, b, vals, grads, auxs = b'', b'', [], [], [], [], []"),
    ("a list shorter than ops", "vals = vals[:3]"),
    ("a list longer than ops", "grads = grads + [0.0]"),
    ("flags shorter than ops", "flags = flags[:2]"),
    ("a list that is None", "b = None"),
    ("a tuple for a list", "a = tuple(a)"),
    ("a str for the op bytes", "ops = 'abcd'"),
    ("a value that is a str", "vals[1] = '3.0'"),
    ("a value too large for a float", "auxs[2] = 10 ** 400"),
    ("a value that is None", "grads[0] = None"),
    # labels and op names: the node they name
    ("a label of a node past the end", "labels = {4: 'z'}"),
    ("a label of node -1", "labels = {-1: 'z'}"),
    ("an op name of a node past the end", "op_names = {2 ** 31: 'op'}"),
    ("a label keyed by a float", "labels = {0.0: 'x'}"),
    ("labels that are a list", "labels = ['x']"),
]


@compiled_only
@pytest.mark.parametrize("edit", [e for _, e in REJECTED], ids=[name for name, _ in REJECTED])
def test_forged_value_states_are_rejected(edit):
    outcome = forged_value(edit)
    assert outcome.startswith("rejected ")
    assert outcome.split()[1] in ("ValueError", "TypeError", "OverflowError")


@compiled_only
def test_forged_states_can_still_be_valid():
    # the forging harness itself: an untouched state, and a same-arity op swap, load
    assert forged_value("") == "accepted str str"
    assert forged_value("ops = ops[:3] + bytes([7])") == "accepted str str"  # tanh -> relu


@compiled_only
@pytest.mark.parametrize("edit, via_pickle", [
    pytest.param("labels = {0: 42}", True, id="an int label"),
    pytest.param("labels = {3: b'y'}", True, id="a bytes label"),
    pytest.param("op_names = {3: 5}", True, id="an int op name"),
    pytest.param("op_names = {2: ['*']}", True, id="a list op name"),
    pytest.param("""
        class Name(str):
            pass
        labels = {0: Name('x')}
    """, False, id="a str subclass label (kept, not copied)"),
])
def test_forged_labels_and_op_names_must_be_str(edit, via_pickle):
    outcome = forged_value(edit, via_pickle)
    # rejected, or (a str subclass) stored as an exact str
    assert outcome.startswith("rejected ") or outcome == "accepted str str"
    if outcome.startswith("rejected "):
        assert outcome.split()[1] in ("ValueError", "TypeError")


@compiled_only
@pytest.mark.parametrize("edit", [
    pytest.param("""
        class Shrink:  # converting the first value empties the child lists
            def __float__(self):
                a.clear(); b.clear()
                return 2.0
        vals[0] = Shrink()
    """, id="__float__ empties the child lists"),
    pytest.param("""
        class Shrink:  # converting the first value empties the list being converted
            def __float__(self):
                vals.clear()
                return 2.0
        vals[0] = Shrink()
    """, id="__float__ empties the values"),
    pytest.param("""
        class Shrink:  # converting the last gradient empties the aux list
            def __float__(self):
                auxs.clear()
                return 0.0
        grads[3] = Shrink()
    """, id="__float__ empties a later list"),
    pytest.param("""
        class Liar:  # node 0 when checked, then far out of range when used
            calls = 0
            def __index__(self):
                Liar.calls += 1
                return 0 if Liar.calls == 1 else 50_000_000
        labels = {Liar(): 'z'}
    """, id="a label key that changes its index"),
    pytest.param("""
        class Raises:
            def __float__(self):
                raise ArithmeticError('no float here')
        vals[2] = Raises()
    """, id="__float__ raises"),
])
def test_user_code_in_a_forged_state_cannot_crash_the_loader(edit):
    outcome = forged_value(edit, via_pickle=False)
    assert outcome.startswith("rejected ")


# -- Program states forged by hand ---------------------------------------------------------------
#
# A Program pickles as _restore(version, n_nodes, n_params, n_inputs, n_leaves, root, ops, ca,
# cb, cc, aux, val, out_index, leaves, input_shape, output_shape, valid). The base program is
# tanh(w*x + 1.0) * w with parameter w, input x and the extra output w*x:
#   nodes 0 w, 1 x, 2 the constant 1.0 | 3 MUL(0, 1), 4 ADD(3, 2), 5 TANH(4), 6 MUL(5, 0): root 6

PROGRAM_CHILD = """
import numpy as np
from fastgrad import Value, record

def i32(*v):
    return np.array(v, np.int32).tobytes()

def base():
    w, x = Value(0.5), Value(2.0)
    h = w * x
    prog = record((h + 1.0).tanh() * w, inputs=[x], params=[w], outputs=[h])
    func, state = prog.__reduce__()
    assert state[4:7] == (3, 6, b"\\x01\\x01\\x01\\x04\\x03\\x08\\x04")
    return func, list(state), w, h

func, state, w, h = base()
edit = {edit}
st = list(state)
for k, v in edit.items():
    st[k] = v
try:
    p = func(*st)
except (ValueError, TypeError, OverflowError) as exc:
    print("rejected")
else:
    try:
        repr(p), p.value, p.outputs, p.params, p.inputs, p.nbytes
        p.backward()
        p.forward(None if p.input_shape is None else np.ones(p.input_shape))
        p.backward()
        p.sgd_step(0.1)
        p.forward(None if p.input_shape is None else np.ones(p.input_shape))
        print("runs")
    except RuntimeError as exc:
        print("raises RuntimeError")
"""

FORGED_PROGRAMS = {
    "root at a parameter": ("{5: 0}", "runs"),
    "root at a constant": ("{5: 2}", "runs"),
    "every node a leaf": ("{4: 7, 6: b'\\x01' * 7, 7: i32(*[-1] * 7), 8: i32(*[-1] * 7), "
                          "9: i32(*[-1] * 7)}", "runs"),
    "a fused multiply-add of leaves": ("{6: state[6][:6] + bytes([100]), "
                                       "7: i32(-1, -1, -1, 0, 3, 4, 2), "
                                       "8: i32(-1, -1, -1, 1, 2, 4, 0), "
                                       "9: i32(-1, -1, -1, 1, 2, 4, 1)}", "runs"),
    "values forged, still marked valid": ("{11: np.full(7, np.nan).tobytes()}",
                                          "raises RuntimeError"),
    "0-d extra outputs": ("{15: ()}", "runs"),
    "the largest node count": ("{1: 2 ** 31 - 1}", "runs"),
    "not marked valid": ("{16: False}", "raises RuntimeError"),
    "a leaf that has children": ("{13: (w, h)}", "raises RuntimeError"),
    "an input shape of 2**64 elements": ("{14: (2 ** 32, 2 ** 32)}", "rejected"),
    "an input shape beyond Py_ssize_t": ("{14: (2 ** 62, 4, 2 ** 62)}", "rejected"),
    "a negative input shape": ("{14: (-1, -1)}", "rejected"),
    "an input shape that is a list": ("{14: [1]}", "rejected"),
    "a node count beyond int32": ("{1: 2 ** 31}", "rejected"),
    "more leaves than nodes": ("{4: 8}", "rejected"),
    "one Value as parameter and input": ("{13: (w, w)}", "rejected"),
    "a leaf that is not a Value": ("{13: (w, 2.0)}", "rejected"),
    "leaves given as a list": ("{13: [w, h]}", "rejected"),
    "an output past the end": ("{12: i32(7)}", "rejected"),
    "an op where a leaf belongs": ("{6: bytes([4]) + state[6][1:]}", "rejected"),
    "a child above its node": ("{7: i32(-1, -1, -1, 0, 3, 6, 5)}", "rejected"),
    "an unknown op code": ("{6: state[6][:6] + bytes([99])}", "rejected"),
    "another pickle version": ("{0: 2}", "rejected"),
}


@compiled_only
@pytest.mark.parametrize("edit, expected", FORGED_PROGRAMS.values(), ids=FORGED_PROGRAMS)
def test_forged_program_states_are_rejected_or_run(edit, expected):
    proc = run_isolated(PROGRAM_CHILD.replace("{edit}", edit), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == expected


@compiled_only
@pytest.mark.parametrize("data", [
    b"\x80\x02cfastgrad._scalar.replay\nProgram\n)\x81.",  # NEWOBJ: Program.__new__(Program)
    b"ccopyreg\n_reconstructor\n(cfastgrad._scalar.replay\nProgram\ncbuiltins\nobject\nNtR.",
], ids=["Program.__new__", "copyreg._reconstructor"])
def test_a_pickle_cannot_make_an_empty_program(data):
    # Such a Program had no buffers: its .value and forward() read through NULL (SIGSEGV).
    proc = run_isolated(f"""
        import pickle
        try:
            prog = pickle.loads({data!r})
        except TypeError:
            print("rejected")
        else:
            print(prog.value, prog.forward())
    """)
    assert (proc.returncode, proc.stdout) == (0, "rejected\n"), proc.stderr[-3000:]
