"""Run a PyTorch script as written and under fastgrad (import lines rewritten), from the same
starting point, and collect both loss curves.

What the harness does, exactly:

1. **The rewrite touches import lines only.** ``rewrite_imports`` turns ``import torch`` into
   ``import fastgrad as torch`` and replaces a leading ``torch`` module path by ``fastgrad``
   in every other import line (``import torch.nn as nn`` -> ``import fastgrad.nn as nn``,
   ``from torch.utils.data import DataLoader`` -> ``from fastgrad.utils.data import
   DataLoader``). ``changed_lines`` lists what differs, and ``run_both`` refuses a rewrite that
   changed anything but import lines.
2. **Each run is a fresh interpreter**: ``python tests/_script_harness.py record|replay ...``.
   The script runs with ``runpy.run_path`` as ``__main__``; afterwards the harness reads two
   names from the script's namespace: ``losses`` (a list of floats, the loss of every step) and,
   if present, ``metrics`` (a dict of floats). The fastgrad run also reports whether ``torch``
   was ever imported in its interpreter (it must not be).
3. **Same weights and same random draws, without editing the script.** PyTorch and fastgrad
   have different random generators, so the harness patches, in both runs:

   - *Random functions called by the script itself* (``randn rand randint randperm normal
     multinomial rand_like randn_like randint_like bernoulli``, looked up on the top-level
     module): the torch run records each result; the fastgrad run calls fastgrad's real
     function with the same arguments (so dtype, shape, ``requires_grad`` and argument checking
     are fastgrad's own) and then overwrites the values with the recorded ones, in order,
     checking that the function name, shape and dtype match. Only calls made directly from a
     line of the script count; calls from library code (``nn.Linear``'s initialisation, a
     sampler) are neither recorded nor replayed.
   - *Shuffled DataLoaders*: ``DataLoader`` (the name the script imports) is replaced by a
     subclass that puts a hook between its ``BatchSampler`` and its ``RandomSampler``. In the
     torch run the hook records each epoch's index order; in the fastgrad run it lets
     fastgrad's RandomSampler draw its own order, checks that it permutes the same indices,
     and yields the torch run's order instead.
   - *Optimizers*: every optimizer class in ``torch.optim`` / ``fastgrad.optim`` is replaced by
     a subclass whose constructor first takes the parameters it was given: the torch run saves
     their values, the fastgrad run copies the saved values into its parameters (same count,
     shapes and dtypes required), in creation order. The optimizer is built after the model,
     so modules' random initialisation is overwritten before the first step.

   At the end of the fastgrad run every recorded draw, epoch order and parameter snapshot must
   have been used exactly once. The same replay into torch itself, with every seed the script
   sets shifted (``replay-torch``), must give the recorded losses bit for bit: the check that
   the replay covers all of a script's randomness.

Nothing else is changed or synchronised: batching and collation, forward, loss, backward and
the optimizer's arithmetic are each library's own. The harness relies on PyTorch's public
names that fastgrad shares (``DataLoader.sampler``/``batch_sampler``, ``BatchSampler.sampler``,
``RandomSampler``, ``optim.Optimizer``, ``from_numpy``, ``no_grad``, ``Tensor.copy_``).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

import numpy as np

RANDOM_FUNCTIONS = ("randn", "rand", "randint", "randperm", "normal", "multinomial",
                    "rand_like", "randn_like", "randint_like", "bernoulli")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# ----------------------------------------------------------------------------- the rewrite

_IMPORT = re.compile(r"^(\s*)import\s+(.+?)\s*(#.*)?$")
_FROM = re.compile(r"^(\s*)from\s+(torch)((?:\.\w+)*)(\s+import\b.*)$")


def _rewrite_import_clause(clause: str) -> str:
    """One ``module [as name]`` clause of an ``import`` statement."""
    parts = clause.split()
    module = parts[0]
    if module != "torch" and not module.startswith("torch."):
        return clause
    if len(parts) == 1:
        if module != "torch":
            # `import torch.nn` binds the name `torch`: no single import of fastgrad does that.
            raise ValueError(f"cannot rewrite {clause!r} without an alias")
        return "fastgrad as torch"
    return "fastgrad" + module[len("torch"):] + " " + " ".join(parts[1:])


def rewrite_imports(source: str) -> str:
    """The script with its torch imports pointed at fastgrad; no other line changes.

    >>> print(rewrite_imports("import torch\\nimport torch.nn as nn\\nx = torch.zeros(2)"))
    import fastgrad as torch
    import fastgrad.nn as nn
    x = torch.zeros(2)
    >>> rewrite_imports("from torch.utils.data import DataLoader  # batches")
    'from fastgrad.utils.data import DataLoader  # batches'
    >>> rewrite_imports("import numpy as np, torch")
    'import numpy as np, fastgrad as torch'
    """
    out = []
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        end = line[len(body):]
        m = _FROM.match(body)
        if m:
            body = f"{m.group(1)}from fastgrad{m.group(3)}{m.group(4)}"
        else:
            m = _IMPORT.match(body)
            if m and not body.lstrip().startswith("importlib"):
                indent, clauses, comment = m.group(1), m.group(2), m.group(3)
                new = ", ".join(_rewrite_import_clause(c.strip()) for c in clauses.split(","))
                if new != ", ".join(c.strip() for c in clauses.split(",")):
                    body = f"{indent}import {new}" + (f"  {comment}" if comment else "")
        out.append(body + end)
    return "".join(out)


def is_import_line(line: str) -> bool:
    """A line that is an import statement (``import x`` or ``from x import y``).

    >>> is_import_line("from torch import nn"), is_import_line("x = 1  # import torch")
    (True, False)
    """
    return re.match(r"^\s*(import\s|from\s+\S+\s+import\b)", line) is not None


def changed_lines(original: str, rewritten: str) -> list[tuple[int, str, str]]:
    """(line number, original, rewritten) for every line that differs."""
    a, b = original.splitlines(), rewritten.splitlines()
    if len(a) != len(b):
        raise AssertionError(f"the rewrite changed the number of lines: {len(a)} -> {len(b)}")
    return [(i + 1, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y]


# ----------------------------------------------------------------------------- patching


def _called_by_script(frame: FrameType | None, script: str) -> bool:
    """Whether a patched random function was called from a line of the script itself (not
    from library code such as a module's initialisation or a DataLoader's sampler)."""
    return frame is not None and os.path.abspath(frame.f_code.co_filename) == script


def _optimizer_params(params: Any) -> tuple[Any, list[Any]]:
    """The optimizer's argument with generators materialised, and its tensors in order."""
    params = list(params)
    tensors = []
    for item in params:
        if isinstance(item, dict):
            item["params"] = list(item["params"])
            tensors.extend(item["params"])
        else:
            tensors.append(item)
    return params, tensors


@dataclass
class Recording:
    """What the torch run saw: random draws of the script, shuffled epoch orders, parameters
    given to each optimizer; then the script's losses and metrics."""
    draws: list[tuple[str, np.ndarray]] = field(default_factory=list)
    epochs: list[np.ndarray] = field(default_factory=list)
    optimizers: list[list[np.ndarray]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    imported_torch: bool = True

    def save(self, path: str) -> None:
        arrays: dict[str, np.ndarray] = {}
        for i, (_, a) in enumerate(self.draws):
            arrays[f"draw{i}"] = a
        for i, a in enumerate(self.epochs):
            arrays[f"epoch{i}"] = a
        for i, ps in enumerate(self.optimizers):
            for j, a in enumerate(ps):
                arrays[f"opt{i}_{j}"] = a
        manifest = {"draws": [n for n, _ in self.draws], "epochs": len(self.epochs),
                    "optimizers": [len(ps) for ps in self.optimizers], "losses": self.losses,
                    "metrics": self.metrics, "imported_torch": self.imported_torch}
        arrays["manifest"] = np.array(json.dumps(manifest))
        np.savez(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str) -> Recording:
        with np.load(path, allow_pickle=False) as z:
            m = json.loads(str(z["manifest"]))
            return cls(draws=[(n, z[f"draw{i}"]) for i, n in enumerate(m["draws"])],
                       epochs=[z[f"epoch{i}"] for i in range(m["epochs"])],
                       optimizers=[[z[f"opt{i}_{j}"] for j in range(k)]
                                   for i, k in enumerate(m["optimizers"])],
                       losses=m["losses"], metrics=m["metrics"],
                       imported_torch=m["imported_torch"])


class _Patcher:
    """The random-function wrappers shared by both runs; subclasses say what a draw does."""

    def __init__(self, module: Any, script: str) -> None:
        self.module, self.script = module, script

    def install(self) -> None:
        """Wrap the random functions where the script looks them up: on the top-level module
        (``torch.randn``)."""
        for name in RANDOM_FUNCTIONS:
            original = getattr(self.module, name, None)
            if original is not None:
                setattr(self.module, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            return self.draw(name, out) if _called_by_script(sys._getframe(1), self.script) \
                else out
        wrapper.__name__ = name
        wrapper.__doc__ = original.__doc__
        return wrapper

    def draw(self, name: str, out: Any) -> Any:
        """Record or replace the result of the script's call of a random function."""
        raise NotImplementedError


class _TorchRecorder(_Patcher):
    def __init__(self, script: str, rec: Recording) -> None:
        import torch
        super().__init__(torch, script)
        self.rec = rec

    def draw(self, name: str, out: Any) -> Any:
        self.rec.draws.append((name, out.detach().numpy().copy()))
        return out

    def install(self) -> None:
        import torch
        import torch.utils.data
        super().install()
        rec = self.rec

        def record_epoch(order: list[int]) -> list[int]:
            rec.epochs.append(np.array(order, dtype=np.int64))
            return order
        _replace_data_loader(torch.utils.data, record_epoch)
        _replace_optimizers(torch.optim, lambda ps: rec.optimizers.append(
            [p.detach().numpy().copy() for p in ps]))


class _Replayer(_Patcher):
    """Replays a torch run's recording into fastgrad (or, for the harness's own check, into
    torch with other seeds)."""

    def __init__(self, library: str, script: str, rec: Recording) -> None:
        self.lib = importlib.import_module(library)
        super().__init__(self.lib, script)
        self.rec = rec
        self.draws = list(rec.draws)
        self.epochs = list(rec.epochs)
        self.optimizers = list(rec.optimizers)

    def _overwrite(self, tensor: Any, values: np.ndarray, what: str) -> None:
        got = tensor.detach().numpy()
        if got.shape != values.shape or got.dtype != values.dtype:
            raise AssertionError(f"harness: {what} is {got.dtype}{list(got.shape)} under "
                                 f"{self.lib.__name__} but {values.dtype}{list(values.shape)} "
                                 "under torch")
        with self.lib.no_grad():
            tensor.copy_(self.lib.from_numpy(values.copy()))

    def draw(self, name: str, out: Any) -> Any:
        if not self.draws:
            raise AssertionError(f"harness: the script drew {name} more often under "
                                 f"{self.lib.__name__} than under torch")
        want, values = self.draws.pop(0)
        if want != name:
            raise AssertionError(f"harness: the script called {name} where torch's run "
                                 f"called {want}")
        self._overwrite(out, values, f"{name}'s result")
        return out

    def next_epoch(self, order: list[int]) -> list[int]:
        """The torch run's next epoch order, in place of the replaying library's own."""
        if not self.epochs:
            raise AssertionError(f"harness: {self.lib.__name__}'s DataLoaders started more "
                                 "shuffled epochs than torch's")
        want = self.epochs.pop(0)
        if sorted(order) != sorted(want.tolist()):
            raise AssertionError(f"harness: {self.lib.__name__}'s RandomSampler shuffled "
                                 f"other indices ({len(order)}) than torch's ({len(want)})")
        return want.tolist()

    def install(self) -> None:
        name = self.lib.__name__
        optim = importlib.import_module(name + ".optim")
        super().install()
        _replace_data_loader(importlib.import_module(name + ".utils.data"), self.next_epoch)

        def restore(params: list[Any]) -> None:
            if not self.optimizers:
                raise AssertionError(f"harness: more optimizers under {self.lib.__name__} "
                                     "than under torch")
            saved = self.optimizers.pop(0)
            if len(saved) != len(params):
                raise AssertionError(f"harness: optimizer got {len(params)} parameters under "
                                     f"{self.lib.__name__}, {len(saved)} under torch")
            for i, (p, values) in enumerate(zip(params, saved)):
                self._overwrite(p, values, f"optimizer parameter {i}")
        _replace_optimizers(optim, restore)

    def check_all_used(self) -> None:
        left = {"random draws": len(self.draws), "epoch orders": len(self.epochs),
                "optimizers": len(self.optimizers)}
        unused = {k: v for k, v in left.items() if v}
        if unused:
            raise AssertionError(f"harness: recorded but never replayed under "
                                 f"{self.lib.__name__}: {unused}")


class _EpochHook:
    """Stands in for a DataLoader's RandomSampler: draws the sampler's whole order for an
    epoch, lets on_epoch see it (and replace it), then yields it."""

    def __init__(self, sampler: Any, on_epoch: Callable[[list[int]], list[int]]) -> None:
        self.sampler, self.on_epoch = sampler, on_epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[int]:
        return iter(self.on_epoch(list(self.sampler)))


def _replace_data_loader(data: ModuleType,
                         on_epoch: Callable[[list[int]], list[int]]) -> None:
    """Swap ``data.DataLoader`` (the name a script imports) for a subclass whose shuffled
    batches go through on_epoch. Uses PyTorch's public attributes: ``loader.sampler``,
    ``loader.batch_sampler`` and ``batch_sampler.sampler``."""
    base = data.DataLoader

    class DataLoader(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if isinstance(self.sampler, data.RandomSampler):
                if self.batch_sampler is None:
                    raise NotImplementedError("harness: shuffle with batch_size=None")
                self.batch_sampler.sampler = _EpochHook(self.batch_sampler.sampler, on_epoch)

    DataLoader.__qualname__ = base.__qualname__
    DataLoader.__module__ = base.__module__
    setattr(data, "DataLoader", DataLoader)


def _replace_optimizers(optim: ModuleType, on_params: Callable[[list[Any]], None]) -> None:
    """Swap each optimizer class of `optim` for a subclass that shows its parameters to
    on_params before the optimizer sees them."""
    base = optim.Optimizer
    for name, cls in list(vars(optim).items()):
        if not (isinstance(cls, type) and issubclass(cls, base) and cls is not base):
            continue

        sub = type(name, (cls,), {"__module__": cls.__module__,
                                  "__qualname__": cls.__qualname__})
        sub.__init__ = _bind_init(sub, on_params)  # type: ignore[misc]
        setattr(optim, name, sub)  # what `optim.SGD` and `from torch.optim import SGD` find


def _bind_init(sub: type, on_params: Callable[[list[Any]], None]) -> Callable[..., None]:
    """sub's constructor: on_params sees the parameters, then the optimizer is built."""
    def __init__(self: Any, params: Any, *args: Any, **kwargs: Any) -> None:
        params, tensors = _optimizer_params(params)
        on_params(tensors)
        super(sub, self).__init__(params, *args, **kwargs)  # type: ignore[arg-type]
    return __init__


# ----------------------------------------------------------------------------- running


def _run_script(path: str) -> dict[str, Any]:
    sys.argv = [path]
    return runpy.run_path(path, run_name="__main__")


def _collect(namespace: dict[str, Any], rec: Recording) -> None:
    losses = namespace.get("losses")
    if not isinstance(losses, list) or not losses:
        raise AssertionError("harness: the script has no non-empty `losses` list")
    rec.losses = [float(x) for x in losses]
    rec.metrics = {k: float(v) for k, v in dict(namespace.get("metrics", {})).items()}


def record(script: str, out: str) -> None:
    """Run script under torch, recording its draws, epoch orders and optimizer parameters."""
    script = os.path.abspath(script)
    rec = Recording()
    _TorchRecorder(script, rec).install()
    _collect(_run_script(script), rec)
    rec.save(out)


def replay(script: str, recording: str, out: str, library: str = "fastgrad") -> None:
    """Run the (rewritten) script under `library`, replaying a torch run's recording."""
    script = os.path.abspath(script)
    rec = Recording.load(recording)
    replayer = _Replayer(library, script, rec)
    replayer.install()
    result = Recording()
    _collect(_run_script(script), result)
    replayer.check_all_used()
    result.imported_torch = "torch" in sys.modules
    result.save(out)


def replay_into_torch_with_other_seeds(script: str, recording: str, out: str) -> None:
    """The harness's own check: the unchanged script under torch, with every seed the script
    sets shifted by one (``torch.manual_seed`` and ``torch.Generator().manual_seed``), while
    the recording is replayed. If the replay covers all of the script's randomness, the losses
    equal the recorded ones exactly; without the replay they would not."""
    import torch

    class ShiftedGenerator(torch.Generator):
        def manual_seed(self, seed: int) -> ShiftedGenerator:
            return super().manual_seed(seed + 1)  # type: ignore[return-value]

    seed = torch.manual_seed
    torch.manual_seed = lambda s: seed(s + 1)  # type: ignore[assignment]
    torch.Generator = ShiftedGenerator  # type: ignore[misc]
    replay(script, recording, out, library="torch")


@dataclass
class Run:
    """One run's outcome: the recording (losses, metrics) and the script's printed output."""
    result: Recording
    stdout: str


def run_harness(args: list[str], cwd: str) -> str:
    """``python tests/_script_harness.py ARGS`` in cwd, with this source tree first on the
    path; its stdout (the script's output). Raises AssertionError with its stderr if it fails."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"harness {args[0]} of {args[1]} failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


def run_both(script: str, workdir: str | None = None,
             recording: str | None = None) -> tuple[Run, Run]:
    """The script under torch (recording; or an earlier recording of it), then rewritten under
    fastgrad (replaying)."""
    with open(script, encoding="utf-8") as f:
        source = f.read()
    rewritten = rewrite_imports(source)
    changes = changed_lines(source, rewritten)
    bad = [c for c in changes if not (is_import_line(c[1]) and is_import_line(c[2]))]
    if bad:
        raise AssertionError(f"the rewrite changed lines that are not imports: {bad}")
    if not changes:
        raise AssertionError(f"{script} imports nothing from torch")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        ported = os.path.join(tmp, os.path.basename(script))
        with open(ported, "w", encoding="utf-8") as f:
            f.write(rewritten)
        torch_out = ""
        if recording is None:
            recording = os.path.join(tmp, "torch.npz")
            torch_out = run_harness(["record", script, recording], tmp)
        fast_out = run_harness(["replay", ported, recording, os.path.join(tmp, "fastgrad.npz")],
                               tmp)
        return (Run(Recording.load(recording), torch_out),
                Run(Recording.load(os.path.join(tmp, "fastgrad.npz")), fast_out))


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "replay":
        replay(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "replay-torch":
        replay_into_torch_with_other_seeds(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: _script_harness.py record|replay|replay-torch SCRIPT [RECORDING.npz] "
                 "OUT.npz")
