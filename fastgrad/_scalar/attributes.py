"""``vars(v)`` of a Value, as micrograd lists it, for both engines.

micrograd's Value keeps everything in its instance dict, so ``vars(v)`` shows ``data``, ``grad``,
``_backward``, ``_prev`` and ``_op`` (and ``label`` in the lecture's version), then whatever a
script added. fastgrad's Values keep those in the node arena (or in private attributes), so
``v.__dict__`` is this live view instead: reading it reads the Value, writing to it sets
attributes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

MICROGRAD_ATTRIBUTES = ("data", "grad", "_backward", "_prev", "_op")


class ValueAttributes(MutableMapping):
    """The attributes of ``value``: micrograd's, then ``label`` if set, then those in ``own``
    (the instance's real dict) except the engine's private ones (``hidden``).

    >>> from fastgrad.engine import Value
    >>> v = Value(2.0)
    >>> v.name = "x"
    >>> list(vars(v))
    ['data', 'grad', '_backward', '_prev', '_op', 'name']
    >>> vars(v)["data"], vars(v)["name"]
    (2.0, 'x')
    """

    __slots__ = ("_value", "_own", "_hidden")

    def __init__(self, value: Any, own: dict, hidden: frozenset = frozenset()) -> None:
        self._value = value
        self._own = own
        self._hidden = hidden

    def _names(self) -> list[str]:
        names = list(MICROGRAD_ATTRIBUTES)
        if self._value.label:
            names.append("label")
        names += [k for k in self._own if k not in self._hidden and k not in names]
        return names

    def __getitem__(self, name: str) -> Any:
        if name in MICROGRAD_ATTRIBUTES or (name == "label" and self._value.label):
            return getattr(self._value, name)
        if name in self._hidden or name == "label":
            raise KeyError(name)
        return self._own[name]

    def __setitem__(self, name: str, item: Any) -> None:
        setattr(self._value, name, item)

    def __delitem__(self, name: str) -> None:
        self[name]  # KeyError for a name it does not list
        delattr(self._value, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(dict(self.items()))
