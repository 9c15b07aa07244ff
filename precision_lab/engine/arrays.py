"""Reading the user's arrays: `.npy` files and members of `.npz` files (`FILE.npz:NAME`).

np.save of a bfloat16 or float8 array (ml_dtypes) writes a header whose descr NumPy
cannot read back as that format: ml_dtypes 0.6 writes `<V2` for bfloat16 (np.load
then returns raw 2-byte values), `<V1` for float8_e4m3fn (raw bytes) and `<f1` for
float8_e5m2 (np.load refuses it). The header is therefore parsed here, and its descr
is mapped to the ml_dtypes type that writes it, when exactly one does (asked of the
installed ml_dtypes, not assumed): `<V2` is bfloat16 alone, `<f1` float8_e5m2, while
`<V1` is written by every 1-byte format (float8_e4m3fn, its fnuz variants, int4…), so
such a file needs its format named (`fmt`).
"""

from __future__ import annotations

import ast
import re
import importlib.util
import os
import zipfile

import ml_dtypes
import numpy as np

from ..numerics import formats
from ..errors import InputError

MAGIC = b"\x93NUMPY"
OTHER_READERS = {".pt": "torch", ".pth": "torch", ".safetensors": "safetensors"}


def _written_as() -> dict:
    """descr string -> the ml_dtypes types whose np.save header carries it."""
    out: dict = {}
    for name in dir(ml_dtypes):
        t = getattr(ml_dtypes, name)
        if isinstance(t, type) and issubclass(t, np.generic):
            try:
                out.setdefault(np.dtype(t).str, set()).add(np.dtype(t))
            except TypeError:
                continue
    return out


def _split_spec(spec: str) -> tuple[str, str | None]:
    """`FILE.npz:NAME` -> (FILE.npz, NAME); any other path -> (path, None)."""
    head, sep, name = spec.rpartition(":")
    if sep and head.lower().endswith(".npz") and not os.path.exists(spec):
        return head, name
    return spec, None


def load(spec: str, option: str, fmt: str | None = None) -> np.ndarray:
    """The array `spec` names (FILE.npy, FILE.npz or FILE.npz:NAME), in its own format:
    an ml_dtypes array for bfloat16 and float8 files. `fmt` names the format of raw
    1- or 2-byte values the header cannot tell. One sentence (InputError) otherwise."""
    path, name = _split_spec(spec)
    ext = os.path.splitext(path)[1].lower()
    if ext in OTHER_READERS:
        lib = OTHER_READERS[ext]
        have = importlib.util.find_spec(lib) is not None
        raise InputError(f"Cannot read {option} `{path}`: {ext} files are not read "
                         f"({lib} is {'installed but not used' if have else 'not installed'}); save the array "
                         f"with numpy.save as a .npy file (a bfloat16 or float8 array keeps its format).")
    if not os.path.exists(path):
        raise InputError(f"Cannot read {option} `{path}`: no such file.")
    if os.path.isdir(path):
        raise InputError(f"Cannot read {option} `{path}`: it is a directory.")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = [m[:-4] for m in z.namelist() if m.endswith(".npy")]
            if name is None:
                if len(members) != 1:
                    raise InputError(f"{option} `{path}` holds {len(members)} arrays "
                                     f"({', '.join(members) or 'none'}); name one as {path}:NAME.")
                name = members[0]
            if name not in members:
                raise InputError(f"{option} `{path}` has no array `{name}`; its arrays are {', '.join(members)}.")
            with z.open(name + ".npy") as fh:
                return _read(fh, f"{path}:{name}", option, fmt)
    if name is not None:
        raise InputError(f"Cannot read {option} `{path}`: it is not a .npz file, so it has no array `{name}`.")
    with open(path, "rb") as fh:
        return _read(fh, path, option, fmt)


def _read(fh, where: str, option: str, fmt: str | None) -> np.ndarray:
    header = _header(fh, where, option)
    descr, shape, fortran = header["descr"], tuple(header["shape"]), header["fortran_order"]
    dtype = _dtype(descr, where, option, fmt)
    count = int(np.prod(shape, dtype=np.int64))
    data = fh.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise InputError(f"Cannot read {option} `{where}`: the file ends before its {count} values.")
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)


def _header(fh, where: str, option: str) -> dict:
    bad = InputError(f"Cannot read {option} `{where}`: it is not a .npy array of numbers.")
    if fh.read(6) != MAGIC:
        raise bad
    version = fh.read(2)
    if len(version) != 2 or version[0] not in (1, 2, 3):
        raise bad
    size = int.from_bytes(fh.read(2 if version[0] == 1 else 4), "little")
    try:
        header = ast.literal_eval(fh.read(size).decode("latin1" if version[0] < 3 else "utf8"))
    except (ValueError, SyntaxError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(header, dict) or not {"descr", "shape", "fortran_order"} <= header.keys():
        raise bad
    return header


def _dtype(descr, where: str, option: str, fmt: str | None) -> np.dtype:
    """The array's dtype from its header's descr (and `fmt` for raw bytes)."""
    if not isinstance(descr, str):
        raise InputError(f"{option} `{where}` holds records ({descr}), not numbers.")
    candidates = sorted(_written_as().get(descr, ()), key=str)
    try:
        dtype = np.dtype(descr)
    except TypeError:
        dtype = None
    if fmt is not None:
        want = np.dtype(formats.get(fmt).dtype)
        raw = dtype is None or dtype.kind == "V"
        if (dtype != want and not raw) or _size(descr) != want.itemsize:
            raise InputError(f"{option} `{where}` holds {dtype or descr} values, not raw values of {fmt}; "
                             f"leave {option}-dtype out, the format is read from the file.")
        return want
    if dtype is not None and dtype.kind != "V":
        if dtype.kind not in "biuf":
            raise InputError(f"{option} `{where}` holds {dtype} values, not numbers.")
        return dtype
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(c.name for c in candidates if c.name in formats.FORMATS) or "none that precision_lab sweeps"
    raise InputError(f"{option} `{where}` holds raw {_size(descr)}-byte values ({descr}) that np.save writes for "
                     f"several formats ({names} among them); name the format with {option}-dtype.")


def _size(descr: str) -> int | None:
    """The item size a simple descr (`<V2`, `|u1`) states."""
    m = re.fullmatch(r"[<>|=]?[A-Za-z](\d+)", descr)
    return int(m.group(1)) if m else None
