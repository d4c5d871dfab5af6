"""Per-class F1 against pixel size (magnification) and against the alloy fraction.

Usage::

    python benchmarks/bench_sampling.py pixel [--sizes 0.005 0.0065 0.008 0.012 0.02 0.035]
                                             [--dose 2e5] [--seeds 3]
    python benchmarks/bench_sampling.py alloy [--seed 5] [--per-point 3]

``pixel``: simulated MoS2 images of a 9 nm field (one microscope, ``--dose``) at each pixel
size, with 5 % ``V_S``, 5 % ``O_S``, 2 % ``V_S2`` and 2 % ``V_Mo``, analysed with the bundled
model and the pixel size given; the detectors were trained on 0.008-0.02 nm/px.

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


def pixel_sweep(sizes: list[float], dose: float, seeds: int, fov_nm: float = 9.0) -> None:
    """Print the pooled per-class F1 at each pixel size."""
    from napari_atomdefect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    for px in sizes:
        n = int(fov_nm / px)
        scores = []
        for seed in range(seeds):
            sim = simulate_image("MoS2", n, px, MicroscopeParams(dose_e_per_A2=dose), seed=seed,
                                 defect_fractions={"V_S": 0.05, "V_S2": 0.02, "O_S": 0.05,
                                                   "V_Mo": 0.02}, substituents="O")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = detect(sim.image, pixel_size_nm=px, material="MoS2", substituents=["O"])
            scores.append(score(found, sim.defects, 0.08 / px)[["tp", "fp", "fn"]])
        f1 = _pooled_f1(scores)
        print(f"{px:.4f} nm/px (a = {0.316 / px:.1f} px, {n} px): "
              + " ".join(f"{c} {f1[c]:.2f}" for c in ("V_S", "O_S", "V_S2", "V_Mo", "V_S|O_S")),
              flush=True)


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
    p = sub.add_parser("alloy")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--per-point", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "pixel":
        pixel_sweep(args.sizes, args.dose, args.seeds)
    else:
        alloy_sweep(args.seed, args.per_point)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
