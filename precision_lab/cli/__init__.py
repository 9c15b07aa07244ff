"""The `precision-lab` command: a thin shell over the Python API.

`parser` defines every option once, from the registries of families, modes and
writers; `commands` runs them; `running` holds what a long run needs (progress,
the time limit, Ctrl-C, processes of their own, gates); `listing` and `drawing`
print what is known and draw figures.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import interrupts
from ..errors import InputError
from . import commands, drawing, listing
from .parser import UsageError, build_parser
from .running import Interrupted, keep_freed_memory, use_compilation_cache

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
COMMANDS = {"sweep": commands.sweep, "check": commands.check, "explain": lambda a, v: commands.explain(a),
            "table": lambda a, v: commands.table(a), "diff": lambda a, v: commands.diff(a),
            "list": lambda a, v: listing.list_all(), "figures": lambda a, v: drawing.figures(a),
            "policy": lambda a, v: commands.policy(a)}


def _joined(argv: list[str]) -> list[str]:
    """`--range -20,20` as `--range=-20,20` (argparse reads a leading minus as an option)."""
    out, it = [], iter(argv)
    for a in it:
        out.append(a)
        if a == "--range":
            nxt = next(it, None)
            if nxt is not None:
                out[-1] = f"--range={nxt}"
    return out


def _interrupted(sentence: str) -> int:
    """Ctrl-C: one sentence and exit status 130; under the command's own handling
    (`entry`), through `interrupts.leave`, which also removes what was written."""
    if interrupts.requested():
        interrupts.leave(sentence)
    print(f"precision-lab: {sentence}", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    use_compilation_cache()
    keep_freed_memory()
    try:
        args = build_parser().parse_args(_joined(argv))
        if args.command not in COMMANDS:
            names = list(COMMANDS)
            raise UsageError(f"Give a command: {', '.join(names[:-1])} or {names[-1]} (see precision-lab --help).")
        return COMMANDS[args.command](args, argv)
    except (UsageError, InputError) as e:
        print(f"precision-lab: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as e:
        return _interrupted(str(e))
    except KeyboardInterrupt:
        return _interrupted(interrupts.NOTHING_WRITTEN)
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
