"""Type stub for the sweeps (fastgrad/_tensor/sweep.pyx): forward mode's entry point."""

import numpy as np
import numpy.typing as npt

from fastgrad._tensor.tensor import Tensor

def tensor_jvp(output: Tensor,
               tangents: dict[Tensor, npt.ArrayLike]) -> npt.NDArray[np.floating]: ...
