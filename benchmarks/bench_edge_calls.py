"""How right are defect calls on columns the field's edge cuts? Fits and checks ``core/detect/edge``.

Usage:
    python benchmarks/bench_edge_calls.py                     # fit on seeds 960000+, check on 962000+
    python benchmarks/bench_edge_calls.py --n-images 8 --size 320

Held-out images of the four hosts (``bench_materials.heldout_image``: random microscopes, doses and
pixel sizes, every substituent of the host's default model) are analysed with the confidence of
edge calls left as read. Each defect call is marked right when a true defect of its class lies
within 0.08 nm. The script prints, per distance from the edge (lattice constants), the calls'
mean confidence against their precision, by confidence bin; then fits the affine map of the
log-odds of the calls within ``EDGE_BAND_A`` (scale and shift, maximum likelihood) on the first
set and scores on the second: the raw confidences, a shift alone, the fitted map and the
map in ``core/detect/edge.py`` (mean negative log-likelihood, expected calibration error over
five bins, mean confidence against precision).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_materials import HOSTS, RADIUS_NM, analyse, heldout_image, material_model  # noqa: E402

DISTANCE_BINS = ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, np.inf))
CONFIDENCE_BINS = ((0.0, 0.7), (0.7, 0.95), (0.95, 0.99), (0.99, 1.01))


def edge_calls(seed: int, n_images: int, size: int) -> pd.DataFrame:
    """Every defect call of ``n_images`` held-out images per host: ``material, confidence`` (as
    read, before the edge map), ``edge_a`` (distance to the edge in lattice constants), ``right``."""
    import napari_atomdefect.core.detect.detect as detect_module
    from napari_atomdefect.core.detect.edge import edge_distance_a

    as_read = detect_module.edge_adjusted
    detect_module.edge_adjusted = lambda sites, shape, a_px: sites
    rows = []
    try:
        for material in HOSTS:
            info, why = material_model(material)
            if info is None:
                print(f"{material}: skipped ({why})")
                continue
            for k in range(n_images):
                item = heldout_image(material, k, size=size, seed=seed)
                result = analyse(item, info)
                pred, truth = result["defects"], item.truth
                if pred.empty:
                    continue
                edge_a = edge_distance_a(pred[["y_px", "x_px"]].to_numpy(), item.image.shape,
                                         result["lattice"].a_px)
                right = np.zeros(len(pred), bool)
                if len(truth):
                    tree = cKDTree(truth[["y_px", "x_px"]].to_numpy(float))
                    radius = RADIUS_NM / item.pixel_size_nm
                    for i, (y, x, cls) in enumerate(pred[["y_px", "x_px", "class"]]
                                                    .itertuples(index=False)):
                        near = tree.query_ball_point([y, x], radius)
                        right[i] = any(truth["class"].iloc[j] == cls for j in near)
                rows.append(pd.DataFrame({"material": material, "seed": item.seed,
                                          "confidence": pred["confidence"].to_numpy(float),
                                          "edge_a": edge_a, "right": right}))
    finally:
        detect_module.edge_adjusted = as_read
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["material", "seed", "confidence", "edge_a", "right"])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _nll(q: np.ndarray, right: np.ndarray) -> float:
    q = np.clip(q, 1e-9, 1 - 1e-9)
    return float(-np.mean(right * np.log(q) + (1 - right) * np.log(1 - q)))


def _ece(q: np.ndarray, right: np.ndarray, bins: int = 5) -> float:
    which = np.clip((q * bins).astype(int), 0, bins - 1)
    return float(sum(abs(q[which == k].mean() - right[which == k].mean()) * (which == k).sum()
                     for k in range(bins) if (which == k).any()) / max(len(q), 1))


def fit_map(confidence: np.ndarray, right: np.ndarray, shift_only: bool = False):
    """Maximum-likelihood ``(scale, shift)`` of the calls' log-odds."""
    z, y = _logit(confidence), right.astype(float)

    def loss(params):
        scale, shift = (1.0, params[0]) if shift_only else params
        return _nll(1 / (1 + np.exp(-(scale * z + shift))), y)

    found = minimize(loss, [0.0] if shift_only else [1.0, 0.0], method="Nelder-Mead").x
    return (1.0, float(found[0])) if shift_only else (float(found[0]), float(found[1]))


def reliability(calls: pd.DataFrame) -> str:
    """Per distance bin: calls, mean confidence, precision, and precision per confidence bin."""
    lines = []
    for lo, hi in DISTANCE_BINS:
        b = calls[(calls.edge_a >= lo) & (calls.edge_a < hi)]
        if b.empty:
            continue
        parts = [f"{lo:.2f}-{hi:.2f} a: {len(b):5d} calls, confidence {b.confidence.mean():.2f}, "
                 f"precision {b.right.mean():.2f} |"]
        for clo, chi in CONFIDENCE_BINS:
            bb = b[(b.confidence >= clo) & (b.confidence < chi)]
            parts.append(f"[{clo:.2f},{min(chi, 1):.2f}) {len(bb)}: "
                         + (f"{bb.right.mean():.2f}" if len(bb) else "-"))
        lines.append(" ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from napari_atomdefect.core.detect.edge import EDGE_BAND_A, edge_confidence

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=16, help="images per host and set")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--fit-seed", type=int, default=960_000)
    ap.add_argument("--check-seed", type=int, default=962_000)
    args = ap.parse_args(argv)
    sets = {name: edge_calls(seed, args.n_images, args.size)
            for name, seed in (("fit", args.fit_seed), ("check", args.check_seed))}
    for name, calls in sets.items():
        print(f"{name} set, every defect call:\n{reliability(calls)}")
    band = {name: calls[calls.edge_a < EDGE_BAND_A] for name, calls in sets.items()}
    fit = band["fit"]
    maps = {"as read": lambda c: c}
    scale0, shift0 = fit_map(fit.confidence.to_numpy(), fit.right.to_numpy(), shift_only=True)
    maps[f"shift {shift0:+.2f}"] = lambda c: 1 / (1 + np.exp(-(_logit(c) + shift0)))
    scale, shift = fit_map(fit.confidence.to_numpy(), fit.right.to_numpy())
    maps[f"fitted {scale:.2f} z {shift:+.2f}"] = (
        lambda c: np.minimum(1 / (1 + np.exp(-(scale * _logit(c) + shift))), c))
    maps["edge.py"] = edge_confidence
    print(f"\ncalls within {EDGE_BAND_A} lattice constants of the edge "
          f"(fit {len(band['fit'])}, check {len(band['check'])}):")
    for label, mapping in maps.items():
        for name, calls in band.items():
            q = mapping(calls.confidence.to_numpy(float))
            y = calls.right.to_numpy(float)
            print(f"  {label:22s} {name:5s}: NLL {_nll(q, y):.3f}  ECE {_ece(q, y):.3f}  "
                  f"confidence {q.mean():.3f}  precision {y.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
