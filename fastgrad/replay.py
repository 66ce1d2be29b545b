"""Record once, replay in C: a scalar graph as a reusable program.

A micrograd training loop rebuilds the same graph every step from Python. ``record`` copies
the graph behind a Value once into a :class:`Program` of flat arrays; ``forward`` and
``backward`` then replay it in C with the leaves' new values, giving the same numbers as a
fresh build (bit for bit: the same rules, in the same order)::

    inputs = [list(map(Value, row)) for row in X]          # the leaves X streams into
    loss = build_loss(model, inputs, y)                     # any micrograd code, run once
    prog = fastgrad.record(loss, inputs=inputs, params=model.parameters())
    for k in range(steps):
        prog.forward(X_batch)      # writes X_batch into the inputs, recomputes every node
        prog.zero_grad()
        prog.backward()            # adds into p.grad for every parameter (and input)
        prog.sgd_step(lr)          # p.data -= lr * p.grad for every parameter, in C

What a program sees:

- **parameters** (``params=``, by default every leaf with a live Value that is not an input)
  are read from their current ``.data`` at each ``forward()``; ``backward()`` adds into their
  ``.grad`` what ``backward()`` of a freshly built graph would add. The program holds them
  (and the inputs) alive, so they cannot die under it.
- **inputs** (``inputs=``) are parameters whose values ``forward(X)`` first sets from an array
  of the recorded shape (one row per batch element in a batch of lists).
- **constants**: every other leaf (the numbers in ``x + 1``, ``-x``, ``x / 3``, and leaves
  whose Values were dropped before recording) is frozen at its recorded value.

What cannot be recorded: Python control flow on values (``if x.data > 0: ...``) is recorded
as it went when the graph was built; a batch size, a number of steps or anything else that
changes the graph's shape needs a new recording. Branches the tape sees (``relu``, ``max``,
``min``, ``abs``) replay correctly for any values. Graphs containing user-built nodes
(``Value(data, _children, _op)``) are refused: their values come from Python code.

Errors instead of wrong numbers: listing a Value that is not a leaf of the graph, or twice;
``forward(X)`` with X of another shape; ``backward()`` when a leaf's ``.data`` changed since
the last ``forward()`` (or after a ``forward()`` that raised); a leaf re-initialised with
children. ``forward`` raises the errors a fresh build raises (``log(0)``, ``exp`` overflow,
``0 ** -1``...).

Programs pickle (with their leaves: pickle a model and its program together and they share
the parameter Values again) and report their size (``nodes``, ``nbytes``).
"""

from typing import TYPE_CHECKING

from fastgrad.engine import ENGINE

# Type checkers see the compiled module's stubs (_replay.pyi).
if ENGINE != "compiled" and not TYPE_CHECKING:  # pragma: no cover - FASTGRAD_ENGINE=pure
    def record(output, inputs=None, params=None, outputs=None):
        """Needs the compiled engine (FASTGRAD_ENGINE=pure has no tape to record)."""
        raise RuntimeError("fastgrad.record replays the compiled engine's graphs; it is not "
                           "available with FASTGRAD_ENGINE=pure")

    def sgd_step(params, lr):
        """``p.data -= lr * p.grad`` for every parameter (a Python loop on this engine)."""
        for p in params:
            p.data -= lr * p.grad

    Program = None
else:
    from fastgrad._replay import Program, record, sgd_step

__all__ = ["Program", "record", "sgd_step"]
