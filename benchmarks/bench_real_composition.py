"""What the real images' own contrast says about their chalcogen columns (no model involved).

Every chalcogen column of a real image is read as the detector's normalisation reads it (the image
smoothed over 0.08 lattice constants, sampled at the lattice's sites, the hollow-site level
subtracted) but in units of the image's *metal* column instead of its median chalcogen column. The
metal column does not change when S is replaced by Se, so images of one microscope share one
scale: their S2, S + Se and Se2 columns fall at the same metal-relative levels whatever each image's
composition, and a layer's composition can be read against the others'.

The script prints, per image, percentiles of the chalcogen/metal levels and the fractions of
columns in three bands (below, between and above the two cut levels given), and can draw the
histograms.

Usage::

    python benchmarks/bench_real_composition.py ../shared/data/real [--material WS2]
        [--cuts 0.26 0.47] [--figure docs/images/real_composition.png]

The cut levels are the midpoints of the single-atom model's S2, S + Se and Se2 levels for the
microscope of the data (100 kV, 80–200 mrad: S2, S + Se and Se2 at 0.16, 0.40 and 0.65 of a W
column with the multislice W factor 0.83, see docs/physics.md);
pass your own for another microscope.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def metal_relative_levels(path: Path, material: str) -> tuple[np.ndarray, float]:
    """Chalcogen-column levels of one image over its median metal column, and its lattice
    constant in pixels."""
    from napari_atomdefect.core.cells.normalize import intensity_levels, site_smoothed
    from napari_atomdefect.core.io.image import read_image
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.sampling import sample_bilinear

    arr = np.asarray(read_image(path).data, np.float32)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        lattice = find_lattice(arr, get_material(material))
    smoothed = site_smoothed(arr, lattice)
    levels = intensity_levels(arr, lattice, smoothed)
    h, w = arr.shape
    p = lattice.chalcogen_sites_px
    p = p[(p[:, 0] > 2) & (p[:, 0] < h - 3) & (p[:, 1] > 2) & (p[:, 1] < w - 3)]
    values = sample_bilinear(smoothed, p[:, 0], p[:, 1])
    return (values - levels.background) / (levels.metal - levels.background), lattice.a_px


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="folder of real images (.tif, .dm4, ...)")
    ap.add_argument("--material", default="WS2", help="host material of the lattice search")
    ap.add_argument("--cuts", nargs=2, type=float, default=(0.28, 0.52),
                    help="chalcogen/metal levels between S2 and S+Se, and S+Se and Se2")
    ap.add_argument("--figure", type=Path, help="write the histograms to this PNG")
    args = ap.parse_args(argv)
    files = sorted(f for f in args.folder.iterdir() if f.suffix.lower() in
                   (".tif", ".tiff", ".dm3", ".dm4", ".emd", ".npy"))
    lo, hi = args.cuts
    rows = []
    print(f"{'image':58s} {'a_px':>5s}  chalcogen/metal p5 p25 p50 p75 p95   "
          f"<{lo:g}  {lo:g}-{hi:g}  >{hi:g}")
    for f in files:
        v, a_px = metal_relative_levels(f, args.material)
        pct = np.percentile(v, [5, 25, 50, 75, 95])
        bands = [(v < lo).mean(), ((v >= lo) & (v < hi)).mean(), (v >= hi).mean()]
        rows.append((f.stem, v))
        print(f"{f.stem[:58]:58s} {a_px:5.1f}  " + " ".join(f"{x:.2f}" for x in pct)
              + "   " + "  ".join(f"{b:5.0%}" for b in bands))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.9 * len(rows)), sharex=True)
        for ax, (name, v) in zip(np.atleast_1d(axes), rows, strict=True):
            ax.hist(v, bins=np.arange(0, 0.9, 0.0125), color="0.35")
            for cut in (lo, hi):
                ax.axvline(cut, color="tab:red", lw=0.8, ls="--")
            ax.set_title(name[:60], fontsize=8)
            ax.set_ylabel("columns", fontsize=8)
        np.atleast_1d(axes)[-1].set_xlabel("chalcogen column / metal column (above background)")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=90)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
