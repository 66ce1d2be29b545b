"""nn.Module, the one base class: PyTorch-style models (registration on assignment, forward,
state_dict names, train/eval) and micrograd-style ones (no super().__init__(), list-returning
parameters(), Values), written as users write them."""

import random

import numpy as np
import pytest

import fastgrad
from fastgrad import Tensor, nn, optim
from fastgrad.nn import functional as F

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


class TwoLayer(nn.Module):
    """A PyTorch user's model: super().__init__(), layers as attributes, forward."""

    def __init__(self, nin, hidden, nout):
        super().__init__()
        self.fc1 = nn.Linear(nin, hidden)
        self.fc2 = nn.Linear(hidden, nout)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


class TwoLayerNoSuper(nn.Module):
    """The same model written micrograd-style: no super().__init__()."""

    def __init__(self, nin, hidden, nout):
        self.fc1 = nn.Linear(nin, hidden)
        self.fc2 = nn.Linear(hidden, nout)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


def regression_data(seed=0, n=32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y = np.sin(x.sum(axis=1, keepdims=True))
    return x, y


@pytest.mark.parametrize("cls", [TwoLayer, TwoLayerNoSuper])
def test_a_pytorch_style_training_loop(cls):
    np.random.seed(0)
    net = cls(3, 16, 1)
    assert [name for name, _ in net.named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    opt = optim.SGD(net.parameters(), lr=0.1)
    x, y = regression_data()
    losses = []
    for _ in range(100):
        loss = F.mse_loss(net(Tensor(x)), Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4


def test_follows_pytorchs_loss_curve_from_the_same_weights():
    torch = pytest.importorskip("torch")
    np.random.seed(1)
    net = TwoLayer(3, 8, 1).double()   # float32 by default, as PyTorch's layers

    class TorchTwoLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(3, 8, dtype=torch.float64)
            self.fc2 = torch.nn.Linear(8, 1, dtype=torch.float64)

        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))

    tnet = TorchTwoLayer()
    # the same keys, and the same weights loaded through them
    assert list(net.state_dict()) == list(tnet.state_dict())
    tnet.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in net.state_dict().items()})
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.05, momentum=0.9)
    x, y = regression_data(1)
    for _ in range(30):
        loss = F.mse_loss(net(Tensor(x)), Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.mse_loss(tnet(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12, abs=1e-14)


def test_registration_follows_assignment():
    class Net(nn.Module):
        def __init__(self):
            self.scale = nn.Parameter(Tensor([2.0]))
            self.body = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
            self.plain = Tensor([1.0], requires_grad=True)   # not a Parameter: not registered
            self.numbers = [nn.Linear(1, 1)]                  # a plain list hides its modules
            self.register_buffer("running", Tensor(np.zeros(2)))

        def forward(self, x):
            return self.body(x) * self.scale

    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "body.0.weight", "body.0.bias"]
    assert [n for n, _ in net.named_children()] == ["body"]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1"]
    # PyTorch's order: a module's parameters, its buffers, then its submodules'
    assert list(net.state_dict()) == ["scale", "running", "body.0.weight", "body.0.bias"]
    assert net.running.shape == (2,) and [n for n, _ in net.named_buffers()] == ["running"]
    net.scale = nn.Parameter(Tensor([3.0]))         # reassigning keeps its place
    assert next(net.parameters()).data.tolist() == [3.0]
    del net.body                                    # deleting unregisters
    assert [n for n, _ in net.named_parameters()] == ["scale"]
    with pytest.raises(TypeError, match="Parameter or None"):
        net.scale = Tensor([1.0])
    net.scale = None
    assert list(net.parameters()) == []


def test_a_shared_parameter_is_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert len(list(model.parameters())) == 2


def test_train_eval_and_repr():
    net = TwoLayer(2, 3, 1)
    assert net.training and net.fc1.training
    assert net.eval() is net and not net.fc1.training
    net.train()
    assert net.fc2.training
    assert repr(net) == ("TwoLayer(\n"
                         "  (fc1): Linear(in_features=2, out_features=3, bias=True)\n"
                         "  (fc2): Linear(in_features=3, out_features=1, bias=True)\n"
                         ")")


def test_forward_missing_is_pytorchs_error():
    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="forward"):
        NoForward()(Tensor([1.0]))


def test_micrograd_mlp_is_a_module_and_keeps_its_lists():
    random.seed(3)
    model = nn.MLP(2, [4, 1])
    assert isinstance(model, nn.Module)
    assert isinstance(model.parameters(), list) and len(model.parameters()) == 17
    names = [n for n, _ in model.named_parameters()]
    assert names[:3] == ["layers.0.neurons.0.w.0", "layers.0.neurons.0.w.1",
                         "layers.0.neurons.0.b"]
    assert [p for _, p in model.named_parameters()] == model.parameters()
    out = model([1.0, -1.0])
    out.backward()
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
    model.eval()
    assert not model.layers[1].neurons[0].training
    saved = model.state_dict()
    for p in model.parameters():
        p.data = 0.0
    model.load_state_dict(saved)
    assert [p.data for p in model.parameters()] == list(saved.values())


def test_a_micrograd_model_inside_a_pytorch_style_module():
    random.seed(4)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.MLP(2, [3, 1])

        def forward(self, x):
            return self.mlp(x)

    model = Wrapper()
    params = list(model.parameters())
    assert params == model.mlp.parameters()
    opt = optim.SGD(params, lr=0.1)
    target = 0.5
    first = None
    for _ in range(30):
        loss = (model([1.0, 2.0]) - target) ** 2
        first = loss.data if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.data < first


def test_a_custom_micrograd_module_zero_grad_uses_its_parameters():
    class Affine(nn.Module):
        def __init__(self):
            self.a = fastgrad.Value(2.0)
            self.b = fastgrad.Value(-1.0)

        def __call__(self, x):
            return self.a * x + self.b

        def parameters(self):
            return [self.a, self.b]

    f = Affine()
    f(3.0).backward()
    assert (f.a.grad, f.b.grad) == (3.0, 1.0)
    f.zero_grad()
    assert (f.a.grad, f.b.grad) == (0.0, 0.0)
    assert vars(f).keys() == {"a", "b"}            # micrograd's attributes, nothing more


def test_micrograd_style_modules_inside_pytorch_style_ones_train():
    class Affine(nn.Module):                          # micrograd's way: parameters() by hand
        def __init__(self):
            self.a, self.b = fastgrad.Value(0.5), fastgrad.Value(0.0)

        def __call__(self, x):
            return self.a * x + self.b

        def parameters(self):
            return [self.a, self.b]

    class Scale(nn.Module):                           # an override that calls super()
        def __init__(self):
            self.c = fastgrad.Value(1.0)

        def __call__(self, x):
            return self.c * x

        def parameters(self):
            return list(super().parameters()) + [self.c]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = Affine()
            self.g = Scale()

        def forward(self, x):
            return self.g(self.f(x))

    model = Model()
    assert [n for n, _ in model.named_parameters()] == ["f.0", "f.1", "g.0"]
    assert list(model.state_dict()) == ["f.0", "f.1", "g.0"]
    opt = optim.SGD(list(model.parameters()), lr=0.05)
    losses = []
    for _ in range(20):
        loss = (model(2.0) - 3.0) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.data)
    assert losses[-1] < losses[0] / 10
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())


def test_parameter_is_a_tensor():
    t = Tensor(np.ones((2, 2), np.float32))
    p = nn.Parameter(t)
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float32
    assert np.shares_memory(p.data, t.data)             # as torch.nn.Parameter(t) does
    (p * 3).sum().backward()
    assert p.grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert not nn.Parameter(Tensor([1.0]), requires_grad=False).requires_grad


def test_fastgrad_tensor_is_the_factory():
    t = fastgrad.tensor([[1.0, 2.0]], requires_grad=True)
    assert isinstance(t, Tensor) and t.requires_grad and t.shape == (1, 2)
    data = np.array([1.0, 2.0])
    t = fastgrad.tensor(data)
    data[0] = 5.0
    assert t.data.tolist() == [1.0, 2.0]           # a copy, as torch.tensor makes


def test_reassigning_keeps_the_registration_order():
    layer = nn.Linear(2, 3)
    layer.weight = nn.Parameter(Tensor(np.zeros((3, 2))))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    seq = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
    setattr(seq, "0", nn.Linear(1, 2))
    assert list(seq.state_dict())[:2] == ["0.weight", "0.bias"]


def test_shared_parameters_and_modules_keep_every_state_dict_key():
    a, b = nn.Linear(1, 1), nn.Linear(1, 1)
    b.weight = a.weight                               # tied weights
    tied = nn.Sequential(a, b)
    assert list(tied.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(list(tied.parameters())) == 3          # but trained once
    twice = nn.Sequential(a, nn.ReLU(), a)
    assert list(twice.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in twice.named_children()] == ["0", "1"]
    twice.load_state_dict(twice.state_dict())         # strict: every key matches


def test_pytorchs_registration_errors():
    layer = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="Parameter or None"):
        layer.weight = nn.Linear(1, 1)                # a Module where a Parameter is
    m = nn.Module()
    for bad in ["a.b", ""]:
        with pytest.raises(KeyError):
            m.register_parameter(bad, None)
    with pytest.raises(KeyError, match="already exists"):
        m.add_module("forward", nn.ReLU())
    with pytest.raises(KeyError, match="already exists"):
        layer.register_buffer("in_features", Tensor([1.0]))

    class WithProperty(nn.Module):
        @property
        def w(self):
            return 1

    with pytest.raises(KeyError, match="already exists"):
        WithProperty().w = nn.Parameter(Tensor([1.0]))


def test_buffers_persistence_can_change():
    m = nn.Module()
    m.register_buffer("x", Tensor([1.0]), persistent=False)
    assert list(m.state_dict()) == []
    m.register_buffer("x", Tensor([2.0]))
    assert list(m.state_dict()) == ["x"]
    m.y = m.x                                          # plain attribute, the same tensor
    m.register_buffer("z", m.x)
    assert len(list(m.buffers())) == 1                 # a shared buffer once


def test_train_calls_each_submodules_train():
    calls = []

    class Recorder(nn.Module):
        def train(self, mode=True):
            calls.append(mode)
            return super().train(mode)

    model = nn.Sequential(Recorder(), nn.Sequential(Recorder()))
    model.eval()
    assert calls == [False, False]


def test_super_init_called_late_keeps_what_was_registered():
    class Late(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(Tensor([1.0]))
            super().__init__()

    assert list(Late().state_dict()) == ["w"]


def test_containers_slice_and_append():
    seq = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is seq[0]
    assert seq[-1] is seq[2]
    seq.append(nn.Tanh())
    assert len(seq) == 4 and isinstance(seq[3], nn.Tanh)
    heads = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    assert isinstance(heads[1:], nn.ModuleList) and len(heads[1:]) == 1
    with pytest.raises(IndexError):
        seq[7]


def test_repr_and_load_result_as_pytorch_prints_them():
    class Opt(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(1, 1)
            self.proj = None

    assert repr(Opt()) == "Opt(\n  (proj): None\n)"
    layer = nn.Linear(2, 1)
    assert repr(layer.load_state_dict(layer.state_dict())) == "<All keys matched successfully>"


def test_pytorch_agrees_on_names_and_order():
    torch = pytest.importorskip("torch")

    def build(lib, parameter, tensor):
        class Block(lib.Module):
            def __init__(self):
                super().__init__()
                self.scale = parameter(tensor(np.ones(2)))
                self.register_buffer("mean", tensor(np.zeros(2)))
                self.inner = lib.Sequential(lib.Linear(2, 2), lib.Tanh(), lib.Linear(2, 2))
                self.scale = parameter(tensor(np.ones(2)))   # reassigned: keeps its place

        model = lib.Sequential(Block(), lib.ReLU(), Block())
        model[0].inner[2].weight = model[2].inner[0].weight  # tied across blocks
        return model

    ours = build(nn, nn.Parameter, lambda a: Tensor(a))
    theirs = build(torch.nn, torch.nn.Parameter, lambda a: torch.tensor(a))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
