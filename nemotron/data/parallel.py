"""Run a function over a stream of work items in worker processes, in order, with bounded memory.

`Pool.imap` reads its whole input ahead of the workers (a task thread consumes the iterator as fast as it
can), so streaming a corpus through it holds the corpus in memory. `ordered_map` keeps at most `window`
items in flight instead, and yields results in input order. Items that are not work (`Passthrough`) flow
through in their place without going to a worker: a resumed run passes finished shards this way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nemotron.errors import NemotronError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Passthrough:
    """An item that is yielded as is, in order, instead of being sent to a worker."""

    value: Any


def default_workers() -> int:
    """The CPUs this task may use: its affinity mask, and no more than its share of the allocation, never the
    node's count when the task has fewer. Under Slurm the share is SLURM_CPUS_PER_TASK, else the node's
    allocated CPUs over its tasks (these hold where Slurm binds no CPUs); tasks started without Slurm
    (submitit_local, torchrun) share the mask, so each takes its part of it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    share = _slurm_share()
    if share is None and "SLURM_JOB_ID" not in os.environ:
        from nemotron.distributed import dist_env

        share = cpus // dist_env().local_world_size
    return max(1, min(cpus, share)) if share is not None else cpus


def _slurm_share() -> int | None:
    """CPUs per task from Slurm's variables (`SLURM_JOB_CPUS_PER_NODE` is like `8` or `8(x2),4`), else None."""
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit():
        return int(per_task)
    node_cpus = os.environ.get("SLURM_JOB_CPUS_PER_NODE", "").split("(")[0].split(",")[0]
    node_tasks = os.environ.get("SLURM_TASKS_PER_NODE", "").split("(")[0].split(",")[0]
    if node_cpus.isdigit() and node_tasks.isdigit() and int(node_tasks) > 0:
        return int(node_cpus) // int(node_tasks)
    return None


def resolve_workers(requested: int | None, option: str = "stage.workers") -> int:
    """Worker processes for `requested`: None = `default_workers()`; 0 and 1 = in this process; more than the
    CPUs this task may use is capped to them, with one warning line naming both numbers."""
    available = default_workers()
    if requested is None:
        return available
    if requested < 0:
        raise NemotronError(
            f"{option}={requested} is negative. Give the number of worker processes: 0 or 1 work in this process, "
            f"N > 1 starts N processes (at most the {available} CPU(s) this task may use), and null (the default) "
            "uses every CPU this task may use."
        )
    if requested > available:
        log.warning("%s=%d is more than the %d CPU(s) this task may use: using %d worker processes.",
                    option, requested, available, available)  # fmt: skip
        return available
    return requested


@contextmanager
def worker_pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()):
    """A `spawn` pool of `workers` processes, or None for `workers <= 1` (run in this process).

    `spawn`, not `fork`: the parent may hold threads (the progress bar, tokenizers' thread pool) that a
    forked child would inherit in a locked state.
    """
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield None
        return
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs)
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def ordered_map(pool, fn: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    """`fn(item)` for every item, in order; at most `window` items are read ahead of the results."""
    if pool is None:
        for item in items:
            yield item.value if isinstance(item, Passthrough) else fn(item)
        return
    pending: deque = deque()
    for item in items:
        pending.append(item if isinstance(item, Passthrough) else pool.apply_async(fn, (item,)))
        while len(pending) >= window:
            yield _result(pending.popleft())
    while pending:
        yield _result(pending.popleft())


def _result(entry: Any) -> Any:
    return entry.value if isinstance(entry, Passthrough) else entry.get()
