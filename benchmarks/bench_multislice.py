"""Score the bundled detectors on labelled multislice images of any material (issues #13, #14).

Usage::

    python benchmarks/bench_multislice.py FOLDER [FOLDER ...] [--json out.json]

Every image folder under the given folders (``image.npy``, ``labels.csv``, ``meta.json`` with
``pixel_size_A`` and ``material``: the layout of ``../shared/data/devset`` and of
``benchmarks/make_multislice_set.py``) is analysed as a user would —
``atomdefect detect IMAGE --material M --substituents D --pixel-size-nm PX`` with the material's
bundled model and the substituents the image was made with (``meta.json``'s ``substituents``; the
material's defaults when absent) — and scored with the package's matching (one-to-one within
0.08 nm, the class must agree). Printed: per material, pooled per-class precision, recall and F1;
per image, the counts, and where the noise-free image puts each class's chalcogen columns
(median level in chalcogen units, as detection reads them) beside the levels of the columns the
detector gave that class — the way to see *why* a class is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

RADIUS_NM = 0.08


def image_folders(roots: list[Path]) -> list[Path]:
    """Every folder under ``roots`` holding an ``image.npy`` and a ``meta.json``."""
    found = []
    for root in roots:
        found += [p.parent for p in sorted(root.rglob("meta.json")) if (p.parent / "image.npy").exists()]
    return found


def column_levels(folder: Path, result: dict, pixel_size_nm: float) -> pd.DataFrame:
    """Noise-free level (chalcogen units, read as detection reads it) of every true chalcogen
    column, with its true class and the class the detector gave its site."""
    from scipy.spatial import cKDTree

    from napari_atomdefect.core.cells.normalize import prepare_image
    from napari_atomdefect.core.sampling import sample_bilinear

    cols = pd.read_csv(folder / "columns.csv")
    lattice = result["lattice"]
    prepared = prepare_image(np.load(folder / "image_clean.npy"), lattice)
    lv = prepared.levels
    h, w = prepared.smoothed.shape
    chalc = cols[~cols["class"].isin(["Mo", "W", "V_Mo", "V_W"])]
    chalc = chalc[(chalc.x_px > 3) & (chalc.y_px > 3) & (chalc.x_px < w - 4) & (chalc.y_px < h - 4)]
    level = (sample_bilinear(prepared.smoothed, chalc.y_px.to_numpy(), chalc.x_px.to_numpy())
             - lv.background) / (lv.chalcogen - lv.background)
    sites = result["sites"]
    sites = sites[sites["sublattice"] == "chalcogen"]
    d, k = cKDTree(sites[["y_px", "x_px"]].to_numpy(float)).query(
        chalc[["y_px", "x_px"]].to_numpy(float))
    called = np.where(d < RADIUS_NM / pixel_size_nm, sites["class"].astype(str).to_numpy()[k],
                      "missed")
    return pd.DataFrame({"true": chalc["class"].to_numpy(), "called": called, "level": level})


def analyse(folder: Path, models: dict[str, str] | None = None, uncalibrated: bool = False
            ) -> tuple[str, pd.DataFrame, pd.DataFrame, dict]:
    """Detection on one image folder: its material, the per-class scores, the column levels and
    the class counts (``models``: a model name or folder per material instead of the bundled
    one; ``uncalibrated``: no pixel size given, the lattice calibrates it)."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.models.registry import resolve_model
    from napari_atomdefect.core.progress import run_to_end

    meta = json.loads((folder / "meta.json").read_text())
    material = meta.get("material", "MoS2")
    px_nm = meta["pixel_size_A"] / 10
    subs = meta.get("substituents")
    info = resolve_model((models or {}).get(material), material, subs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_to_end(iter_detect(np.load(folder / "image.npy"),
                                        None if uncalibrated else px_nm, material, info,
                                        "auto", "file", substituents=subs))
    sites = result["sites"]
    pred = sites[~sites["class"].isin(["metal", "chalcogen"])]
    truth = pd.read_csv(folder / "labels.csv")
    scores = score(pred, truth, RADIUS_NM / px_nm)
    notes = sorted({str(w.message).split("\n")[0][:160] for w in caught})
    return material, scores, column_levels(folder, result, px_nm), {
        "true": truth["class"].value_counts().to_dict(),
        "called": pred["class"].value_counts().to_dict(), "notes": notes}


def pooled(scores: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-class precision, recall and F1 from summed tp/fp/fn."""
    tot = pd.concat(scores).groupby(level=0)[["tp", "fp", "fn", "n_true"]].sum()
    tot["precision"] = tot.tp / (tot.tp + tot.fp).replace(0, np.nan)
    tot["recall"] = tot.tp / (tot.tp + tot.fn).replace(0, np.nan)
    tot["f1"] = 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn).replace(0, np.nan)
    return tot


def level_table(levels: pd.DataFrame) -> pd.DataFrame:
    """Median noise-free level per true class, and per class the detector called."""
    by_true = levels.groupby("true")["level"].agg(["median", "std", "count"])
    by_called = levels.groupby("called")["level"].agg(["median", "count"])
    by_called.columns = [f"{c}_called" for c in by_called.columns]
    return by_true.join(by_called, how="outer")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the pooled scores here")
    ap.add_argument("--model", action="append", default=[], metavar="MATERIAL=MODEL",
                    help="use this model (name or folder) for a material instead of its bundled one")
    ap.add_argument("--uncalibrated", action="store_true",
                    help="give no pixel size: the lattice calibrates it, as for a bare .npy "
                         "(scores stay in pixels)")
    args = ap.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.model)
    per_material: dict[str, list[pd.DataFrame]] = {}
    levels: dict[str, list[pd.DataFrame]] = {}
    for folder in image_folders(args.folders):
        material, scores, lv, counts = analyse(folder, models, args.uncalibrated)
        per_material.setdefault(material, []).append(scores)
        levels.setdefault(material, []).append(lv)
        f1 = ", ".join(f"{c} {r.f1:.2f} ({int(r.n_true)})" for c, r in scores.iterrows()
                       if r.n_true or r.n_pred)
        print(f"{folder}: {material}; F1 {f1}")
        print(f"    true {counts['true']}\n    called {counts['called']}")
        for note in counts["notes"]:
            print(f"    note: {note}")
    out = {}
    for material, scores in per_material.items():
        table = pooled(scores)
        print(f"\n## {material} ({len(scores)} images)\n")
        print(table.round(3).to_string())
        print("\nnoise-free chalcogen column levels (chalcogen units): by true class | by call")
        print(level_table(pd.concat(levels[material])).round(3).to_string())
        out[material] = table.round(4).to_dict(orient="index")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
