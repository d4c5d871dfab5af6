"""Detection under a patchy background, with and without the hollow-site flattening.

Usage:
    python benchmarks/bench_background.py ../shared/data/devset --amplitude 0.15 --repeats 3
    python benchmarks/bench_background.py --simulated 12 --amplitude 0.15

For every image of a folder in the dev-set layout (``image_clean.npy`` in expected electrons per
pixel, ``labels.csv``, ``meta.json``) a patchy background is added to the noise-free image — a
Gaussian random field of correlation length 0.5–1.5 nm, standard deviation ``--amplitude`` times
the image's mean signal, shifted to be non-negative, as contamination adds signal — and the
result is given Poisson noise and 1 e⁻ read noise. Each image is drawn ``--repeats`` times with
other fields. The bundled (or ``--model``) detector then runs twice on the same noisy images:
as shipped (background flattened at the hollow sites, ``core/cells/background.py``) and with the
flattening switched off. Printed: pooled per-class F1 of both (matching radius 0.08 nm).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).parent))


@contextlib.contextmanager
def flattening_off():
    """Detection reads the image without flattening its background (for comparison only)."""
    import napari_atomdefect.core.detect.detect as detect_module
    from napari_atomdefect.core.cells import normalize

    def unflattened(image, lattice, smoothed=None):
        img = np.asarray(image, np.float32)
        sm = normalize.site_smoothed(img, lattice) if smoothed is None else smoothed
        return normalize.PreparedImage(flat=img, smoothed=sm, offset=None,
                                       levels=normalize.intensity_levels(img, lattice, sm))

    original = detect_module.prepare_image
    detect_module.prepare_image = unflattened
    try:
        yield
    finally:
        detect_module.prepare_image = original


def noisy_images(folder: Path, amplitude: float, repeats: int, seed: int = 0):
    """``(name, image, pixel size nm, labels)`` with a patchy background added, re-noised."""
    for d in sorted(folder.glob("*/")):
        if not (d / "image_clean.npy").exists():
            continue
        px_A = json.loads((d / "meta.json").read_text())["pixel_size_A"]
        clean = np.load(d / "image_clean.npy").astype(np.float64)
        labels = pd.read_csv(d / "labels.csv")
        for rep in range(repeats):
            rng = np.random.default_rng([seed, rep, zlib.crc32(d.name.encode())])
            length_px = rng.uniform(5.0, 15.0) / px_A
            field = gaussian_filter(rng.standard_normal(clean.shape), length_px, mode="wrap")
            field = (field - field.mean()) / field.std()
            field -= field.min()
            expected = clean + amplitude * clean.mean() * field
            image = rng.poisson(np.maximum(expected, 0)) + rng.normal(0, 1.0, clean.shape)
            yield f"{d.name}#{rep}", image.astype(np.float32), px_A / 10, labels


def pooled_f1(images, model: str | None) -> dict[str, float]:
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score

    totals: dict[str, np.ndarray] = {}
    for _, image, px_nm, labels in images:
        s = score(detect(image, px_nm, "MoS2", model, device="cpu"), labels, 0.08 / px_nm)
        for c in s.index:
            totals[c] = totals.get(c, np.zeros(3, int)) + s.loc[c, ["tp", "fp", "fn"]].to_numpy(int)
    return {c: 2 * t[0] / max(2 * t[0] + t[1] + t[2], 1) for c, t in totals.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="a folder in the dev-set layout")
    ap.add_argument("--simulated", type=int, default=0, help="images of our simulator instead")
    ap.add_argument("--amplitude", type=float, default=0.15,
                    help="background standard deviation over the mean signal")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            from bench_accuracy import write_simulated_set

            folder = Path(tmp)
            write_simulated_set(folder, args.simulated)
        images = list(noisy_images(folder, args.amplitude, args.repeats))
        flat = pooled_f1(images, args.model)
        with flattening_off():
            raw = pooled_f1(images, args.model)
    print(f"{folder}: {len(images)} images, patchy background {args.amplitude:.2f} of the mean "
          f"signal (0.5–1.5 nm)")
    print(f"{'class':8s} {'flattened':>10s} {'not flattened':>14s}")
    for c in flat:
        print(f"{c:8s} {flat[c]:10.3f} {raw.get(c, float('nan')):14.3f}")


if __name__ == "__main__":
    main()
