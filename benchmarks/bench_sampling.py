"""Per-class F1 against pixel size (magnification) and against the alloy fraction.

Usage::

    python benchmarks/bench_sampling.py pixel [--sizes 0.005 0.0065 0.008 0.012 0.02 0.035]
                                             [--dose 2e5] [--seeds 3] [--material MoS2]
    python benchmarks/bench_sampling.py binned FOLDER [FOLDER ...] [--factors 2 3]
    python benchmarks/bench_sampling.py alloy [--seed 5] [--per-point 3]

``pixel``: simulated images of a 9 nm field (one microscope, ``--dose``) of ``--material`` at
each pixel size, with 5 % ``V_X``, 5 % of the light substituent's ``L_X`` (O in a sulfide, S in
a selenide), 2 % ``V_X2`` and 2 % metal vacancies, analysed with the bundled model and the pixel
size given; the detectors were trained on 0.008-0.02 nm/px.

``binned``: every labelled image folder under the given folders (``image.npy``, ``labels.csv``,
``meta.json`` with ``pixel_size_A``, ``material`` and optionally ``substituents``: the dev set's
layout) binned by each factor (pixel blocks summed: the counts of a coarser acquisition at the
same dose), analysed as a user would, and scored (one-to-one within 0.08 nm): per image and
factor, the lattice constant in pixels and the pooled F1 of the calls as detection makes them
(a coarse image read enlarged, ``core/detect/coarse.py``) and read as it is.

``alloy``: for each host and alloying substituent (WS2/MoS2 + Se, WSe2/MoSe2 + S, WSe2/MoSe2 + Te)
and per-atom substituent fraction ``c`` (S/Se up to 0.95, Te up to 0.5), ``--per-point`` images of
random microscopes (320 px, 0.008-0.02 nm/px) with 3 % single and 1 % double vacancies and 1 %
metal vacancies, analysed with the material's default model and that substituent; prints the
pooled per-class F1 and the ladder reading of each image (``J``: read as an ordered, Janus layer).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _pooled_f1(scores: list) -> dict[str, float]:
    t = sum(scores)
    f1 = 2 * t.tp / (2 * t.tp + t.fp + t.fn)
    return {k: float(v) for k, v in f1.items() if v == v}


def pixel_sweep(sizes: list[float], dose: float, seeds: int, fov_nm: float = 9.0,
                material: str = "MoS2") -> None:
    """Print the pooled per-class F1 at each pixel size."""
    from napari_atomdefect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    mat = get_material(material)
    x, light = mat.chalcogen, mat.light_substituent
    fractions = {f"V_{x}": 0.05, f"V_{x}2": 0.02, f"{light}_{x}": 0.05, f"V_{mat.metal}": 0.02}
    classes = (*fractions, f"V_{x}|{light}_{x}")
    for px in sizes:
        n = int(fov_nm / px)
        scores = []
        for seed in range(seeds):
            sim = simulate_image(mat.name, n, px, MicroscopeParams(dose_e_per_A2=dose),
                                 seed=seed, defect_fractions=fractions, substituents=light)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = detect(sim.image, pixel_size_nm=px, material=mat.name,
                               substituents=[light])
            scores.append(score(found, sim.defects, 0.08 / px)[["tp", "fp", "fn"]])
        f1 = _pooled_f1(scores)
        print(f"{mat.name} {px:.4f} nm/px (a = {mat.a_nm / px:.1f} px, {n} px): "
              + " ".join(f"{c} {f1.get(c, float('nan')):.2f}" for c in classes), flush=True)


def binned_sweep(folders: list[Path], factors: list[int]) -> None:
    """Print, per labelled image and binning factor, the pooled F1 read enlarged and as it is."""
    import json

    import pandas as pd

    import napari_atomdefect.core.detect.coarse as coarse
    from napari_atomdefect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.materials.materials import get_material

    found = [p.parent for root in folders for p in sorted(root.rglob("meta.json"))
             if (p.parent / "image.npy").exists()]
    read_from = coarse.COARSEST_READ_A_PX
    for folder in found:
        meta = json.loads((folder / "meta.json").read_text())
        mat = get_material(meta.get("material", "MoS2"))
        image = np.load(folder / "image.npy").astype(np.float64)
        truth = pd.read_csv(folder / "labels.csv")
        px0 = float(meta["pixel_size_A"]) / 10
        for f in factors:
            h, w = (image.shape[0] // f) * f, (image.shape[1] // f) * f
            binned = image[:h, :w].reshape(h // f, f, w // f, f).sum(axis=(1, 3))
            t = truth.assign(y_px=(truth.y_px + 0.5) / f - 0.5, x_px=(truth.x_px + 0.5) / f - 0.5)
            px = px0 * f
            pooled = []
            for threshold in (read_from, 0.0):  # (0: never enlarged)
                coarse.COARSEST_READ_A_PX = threshold
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        calls = detect(binned, pixel_size_nm=px, material=mat.name,
                                       substituents=meta.get("substituents") or None)
                finally:
                    coarse.COARSEST_READ_A_PX = read_from
                s = score(calls, t, 0.08 / px)
                tot = s.loc[[c for c in s.index if "|" not in c], ["tp", "fp", "fn"]].sum()
                pooled.append(2 * tot.tp / max(2 * tot.tp + tot.fp + tot.fn, 1))
            print(f"{folder.name:24s} binned {f}: a = {mat.a_nm / px:5.1f} px  pooled F1 "
                  f"{pooled[0]:.3f} (read as it is: {pooled[1]:.3f})", flush=True)


def alloy_sweep(seed: int, per_point: int) -> None:
    """Print the pooled per-class F1 per host, substituent and fraction."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.progress import run_to_end
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    cases = [("WS2", "Se"), ("MoS2", "Se"), ("WSe2", "S"), ("MoSe2", "S"), ("WSe2", "Te"),
             ("MoSe2", "Te")]
    for name, sub in cases:
        mat = get_material(name)
        x = mat.chalcogen
        rng = np.random.default_rng(seed)
        fractions = (0.05, 0.2, 0.4, 0.6, 0.8, 0.95) if sub in ("S", "Se") else (0.05, 0.2, 0.35,
                                                                                  0.5)
        for c in fractions:
            scores, readings = [], []
            for k in range(per_point):
                params = MicroscopeParams.random(rng, mat)
                px = float(np.exp(rng.uniform(np.log(0.008), np.log(0.02))))
                fr = {"V_X": 0.03, "V_X2": 0.01, "V_M": 0.01, f"{sub}_{x}": 2 * c * (1 - c),
                      f"{sub}2_{x}2": c * c}
                sim = simulate_image(mat, 320, px, params=params, defect_fractions=fr,
                                     seed=seed * 100 + k, substituents=sub)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        r = run_to_end(iter_detect(sim.image, px, mat.name, None, "cpu", "user",
                                                   substituents=[sub]))
                    except Exception as exc:  # an image too weak to show a lattice
                        readings.append(f"failed: {str(exc)[:40]}")
                        continue
                scores.append(score(r["defects"], sim.defects, 0.08 / px)[["tp", "fp", "fn"]])
                readings.append(r["ladder"].median_class + ("J" if r["ladder"].ordered else ""))
            f1 = _pooled_f1(scores) if scores else {}
            print(f"{name} + {sub} c = {c}: " + " ".join(f"{k} {v:.2f}" for k, v in f1.items())
                  + f" | ladder {readings}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pixel")
    p.add_argument("--sizes", type=float, nargs="+",
                   default=[0.005, 0.0065, 0.008, 0.012, 0.02, 0.028, 0.035])
    p.add_argument("--dose", type=float, default=2e5)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--material", default="MoS2")
    p = sub.add_parser("binned")
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--factors", type=int, nargs="+", default=[2, 3])
    p = sub.add_parser("alloy")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--per-point", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "pixel":
        pixel_sweep(args.sizes, args.dose, args.seeds, material=args.material)
    elif args.what == "binned":
        binned_sweep(args.folders, args.factors)
    else:
        alloy_sweep(args.seed, args.per_point)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
