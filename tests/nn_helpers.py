"""Helpers shared by the nn tests: moving tensors and weights between fastgrad and torch, and
comparing values and gradients at the precision of the dtype."""

import numpy as np

import fastgrad

torch = __import__("pytest").importorskip("torch")

TOL = {np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13),
       np.dtype(np.float32): dict(rtol=1e-6, atol=1e-6)}


def pair(array, requires_grad=False):
    """The same data as a fastgrad Tensor and a torch tensor (separate memory)."""
    array = np.asarray(array)
    ours = fastgrad.tensor(array.copy(), requires_grad=requires_grad)
    theirs = torch.tensor(array.copy(), requires_grad=requires_grad)
    return ours, theirs


def to_numpy(t):
    """A fastgrad or torch tensor's values as an ndarray."""
    if isinstance(t, torch.Tensor):
        return t.detach().numpy()
    return np.asarray(t.numpy())


def close(ours, theirs, tol_dtype=None):
    """Assert equal values (and dtype) within the dtype's tolerance."""
    a, b = to_numpy(ours), to_numpy(theirs)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    tol = TOL.get(np.dtype(tol_dtype or a.dtype), dict(rtol=0, atol=0))
    np.testing.assert_allclose(a, b, **tol)


def copy_weights(ours, theirs):
    """Load our module's state into the torch module (keys must agree)."""
    state = {k: torch.from_numpy(np.array(v.numpy(), copy=True))
             for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)


def grads_close(ours, theirs):
    """Each parameter's gradient equal to torch's, by name."""
    theirs_by_name = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        q = theirs_by_name[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            close(p.grad, q.grad)


def zeros(*shape, dtype=None, requires_grad=False):
    """A Tensor of zeros (float32 unless dtype is given), as torch.zeros makes."""
    np_dtype = np.float32 if dtype is None else np.dtype(dtype)
    return fastgrad.tensor(np.zeros(shape, np_dtype), requires_grad=requires_grad)


def ones(*shape, dtype=None):
    """A Tensor of ones (float32 unless dtype is given), as torch.ones makes."""
    return fastgrad.tensor(np.ones(shape, np.float32 if dtype is None else np.dtype(dtype)))
