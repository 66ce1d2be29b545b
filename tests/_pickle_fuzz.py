"""The child side of tests/test_fuzz_pickles.py: build picklable subjects, damage their pickles,
load them, use what loads. Run in a child process (a crash must not take pytest with it):

    python -c "import sys; sys.path.insert(0, 'tests'); import _pickle_fuzz as f; f.main('value', 0, 1000)"

prints one line ``case N`` before each case (so the parent can name the case a crash happened
in) and a final line ``result {json}``: how many cases loaded, the exceptions raised and the
ones outside the accepted lists. A case is reproduced alone with ``main(kind, seed, N, N + 1)``:
every case draws from its own RNG, seeded with (kind, seed, N).
"""

from __future__ import annotations

import copy
import io
import json
import math
import pickle
import pickletools
import random
import struct
import sys
import warnings

from fastgrad import engine
from fastgrad.engine import Value

COMPILED = engine.ENGINE == "compiled"

# What loading a damaged pickle may raise. Anything else (SystemError above all: a C function
# that failed without setting an exception) counts as unexpected, and so does a crash.
LOAD_ERRORS = (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError,
               IndexError, KeyError, OverflowError, MemoryError, ImportError, struct.error,
               RecursionError, NameError, LookupError)  # LookupError: a damaged codec name
# (UnicodeDecodeError is a ValueError)

# Using what loaded may raise more (ZeroDivisionError from a damaged number, RuntimeError from
# a program whose leaves changed, ...): any Exception but SystemError.
UNEXPECTED_WHEN_USED = (SystemError,)


# -- subjects ----------------------------------------------------------------------------------


def value_graph(rng: random.Random):
    """A random graph of every scalar op, with labels, a user-named op and shared nodes."""
    nodes = [Value(rng.uniform(-2.0, 2.0), label=f"x{i}") for i in range(3)]
    for k in range(rng.randint(3, 12)):
        a, b = rng.choice(nodes), rng.choice(nodes)
        op = rng.randrange(14)
        if op == 0:
            n = a + b
        elif op == 1:
            n = a * b
        elif op == 2:
            n = a ** 2
        elif op == 3:
            n = (abs(a) + 0.5) ** 1.5
        elif op == 4:
            n = (abs(a) + 0.5) ** b.tanh()
        elif op == 5:
            n = a.relu()
        elif op == 6:
            n = a.tanh()
        elif op == 7:
            n = a.tanh().exp()
        elif op == 8:
            n = (abs(a) + 1.0).log()
        elif op == 9:
            n = a.sigmoid()
        elif op == 10:
            n = a.max(b)
        elif op == 11:
            n = a.min(b)
        elif op == 12:
            n = a - b / (abs(b) + 1.0)
        else:
            n = Value(a.data + b.data, (a, b), "myop")  # micrograd's way to add an op
        if rng.random() < 0.5:
            n.label = f"n{k}"
        nodes.append(n)
    out = nodes[-1] + nodes[-2] * nodes[-3]
    out.label = "out"
    out.backward()
    return out


def mlp(rng: random.Random):
    from fastgrad.nn import MLP
    random.seed(rng.random())  # micrograd's Neuron draws its weights from the random module
    return MLP(3, [rng.randint(2, 4), rng.randint(2, 3), 1])  # micrograd: a layer of one gives a Value


def program(rng: random.Random):
    """A recorded training loss of a small MLP, with inputs, parameters and extra outputs
    (pickled with or without its model, which then comes along through the leaves)."""
    from fastgrad import record
    model = mlp(rng)
    rows = rng.randint(1, 4)
    X = [[Value(rng.uniform(-1, 1)) for _ in range(3)] for _ in range(rows)]
    ys = [rng.choice((-1.0, 1.0)) for _ in range(rows)]
    scores = [model(x) for x in X]
    loss = sum((1 + -y * s).relu() for y, s in zip(ys, scores)) * (1.0 / rows)
    prog = record(loss, inputs=X, params=model.parameters(), outputs=scores)
    return (model, prog) if rng.random() < 0.5 else prog


def optimizer(rng: random.Random):
    """A model with an optimizer that has state (momentum buffers, Adam's moments)."""
    from fastgrad.optim import SGD, Adam, AdamW
    model = mlp(rng)
    kind = rng.randrange(3)
    if kind == 0:
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=rng.random() < 0.5)
    elif kind == 1:
        opt = Adam(model.parameters(), lr=0.01)
    else:
        opt = AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(2):
        opt.zero_grad()
        model([0.5, -1.0, 2.0]).backward()
        opt.step()
    return model, opt


SUBJECTS = {"value": value_graph, "mlp": mlp, "program": program, "optimizer": optimizer}


# -- using what loaded -------------------------------------------------------------------------


def _walk(v, limit=10_000):
    """Every Value below v (through _prev), at most limit of them."""
    seen, stack = {id(v): v}, [v]
    while stack and len(seen) < limit:
        for c in stack.pop()._prev:
            if id(c) not in seen:
                seen[id(c)] = c
                stack.append(c)
    return list(seen.values())


def use_value(v):
    repr(v)
    for n in _walk(v):
        (n.data, n.grad, n._op, n.label, repr(n))
    v.backward()
    copy.copy(v)
    again = pickle.loads(pickle.dumps(v))
    if COMPILED:  # what loaded is a valid graph: it pickles back to the same state
        assert _same(again.__reduce__()[1], v.__reduce__()[1]), "round trip changed the graph"


def _same(x, y):
    """Equal, NaNs included (a damaged float may be a NaN)."""
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def use_model(m):
    repr(m)
    params = m.parameters()
    out = m([0.5, -1.0, 2.0])
    out = out if isinstance(out, Value) else sum(out)
    m.zero_grad()
    out.backward()
    for p in params:
        p.data -= 0.01 * p.grad
    pickle.loads(pickle.dumps(m))


def use_program(obj):
    model, prog = obj if isinstance(obj, tuple) else (None, obj)
    repr(prog)
    (prog.value, prog.outputs, prog.params, prog.inputs, prog.nodes, prog.instructions,
     prog.constants, prog.nbytes)
    try:
        prog.backward()  # with the values it was pickled with
    except RuntimeError:
        pass
    shape = prog.input_shape
    X = None if shape is None else [float(i % 7) - 3.0 for i in range(math.prod(shape))]
    if X is not None:
        import numpy as np
        X = np.array(X).reshape(shape)
    prog.zero_grad()
    prog.forward(X)
    prog.backward()
    prog.sgd_step(0.01)
    prog.forward(X)
    pickle.loads(pickle.dumps(obj))
    if model is not None:
        use_model(model)


def use_optimizer(obj):
    model, opt = obj
    repr(opt.state)
    for _ in range(2):
        opt.zero_grad()
        out = model([0.5, -1.0, 2.0])
        (out if isinstance(out, Value) else sum(out)).backward()
        opt.step()
    pickle.loads(pickle.dumps(obj))


USERS = {"value": use_value, "mlp": use_model, "program": use_program,
         "optimizer": use_optimizer}


# -- damage ------------------------------------------------------------------------------------

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, ord("("), ord("."), ord("N"), ord("q"))
INTERESTING_INTS = (-(2 ** 63), -(2 ** 31) - 1, -(2 ** 31), -2, -1, 0, 1, 2, 3, 100, 255, 256,
                    2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64, 10 ** 30)
INTERESTING_OTHERS = (None, True, 0.5, -0.0, math.nan, math.inf, -math.inf, 1e308, "0", "x",
                      b"", b"\x00" * 8, (), [], {}, (0,), [0], {0: 0}, {"x": 1.0})


def damage_bytes(data: bytes, rng: random.Random) -> bytes:
    """Bit flips, truncation, overwritten, deleted, duplicated or inserted bytes."""
    b = bytearray(data)
    how = rng.randrange(6)
    if how == 0:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif how == 1:
        del b[rng.randrange(len(b)):]
    elif how == 2:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.choice(INTERESTING_BYTES + (rng.randrange(256),))
    elif how == 3:
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 16)]
    elif how == 4:
        i, j = rng.randrange(len(b)), rng.randrange(len(b))
        b[j:j] = b[i:i + rng.randint(1, 32)]
    else:
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(b)


# The opcodes whose argument is a byte count, and the width of that count.
_COUNTED = {pickle.BINBYTES[0]: 4, pickle.BINUNICODE[0]: 4, pickle.BINBYTES8[0]: 8,
            pickle.BINUNICODE8[0]: 8, pickle.BYTEARRAY8[0]: 8}


def needs_huge_memory(data: bytes) -> bool:
    """Whether CPython's unpickler itself would allocate memory in proportion to a damaged
    number: a memo index of 2**22 or more (it grows its memo array to that size), or bytes
    or a string that claim 10 MB or more (allocated before they are read). Gigabytes, which
    test CPython and the machine, not fastgrad: such cases are skipped (and counted)."""
    f = io.BytesIO(data)
    start = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickletools on damaged escapes
            for op, arg, _ in pickletools.genops(f):
                if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) >= 2 ** 22:
                    return True
                start = f.tell()
    except Exception:  # noqa: BLE001 - the op at `start` does not parse: is it a long count?
        width = _COUNTED.get(data[start]) if start < len(data) else None
        count = data[start + 1:start + 1 + width] if width else b""
        return bool(width) and len(count) == width and int.from_bytes(count, "little") >= 10 ** 7
    return False


def forge_field(x, rng: random.Random):
    """x changed as a forger would: another type, an out-of-range number, a wrong length."""
    how = rng.randrange(4)
    if how == 0:
        return rng.choice(INTERESTING_INTS + INTERESTING_OTHERS)
    if isinstance(x, bytes) and x:
        return damage_bytes(x, rng) if how != 3 else bytes(x) * 2
    if isinstance(x, (list, tuple)) and x:
        y = list(x)
        if how == 1:
            y[rng.randrange(len(y))] = rng.choice(INTERESTING_INTS + INTERESTING_OTHERS)
        elif how == 2:
            del y[rng.randrange(len(y)):]
        else:
            y.append(rng.choice(y))
        return type(x)(y)
    if isinstance(x, dict):
        y = dict(x)
        y[rng.choice(INTERESTING_INTS + (0, 1, 0.0, "0"))] = rng.choice(
            INTERESTING_INTS + INTERESTING_OTHERS)
        return y
    if isinstance(x, int) and not isinstance(x, bool):
        return x + rng.choice((-1, 1, -(2 ** 31), 2 ** 31))
    return rng.choice(INTERESTING_INTS + INTERESTING_OTHERS)


class Forged:
    """Pickles as a call of func(*args): a forged state in a well-formed pickle."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, 1.0, -1.0)


def _edit_bytes(data: bytes, fmt: str, rng: random.Random, choose) -> bytes:
    """data (an array of struct format fmt) with one element set to choose(index, length)."""
    items = list(struct.unpack(f"{len(data) // struct.calcsize(fmt)}{fmt}", data))
    if items:
        j = rng.randrange(len(items))
        items[j] = choose(j, len(items))
    return struct.pack(f"{len(items)}{fmt}", *items)


def forge_plausibly(state: list, rng: random.Random) -> None:
    """Edit one field of a Value's (10 fields) or a Program's (17 fields) state within its type
    and a plausible range: another op code, another child index, a special float, a moved
    root or leaf boundary. Such states often pass validation and must then run safely."""
    ops = lambda j, n: rng.choice(list(range(16)) + [100])  # noqa: E731 - 100: MULADD
    index = lambda j, n: rng.randint(-1, max(j, n) if rng.random() < 0.2 else j)  # noqa: E731
    special = lambda j, n: rng.choice(SPECIAL_FLOATS)  # noqa: E731
    if len(state) == 10:  # ops, flags, a, b, vals, grads, auxs, labels, op_names, classes
        i = rng.randrange(9)
        if i in (0, 1):
            state[i] = _edit_bytes(state[i], "B", rng, ops if i == 0 else
                                   (lambda j, n: rng.randrange(256)))
        elif i in (2, 3, 4, 5, 6):
            j = rng.randrange(len(state[i]))
            state[i] = list(state[i])
            state[i][j] = index(j, len(state[i])) if i < 4 else rng.choice(SPECIAL_FLOATS)
        else:
            state[i] = {**state[i], rng.randrange(len(state[0])): f"forged{i}"}
        return
    i = rng.choice((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16))
    if i == 6:
        state[6] = _edit_bytes(state[6], "B", rng, ops)
    elif i in (7, 8, 9, 12):
        n = len(state[6])
        state[i] = _edit_bytes(state[i], "i", rng, lambda j, _: rng.randint(-1, n))
    elif i in (10, 11):
        state[i] = _edit_bytes(state[i], "d", rng, special)
    elif i == 16:
        state[16] = not state[16]
    else:
        state[i] = max(0, state[i] + rng.choice((-1, 1)))


def forge(obj, rng: random.Random):
    """The pickle of obj with its state (Value or Program) forged: a field or two replaced
    by anything, or one edited plausibly."""
    target = obj[1] if isinstance(obj, tuple) else obj
    func, state = target.__reduce__()[:2]  # a Value's handle state (a third item) is left out
    state = list(state)
    if rng.random() < 0.5:
        forge_plausibly(state, rng)
    else:
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(state))
            state[i] = forge_field(state[i], rng)
    return pickle.dumps(Forged(func, tuple(state)), protocol=rng.randint(2, 5))


# -- the driver --------------------------------------------------------------------------------


def main(kind: str, seed: int, start: int, stop: int, forged_share: float = 0.25) -> None:
    rng = random.Random(f"{kind}-{seed}-bases")
    bases = [SUBJECTS[kind](rng) for _ in range(4)]
    use = USERS[kind]
    can_forge = COMPILED and kind in ("value", "program")
    counts = {"cases": 0, "loaded": 0, "used": 0, "forged": 0, "forged_loaded": 0, "skipped": 0}
    load_errors: dict[str, int] = {}
    use_errors: dict[str, int] = {}
    unexpected: list[str] = []
    for case in range(start, stop):
        print("case", case, flush=True)
        rng = random.Random(f"{kind}-{seed}-{case}")
        base = rng.choice(bases)
        forged = can_forge and rng.random() < forged_share
        if forged:
            data = forge(base, rng)
            counts["forged"] += 1
        else:
            data = damage_bytes(pickle.dumps(base, protocol=rng.randint(0, 5)), rng)
            if needs_huge_memory(data):
                counts["skipped"] += 1
                continue
        counts["cases"] += 1
        try:
            obj = pickle.loads(data)
        except LOAD_ERRORS as exc:
            load_errors[type(exc).__name__] = load_errors.get(type(exc).__name__, 0) + 1
            continue
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails
            unexpected.append(f"case {case}: loading raised {type(exc).__name__}: {exc}")
            continue
        counts["loaded"] += 1
        counts["forged_loaded"] += forged
        try:
            use(obj)
            counts["used"] += 1
        except AssertionError as exc:
            unexpected.append(f"case {case}: {exc}")
        except UNEXPECTED_WHEN_USED as exc:
            unexpected.append(f"case {case}: using it raised {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a clean exception is all that is asked
            use_errors[type(exc).__name__] = use_errors.get(type(exc).__name__, 0) + 1
    print("result", json.dumps({**counts, "load_errors": load_errors, "use_errors": use_errors,
                                "unexpected": unexpected}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
