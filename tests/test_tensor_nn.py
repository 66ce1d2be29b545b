"""Tensor layers: shapes, init, parameters, state_dict round trip, train/eval, and the
scalar micrograd classes left unchanged beside them."""

import numpy as np
import pytest

import fastgrad
from fastgrad import Tensor, nn
from fastgrad.nn import functional as F

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


def mlp(nin, nouts, activation=nn.ReLU):
    """Linear layers of the given sizes with an activation between them (none after the last)."""
    sizes = [nin] + list(nouts)
    layers = []
    for i in range(len(nouts)):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i != len(nouts) - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def test_linear_shapes_and_pytorch_default_init_bounds():
    np.random.seed(0)
    layer = nn.Linear(50, 7)
    assert layer.weight.shape == (7, 50) and layer.bias.shape == (7,)
    bound = 1 / np.sqrt(50)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.std() > bound / 3             # spread over the whole range
    assert layer(Tensor(np.ones((4, 50)))).shape == (4, 7)
    assert layer(Tensor(np.ones(50))).shape == (7,)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert len(list(nn.Linear(3, 2, bias=False).parameters())) == 1
    assert nn.Linear(3, 2, dtype=np.float32)(Tensor(np.ones((1, 3), np.float32))).dtype == \
        np.float32


def test_linear_matches_formula():
    layer = nn.Linear(3, 2)
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data.T + layer.bias.data)


def test_sequential_and_mlp_parameters_and_names():
    model = mlp(2, [4, 3, 1])
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias",
                                        "4.weight", "4.bias"]
    assert len(list(model.parameters())) == 6 and len(model) == 5
    assert model[0] is next(model.children())
    assert isinstance(model, nn.Module)
    seq = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1), nn.Sigmoid())
    out = seq(Tensor(np.ones((5, 2))))
    assert out.shape == (5, 1) and np.all((out.data > 0) & (out.data < 1))
    assert "Linear(in_features=2, out_features=2, bias=True)" in repr(seq)
    with pytest.raises(TypeError):
        nn.Sequential(3)


def test_custom_module_finds_nested_parameters():
    class Net(nn.Module):
        def __init__(self):
            self.encoder = nn.Linear(3, 4)
            self.heads = nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 2)])
            self.scale = nn.Parameter(Tensor(1.0))
            self.constant = Tensor(2.0)

        def forward(self, x):
            h = self.encoder(x).relu()
            return self.heads[0](h) * self.scale + self.heads[1](h).sum(axis=1, keepdims=True)

    net = Net()
    assert list(net.state_dict()) == ["scale", "encoder.weight", "encoder.bias",
                                      "heads.0.weight", "heads.0.bias", "heads.1.weight",
                                      "heads.1.bias"]
    net(Tensor(np.ones((2, 3)))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_through_savez(tmp_path):
    model = mlp(3, [5, 2])
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)))
    before = model(x).numpy().copy()
    path = tmp_path / "model.npz"
    np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})
    other = mlp(3, [5, 2])
    assert not np.allclose(other(x).data, before)
    with np.load(path) as f:
        other.load_state_dict(dict(f))
    np.testing.assert_array_equal(other(x).data, before)
    sd = model.state_dict()
    sd["0.weight"].numpy()[:] = 0.0               # PyTorch's: the parameter's memory, detached
    assert not np.any(model[0].weight.numpy())


def test_load_state_dict_errors():
    model = mlp(3, [5, 2])
    sd = model.state_dict()
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict({k: v for k, v in sd.items() if k != "0.bias"})
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict({**sd, "extra": np.zeros(1)})
    result = model.load_state_dict({**sd, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == ["extra"]
    sd["2.weight"] = np.zeros((3, 3))
    with pytest.raises(RuntimeError, match=r"\(3, 3\).*\(2, 5\)"):
        model.load_state_dict(sd)


def test_train_eval_propagates():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    assert model.training and model[1][0].training
    assert model.eval() is model
    assert not model.training and not model[1][0].training
    model.train()
    assert model[1][0].training


def test_training_reduces_loss():
    np.random.seed(1)
    model = mlp(1, [16, 16, 1], activation=nn.Tanh)
    opt = fastgrad.optim.Adam(model.parameters(), lr=1e-2)
    x = np.linspace(-1, 1, 32)[:, None]
    y = np.sin(3 * x)
    first = None
    for _ in range(300):
        loss = F.mse_loss(model(Tensor(x)), Tensor(y))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10


def test_scalar_micrograd_classes_unchanged():
    import random
    random.seed(0)
    model = nn.MLP(2, [16, 1])
    assert isinstance(model, nn.Module)
    out = model([1.0, 2.0])
    assert isinstance(out, fastgrad.Value)
    assert len(model.parameters()) == 2 * 16 + 16 + 16 + 1
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
