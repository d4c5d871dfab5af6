"""A few threads for numpy work that releases the GIL: one pool per process, started on first use.

Numpy's large array operations release the GIL, so independent pieces of one computation (the
chunks of a site refinement, the microscopes of a ladder fit) run side by side on the cores of a
small machine. Starting threads for every call cost ~25 ms per 1024² detection, so the pool is
kept; a forked child (a batch worker) starts its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()
#: Threads this process may use (:func:`set_thread_budget`; ``None``: the machine's cores).
_BUDGET: list[int] = []


def set_thread_budget(threads: int) -> None:
    """Let this process use at most ``threads`` threads for numpy work: a batch worker that
    shares the machine's cores with others (:mod:`..detect.batch`) takes its share only."""
    _BUDGET[:] = [max(1, int(threads))]


def _cores() -> int:
    """The machine's cores, at most four (the pool's size)."""
    return max(1, min(4, os.cpu_count() or 1))


def n_workers() -> int:
    """Threads of the pool: the machine's cores (at most four), within the process's budget."""
    return min(_cores(), _BUDGET[0]) if _BUDGET else _cores()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(_cores(),
                                                     thread_name_prefix="atomdefect-numpy"))
        return _POOL[1]


def map_threads(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, the items on the pool's threads (in this thread when
    there is one item or one core). ``fn`` must not itself call this function (the pool is
    shared: a nested call could wait on itself)."""
    items = list(items)
    if len(items) <= 1 or n_workers() == 1:
        return [fn(item) for item in items]
    return list(_pool().map(fn, items))  # (callers split their work into n_workers() items)


__all__ = ["map_threads", "n_workers", "set_thread_budget"]
