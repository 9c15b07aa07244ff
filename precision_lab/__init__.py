"""precision_lab: where losses and gradients break in low precision.

Importing the package turns on JAX's 64-bit mode, so that a float64 row really
computes in float64; every other format is requested explicitly by dtype. It does so
without importing JAX (through JAX_ENABLE_X64, which JAX reads when it is imported,
or JAX's config when JAX is already loaded), and the API is loaded on first use: the
command (`entry.py`) can then install its Ctrl-C handling before JAX is imported.
"""

import os as _os
import sys as _sys

if "jax" in _sys.modules:
    _sys.modules["jax"].config.update("jax_enable_x64", True)
else:
    _os.environ["JAX_ENABLE_X64"] = "1"

__version__ = "0.1.0"

_EXPORTS = {"FAMILIES": "api", "SweepResult": "api", "check": "api", "compare_modes": "api", "evaluate": "api",
            "kernel_values": "api", "policy": "api", "sweep": "api", "InputError": "errors", "DEFAULT_FORMATS": "numerics.formats",
            "FORMATS": "numerics.formats", "Walk": "analysis.steps", "explain": "api"}
_MODULES = {"gates": "analysis.gates"}  # modules the API names as pl.NAME

__all__ = ["FAMILIES", "FORMATS", "DEFAULT_FORMATS", "InputError", "SweepResult", "gates", "Walk", "check", "compare_modes", "evaluate",
           "explain", "kernel_values", "policy", "sweep"]


def __getattr__(name: str):
    """The API's names, and submodules, loaded when first asked for."""
    import importlib

    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f".{_MODULES[name]}", __name__)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(__all__))
