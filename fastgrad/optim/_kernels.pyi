"""Type stubs for the compiled optimizer kernels (fastgrad/optim/_kernels.pyx)."""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]

def sgd_step(params: list[_Array], grads: list[_Array], bufs: list[_Array | None],
             firsts: list[bool], lr: float, momentum: float, weight_decay: float,
             nesterov: bool) -> list[int]: ...
def adam_step(params: list[_Array], grads: list[_Array], exp_avgs: list[_Array],
              exp_avg_sqs: list[_Array], steps: list[int], lr: float, beta1: float, beta2: float,
              eps: float, weight_decay: float, decoupled: bool) -> list[int]: ...
