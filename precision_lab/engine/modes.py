"""Execution modes: how a form's kernel is run over a batch of points.

A mode is one object: its name (the row field ``mode``), its help text, how it
turns a kernel into a batched program, and the XLA flags the process must have
been started with. Registering a mode is all it takes for ``--mode`` to offer it,
for ``--compare-modes`` to compare it with ``jit``, and for the tables to show it.

* ``jit`` (the default): ``jax.jit(jax.vmap(kernel))``, the program a user compiles;
* ``eager``: each primitive dispatched alone through XLA, every intermediate rounded
  to the format: what the code means on paper;
* ``strict``: jit in a process started with ``XLA_FLAGS=--xla_allow_excess_precision=false``
  (XLA reads its flags once per process, so the command line re-runs itself in a
  child process with them, and the API refuses strict without them).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax

from ..errors import InputError
from . import executables

STRICT_FLAG = "--xla_allow_excess_precision=false"


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    help: str
    flags: str = ""  # XLA_FLAGS the process must start with ("" for none)
    eager: bool = False  # dispatch operation by operation instead of compiling
    # how a kernel becomes a program over a batch, kernel -> program; None:
    # jax.jit(jax.vmap(kernel)), or vmap op by op when eager
    compile: Callable[[Callable], Callable] | None = dataclasses.field(default=None, compare=False)

    def program(self, kernel: Callable) -> Callable:
        """`kernel(inputs, label)` over a batch of points, each with its own label (as a
        batch of examples and their labels is passed; see `programs.labels`)."""
        if self.compile is not None:
            return self.compile(kernel)
        batched = jax.vmap(kernel)
        if not self.eager:
            return executables.jit(batched)

        def eager(x, label):
            with jax.disable_jit():
                return batched(x, label)

        return eager

    @property
    def in_process(self) -> bool:
        """Whether this process can run the mode (its XLA flags are set)."""
        return not self.flags or all(f in os.environ.get("XLA_FLAGS", "").split() for f in self.flags.split())

    def child_env(self) -> dict:
        """The environment of a process that can run the mode."""
        flags = " ".join(f for f in self.flags.split() if f not in os.environ.get("XLA_FLAGS", "").split())
        return dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())


MODES: dict[str, Mode] = {}


def register(mode: Mode) -> Mode:
    """Add `mode` to the modes every command offers."""
    MODES[mode.name] = mode
    return mode


def get(mode: str | Mode) -> Mode:
    """The mode called `mode` (a Mode is returned as it is), if this process can run
    it; one sentence otherwise."""
    if isinstance(mode, Mode):
        found = mode
    elif mode in MODES:
        found = MODES[mode]
    else:
        raise InputError(f"Unknown mode `{mode}`; choose one of {', '.join(MODES)}.")
    if not found.in_process:
        raise InputError(f"Mode `{found.name}` needs XLA_FLAGS={found.flags} set before the process starts "
                         "(the command line starts such a process itself).")
    return found


JIT = register(Mode("jit", "each form alone under jax.jit(jax.vmap), the default"))
EAGER = register(Mode("eager", "operation by operation, each result rounded to the format", eager=True))
STRICT = register(Mode("strict", f"jit with XLA_FLAGS={STRICT_FLAG}, in a process of its own", flags=STRICT_FLAG))
DEFAULT = JIT
