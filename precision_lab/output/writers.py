"""Writers of results, apart from the command line: JSON, atomically."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile

import numpy as np

from .. import interrupts
from ..errors import InputError


def check_json_path(path: str) -> None:
    """One sentence, before any work, if the JSON cannot be written to `path`: its
    folder is probed by creating (and removing) a file there."""
    if path == "-":
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"Cannot write JSON to `{path}`: it is a directory.")
    if os.path.exists(path) and not (os.access(path, os.W_OK) and os.stat(path).st_mode & 0o222):
        raise InputError(f"Cannot write JSON to `{path}`: the file is read-only.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".precision_lab-", suffix=".json", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise InputError(f"Cannot write JSON to `{path}`: its folder does not exist or is not writable.") from None


def jsonable(value):
    """`value` as the schema writes it: non-finite numbers as the strings "nan", "inf"
    and "-inf" (JSON has no such numbers), NumPy scalars and arrays as Python
    numbers and lists, tuples as lists; dicts and lists element by element."""
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


def write_json(doc: dict, path: str) -> None:
    """Write `doc` to `path` atomically (a temporary file in the same folder, then a
    rename, with the permissions a new file gets), or to stdout for `-`; non-finite
    numbers anywhere in it are written as the schema's strings (`jsonable`)."""
    doc = jsonable(doc)
    if path == "-":
        json.dump(doc, sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
        return
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".precision_lab-", suffix=".json", dir=parent)
    except OSError as e:
        raise InputError(f"Cannot write JSON to `{path}`: {e.strerror or e}.") from None
    interrupts.own(tmp)  # an interrupted command removes it, and the file once it is in place
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        interrupts.check()
        interrupts.own(path)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise InputError(f"Cannot write JSON to `{path}`: {e.strerror or e}.") from None
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        interrupts.disown(tmp)
