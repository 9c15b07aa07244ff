"""The suite keeps XLA's compiled programs between runs, as the CLI does (see
cli.running.use_compilation_cache: $PRECISION_LAB_CACHE, or ~/.cache/precision_lab/xla;
0 turns it off): a cached program is the same executable, so no figure changes, and
tests that call the API before any CLI test no longer compile their programs afresh.
It keeps the memory XLA frees, as the CLI does (`cli.running.keep_freed_memory`).

The suite's process skips JAX's exit hook (`jax._src.api.clean_up`): it empties the
caches of the ~2000 programs the suite compiles one entry at a time, about 3 s of CPU
spent just before the operating system frees the memory anyway (a distributed client,
the other thing the hook shuts down, is only ever started in child processes here)."""

import atexit

from jax._src import api as _jax_api

from precision_lab.cli.running import keep_freed_memory, use_compilation_cache

use_compilation_cache()
keep_freed_memory()
atexit.unregister(_jax_api.clean_up)
