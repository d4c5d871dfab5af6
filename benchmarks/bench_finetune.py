"""Benchmark fine-tuning: time and F1 before/after on a domain-shifted simulated microscope.

The "user's microscope" is one of :data:`tests.scenarios.SCENARIOS` (default
``shifted``, outside the bundled model's training range in noise, blur and distortion; the tests use
the same one). Fine-tuning uses the cells of one image (with its defects as the user's corrections,
or without them) and is scored on held-out images of the same microscope: per-class F1, and the
corrections a user would have to make by hand (additions, deletions, reclassifications) to turn the
detections into the truth.

Usage: python benchmarks/bench_finetune.py [--scenario shifted|sharp_noisy|blur_clean|all]
           [--cells 50] [--no-corrections] [--held-out 12]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

# The reference scenarios live with the tests (tests/scenarios.py), outside the shipped package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(scenario: str, n_cells: int, corrections: bool, n_held_out: int) -> None:
    from tests.scenarios import pooled_scores, shifted_image

    from napari_atomdefect.core.finetune.finetune import FinetuneSettings, iter_finetune
    from napari_atomdefect.core.lattice.lattice import find_lattice

    held = [shifted_image(100 + k, scenario=scenario) for k in range(n_held_out)]
    before, edits_before = pooled_scores(None, held)
    train = shifted_image(1, scenario=scenario)
    lat = find_lattice(train.image, "MoS2", pixel_size_nm=0.012)
    rng = np.random.default_rng(0)
    cells = np.sort(rng.choice(lat.n_cells, min(n_cells, lat.n_cells), replace=False))
    corr = train.defects if corrections else None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        check = "no corrections: no held-out check"
        for item in iter_finetune(train.image, lat, cells, None, "bench", FinetuneSettings(),
                                  corrections=corr, device="auto", out_dir=Path(tmp)):
            if "real_validation" in item:
                check = item["message"]
        elapsed = time.perf_counter() - t0
        after, edits_after = pooled_scores(str(Path(tmp) / "bench"), held)
    print(f"\n{scenario}: fine-tuning on {len(cells)} cells ({'with' if corrections else 'without'}"
          f" corrections), default settings: {elapsed:.0f} s; {n_held_out} held-out images")
    print(check)
    print(f"{'class':10} {'F1 before':>10} {'F1 after':>10}")
    for c in before.index:
        print(f"{c:10} {before[c]:10.3f} {after[c]:10.3f}")
    classes = ["V_S", "V_S2", "O_S", "V_Mo"]
    print(f"{'mean':10} {before[classes].mean():10.3f} {after[classes].mean():10.3f}")
    print(f"corrections needed ({edits_before['n_true']} true defects): "
          f"{edits_before['total']} before, {edits_after['total']} after "
          f"(add {edits_before['add']} -> {edits_after['add']}, delete {edits_before['delete']} "
          f"-> {edits_after['delete']}, reclassify {edits_before['reclassify']} -> "
          f"{edits_after['reclassify']})")


def main() -> None:
    from tests.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="shifted", choices=[*SCENARIOS, "all"])
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--no-corrections", action="store_true")
    parser.add_argument("--held-out", type=int, default=12)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for name in SCENARIOS if args.scenario == "all" else [args.scenario]:
        run(name, args.cells, not args.no_corrections, args.held_out)


if __name__ == "__main__":
    main()
