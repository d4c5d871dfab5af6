"""Blurred columns: what the detector loses, what the width measurement reads, when it is said.

Simulated images of each host (the project's simulator, held-out seeds) with a random microscope
whose probe is set wider and wider — the training draws 0.07–0.12 nm (FWHM) — are detected as a
user runs them (pixel size given). Per probe width the script prints the width
:func:`~napari_atomdefect.core.detect.blur.column_fwhm_nm` reads, the share of images told
that their columns are blurred, and recall, precision and F1 of the defects (alloying
substitutions apart: none are drawn).

Usage::

    python benchmarks/bench_blur.py [--materials MoS2,WSe2] [--images 4] [--size 384]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

PROBES_NM = (0.08, 0.12, 0.14, 0.16, 0.20, 0.25)


def run(materials: list[str], n_images: int, size: int, seed: int) -> pd.DataFrame:
    from napari_atomdefect.core.detect.blur import BLUR_NOTE
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.errors import AtomDefectError
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    rows = []
    for material in materials:
        for probe in PROBES_NM:
            for k in range(n_images):
                image_seed = seed + 1000 * PROBES_NM.index(probe) + k
                rng = np.random.default_rng(image_seed)
                params = MicroscopeParams.random(rng, material, probe_fwhm_nm=probe,
                                                 dose_e_per_A2=10 ** rng.uniform(5.0, 6.0))
                px = float(rng.uniform(0.010, 0.014))
                sim = simulate_image(material, size, px, params=params, seed=image_seed)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        table = detect(sim.image, pixel_size_nm=px, material=material,
                                       device="cpu")
                    except AtomDefectError:  # (no lattice found: said as such)
                        rows.append((material, probe, k, np.nan, True, 0, 0, len(sim.defects)))
                        continue
                said = any(str(w.message).startswith(BLUR_NOTE) for w in caught)
                s = score(table, sim.defects, 0.08 / px)[["tp", "fp", "fn"]].sum()
                rows.append((material, probe, k, table.attrs.get("column_fwhm_nm", np.nan),
                             said, int(s.tp), int(s.fp), int(s.fn)))
    return pd.DataFrame(rows, columns=["material", "probe_nm", "image", "fwhm_read_nm", "said",
                                       "tp", "fp", "fn"])


def summary(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["material", "probe_nm"])
    out = g.agg(images=("image", "size"), fwhm_read=("fwhm_read_nm", "median"),
                said=("said", "mean"), tp=("tp", "sum"), fp=("fp", "sum"), fn=("fn", "sum"))
    out["recall"] = out.tp / (out.tp + out.fn).clip(lower=1)
    out["precision"] = out.tp / (out.tp + out.fp).clip(lower=1)
    out["F1"] = 2 * out.tp / (2 * out.tp + out.fp + out.fn).clip(lower=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", default="MoS2,WS2,MoSe2,WSe2")
    parser.add_argument("--images", type=int, default=4, help="images per probe and material")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--seed", type=int, default=990000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    df = run(args.materials.split(","), args.images, args.size, args.seed)
    print(summary(df).to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
