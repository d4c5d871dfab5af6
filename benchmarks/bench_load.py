"""Detection time on a busy machine: threads fitted to the free cores, or one per core (issue #15).

Usage::

    python benchmarks/bench_load.py [--size 1024] [--repeats 5] [--busy 0 1 2]

For each number of busy cores (other processes spinning in a loop, started by this script), the
detection of one simulated MoS2 image (model loaded once) is timed with the thread count chosen
by :class:`~napari_atomdefect.core.cpu_share.CpuShare` (the default) and with one thread per
core regardless, interleaved; medians are printed with the thread count used.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _spin(stop) -> None:  # a process that keeps one core busy
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)

    import torch

    import napari_atomdefect.core.cpu_share as cpu_share
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.models.registry import resolve_model
    from napari_atomdefect.core.progress import run_to_end
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    sim = simulate_image("MoS2", args.size, 0.012, MicroscopeParams(dose_e_per_A2=5e5), seed=0)
    info = resolve_model(None, "MoS2")
    warnings.simplefilter("ignore")
    adaptive = cpu_share.CpuShare.threads

    def run(fit_threads: bool) -> tuple[float, str]:
        cpu_share.CpuShare.threads = adaptive if fit_threads else (lambda self, n: n)
        t = time.perf_counter()
        result = run_to_end(iter_detect(sim.image, 0.012, "MoS2", info, "cpu", "user"))
        return time.perf_counter() - t, result["device"]

    run(True)  # warm-up: model, caches
    print(f"detection of a {args.size}² MoS2 image, {torch.get_num_threads()} torch threads by "
          f"default, {mp.cpu_count()} cores")
    for busy in args.busy:
        stop = mp.Event()
        spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        time.sleep(1.0)
        times: dict[bool, list[float]] = {True: [], False: []}
        used: dict[bool, str] = {}
        for _ in range(args.repeats):
            for fit in (True, False):
                dt, used[fit] = run(fit)
                times[fit].append(dt)
        stop.set()
        for p in spinners:
            p.join()
        for fit in (True, False):
            label = "threads fitted to free cores" if fit else "one thread per core"
            print(f"  {busy} core(s) busy, {label:29s}: median {statistics.median(times[fit]):.2f} s"
                  f" (min {min(times[fit]):.2f}) — {used[fit]}")
    cpu_share.CpuShare.threads = adaptive
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
