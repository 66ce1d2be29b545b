# Grad mode: whether the tensor engine's ops record in the calling thread (tensor.pxd's
# recording() reads it through grad_enabled()).
import functools

cdef extern from *:
    """
    /* One flag per thread, zero-initialised in every thread: a new thread records. */
    #if defined(_MSC_VER)
    static __declspec(thread) int fastgrad_grad_disabled = 0;
    #else
    static _Thread_local int fastgrad_grad_disabled = 0;
    #endif
    """
    int fastgrad_grad_disabled


cdef bint grad_enabled() noexcept nogil:
    return not fastgrad_grad_disabled


cdef void _set_grad_enabled(bint enabled) noexcept:
    global fastgrad_grad_disabled
    fastgrad_grad_disabled = not enabled


def is_grad_enabled():
    """True unless inside a `no_grad()` block of the calling thread (grad mode is per thread,
    as in PyTorch: a new thread starts with grad enabled).

    >>> is_grad_enabled()
    True
    >>> with no_grad():
    ...     is_grad_enabled()
    False
    """
    return grad_enabled()


class no_grad:
    """Context manager (and decorator): ops inside record nothing and return tensors that do
    not require grad. Use it for evaluation and for optimizer updates. It applies to the thread
    that enters it only (as in PyTorch).

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
        self._prev = grad_enabled()
        _set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        _set_grad_enabled(self._prev)
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Context manager (and decorator): recording on again inside a no_grad() block.

    >>> from fastgrad import Tensor
    >>> w = Tensor([1.0], requires_grad=True)
    >>> with no_grad():
    ...     with enable_grad():
    ...         (w * 2).requires_grad
    True
    """

    def __enter__(self):
        self._prev = grad_enabled()
        _set_grad_enabled(True)
        return self

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with enable_grad():
                return func(*args, **kwargs)
        return wrapper


class set_grad_enabled(no_grad):
    """Turn recording on or off: as a function call (``set_grad_enabled(False)``) it switches
    the calling thread's grad mode; as a context manager it restores the previous mode on exit.
    """

    def __init__(self, mode):
        self._prev = grad_enabled()
        self._mode = bool(mode)
        _set_grad_enabled(self._mode)

    def __enter__(self):
        return self

    def __call__(self, func):
        mode = self._mode
        _set_grad_enabled(self._prev)   # used as a decorator: the call above was not meant

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return func(*args, **kwargs)
        return wrapper


class inference_mode(no_grad):
    """PyTorch's inference_mode: here the same as no_grad (``inference_mode(False)`` records)."""

    def __init__(self, mode=True):
        self._mode = bool(mode)

    def __enter__(self):
        self._prev = grad_enabled()
        _set_grad_enabled(not self._mode and self._prev)
        return self
