"""The suite keeps XLA's compiled programs between runs, as the CLI does (see
cli.running.use_compilation_cache: $PRECISION_LAB_CACHE, or ~/.cache/precision_lab/xla;
0 turns it off): a cached program is the same executable, so no figure changes, and
tests that call the API before any CLI test no longer compile their programs afresh."""

from precision_lab.cli.running import use_compilation_cache

use_compilation_cache()
