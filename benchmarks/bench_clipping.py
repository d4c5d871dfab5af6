"""What cut intensities do to the calls, and what is said about them (issue #13: honest
behaviour on real images).

Usage::

    python benchmarks/bench_clipping.py FOLDER [FOLDER ...] [--cuts top:1 top:3 bottom:10 ...]

Every labelled image folder under the given folders (``image.npy``, ``labels.csv``,
``meta.json`` with ``pixel_size_A``, ``material`` and optionally ``substituents``: the layout of
``../shared/data/devset`` and of ``benchmarks/make_multislice_set.py``) is exported as an 8-bit
image with its contrast stretched — the given percentage of its pixels cut at 255 (``top:P``)
or at 0 (``bottom:P``), ``8bit`` for no cut and ``imagej`` for ImageJ's auto contrast (0.35 %
cut, half at each end) — and analysed as a user would (its material, substituents and pixel
size). Printed per image and export: the share of the chalcogen and metal columns cut at the
brightest value and of the pixels around the hollow sites at the darkest
(:func:`~napari_atomdefect.core.detect.clipping.clipped_columns`), whether the cut is said, the
number of calls and the per-class F1 (one-to-one within 0.08 nm, the class must agree).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

RADIUS_NM = 0.08
DEFAULT_CUTS = ("float", "8bit", "imagej", "top:1", "top:3", "top:10", "bottom:5", "bottom:10")


def export_8bit(image: np.ndarray, cut: str) -> np.ndarray:
    """``image`` as an 8-bit export with the cut ``cut`` (see the module's usage)."""
    if cut == "float":
        return image
    low = high = 0.0
    if cut == "imagej":
        low = high = 0.175
    elif cut.startswith("top:"):
        high = float(cut[4:])
    elif cut.startswith("bottom:"):
        low = float(cut[7:])
    elif cut != "8bit":
        raise SystemExit(f"unknown cut {cut!r}: float, 8bit, imagej, top:P or bottom:P")
    lo, hi = np.percentile(image, [low, 100 - high])
    return np.clip(np.round((image - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--cuts", nargs="+", default=list(DEFAULT_CUTS))
    args = parser.parse_args(argv)

    from napari_atomdefect.core.detect.clipping import clipped_columns, clipping_message
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.io.validate import as_analysis_image
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.progress import run_to_end

    folders = [p.parent for root in args.folders for p in sorted(root.rglob("meta.json"))
               if (p.parent / "image.npy").exists()]
    if not folders:
        raise SystemExit("no labelled image folders (image.npy + meta.json) found")
    for folder in folders:
        meta = json.loads((folder / "meta.json").read_text())
        material = meta.get("material", "MoS2")
        substituents = meta.get("substituents") or None
        px = float(meta["pixel_size_A"]) / 10
        image = np.load(folder / "image.npy").astype(np.float64)
        truth = pd.read_csv(folder / "labels.csv")
        for cut in args.cuts:
            exported = export_8bit(image, cut)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run_to_end(iter_detect(exported, px, material,
                                                substituents=substituents))
            table = result["defects"]
            clip = clipped_columns(as_analysis_image(exported), result["lattice"])
            said = clipping_message(clip, get_material(material).metal) is not None
            scores = score(table, truth, RADIUS_NM / px)
            f1 = " ".join(f"{c} {scores.loc[c, 'f1']:.2f}" for c in scores.index
                          if "|" not in c and scores.loc[c, "n_true"] > 0)
            print(f"{folder.name:22s} {cut:9s} chalcogen cut {clip.chalcogen_cut:6.1%}  metal cut "
                  f"{clip.metal_cut:6.1%}  hollow pixels at the bottom {clip.hollow_cut:6.1%}  "
                  f"{'said' if said else '    '}  {len(table):4d} calls  {f1}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
