"""How much of the CPU other programs leave to this one, measured while it works.

On a machine where other jobs keep cores busy, a PyTorch forward pass with one thread per core
competes with them and loses more than it gains: on 2 cores with one busy, detection of a 1024²
image took 1.2–1.45 s with 2 threads and 0.95–1.05 s with 1. :class:`CpuShare` measures, over
the first stages of a detection (lattice, background, ladder: ~0.3 s on 1024²), how many of the
cores this process may run on were busy with *other* processes (all busy time on those cores
less this process's own CPU time), and :meth:`CpuShare.threads` proposes a thread count that
does not exceed the cores left free, half the cores when none is (``benchmarks/bench_load.py``:
1.42 → 1.15 s with one of two cores busy, unchanged on a quiet machine). Linux only
(``/proc/stat``); elsewhere it proposes nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROC_STAT = Path("/proc/stat")
#: Fields of a ``/proc/stat`` cpu line that count as busy (user, nice, system, irq, softirq,
#: steal); idle and iowait do not.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def _own_cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set()


def _busy_seconds(cores: set[int]) -> float | None:
    """Busy time (s) summed over ``cores`` since boot, or ``None`` when it cannot be read."""
    try:
        lines = _PROC_STAT.read_text().splitlines()
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    total, seen = 0, 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        if int(name[3:]) in cores:
            values = [int(v) for v in fields]
            total += sum(values[i] for i in _BUSY_FIELDS if i < len(values))
            seen += 1
    return total / hz if seen else None


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


#: Free cores (the machine's less those others keep busy) below which none counts as free.
FREE_CORE = 0.75
#: Shortest window (s) over which the others' busy time is told.
MIN_WINDOW_S = 0.1
#: How far back (s) a measurement too short to tell may reach for its start: to the previous
#: measurement's start in this process, or to this module's import.
REACH_BACK_S = 30.0
#: The latest start of a measurement in this process (wall, busy, own CPU seconds): the whole
#: detection of a small image takes less than :data:`MIN_WINDOW_S` before its network runs
#: (on 2 cores with one busy, 6 images of 200² px took 0.3–1.8 s each with 2 threads instead of
#: 0.08–0.11 s with 1), so it reads the window since the one before it — a batch's previous
#: image, or the command's start-up.
_LATEST: list[tuple[float, float | None, float]] = []


def _sample(cores: set[int]) -> tuple[float, float | None, float]:
    return time.perf_counter(), _busy_seconds(cores), _own_cpu_seconds()


class CpuShare:
    """Started at the beginning of a piece of work; :meth:`threads` then says how many threads
    the cores left free by other processes can take."""

    def __init__(self) -> None:
        self._cores = _own_cores()
        self._start = _sample(self._cores)
        earlier = _LATEST[0] if _LATEST else None
        self._earlier = (earlier if earlier is not None
                         and 0.0 < self._start[0] - earlier[0] <= REACH_BACK_S else None)
        _LATEST[:] = [self._start]

    def others_busy(self) -> float | None:
        """Cores kept busy by other processes since the start, or since the start of the
        measurement before it (:data:`REACH_BACK_S`) where this one is still shorter than
        :data:`MIN_WINDOW_S` (``None``: unknown, e.g. not Linux, or too short a window to
        tell)."""
        busy1, own1, now = _busy_seconds(self._cores), _own_cpu_seconds(), time.perf_counter()
        wall0, busy0, own0 = self._start
        if now - wall0 < MIN_WINDOW_S and self._earlier is not None:
            wall0, busy0, own0 = self._earlier
        wall = now - wall0
        if busy0 is None or busy1 is None or wall < MIN_WINDOW_S:
            return None
        others = (busy1 - busy0) - (own1 - own0)
        return max(0.0, others / wall)

    def busy_text(self) -> str:
        """How busy other programs keep the cores, in a few words for the device line ("the
        other core is busy", "2 of 4 cores are busy", "every core is busy")."""
        n = len(self._cores)
        if not n:
            return "other programs are busy"
        free = n - (self.others_busy() or 0.0)
        if free < FREE_CORE:  # (as :meth:`threads` reads it)
            return "every core is busy"
        if n == 2:
            return "the other core is busy"
        return f"{n - int(round(free))} of {n} cores are busy"

    def threads(self, current: int) -> int:
        """At most ``current`` threads, and no more than the cores the others leave free;
        ``current`` when that is unknown; half the cores when none is free. (Every program then
        gets its share of time per thread, but each parallel region of the network waits for
        its thread that is not running: on 2 cores with both busy, a 1024² detection took
        0.60–0.67 s with 1 thread against 0.70–0.73 s with 2, and one run in three 2.4 s; the
        dev set's 200² images 0.16 s against 0.20 s with runs of 0.5–1.3 s. An earlier
        session had measured 2.0 s with 1 thread and 1.9 s with 2.)"""
        others = self.others_busy()
        if others is None or not self._cores:
            return current
        free = len(self._cores) - others
        if free < FREE_CORE:
            return max(1, min(current, len(self._cores) // 2))
        return max(1, min(current, int(round(free))))


_LATEST[:] = [_sample(_own_cores())]  # (a first detection reaches back to the import)

#: Blocks of :func:`torch_threads_for_free_cores` running in this process, and the lock that
#: guards them: the torch thread count is process-wide, so only a block that runs alone changes
#: it (two detections in threads of one process must not restore each other's counts).
_ACTIVE = [0]
_LOCK = threading.Lock()


@contextmanager
def torch_threads_for_free_cores(share: CpuShare, on_cpu: bool) -> Iterator[tuple[int, int]]:
    """Within the block torch runs on no more threads than the cores others leave free.

    Yields ``(threads used, threads before)``; the count is restored on leaving (also when the
    consumer of a generator stops early). Nothing changes off the CPU, or when another such block
    is running in this process.
    """
    import torch

    with _LOCK:
        before = torch.get_num_threads()
        used = share.threads(before) if on_cpu and _ACTIVE[0] == 0 else before
        _ACTIVE[0] += 1
        if used < before:
            torch.set_num_threads(used)
    try:
        yield used, before
    finally:
        with _LOCK:
            _ACTIVE[0] -= 1
            if used < before:
                torch.set_num_threads(before)


__all__ = ["CpuShare", "torch_threads_for_free_cores"]
