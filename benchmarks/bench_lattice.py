"""Benchmark: lattice detection + unit-cell tiling speed and peak memory.

Targets (issue #2, on 2 CPU cores): 1024 x 1024 in <= 0.5 s; 4096 x 4096 in <= 5 s with peak
memory <= 1 GB. The simulated image is made first and saved; each size is then measured in a fresh
subprocess that loads it, so that the peak RSS is that of lattice detection + tiling (tiles are
streamed in batches of 2048 cells and consumed, as the detector does).

Usage: python benchmarks/bench_lattice.py [--sizes 1024 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(path: str, repeats: int) -> dict:
    import numpy as np

    from napari_atomdefect.core.cells.tiles import iter_cell_tiles
    from napari_atomdefect.core.lattice.lattice import find_lattice

    image = np.load(path)
    size = image.shape[0]
    rss_before = peak_rss_mb()
    times_lat, times_tile = [], []
    n_tiles = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        lat = find_lattice(image, "MoS2", pixel_size_nm=0.012)
        t1 = time.perf_counter()
        n_tiles = 0
        checksum = 0.0
        for batch in iter_cell_tiles(image, lat, batch_size=2048):
            n_tiles += len(batch)
            checksum += float(batch.tiles.mean())  # consume the batch, as a model would
        t2 = time.perf_counter()
        times_lat.append(t1 - t0)
        times_tile.append(t2 - t1)
    peak = peak_rss_mb()
    return {"size": size, "cells": lat.n_cells, "tiles": n_tiles,
            "lattice_s": float(np.median(times_lat)), "tiling_s": float(np.median(times_tile)),
            "total_s": float(np.median(np.add(times_lat, times_tile))),
            "peak_rss_mb": peak, "rss_after_load_mb": rss_before, "checksum": checksum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.repeats)))
        return
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    print(f"{'size':>6} {'cells':>7} {'lattice s':>10} {'tiling s':>9} {'total s':>8} "
          f"{'peak RSS MB':>12}")
    import tempfile
    from pathlib import Path

    import numpy as np

    from napari_atomdefect.core.simulate.image import simulate_image

    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "image.npy"
            np.save(path, simulate_image("MoS2", size, 0.012, seed=0).image)
            out = subprocess.run([sys.executable, __file__, "--child", str(path), "--repeats",
                                  str(args.repeats)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['size']:>6} {r['cells']:>7} {r['lattice_s']:>10.3f} {r['tiling_s']:>9.3f} "
              f"{r['total_s']:>8.3f} {r['peak_rss_mb']:>12.0f}   (Python + libraries + image: "
              f"{r['rss_after_load_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
