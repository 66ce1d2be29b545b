# Each op's derivative rules (rules.pyx), as the sweeps (sweep.pyx) call them on a recorded node.
from fastgrad._tensor.tensor cimport Tensor

# Push the gradient g of n (an array of n's shape; overwritable if n._owned) to n's children,
# through accumulate().
cdef int backward_rule(Tensor n, object g) except -1
# The tangent of n from its children's: ta, tb, tc are those of n.a, n.b, n.c (None is zero; not
# all are None); for concatenate and stack, ta is the list of the tangents of the children in
# n.x0. Returns an array or number that broadcasts to n's shape, in any float dtype.
cdef object tangent_rule(Tensor n, object ta, object tb, object tc)
# Add a contribution to child's gradient buffer (nothing if child is None). fresh: nobody else
# holds contrib, so the buffer may be contrib itself and be added into in place.
cdef int accumulate(Tensor child, object contrib, bint fresh) except -1
