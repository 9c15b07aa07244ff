"""`of(fn)`: a hash of what a function computes, found without tracing it.

A cached run traced each of its hundreds of programs only to find its kept
executable (`executables`), a tenth of the run. A program of the package's own
code is named here instead, by what determines its jaxpr: the package's source,
and, walked from the function, every code object, default, closure cell and
global name it reaches (a module constant a test or option changes is read, not
assumed), with the library functions it calls named by their code (their
versions are in the executable's key). Whatever the walk cannot name — a user's
function, an object of an unknown class — makes it give up (None), and the
program is traced, as it always was.

The hash reads values when the program is first called, as `jax.jit` reads a
closure's values at its first trace; like jit, it assumes they do not change after.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import hashlib
import importlib
import importlib.util
import os
import struct
import sys
import types

import numpy as np

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# code outside the package named by its file and line alone: its version is in the key
_TOP = __package__.split(".")[0]
LIBRARIES = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy")


class _Unknown(Exception):
    pass


def of(fn) -> str | None:
    """The hash of `fn` (see the module docstring), or None where the walk meets
    anything it cannot name."""
    h = hashlib.sha256(_source_digest().encode())
    try:
        _walk(fn, h, {})
    except (_Unknown, RecursionError):
        return None
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _source_digest() -> str:
    """Every module of the package, hashed, with the interpreter's and NumPy's
    versions (a constant computed while tracing comes from them)."""
    import ml_dtypes

    h = hashlib.sha256(repr((sys.version, np.__version__, ml_dtypes.__version__)).encode())
    for folder, dirs, files in sorted(os.walk(PACKAGE)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                h.update(os.path.relpath(path, PACKAGE).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def _where(code: types.CodeType) -> str | None:
    """'package' for the package's code, 'library' for the named libraries' and the
    standard library's, None for anything else (a user's)."""
    path = os.path.abspath(code.co_filename)
    if path.startswith(PACKAGE + os.sep):
        return "package"
    parts = path.split(os.sep)
    if any(p in ("site-packages", "dist-packages") for p in parts):
        i = max(i for i, p in enumerate(parts) if p in ("site-packages", "dist-packages"))
        return "library" if i + 1 < len(parts) and parts[i + 1] in LIBRARIES else None
    if path.startswith(os.path.dirname(os.__file__) + os.sep) or code.co_filename.startswith("<frozen "):
        return "library"
    return None


def _walk(obj, h, seen: dict) -> None:
    """Hash `obj` into `h`; `seen` numbers the objects met (one met again, as in a
    cycle, hashes its number)."""
    t = type(obj)
    if obj is None or obj is Ellipsis or t in (bool, int, str, bytes):
        h.update(f"{t.__name__}:{obj!r};".encode())
        return
    if t is float:
        h.update(b"f" + struct.pack("<d", obj))
        return
    if t is complex:
        h.update(b"c" + struct.pack("<dd", obj.real, obj.imag))
        return
    if id(obj) in seen:
        h.update(f"@{seen[id(obj)][0]};".encode())
        return
    seen[id(obj)] = (len(seen), obj)  # held: a temporary's id is not reused while the walk runs
    if t in (tuple, list):
        h.update(f"{t.__name__}{len(obj)}(".encode())
        for v in obj:
            _walk(v, h, seen)
        h.update(b")")
    elif t is dict:
        h.update(f"dict{len(obj)}(".encode())
        for _, k, v in sorted(((_apart(k), k, v) for k, v in obj.items()), key=lambda e: e[0]):
            _walk(k, h, seen)
            _walk(v, h, seen)
        h.update(b")")
    elif t in (frozenset, set):
        h.update(f"set{len(obj)}(".encode())
        for digest in sorted(_apart(v) for v in obj):
            h.update(digest)
        h.update(b")")
    else:
        _object(obj, t, h, seen)


def _object(obj, t: type, h, seen: dict) -> None:
    """`_walk` of anything but plain values and containers."""
    if isinstance(obj, (np.ndarray, np.generic)):
        a = np.asarray(obj)
        h.update(f"array{a.dtype.str}{a.dtype.name}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    elif isinstance(obj, np.dtype):
        h.update(f"dtype:{obj.str}{obj.name};".encode())
    elif isinstance(obj, enum.Enum):
        _walk(type(obj), h, seen)
        h.update(f"enum:{obj.name};".encode())
    elif isinstance(obj, type):
        h.update(f"type:{obj.__module__}.{obj.__qualname__};".encode())
    elif isinstance(obj, types.ModuleType):
        h.update(f"module:{obj.__name__};".encode())
    elif isinstance(obj, types.FunctionType):
        _function(obj, h, seen)
    elif isinstance(obj, types.MethodType):
        h.update(b"method(")
        _walk(obj.__func__, h, seen)
        _walk(obj.__self__, h, seen)
        h.update(b")")
    elif isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
        h.update(f"builtin:{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', obj.__name__)};".encode())
    elif isinstance(obj, functools.partial):
        h.update(b"partial(")
        _walk((obj.func, obj.args, obj.keywords), h, seen)
        h.update(b")")
    elif dataclasses.is_dataclass(obj):
        _walk(t, h, seen)
        _walk(tuple((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)), h, seen)
    elif t is object:  # a library's sentinel, as in jax.vmap's closure
        h.update(b"object();")
    elif (t.__module__ or "").split(".")[0] == _TOP and hasattr(obj, "__dict__"):
        _walk(t, h, seen)  # an object of the package's own class: its attributes
        _walk(dict(vars(obj)), h, seen)
    elif hasattr(obj, "__wrapped__") and _library_object(obj):  # jax.jit, lru_cache, custom_jvp's wrappers
        h.update(f"wrapped:{t.__module__}.{t.__qualname__}(".encode())
        _walk(obj.__wrapped__, h, seen)
        _walk(_attributes(obj), h, seen)
        h.update(b")")
    else:
        raise _Unknown(t)


def _apart(v) -> bytes:
    """The hash of `v` alone: a set's members and a dict's keys are put in the order of
    their hashes (their own order follows Python's string hashing, which changes
    from process to process)."""
    h = hashlib.sha256()
    _walk(v, h, {})
    return h.digest()


def _library_object(obj) -> bool:
    module = type(obj).__module__ or ""
    return module.split(".")[0] in LIBRARIES + ("functools", "builtins")


def _attributes(obj) -> tuple:
    """What a library's wrapper object adds to the function it wraps (custom_jvp's
    rule, jit's static arguments): its instance attributes that are plain values or
    functions, by name."""
    found = []
    for name in ("jvp", "fwd", "bwd", "nondiff_argnums", "symbolic_zeros", "static_argnums", "static_argnames",
                 "donate_argnums"):
        if hasattr(obj, name):
            found.append((name, getattr(obj, name)))
    return tuple(found)


def _function(fn: types.FunctionType, h, seen: dict) -> None:
    code = fn.__code__
    where = _where(code)
    if where is None:
        raise _Unknown(code.co_filename)
    if where == "package":
        h.update(b"fn(" + _code_digest(code))
    else:  # a library's code: named by its place (the library's version is in the key)
        h.update(f"lib({os.path.basename(code.co_filename)}:{code.co_qualname}:{code.co_firstlineno}".encode())
    _walk((fn.__defaults__, fn.__kwdefaults__), h, seen)
    _walk(tuple(c.cell_contents if _filled(c) else _EMPTY for c in (fn.__closure__ or ())), h, seen)
    if where == "package":  # the globals its code reads, and the attributes of the package's modules it reads
        names = _names(code)
        found = [(name, fn.__globals__[name]) for name in sorted(names) if name in fn.__globals__]
        found += [(f"import:{name}", value) for name, value in _imported(code, fn.__globals__.get("__package__"))]
        found += [(f"cell:{name}", c.cell_contents) for name, c in zip(code.co_freevars, fn.__closure__ or ())
                  if _filled(c) and isinstance(c.cell_contents, types.ModuleType)]  # walked above; attributes below
        for name, value in found:
            h.update(f"global:{name}=".encode())
            _walk(value, h, seen)
            if isinstance(value, types.ModuleType) and value.__name__.split(".")[0] == _TOP:
                for attr in sorted(names):
                    if hasattr(value, attr) and not isinstance(getattr(value, attr), types.ModuleType):
                        h.update(f"{name}.{attr}=".encode())
                        _walk(getattr(value, attr), h, seen)
    h.update(b")")


def _imported(code: types.CodeType, package: str | None) -> list:
    """(name, object) of what `code` (and the code nested in it) imports from the
    package where it runs (``from ..numerics import dd`` in a function)."""
    out = []
    for level, module, names in _imports(code):
        if level == 0 and module.split(".")[0] != _TOP:
            continue
        try:
            base = importlib.import_module(importlib.util.resolve_name("." * level + module, package) if level
                                           else module)
        except (ImportError, ValueError):
            raise _Unknown(module) from None
        out += [(f"{module}.{n}", getattr(base, n)) for n in names if hasattr(base, n)] if names else [(module, base)]
    return out


@functools.lru_cache(maxsize=4096)
def _imports(code: types.CodeType) -> tuple:
    """(level, module, names imported from it) of each import statement of `code` and
    the code nested in it."""
    found = []
    ins = list(dis.get_instructions(code))
    for i, op in enumerate(ins):
        if op.opname == "IMPORT_NAME" and i >= 2:
            level, fromlist = ins[i - 2].argval, ins[i - 1].argval
            found.append((level if isinstance(level, int) else 0, op.argval,
                          tuple(fromlist) if isinstance(fromlist, tuple) else ()))
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            found += _imports(c)
    return tuple(found)


_EMPTY = "<empty cell>"


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _code_digest(code: types.CodeType) -> bytes:
    """What a code object does, hashed: its bytecode, constants (nested code too),
    names and signature (`marshal` is not stable: its output follows reference counts)."""
    h = hashlib.sha256()
    for part in (code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                 code.co_qualname, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags):
        h.update(repr(part).encode() + b"\0")
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            h.update(b"code:" + _code_digest(c))
        else:
            _walk(c, h, {})
    return h.digest()


@functools.lru_cache(maxsize=4096)
def _names(code: types.CodeType) -> frozenset:
    """Every name `code` and the code nested in it read as globals or attributes."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return frozenset(names)
