"""``fastgrad.device``: PyTorch's device names, for a library that runs on the CPU only.

Scripts write ``device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')`` and pass
``device=`` to factories and ``.to()``. ``device`` objects for any PyTorch device type can be
made (so such lines run), but only the CPU can hold a tensor: ``check_device`` is the one place
that says so, and every ``device=`` argument goes through it.

>>> device('cpu')
device(type='cpu')
>>> device('cuda', 1).index
1
>>> check_device('cpu')
>>> check_device('cuda')
Traceback (most recent call last):
    ...
RuntimeError: fastgrad runs on the CPU only: cannot use device 'cuda'
"""
from __future__ import annotations

import operator
from typing import Union

# The device types PyTorch's parser knows (torch.device('foo') is an error there too).
_KNOWN_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
                "privateuseone")


class device:
    """A device name: ``device('cpu')``, ``device('cpu', 0)``, ``device('cuda:1')``,
    ``device(other_device)``.

    Equality is by type and index, as PyTorch's (``device('cpu') != device('cpu', 0)``, and a
    device never equals a string, as in PyTorch). Devices are immutable and hashable.
    """

    __slots__ = ("_type", "_index")

    def __init__(self, type: Union[str, "device"], index: int | None = None) -> None:
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device object")
            object.__setattr__(self, "_type", type.type)
            object.__setattr__(self, "_index", type.index)
            return
        if isinstance(type, int) and not isinstance(type, bool):
            # PyTorch reads a bare int as an accelerator's index; there is none here
            raise RuntimeError(f"fastgrad runs on the CPU only: device({type}) names an "
                               f"accelerator and none is available")
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a device string or a device, "
                            f"got {builtin_type(type).__name__}")
        name, parsed_index = _parse(type)
        if index is not None:
            if parsed_index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was "
                                   f"passed explicitly: {type}")
            if isinstance(index, bool):
                raise TypeError("device(): index must be an int, not bool")
            index = operator.index(index)
            if index < 0:
                raise RuntimeError("Device index must not be negative")
            parsed_index = index
        object.__setattr__(self, "_type", name)
        object.__setattr__(self, "_index", parsed_index)

    @property
    def type(self) -> str:
        """The device type: 'cpu', 'cuda', ..."""
        return self._type

    @property
    def index(self) -> int | None:
        """The device index, or None when the name gave none."""
        return self._index

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("fastgrad.device objects are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, device):
            return NotImplemented
        return self._type == other._type and self._index == other._index

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __reduce__(self):
        return (device, (self._type, self._index))


builtin_type = type  # `type` is the constructor's parameter name above (PyTorch's)


def _parse(text: str) -> tuple[str, int | None]:
    """('cuda', 1) from 'cuda:1'; RuntimeError for what PyTorch's parser refuses."""
    name, sep, index_text = text.partition(":")
    if name not in _KNOWN_TYPES:
        raise RuntimeError(f"Expected one of {', '.join(_KNOWN_TYPES)} device type at start of "
                           f"device string: {text}")
    if not sep:
        return name, None
    if not index_text.isdigit() or not index_text.isascii() or (
            len(index_text) > 1 and index_text[0] == "0"):
        raise RuntimeError(f"Invalid device string: '{text}'")
    return name, int(index_text)


def check_device(arg: object) -> None:
    """Accept what names the CPU (None, 'cpu', 'cpu:0', device('cpu')); raise RuntimeError for
    any other device and TypeError for what is not a device at all."""
    if arg is None:
        return
    if isinstance(arg, device):
        dev = arg
    elif isinstance(arg, str) or (isinstance(arg, int) and not isinstance(arg, bool)):
        dev = device(arg)
    else:
        raise TypeError(f"device must be a string or a fastgrad.device, not "
                        f"{builtin_type(arg).__name__}")
    if dev.type != "cpu":
        raise RuntimeError(f"fastgrad runs on the CPU only: cannot use device '{dev}'")


CPU = device("cpu")  # what Tensor.device returns

__all__ = ["device", "check_device", "CPU"]
