# Grad mode: whether the tensor engine's ops record (tensor.pxd's recording() reads the flag).
import functools

grad_enabled = True


def is_grad_enabled():
    """True unless inside a `no_grad()` block.

    >>> is_grad_enabled()
    True
    >>> with no_grad():
    ...     is_grad_enabled()
    False
    """
    return grad_enabled


class no_grad:
    """Context manager (and decorator): ops inside record nothing and return tensors that do
    not require grad. Use it for evaluation and for optimizer updates.

    >>> from fastgrad import Tensor
    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> with no_grad():
    ...     (w * 2).requires_grad
    False
    >>> @no_grad()
    ... def predict(x):
    ...     return w * x
    >>> predict(3.0).requires_grad
    False
    """

    def __enter__(self):
        global grad_enabled
        self._prev = grad_enabled
        grad_enabled = False
        return self

    def __exit__(self, *exc):
        global grad_enabled
        grad_enabled = self._prev
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)
        return wrapper
