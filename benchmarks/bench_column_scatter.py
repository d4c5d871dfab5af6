"""How much the *noise-free* column levels of an image scatter from column to column, and whether
anything around a column predicts it.

Usage:
    python benchmarks/bench_column_scatter.py ../shared/data/devset
    python benchmarks/bench_column_scatter.py --simulated 6

For every image of a folder in the dev-set layout (``image.npy``, ``image_clean.npy``,
``columns.csv``, ``meta.json``) the lattice is found on the noisy image, the noise-free image is
prepared exactly as the detector prepares an image (local background flattened at the hollow
sites, levels in chalcogen units: :func:`napari_atomdefect.core.cells.normalize.prepare_image`) and
every true column is read where the detector reads it. Printed per image:

- mean ± standard deviation of the noise-free level of each column class (``S2``, ``V_S``,
  ``O_S``, metal), before and after the background is flattened;
- the standard deviation of the pristine chalcogen levels left after subtracting what the
  neighbourhood predicts: the median of the chalcogen columns within 1.8 lattice constants (a
  local gain), or a fit on the three nearest metal columns. When neither lowers it, the scatter is
  independent from column to column: no method that reads the image can know it, only an observer
  given the noise-free image (the near-ideal observer of ``../shared/tools``) can;
- ``d'`` of ``V_S`` against ``O_S`` in the noise-free image (mean difference over the pooled
  standard deviation): the separation left before any noise.

``--simulated N`` measures N images of the project's simulator (random microscopes; the same
held-out images as ``bench_accuracy.py --simulated N``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).parent))

DPRIME = "d' V_S/O_S"


def _levels(image: np.ndarray, lattice, flatten: bool):
    from napari_atomdefect.core.cells.normalize import (
        intensity_levels,
        prepare_image,
        site_smoothed,
    )

    if flatten:
        prepared = prepare_image(image, lattice)
        return prepared.smoothed, prepared.levels
    smoothed = site_smoothed(image, lattice)
    return smoothed, intensity_levels(image, lattice, smoothed)


def measure(folder: Path) -> dict:
    """The figures of one image folder (see the module docstring)."""
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.sampling import sample_bilinear

    meta = json.loads((folder / "meta.json").read_text())
    px_nm = meta["pixel_size_A"] / 10
    image = np.load(folder / "image.npy").astype(np.float32)
    clean = np.load(folder / "image_clean.npy").astype(np.float32)
    cols = pd.read_csv(folder / "columns.csv")
    h, w = clean.shape
    cols = cols[(cols.x_px > 2) & (cols.y_px > 2) & (cols.x_px < w - 3)
                & (cols.y_px < h - 3)].reset_index(drop=True)
    lattice = find_lattice(image, meta.get("material", "MoS2"), pixel_size_nm=px_nm)
    metal_name = next(c for c in ("Mo", "W") if (cols["class"] == c).any())
    chalc_name = "S2" if (cols["class"] == "S2").any() else "Se2"
    out: dict = {"image": folder.name}
    for flatten in (False, True):
        smoothed, lv = _levels(clean, lattice, flatten)
        v = (sample_bilinear(smoothed, cols.y_px.to_numpy(), cols.x_px.to_numpy())
             - lv.background) / (lv.chalcogen - lv.background)
        tag = "flat" if flatten else "raw"
        for c in (chalc_name, "V_S", "O_S", metal_name):
            sel = (cols["class"] == c).to_numpy()
            if sel.any():
                out[f"{tag} {c}"] = (float(v[sel].mean()), float(v[sel].std()))
    # Predictability of the pristine chalcogen levels (flattened image).
    is_metal = (cols["class"] == metal_name).to_numpy()
    chalc = ~is_metal & (cols["class"] != "V_Mo").to_numpy()
    pos = cols[["y_px", "x_px"]].to_numpy(float)
    a = lattice.a_px
    ci = np.where(chalc)[0]
    tree = cKDTree(pos[ci])
    pristine = (cols["class"] == chalc_name).to_numpy()
    local = np.array([np.median(v[ci[[j for j in tree.query_ball_point(pos[i], 1.8 * a)
                                      if ci[j] != i]]]) if pristine[i] else np.nan
                      for i in ci])
    own = v[ci]
    keep = pristine[ci] & np.isfinite(local)
    out["scatter"] = float(own[keep].std())
    out["after local chalcogen median"] = float((own[keep] - local[keep]
                                                 + np.median(local[keep])).std())
    mi = np.where(is_metal)[0]
    _, nn = cKDTree(pos[mi]).query(pos[ci[keep]], k=3)
    metal_mean = v[mi][nn].mean(axis=1)
    fit = np.polyfit(metal_mean, own[keep], 1)
    out["after metal neighbours"] = float((own[keep] - np.polyval(fit, metal_mean)).std())
    if "flat V_S" in out and "flat O_S" in out:
        (m1, s1), (m2, s2) = out["flat V_S"], out["flat O_S"]
        out[DPRIME] = abs(m2 - m1) / max(np.sqrt((s1**2 + s2**2) / 2), 1e-9)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="a folder in the dev-set layout")
    ap.add_argument("--simulated", type=int, default=0, help="images of our simulator")
    args = ap.parse_args()
    sets = []
    tmp = tempfile.TemporaryDirectory()
    if args.folder:
        sets.append((str(args.folder), args.folder))
    if args.simulated:
        from bench_accuracy import write_simulated_set

        write_simulated_set(Path(tmp.name), args.simulated)
        sets.append(("our simulator (held-out, random microscopes)", Path(tmp.name)))
    for name, folder in sets:
        print(f"\n{name}")
        rows = [measure(d) for d in sorted(folder.glob("*/")) if (d / "image_clean.npy").exists()]
        for r in rows:
            levels = "  ".join(f"{k} {v[0]:.3f}±{v[1]:.3f}" for k, v in r.items()
                               if isinstance(v, tuple))
            print(f"{r['image']}: {levels}")
            print(f"    pristine chalcogen scatter {r['scatter']:.3f}; after the local chalcogen "
                  f"median {r['after local chalcogen median']:.3f}; after the metal neighbours "
                  f"{r['after metal neighbours']:.3f}"
                  + (f"; d' V_S/O_S {r[DPRIME]:.2f}"
                     if DPRIME in r else ""))
        keys = ["scatter", "after local chalcogen median", "after metal neighbours"]
        print("mean: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in keys)
              + (f", {DPRIME} {np.mean([r[DPRIME] for r in rows if DPRIME in r]):.2f}"
                 if any(DPRIME in r for r in rows) else ""))
    tmp.cleanup()


if __name__ == "__main__":
    main()
