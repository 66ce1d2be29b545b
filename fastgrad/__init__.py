"""fastgrad: reverse-mode autograd on a compiled tape.

``fastgrad.Value`` is a drop-in for micrograd's Value (``fastgrad.engine``, ``fastgrad.nn``).
``fastgrad.Tensor`` is a numpy-backed tensor with PyTorch's names (``fastgrad.tensor``,
``fastgrad.nn``, ``fastgrad.nn.functional``, ``fastgrad.optim``, ``fastgrad.autograd``).
``fastgrad.record`` turns the graph behind a Value into a program replayed in C.

>>> import fastgrad
>>> x = fastgrad.Value(2.0)
>>> (x ** 3).backward()
>>> x.grad
12.0
>>> t = fastgrad.tensor([1.0, 2.0], requires_grad=True)
>>> (t * t).sum().backward()
>>> t.grad.tolist()
[2.0, 4.0]
"""

from fastgrad import autograd, cuda, nn, optim, utils
from fastgrad._creation import (arange, as_tensor, bernoulli, empty, empty_like, eye, from_numpy,
                                full, full_like, linspace, multinomial, normal, ones, ones_like,
                                rand, rand_like, randint, randint_like, randn, randn_like,
                                randperm, tensor, zeros, zeros_like)
from fastgrad._device import device
from fastgrad._random import (Generator, default_generator, get_rng_state, initial_seed,
                              manual_seed, seed, set_rng_state)
from fastgrad._tensor import (Tensor, concatenate, enable_grad, inference_mode, is_grad_enabled,
                              no_grad, set_grad_enabled, stack)
from fastgrad._tensor.dtype import (bool, double, dtype, float, float16, float32, float64, half,
                                    int, int8, int16, int32, int64, long, short, uint8,
                                    get_default_dtype, set_default_dtype)
from fastgrad._tensor.functions import *  # noqa: F401,F403  (torch's function names)
from fastgrad._tensor.functions import __all__ as _function_names
from fastgrad._version import __version__
from fastgrad.engine import Value, record
from fastgrad.serialization import load, save
from fastgrad.viz import draw_dot

_dtype_names = ["dtype", "float32", "float64", "float16", "int64", "int32", "int16", "int8",
                "uint8", "bool", "float", "double", "half", "long", "int", "short",
                "get_default_dtype", "set_default_dtype"]

__all__ = ["__version__", "Value", "record", "Tensor", "tensor", "no_grad", "enable_grad",
           "set_grad_enabled", "inference_mode", "is_grad_enabled", "concatenate", "save",
           "load", "nn", "optim", "autograd", "draw_dot", *_dtype_names, *_function_names,
           # creation and randomness (fastgrad/_creation.py, fastgrad/_random.py)
           "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like",
           "ones_like", "empty_like", "full_like", "arange", "linspace", "eye", "rand", "randn",
           "rand_like", "randn_like", "randint", "randint_like", "randperm", "normal",
           "bernoulli", "multinomial", "Generator", "default_generator", "manual_seed", "seed",
           "initial_seed", "get_rng_state", "set_rng_state",
           # devices and data (fastgrad/_device.py, fastgrad/cuda.py, fastgrad/utils/)
           "device", "cuda", "utils"]
