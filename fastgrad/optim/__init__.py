"""Optimizers with PyTorch's names and update rules (``torch.optim``), and the learning-rate
schedules (``fastgrad.optim.lr_scheduler``).

They update ``Tensor`` parameters in place and also take the scalar engine's ``Value``s.
"""

try:
    from fastgrad.optim import _kernels  # noqa: F401  (the compiled update loops of sgd and adam)
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(f"fastgrad's compiled optimizer kernels (fastgrad.optim._kernels) are not "
                      f"built or cannot be loaded: {exc}. Build them with `pip install .` (or "
                      "`python setup.py build_ext --inplace` in a checkout).") from exc

from fastgrad.optim import lr_scheduler  # noqa: E402
from fastgrad.optim.adagrad import Adagrad  # noqa: E402
from fastgrad.optim.adam import Adam, AdamW  # noqa: E402
from fastgrad.optim.optimizer import Optimizer  # noqa: E402
from fastgrad.optim.rmsprop import RMSprop  # noqa: E402
from fastgrad.optim.sgd import SGD  # noqa: E402

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
