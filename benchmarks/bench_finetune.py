"""Benchmark fine-tuning: time and F1 before/after on a domain-shifted simulated microscope.

The "user's microscope" is :data:`napari_atomdefect.core.scenarios.SHIFTED_MICROSCOPE`, outside the
bundled model's training range in noise, blur and distortion (the tests use the same one). Fine-tuning uses
the cells of one image (with its defects as the user's corrections, or without them) and is scored
on held-out images of the same microscope.

Usage: python benchmarks/bench_finetune.py [--cells 50] [--no-corrections] [--held-out 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    from napari_atomdefect.core.finetune import FinetuneSettings, iter_finetune
    from napari_atomdefect.core.lattice import find_lattice
    from napari_atomdefect.core.scenarios import pooled_f1
    from napari_atomdefect.core.scenarios import shifted_image as image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--no-corrections", action="store_true")
    parser.add_argument("--held-out", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    held = [image(100 + k) for k in range(args.held_out)]
    before = pooled_f1(None, held)
    train = image(1)
    lat = find_lattice(train.image, "MoS2", pixel_size_nm=0.012)
    rng = np.random.default_rng(0)
    cells = np.sort(rng.choice(lat.n_cells, min(args.cells, lat.n_cells), replace=False))
    corrections = None if args.no_corrections else train.defects
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for _ in iter_finetune(train.image, lat, cells, None, "bench", FinetuneSettings(),
                               corrections=corrections, device="auto", out_dir=Path(tmp)):
            pass
        elapsed = time.perf_counter() - t0
        after = pooled_f1(str(Path(tmp) / "bench"), held)
    print(f"fine-tuning on {len(cells)} cells ({'with' if corrections is not None else 'without'}"
          f" corrections), default settings: {elapsed:.0f} s")
    print(f"{'class':10} {'F1 before':>10} {'F1 after':>10}")
    for c in before.index:
        print(f"{c:10} {before[c]:10.3f} {after[c]:10.3f}")


if __name__ == "__main__":
    main()
