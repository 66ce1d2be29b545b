"""Run test code that might crash the interpreter in a child process.

A segfault, an abort or a sanitizer report in the tests' own process would end the whole test
run without saying which test did it; in a child it fails one test, with the signal's name and
the end of the child's stderr (where faulthandler's traceback and a sanitizer's report go).

    from crashsafe import run_isolated
    proc = run_isolated("import fastgrad; print(fastgrad.Value(2.0) * 3)")
    assert proc.returncode == 0 and proc.stdout == "Value(data=6.0, grad=0.0)\\n"

The child is ``sys.executable -X dev -c code``, with the environment of the tests
(FASTGRAD_ENGINE, and under .ci/sanitize LD_PRELOAD and the sanitizer options) and the
directory holding the ``fastgrad`` package the tests import first on PYTHONPATH: the repository
root in a source tree, site-packages for an installed wheel, so the child runs the same build.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import fastgrad

__all__ = ["ChildCrashed", "PACKAGE_ROOT", "crashed", "describe_exit", "run_isolated"]

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastgrad.__file__)))

# What sanitizers print when they stop a process without a signal (abort_on_error=0, the default).
_SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: ")


class ChildCrashed(AssertionError):
    """The child died by a signal, or a sanitizer reported an error in it. ``proc`` is its
    CompletedProcess (``returncode`` is minus the signal's number after a signal)."""

    def __init__(self, message: str, proc: subprocess.CompletedProcess):
        super().__init__(message)
        self.proc = proc


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def crashed(returncode: int) -> bool:
    """Whether a child's return code means it crashed: killed by a signal (POSIX), or ended
    by an NTSTATUS error such as 0xC0000005, an access violation (Windows)."""
    return returncode < 0 or (os.name == "nt" and returncode >= 0xC0000000)


def describe_exit(returncode: int) -> str:
    """'SIGSEGV (signal 11)' for a negative return code, 'exit status N' otherwise."""
    if os.name == "nt" and returncode >= 0xC0000000:
        return f"Windows error 0x{returncode:08X}"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"{name} (signal {-returncode})"
    return f"exit status {returncode}"


def run_isolated(code: str, timeout: float = 120, env: dict[str, str] | None = None,
                 check_crash: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented first) in a fresh interpreter; return its CompletedProcess
    (text stdout and stderr).

    Raises ChildCrashed (an AssertionError, so the test fails) if the child died by a signal
    or a sanitizer reported an error, unless ``check_crash`` is false; raises AssertionError
    if it runs longer than ``timeout`` seconds (it is killed). Any other exit is returned as is:
    the caller checks ``returncode`` and the output. ``env`` adds to the tests' environment.
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(
        [PACKAGE_ROOT] + [p for p in child_env.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        proc = subprocess.run([sys.executable, "-X", "dev", "-c", textwrap.dedent(code)],
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=child_env)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        raise AssertionError(f"the child ran longer than {timeout} s and was killed; "
                             f"its last output:\n{_tail(out or '')}") from None
    if check_crash:
        sanitized = any(mark in proc.stderr for mark in _SANITIZER_MARKS)
        if crashed(proc.returncode) or sanitized:
            what = describe_exit(proc.returncode)
            raise ChildCrashed(
                f"the child crashed: {what}{', sanitizer report' if sanitized else ''}\n"
                f"--- its stdout (end) ---\n{_tail(proc.stdout, 10)}\n"
                f"--- its stderr (end) ---\n{_tail(proc.stderr)}", proc)
    return proc
