# Compiled loops over raw buffers, each with its numpy fallback (see loops.pyx). Every function
# returns what the numpy expression in its comment returns, in the array's dtype.

# np.maximum(x, 0.0)
cdef object relu_value(object x)
# g * (out > 0), into g itself when owned (the caller may overwrite g)
cdef object relu_mask(object g, object out, bint owned)
# out += b in place, b of shape (C,) along out's last axis; returns out
cdef object add_bias(object out, object b)
# g.sum(axis=0) of a 2-D array
cdef object colsum(object g)
# cross_entropy's value from logits xv (n, c) and intp targets ti (n,): (loss, shifted logits
# z, row log-sum-exp of z), or (None,)*3 if the arrays do not fit the loops or a target is out
# of range (the caller then uses numpy, and reports bad targets)
cdef tuple cross_entropy_value(object xv, object ti, Py_ssize_t n, Py_ssize_t c)
# (softmax(z) - onehot(t)) * scale from z and lse as saved by cross_entropy_value, or None if
# the arrays do not fit the loops (the caller then uses numpy); ValueError if a target is out
# of range
cdef object cross_entropy_grad(object z, object lse, object t, object scale)
