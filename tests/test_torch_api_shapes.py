"""Shape and indexing methods with PyTorch's meaning (transpose(d0, d1) swaps two dims, not
numpy's axis permutation): size/numel/dim, view/reshape/flatten/unflatten, squeeze/unsqueeze,
expand/repeat, permute/transpose/t/T/mT, flip, split/chunk/cat/stack, clone/contiguous/tolist,
indexing with ints, slices, None, ..., int64 and bool tensors and lists, and __setitem__, with
values, gradients and error types against PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _torch_compare import LIBS, check, check_raises, rand

X = rand((2, 3, 4), seed=1)


@pytest.mark.parametrize("lib", LIBS)
def test_size_shape_numel_dim(lib):
    t = lib.tensor(X)
    assert t.size() == (2, 3, 4) and t.shape == (2, 3, 4)
    assert tuple(t.size()) == (2, 3, 4) and list(t.shape) == [2, 3, 4]
    assert t.size(0) == 2 and t.size(-1) == 4 and t.size(dim=1) == 3
    assert t.shape[1] == 3 and t.shape[-1] == 4
    assert t.numel() == 24 and t.nelement() == 24
    assert t.dim() == 3 and t.ndim == 3 and len(t) == 2
    s = lib.tensor(2.5)
    assert s.size() == () and s.numel() == 1 and s.dim() == 0
    with pytest.raises(IndexError):
        t.size(3)
    with pytest.raises(TypeError):
        len(s)


VIEWS = {
    "view": lambda lib, t: (t.view(6, 4), t.view(-1), t.view(4, -1, 2), t.view((3, 8)),
                            t.view(2, 12).view(24)),
    "reshape": lambda lib, t: (t.reshape(6, 4), t.reshape(-1), t.reshape((4, 6)),
                               lib.reshape(t, (2, -1)), t.reshape(24, 1, 1)),
    "flatten": lambda lib, t: (t.flatten(), t.flatten(1), t.flatten(0, 1), t.flatten(-2, -1),
                               t.flatten(start_dim=1, end_dim=2), lib.flatten(t, 1),
                               t.flatten(1, 1)),
    "unflatten": lambda lib, t: (t.unflatten(2, (2, 2)), t.unflatten(-1, (2, -1)),
                                 t.flatten().unflatten(0, (6, 4))),
    "squeeze": lambda lib, t: (t.view(2, 1, 3, 1, 4).squeeze(), t.view(2, 1, 12).squeeze(1),
                               t.squeeze(0), t.view(1, 24).squeeze(-2), lib.squeeze(t[:1])),
    "unsqueeze": lambda lib, t: (t.unsqueeze(0), t.unsqueeze(-1), t.unsqueeze(2),
                                 lib.unsqueeze(t, 1), t.unsqueeze(-4)),
    "expand": lambda lib, t: (t[:, :1].expand(2, 5, 4), t[:1].expand(3, -1, -1),
                              t[0, 0].expand(2, 3, 4), t[0].expand_as(t), t.expand(2, 2, 3, 4)),
    "repeat": lambda lib, t: (t.repeat(1, 2, 1), t.repeat(2, 1, 1, 1), t[0].repeat(2, 3)),
    "permute": lambda lib, t: (t.permute(2, 0, 1), t.permute((1, 2, 0)), t.permute(-1, 0, 1),
                               lib.permute(t, (0, 2, 1))),
    "transpose": lambda lib, t: (t.transpose(0, 1), t.transpose(-1, -2), t.transpose(2, 0),
                                 lib.transpose(t, 1, 2), t[0].transpose(0, 1), t.swapaxes(0, 1)),
    "t_T_mT": lambda lib, t: (t[0].t(), t[0].T, t.mT, lib.t(t[1]), t[0, 0].t()),
    "flip": lambda lib, t: (t.flip(0), t.flip(-1), t.flip((0, 2)), lib.flip(t, [1])),
    "clone": lambda lib, t: (t.clone(), t.transpose(0, 2).contiguous(), t.contiguous()),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(VIEWS))
def test_shape_methods(name, dtype):
    check(VIEWS[name], X.astype(dtype))


@pytest.mark.parametrize("name", ["view", "flatten", "permute", "transpose", "flip", "repeat"])
def test_shape_methods_on_int_and_bool(name):
    check(VIEWS[name], np.arange(24).reshape(2, 3, 4), grad=False)
    check(VIEWS[name], (np.arange(24) % 3 == 0).reshape(2, 3, 4), grad=False)


def test_transpose_of_2d_swaps_not_a_no_op():
    check(lambda lib, t: (t.transpose(0, 1), t.transpose(1, 0), t.T), rand((2, 3), seed=2))


@st.composite
def shape_and_perm(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    d0 = draw(st.integers(-len(shape), len(shape) - 1))
    d1 = draw(st.integers(-len(shape), len(shape) - 1))
    start = draw(st.integers(0, len(shape) - 1))
    end = draw(st.integers(start, len(shape) - 1))
    new = draw(st.integers(-len(shape) - 1, len(shape)))
    return shape, perm, d0, d1, start, end, new


@settings(max_examples=25, deadline=None)
@given(case=shape_and_perm())
def test_shape_chain(case):
    shape, perm, d0, d1, start, end, new = case

    def fn(lib, t):
        p = t.permute(*perm)
        return (p, p.reshape(-1), t.transpose(d0, d1), t.flatten(start, end),
                t.unsqueeze(new), p.contiguous().view(-1), (p * 2).sum(dim=0))
    check(fn, rand(shape, seed=len(shape)))


SHAPE_ERRORS = [
    ("view wrong size", RuntimeError, lambda lib, t: t.view(5, -1)),
    ("reshape wrong size", RuntimeError, lambda lib, t: t.reshape(7)),
    ("two -1", RuntimeError, lambda lib, t: t.view(-1, -1)),
    ("t() on 3-D", RuntimeError, lambda lib, t: t.t()),
    ("transpose dim", IndexError, lambda lib, t: t.transpose(0, 3)),
    ("squeeze dim", IndexError, lambda lib, t: t.squeeze(3)),
    ("unsqueeze dim", IndexError, lambda lib, t: t.unsqueeze(4)),
    ("permute arity", RuntimeError, lambda lib, t: t.permute(0, 1)),
    ("permute repeat", RuntimeError, lambda lib, t: t.permute(0, 0, 1)),
    ("expand", RuntimeError, lambda lib, t: t.expand(3, 3, 4)),
    ("unflatten", RuntimeError, lambda lib, t: t.unflatten(1, (2, 2))),
    ("flatten order", RuntimeError, lambda lib, t: t.flatten(2, 1)),
    ("repeat arity", RuntimeError, lambda lib, t: t.repeat(2)),
    ("flip dim", IndexError, lambda lib, t: t.flip(3)),
    ("split dim", IndexError, lambda lib, t: t.split(2, dim=3)),
    ("size dim", IndexError, lambda lib, t: t.size(-4)),
    ("index", IndexError, lambda lib, t: t[2]),
    ("negative index", IndexError, lambda lib, t: t[-3]),
    ("index 2nd dim", IndexError, lambda lib, t: t[:, 3]),
    ("too many indices", IndexError, lambda lib, t: t[0, 0, 0, 0]),
    ("tensor index", IndexError, lambda lib, t: t[lib.tensor([0, 5])]),
    ("mask shape", IndexError, lambda lib, t: t[lib.tensor([True, False, True])]),
    ("cat shapes", RuntimeError, lambda lib, t: lib.cat([t, t[:, :2, :2]])),
    ("cat dim", IndexError, lambda lib, t: lib.cat([t, t], dim=3)),
    ("cat empty", (RuntimeError, ValueError), lambda lib, t: lib.cat([])),
    ("stack shapes", RuntimeError, lambda lib, t: lib.stack([t, t[0]])),
    ("split sizes", RuntimeError, lambda lib, t: t.split([1, 1], dim=1)),
]




@pytest.mark.parametrize("exc,fn", [
    pytest.param(e, f, id=i) for i, e, f in SHAPE_ERRORS])
def test_shape_errors(exc, fn):
    check_raises(exc, fn, X)


def test_view_of_a_non_contiguous_tensor_raises():
    # view never copies (it shares memory), so a transposed tensor cannot be viewed flat
    check_raises(RuntimeError, lambda lib, t: t.transpose(0, 2).view(-1), X)


# ---- split, chunk, cat, stack ----------------------------------------------------------------

def test_split_and_chunk():
    check(lambda lib, t: (t.split(2, dim=2), t.split(2, 1), t.split([1, 3], dim=-1),
                          lib.split(t, 1), t.chunk(2, dim=2), t.chunk(3, 1), t.chunk(2),
                          lib.chunk(t, 4, -1), t.split(3, dim=2), t.chunk(3, dim=2)), X)


@pytest.mark.parametrize("name", ["cat", "concat", "stack"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_cat_stack(name, dim):
    y = rand((2, 3, 4), seed=3)
    def fn(lib, a, b):
        join = getattr(lib, name)
        return join([a, b], dim=dim), join((a, b, a), dim), join([a], dim=dim)
    check(fn, X, y)


def test_cat_stack_default_dim_and_promotion():
    check(lambda lib, a, b, i: (lib.cat([a, b]), lib.stack([a, b]), lib.cat([a, i]),
                                lib.cat([a.float(), b])), X, rand((2, 3, 4), "float32", 4),
          np.ones((2, 3, 4), np.int64))
    check(lambda lib, a: lib.stack([a, a], dim=3), X)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32", "bool"])
def test_tolist_and_clone(dtype):
    a = (X * 3).astype(dtype)
    check(lambda lib, t: (t.tolist(), t[0, 0].tolist(), t[0, 0, 0].tolist(), t.clone(),
                          t.clone().tolist()), a, grad=False)


@pytest.mark.parametrize("lib", LIBS)
def test_clone_does_not_share_memory_but_view_does(lib):
    t = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
    c, v, r, tr = t.clone(), t.view(4), t.reshape(4), t.t()
    t.add_(10.0)
    assert c.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert v.tolist() == [11.0, 12.0, 13.0, 14.0]
    assert r.tolist() == [11.0, 12.0, 13.0, 14.0]
    assert tr.tolist() == [[11.0, 13.0], [12.0, 14.0]]
    t[0, 0] = -1.0
    assert v[0].item() == -1.0 and tr[0, 0].item() == -1.0


# ---- indexing --------------------------------------------------------------------------------

INDEX = {
    "int": lambda lib, t: (t[1], t[0, 2], t[1, 2, 3], t[-1], t[-1, -2, -3], t[0][1][2]),
    "slice": lambda lib, t: (t[:1], t[:, 1:], t[..., ::2], t[1:, :2, 1:3], t[:, -2:], t[0:0],
                             t[:, ::2, 1::2]),
    "none_ellipsis": lambda lib, t: (t[None], t[:, None], t[..., None], t[..., 0], t[0, ...],
                                     t[None, ..., None, 1], t[...]),
    "int_tensor": lambda lib, t: (t[lib.tensor([1, 0, 1])], t[:, lib.tensor([2, 0])],
                                  t[lib.tensor([[0, 1], [1, 1]])], t[..., lib.tensor([-1, 0])],
                                  t[lib.tensor(1)], t[lib.tensor([0, 1]), lib.tensor([2, 0])],
                                  t[lib.tensor([1, 1, 0]), :, lib.tensor([3, 3, 0])]),
    "list": lambda lib, t: (t[[1, 0]], t[:, [0, 0, 2]], t[[0, 1], [1, 2]], t[0, [2, 1]],
                            t[[-1, 0]]),
    "bool_mask": lambda lib, t: (t[t > 0], t[lib.tensor([True, False])],
                                 t[:, lib.tensor([False, True, True])], t[t[:, :, 0] > 0],
                                 t[0][t[0] < 0.5], t[lib.tensor([False, False])]),
    "mixed": lambda lib, t: (t[:, 1:, [1, 2]][..., None],
                             t[lib.tensor([1, 0])][:, 0], t[0, lib.tensor([2, 0]), 1:3]),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", sorted(INDEX))
def test_getitem(kind, dtype):
    # repeated indices accumulate their gradient
    check(INDEX[kind], X.astype(dtype))


def test_int_and_tensor_index_separated_by_a_slice():
    # PyTorch applies the int first (numpy treats it as an advanced index and moves the
    # advanced dims to the front): t[1, :, idx] has shape (3, 2) in PyTorch, (2, 3) in numpy
    check(lambda lib, t: (t[1, :, lib.tensor([0, 3])], t[0, :, [1, 2, 3]]), X)


@pytest.mark.parametrize("kind", sorted(INDEX))
def test_getitem_int_tensor(kind):
    check(INDEX[kind], np.arange(24).reshape(2, 3, 4) - 10, grad=False)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_getitem_random_index_tensors(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    dim = data.draw(st.integers(0, len(shape) - 1))
    idx = data.draw(st.lists(st.integers(-shape[dim], shape[dim] - 1), min_size=1, max_size=5))
    mask = data.draw(st.lists(st.booleans(), min_size=shape[0], max_size=shape[0]))

    def fn(lib, t):
        key = (slice(None),) * dim + (lib.tensor(idx),)
        return t[key], t[lib.tensor(mask)], t[idx[0] % shape[0]]
    check(fn, rand(shape, seed=sum(shape)))


# ---- __setitem__ -----------------------------------------------------------------------------

SETITEM = {
    "int": lambda lib, y, v: y.__setitem__(0, 5.0),
    "slice_scalar": lambda lib, y, v: y.__setitem__((slice(None), 1), -1.0),
    "slice_tensor": lambda lib, y, v: y.__setitem__((slice(None), 1), v[:2]),
    "broadcast_tensor": lambda lib, y, v: y.__setitem__((slice(None), slice(None), 0), v[0, :3]),
    "mask_scalar": lambda lib, y, v: y.__setitem__(y > 0, 0.0),
    "index_tensor": lambda lib, y, v: y.__setitem__(lib.tensor([1, 0]), v[0]),
    "list": lambda lib, y, v: y.__setitem__((0, [0, 2]), v[:2]),
    "ellipsis": lambda lib, y, v: y.__setitem__((Ellipsis, 3), v[1, 0]),
    "negative": lambda lib, y, v: y.__setitem__((-1, -1), v[1]),
}


@pytest.mark.parametrize("kind", sorted(SETITEM))
def test_setitem_values_on_plain_tensors(kind):
    def fn(lib, t, v):
        SETITEM[kind](lib, t, v)
        return t
    check(fn, X, rand((3, 4), seed=5), grad=False)


@pytest.mark.parametrize("kind", sorted(SETITEM))
def test_setitem_on_a_non_leaf_passes_gradients(kind):
    # the overwritten entries get no gradient from x; the written value gets theirs
    def fn(lib, x, v):
        y = x * 1.0
        SETITEM[kind](lib, y, v)
        return y * 2
    check(fn, X, rand((3, 4), seed=5))


def test_setitem_on_int_and_bool_tensors():
    def fn(lib, i, b):
        i[0, 0] = 7
        i[i > 5] = -1
        i[1] = 2.9            # truncated into the int tensor
        b[0] = True
        b[:, 1] = False
        return i, b
    check(fn, np.arange(24).reshape(2, 3, 4) % 7, np.zeros((2, 3, 4), bool), grad=False)


def test_setitem_shape_mismatch_raises():
    def fn(lib, t):
        t[0] = lib.tensor([1.0, 2.0])
    check_raises(RuntimeError, fn, X)
