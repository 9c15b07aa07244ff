"""A pass's calls, dispatched ahead of the one being absorbed, in the axis's order.

On the CPU the client runs a program whose inputs are ready on the thread that calls
it, so one thread's calls run one program at a time, each keeping the cores only in
part busy (1.6 of 2 for the sigmoid family at 2**18 float32 points). Where a pass's
references are computed on the device (formats of up to 32 bits, the built-in
families), STREAMS threads dispatch alternate calls, and two calls' programs run side
by side: 13.8 -> 12.4 ms a call (paired, 150 calls), 498 -> 427 s for the exhaustive
float32 sigmoid family. The same programs run on the same points and the caller
absorbs the calls in order, so its rows are those of one thread. A user's function's
host references stay on one thread (arb's working precision is process-wide), and so
does a pass inside a JAX configuration context, which is per thread.
"""

from __future__ import annotations

import collections
import queue
import threading

import jax

STREAMS = 2  # threads dispatching a pass's calls where its references are on the device


def dispatched(runner, calls: range, devices: list, in_flight: int):
    """(start, call) of each of `calls` (`Runner.call`), in order, with up to
    `in_flight` calls per device dispatched ahead of the one being absorbed. An error
    raised by a call is raised here, in its place."""
    depth = in_flight * len(devices)
    threaded = STREAMS > 1 and runner.on_device() and len(calls) > STREAMS + 1 and _same_context_in_threads()
    if threaded:
        yield from _in_streams(runner, calls, devices, max(1, depth // STREAMS))
    else:
        yield from _in_order(runner, calls, devices, depth)


def _call(runner, calls: range, devices: list, j: int):
    start = calls[j]
    return start, runner.call(start, min(runner.size, len(runner.axis) - start), device=devices[j % len(devices)])


def _in_order(runner, calls: range, devices: list, depth: int):
    pending = collections.deque()
    for j in range(len(calls)):
        pending.append(_call(runner, calls, devices, j))
        if len(pending) > depth:
            yield pending.popleft()
    yield from pending


def _in_streams(runner, calls: range, devices: list, depth: int):
    """Call 0 here (its programs compiled or loaded once), then STREAMS threads: thread
    k dispatches calls 1 + k, 1 + k + STREAMS, ..., each at most `depth` ahead."""
    first = _call(runner, calls, devices, 0)
    where = jax.config.jax_default_device  # the sweep's device, which is per thread
    ready = [queue.Queue(maxsize=depth) for _ in range(STREAMS)]
    stop = threading.Event()

    def dispatch(k: int):
        try:
            with jax.default_device(where):
                for j in range(1 + k, len(calls), STREAMS):
                    if stop.is_set():
                        return
                    ready[k].put(_call(runner, calls, devices, j))
        except BaseException as e:  # noqa: BLE001 - raised in the absorbing thread, in its place
            ready[k].put(e)

    threads = [threading.Thread(target=dispatch, args=(k,), name=f"precision-lab-calls-{k}", daemon=True)
               for k in range(STREAMS)]
    for t in threads:
        t.start()
    try:
        yield first
        for j in range(1, len(calls)):
            item = ready[(j - 1) % STREAMS].get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # stopped early (an error, Ctrl-C): each thread ends after its current call
        stop.set()
        for t, q in zip(threads, ready):
            while t.is_alive():
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass


def _same_context_in_threads() -> bool:
    """Whether a new thread, given this one's default device, traces as this one does
    (`with jax.default_matmul_precision(...)`, say, holds only in its own thread)."""
    from jax._src.config import trace_context

    here, where, there = trace_context(), jax.config.jax_default_device, []

    def look():
        with jax.default_device(where):
            there.append(trace_context())

    t = threading.Thread(target=look)
    t.start()
    t.join()
    return there == [here]
