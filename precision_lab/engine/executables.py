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
lowered and compiled as `jax.jit` compiles it, and stored. A loaded executable is the
one XLA compiled for that same jaxpr, so no value changes; any other call (arguments
not committed, or spread over devices) is plain `jax.jit(fn)`.

The folder is set by `cli.running.use_compilation_cache` (``programs/`` beside
JAX's cache); without it, only the trace-and-compile step runs, as jit's would.
"""

from __future__ import annotations

import enum
import hashlib
import os
import pickle
import threading

import jax
import numpy as np

from . import checkpoints

FOLDER: str | None = None  # where executables are kept; None: nowhere


def jit(fn):
    return _Program(fn)


class _Program:
    def __init__(self, fn):
        self.jit = jax.jit(fn)
        self.by_signature: dict = {}

    def __call__(self, *args, **kwargs):
        signature = None if kwargs or jax.config.jax_disable_jit else _signature(args)
        if signature is None:
            return self.jit(*args, **kwargs)
        compiled = self.by_signature.get(signature)
        if compiled is not None:
            return compiled(*args)
        traced = self.jit.trace(*args)
        compiled, path = _load(traced, signature[0])
        if compiled is not None:
            try:  # the first call of a loaded executable is waited for: one that cannot run is compiled again
                out = compiled(*args)
                jax.block_until_ready(out)
                self.by_signature[signature] = compiled
                return out
            except (jax.errors.JaxRuntimeError, TypeError, ValueError):
                pass
        compiled = self.by_signature[signature] = _compile(traced, path, args, signature[0])
        return compiled(*args)

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
    return (device, tree, _trace_context(), *avals) if device is not None else None


def _trace_context() -> tuple:
    """The configuration that tracing and lowering read (x64, matmul precision, dtype
    promotion, ... as a `with` block may set it), as jax.jit keys its own cache on it;
    its plain values only (an axis environment object has no stable text)."""
    try:
        from jax._src.config import trace_context
    except ImportError:  # another jax: the configuration's values stand in
        return tuple(sorted((k, repr(v)) for k, v in jax.config.values.items()))
    return tuple(v for v in trace_context() if v is None or isinstance(v, (bool, int, float, str, enum.Enum)))


def _load(traced, device):
    """(the kept executable of `traced` or None, the path it is kept at or None: a
    program with effects, such as a host callback, is not kept)."""
    if FOLDER is None or traced.jaxpr.effects:
        return None, None
    from jax.experimental import serialize_executable as se

    path = os.path.join(FOLDER, _key(traced, device))
    try:
        with open(path, "rb") as f:
            digest, data = pickle.load(f)
        if hashlib.sha256(data).hexdigest() != digest:  # damaged: XLA would crash on it, not refuse it
            return None, path
        return se.deserialize_and_load(*pickle.loads(data), execution_devices=[device]), path
    except Exception:  # noqa: BLE001 - not kept yet, or unreadable: compiled and kept again
        return None, path


_COMPILING = threading.Lock()  # the switch of JAX's cache below is process-wide


def _compile(traced, path, args, device):
    """`traced` lowered and compiled, as jax.jit does it, and kept at `path` if a copy
    loaded from what is kept runs on `args`. JAX's own cache is bypassed for this
    compilation (JAX decides whether it uses its cache once per process, so the
    decision is reset around it): an executable JAX loaded from its cache does not
    serialize whole on the CPU (its fused functions go missing). One that still
    fails when loaded back (say, JAX returned it from its memory) is not kept."""
    if path is None:
        return traced.lower().compile()
    from jax.experimental import serialize_executable as se
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    lowered = traced.lower()
    with _COMPILING:
        before = jax.config.jax_enable_compilation_cache
        jax_cache.reset_cache()  # JAX decides once per process whether it uses its cache: decide again
        jax.config.update("jax_enable_compilation_cache", False)
        try:
            compiled = lowered.compile()
        finally:
            jax.config.update("jax_enable_compilation_cache", before)
            jax_cache.reset_cache()  # and again at the next compilation, with the cache
    try:
        kept = se.serialize(compiled)
        data = pickle.dumps(kept)
        jax.block_until_ready(se.deserialize_and_load(*kept, execution_devices=[device])(*args))
        os.makedirs(FOLDER, exist_ok=True)
        checkpoints.write_bytes(path, pickle.dumps((hashlib.sha256(data).hexdigest(), data)), ".part-")
    except Exception:  # noqa: BLE001 - whatever fails, the program is only not kept (compiled again next time)
        pass
    return compiled


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


def _settings(device) -> str:
    import jaxlib

    config = sorted((k, repr(v)) for k, v in jax.config.values.items())
    return repr((jax.__version__, jaxlib.__version__, device.platform, device.id, device.device_kind,
                 device.client.platform_version, os.environ.get("XLA_FLAGS", ""),
                 os.environ.get("LIBTPU_INIT_ARGS", ""), config, _trace_context()))
