"""Resumable sweeps: a file holding a long sweep's state, saved every few seconds.

The file holds the sweep's arguments (its fingerprint), the rows of every finished
pass (one format and target of a family) and the state of the pass in progress
(what the engine has absorbed so far: counts, run trackers, profiles, and where the
next call starts). It is written atomically (a temporary file in the same folder,
then a rename), so an interrupt leaves the previous save whole. A sweep given the
same arguments and file skips the finished passes and continues the one in progress;
the engine absorbs calls in the axis's order, so the result is the one an
uninterrupted sweep gives. The file is removed when the sweep finishes.

The state is a pickle: read a checkpoint only from a file you wrote yourself.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from collections.abc import Callable

from ..errors import InputError

SAVE_EVERY_S = 5.0  # seconds between saves of a pass in progress
VERSION = 3  # 2: a pass in progress is a passes.RunState; 3: with negligible zeros counted apart


class Checkpoint:
    """The saved state of one sweep, at `path`, for the arguments `fingerprint`."""

    def __init__(self, path: str, fingerprint: dict, every_s: float | None = None):
        self.path, self.fingerprint = os.path.abspath(path), fingerprint
        self.every_s = SAVE_EVERY_S if every_s is None else every_s
        self.done: dict[str, list] = {}
        self.partial: tuple[str, dict] | None = None
        self.last_save = time.monotonic()
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise InputError(f"Cannot write the checkpoint {path}: folder {folder} does not exist.")
        if os.path.exists(self.path):
            try:
                with open(self.path, "rb") as f:
                    saved = pickle.load(f)
            except Exception:
                raise InputError(f"{path} is not a precision-lab checkpoint (it cannot be read); "
                                 "give another path or delete it.") from None
            if not isinstance(saved, dict) or saved.get("version") != VERSION:
                raise InputError(f"{path} is not a checkpoint of this precision-lab version; delete it to start over.")
            if saved["fingerprint"] != fingerprint:
                differ = sorted(k for k in set(saved["fingerprint"]) | set(fingerprint)
                                if saved["fingerprint"].get(k) != fingerprint.get(k))
                raise InputError(f"{path} belongs to another sweep (it differs in {', '.join(differ)}); "
                                 "rerun that sweep's command, or delete the file to start over.")
            self.done, self.partial = saved["done"], saved["partial"]

    def rows(self, key: str) -> list | None:
        """The rows of a pass finished before, or None."""
        return self.done.get(key)

    def resume(self, key: str) -> dict | None:
        """The engine's saved state (a RunState) of pass `key`, if it was the one in progress."""
        return self.partial[1] if self.partial and self.partial[0] == key else None

    def saver(self, key: str) -> Callable[[Callable[[], dict]], None]:
        """What the engine calls after each absorbed call of pass `key`: saves its
        state when SAVE_EVERY_S have passed since the last save."""

        def save(state: Callable[[], dict]) -> None:
            if time.monotonic() - self.last_save >= self.every_s:
                self.partial = (key, state())
                self._write()

        return save

    def finish(self, key: str, rows: list) -> None:
        """Record a finished pass's rows (saved with the next save, or now if due)."""
        self.done[key] = rows
        self.partial = None
        if time.monotonic() - self.last_save >= self.every_s:
            self._write()

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)

    def _write(self) -> None:
        data = pickle.dumps({"version": VERSION, "fingerprint": self.fingerprint, "done": self.done,
                             "partial": self.partial}, protocol=pickle.HIGHEST_PROTOCOL)
        write_bytes(self.path, data, ".checkpoint-")
        self.last_save = time.monotonic()


def write_bytes(path: str, data: bytes, prefix: str, sync: bool = True) -> None:
    """`data` written whole to `path` or not at all: to a temporary file beside it
    (`prefix` names it), synced (unless `sync` is False: a file whose reader checks it
    and can make it again, which a crash may leave damaged but never half-named),
    then renamed into place; removed if anything fails."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
