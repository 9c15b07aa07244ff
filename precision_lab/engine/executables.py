"""`jit(fn)`: `jax.jit(fn)`, whose executables are also kept on disk by their jaxpr.

JAX's persistent cache keys a program by its lowered module, so every run still
traces and lowers each of its hundreds of programs (a form, a format, a batch size)
before it can find the executable: lowering was a quarter of a cached default sweep.
Here a program whose array arguments are all committed to one device is traced
(`jax.jit(fn).trace`), and its executable is looked up by what the trace gives: the
jaxpr's text and constants, the structure of its arguments and results, the device,
and the versions and settings that shape the compiled code (jax, jaxlib, the
backend's version, XLA_FLAGS, JAX's configuration).
Found, it is loaded (`jax.experimental.serialize_executable`); not found, the trace is
lowered and compiled as `jax.jit` compiles it, and stored with its key, which loading
checks. A loaded executable is the one XLA compiled for that same jaxpr, so no value
changes; any other call (arguments not committed, or spread over devices) is plain jit.

A program of the package's own code is also named without tracing it
(`fingerprints.of`: the package's source and every value its code reads), and the
name leads to the executable its first trace found (``names/``): a cached run traces
none of its kernels. A name is written only after its trace's executable is kept;
`CHECK_NAMES` traces named programs all the same and fails where a name leads
elsewhere.

The folder is set by `cli.running.use_compilation_cache` (``programs/`` beside
JAX's cache); without it, only the trace-and-compile step runs, as jit's would.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import hashlib
import os
import pickle
import threading

import jax
import numpy as np

from . import checkpoints, fingerprints

FOLDER: str | None = None  # where executables are kept; None: nowhere
# trace a named program all the same and fail if its name leads to another executable (tests)
CHECK_NAMES = bool(os.environ.get("PRECISION_LAB_CHECK_NAMES"))


def jit(fn):
    return _Program(fn)


class _Program:
    def __init__(self, fn):
        self.fn = fn
        self.jit = jax.jit(fn)
        self.by_signature: dict = {}
        self.pending: dict = {}  # signature -> (compilation future or None, trace, path, name): see `prepare`
        self.kept: set = set()  # signatures `prepare` found kept under their names (their calls load them)

    def __call__(self, *args, **kwargs):
        signature = None if kwargs or jax.config.jax_disable_jit else _signature(args)
        if signature is None:
            return self.jit(*args, **kwargs)
        compiled = self.by_signature.get(signature)
        if compiled is not None:
            return compiled(*args)
        prepared = self.pending.get(signature)  # pending until in memory: another thread's call waits too
        if prepared is None:
            name = self._name(signature)
            if name is not None and not CHECK_NAMES:  # named by its code: no trace needed
                out = self._run_kept(_named(name), signature, args)
                if out is not None:
                    return out[0]
            future, traced = None, self.jit.trace(*args)
            path = _path(traced, signature[0])
        else:  # traced and named when it was prepared
            future, traced, path, name = prepared
        if name is not None and CHECK_NAMES and _named(name) not in (None, path):
            raise AssertionError(f"{self.fn} named {name} traces to {path}, not to {_named(name)}")
        out = self._run_kept(path, signature, args) if future is None else None
        if out is None:
            compiled = (future.result() if future is not None  # compiled and kept by the pool
                        else _compile_and_keep(traced.lower(), path))
            self.by_signature[signature] = compiled
            out = (compiled(*args),)
        self.pending.pop(signature, None)
        if name is not None and path is not None and os.path.exists(path):
            _name_as(name, path)
        return out[0]

    def prepare(self, args):
        """See `prepare`: trace and lower this program for `args` (unless it is in
        memory, or kept) and have the pool compile it. Returns its results' shapes and
        types (ShapeDtypeStructs) where a trace gave them, else None."""
        signature = None if jax.config.jax_disable_jit else _signature(args)
        if signature is None or signature in self.by_signature or signature in self.kept:
            return None
        if signature in self.pending:  # its trace's result shapes
            return self.pending[signature][1].out_info
        name = self._name(signature)
        if name is not None and not CHECK_NAMES and _named(name) is not None and os.path.exists(_named(name)):
            self.kept.add(signature)
            return None  # kept: its call loads it
        traced = self.jit.trace(*args)
        path = _path(traced, signature[0])
        if path is not None and os.path.exists(path):
            self.pending[signature] = (None, traced, path, name)  # kept: its call loads it without a second trace
            return traced.out_info
        self.pending[signature] = (_pool().submit(_compile_and_keep, traced.lower(), path),
                                   traced, path, name)
        return traced.out_info

    def _name(self, signature) -> str | None:
        """The key of this program's trace found without tracing (`fingerprints`), or None."""
        if FOLDER is None:
            return None
        identity = fingerprints.of(self.fn)  # at each new signature: jit traces with the values of that moment
        if identity is None:
            return None
        device, *rest = signature
        return hashlib.sha256(repr((identity, rest, _settings(device))).encode()).hexdigest()

    def _run_kept(self, path, signature, args) -> tuple | None:
        """(the kept executable's results on `args`,), or None where none is kept at
        `path` or it does not run: its first call is waited for."""
        compiled = _load(path, signature[0])
        if compiled is None:
            return None
        try:
            out = compiled(*args)
            jax.block_until_ready(out)
        except (jax.errors.JaxRuntimeError, TypeError, ValueError):
            return None
        self.by_signature[signature] = compiled
        return (out,)

    def __getattr__(self, name):  # lower, trace, ...: the jit's own
        if name.startswith("__") or name == "jit":
            raise AttributeError(name)
        return getattr(self.jit, name)


def _signature(args) -> tuple | None:
    """(device, argument structure, avals) where every JAX array argument is committed
    to one device (NumPy arrays and Python numbers beside them are traced as jit
    traces them, the numbers as weak-typed scalars); None otherwise."""
    leaves, tree = jax.tree_util.tree_flatten(args)
    device, avals = None, []
    for a in leaves:
        if type(a) in (int, float, bool) or isinstance(a, (np.ndarray, np.generic)):
            avals.append((type(a), jax.typeof(a)))  # placed beside the committed arrays, as jit places it
            continue
        if isinstance(a, jax.core.Tracer) or not isinstance(a, jax.Array) or not a.committed:
            return None  # inside a trace, or not placed: plain jit
        devices = a.sharding.device_set
        if len(devices) != 1:
            return None
        (d,) = devices
        if device is None:
            device = d
        elif d != device:
            return None
        avals.append(a.aval)
    context = _trace_context()
    return (device, tree, context, *avals) if device is not None and context is not None else None


def _trace_context() -> tuple | None:
    """The configuration that tracing and lowering read (x64, matmul precision, dtype
    promotion, ... as a `with` block may set it), as jax.jit keys its own cache on it;
    its plain values only (an axis environment object has no stable text). The default
    device (`jax.default_device`) is left out: it places uncommitted arguments, and a
    program keyed here has its arguments committed to one device, which places it."""
    try:
        from jax._src.config import trace_context
    except ImportError:  # another jax: the configuration's values stand in
        return tuple(sorted((k, repr(v)) for k, v in jax.config.values.items()))
    raw = trace_context()  # cheap (JAX keeps it); what is made of it is remembered: every call needs it
    try:
        return _CONTEXTS[raw]
    except KeyError:
        found = _CONTEXTS[raw] = _plain(raw)
        return found
    except TypeError:  # a value that cannot be a key: made each time
        return _plain(raw)


_CONTEXTS: dict = {}


_PLAIN = (bool, int, float, str, enum.Enum)


def _plain(context: tuple) -> tuple | None:
    """The context's values as a key: plain values and tuples of them as they are, the
    default device as None, an empty axis environment (outside any named axis) left
    out; None where it holds anything else (a mesh, say: such a call takes plain jit)."""
    out = []
    for v in context:
        if v is None or isinstance(v, _PLAIN) or isinstance(v, jax.Device):
            out.append(None if isinstance(v, jax.Device) else v)
        elif type(v) is tuple and all(x is None or isinstance(x, _PLAIN) for x in v):
            out.append(v)
        elif type(v).__name__ == "AxisEnv" and not any(getattr(v, a, None) for a in
                                                       ("axis_sizes", "spmd_axis_names", "explicit_mesh_axis_names")):
            continue
        else:
            return None
    return tuple(out)


def _path(traced, device) -> str | None:
    """Where the executable of `traced` is kept; None for no folder or a program with
    effects (a host callback, say), which is not kept."""
    if FOLDER is None or traced.jaxpr.effects:
        return None
    return os.path.join(FOLDER, _key(traced, device))


def _digest(key: str, data: bytes) -> str:
    """What a kept file checks itself by: its key (its name when written) and bytes."""
    return hashlib.sha256(key.encode() + b"\0" + data).hexdigest()


def _load(path, device):
    """The executable kept at `path`, or None (none, damaged, unreadable, or written
    under another key: another program's file, whose arguments may well fit)."""
    if path is None:
        return None
    from jax.experimental import serialize_executable as se

    try:
        with open(path, "rb") as f:
            digest, key, data = pickle.load(f)
        if key != os.path.basename(path) or _digest(key, data) != digest:  # damaged: XLA would crash on it
            return None
        return se.deserialize_and_load(*pickle.loads(data), execution_devices=[device])
    except Exception:  # noqa: BLE001 - not kept yet, or unreadable: compiled and kept again
        return None


def _named(name: str) -> str | None:
    """The path of the executable a program's name leads to, or None."""
    try:
        with open(os.path.join(FOLDER, "names", name)) as f:
            key = f.read().strip()
    except OSError:
        return None
    return os.path.join(FOLDER, key) if len(key) == 64 and all(c in "0123456789abcdef" for c in key) else None


def _name_as(name: str, path: str) -> None:
    try:
        os.makedirs(os.path.join(FOLDER, "names"), exist_ok=True)
        # unsynced (as kept files are): a damaged name is not a key (`_named`) and is written again
        key = os.path.basename(path).encode()
        checkpoints.write_bytes(os.path.join(FOLDER, "names", name), key, ".part-", sync=False)
    except OSError:
        pass


def prepare(calls) -> list:
    """Start compiling the programs of `calls`, (program, arguments) pairs, side by side:
    each one that is neither in memory nor kept is traced and lowered here, as its call
    would be, and compiled by XLA on a pool of threads (as many as cores), while this
    thread goes on; its call then waits for it and keeps it. Nothing is compiled that
    the call would not compile: the same lowered program, the same compilation. Per
    call, its results' shapes and types where its trace gave them (ShapeDtypeStructs),
    else None (kept, in memory, or not one of ours)."""
    return [program.prepare(args) if isinstance(program, _Program) else None for program, args in calls]


_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                                      thread_name_prefix="precision-lab-compile")
        # at exit (a Ctrl-C through the Python API, say) the compilations not started are
        # dropped: the pool's own exit hook would run them all first (hooks run newest first)
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(lambda: _POOL.shutdown(wait=False, cancel_futures=True))
    return _POOL


_BYPASS = threading.Lock()  # JAX's cache switch is process-wide: switched off while any compilation needs it off
_bypassing = 0
_before = None


@contextlib.contextmanager
def _without_jax_cache():
    """JAX's persistent cache bypassed (JAX decides once per process whether it uses
    its cache, so the decision is reset on the way in and out): an executable JAX
    loaded from its cache does not serialize whole on the CPU (its fused functions go
    missing). Several threads may be inside at once; the cache comes back when the
    last leaves (another thread's compilation meanwhile only misses JAX's cache)."""
    global _bypassing, _before
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    with _BYPASS:
        if _bypassing == 0:
            _before = jax.config.jax_enable_compilation_cache
            jax_cache.reset_cache()
            jax.config.update("jax_enable_compilation_cache", False)
        _bypassing += 1
    try:
        yield
    finally:
        with _BYPASS:
            _bypassing -= 1
            if _bypassing == 0:
                jax.config.update("jax_enable_compilation_cache", _before)
                jax_cache.reset_cache()  # and again at the next compilation, with the cache


def _compile(lowered, kept: bool):
    """`lowered` compiled, as jax.jit compiles it; bypassing JAX's cache if it is to be
    kept (see `_without_jax_cache`)."""
    if not kept:
        return lowered.compile()
    with _without_jax_cache():
        return lowered.compile()


def _compile_and_keep(lowered, path):
    compiled = _compile(lowered, path is not None)
    _keep(compiled, path)
    return compiled


def _keep(compiled, path) -> None:
    """Keep `compiled` at `path`, unrun: a kept executable that fails at its first call
    in a later run is compiled again there (`_run_kept`)."""
    if path is None:
        return
    from jax.experimental import serialize_executable as se

    try:
        data = pickle.dumps(se.serialize(compiled))
        os.makedirs(FOLDER, exist_ok=True)
        key = os.path.basename(path)
        # unsynced: a file a crash damaged fails its digest (`_load`) and is compiled again
        checkpoints.write_bytes(path, pickle.dumps((_digest(key, data), key, data)), ".part-", sync=False)
    except Exception:  # noqa: BLE001 - whatever fails, the program is only not kept (compiled again next time)
        pass


def _key(traced, device) -> str:
    """What the executable depends on, hashed: the jaxpr's text, the bytes of every
    constant and literal in it and in the jaxprs nested in it (the text writes a NaN
    as `nan` whatever its bits, and a nested jit's constants not at all), the
    structure of the arguments and results (None holds no array, so two calls that
    place a None apart trace one jaxpr), the device, and the settings that shape
    compiled code."""
    closed = traced.jaxpr
    h = hashlib.sha256()
    for part in (str(closed.jaxpr), repr(closed.in_avals), repr(closed.out_avals), str(traced.in_tree),
                 str(traced.out_tree), _settings(device)):
        h.update(part.encode())
        h.update(b"\0")
    _hash_values(h, closed)
    return h.hexdigest()


def _hash_values(h, jaxpr) -> None:
    """Every constant and literal of `jaxpr` (a Jaxpr or ClosedJaxpr) and of the jaxprs
    in its equations' parameters, in order, by dtype, shape and bytes."""
    from jax._src import core

    if isinstance(jaxpr, core.ClosedJaxpr):
        for c in jaxpr.consts:
            _hash_array(h, c)
        jaxpr = jaxpr.jaxpr
    for eqn in jaxpr.eqns:
        for v in eqn.invars:
            if isinstance(v, core.Literal):
                _hash_array(h, v.val)
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                if isinstance(sub, (core.Jaxpr, core.ClosedJaxpr)):
                    h.update(b"[")
                    _hash_values(h, sub)
                    h.update(b"]")


def _hash_array(h, value) -> None:
    a = np.asarray(value)
    h.update(f"{a.dtype}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())


# where and whether JAX keeps its own cache: they shape no compiled code, and
# `_without_jax_cache` switches the cache off while a compilation runs beside the calls
# that look programs up
_CACHE_SETTINGS = frozenset({"jax_enable_compilation_cache", "jax_compilation_cache_dir",
                             "jax_persistent_cache_min_compile_time_secs", "jax_persistent_cache_min_entry_size_bytes",
                             "jax_compilation_cache_max_size", "jax_raise_persistent_cache_errors",
                             "jax_explain_cache_misses", "jax_compilation_cache_check_contents"})


def _settings(device) -> str:
    import jaxlib

    config = sorted((k, repr(v)) for k, v in jax.config.values.items() if k not in _CACHE_SETTINGS)
    return repr((jax.__version__, jaxlib.__version__, device.platform, device.id, device.device_kind,
                 device.client.platform_version, os.environ.get("XLA_FLAGS", ""),
                 os.environ.get("LIBTPU_INIT_ARGS", ""), config, _trace_context()))
