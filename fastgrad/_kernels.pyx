# Fused elementwise loops for the optimizers: one pass over memory instead of numpy's chain of
# temporaries (an Adam step is ~10 numpy calls per parameter). Same formulas, in the same order,
# as the numpy fallback in fastgrad/optim.py and as PyTorch's single-tensor implementations;
# compiled with -ffp-contract=off, so no fused multiply-adds change the rounding.
#
# Callers pass C-contiguous arrays of one dtype (float32 or float64), flattened; optim.py checks
# that and falls back to numpy otherwise.
cimport cython
from cython cimport floating
from libc.math cimport sqrt


@cython.boundscheck(False)
@cython.wraparound(False)
def sgd(floating[::1] param, floating[::1] grad, floating[::1] buf, double lr, double momentum,
        double weight_decay, bint nesterov, bint first):
    """torch.optim.SGD (dampening 0) on one parameter; buf is the momentum buffer (any array
    when momentum == 0); `first`: the buffer is initialised with this gradient."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef double g
    if grad.shape[0] != n or (momentum != 0 and buf.shape[0] != n):
        raise ValueError("sgd kernel: arrays of different sizes")
    with nogil:
        for i in range(n):
            g = grad[i]
            if weight_decay != 0:
                g = <floating>(g + weight_decay * param[i])
            if momentum != 0:
                if first:
                    buf[i] = <floating>g
                else:
                    buf[i] = <floating>(<floating>(buf[i] * momentum) + g)
                if nesterov:
                    g = <floating>(g + <floating>(momentum * buf[i]))
                else:
                    g = buf[i]
            param[i] = <floating>(param[i] - <floating>(lr * g))


@cython.boundscheck(False)
@cython.wraparound(False)
def adam(floating[::1] param, floating[::1] grad, floating[::1] exp_avg,
         floating[::1] exp_avg_sq, double lr, double beta1, double beta2, double eps,
         double weight_decay, bint decoupled, long step):
    """torch.optim.Adam / AdamW (no amsgrad) on one parameter, `step` counted from 1."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef double g, m, v, denom
    cdef double bc1 = 1.0 - beta1 ** step
    cdef double bc2_sqrt = (1.0 - beta2 ** step) ** 0.5
    cdef double step_size = lr / bc1
    cdef double shrink = 1.0 - lr * weight_decay
    if grad.shape[0] != n or exp_avg.shape[0] != n or exp_avg_sq.shape[0] != n:
        raise ValueError("adam kernel: arrays of different sizes")
    with nogil:
        for i in range(n):
            g = grad[i]
            if weight_decay != 0:
                if decoupled:
                    param[i] = <floating>(param[i] * shrink)
                else:
                    g = <floating>(g + <floating>(weight_decay * param[i]))
            m = exp_avg[i]
            m = <floating>(m + <floating>((1.0 - beta1) * <floating>(g - m)))
            exp_avg[i] = <floating>m
            v = <floating>(<floating>(exp_avg_sq[i] * beta2) +
                           <floating>((1.0 - beta2) * <floating>(g * g)))
            exp_avg_sq[i] = <floating>v
            denom = <floating>(<floating>(<floating>sqrt(v) / bc2_sqrt) + eps)
            param[i] = <floating>(param[i] - <floating>(step_size * <floating>(m / denom)))
