"""In-place ops and autograd state with PyTorch's rules: add_ sub_ mul_ div_ zero_ fill_ copy_
clamp_ masked_fill_ and the augmented operators; in-place on a leaf that requires grad raises
outside no_grad; backward after a saved tensor changed raises "modified by an inplace
operation"; .grad is a Tensor (zero_ works), .data and numpy() share memory; grad modes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, broadcastable_shapes

from _torch_compare import LIBS, check, check_raises, core_gap, fastgrad_only, fg, rand, torch

X = rand((2, 3), seed=1)
V = rand((3,), seed=2)

INPLACE = {
    "add_": lambda lib, t, v: t.add_(v),
    "add_alpha": lambda lib, t, v: t.add_(v, alpha=-2.5),
    "add_scalar": lambda lib, t, v: t.add_(1.5),
    "sub_": lambda lib, t, v: t.sub_(v),
    "sub_alpha": lambda lib, t, v: t.sub_(v, alpha=0.5),
    "mul_": lambda lib, t, v: t.mul_(v),
    "mul_scalar": lambda lib, t, v: t.mul_(-3.0),
    "div_": lambda lib, t, v: t.div_(v),
    "div_scalar": lambda lib, t, v: t.div_(4.0),
    "zero_": lambda lib, t, v: t.zero_(),
    "fill_": lambda lib, t, v: t.fill_(3.25),
    "fill_0d": lambda lib, t, v: t.fill_(v[1]),
    "copy_": lambda lib, t, v: t.copy_(v),
    "copy_same_shape": lambda lib, t, v: t.copy_(v.expand(2, 3) * 2),
    "clamp_": lambda lib, t, v: t.clamp_(-0.5, 0.5),
    "clamp_min": lambda lib, t, v: t.clamp_(min=0.0),
    "clamp_max": lambda lib, t, v: t.clamp_(max=0.1),
    "masked_fill_": lambda lib, t, v: t.masked_fill_(t > 0, -1.0),
}


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_methods_return_self_with_torch_values(name):
    def fn(lib, t, v):
        out = INPLACE[name](lib, t, v)
        assert out is t
        return t
    check(fn, X, V, grad=False)


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_on_a_non_leaf_keeps_gradients(name):
    # an in-place op on an intermediate is recorded like its out-of-place twin
    def fn(lib, x, v):
        y = x * 2.0 + 0.25
        INPLACE[name](lib, y, v)
        return y.tanh()
    check(fn, X, V)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), name=st.sampled_from(["add_", "sub_", "mul_", "div_", "copy_"]),
       dtype=st.sampled_from(["float64", "float32"]))
def test_inplace_broadcasting(data, name, dtype):
    # the operand broadcasts to the target's shape; the target's shape never changes
    shape = data.draw(array_shapes(min_dims=1, max_dims=3, max_side=3))
    other = data.draw(broadcastable_shapes(shape, max_dims=len(shape), max_side=3).filter(
        lambda o: np.broadcast_shapes(shape, o) == shape))
    x, v = rand(shape, dtype, 1), rand(other, dtype, 2, 0.5, 2.0)

    def fn(lib, x, v):
        assert getattr(x, name)(v) is x
        return x
    check(fn, x, v, grad=False)


def test_inplace_chain_on_non_leaf_with_grad_operands():
    def fn(lib, x, w):
        y = x.exp()
        z = y * 1.0
        z.mul_(w).add_(w, alpha=2.0).div_(w + 3.0)
        z.clamp_(max=1.5)
        return z
    check(fn, X, rand((3,), seed=3, low=0.5, high=2.0))


def test_copy_converts_dtype_and_broadcasts():
    def fn(lib, f, i):
        f.copy_(i[0])
        i.copy_(f * 2.6)         # into int64: truncated
        return f, i
    check(fn, np.zeros((2, 3), np.float32), np.array([[1, 2, 3], [4, 5, 6]]), grad=False)


def test_augmented_operators_are_in_place_on_plain_tensors():
    def fn(lib, t, i):
        alias, ialias = t, i
        t += 1.0
        t -= lib.tensor([0.5, 0.25, 0.0], dtype=lib.float64)
        t *= 3
        t /= 2
        i += 2
        i *= i
        i //= 3
        assert alias is t and ialias is i
        return t, i
    check(fn, X, np.array([1, -2, 3]), grad=False)


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_bumps_views_of_the_same_memory(lib):
    t = lib.tensor([1.0, 2.0, 3.0, 4.0])
    v = t.view(2, 2)
    row = v[1]
    row.mul_(10)
    assert t.tolist() == [1.0, 2.0, 30.0, 40.0]
    t.zero_()
    assert v.tolist() == [[0.0, 0.0], [0.0, 0.0]]


# ---- leaves that require grad ----------------------------------------------------------------

LEAF_INPLACE = {
    "add_": lambda lib, p: p.add_(1.0),
    "mul_": lambda lib, p: p.mul_(2.0),
    "zero_": lambda lib, p: p.zero_(),
    "fill_": lambda lib, p: p.fill_(1.0),
    "copy_": lambda lib, p: p.copy_(p.detach() * 0),
    "clamp_": lambda lib, p: p.clamp_(0, 1),
    "iadd": lambda lib, p: p.__iadd__(1.0),
    "isub": lambda lib, p: p.__isub__(p.detach()),
    "setitem": lambda lib, p: p.__setitem__(0, 5.0),
    "masked_fill_": lambda lib, p: p.masked_fill_(p.detach() > 0, 0.0),
}


@pytest.mark.parametrize("name", sorted(LEAF_INPLACE))
def test_inplace_on_leaf_requiring_grad_raises_outside_no_grad(name):
    for lib in (torch, fg):
        p = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf"):
            LEAF_INPLACE[name](lib, p)
        assert p.tolist() == [0.5, -1.0, 2.0]        # refused before writing
        with lib.no_grad():
            LEAF_INPLACE[name](lib, p)
        assert p.requires_grad and p.is_leaf


@pytest.mark.parametrize("lib", LIBS)
def test_sgd_step_under_no_grad_changes_the_weights(lib):
    p = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    params = [p]
    (p * p).sum().backward()
    with lib.no_grad():
        for q in params:
            q -= 0.1 * q.grad           # in place: `q` is rebound to the same tensor
    assert params[0] is p
    assert p.tolist() == pytest.approx([0.8, -1.6, 2.4])
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    p.grad.zero_()
    assert p.grad.tolist() == [0.0, 0.0, 0.0]
    (p * 3).sum().backward()
    assert p.grad.tolist() == [3.0, 3.0, 3.0]


# ---- saved tensors modified in place ---------------------------------------------------------

def _saved_then_modified(kind):
    def fn(lib, x, w):
        if kind == "input of mul":
            a = x * 2.0
            out = a * a
            a.add_(1.0)
        elif kind == "output of exp":
            out = x.exp()
            out.add_(1.0)
        elif kind == "output of tanh via view":
            out = x.tanh()
            out.view(-1)[0] = 0.0
        elif kind == "non-grad operand":
            out = x * w
            w.mul_(2.0)
        elif kind == "leaf under no_grad":
            out = (x * x).sum()
            with lib.no_grad():
                x.add_(1.0)
        elif kind == "pow base":
            a = x + 1.0
            out = a ** 2
            a.zero_()
        elif kind == "matmul operand":
            a = x * 1.0
            out = a @ w.reshape(3, 1)
            w.fill_(0.0)
        out.sum().backward()
    return fn


# fastgrad refuses the in-place op itself (RuntimeError: a recorded op already uses the tensor,
# and nodes hold their children by reference) instead of failing later in backward
_GRAPH_GAP = core_gap("the in-place op on a tensor a recorded op uses is refused at once")


@pytest.mark.parametrize("kind", [
    pytest.param("input of mul", marks=_GRAPH_GAP), "output of exp",
    pytest.param("output of tanh via view", marks=_GRAPH_GAP), "non-grad operand",
    "leaf under no_grad", pytest.param("pow base", marks=_GRAPH_GAP),
    "matmul operand"])
def test_backward_after_saved_tensor_changed_raises(kind):
    for lib in (torch, fg):
        x = lib.tensor(X.copy(), requires_grad=True)
        w = lib.tensor(V.copy())
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            _saved_then_modified(kind)(lib, x, w)


def test_inplace_on_tensors_not_saved_does_not_raise():
    # add saves neither operand, so changing one after the forward pass is harmless
    def fn(lib, x):
        w = lib.tensor(V)
        y = x + w
        w.mul_(5.0)
        return y * 2.0, w
    check(fn, X)


def test_inplace_on_a_fresh_result_after_its_last_use():
    def fn(lib, x):
        z = x * 3.0
        z.add_(1.0)
        return z
    check(fn, X)


# ---- .grad, .data, detach, numpy -------------------------------------------------------------

@pytest.mark.parametrize("lib", LIBS)
def test_grad_is_a_tensor_and_accumulates(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    assert x.grad is None
    (x * x).sum().backward()
    assert isinstance(x.grad, lib.Tensor) and not x.grad.requires_grad
    assert x.grad.dtype == x.dtype and x.grad.tolist() == [2.0, 4.0]
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    g = x.grad
    g.zero_()
    assert x.grad.tolist() == [0.0, 0.0]
    x.grad = None
    (x * 2.0).sum().backward(retain_graph=False)
    assert x.grad.tolist() == [2.0, 2.0]
    y = x * x
    y.backward(gradient=lib.tensor([1.0, -1.0]), retain_graph=True)
    y.backward(lib.tensor([1.0, 1.0]))
    assert x.grad.tolist() == [2.0 + 2.0 + 2.0, 2.0 - 4.0 + 4.0]


@pytest.mark.parametrize("lib", LIBS)
def test_backward_needs_a_scalar_or_gradient(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        (x * 2).backward()
    with pytest.raises(RuntimeError):
        lib.tensor([1.0]).sum().backward()          # nothing requires grad


@pytest.mark.parametrize("lib", LIBS)
def test_data_shares_memory_and_does_not_require_grad(lib):
    p = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    d = p.data
    assert isinstance(d, lib.Tensor) and not d.requires_grad
    d.add_(1.0)                                      # no error: .data is not tracked
    assert p.tolist() == [2.0, 3.0, 4.0]
    p.data.mul_(2.0)
    assert p.tolist() == [4.0, 6.0, 8.0]
    p.data = lib.tensor([0.5, 0.5, 0.5])
    assert p.tolist() == [0.5, 0.5, 0.5] and p.requires_grad and p.is_leaf
    (p * p).sum().backward()
    p.data -= 0.1 * p.grad.data                      # the pre-no_grad SGD idiom
    assert p.tolist() == pytest.approx([0.4, 0.4, 0.4])


@fastgrad_only
def test_data_accepts_a_numpy_array():
    p = fg.tensor([1.0, 2.0], requires_grad=True)
    p.data = np.array([3.0, 4.0], np.float32)
    assert p.tolist() == [3.0, 4.0] and p.requires_grad


@pytest.mark.parametrize("lib", LIBS)
def test_detach_shares_memory_and_detach_in_place(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    d.add_(1.0)
    assert y.tolist() == [3.0, 5.0]
    z = x * 3
    assert z.detach_() is z and not z.requires_grad and z.grad_fn is None
    assert x.requires_grad_(False) is x and not x.requires_grad


@pytest.mark.parametrize("lib", LIBS)
def test_numpy_and_asarray_share_memory(lib):
    t = lib.tensor([1.0, 2.0, 3.0])
    a = t.numpy()
    a[0] = 10.0
    assert t[0].item() == 10.0
    t.add_(1.0)
    assert a.tolist() == [11.0, 3.0, 4.0]
    assert np.asarray(t).tolist() == [11.0, 3.0, 4.0]
    b = np.asarray(t)
    b[2] = -1.0
    assert t[2].item() == -1.0
    assert t.detach().numpy().dtype == np.float32


# ---- grad modes and random in-place fills ----------------------------------------------------

@pytest.mark.parametrize("lib", LIBS)
def test_grad_modes(lib):
    x = lib.tensor([1.0], requires_grad=True)
    assert lib.is_grad_enabled()
    with lib.no_grad():
        assert not lib.is_grad_enabled()
        assert not (x * 2).requires_grad
        with lib.enable_grad():
            assert (x * 2).requires_grad
        assert not lib.is_grad_enabled()
    assert lib.is_grad_enabled()
    with lib.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert lib.is_grad_enabled()
    lib.set_grad_enabled(False)
    try:
        assert not lib.is_grad_enabled() and not (x + 1).requires_grad
    finally:
        lib.set_grad_enabled(True)
    assert (x + 1).requires_grad

    @lib.no_grad()
    def evaluate(t):
        return t * 2

    assert not evaluate(x).requires_grad and lib.is_grad_enabled()


@pytest.mark.parametrize("lib", LIBS)
def test_uniform_and_normal_fill_in_place(lib):
    p = lib.tensor(np.zeros(20000), requires_grad=True)
    with lib.no_grad():
        assert p.uniform_(-0.5, 1.5) is p
        a = p.detach().numpy().copy()
        assert a.min() >= -0.5 and a.max() < 1.5 and abs(a.mean() - 0.5) < 0.05
        assert p.normal_(2.0, 0.5) is p
        b = p.detach().numpy()
        assert abs(b.mean() - 2.0) < 0.05 and abs(b.std() - 0.5) < 0.05
        assert p.normal_() is p and abs(p.detach().numpy().std() - 1.0) < 0.05
    assert p.requires_grad and p.is_leaf
    with pytest.raises(RuntimeError):
        p.uniform_()


def test_inplace_type_errors_as_torch():
    def int_gets_float(lib, i):
        i.add_(1.5)
    check_raises(RuntimeError, int_gets_float, np.array([1, 2]))

    def bad_broadcast(lib, t):
        t.add_(lib.tensor([[1.0], [2.0], [3.0]], dtype=lib.float64))
    check_raises(RuntimeError, bad_broadcast, np.zeros(3))


@pytest.mark.parametrize("lib", LIBS)
def test_inplace_on_a_node_an_unpickled_graph_uses_is_refused_or_recorded(lib):
    # the parents of an unpickled graph count as users of its nodes: fastgrad refuses the
    # in-place op at once rather than rewrite a history they depend on
    import pickle
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    out = h * h
    if lib is torch:
        return              # torch cannot pickle non-leaf graphs
    out2 = pickle.loads(pickle.dumps(out))
    h2 = out2._prev[0]
    with pytest.raises(RuntimeError, match="already use"):
        h2.add_(1.0)


@pytest.mark.parametrize("lib", LIBS)
def test_optimizer_step_counts_as_an_inplace_change(lib):
    # backward through a graph after optimizer.step() changed a weight it saved raises, as in
    # PyTorch; a weight whose value no rule reads (x needs no gradient) is fine
    w = lib.nn.Parameter(lib.ones(3, 2, dtype=lib.float64))
    opt = lib.optim.SGD([w], lr=0.1)
    x = lib.ones(4, 3, dtype=lib.float64)
    out = (x @ w).tanh().sum()
    out.backward(retain_graph=True)
    opt.step()
    out.backward()
    assert w._version >= 1
    x = lib.ones(4, 3, dtype=lib.float64, requires_grad=True)
    out = (x @ w).sum()
    out.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()
