"""Ctrl-C in the command: a request to stop, honoured where it is safe.

Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread is,
which can be inside a callback of JAX's runtime (where it is printed as "Exception
ignored" and the sweep runs on) or in the middle of a runtime call (and tearing the
runtime down from there can crash the process). The command's handler (`install`,
called by `entry` before JAX is imported) only records the request. The sweep's
progress callback, between two calls, calls `check()`, which raises KeyboardInterrupt
there; the command then leaves through `leave`: any output file this process wrote is
removed, one sentence goes to stderr, and the process ends with os._exit(130), without
tearing the runtime down. When the main thread reaches no such point within GRACE_S
seconds (an import, a long compilation, a long exact tier), or at a second Ctrl-C, a
watcher thread leaves the same way. It is woken through `signal.set_wakeup_fd`, which
the interpreter writes to even while the main thread is inside a C call.

Without `install` (the Python API, `cli.main` called in a program), nothing here acts:
`check()` never raises and Ctrl-C is Python's KeyboardInterrupt.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

EXIT = 130
GRACE_S = 2.0  # seconds the main thread has to reach a safe point after Ctrl-C
NOTHING_WRITTEN = "interrupted; nothing was written."

_installed = False
_requested = False
_message = NOTHING_WRITTEN  # or a function that gives the sentence
_outputs: set[str] = set()
_leaving = threading.Lock()  # taken once, by whichever thread ends the process


def install() -> None:
    """Record Ctrl-C instead of raising it, and start the watcher (main thread only)."""
    global _installed
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.signal(signal.SIGINT, _record)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r,), name="precision-lab-interrupt", daemon=True).start()
    _installed = True


def _record(signum, frame) -> None:
    global _requested
    _requested = True


def _watch(fd: int) -> None:
    global _requested
    seen = 0
    while True:
        for byte in os.read(fd, 64):
            if byte != signal.SIGINT:
                continue
            seen += 1
            _requested = True
            if seen == 1:
                timer = threading.Timer(GRACE_S, leave)
                timer.daemon = True
                timer.start()
            else:
                leave()


def installed() -> bool:
    return _installed


def requested() -> bool:
    return _requested


def check() -> None:
    """A safe point: stop here (KeyboardInterrupt) if Ctrl-C was pressed."""
    if _requested:
        raise KeyboardInterrupt


def set_message(sentence) -> None:
    """What the command says when it is interrupted (e.g. how to resume): a sentence,
    or a function that gives it at that moment."""
    global _message
    _message = sentence


def own(path: str) -> None:
    """`path` is an output of this command: an interrupt removes it."""
    if _installed:
        _outputs.add(os.path.abspath(path))


def disown(path: str) -> None:
    _outputs.discard(os.path.abspath(path))


def leave(sentence: str | None = None, status: int = EXIT) -> None:
    """End the interrupted command: remove its outputs, say `sentence` (default: the
    message set for it) on stderr, exit with `status` (130). Never returns; a second
    caller waits."""
    _leaving.acquire()
    for path in list(_outputs):
        try:
            os.remove(path)
        except OSError:
            pass
    if threading.current_thread() is threading.main_thread():  # elsewhere it may be mid-write
        try:
            sys.stdout.flush()
        except Exception:  # a closed or broken stdout: nothing more to say there
            pass
    said = sentence or (_message() if callable(_message) else _message)
    os.write(2, f"precision-lab: {said}\n".encode())
    os._exit(status)
