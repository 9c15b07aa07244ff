"""The `precision-lab` command's entry point (also `python -m precision_lab`).

Ctrl-C handling (`interrupts`) is installed first, before the command line and JAX
are imported, so that an interrupt at any moment, during the import included, ends
the command with exit status 130 and one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import interrupts


def main(argv: Sequence[str] | None = None) -> int:
    interrupts.install()
    try:
        interrupts.check()
        from .cli import main as command

        interrupts.check()
        code = command(argv)
    except KeyboardInterrupt:  # raised at a safe point before the command could handle it
        interrupts.leave()
    if interrupts.requested():  # pressed after the last safe point: the outputs go all the same
        interrupts.leave()
    return code
