"""fastgrad.save / fastgrad.load: round trips of every supported kind, a checkpoint-and-resume
training script, paths and file objects, errors at save time, and hostile files (each must raise
CheckpointError, never unpickle, never allocate what a header claims)."""

import io
import json
import pickle
import random
import zipfile
from collections import Counter, OrderedDict

import numpy as np
import pytest

import fastgrad
from fastgrad import nn, optim
from fastgrad.serialization import FORMAT, VERSION, CheckpointError

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


def roundtrip(obj, **kwargs):
    buf = io.BytesIO()
    fastgrad.save(obj, buf)
    buf.seek(0)
    return fastgrad.load(buf, **kwargs)


def same(a, b):
    """Equal values with equal types, all the way down (arrays: dtype, shape and bits)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, fastgrad.Tensor):
        assert a.requires_grad == b.requires_grad
        same(a.numpy(), b.numpy())
    elif isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


# -- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arr", [
    np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    np.random.default_rng(0).normal(size=(2, 3, 4)),
    np.arange(-5, 5, dtype=np.int64),
    np.array([True, False, True]),
    np.array(3.5), np.array(7, dtype=np.int64),                  # 0-d
    np.empty((0, 3)), np.empty(0, dtype=np.float32),             # empty
    np.arange(24.0).reshape(4, 6)[::2, 1::3],                    # non-contiguous
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.array([1 + 2j, -3j]), np.array([1, 2], dtype=np.uint8),
], ids=lambda a: f"{a.dtype}{a.shape}")
def test_array_roundtrip(arr):
    same(arr, roundtrip(arr))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_tensor_roundtrip(dtype, requires_grad):
    t = fastgrad.tensor(np.arange(6.0).reshape(2, 3), dtype=dtype, requires_grad=requires_grad)
    back = roundtrip(t)
    same(t, back)
    assert back.dtype == dtype and back.grad is None


def test_parameter_and_nonleaf_tensor():
    p = nn.Parameter(fastgrad.tensor([1.0, 2.0]))
    back = roundtrip({"p": p, "y": p * 2})
    assert type(back["p"]) is nn.Parameter and back["p"].requires_grad
    assert type(back["y"]) is fastgrad.Tensor and back["y"].data.tolist() == [2.0, 4.0]


@pytest.mark.parametrize("obj", [
    None, True, False, 0, -7, 2 ** 100, 1.5, -0.0, float("inf"), float("-inf"), float("nan"),
    "", "héllo ☃", [1, [2.5, None]], (1, "a", (True,)), [], (), {},
    {"a": 1, 2: "b", 3.5: None, None: [1], True: (2,)},
    OrderedDict([("z", 1), ("a", 2)]), Counter({3: 2, 5: 1}),
    {1: 1, 1.5: 2, "1": 3, False: 4},
    np.float32(1.25), np.int64(-3), np.bool_(True),
], ids=repr)
def test_python_values_roundtrip(obj):
    same(obj, roundtrip(obj))


def test_key_order_and_types_kept():
    d = {k: i for i, k in enumerate(["b", 3, "a", 1.0 + 0.5, None, False])}
    back = roundtrip(d)
    assert list(back) == list(d) and [type(k) for k in back] == [type(k) for k in d]


def test_shared_objects_load_as_one():
    a = np.arange(3.0)
    t = fastgrad.tensor([1.0], requires_grad=True)
    back = roundtrip({"x": a, "y": [a], "t": t, "u": (t,)})
    assert back["x"] is back["y"][0] and back["t"] is back["u"][0]
    buf = io.BytesIO()
    fastgrad.save([a, a, a], buf)
    assert len([n for n in zipfile.ZipFile(buf).namelist() if n.endswith(".npy")]) == 1


def test_loaded_arrays_are_writable_copies():
    a = np.arange(4.0)
    back = roundtrip(a)
    back[0] = 9.0
    assert a[0] == 0.0 and back.flags.writeable


def test_state_dicts_of_module_optimizer_scheduler():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.9))
    model(fastgrad.tensor(np.ones((2, 3)))).sum().backward()
    opt.step()
    for sched in (optim.lr_scheduler.StepLR(opt, 2), optim.lr_scheduler.MultiStepLR(opt, [1, 3]),
                  optim.lr_scheduler.ReduceLROnPlateau(opt),
                  optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)):
        same(sched.state_dict(), roundtrip(sched.state_dict()))
    same(model.state_dict(), roundtrip(model.state_dict()))
    same(opt.state_dict(), roundtrip(opt.state_dict()))


def test_micrograd_mlp_state_dict():
    mlp = nn.MLP(2, [3, 1])
    sd = mlp.state_dict()
    same(sd, roundtrip(sd))


# -- a training script that checkpoints and resumes ----------------------------------------------

def _setup(seed):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    for p in model.parameters():
        p.numpy()[...] = rng.normal(scale=0.5, size=p.shape)
    return model, optim.Adam(model.parameters(), lr=1e-2)


def _train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_checkpoint_and_resume_matches_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(1)
    x, y = fastgrad.tensor(rng.normal(size=(16, 3))), fastgrad.tensor(rng.normal(size=(16, 1)))
    model, opt = _setup(0)
    reference = _train(model, opt, x, y, 10)

    model, opt = _setup(0)
    first = _train(model, opt, x, y, 5)
    path = tmp_path / "ckpt.fg"
    fastgrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 5},
                  path)
    del model, opt
    ckpt = fastgrad.load(path, map_location="cpu")
    model, opt = _setup(123)                       # fresh objects with other weights
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    assert ckpt["epoch"] == 5
    assert first + _train(model, opt, x, y, 5) == reference


def test_arrays_load_into_torch_model():
    torch = pytest.importorskip("torch")
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    buf = io.BytesIO()
    fastgrad.save(model.state_dict(), buf)
    buf.seek(0)
    sd = fastgrad.load(buf)
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 2)).double()
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in sd.items()})
    x = np.random.default_rng(2).normal(size=(5, 3))
    expected = model(fastgrad.tensor(x)).data
    np.testing.assert_allclose(tmodel(torch.from_numpy(x)).detach().numpy(), expected,
                               rtol=1e-12, atol=1e-12)


# -- files, paths and arguments ------------------------------------------------------------------

def test_paths_str_and_pathlike(tmp_path):
    for p in (tmp_path / "a.fg", str(tmp_path / "b.fg")):
        fastgrad.save([1, np.ones(2)], p)
        same([1, np.ones(2)], fastgrad.load(p))


def test_unseekable_file_object():
    buf = io.BytesIO()
    fastgrad.save({"a": np.ones(3)}, buf)

    class Stream(io.RawIOBase):          # readable, not seekable
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.inner.readinto(b)

    same({"a": np.ones(3)}, fastgrad.load(io.BufferedReader(Stream(buf.getvalue()))))


@pytest.mark.parametrize("weights_only", [True, False])
def test_weights_only_accepted(weights_only):
    assert roundtrip([1.0], weights_only=weights_only) == [1.0]


def test_map_location():
    assert roundtrip([1], map_location=None) == [1]
    assert roundtrip([1], map_location="cpu") == [1]
    with pytest.raises(RuntimeError, match="map_location"):
        roundtrip([1], map_location="cuda")
    torch = pytest.importorskip("torch")
    assert roundtrip([1], map_location=torch.device("cpu")) == [1]


def test_file_is_a_zip_not_a_pickle():
    buf = io.BytesIO()
    fastgrad.save({"w": np.ones(2)}, buf)
    with pytest.raises(Exception):
        pickle.loads(buf.getvalue())
    index = json.loads(zipfile.ZipFile(buf).read("data.json"))
    assert index["format"] == FORMAT and index["version"] == VERSION


# -- errors at save time -------------------------------------------------------------------------

@pytest.mark.parametrize("obj, where, what", [
    (nn.Linear(1, 1), "obj", "Linear"),
    ({"state": {"param_groups": [{"foo": lambda: 0}]}},
     "obj['state']['param_groups'][0]['foo']", "function"),
    ([np.array([object()])], "obj[0]", "object"),
    ({"a": {1, 2}}, "obj['a']", "set"),
    ({(1, 2): 0}, "obj[(1, 2)]", "tuple"),
    (fastgrad.Value(1.0), "obj", "Value"),
    (np.array(["a"]), "obj", "<U1"),
])
def test_unsupported_objects_raise_type_error(obj, where, what):
    buf = io.BytesIO()
    with pytest.raises(TypeError) as info:
        fastgrad.save(obj, buf)
    assert where in str(info.value) and what in str(info.value)
    assert buf.getvalue() == b""                     # nothing written


def test_self_referencing_container():
    a = []
    a.append(a)
    with pytest.raises(ValueError, match="contains itself"):
        fastgrad.save(a, io.BytesIO())


# -- hostile files -------------------------------------------------------------------------------

def _zip(index, members=(), compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr("data.json", index if isinstance(index, (str, bytes)) else json.dumps(index))
        for name, data in members:
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def _npy(arr):
    b = io.BytesIO()
    np.lib.format.write_array(b, arr, allow_pickle=True)
    return b.getvalue()


def _index(root):
    return {"format": FORMAT, "version": VERSION, "root": root}


ARRAY = {"type": "ndarray", "member": "arrays/0.npy"}


@pytest.mark.parametrize("data", [b"", b"not a zip at all", pickle.dumps({"a": 1}),
                                  bytes(random.Random(0).randrange(256) for _ in range(4096))],
                         ids=["empty", "text", "pickle", "random"])
def test_not_a_zip(data):
    with pytest.raises(CheckpointError):
        fastgrad.load(io.BytesIO(data))


def test_error_is_unpickling_error_and_runtime_error():
    assert issubclass(CheckpointError, pickle.UnpicklingError)
    assert issubclass(CheckpointError, RuntimeError)


def test_truncated_files():
    buf = io.BytesIO()
    fastgrad.save({"a": np.arange(100.0), "b": [1, 2, "x"], "t": fastgrad.tensor([1.0])}, buf)
    data = buf.getvalue()
    for n in list(range(0, len(data), 7)):
        with pytest.raises(CheckpointError):
            fastgrad.load(io.BytesIO(data[:n]))


def test_bit_flips_never_escape_as_other_errors():
    buf = io.BytesIO()
    fastgrad.save({"a": np.arange(10.0), "b": [1, 2.5, "x", None], 3: True}, buf)
    data = buf.getvalue()
    rng = random.Random(1)
    for _ in range(3000):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        try:
            fastgrad.load(io.BytesIO(bytes(damaged)))
        except CheckpointError:
            pass


@pytest.mark.parametrize("index", [
    b"{not json", b"\xff\xfe", "[" * 100000 + "]" * 100000, json.dumps([1, 2]),
    json.dumps({"format": "torch", "version": VERSION, "root": {"type": "none"}}),
    json.dumps({"format": FORMAT, "version": 2, "root": {"type": "none"}}),
    json.dumps({"format": FORMAT, "version": "1", "root": {"type": "none"}}),
    json.dumps({"format": FORMAT, "version": VERSION}),
], ids=["json", "utf8", "deep-json", "list", "format", "version", "version-str", "no-root"])
def test_bad_index(index):
    with pytest.raises(CheckpointError):
        fastgrad.load(_zip(index))


def test_compressed_members_refused():
    with pytest.raises(CheckpointError, match="compressed"):
        fastgrad.load(_zip(_index({"type": "none"}), compression=zipfile.ZIP_DEFLATED))


def test_missing_index():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("other", b"x")
    with pytest.raises(CheckpointError, match="data.json"):
        fastgrad.load(buf)


def _deep(n):
    node = {"type": "none"}
    for _ in range(n):
        node = {"type": "list", "items": [node]}
    return node


@pytest.mark.parametrize("root", [
    None, 3, "x", {"type": 1}, {"type": "eval"}, {"type": "int", "value": 3},
    {"type": "int", "value": "1e3"}, {"type": "float", "value": 1.5},
    {"type": "float", "value": "0x1p99999"}, {"type": "bool", "value": 1},
    {"type": "list", "items": "ab"}, {"type": "dict", "items": [[{"type": "none"}]]},
    {"type": "dict", "items": [[{"type": "list", "items": []}, {"type": "none"}]]},
    {"type": "dict", "items": [1]}, {"type": "tuple"}, _deep(300),
    {"type": "ndarray", "member": 5}, {"type": "ndarray"},
    {"type": "ndarray", "member": "arrays/9.npy"},
    {"type": "tensor", "member": "arrays/0.npy"},
    {"type": "tensor", "member": "arrays/0.npy", "requires_grad": "yes"},
], ids=lambda root: str(root)[:40])
def test_bad_nodes(root):
    with pytest.raises(CheckpointError):
        fastgrad.load(_zip(_index(root), [("arrays/0.npy", _npy(np.ones(2)))]))


def test_missing_member_named():
    with pytest.raises(CheckpointError, match="arrays/0.npy"):
        fastgrad.load(_zip(_index(ARRAY)))


def test_tensor_of_int_dtype_that_requires_grad_refused():
    # integer tensors load (buffers, labels), but only floating ones can require grad
    node = {"type": "tensor", "member": "arrays/0.npy", "requires_grad": True}
    with pytest.raises(CheckpointError, match="int64"):
        fastgrad.load(_zip(_index(node), [("arrays/0.npy", _npy(np.arange(3)))]))
    node = {"type": "tensor", "member": "arrays/0.npy", "requires_grad": False}
    assert fastgrad.load(_zip(_index(node), [("arrays/0.npy", _npy(np.arange(3)))])).tolist() \
        == [0, 1, 2]
    node = {"type": "tensor", "member": "arrays/0.npy", "requires_grad": False}
    with pytest.raises(CheckpointError, match="uint16"):
        fastgrad.load(_zip(_index(node), [("arrays/0.npy", _npy(np.arange(3, dtype=np.uint16)))]))


def test_object_array_member_refused_without_unpickling(monkeypatch):
    calls = []

    class Boom:
        def __reduce__(self):
            return (calls.append, ("unpickled",))

    member = _npy(np.array([Boom()], dtype=object))
    for name in ("loads", "load"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: calls.append(name))
    with pytest.raises(CheckpointError, match="object|dtype"):
        fastgrad.load(_zip(_index(ARRAY), [("arrays/0.npy", member)]))
    assert calls == []


def _raw_npy(header, data=b"\0" * 16):
    """A version 1.0 .npy member with this header text (numpy's layout, padded to 64 bytes)."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


@pytest.mark.parametrize("shape", ["(1000000000000, 1000000000000)", "(2**62,)", "(-1,)",
                                   "(3,)", "(1,)", "('a',)", "2"])
def test_declared_shape_must_match_data(shape):
    # 16 bytes of data: two float64 numbers, whatever the header says
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shape
    with pytest.raises(CheckpointError):
        fastgrad.load(_zip(_index(ARRAY), [("arrays/0.npy", _raw_npy(header))]))
    ok = _raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }")
    assert fastgrad.load(_zip(_index(ARRAY), [("arrays/0.npy", ok)])).shape == (2,)


@pytest.mark.parametrize("descr", ["'|O'", "[('a', '<f8')]", "'<U2'", "'<M8[s]'"])
def test_refused_member_dtypes(descr):
    header = "{'descr': %s, 'fortran_order': False, 'shape': (2,), }" % descr
    with pytest.raises(CheckpointError):
        fastgrad.load(_zip(_index(ARRAY), [("arrays/0.npy", _raw_npy(header))]))


def test_bad_npy_members():
    for member in (b"", b"\x93NUMPY", b"\x93NUMPY\x09\x00" + b"x" * 100, _npy(np.ones(3))[:-1],
                   b"garbage" * 10):
        with pytest.raises(CheckpointError):
            fastgrad.load(_zip(_index(ARRAY), [("arrays/0.npy", member)]))


def test_integer_and_bool_tensors_and_batchnorm_buffers_roundtrip(tmp_path):
    # BatchNorm1d's num_batches_tracked is an int64 buffer; masks are bool tensors
    bn = fastgrad.nn.BatchNorm1d(3)
    bn(fastgrad.randn(4, 3))
    state = {"bn": bn.state_dict(), "mask": fastgrad.tensor([True, False]),
             "labels": fastgrad.tensor([3, 1], dtype=fastgrad.int32)}
    fastgrad.save(state, tmp_path / "ckpt.pt")
    back = fastgrad.load(tmp_path / "ckpt.pt")
    assert back["bn"]["num_batches_tracked"].dtype == fastgrad.int64
    assert back["bn"]["num_batches_tracked"].item() == 1
    assert back["mask"].dtype == fastgrad.bool and back["mask"].tolist() == [True, False]
    assert back["labels"].dtype == fastgrad.int32 and back["labels"].tolist() == [3, 1]
    fresh = fastgrad.nn.BatchNorm1d(3)
    fresh.load_state_dict(back["bn"])
    assert fresh.running_mean.tolist() == bn.running_mean.tolist()
