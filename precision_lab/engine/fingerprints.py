"""`of(fn)`: a hash of what a function computes, found without tracing it.

A cached run traced each of its hundreds of programs only to find its kept
executable (`executables`), a tenth of the run. A program of the package's own
code is named here instead, by what determines its jaxpr: the package's source
(read when this module is imported; a file changed since then gives no name), and,
walked from the function, every code object, default, closure cell, global name,
import inside a function, and package class (bases, methods, class attributes) it
reaches (a module constant a test or option changes is read, not assumed), with the
library functions it calls named by their code (their versions are in the name).
Whatever the walk cannot name — a user's function, an object of an unknown class, a
jax.jit of the package's own code — makes it give up (None), and the program is
traced, as it always was.

The hash reads values at each new signature of a program, as `jax.jit` reads a
closure's values when it traces one; like jit, it assumes they do not change after.
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
import threading
import types

import numpy as np

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TOP = __package__.split(".")[0]
# code outside the package named by its file and line alone: its version is in the name
LIBRARIES = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy", "flint")
_DISTRIBUTIONS = {"flint": "python-flint"}  # where the import name is not the distribution's


class _Unknown(Exception):
    pass


def of(fn) -> str | None:
    """The hash of `fn` (see the module docstring), or None where the walk meets
    anything it cannot name, or a file of the package changed since its source was
    hashed (the code loaded may then be either)."""
    digest, files = _source()
    if any(_stat(path) != stat for path, stat in files):
        return None
    h = hashlib.sha256(digest.encode())
    try:
        _walk(fn, h, {})
    except (_Unknown, RecursionError):
        return None
    return h.hexdigest()


def _stat(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=None)
def _source() -> tuple[str, tuple]:
    """Every module of the package, hashed, with the interpreter's and the libraries'
    versions (a constant computed while tracing comes from them); and each file's
    modification time and size when it was read. Read when this module is imported,
    as the package's modules are."""
    import importlib.metadata

    versions = []
    for name in LIBRARIES:
        try:
            versions.append((name, importlib.metadata.version(_DISTRIBUTIONS.get(name, name))))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, None))
    h = hashlib.sha256(repr((sys.version, versions)).encode())
    files = []
    for folder, dirs, names in sorted(os.walk(PACKAGE)):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                stat = _stat(path)
                h.update(os.path.relpath(path, PACKAGE).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read())
                files.append((path, stat))
    return h.hexdigest(), tuple(files)


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


_LOCKS = (type(threading.Lock()), type(threading.RLock()))


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
        _class(obj, h, seen)
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
        bound = getattr(obj, "__self__", None)  # a bound method's object: {1: 2}.get is not {1: 3}.get
        if bound is not None and not isinstance(bound, types.ModuleType):
            _walk(bound, h, seen)
    elif isinstance(obj, (staticmethod, classmethod)):
        h.update(f"{t.__name__}(".encode())
        _walk(obj.__func__, h, seen)
        h.update(b")")
    elif isinstance(obj, property):
        h.update(b"property(")
        _walk((obj.fget, obj.fset, obj.fdel), h, seen)
        h.update(b")")
    elif isinstance(obj, (types.MemberDescriptorType, types.GetSetDescriptorType, types.WrapperDescriptorType)):
        h.update(f"descriptor:{obj.__qualname__};".encode())
    elif isinstance(obj, functools.partial):
        h.update(b"partial(")
        _walk((obj.func, obj.args, obj.keywords), h, seen)
        h.update(b")")
    elif dataclasses.is_dataclass(obj):
        _walk(t, h, seen)
        _walk(tuple((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)), h, seen)
    elif t.__module__.startswith("flint.") and t.__qualname__ == "FlintContext":
        h.update(f"flint:{obj!r};".encode())  # python-flint's settings (precision), as its repr lists them
    elif t in _LOCKS:
        h.update(f"lock:{t.__name__};".encode())  # serialises threads (rounding.EXACT); holds no value
    elif t is object or (t.__module__, t.__qualname__) == ("numpy._globals", "_NoValueType"):
        h.update(f"sentinel:{t.__qualname__};".encode())  # a library's, as in jax.vmap's closure, numpy's defaults
    elif (t.__module__ or "").split(".")[0] == _TOP and hasattr(obj, "__dict__"):
        _walk(t, h, seen)  # an object of the package's own class: its attributes
        _walk(dict(vars(obj)), h, seen)
    elif hasattr(obj, "__wrapped__") and _library_object(obj):  # jax.jit, lru_cache, custom_jvp's wrappers
        if _jit_of_own_code(obj):
            raise _Unknown(t)  # jit's options (static arguments, compiler options) cannot be read back
        h.update(f"wrapped:{t.__module__}.{t.__qualname__}(".encode())
        _walk(obj.__wrapped__, h, seen)
        _walk(_attributes(obj), h, seen)
        h.update(b")")
    elif _library_singleton(obj):  # jnp.maximum (a jax ufunc object), say: named where the library defines it
        h.update(f"singleton:{obj.__module__}.{obj.__name__};".encode())
    else:
        raise _Unknown(t)


def _library_singleton(obj) -> bool:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__name__", None)
    if not isinstance(module, str) or not isinstance(name, str) or module.split(".")[0] not in LIBRARIES:
        return False
    return getattr(sys.modules.get(module), name, None) is obj


# a class's entries that say nothing of what its code computes
_CLASS_NOISE = frozenset({"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__annotations__",
                          "__dataclass_fields__", "__dataclass_params__", "__match_args__", "__slots__",
                          "__orig_bases__", "__parameters__", "__firstlineno__", "__static_attributes__"})


def _class(cls: type, h, seen: dict) -> None:
    """A library's class by its name (its version is in the key); one of the package's
    by its name, bases and entries: methods, operators, class attributes and what
    they read (a patched method or constant changes it)."""
    h.update(f"type:{cls.__module__}.{cls.__qualname__}".encode())
    if (cls.__module__ or "").split(".")[0] != _TOP:
        h.update(b";")
        return
    h.update(b"(")
    _walk(cls.__bases__, h, seen)
    generated = dataclasses.is_dataclass(cls)
    for name in sorted(cls.__dict__):
        value = cls.__dict__[name]
        if generated and _written_by_dataclasses(value):
            continue  # from the fields the source declares (__init__, __eq__, __repr__, ...)
        if name not in _CLASS_NOISE:
            h.update(f"{name}=".encode())
            _walk(value, h, seen)
    h.update(b")")


def _written_by_dataclasses(value) -> bool:
    while isinstance(value, types.FunctionType) and hasattr(value, "__wrapped__"):  # __repr__ is wrapped
        value = value.__wrapped__
    return isinstance(value, types.FunctionType) and value.__code__.co_filename == "<string>"


def _jit_of_own_code(obj) -> bool:
    """A jax.jit of code outside the libraries (the package's): its options are not
    readable, so it gets no name. jax.numpy's own jitted functions are named by their
    code (their options are the library's)."""
    if type(obj).__name__ != "PjitFunction":
        return False
    code = getattr(obj.__wrapped__, "__code__", None)
    return code is None or _where(code) != "library"


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


_source()  # the package's source as it is when its modules are imported
