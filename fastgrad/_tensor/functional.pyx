# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# The ops that are functions, each a single tape node: concatenate and stack, linear, and the
# losses (mse_loss, cross_entropy, binary_cross_entropy). Their rules are in rules.pyx.
from fastgrad._tensor.grad_mode cimport grad_enabled
from fastgrad._tensor.loops cimport add_bias, cross_entropy_value
from fastgrad._tensor.tensor cimport *

import numpy as np

cdef object _np_exp = np.exp
cdef object _np_log = np.log
cdef object _np_maximum = np.maximum
cdef object _np_arange = np.arange
cdef object _np_errstate = np.errstate
cdef object _intp = np.dtype(np.intp)


cdef object _require_tensor(object v, str what):
    if isinstance(v, Tensor):
        return v
    raise TypeError(f"{what}: expected a fastgrad.Tensor, got {type(v).__name__}")


def concatenate(tensors, dim=0, *, axis=None):
    """numpy.concatenate / torch.cat for tensors (numbers and arrays are constants).

    >>> from fastgrad import Tensor
    >>> a = Tensor([1.0, 2.0], requires_grad=True)
    >>> c = concatenate([a, np.zeros(3)])
    >>> c.shape
    (5,)
    >>> (c * c).sum().backward()
    >>> a.grad.tolist()
    [2.0, 4.0]
    """
    return _join(tensors, dim if axis is None else axis, False)


def stack(tensors, dim=0, *, axis=None):
    """numpy.stack / torch.stack for tensors.

    >>> from fastgrad import Tensor
    >>> stack([Tensor([1.0, 2.0]), Tensor([3.0, 4.0])], axis=1).numpy().tolist()
    [[1.0, 3.0], [2.0, 4.0]]
    """
    return _join(tensors, dim if axis is None else axis, True)


cdef object _join(object tensors, object axis, bint new_axis):
    what = 'stack' if new_axis else 'concatenate'
    if isinstance(tensors, (Tensor, ndarray)) or not hasattr(tensors, '__len__'):
        raise TypeError(f"{what}: expected a sequence of tensors, got {type(tensors).__name__}")
    items = list(tensors)
    if not items:
        raise ValueError(f"{what}: need at least one tensor")
    vals = []
    for it in items:
        v = operand(it)
        if v is None:
            raise TypeError(f"{what}: expected tensors, got {type(it).__name__}")
        vals.append(np_asarray(v))
    try:
        out = np.stack(vals, axis=axis) if new_axis else np.concatenate(vals, axis=axis)
    except np.exceptions.AxisError as exc:
        raise IndexError(f"{what}: Dimension out of range ({exc})") from None
    except ValueError as exc:
        raise RuntimeError(f"{what}: shapes {[v.shape for v in vals]} do not fit along dim "
                           f"{axis} ({exc})") from None
    cdef Tensor t = new_tensor(out)
    kids = tuple([grad_child(it) for it in items])
    if grad_enabled() and any(k is not None for k in kids):
        ax = norm_axes(axis, out.ndim, what)[0]
        if new_axis:
            params = (ax,)
        else:
            total = 0
            offsets = [0]
            for v in vals:
                total += v.shape[ax]
                offsets.append(total)
            params = (ax, tuple(offsets))
        record(t, TOP_STACK if new_axis else TOP_CONCAT, None, None, kids, None, params)
        for k in kids:
            if k is not None:
                (<Tensor>k)._parents += 1
    return t


def linear(x, weight, bias=None):
    """x @ weight.T + bias as one tape node (torch.nn.functional.linear).

    >>> from fastgrad import Tensor
    >>> x = Tensor([[1.0, 2.0]])
    >>> w = Tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    >>> linear(x, w, Tensor([0.0, 0.0, 0.5])).numpy().tolist()
    [[1.0, 2.0, 3.5]]
    """
    cdef Tensor tx = _require_tensor(x, 'linear')
    cdef Tensor tw = _require_tensor(weight, 'linear')
    cdef Tensor tb = None
    xv = tx._data
    wv = tw._data
    if wv.ndim != 2 or xv.ndim < 1 or xv.shape[xv.ndim - 1] != wv.shape[1]:
        raise ValueError(f"linear: input of shape {xv.shape} does not fit weight of shape "
                         f"{wv.shape} (needs input[..., {wv.shape[1] if wv.ndim == 2 else '?'}]"
                         f" and a 2-D weight)")
    # One input feature: the matmul is an outer product; broadcasting skips BLAS's setup cost
    # and gives the same numbers (each entry is a single product).
    out = xv * wv[:, 0] if wv.shape[1] == 1 else xv @ wv.T
    if bias is not None:
        tb = _require_tensor(bias, 'linear')
        bv = tb._data
        if bv.shape != (wv.shape[0],):
            raise ValueError(f"linear: bias of shape {bv.shape} does not fit weight of "
                             f"shape {wv.shape}")
        if out.dtype == bv.dtype:
            out = add_bias(out, bv)     # in place: out is a fresh array
        else:
            out = out + bv              # mixed float32/float64 promotes like numpy
    cdef Tensor t = new_tensor(out)
    cdef Tensor ca = grad_child(tx)
    cdef Tensor cb = grad_child(tw)
    cdef Tensor cc = grad_child(tb)
    if grad_enabled() and (ca is not None or cb is not None or cc is not None):
        record(t, TOP_LINEAR, ca, cb, xv, wv, None)
        t.c = cc
        if cc is not None:
            cc._parents += 1
        if cb is not None:                  # the weight's gradient reads the input
            t.s0, t.v0 = tx, version_of(tx)
        if ca is not None:                  # the input's gradient reads the weight
            t.s1, t.v1 = tw, version_of(tw)
    return t


def mse_loss(input, target):
    """mean((input - target)**2) as one node; input and target must have the same shape.

    >>> from fastgrad import Tensor
    >>> p = Tensor([1.0, 3.0], requires_grad=True)
    >>> loss = mse_loss(p, Tensor([0.0, 0.0]))
    >>> loss.item()
    5.0
    >>> loss.backward()
    >>> p.grad.tolist()
    [1.0, 3.0]
    """
    iv = operand(input)
    tv = operand(target)
    if iv is None or tv is None or not (isinstance(input, Tensor) or isinstance(target, Tensor)):
        raise TypeError(f"mse_loss: expected tensors, got {type(input).__name__} and "
                        f"{type(target).__name__}")
    if shape_of(iv) != shape_of(tv):
        raise ValueError(f"mse_loss: input shape {shape_of(iv)} and target shape {shape_of(tv)} "
                         f"differ")
    d = np_asarray(iv - tv)
    n = d.size
    out = np_asarray(reduce_sum(d * d, None, False) / n if n else np.nan)
    if out.dtype != d.dtype:
        out = out.astype(d.dtype)
    cdef Tensor t = new_tensor(out)
    cdef Tensor a = grad_child(input)
    cdef Tensor b = grad_child(target)
    if recording(a, b):
        record(t, TOP_MSE, a, b, d, None, n)
    return t


def cross_entropy(logits, targets):
    """Mean negative log-likelihood of integer class targets under softmax(logits) (N, C);
    computed from shifted logits, so it is finite for logits in the thousands.

    >>> from fastgrad import Tensor
    >>> logits = Tensor([[1000.0, 0.0], [0.0, 0.0]], requires_grad=True)
    >>> loss = cross_entropy(logits, np.array([0, 1]))
    >>> round(loss.item(), 6)
    0.346574
    >>> loss.backward()
    >>> logits.grad.tolist()
    [[0.0, 0.0], [0.25, -0.25]]
    """
    cdef Tensor x = _require_tensor(logits, 'cross_entropy')
    xv = x._data
    if isinstance(targets, Tensor):
        tv = (<Tensor>targets)._data
    else:
        tv = np_asarray(targets)
    if tv.dtype.kind not in 'iu':
        raise TypeError(f"cross_entropy: targets must be integer class indices, "
                        f"got dtype {tv.dtype}")
    if xv.ndim != 2 or tv.shape != (xv.shape[0],):
        raise ValueError(f"cross_entropy: logits of shape {xv.shape} need (N, C) and targets of "
                         f"shape (N,); got targets of shape {tv.shape}")
    n = xv.shape[0]
    c = xv.shape[1]
    # A private copy: the backward indexes rows with these, so the caller's array, which may
    # change after this call, must not be what it reads (values wrap into negatives, if at all).
    ti = tv.astype(_intp)
    out = None
    if n and c:
        out, z, lse = cross_entropy_value(xv, ti, n, c)
    if out is None:
        if n and (ti.min() < 0 or ti.max() >= c or tv.min() < 0 or tv.max() >= c):
            raise ValueError(f"cross_entropy: targets must lie in [0, {c}), got values in "
                             f"[{tv.min()}, {tv.max()}]")
        z = xv - reduce_max(xv, 1, True)
        lse = _np_log(reduce_sum(_np_exp(z), 1, False))
        rows = _np_arange(n)
        out = np_asarray(reduce_sum(lse - z[rows, ti], None, False) / n)
    cdef Tensor t = new_tensor(out.astype(xv.dtype, copy=False))
    if grad_enabled() and x._requires_grad:
        record(t, TOP_CROSS_ENTROPY, x, None, z, ti, lse)
    return t


def binary_cross_entropy(input, target):
    """Mean of -(t log p + (1-t) log(1-p)) with logs clamped at -100 like PyTorch.

    >>> from fastgrad import Tensor
    >>> p = Tensor([0.5, 1.0], requires_grad=True)
    >>> round(binary_cross_entropy(p, Tensor([1.0, 0.0])).item(), 4)
    50.3466
    """
    pv = operand(input)
    tv = operand(target)
    if not isinstance(input, Tensor) or tv is None:
        raise TypeError(f"binary_cross_entropy: expected a probability tensor and a target, "
                        f"got {type(input).__name__} and {type(target).__name__}")
    if shape_of(pv) != shape_of(tv):
        raise ValueError(f"binary_cross_entropy: input shape {shape_of(pv)} and target shape "
                         f"{shape_of(tv)} differ")
    if pv.size and (pv.min() < 0 or pv.max() > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]")
    with _np_errstate(divide='ignore'):
        lp = _np_maximum(_np_log(pv), -100.0)
        lq = _np_maximum(_np_log(1.0 - pv), -100.0)
    n = pv.size
    out = np_asarray(-reduce_sum(tv * lp + (1.0 - tv) * lq, None, False) / n)
    cdef Tensor t = new_tensor(out.astype(pv.dtype, copy=False))
    cdef Tensor a = grad_child(input)
    cdef Tensor b = grad_child(target)
    if recording(a, b):
        record(t, TOP_BCE, a, b, pv, tv, (n, lp, lq))
        t.s0, t.v0 = <Tensor>input, version_of(<Tensor>input)
        if isinstance(target, Tensor):
            t.s1, t.v1 = <Tensor>target, version_of(<Tensor>target)
    return t
