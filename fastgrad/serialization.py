"""``save`` and ``load`` (``torch.save``/``torch.load``'s names) for the objects training scripts
checkpoint: Tensors, numpy arrays, Python scalars and strings, and dicts, lists and tuples of
them (``model.state_dict()``, ``optimizer.state_dict()``, a scheduler's ``state_dict()``).

The file is a zip archive: ``data.json`` describes the structure (every dict key and scalar with
its type) and each array is one ``arrays/<n>.npy`` member in numpy's format. There is no pickle,
so loading never runs code from the file, whatever ``weights_only`` says; a damaged or hostile
file raises ``CheckpointError`` (a ``pickle.UnpicklingError``, as PyTorch raises, and a
``RuntimeError``). An object referenced twice (the same array or Tensor) is saved once and
loads as one object; distinct arrays that are views of one buffer load as separate copies.

>>> import io, fastgrad
>>> buf = io.BytesIO()
>>> fastgrad.save({"w": fastgrad.tensor([1.0, 2.0], requires_grad=True), "step": 3}, buf)
>>> _ = buf.seek(0)
>>> state = fastgrad.load(buf)
>>> state["w"].data.tolist(), state["w"].requires_grad, state["step"]
([1.0, 2.0], True, 3)
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import zipfile
from collections import Counter, OrderedDict
from typing import IO, Any, Union

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad.nn.module import Parameter
from fastgrad._tensor.dtype import _BY_NUMPY

# the dtypes a Tensor may hold (fastgrad/_tensor/dtype.py)
_TENSOR_DTYPES = frozenset(_BY_NUMPY)

__all__ = ["save", "load", "CheckpointError", "FORMAT", "VERSION"]

FORMAT = "fastgrad.save"
VERSION = 1
_INDEX = "data.json"
_MAX_DEPTH = 200            # deeper than any state_dict; keeps load's recursion bounded
_ARRAY_KINDS = "biufc"      # bool, ints, floats, complex: what .npy holds without pickle
_DICTS: dict[type, str] = {dict: "dict", OrderedDict: "OrderedDict", Counter: "Counter"}
_DICT_TYPES = {name: t for t, name in _DICTS.items()}

FileLike = Union[str, "os.PathLike[str]", IO[bytes]]


class CheckpointError(pickle.UnpicklingError, RuntimeError):
    """A file that ``load`` cannot read: not a fastgrad checkpoint, damaged, or hostile."""


# -- saving --------------------------------------------------------------------------------------

class _Writer:
    """Turns an object into JSON nodes, collecting its arrays; ``memo`` maps an array's or
    Tensor's id to its node, so a second reference saves no second copy."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.memo: dict[int, dict[str, Any]] = {}
        self.active: set[int] = set()     # containers on the current path: a cycle is an error

    def _array(self, arr: np.ndarray, path: str) -> str:
        if arr.dtype.hasobject or arr.dtype.kind not in _ARRAY_KINDS or arr.dtype.names:
            raise TypeError(f"fastgrad.save: cannot save an array of dtype {arr.dtype} at "
                            f"{path} (only bool, integer, float and complex arrays)")
        self.arrays.append(arr)
        return f"arrays/{len(self.arrays) - 1}.npy"

    def node(self, obj: Any, path: str, depth: int = 0) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise ValueError(f"fastgrad.save: nesting deeper than {_MAX_DEPTH} at {path}")
        t = type(obj)
        if obj is None:
            return {"type": "none"}
        if t is bool:
            return {"type": "bool", "value": obj}
        if t is int:
            return {"type": "int", "value": str(obj)}
        if t is float:
            return {"type": "float", "value": obj.hex()}   # exact, and inf/nan stay valid JSON
        if t is str:
            return {"type": "str", "value": obj}
        if t in (Tensor, Parameter) or t is np.ndarray:
            if id(obj) in self.memo:
                return self.memo[id(obj)]
            node: dict[str, Any]
            if t is np.ndarray:
                node = {"type": "ndarray", "member": self._array(obj, path)}
            else:
                node = {"type": "tensor", "member": self._array(obj.numpy(), path),
                        "requires_grad": bool(obj.requires_grad), "parameter": t is Parameter}
            self.memo[id(obj)] = node
            return node
        if isinstance(obj, np.generic):
            return {"type": "npscalar", "member": self._array(np.asarray(obj), path)}
        if t in (list, tuple) or t in _DICTS:
            if id(obj) in self.active:
                raise ValueError(f"fastgrad.save: {path} contains itself")
            self.active.add(id(obj))
            if t in _DICTS:
                items: list[list[dict[str, Any]]] = []
                for k, v in obj.items():
                    kpath = f"{path}[{k!r}]"
                    if type(k) not in (str, int, float, bool) and k is not None:
                        raise TypeError(f"fastgrad.save: cannot save a dict key of type "
                                        f"{type(k).__name__} at {kpath}")
                    items.append([self.node(k, kpath, depth + 1),
                                  self.node(v, kpath, depth + 1)])
                out: dict[str, Any] = {"type": _DICTS[t], "items": items}
            else:
                out = {"type": t.__name__, "items": [self.node(v, f"{path}[{i}]", depth + 1)
                                                      for i, v in enumerate(obj)]}
            self.active.discard(id(obj))
            return out
        raise TypeError(f"fastgrad.save: cannot save an object of type {t.__qualname__} at "
                        f"{path} (Tensors, arrays, scalars, str, None, dict, list, tuple only)")


def save(obj: Any, f: FileLike) -> None:
    """Write ``obj`` to ``f`` (a path or a binary file object open for writing). Raises
    TypeError, naming the type and where it is in ``obj``, for anything it cannot save."""
    writer = _Writer()
    root = writer.node(obj, "obj")              # every error before the file is touched
    index = json.dumps({"format": FORMAT, "version": VERSION, "root": root})
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            _write(fh, index, writer.arrays)
    else:
        _write(f, index, writer.arrays)


def _write(fh: IO[bytes], index: str, arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_INDEX, index)
        for i, arr in enumerate(arrays):
            with zf.open(f"arrays/{i}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


# -- loading -------------------------------------------------------------------------------------

def _bad(message: str) -> CheckpointError:
    return CheckpointError(f"fastgrad.load: {message}")


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes. save stores members uncompressed; refusing compression means no
    decompressor ever runs on hostile data (no zip bombs, no zlib errors)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _bad(f"missing member {name!r}") from None
    if info.flag_bits & 0x1:
        raise _bad(f"member {name!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise _bad(f"member {name!r} is compressed (save stores members uncompressed)")
    return zf.read(info)


def _read_array(zf: zipfile.ZipFile, member: Any) -> np.ndarray:
    """The array in one .npy member, its header checked before any allocation: a plain dtype
    (never object, so nothing is unpickled) and a shape that matches the member's size."""
    if not isinstance(member, str):
        raise _bad(f"bad array member name {member!r}")
    data = _read_member(zf, member)
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, TypeError, SyntaxError, EOFError) as e:
        raise _bad(f"bad array member {member!r}: {e}") from None
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.names:
        raise _bad(f"array member {member!r} has dtype {dtype}, which load refuses")
    if any(n < 0 for n in shape) or math.prod(shape) * dtype.itemsize != len(data) - buf.tell():
        raise _bad(f"array member {member!r}: shape {shape} does not match its "
                   f"{len(data) - buf.tell()} bytes of data")
    buf.seek(0)
    try:
        return np.lib.format.read_array(buf, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:   # ValueError: numpy would have unpickled
        raise _bad(f"bad array member {member!r}: {e}") from None


class _Reader:
    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.memo: dict[tuple[str, Any], Any] = {}

    def _member(self, node: dict[str, Any], kind: str) -> Any:
        key = (kind, node.get("member"))
        if key not in self.memo:
            arr = _read_array(self.zf, node.get("member"))
            if kind == "ndarray":
                self.memo[key] = arr
            elif kind == "npscalar":
                if arr.ndim != 0:
                    raise _bad("a numpy scalar's array is not 0-d")
                self.memo[key] = arr[()]
            else:
                if arr.dtype not in _TENSOR_DTYPES:
                    raise _bad(f"a Tensor of dtype {arr.dtype}")
                rg, param = node.get("requires_grad"), node.get("parameter", False)
                if type(rg) is not bool or type(param) is not bool:
                    raise _bad("a Tensor node's requires_grad or parameter is not a bool")
                if rg and arr.dtype.kind != "f":
                    raise _bad(f"a Tensor of dtype {arr.dtype} that requires grad")
                self.memo[key] = (Parameter(arr, requires_grad=rg) if param
                                  else Tensor(arr, requires_grad=rg, dtype=arr.dtype))
        return self.memo[key]

    def node(self, node: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise _bad(f"nesting deeper than {_MAX_DEPTH}")
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise _bad(f"bad node {str(node)[:80]}")
        kind, value = node["type"], node.get("value")
        if kind == "none":
            return None
        if kind == "bool" and type(value) is bool:
            return value
        if kind == "int" and type(value) is str:
            try:
                return int(value)
            except ValueError:
                raise _bad(f"bad int {value[:80]!r}") from None
        if kind == "float" and type(value) is str:
            try:
                return float.fromhex(value)
            except (ValueError, OverflowError):
                raise _bad(f"bad float {value[:80]!r}") from None
        if kind == "str" and type(value) is str:
            return value
        if kind in ("ndarray", "tensor", "npscalar"):
            return self._member(node, kind)
        items = node.get("items")
        if kind in ("list", "tuple") and type(items) is list:
            seq = [self.node(v, depth + 1) for v in items]
            return seq if kind == "list" else tuple(seq)
        if kind in _DICT_TYPES and type(items) is list:
            out = _DICT_TYPES[kind]()
            for pair in items:
                if type(pair) is not list or len(pair) != 2:
                    raise _bad("a dict item is not a [key, value] pair")
                key = self.node(pair[0], depth + 1)
                if type(key) not in (str, int, float, bool) and key is not None:
                    raise _bad(f"a dict key of type {type(key).__name__}")
                out[key] = self.node(pair[1], depth + 1)
            return out
        raise _bad(f"bad node of type {kind[:40]!r}")


def _check_map_location(map_location: Any) -> None:
    # fastgrad has only the CPU; torch.device("cpu") is accepted through its str
    if map_location is None or str(map_location) in ("cpu", "cpu:0"):
        return
    raise RuntimeError(f"fastgrad.load: map_location={map_location!r} is not supported; "
                       "fastgrad arrays live on the CPU (use None or 'cpu')")


def load(f: FileLike, weights_only: bool = True, map_location: Any = None) -> Any:
    """Read what ``save`` wrote to ``f`` (a path or a binary file object). Loading only reads
    data, never runs code, with ``weights_only`` True or False (accepted for PyTorch's scripts).
    ``map_location`` may be None or ``'cpu'``. Raises ``CheckpointError`` for a file that is
    not a valid checkpoint."""
    _check_map_location(map_location)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _load(fh)
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())                # zipfile needs to seek
    return _load(f)


def _load(fh: IO[bytes]) -> Any:
    try:
        with zipfile.ZipFile(fh) as zf:
            if _INDEX not in zf.namelist():
                raise _bad(f"no {_INDEX}: not a fastgrad checkpoint")
            raw = _read_member(zf, _INDEX)
            try:
                index = json.loads(raw)
            except (ValueError, RecursionError) as e:     # ValueError covers bad UTF-8 too
                raise _bad(f"{_INDEX} is not valid JSON: {e}") from None
            if not isinstance(index, dict) or index.get("format") != FORMAT:
                raise _bad("not a fastgrad checkpoint (wrong format name)")
            if index.get("version") != VERSION or type(index.get("version")) is not int:
                raise _bad(f"unsupported format version {str(index.get('version'))[:40]}")
            if "root" not in index:
                raise _bad(f"{_INDEX} has no root")
            return _Reader(zf).node(index["root"])
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, OverflowError, MemoryError) as e:
        # a damaged archive: zipfile raises these for bad headers, CRCs and sizes
        raise _bad(f"not a valid checkpoint file ({type(e).__name__}: {e})") from None
