"""``fastgrad.cuda``: what ``torch.cuda`` answers on a CPU-only build, so that the usual
``'cuda' if torch.cuda.is_available() else 'cpu'`` lines pick the CPU.

>>> is_available(), device_count()
(False, 0)
"""
from __future__ import annotations


def is_available() -> bool:
    """False: fastgrad runs on the CPU only."""
    return False


def device_count() -> int:
    """0: there are no CUDA devices."""
    return 0


def is_initialized() -> bool:
    """False, as on a PyTorch build without CUDA."""
    return False


def manual_seed(seed: int) -> None:
    """Does nothing (no CUDA generators), as ``torch.cuda.manual_seed`` without a GPU."""
    int(seed)   # the same argument check as PyTorch's int(seed)


def manual_seed_all(seed: int) -> None:
    """Does nothing (no CUDA generators), as ``torch.cuda.manual_seed_all`` without a GPU."""
    int(seed)


__all__ = ["is_available", "device_count", "is_initialized", "manual_seed", "manual_seed_all"]
