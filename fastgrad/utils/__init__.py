"""``torch.utils``'s home: ``fastgrad.utils.data`` (Dataset, DataLoader, random_split)."""

from fastgrad.utils import data

__all__ = ["data"]
