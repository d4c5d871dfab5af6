"""The benchmark suite of issue #15: one script, the figures of docs/benchmarks.md.

Usage:
    python benchmarks/bench_suite.py [--sizes 512 1024 4096] [--repeat 3] [--batch-n 6]
                                     [--steps 10] [--skip batch finetune] [--device auto]

Prints, for simulated MoS2 images at 0.012 nm/px (seed 0):

* per image size, in a fresh process each (so that the peak resident memory is that size's):
  lattice detection, intensity levels, tiling, and the whole detection with the model already
  loaded (median of ``--repeat`` runs; one run at 4096^2), and the process's peak RSS;
* batch throughput with 1 and 2 workers (``bench_batch.py``, ``--batch-n`` images of 512^2);
* one fine-tuning step of each stage with the default settings (``FinetuneSettings``): the time
  per stage-2 (detector) step and per stage-1 (noise transfer) step, from ``--steps`` steps after
  a warm-up (median step).

The load of the machine (``os.getloadavg``) is printed with every table: on a shared machine it
explains most of the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_detect import _peak_rss_mb  # noqa: E402  (one peak-memory reader for both scripts)


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def detection_child(size: int, repeat: int, device: str) -> dict:
    """Time the steps of detection at one image size (run in its own process)."""
    from napari_atomdefect.core.cells.normalize import intensity_levels, normalise
    from napari_atomdefect.core.cells.tiles import TileSpec, iter_cell_tiles
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.progress import run_to_end
    from napari_atomdefect.core.simulate.image import simulate_image

    image = simulate_image("MoS2", size, 0.012, seed=0).image
    run_to_end(iter_detect(image[:256, :256], 0.012, "MoS2", device=device))  # model loaded
    reps = repeat if size <= 1024 else 1
    t_lat, t_lev, t_tile, t_det = [], [], [], []
    n = n_cells = 0
    dev_text = ""
    for _ in range(reps):
        t0 = time.perf_counter()
        lattice = find_lattice(image, "MoS2", pixel_size_nm=0.012)
        t1 = time.perf_counter()
        norm = normalise(image, intensity_levels(image, lattice))
        t2 = time.perf_counter()
        for _batch in iter_cell_tiles(norm, lattice, TileSpec(), batch_size=1024, border=True):
            pass
        t3 = time.perf_counter()
        result = run_to_end(iter_detect(image, 0.012, "MoS2", device=device))
        t4 = time.perf_counter()
        t_lat.append(t1 - t0)
        t_lev.append(t2 - t1)
        t_tile.append(t3 - t2)
        t_det.append(t4 - t3)
        n, n_cells, dev_text = len(result["defects"]), lattice.n_cells, result["device"]
    return {"size": size, "cells": n_cells, "defects": n, "device": dev_text,
            "lattice_s": float(np.median(t_lat)), "levels_s": float(np.median(t_lev)),
            "tiling_s": float(np.median(t_tile)), "detect_s": float(np.median(t_det)),
            "runs": reps, "peak_rss_mb": _peak_rss_mb()}


def detection(sizes: list[int], repeat: int, device: str) -> None:
    print(f"\n## Detection (model loaded; median of {repeat} runs up to 1024^2, one at 4096^2)")
    print("| image | cells | lattice | levels | tiling | detect (all steps) | peak RSS | device |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        cmd = [sys.executable, __file__, "--detect-child", str(size), "--repeat", str(repeat),
               "--device", device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {size} x {size} | {r['cells']} | {r['lattice_s']:.2f} s | {r['levels_s']:.2f} s | "
              f"{r['tiling_s']:.2f} s | **{r['detect_s']:.2f} s** | "
              f"{r['peak_rss_mb'] / 1024:.2f} GB | {r['device']} |", flush=True)
    print(_load())


def batch(n: int) -> None:
    sys.path.insert(0, str(HERE))
    from bench_batch import run, write_images

    print(f"\n## Batch throughput ({n} images of 512 x 512, atomdefect batch, local dask cluster)")
    print("| workers | images | wall time | images/min (whole run) | images/min (steady) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        write_images(folder, n, 512)
        for workers in (1, 2):
            r = run(folder, Path(tmp) / f"out_{workers}", workers)
            print(f"| {workers} | {r['ok']}/{r['images']} | {r['wall_s']:.1f} s | "
                  f"{r['per_min']:.0f} | {r['steady_per_min']:.0f} |", flush=True)
    print(_load())


def _per_step(items: list[dict], warmup: int) -> float:
    """Median seconds per step after the first ``warmup`` steps, from the loops' progress items
    (the median, because on a shared machine single steps can take ten times as long)."""
    prog = [i for i in items if not i.get("done")]
    t = np.array([i["elapsed_s"] for i in prog])
    return float(np.median(np.diff(t)[warmup:]))


def finetune_step(steps: int, device: str) -> None:
    """Time per step of stage 2 and stage 1 with the default fine-tuning settings."""
    from napari_atomdefect.core.device import select_device
    from napari_atomdefect.core.finetune.finetune import FinetuneSettings
    from napari_atomdefect.core.models.registry import base_detector, base_ugatit, resolve_model
    from napari_atomdefect.core.simulate.image import simulate_image
    from napari_atomdefect.core.train.datasets import cells_from_simulation
    from napari_atomdefect.core.train.loops import train_detector, train_noise

    s = FinetuneSettings()
    dev, dev_text = select_device(device)
    info = resolve_model(None)
    cells = cells_from_simulation(simulate_image("MoS2", 256, 0.012, seed=0))
    warmup = 2
    total = steps + warmup
    items = list(train_detector(cells, cells, steps=total, batch_size=s.detector_batch_size,
                                lr=s.detector_lr, device=dev, net=base_detector(info),
                                report_every=1, trainable=s.detector_layers))
    t2 = _per_step(items, warmup)
    items = list(train_noise(cells.tiles, cells.tiles, steps=total, batch_size=s.noise_batch_size,
                             lr=s.noise_lr, device=dev, model=base_ugatit(info), report_every=1))
    t1 = _per_step(items, warmup)
    print(f"\n## Fine-tuning step (default settings, {dev_text}, {steps} steps after {warmup})")
    print("| stage | batch | per step | default steps | stage time |")
    print("|---|---|---|---|---|")
    print(f"| 2 (detector) | {s.detector_batch_size} | {t2:.3f} s | {s.detector_steps} | "
          f"{t2 * s.detector_steps:.0f} s |")
    print(f"| 1 (noise transfer) | {s.noise_batch_size} | {t1:.3f} s | {s.noise_steps} | "
          f"{t1 * s.noise_steps:.0f} s |")
    print(_load())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-n", type=int, default=6, help="images for the batch benchmark")
    parser.add_argument("--steps", type=int, default=20, help="timed fine-tuning steps per stage")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["detection", "batch", "finetune"])
    parser.add_argument("--detect-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.detect_child:
        print(json.dumps(detection_child(args.detect_child, args.repeat, args.device)))
        return
    import platform

    import torch

    print(f"# {platform.platform()}, python {platform.python_version()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; {_load()}")
    if "detection" not in args.skip:
        detection(args.sizes, args.repeat, args.device)
    if "batch" not in args.skip:
        batch(args.batch_n)
    if "finetune" not in args.skip:
        finetune_step(args.steps, args.device)


if __name__ == "__main__":
    main()
