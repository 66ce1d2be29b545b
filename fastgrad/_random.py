"""Random number generators with PyTorch's interface (``torch.Generator``, ``torch.manual_seed``).

A ``Generator`` wraps a numpy ``np.random.Generator`` over a PCG64 bit generator; every random
draw in fastgrad (factories, ``Tensor.normal_``/``uniform_``, ``nn.init``, ``DataLoader``
shuffling, dropout) goes through ``numpy_generator(generator)``, so ``manual_seed`` makes all of
them repeat. The numbers differ from PyTorch's (a different algorithm); the behaviour does not:
the same seed gives the same draws, ``get_state``/``set_state`` rewind a generator.

>>> g = Generator().manual_seed(7)
>>> a = numpy_generator(g).random(3)
>>> _ = g.manual_seed(7)
>>> bool((numpy_generator(g).random(3) == a).all())
True
"""
from __future__ import annotations

import os
import struct

import numpy as np

from fastgrad._device import CPU, check_device, device

# PyTorch seeds a new Generator with this constant (and its default generator randomly).
_DEFAULT_SEED = 67280421310721
_U64 = 1 << 64
# The state is bytes: magic, version, initial seed, PCG64 state and increment (128 bits each,
# little-endian), the buffered-uint32 flag and value. A fixed layout so that a state saved with
# fastgrad.save reloads; the magic catches states from elsewhere (e.g. a PyTorch generator's).
_MAGIC = b"FGPCG64"
_VERSION = 1
_LAYOUT = struct.Struct("<7sBQ16s16s?I")
STATE_SIZE = _LAYOUT.size


def _seed_value(seed: object) -> int:
    """The unsigned 64-bit seed of an integer argument, with PyTorch's checks (negative seeds
    wrap around, as in PyTorch)."""
    if isinstance(seed, bool) or not hasattr(type(seed), "__index__"):
        raise RuntimeError(f"manual_seed expected a long, but got {type(seed).__name__}")
    value = seed.__index__()
    if not -(1 << 63) <= value < _U64:
        raise ValueError("Overflow when unpacking long long")
    return value % _U64


class Generator:
    """A random number generator (PyTorch's ``torch.Generator``), CPU only.

    >>> g = Generator()
    >>> g.initial_seed()
    67280421310721
    >>> g.manual_seed(3) is g, g.initial_seed(), g.device
    (True, 3, device(type='cpu'))
    """

    __slots__ = ("_rng", "_initial_seed", "__weakref__")

    def __init__(self, device: str | device | None = "cpu") -> None:
        check_device(device)
        self._rng: np.random.Generator
        self.manual_seed(_DEFAULT_SEED)

    @property
    def device(self) -> device:
        """Always ``device('cpu')``."""
        return CPU

    def manual_seed(self, seed: int) -> "Generator":
        """Reseed with an integer in [-2**63, 2**64) and return this generator."""
        value = _seed_value(seed)
        self._rng = np.random.Generator(np.random.PCG64(value))
        self._initial_seed = value
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy and return the new seed."""
        value = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(value)
        return value

    def initial_seed(self) -> int:
        """The seed last set (unsigned: a negative seed s reads back as s + 2**64)."""
        return self._initial_seed

    def get_state(self):
        """The generator's state as a 1-D uint8 Tensor (``set_state`` takes it back)."""
        from fastgrad._tensor import Tensor   # the tensor engine imports this module
        return Tensor(np.frombuffer(self._state_bytes(), dtype=np.uint8).copy())

    def set_state(self, new_state) -> "Generator":
        """Restore a state from ``get_state`` (a uint8 Tensor); returns this generator."""
        from fastgrad._tensor import Tensor
        if not isinstance(new_state, Tensor):
            raise TypeError(f"expected a uint8 Tensor (from get_state), but got "
                            f"{type(new_state).__name__}")
        arr = new_state.numpy()
        if arr.dtype != np.uint8:
            raise TypeError(f"RNG state must be a uint8 Tensor, not {arr.dtype}")
        self._set_state_bytes(arr.tobytes())
        return self

    def _state_bytes(self) -> bytes:
        st = self._rng.bit_generator.state
        inner = st["state"]
        return _LAYOUT.pack(_MAGIC, _VERSION, self._initial_seed,
                            inner["state"].to_bytes(16, "little"),
                            inner["inc"].to_bytes(16, "little"),
                            bool(st["has_uint32"]), st["uinteger"])

    def _set_state_bytes(self, data: bytes) -> None:
        if len(data) != STATE_SIZE:
            raise RuntimeError(f"Expected a fastgrad generator state of size {STATE_SIZE} but "
                               f"found the input RNG state size to be {len(data)}")
        magic, version, initial, state, inc, has_uint32, uinteger = _LAYOUT.unpack(data)
        if magic != _MAGIC or version != _VERSION:
            raise RuntimeError("the input RNG state is not a fastgrad generator state "
                               "(made by Generator.get_state)")
        bits = np.random.PCG64()
        bits.state = {"bit_generator": "PCG64",
                      "state": {"state": int.from_bytes(state, "little"),
                                "inc": int.from_bytes(inc, "little")},
                      "has_uint32": int(has_uint32), "uinteger": uinteger}
        self._rng = np.random.Generator(bits)
        self._initial_seed = initial

    def __repr__(self) -> str:
        return f"<fastgrad.Generator object at {id(self):#x}>"


default_generator = Generator()
default_generator.seed()   # as PyTorch: the default generator starts from a random seed


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (``int(seed)`` first, as PyTorch) and return it.

    >>> manual_seed(0) is default_generator
    True
    """
    return default_generator.manual_seed(int(seed))


def seed() -> int:
    """Seed the default generator from the operating system's entropy; return the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """The default generator's last seed."""
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state (a uint8 Tensor)."""
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    """Restore the default generator's state from ``get_rng_state``."""
    default_generator.set_state(new_state)


def numpy_generator(generator: Generator | None = None) -> np.random.Generator:
    """The numpy generator to draw from: ``generator``'s, or the default generator's for None.

    Draw from the returned object right away: ``manual_seed`` and ``set_state`` replace it.
    """
    if generator is None:
        return default_generator._rng
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a fastgrad.Generator, not "
                        f"{type(generator).__name__}")
    return generator._rng


# ---------------------------------------------------------------------------------------------
# Draws into a dtype. One definition shared by the factories, nn.init and the in-place fills, so
# that e.g. rand(n) and empty(n).uniform_() give the same numbers after the same seed.


def draw_uniform(generator: Generator | None, shape: tuple[int, ...], dtype: np.dtype,
                 low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Uniform numbers in [low, high) of a floating dtype (computed in that dtype, as PyTorch).

    >>> draw_uniform(Generator(), (2, 3), np.dtype(np.float32), -1.0, 1.0).dtype
    dtype('float32')
    """
    dtype = np.dtype(dtype)
    rng = numpy_generator(generator)
    if dtype == np.float16:
        # whole multiples of 2**-11 in [0, 1): a float32 draw rounded to float16 could be 1.0
        u = (rng.integers(0, 1 << 11, size=shape) * (1.0 / (1 << 11))).astype(np.float16)
    else:
        u = rng.random(shape, dtype=np.float32 if dtype == np.float32 else np.float64)
        u = u.astype(dtype, copy=False)
    if low == 0.0 and high == 1.0:
        return u
    return (u * dtype.type(high - low) + dtype.type(low)).astype(dtype, copy=False)


def draw_normal(generator: Generator | None, shape: tuple[int, ...], dtype: np.dtype,
                mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Normal numbers of a floating dtype.

    >>> draw_normal(Generator(), (4,), np.dtype(np.float64)).shape
    (4,)
    """
    dtype = np.dtype(dtype)
    rng = numpy_generator(generator)
    z = rng.standard_normal(shape, dtype=np.float32 if dtype != np.float64 else np.float64)
    z = z.astype(dtype, copy=False)
    if mean == 0.0 and std == 1.0:
        return z
    return (z * dtype.type(std) + dtype.type(mean)).astype(dtype, copy=False)


__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed",
           "get_rng_state", "set_rng_state", "numpy_generator", "draw_uniform", "draw_normal"]
