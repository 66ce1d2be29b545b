"""Importing: the compiled core or a clear error; the explicit switch to the reference engine."""

import os
import subprocess
import sys

import fastgrad


def python(code, **env):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_missing_extension_fails_with_build_instructions():
    code = "import sys; sys.modules['fastgrad._scalar.value'] = None; import fastgrad"
    rc, _, err = python(code, FASTGRAD_ENGINE="compiled")
    assert rc != 0
    assert "ImportError: fastgrad's compiled core" in err
    assert "pip install ." in err and "FASTGRAD_ENGINE=pure" in err


def test_missing_optimizer_kernels_fail_with_build_instructions():
    code = "import sys; sys.modules['fastgrad.optim._kernels'] = None; import fastgrad"
    rc, _, err = python(code)
    assert rc != 0
    assert "compiled optimizer kernels" in err and "pip install ." in err


def test_pure_engine_is_selected_explicitly():
    rc, out, err = python("import fastgrad; print(fastgrad.Value.__module__)", FASTGRAD_ENGINE="pure")
    assert rc == 0, err
    assert out.strip() == "fastgrad._scalar.reference"


def test_unknown_engine_name_is_an_error():
    rc, _, err = python("import fastgrad", FASTGRAD_ENGINE="turbo")
    assert rc != 0 and "FASTGRAD_ENGINE must be" in err


def test_public_names():
    assert fastgrad.__version__.count(".") == 2
    from fastgrad.engine import Value
    from fastgrad.nn import MLP, Layer, Module, Neuron  # noqa: F401
    assert fastgrad.Value is Value
