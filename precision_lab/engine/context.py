"""A run's context: what does not shape its rows but runs them: the devices, the
progress callback and its running count, the checkpoint file, and the settings
recorded with the results."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import platform
import sys
from collections.abc import Callable, Sequence

import jax
import numpy as np

from .. import __version__
from ..errors import InputError
from ..numerics.classify import CLASSES
from . import checkpoints
from .spec import Spec

BACKENDS = ("cpu", "gpu", "tpu")


@dataclasses.dataclass
class RunContext:
    devices: list
    progress: Callable[[str, int, int], None] | None = None
    checkpoint_path: str | None = None  # where the run's state is saved (see `checkpoints`)
    argv: Sequence[str] | None = None
    checkpoint: checkpoints.Checkpoint | None = None  # opened by the run, for its specification
    done: int = 0  # points swept so far, over every job
    total: int = 0  # points the run sweeps (it grows where a later pass adds jobs)
    passes: int = 0  # engine passes so far: each one's checkpoint key begins with its number

    @property
    def device(self):
        return self.devices[0]

    def report(self, label: str, points: int = 0) -> None:
        """Count `points` more as done, and tell the progress callback (where Ctrl-C stops a run)."""
        self.done += points
        if self.progress:
            self.progress(label, self.done, self.total)


def get_device(name: str | None):
    """The first JAX device of backend `name` (default: JAX's default backend)."""
    if name is None:
        return jax.devices()[0]
    if name not in BACKENDS:
        raise InputError(f"Unknown device `{name}`; choose one of {', '.join(BACKENDS)}.")
    try:
        return jax.devices(name)[0]
    except RuntimeError:
        raise InputError(f"Backend `{name}` is not present here; available: {', '.join(present_backends())}.") from None


def get_devices(name: str | None, count: int | None = None) -> list:
    """The devices of backend `name` (default: JAX's default backend) that share a
    run's calls: all of this process's, or the first `count`."""
    first = get_device(name)
    every = list(jax.local_devices(backend=first.platform))
    if count is None:
        return every
    if int(count) != count or not 1 <= count <= len(every):
        raise InputError(f"`devices` must be a whole number from 1 to {len(every)} (the {first.platform} devices "
                         f"here), got {count}.")
    return every[: int(count)]


def present_backends() -> list[str]:
    """The backends of BACKENDS that JAX has here (all of them, not only the default)."""
    present = []
    for b in BACKENDS:
        try:
            jax.devices(b)
        except RuntimeError:
            continue
        present.append(b)
    return present


def fingerprint(spec: Spec, device) -> dict:
    """What a checkpoint must match to be resumed: everything in the specification
    that shapes the rows (arrays by their digest, a user's function by its file), the
    backend and the versions (the device count does not change a row, so it may differ)."""
    import jaxlib

    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in ("kinds", "options")}
    fields["mode"] = spec.mode.name
    fields["precisions"] = [p.name for p in spec.precisions]
    return {"families": [k.name for k in spec.kinds], **{k: _plain(v) for k, v in fields.items()},
            "options": {n: {k: _plain(v) for k, v in o.items()} for n, o in spec.options.items()},
            "functions": [k.fingerprint() for k in spec.kinds], "backend": device.platform,
            "precision_lab": __version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "xla_flags": " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f)}


def _plain(v):
    if isinstance(v, np.ndarray) or hasattr(v, "__array__") and not isinstance(v, (list, tuple)):
        a = np.ascontiguousarray(np.asarray(v))
        return f"{a.dtype}{list(a.shape)}:{hashlib.sha256(a.tobytes()).hexdigest()[:16]}"
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)


def run_meta(spec: Spec, context: RunContext) -> dict:
    """The settings that shape what the backend computes, recorded with the results."""
    import jaxlib
    import ml_dtypes

    dev = context.device
    meta = {
        "device_count": len(context.devices),
        "process_count": jax.process_count(),
        "precision_lab": __version__,
        "families": [k.name for k in spec.kinds],
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "ml_dtypes": ml_dtypes.__version__,  # it casts targets and --logits on the host
        "backend": dev.platform,
        "device_kind": dev.device_kind,
        "x64": bool(jax.config.jax_enable_x64),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": jax.config.jax_compilation_cache_dir,
        "tolerance_ulp": spec.tolerance,
        "seed": spec.seed,
        "argv": list(context.argv) if context.argv is not None else sys.argv[1:],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "classes": list(CLASSES),
        "mode": spec.mode.name,
        "floor": spec.floor,
    }
    if spec.loss_scale is not None:
        meta["loss_scale"] = spec.loss_scale
    return meta
