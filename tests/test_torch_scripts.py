"""Five PyTorch tutorial-style scripts (examples/torch_scripts/) run under fastgrad with only
their import lines changed, and follow PyTorch's loss curve from the same weights.

tests/_script_harness.py runs each script twice in fresh interpreters: as written (torch) and
with its import lines rewritten (fastgrad). It makes the two runs start from the same
parameters and draw the same random numbers (see its docstring for exactly how); everything
else is each library's own arithmetic. The scripts work in float64, so the per-step losses and
the final metrics must agree to 1e-9 relative.
"""

import os

import numpy as np
import pytest

from _script_harness import (Recording, changed_lines, is_import_line, rewrite_imports,
                             run_both, run_harness)

SCRIPTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "examples", "torch_scripts")
pytestmark = [
    pytest.mark.skipif(not os.path.isdir(SCRIPTS_DIR),
                       reason="examples/ not found (tests run outside the source tree)"),
]

# script -> the import lines it has, as the rewrite turns them (and nothing else changes)
SCRIPTS = {
    "makemore_mlp.py": ["import fastgrad as torch", "import fastgrad.nn.functional as F"],
    "linear_regression.py": ["import fastgrad as torch", "import fastgrad.nn as nn",
                             "import fastgrad.optim as optim"],
    "logistic_regression.py": ["import fastgrad as torch", "import fastgrad.nn as nn",
                               "from fastgrad.utils.data import DataLoader, TensorDataset"],
    "digits_classifier.py": ["import fastgrad as torch", "import fastgrad.nn as nn",
                             "import fastgrad.nn.functional as F",
                             "import fastgrad.optim as optim",
                             "from fastgrad.utils.data import DataLoader, TensorDataset"],
    "digits_autoencoder.py": ["import fastgrad as torch", "from fastgrad import nn",
                              "from fastgrad.utils.data import DataLoader, TensorDataset"],
}
NEEDS_SKLEARN = {"digits_classifier.py", "digits_autoencoder.py"}


def script_path(name):
    return os.path.join(SCRIPTS_DIR, name)


def needs(name):
    pytest.importorskip("torch")
    if name in NEEDS_SKLEARN:
        pytest.importorskip("sklearn", reason="scikit-learn not installed: digits scripts")


# ----------------------------------------------------------------------------- the rewrite

@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_only_import_lines_change(name):
    with open(script_path(name), encoding="utf-8") as f:
        source = f.read()
    changes = changed_lines(source, rewrite_imports(source))
    assert [new for _, _, new in changes] == SCRIPTS[name]
    assert all(is_import_line(old) and is_import_line(new) for _, old, new in changes)


@pytest.mark.parametrize("line, expected", [
    ("import torch", "import fastgrad as torch"),
    ("import torch as th", "import fastgrad as th"),
    ("import torch.nn as nn", "import fastgrad.nn as nn"),
    ("    import torch.nn.functional as F  # in a function", "    import fastgrad.nn.functional as F  # in a function"),
    ("from torch import nn, optim", "from fastgrad import nn, optim"),
    ("from torch.optim import lr_scheduler", "from fastgrad.optim import lr_scheduler"),
    ("import numpy as np, torch", "import numpy as np, fastgrad as torch"),
    ("import torchvision", "import torchvision"),
    ("from torchvision import datasets", "from torchvision import datasets"),
    ("x = torch.randn(3)  # import torch", "x = torch.randn(3)  # import torch"),
    ("import importlib", "import importlib"),
])
def test_rewrite_of_one_line(line, expected):
    assert rewrite_imports(line + "\n") == expected + "\n"


def test_rewrite_refuses_a_submodule_import_without_alias():
    with pytest.raises(ValueError, match="without an alias"):
        rewrite_imports("import torch.nn\n")


def test_changed_lines_reports_every_difference():
    assert changed_lines("a\nb\n", "a\nc\n") == [(2, "b", "c")]
    with pytest.raises(AssertionError, match="number of lines"):
        changed_lines("a\n", "a\nb\n")


# ----------------------------------------------------------------------------- torch side

@pytest.fixture(scope="module")
def torch_recording(tmp_path_factory):
    """The torch run's recording of a script (made once per script for this module)."""
    made = {}

    def get(name):
        needs(name)
        if name not in made:
            out = str(tmp_path_factory.mktemp("torch") / "torch.npz")
            run_harness(["record", script_path(name), out], os.path.dirname(out))
            made[name] = out
        return made[name]
    return get


def test_makemore_recording_holds_the_scripts_own_draws(torch_recording):
    rec = Recording.load(torch_recording("makemore_mlp.py"))
    names = [n for n, _ in rec.draws]
    assert names[:5] == ["randn"] * 5  # C, W1, b1, W2, b2
    assert [a.shape for _, a in rec.draws[:5]] == [(27, 10), (30, 200), (200,), (200, 27), (27,)]
    assert names[5:3005] == ["randint"] * 3000 and rec.draws[5][1].dtype == np.int64
    assert set(names[3005:]) == {"multinomial"}
    assert rec.optimizers == [] and rec.epochs == []
    assert len(rec.losses) == 3000 and rec.losses[-1] < rec.losses[0]


def test_shuffled_epochs_and_optimizer_parameters_are_recorded(torch_recording):
    rec = Recording.load(torch_recording("logistic_regression.py"))
    assert rec.draws == []  # nn.Linear's initialisation is library code: not a script draw
    assert len(rec.epochs) == 20
    for order in rec.epochs:
        assert sorted(order.tolist()) == list(range(300))
    assert len({tuple(o) for o in rec.epochs}) == 20  # a new order every epoch
    assert [p.shape for p in rec.optimizers[0]] == [(1, 2), (1,)]
    assert len(rec.losses) == 20 * 15


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_replay_covers_all_randomness(name, torch_recording, tmp_path):
    """The recording replayed into torch with every seed shifted gives the same losses, bit
    for bit: the harness leaves no random draw of the script unsynchronised."""
    recording = torch_recording(name)
    out = str(tmp_path / "replayed.npz")
    run_harness(["replay-torch", script_path(name), recording, out], str(tmp_path))
    want, got = Recording.load(recording), Recording.load(out)
    assert got.losses == want.losses
    assert got.metrics == want.metrics


# ----------------------------------------------------------------------------- both sides

@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_follows_torchs_loss_curve(name, torch_recording, tmp_path):
    torch_run, fast_run = run_both(script_path(name), str(tmp_path), torch_recording(name))
    want, got = torch_run.result, fast_run.result
    assert not got.imported_torch, "the fastgrad run imported torch"
    assert len(got.losses) == len(want.losses)
    np.testing.assert_allclose(got.losses, want.losses, rtol=1e-9, atol=0)
    assert sorted(got.metrics) == sorted(want.metrics)
    for key in want.metrics:
        np.testing.assert_allclose(got.metrics[key], want.metrics[key], rtol=1e-9, atol=0,
                                   err_msg=key)
