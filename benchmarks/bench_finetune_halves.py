"""Fine-tuning on half of a labelled multislice image, scored on the other half.

The user's workflow for a microscope outside the bundled model's range: correct the detections
of some cells, fine-tune on them, detect with the new model. Here the "corrections" are the
truth of the cells in the left half of a labelled image (``make_multislice_set.py`` layout:
``image.npy``, ``columns.csv``, ``meta.json``); the bundled model of the image's material and the
fine-tuned one (default settings, corrections on) then detect on the whole image, and each is
scored on the true defects of the right half (a margin of 5 px from the middle).

Usage::

    python benchmarks/bench_finetune_halves.py FOLDER [FOLDER ...]

Prints per-class F1 (and true counts) before and after, and the run's outcome sentence.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

#: True defects within this distance of the middle (px) are scored in neither half.
MARGIN_PX = 5
#: Matching radius of a detection to a true defect (as ``bench_multislice.py``).
RADIUS_NM = 0.08
#: Classes of ``columns.csv`` that are pristine columns.
PRISTINE = ("Mo", "W", "S2", "Se2", "metal", "chalcogen")


def run(folder: Path, out_dir: Path) -> None:
    import pandas as pd

    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.finetune.finetune import FinetuneSettings, iter_finetune
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.progress import run_to_end

    meta = json.loads((folder / "meta.json").read_text())
    px = meta["pixel_size_A"] / 10
    material, subs = meta.get("material", "MoS2"), meta.get("substituents")
    image = np.load(folder / "image.npy")
    w = image.shape[1]
    cols = pd.read_csv(folder / "columns.csv")
    truth = cols[~cols["class"].isin(PRISTINE)]
    lattice = find_lattice(image, material, pixel_size_nm=px, substituents=subs)
    cells = np.flatnonzero(lattice.metal_sites_px[:, 1] < w / 2)
    corrections = truth[["y_px", "x_px", "class"]].assign(confidence=1.0, source="manual")
    base = f"{material.lower()}-default"
    t0 = time.perf_counter()
    outcome = ""
    for item in iter_finetune(image, lattice, cells, base, folder.name, FinetuneSettings(),
                              corrections=corrections, device="cpu", out_dir=out_dir):
        if item.get("done"):
            outcome = item.get("outcome", "")
    elapsed = time.perf_counter() - t0
    right = truth[truth.x_px >= w / 2 + MARGIN_PX]
    print(f"{folder.name} ({material}, {len(cells)} of {lattice.n_cells} cells fine-tuned on, "
          f"{len(truth) - len(right)} corrected defects in and near them; {elapsed:.0f} s)")
    for name, model in (("bundled", base), ("fine-tuned", str(out_dir / folder.name))):
        result = run_to_end(iter_detect(image, px, material, model, "cpu", "user",
                                        substituents=subs))
        found = result["defects"]
        scores = score(found[found.x_px >= w / 2 + MARGIN_PX], right, RADIUS_NM / px)
        text = ", ".join(f"{c} {r.f1:.2f} ({int(r.n_true)})" for c, r in scores.iterrows()
                         if r.n_true > 0)
        print(f"  {name:10s} right half: {text}")
    print(f"  {outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for folder in args.folders:
            run(folder, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
