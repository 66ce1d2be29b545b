"""The tensor engine's facade: the rest of the package imports the tensor engine from here.

The engine itself is compiled (``fastgrad/_tensor/*.pyx``): operators on small tensors are
dominated by per-op overhead, so the handle, its operators and the sweeps are all Cython.
There is one tensor engine (``FASTGRAD_ENGINE`` chooses between the scalar engines only).
"""

try:
    from fastgrad._tensor.tensor import Tensor, where
    from fastgrad._tensor.grad_mode import (enable_grad, inference_mode, is_grad_enabled,
                                            no_grad, set_grad_enabled)
    from fastgrad._tensor.functional import (binary_cross_entropy, concatenate, cross_entropy,
                                             linear, mse_loss, stack)
    from fastgrad._tensor.sweep import tensor_jvp       # also installs Tensor.backward's sweep
    from fastgrad._tensor import pickling as _pickling   # installs Tensor.__reduce__'s reducer
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        f"fastgrad's compiled tensor core (fastgrad._tensor) is not built or cannot be loaded: "
        f"{exc}. Build it with `pip install .` (or `pip install -e .` in a checkout; "
        "`python setup.py build_ext --inplace` after editing a .pyx)."
    ) from exc

from fastgrad._tensor.dtype import get_default_dtype, set_default_dtype  # noqa: E402
from fastgrad._malloc import keep_freed_memory  # noqa: E402

# Training steps free and reallocate the same megabytes each time: keep them mapped (_malloc.py).
keep_freed_memory()

cat = concatenate  # PyTorch's name


__all__ = ["Tensor", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled", "concatenate", "cat", "stack", "where", "linear", "mse_loss",
           "cross_entropy", "binary_cross_entropy", "tensor_jvp", "get_default_dtype",
           "set_default_dtype"]
