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
import tempfile

import jax
import numpy as np

FOLDER: str | None = None  # where executables are kept; None: nowhere


def jit(fn):
    return _Program(fn)


class _Program:
    def __init__(self, fn):
        self.jit = jax.jit(fn)
        self.by_signature: dict = {}

    def __call__(self, *args):
        signature = _signature(args)
        if signature is None:
            return self.jit(*args)
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
        if not isinstance(a, jax.Array) or not a.committed:
            return None
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
    """(the kept executable of `traced` or None, the path it is kept at or None)."""
    if FOLDER is None:
        return None, None
    from jax.experimental import serialize_executable as se

    path = os.path.join(FOLDER, _key(traced, device))
    try:
        with open(path, "rb") as f:
            payload, in_tree, out_tree = pickle.load(f)
        return se.deserialize_and_load(payload, in_tree, out_tree, execution_devices=[device]), path
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, RuntimeError):
        return None, path  # not kept yet, or unreadable: compiled and kept again


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
        jax.block_until_ready(se.deserialize_and_load(*kept, execution_devices=[device])(*args))
    except (jax.errors.JaxRuntimeError, RuntimeError, TypeError, ValueError):
        return compiled  # not kept: compiled again next time
    try:
        os.makedirs(FOLDER, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=FOLDER, prefix=".part-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(kept, f)
        os.replace(tmp, path)
    except (OSError, TypeError, pickle.PicklingError):
        pass  # a program that cannot be kept is compiled again next time
    return compiled


def _key(traced, device) -> str:
    """What the executable depends on, hashed: the jaxpr's text and constants, the
    structure of the arguments and results (None holds no array, so two calls that
    place a None apart trace one jaxpr), the device, and the settings that shape
    compiled code."""
    closed = traced.jaxpr
    h = hashlib.sha256()
    for part in (str(closed.jaxpr), repr(closed.in_avals), repr(closed.out_avals), str(traced.in_tree),
                 str(traced.out_tree), _settings(device)):
        h.update(part.encode())
        h.update(b"\0")
    for c in closed.consts:
        c = np.asarray(c)
        h.update(f"{c.dtype}{c.shape}".encode())
        h.update(np.ascontiguousarray(c).tobytes())
    return h.hexdigest()


def _settings(device) -> str:
    import jaxlib

    config = sorted((k, repr(v)) for k, v in jax.config.values.items())
    return repr((jax.__version__, jaxlib.__version__, device.platform, device.id, device.device_kind,
                 device.client.platform_version, os.environ.get("XLA_FLAGS", ""),
                 os.environ.get("LIBTPU_INIT_ARGS", ""), config, _trace_context()))
