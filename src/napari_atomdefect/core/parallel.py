"""A few threads for numpy work that releases the GIL: one pool per process, started on first use.

Numpy's large array operations release the GIL, so independent pieces of one computation (the
chunks of a site refinement, the microscopes of a ladder fit) run side by side on the cores of a
small machine. Starting threads for every call cost ~25 ms per 1024² detection, so the pool is
kept; a forked child (a batch worker) starts its own.

The BLAS library under numpy (OpenBLAS) runs its own threads, which spin for a while after each
multi-threaded call: beside this pool (each of whose threads may call BLAS) and torch's threads
they only contend for the same cores. A 1024² detection's first network batch took 70 ms instead
of 17 behind the ladder's matrix products (the whole run 0.48 → 0.43 s on two cores), so a
detection runs BLAS on one thread (:func:`blas_in_one_thread`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

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


_BLAS_LOCK = threading.Lock()
#: Blocks of :func:`blas_in_one_thread` running in this process, and the limit they hold.
_BLAS_HELD: list[Any] = [0, None]
#: The process and threadpoolctl's controller of its libraries (their search took ~0.5 ms of
#: every detection: found once per process, by then numpy's and scipy's BLAS are loaded).
_CONTROLLER: list[Any] = [None, None]


def _blas_controller() -> Any:
    """threadpoolctl's controller of this process's thread pools (made once per process)."""
    if _CONTROLLER[0] != os.getpid():
        from threadpoolctl import ThreadpoolController

        _CONTROLLER[:] = [os.getpid(), ThreadpoolController()]
    return _CONTROLLER[1]


@contextmanager
def blas_in_one_thread() -> Iterator[None]:
    """Within the block numpy's BLAS runs on one thread (the previous counts come back on leaving,
    when the last such block of the process ends: blocks may overlap, in any order, from any
    thread). Nothing changes where threadpoolctl finds no BLAS library."""
    with _BLAS_LOCK:
        if _BLAS_HELD[0] == 0:
            _BLAS_HELD[1] = _blas_controller().limit(limits=1, user_api="blas")
        _BLAS_HELD[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_HELD[0] -= 1
            if _BLAS_HELD[0] == 0 and _BLAS_HELD[1] is not None:
                _BLAS_HELD[1].restore_original_limits()
                _BLAS_HELD[1] = None


__all__ = ["blas_in_one_thread", "map_threads", "n_workers", "set_thread_budget"]
