"""Type stub for the sweeps (fastgrad/_tensor/sweep.pyx): forward mode's entry point and the
vector-Jacobian products behind fastgrad.autograd.grad."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fastgrad._tensor.tensor import Tensor

def tensor_jvp(output: Tensor,
               tangents: dict[Tensor, npt.ArrayLike]) -> npt.NDArray[np.floating]: ...
def tensor_vjp(output: Tensor, seed: npt.NDArray[np.floating],
               inputs: Sequence[Tensor]) -> list[npt.NDArray[np.floating] | None]: ...
def graph_order(root: Tensor) -> list[Tensor]: ...
