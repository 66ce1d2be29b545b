"""The op inventories agree: each engine's op enum, its rules, its op names, the reference
engine and the tests' op tables list the same ops (as cytoolz checks its compiled twin against
toolz). A new op missing from any of them fails here, naming the place."""

import os
import re

import numpy as np
import pytest

import fastgrad
from conftest import COMPILED, RefValue, Value
from fastgrad._scalar import reference
from test_engine_ops import OPS

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

PACKAGE = os.path.dirname(fastgrad.__file__)
# Ops that are not computations: a free slot, a leaf, a node built by the user.
NOT_COMPUTED = {"FREE", "LEAF", "OPAQUE"}


def read(*path):
    with open(os.path.join(PACKAGE, *path), encoding="utf-8") as f:
        return f.read()


def enum_names(source, prefix):
    """The names of the first `cdef enum:` whose members start with prefix, in code order."""
    for block in re.findall(r"cdef enum:\n((?:    .*\n)+)", source):
        names = re.findall(rf"^    {prefix}(\w+)", block, flags=re.M)
        if names:
            return [n for n in names if n != "COUNT"]
    raise AssertionError(f"no enum of {prefix}* found")


def function_body(source, name):
    """The text of a cdef function in a .pxd, up to the next top-level definition."""
    match = re.search(rf"^cdef [^\n]*\b{name}\(.*?(?=^cdef |\Z)", source, flags=re.M | re.S)
    assert match, f"{name} not found"
    return match.group(0)


SCALAR_OPS = enum_names(read("_scalar", "arena.pxd"), "SOP_")


def test_scalar_enum_is_what_the_reference_engine_implements():
    assert SCALAR_OPS[:3] == ["FREE", "LEAF", "OPAQUE"]
    assert set(reference.RULES) == set(SCALAR_OPS) - {"FREE"}, "reference.RULES vs arena.pxd"


@pytest.mark.parametrize("rule", ["value_rule", "backward_rule", "tangent_rule"])
def test_every_computed_op_has_each_compiled_rule(rule):
    body = function_body(read("_scalar", "rules.pxd"), rule)
    missing = [op for op in SCALAR_OPS if op not in NOT_COMPUTED and f"SOP_{op}" not in body]
    assert not missing, f"rules.pxd {rule} lacks {missing}"


def test_every_computed_op_has_each_reference_rule():
    for name, rule in reference.RULES.items():
        for method in ("backward", "tangent", "symbol") + (() if name in NOT_COMPUTED
                                                           else ("value",)):
            assert hasattr(rule, method), f"reference op {name} lacks {method}"


@pytest.mark.skipif(not COMPILED, reason="the compiled engine's op names (FASTGRAD_ENGINE=pure)")
def test_compiled_op_symbols_match_the_reference_engine():
    from fastgrad._scalar.value import OP_SYMBOLS
    assert len(OP_SYMBOLS) == len(SCALAR_OPS), "value.pyx OP_SYMBOLS vs arena.pxd"
    for code, name in enumerate(SCALAR_OPS):
        if name in reference.RULES:
            assert OP_SYMBOLS[code] == reference.RULES[name].symbol, name


def test_every_computed_op_has_a_rule_in_value_ops():
    from fastgrad._scalar.graph_rules import GRAPH_RULES
    computed = [op for op in SCALAR_OPS if op not in NOT_COMPUTED]
    assert sorted(GRAPH_RULES) == sorted(computed), "graph_rules.GRAPH_RULES vs arena.pxd"


@pytest.mark.skipif(not COMPILED, reason="the compiled engine's op names (FASTGRAD_ENGINE=pure)")
def test_compiled_op_names_follow_the_enum():
    from fastgrad._scalar.value import OP_NAMES
    assert list(OP_NAMES) == SCALAR_OPS, "value.pyx OP_NAMES vs arena.pxd"


def test_compiled_value_has_every_public_name_of_the_reference():
    operators = {"__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
                 "__truediv__", "__rtruediv__", "__pow__", "__rpow__", "__neg__", "__abs__"}

    def names(value):
        return {n for n in dir(value) if not n.startswith("__") or n in operators}

    # the reference's own bookkeeping, which the compiled engine keeps in its arena
    bookkeeping = {"_rule", "_children", "_exponent", "_created", "_node", "_extremum",
                   "_closure", "_apply_rule"}
    assert names(RefValue(1.0)) - bookkeeping <= names(Value(1.0))
    assert {"data", "grad", "_prev", "_op", "label", "backward", "_backward"} <= names(Value(1.0))


def test_the_op_tests_exercise_every_op():
    """tests/test_engine_ops.py's table builds a node of every op (on the reference engine)."""
    used = set()
    for arity, fn, points in OPS.values():
        point = points[0] if arity == 2 else (points[0],)
        stack = [fn(*[RefValue(x) for x in point])]
        while stack:
            node = stack.pop()
            used.add(node._rule)
            stack.extend(node._children)
    missing = [n for n, r in reference.RULES.items() if n not in NOT_COMPUTED and r not in used]
    assert not missing, f"test_engine_ops.OPS builds no {missing}"


# -- the tensor engine ---------------------------------------------------------------------------

TENSOR_OPS = enum_names(read("_tensor", "tensor.pxd"), "TOP_")


def test_tensor_op_names_follow_the_enum():
    from fastgrad._tensor.tensor import OP_NAMES
    assert len(OP_NAMES) == len(TENSOR_OPS), "tensor.pyx OP_NAMES vs tensor.pxd"
    assert TENSOR_OPS[0] == "LEAF" and OP_NAMES[0] == "leaf"


def test_every_tensor_op_has_a_backward_and_a_tangent_rule_side_by_side():
    source = read("_tensor", "rules.pyx")
    registered = re.findall(r"^_register\(TOP_(\w+), _(\w+)_backward, _(\w+)_tangent\)", source,
                            flags=re.M)
    assert {op for op, _, _ in registered} == set(TENSOR_OPS) - {"LEAF"}, "rules.pyx"
    for op, backward, tangent in registered:
        assert backward == tangent, f"{op}: its two rules are named alike, side by side"
        start = source.index(f"cdef int _{backward}_backward(")
        end = source.index(f"_register(TOP_{op},")
        assert f"cdef object _{tangent}_tangent(" in source[start:end], op


def test_the_tensor_tests_exercise_every_op():
    """The tests' op tables (tests/_tensor_cases.py, tests/test_tensor_ops.py) build a node of
    every op code."""
    from _tensor_cases import BINARY, REDUCTIONS, UNARY, functional_pairs
    from fastgrad import Tensor, cat, stack
    from test_tensor_ops import SHAPE_OPS

    rng = np.random.default_rng(0)

    def leaf(shape):
        return Tensor(rng.uniform(0.5, 2.0, shape), requires_grad=True)

    outputs = [fn(leaf((2, 3)), leaf((2, 3))) for fn, *_ in BINARY.values()]
    outputs += [fn(leaf((2, 3))) for fn, *_ in UNARY.values()]
    outputs += [getattr(leaf((2, 3)), name)(axis=0) for name in REDUCTIONS]
    outputs += [fn(leaf((2, 3, 2))) for fn, _ in SHAPE_OPS.values()]
    outputs += [leaf((2, 3)) @ leaf((3, 2)), cat([leaf(2), leaf(3)]), stack([leaf(2), leaf(2)])]
    for fn, _, arrays in functional_pairs(_AnyTorch(), rng):
        outputs.append(fn(*[Tensor(a, requires_grad=True) for a in arrays]))
    built = {out._op_code for out in outputs}
    missing = [op for op in TENSOR_OPS if op != "LEAF" and op.lower() not in _op_spellings(built)]
    assert not missing, f"the tensor tests' tables build no {missing}"


class _AnyTorch:
    """Stands in for torch where only attribute look-ups happen."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


def _op_spellings(built):
    """Tensor._op names as the enum spells them (getitem is TOP_INDEX, and so on)."""
    aliases = {"getitem": "index", "concatenate": "concat", "mse_loss": "mse",
               "binary_cross_entropy": "bce"}
    return {aliases.get(name, name) for name in built}


def test_the_functions_stub_declares_each_top_level_function():
    """fastgrad/_tensor/functions.py makes most of torch's function names in a loop, which type
    checkers cannot follow; its stub declares them one by one (stubtest checks the compiled
    modules' stubs only, so this keeps that one complete)."""
    import ast

    from fastgrad._tensor import functions
    stub = ast.parse(read("_tensor", "functions.pyi"))
    declared, listed = set(), None
    for node in stub.body:
        if isinstance(node, ast.FunctionDef):
            declared.add(node.name)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "__all__":
                listed = ast.literal_eval(node.value)
            else:
                declared.add(node.targets[0].id)
        elif isinstance(node, ast.ImportFrom):   # re-exports are spelled `import x as x`
            declared.update(a.name for a in node.names if a.asname == a.name)
    assert listed == functions.__all__, "functions.pyi __all__ vs functions.py"
    assert declared == set(functions.__all__), "functions.pyi declarations vs functions.__all__"
