"""nn.Module features, containers and layers against torch.nn: names, state_dict keys and
shapes, repr strings, .to(), train/eval, load_state_dict's results and errors, each layer's
outputs and gradients from the same weights, and training loops."""

import copy
from collections import OrderedDict

import numpy as np
import pytest

import fastgrad
from fastgrad import nn, optim
from nn_helpers import close, copy_weights, grads_close, ones, pair, torch, zeros

F64 = (fastgrad.float64, torch.float64)


def nested(lib, dtype=None):
    """A model with every kind of layer and container, built the same way by both libraries."""
    return lib.Sequential(OrderedDict([
        ("embed", lib.Embedding(10, 4, padding_idx=0, dtype=dtype)),
        ("flat", lib.Flatten()),
        ("blocks", lib.ModuleList([lib.Linear(8, 8, dtype=dtype) for _ in range(2)]
                                  + [lib.Linear(8, 6, bias=False, dtype=dtype)])),
        ("norms", lib.ModuleDict({"ln": lib.LayerNorm(6, dtype=dtype),
                                  "bn": lib.BatchNorm1d(6, dtype=dtype)})),
        ("acts", lib.Sequential(lib.ReLU(), lib.LeakyReLU(0.1), lib.GELU(approximate="tanh"),
                                lib.ELU(alpha=0.5), lib.Softplus(beta=2.0), lib.SiLU(),
                                lib.Mish(), lib.Hardswish(), lib.ReLU6(), lib.Tanh(),
                                lib.Sigmoid(), lib.Dropout(0.1), lib.Identity())),
        ("head", lib.Unflatten(1, (2, 3))),
        ("out", lib.LogSoftmax(dim=-1)),
    ]))


class NestedForward:
    """Runs the nested model: blocks and norms are containers, so they are called by hand."""

    @staticmethod
    def run(model, x):
        h = model.flat(model.embed(x))
        for block in model.blocks:
            h = block(h)
        h = model.norms["bn"](model.norms["ln"](h))
        return model.out(model.head(model.acts(h)))


def test_nested_model_repr_names_and_state_dict_match_torch():
    ours, theirs = nested(nn), nested(torch.nn)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    for walk in ["named_parameters", "named_buffers", "named_modules", "named_children"]:
        assert [n for n, _ in getattr(ours, walk)()] == [n for n, _ in getattr(theirs, walk)()]
    assert [type(m).__name__ for m in ours.modules()] == \
        [type(m).__name__ for m in theirs.modules()]
    assert [type(m).__name__ for m in ours.children()] == \
        [type(m).__name__ for m in theirs.children()]


@pytest.mark.parametrize("training", [True, False])
def test_nested_model_forward_and_backward_match_torch(training):
    np.random.seed(0)
    ours, theirs = nested(nn, F64[0]), nested(torch.nn, F64[1])
    ours.acts[11].p = theirs.acts[11].p = 0.0   # dropout masks come from different generators
    copy_weights(ours, theirs)
    ours.train(training)
    theirs.train(training)
    idx = np.random.default_rng(1).integers(0, 10, (5, 2))
    idx[0, 0] = 0                                 # the padding row
    out = NestedForward.run(ours, fastgrad.tensor(idx))
    tout = NestedForward.run(theirs, torch.tensor(idx))
    close(out, tout)
    g = np.random.default_rng(2).standard_normal(tuple(out.shape))
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    grads_close(ours, theirs)
    for key, value in theirs.state_dict().items():   # running statistics too
        close(ours.state_dict()[key], value)


def test_state_dict_round_trip_both_ways():
    np.random.seed(3)
    ours, theirs = nested(nn), nested(torch.nn)
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for key, value in theirs.state_dict().items():
        assert np.array_equal(ours.state_dict()[key].numpy(), value.numpy())
    copy_weights(ours, theirs)


def test_state_dict_shares_memory_and_holds_detached_tensors():
    layer = nn.Linear(2, 2)
    sd = layer.state_dict()
    assert isinstance(sd, OrderedDict)
    assert isinstance(sd["weight"], fastgrad.Tensor) and not sd["weight"].requires_grad
    assert np.shares_memory(sd["weight"].numpy(), layer.weight.numpy())     # as PyTorch's
    snapshot = copy.deepcopy(sd)
    with fastgrad.no_grad():
        layer.weight.fill_(0.0)
    assert np.all(sd["weight"].numpy() == 0) and np.any(snapshot["weight"].numpy() != 0)
    assert layer.state_dict(keep_vars=True)["weight"] is layer.weight
    assert list(layer.state_dict(prefix="enc.")) == ["enc.weight", "enc.bias"]


def test_load_state_dict_errors_are_torchs():
    def attempt(lib, state):
        with pytest.raises(RuntimeError) as info:
            lib.Linear(2, 3).load_state_dict(state)
        return str(info.value)

    good = {"weight": np.zeros((3, 2)), "bias": np.zeros(3)}
    for bad in [{"weight": good["weight"]}, dict(good, extra=np.zeros(1)),
                {"weight": np.zeros((3, 2)), "extra": np.zeros(1)},
                dict(good, weight=np.zeros((2, 2)))]:
        ours = attempt(nn, {k: fastgrad.tensor(v) for k, v in bad.items()})
        theirs = attempt(torch.nn, {k: torch.tensor(v) for k, v in bad.items()})
        # the same text but for how each library prints a shape
        assert ours == theirs.replace("torch.Size([", "(").replace("])", ")"), (ours, theirs)
    layer = nn.Linear(2, 3)
    result = layer.load_state_dict(dict(good, extra=np.zeros(1)), strict=False)
    assert result == ([], ["extra"])
    assert repr(result) == "_IncompatibleKeys(missing_keys=[], unexpected_keys=['extra'])"
    assert result.missing_keys == [] and result.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match="size mismatch"):   # even when not strict
        layer.load_state_dict({"weight": np.zeros((1, 1))}, strict=False)
    assert np.all(layer.weight.numpy() == 0)


def test_register_buffer_and_to():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.register_buffer("scale", fastgrad.tensor([1.0, 2.0]))
            self.register_buffer("steps", fastgrad.tensor(0))
            self.register_buffer("cache", zeros(2), persistent=False)

        def forward(self, x):
            return self.fc(x) * self.scale

    net = Net()
    weight = net.fc.weight
    assert list(net.state_dict()) == ["scale", "steps", "fc.weight", "fc.bias"]
    assert [n for n, _ in net.named_buffers()] == ["scale", "steps", "cache"]
    net(ones(1, 2)).sum().backward()
    assert net.to(fastgrad.float64) is net
    assert net.fc.weight is weight and weight.dtype == fastgrad.float64   # the same Parameter
    assert weight.grad.dtype == fastgrad.float64
    assert net.scale.dtype == fastgrad.float64 and net.cache.dtype == fastgrad.float64
    assert net.steps.dtype == fastgrad.int64                               # integers stay
    assert net.float().scale.dtype == fastgrad.float32
    assert net.double().fc.bias.dtype == fastgrad.float64
    assert net.to("cpu") is net and net.cpu() is net
    assert net.to(device="cpu", dtype=fastgrad.float32).fc.weight.dtype == fastgrad.float32
    assert net.to(zeros(1, dtype=fastgrad.float64)).fc.weight.dtype == \
        fastgrad.float64
    with pytest.raises(RuntimeError):
        net.to("cuda")
    with pytest.raises(RuntimeError):
        net.to("cuda:0", fastgrad.float32)
    with pytest.raises(TypeError, match="floating point"):
        net.to(fastgrad.int64)


def test_apply_requires_grad_and_zero_grad():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    order = []
    assert model.apply(lambda m: order.append(type(m).__name__)) is model
    assert order == ["Linear", "Tanh", "Linear", "Sequential"]

    def init(m):
        if isinstance(m, nn.Linear):
            with fastgrad.no_grad():
                m.weight.fill_(0.5)
    model.apply(init)
    assert np.all(model[2].weight.numpy() == 0.5)
    model(ones(4, 2)).sum().backward()
    model.zero_grad(set_to_none=False)
    assert all(isinstance(p.grad, fastgrad.Tensor) and not p.grad.numpy().any()
               for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())
    assert list(model.parameters(recurse=False)) == []
    assert model.get_submodule("2") is model[2]
    with pytest.raises(AttributeError):
        model.get_submodule("5")


def test_parameter_is_pytorchs():
    p = nn.Parameter(fastgrad.tensor([1.0, 2.0]))
    assert p.requires_grad and isinstance(p, fastgrad.Tensor)
    assert repr(p) == "Parameter containing:\n" + fastgrad.Tensor.__repr__(p)
    assert not nn.Parameter(fastgrad.tensor([1.0]), requires_grad=False).requires_grad
    empty = nn.Parameter()
    assert empty.shape == (0,) and empty.dtype == fastgrad.get_default_dtype()
    with pytest.raises(RuntimeError):
        nn.Parameter(fastgrad.tensor([1, 2]))        # integers cannot require grad


# -- layers ------------------------------------------------------------------------------------

def test_linear_init_dtype_and_device():
    np.random.seed(4)
    layer = nn.Linear(50, 40)
    bound = 1 / np.sqrt(50)
    for p in [layer.weight, layer.bias]:
        assert p.dtype == fastgrad.float32
        values = p.numpy()
        assert np.abs(values).max() <= bound and values.std() > bound / 2
    assert nn.Linear(2, 2, dtype=fastgrad.float64).weight.dtype == fastgrad.float64
    assert nn.Linear(2, 2, device="cpu").weight.shape == (2, 2)
    with pytest.raises(RuntimeError):
        nn.Linear(2, 2, device="cuda")
    assert nn.Linear(0, 2).weight.shape == (2, 0)
    fastgrad.set_default_dtype(fastgrad.float64)
    try:
        assert nn.Linear(2, 2).bias.dtype == fastgrad.float64
    finally:
        fastgrad.set_default_dtype(fastgrad.float32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_matches_torch(dtype):
    np.random.seed(5)
    ours = nn.Linear(3, 4, dtype=getattr(fastgrad, dtype))
    theirs = torch.nn.Linear(3, 4, dtype=getattr(torch, dtype))
    copy_weights(ours, theirs)
    x, tx = pair(np.random.default_rng(6).standard_normal((2, 5, 3)).astype(dtype))
    out, tout = ours(x), theirs(tx)
    close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    grads_close(ours, theirs)


def test_embedding_init_padding_and_pretrained():
    np.random.seed(6)
    emb = nn.Embedding(1000, 8, padding_idx=-1)
    assert emb.padding_idx == 999 and emb.weight.dtype == fastgrad.float32
    w = emb.weight.numpy()
    assert not w[999].any()
    assert abs(w[:999].mean()) < 0.05 and abs(w[:999].std() - 1) < 0.05    # N(0, 1)
    emb(fastgrad.tensor([[999, 3]])).sum().backward()
    assert not emb.weight.grad.numpy()[999].any() and emb.weight.grad.numpy()[3].all()
    frozen = nn.Embedding.from_pretrained(fastgrad.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert not frozen.weight.requires_grad and repr(frozen) == "Embedding(2, 2)"
    assert frozen(fastgrad.tensor([1])).tolist() == [[3.0, 4.0]]


def test_dropout_module_train_and_eval():
    np.random.seed(7)
    drop = nn.Dropout(0.5)
    x = ones(1000)
    out = drop(x)
    assert set(np.unique(out.numpy())) <= {0.0, 2.0} and 400 < (out.numpy() == 0).sum() < 600
    assert drop.eval()(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert not nn.Dropout(1.0)(x).numpy().any()
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


@pytest.mark.parametrize("kwargs", [{}, {"elementwise_affine": False}, {"bias": False},
                                    {"eps": 1e-3}])
def test_layer_norm_module_matches_torch(kwargs):
    ours = nn.LayerNorm((3, 4), dtype=F64[0], **kwargs)
    theirs = torch.nn.LayerNorm((3, 4), dtype=F64[1], **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(8)
    if ours.weight is not None:
        with fastgrad.no_grad():
            ours.weight.copy_(fastgrad.tensor(rng.standard_normal((3, 4))))
    copy_weights(ours, theirs)
    x, tx = pair(rng.standard_normal((2, 3, 4)) * 5, requires_grad=True)
    out, tout = ours(x), theirs(tx)
    close(out, tout)
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    close(x.grad, tx.grad)
    grads_close(ours, theirs)


@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"affine": False},
                                    {"track_running_stats": False}, {"bias": False},
                                    {"momentum": 0.5, "eps": 1e-3}])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batch_norm_module_train_then_eval_matches_torch(kwargs, shape):
    ours = nn.BatchNorm1d(3, dtype=F64[0], **kwargs)
    theirs = torch.nn.BatchNorm1d(3, dtype=F64[1], **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(9)
    for step in range(4):
        if step == 3:
            ours.eval()
            theirs.eval()
        x, tx = pair(rng.standard_normal(shape) * 3 + step, requires_grad=True)
        out, tout = ours(x), theirs(tx)
        close(out, tout)
        g = rng.standard_normal(shape)
        out.backward(fastgrad.tensor(g))
        tout.backward(torch.tensor(g))
        close(x.grad, tx.grad)
        grads_close(ours, theirs)
        for key, value in theirs.state_dict().items():
            close(ours.state_dict()[key], value)


def test_batch_norm_input_checks():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        bn(zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(zeros(1, 3))
    with pytest.raises(RuntimeError):
        bn(zeros(2, 4))
    assert bn.num_batches_tracked.dtype == fastgrad.int64


def test_flatten_unflatten_identity():
    x = zeros(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Identity(3, key=1)(x) is x
    assert repr(nn.Flatten(0, 2)) == repr(torch.nn.Flatten(0, 2))
    assert repr(nn.Unflatten(1, (3, 20))) == repr(torch.nn.Unflatten(1, (3, 20)))
    with pytest.raises(TypeError):
        nn.Unflatten(1, 3)


# -- containers --------------------------------------------------------------------------------

def test_sequential_like_torchs():
    def build(lib):
        return lib.Sequential(OrderedDict(a=lib.Linear(1, 2), b=lib.ReLU(), c=lib.Tanh()))

    # the same operations on both; the results and the containers print the same after each
    ours, theirs = build(nn), build(torch.nn)
    steps = [lambda s, lib: s[1:], lambda s, lib: s[-1], lambda s, lib: s.append(lib.Sigmoid()),
             lambda s, lib: s.__delitem__(0),      # numbers the rest, so torch can insert
             lambda s, lib: s.insert(1, lib.ELU()),
             lambda s, lib: s.pop(1), lambda s, lib: s + lib.Sequential(lib.ReLU()),
             lambda s, lib: s.extend([lib.SiLU()])]
    for step in steps:
        assert repr(step(ours, nn)) == repr(step(theirs, torch.nn))
        assert repr(ours) == repr(theirs)
    assert len(ours) == len(theirs)
    ours[0] = nn.Mish()
    assert isinstance(ours[0], nn.Mish)
    with pytest.raises(IndexError, match="out of range"):
        ours[10]


def test_module_list_and_dict_like_torchs():
    for lib in (nn, torch.nn):
        heads = lib.ModuleList([lib.Linear(2, 2), lib.Linear(2, 2)])
        heads.append(lib.ReLU())
        heads.extend([lib.Tanh()])
        heads.insert(0, lib.Sigmoid())
        heads += [lib.ReLU()]
        del heads[1]
        if lib is nn:
            ours = heads
        else:
            theirs = heads
    assert repr(ours) == repr(theirs) and len(ours) == len(theirs)
    assert repr(ours[1:3]) == repr(theirs[1:3])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    d = nn.ModuleDict({"a": nn.ReLU()})
    d["b"] = nn.Linear(1, 1)
    d.update([("c", nn.Tanh())])
    assert list(d) == ["a", "b", "c"] and list(d.keys()) == ["a", "b", "c"]
    assert "b" in d and d.pop("b").out_features == 1 and len(d) == 2
    assert [n for n, _ in d.items()] == ["a", "c"]
    d.clear()
    assert len(d) == 0


def test_parameter_list_and_dict():
    ps = nn.ParameterList([nn.Parameter(zeros(2, 3)), ones(3)])
    tps = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(2, 3)), torch.ones(3)])
    assert isinstance(ps[1], nn.Parameter) and len(ps) == 2
    assert repr(ps) == repr(tps).replace("torch.", "fastgrad.")
    assert [n for n, _ in ps.named_parameters()] == ["0", "1"]
    model = nn.Module()
    model.scales = ps
    assert list(model.state_dict()) == ["scales.0", "scales.1"]
    pd = nn.ParameterDict({"w": ones(2)})
    pd["b"] = nn.Parameter(zeros(1))
    assert list(pd) == ["w", "b"] and isinstance(pd["w"], nn.Parameter)
    assert list(pd.state_dict()) == ["w", "b"] and len(list(pd.parameters())) == 2
    del pd["w"]
    assert list(pd.keys()) == ["b"]
    with pytest.raises(RuntimeError):
        ps(1)


# -- training loops ----------------------------------------------------------------------------

def test_batch_norm_mlp_training_follows_torch_then_evaluates_the_same():
    """An MLP with BatchNorm1d and ReLU trained 20 steps with Adam on MSELoss: torch's loss
    curve, running statistics and eval outputs."""
    np.random.seed(10)

    def build(lib, dtype):
        return lib.Sequential(lib.Linear(3, 16, dtype=dtype), lib.BatchNorm1d(16, dtype=dtype),
                              lib.ReLU(), lib.Linear(16, 1, dtype=dtype))

    model, tmodel = build(nn, F64[0]), build(torch.nn, F64[1])
    copy_weights(model, tmodel)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 3))
    y = np.sin(x.sum(axis=1, keepdims=True))
    opt = optim.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    loss_fn, tloss_fn = nn.MSELoss(), torch.nn.MSELoss()
    for step in range(20):
        batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
        loss = loss_fn(model(fastgrad.tensor(x[batch])), fastgrad.tensor(y[batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = tloss_fn(tmodel(torch.from_numpy(x[batch])), torch.from_numpy(y[batch]))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
    model.eval()
    tmodel.eval()
    close(model(fastgrad.tensor(x)), tmodel(torch.from_numpy(x)), tol_dtype=np.float32)
    assert model[1].num_batches_tracked.item() == 20


def test_embedding_bag_of_words_training_follows_torch():
    """Embedding (with padding) -> mean over tokens -> Linear, CrossEntropyLoss, SGD."""
    np.random.seed(12)

    class BagOfWords:
        def __init__(self, lib, dtype):
            self.model = lib.ModuleDict({"emb": lib.Embedding(20, 6, padding_idx=0,
                                                               dtype=dtype),
                                         "fc": lib.Linear(6, 3, dtype=dtype)})

        def __call__(self, tokens):
            return self.model["fc"](self.model["emb"](tokens).mean(1))

    ours, theirs = BagOfWords(nn, F64[0]), BagOfWords(torch.nn, F64[1])
    copy_weights(ours.model, theirs.model)
    rng = np.random.default_rng(13)
    tokens = rng.integers(0, 20, (12, 5))
    labels = tokens[:, 0] % 3
    opt = optim.SGD(ours.model.parameters(), lr=0.5)
    topt = torch.optim.SGD(theirs.model.parameters(), lr=0.5)
    for _ in range(15):
        loss = nn.functional.cross_entropy(ours(fastgrad.tensor(tokens)),
                                           fastgrad.tensor(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(tokens)),
                                                  torch.tensor(labels))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    assert not ours.model["emb"].weight.numpy()[0].any()
