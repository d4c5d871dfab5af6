"""Do the calls on a real image survive what another microscope or another user would change?

A real image of another microscope differs from ours in ways that must not change what its
columns hold: the scan direction (rotated by 90°, mirrored, or by any angle), the pixel size (a
coarser scan: 2 × 2 binning), the field (a crop), the detector's gain and offset and the file's
integer type, and the dose (fewer electrons: Poisson noise added after a scale to counts). Each
variant of every image is analysed like the original (same material and substituents; the file's
pixel size scaled by the variant, or none) and the share of its chalcogen columns in each class is
printed beside the original's, with the largest change and the fit check's messages.

Usage::

    python benchmarks/bench_real_invariance.py ../shared/data/real [--material WS2]
        [--substituents Se] [--variants rot90 mirror rot23 bin2 crop gain uint16 dose]

A variant whose shares move by more than a few per cent of the columns (beyond what the cut edge
and the noise of a smaller field explain) points to a step that depends on the scan, the
sampling or the scale.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

VARIANTS = ("rot90", "mirror", "rot23", "bin2", "crop", "gain", "uint16", "dose")
#: Electrons per pixel at the image's mean in the ``dose`` variant.
DOSE_COUNTS = 40.0


def make_variant(image: np.ndarray, pixel_size_nm: float | None, name: str,
                 rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
    """``image`` as variant ``name``, and its pixel size."""
    from scipy import ndimage

    img = np.asarray(image, np.float64)
    if name == "original":
        return img, pixel_size_nm
    if name == "rot90":
        return np.rot90(img).copy(), pixel_size_nm
    if name == "mirror":
        return img[:, ::-1].copy(), pixel_size_nm
    if name == "rot23":  # any angle: rotate, keep the inscribed square the rotation filled
        rotated = ndimage.rotate(img, 23.0, reshape=True, order=3, mode="nearest")
        side = int(min(img.shape) / (np.cos(np.radians(23)) + np.sin(np.radians(23))))
        cy, cx = np.array(rotated.shape) // 2
        return rotated[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2].copy(), \
            pixel_size_nm
    if name == "bin2":
        h, w = (s // 2 * 2 for s in img.shape)
        return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3)), \
            None if pixel_size_nm is None else 2 * pixel_size_nm
    if name == "crop":
        h, w = img.shape
        return img[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2].copy(), pixel_size_nm
    if name == "gain":
        return img * 37.0 + 1000.0, pixel_size_nm
    if name == "uint16":
        lo, hi = np.percentile(img, [0.01, 99.99])
        return (np.clip((img - lo) / (hi - lo), 0, 1) * 65535).astype(np.uint16), pixel_size_nm
    if name == "dose":
        lo = np.percentile(img, 0.5)
        counts = (img - lo) / max(np.mean(img - lo), 1e-12) * DOSE_COUNTS
        return rng.poisson(np.clip(counts, 0, None)).astype(np.float64), pixel_size_nm
    raise ValueError(f"unknown variant {name!r}")


def class_shares(image: np.ndarray, pixel_size_nm: float | None, material: str,
                 substituents: str | None) -> tuple[dict[str, float], dict]:
    """Share of the chalcogen columns in each class, and the run's summary."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.progress import run_to_end

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect(image, pixel_size_nm, material, None, "cpu",
                                        "file" if pixel_size_nm else "user",
                                        substituents=substituents))
    assert result is not None
    sites = result["sites"]
    chalc = sites[sites["sublattice"] == "chalcogen"]["class"].astype(str)
    shares = (chalc.value_counts() / max(len(chalc), 1)).to_dict()
    summary = {"n": len(chalc), "px": result["lattice"].pixel_size_nm,
               "ladder": result["ladder"].median_class,
               "fit": [m.split(".")[0][:90] for m in result["fit_messages"]]}
    return shares, summary


def main(argv: list[str] | None = None) -> int:
    from napari_atomdefect.core.io.image import read_image

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--material", default="WS2")
    p.add_argument("--substituents", default="Se")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    files = sorted(f for f in args.folder.iterdir()
                   if f.suffix.lower() in (".tif", ".tiff", ".npy", ".dm4", ".dm3"))
    if not files:
        print(f"No images in {args.folder}.")
        return 2
    worst = 0.0
    for f in files:
        stem = read_image(f)
        print(f"\n{f.name} ({stem.data.shape[0]}×{stem.data.shape[1]}, pixel size "
              f"{stem.pixel_size_nm or 'not in the file'}), {args.material} with "
              f"{args.substituents or 'vacancies only'}")
        rng = np.random.default_rng(args.seed)
        base, info = class_shares(stem.data, stem.pixel_size_nm, args.material, args.substituents)
        classes = sorted(base, key=lambda c: -base[c])
        print(f"  {'variant':9s} {'cols':>5s} {'nm/px':>7s} {'median':>9s} "
              + " ".join(f"{c:>8s}" for c in classes) + "  max change  fit")
        print(f"  {'original':9s} {info['n']:5d} {info['px']:7.4f} {info['ladder']:>9s} "
              + " ".join(f"{base.get(c, 0):8.3f}" for c in classes) + f"  {'':10s}  "
              + "; ".join(info["fit"]))
        for name in args.variants:
            img, px = make_variant(stem.data, stem.pixel_size_nm, name, rng)
            shares, s = class_shares(img, px, args.material, args.substituents)
            change = max(abs(shares.get(c, 0) - base.get(c, 0)) for c in set(shares) | set(base))
            worst = max(worst, change)
            print(f"  {name:9s} {s['n']:5d} {s['px']:7.4f} {s['ladder']:>9s} "
                  + " ".join(f"{shares.get(c, 0):8.3f}" for c in classes)
                  + f"  {change:10.3f}  " + "; ".join(s["fit"]))
    print(f"\nLargest change of a class share: {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
