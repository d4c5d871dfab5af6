"""Threads fitted to the cores other programs leave free (core/cpu_share.py)."""

from __future__ import annotations

import sys
import time

import pytest

import napari_atomdefect.core.cpu_share as cpu_share


def _fake(monkeypatch, cores: int, busy: list[float], own: list[float], wall: list[float],
          latest: list | None = None):
    monkeypatch.setattr(cpu_share, "_LATEST", [] if latest is None else latest)
    monkeypatch.setattr(cpu_share, "_own_cores", lambda: set(range(cores)))
    monkeypatch.setattr(cpu_share, "_busy_seconds", lambda c: busy.pop(0))
    monkeypatch.setattr(cpu_share, "_own_cpu_seconds", lambda: own.pop(0))
    monkeypatch.setattr(cpu_share.time, "perf_counter", lambda: wall.pop(0))


@pytest.mark.parametrize("others_busy, expected", [(0.0, 2), (0.4, 2), (0.9, 1), (1.2, 1),
                                                    (1.6, 1), (2.0, 1)])
def test_threads_leave_the_busy_cores_to_their_programs(monkeypatch, others_busy, expected):
    # 1 s of wall time; this process used 1 s of CPU; the others what they keep busy.
    _fake(monkeypatch, 2, [100.0, 101.0 + others_busy], [5.0, 6.0], [0.0, 1.0])
    share = cpu_share.CpuShare()
    assert share.threads(2) == expected


def test_threads_never_raised_and_unknown_keeps_them(monkeypatch):
    _fake(monkeypatch, 8, [0.0, 0.5], [0.0, 0.5], [0.0, 1.0])  # an idle 8-core machine
    assert cpu_share.CpuShare().threads(2) == 2
    _fake(monkeypatch, 2, [None, None], [0.0, 0.1], [0.0, 1.0])  # no /proc/stat
    assert cpu_share.CpuShare().threads(2) == 2
    _fake(monkeypatch, 2, [0.0, 0.1], [0.0, 0.0], [0.0, 0.05])  # too short to tell
    assert cpu_share.CpuShare().others_busy() is None


def test_a_short_run_reads_the_window_since_the_one_before(monkeypatch):
    """A small image reaches its network 0.02 s after it started: too short to tell, so the
    window since the previous measurement's start (a batch's previous image, the command's
    start-up) tells instead — within :data:`REACH_BACK_S` only."""
    # previous start at t = 9.0 s (busy 50, own 3); this one at 10.0, the network at 10.02;
    # over the 1.02 s since 9.0 the cores were busy 2.02 s, of which 1.0 s this process's
    _fake(monkeypatch, 2, [51.0, 52.02], [3.9, 4.0], [10.0, 10.02], latest=[(9.0, 50.0, 3.0)])
    share = cpu_share.CpuShare()
    assert share.others_busy() == pytest.approx(1.0)   # one core busy: one thread
    assert cpu_share._LATEST == [(10.0, 51.0, 3.9)]   # the next one reaches back to this one
    # the previous one too long ago: unknown, as before
    _fake(monkeypatch, 2, [51.0, 52.02], [3.9, 4.0], [100.0, 100.02], latest=[(9.0, 50.0, 3.0)])
    assert cpu_share.CpuShare().others_busy() is None
    # a window long enough of its own: its own (the busy core since its start, not before)
    _fake(monkeypatch, 2, [51.0, 51.5], [3.9, 4.4], [10.0, 10.5], latest=[(9.0, 40.0, 3.0)])
    assert cpu_share.CpuShare().others_busy() == pytest.approx(0.0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_measures_this_machine():
    share = cpu_share.CpuShare()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # this process busy: not counted as others
        pass
    others = share.others_busy()
    assert others is not None and 0.0 <= others <= len(cpu_share._own_cores())


def test_thread_count_is_restored_and_never_fought_over(monkeypatch):
    """Two detections in threads of one process: only the first changes the process-wide count,
    and it is back to what it was once both are done, whichever ends first."""
    import torch

    monkeypatch.setattr(cpu_share.CpuShare, "threads", lambda self, n: 1)
    before = torch.get_num_threads()
    if before < 2:
        pytest.skip("needs 2 torch threads to see a change")
    first = cpu_share.torch_threads_for_free_cores(cpu_share.CpuShare(), True)
    second = cpu_share.torch_threads_for_free_cores(cpu_share.CpuShare(), True)
    assert first.__enter__() == (1, before) and torch.get_num_threads() == 1
    assert second.__enter__() == (1, 1)  # sees the first one's count, changes nothing
    first.__exit__(None, None, None)
    assert torch.get_num_threads() == before
    second.__exit__(None, None, None)
    assert torch.get_num_threads() == before
    with cpu_share.torch_threads_for_free_cores(cpu_share.CpuShare(), False) as used:
        assert used == (before, before) and torch.get_num_threads() == before  # not the CPU


@pytest.mark.parametrize("cores, others_busy, said", [
    (2, 1.0, "the other core is busy"), (2, 1.9, "every core is busy"),
    (4, 2.1, "2 of 4 cores are busy"), (4, 3.6, "every core is busy")])
def test_the_device_line_says_how_busy_the_cores_are(monkeypatch, cores, others_busy, said):
    """One thread on two busy cores had been said "the other core is busy"."""
    monkeypatch.setattr(cpu_share.CpuShare, "others_busy", lambda self: others_busy)
    monkeypatch.setattr(cpu_share, "_own_cores", lambda: set(range(cores)))
    share = cpu_share.CpuShare()
    assert share.busy_text() == said
    assert share.threads(cores) == (cores // 2 if "every" in said else cores - round(others_busy))
