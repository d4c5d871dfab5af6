"""Benchmark ``atomdefect batch``: throughput (images per minute) with 1 and 2 local workers.

Usage:
    python benchmarks/bench_batch.py [--n 12] [--size 512] [--workers 1 2]

Writes N simulated MoS2 images (calibrated TIFFs, seeds 0..N-1) to a temporary folder, then runs
the batch once per worker count into a fresh output folder. Two figures per run: the wall time of
the whole command (cluster start, one model load per worker, all images) and the steady rate
(images finished after each worker had finished its first, over the time that took).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def write_images(folder: Path, n: int, size: int) -> None:
    from napari_atomdefect.core.io.image import write_tiff
    from napari_atomdefect.core.simulate.image import simulate_image

    for k in range(n):
        sim = simulate_image("MoS2", size, 0.012, seed=k)
        write_tiff(folder / f"sim_{k:03d}.tif", sim.image, sim.pixel_size_nm)


def run(folder: Path, out: Path, workers: int) -> dict:
    from napari_atomdefect.core.detect.batch import iter_batch

    stamps = []
    t0 = time.perf_counter()
    result = None
    for item in iter_batch([str(folder)], out, workers=workers):
        if item.get("done"):
            result = item
        elif item["done_files"] > item["skipped"]:
            stamps.append(time.perf_counter())
    wall = time.perf_counter() - t0
    n = len(result["summary"])
    # from the moment every worker has finished its first image (model loaded, torch warm)
    k = min(workers, len(stamps)) - 1
    steady = ((len(stamps) - 1 - k) / (stamps[-1] - stamps[k]) * 60 if len(stamps) - 1 > k
              else float("nan"))
    return {"workers": workers, "images": n, "ok": int((result["summary"].status == "ok").sum()),
            "wall_s": wall, "per_min": n / wall * 60, "steady_per_min": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="number of simulated images")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        write_images(folder, args.n, args.size)
        print(f"{args.n} images of {args.size} x {args.size} px, {os.cpu_count()} CPU cores")
        print("| workers | images | wall time (s) | images/min (whole run) | images/min (steady) |")
        print("|---|---|---|---|---|")
        for w in args.workers:
            r = run(folder, Path(tmp) / f"out_{w}", w)
            assert r["ok"] == r["images"], "some images failed"
            print(f"| {w} | {r['images']} | {r['wall_s']:.1f} | {r['per_min']:.0f} | "
                  f"{r['steady_per_min']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
