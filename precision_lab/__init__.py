"""precision_lab: where losses and gradients break in low precision.

Importing the package turns on JAX's 64-bit mode, so that a float64 row really
computes in float64; every other format is requested explicitly by dtype.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from .api import FAMILIES, SweepResult, check, compare_modes, evaluate, kernel_values, sweep  # noqa: E402
from . import gates  # noqa: E402  (pl.gates.parse, pl.gates.failures: --fail-on)
from .errors import InputError  # noqa: E402
from .formats import DEFAULT_FORMATS, FORMATS  # noqa: E402
from .walk import Walk, explain  # noqa: E402  (the module stays precision_lab.walk)

__all__ = ["FAMILIES", "FORMATS", "DEFAULT_FORMATS", "InputError", "SweepResult", "gates", "Walk", "check", "compare_modes", "evaluate",
           "explain", "kernel_values", "sweep"]
