"""Sweeps across hosts, with `jax.distributed`.

Every process of the job runs the same sweep. Each takes a contiguous share of every
axis's calls (spread, in turn, over its own devices), and the shares' states (counts,
run trackers, profiles) are gathered and joined in the axis's order: every process
then holds the result a single process would have computed, row for row, and goes on
to refine sampled boundaries itself (the same work everywhere, so no further
exchange). Only process 0 writes files and prints.

Start each process with `precision-lab sweep ... --coordinator HOST:PORT
--num-processes N --process-id I` (or `--distributed` where JAX finds the cluster
itself: Cloud TPU, SLURM, ...).
"""

from __future__ import annotations

import pickle

import jax
import numpy as np

from ..errors import InputError


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join the job (jax.distributed.initialize); on the CPU, with Gloo collectives."""
    if (num_processes is None) != (process_id is None):
        raise InputError("Give both --num-processes and --process-id (or neither, where JAX finds the cluster).")
    if process_id is not None and not 0 <= process_id < num_processes:
        raise InputError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (RuntimeError, ValueError) as e:
        raise InputError(f"Could not join the distributed job: {str(e).splitlines()[0]}") from None


def processes() -> tuple[int, int]:
    """(this process's index, the number of processes)."""
    return jax.process_index(), jax.process_count()


def share(calls: range, index: int, count: int) -> range:
    """Process `index`'s contiguous share of `calls`."""
    n = len(calls)
    return calls[index * n // count: (index + 1) * n // count]


def allgather(obj) -> list:
    """`obj` of every process, in process order (pickled, through a collective)."""
    from jax.experimental import multihost_utils

    data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([len(data)], np.int64))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: len(data)] = data
    every = np.asarray(multihost_utils.process_allgather(padded))
    return [pickle.loads(every[p, : int(sizes[p])].tobytes()) for p in range(len(sizes))]
