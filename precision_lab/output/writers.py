"""Writers of results: each one a function over one shared atomic write.

A writer is registered with its name: the command line then takes ``--NAME PATH``
for `sweep` and `check` (``-`` for stdout), checks the path before any work, and
writes the result there once the run ends. Every writer goes through `write_atomic`
(a temporary file in the same folder, then a rename, with the permissions a new
file gets), so an interrupted command leaves no partial file. JSON (the schema
``precision_lab.sweep/2``) is registered here, CSV in `csv_writer`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from typing import IO

import numpy as np

from .. import interrupts
from ..errors import InputError


@dataclasses.dataclass(frozen=True)
class Writer:
    name: str  # the option is --NAME PATH
    help: str
    write: Callable[[dict, IO[str]], None]  # (the result's JSON document, a text stream)


WRITERS: dict[str, Writer] = {}


def register(writer: Writer) -> Writer:
    WRITERS[writer.name] = writer
    return writer


def check_path(path: str, what: str = "JSON") -> None:
    """One sentence, before any work, if a file cannot be written to `path`: its
    folder is probed by creating (and removing) a file there."""
    if path == "-":
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"Cannot write {what} to `{path}`: it is a directory.")
    if os.path.exists(path) and not (os.access(path, os.W_OK) and os.stat(path).st_mode & 0o222):
        raise InputError(f"Cannot write {what} to `{path}`: the file is read-only.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".precision_lab-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise InputError(f"Cannot write {what} to `{path}`: its folder does not exist or is not writable.") from None


def write_atomic(path: str, write: Callable[[IO[str]], None], what: str = "JSON") -> None:
    """Call `write(stream)` on a temporary file beside `path`, then rename it into
    place (or on stdout for `-`)."""
    if path == "-":
        write(sys.stdout)
        return
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".precision_lab-", suffix=os.path.splitext(path)[1], dir=parent)
    except OSError as e:
        raise InputError(f"Cannot write {what} to `{path}`: {e.strerror or e}.") from None
    interrupts.own(tmp)  # an interrupted command removes it, and the file once it is in place
    try:
        with os.fdopen(fd, "w", newline="") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        interrupts.check()
        interrupts.own(path)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise InputError(f"Cannot write {what} to `{path}`: {e.strerror or e}.") from None
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        interrupts.disown(tmp)


def jsonable(value):
    """`value` as the schema writes it: non-finite numbers as the strings "nan", "inf"
    and "-inf" (JSON has no such numbers), NumPy scalars and arrays as Python
    numbers and lists, tuples as lists; dicts and lists element by element."""
    t = type(value)  # the plain types first: a row holds hundreds of thousands of them
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if value - value == 0 else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
    if t is dict:
        return {k if type(k) is str else str(k): jsonable(v) for k, v in value.items()}
    if t is list:
        return [jsonable(v) for v in value]
    if hasattr(value, "to_json"):
        value = value.to_json()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
    return value


def _json(doc: dict, stream: IO[str]) -> None:
    json.dump(jsonable(doc), stream, indent=1, allow_nan=False)
    stream.write("\n")


def write_json(doc: dict, path: str) -> None:
    """Write `doc` to `path` atomically (or to stdout for `-`); non-finite numbers
    anywhere in it are written as the schema's strings (`jsonable`)."""
    write_atomic(path, lambda f: _json(doc, f))


JSON = register(Writer("json", "also write the results as JSON to PATH (atomically; - for stdout)", _json))
