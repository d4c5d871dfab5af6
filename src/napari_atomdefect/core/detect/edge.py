"""Defect calls at the edge of the field: their confidence says how often such calls are right.

A column whose centre lies within :data:`EDGE_BAND_A` lattice constants of the image's edge is
read from part of its profile (the tile beyond the edge holds the edge's values). The card's
calibration is fitted on every call of its held-out images, nearly all of them inside the field,
so an edge call's confidence said more than its precision: on 64 held-out images of the four
hosts (``bench_materials.py`` seeds 960000–960015 per host) the 80 calls within 0.1 lattice
constants of the edge had a mean confidence of 0.84 for a precision of 0.63 (0.1–0.2: 0.85 /
0.88; inside: 0.91 / 0.91) — and the surest of them were the most overconfident (raw ≥ 0.99:
right 0.82 and 1.00 of the time at 0–0.05 and 0.05–0.1 lattice constants). Their log-odds ``z``
become ``EDGE_LOGIT_SCALE * z + EDGE_LOGIT_SHIFT`` (never above ``z``), the maximum-likelihood
affine map on those calls. On 64 other held-out images (seeds 962000–962015 per host) the band's
99 calls (precision 0.61) then have a mean confidence of 0.67 (0.87 before), expected
calibration error 0.07 (0.26 before; a shift alone, fitted the same way: 0.14), mean negative
log-likelihood 0.66 (1.23; shift alone 0.87) — ``benchmarks/bench_edge_calls.py``. So *Hide
below* and *Next low-confidence* treat them as what they are; the calls themselves stay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Band along the edge of the field (lattice constants) whose defect calls are less reliable.
EDGE_BAND_A = 0.1
#: Scale and shift of the log-odds of a defect call's confidence in that band (maximum likelihood
#: on the band's calls of the first 64 held-out images, see the module docstring).
EDGE_LOGIT_SCALE = 0.52
EDGE_LOGIT_SHIFT = -0.82
#: Classes of the per-site table that are not defect calls.
_PRISTINE = ("metal", "chalcogen")


def edge_distance_a(points: np.ndarray, shape: tuple[int, ...], a_px: float) -> np.ndarray:
    """Distance of ``(N, 2)`` pixel positions (row, col) to the nearest edge of an image of
    ``shape`` (pixel centres at integers, the edge half a pixel beyond them), in lattice
    constants of ``a_px`` pixels."""
    pts = np.asarray(points, float).reshape(-1, 2)
    size = np.asarray(shape[-2:], float)
    return np.minimum(pts + 0.5, size - 0.5 - pts).min(axis=1) / float(a_px)


def edge_confidence(confidence: np.ndarray) -> np.ndarray:
    """Confidence of defect calls in the edge band, from their confidence as read (a call at the
    edge is never surer than the same call inside the field)."""
    conf = np.clip(np.asarray(confidence, float), 1e-6, 1 - 1e-6)
    logit = np.log(conf / (1 - conf))
    adjusted = 1 / (1 + np.exp(-(EDGE_LOGIT_SCALE * logit + EDGE_LOGIT_SHIFT)))
    return np.minimum(adjusted, np.asarray(confidence, float))


def edge_adjusted(sites: pd.DataFrame, shape: tuple[int, ...], a_px: float) -> pd.DataFrame:
    """``sites`` (the per-site table) with the confidence of its defect calls within
    :data:`EDGE_BAND_A` of the edge lowered by :func:`edge_confidence` (a copy; pristine sites
    and calls inside the field keep theirs)."""
    if sites.empty or not np.isfinite(a_px) or a_px <= 0:
        return sites
    near = edge_distance_a(sites[["y_px", "x_px"]].to_numpy(), shape, a_px) < EDGE_BAND_A
    calls = near & ~sites["class"].isin(_PRISTINE).to_numpy()
    if not calls.any():
        return sites
    out = sites.copy()
    values = out["confidence"].to_numpy(float).copy()
    values[calls] = edge_confidence(values[calls])
    out["confidence"] = values
    return out


#: Band along each edge of the field in which vacancy calls are counted for
#: :func:`crowded_edge_message`: this many lattice constants, at least
#: :data:`CROWD_MIN_SHARE` and at most :data:`CROWD_MAX_SHARE` of the side.
CROWD_BAND_A = 3.0
CROWD_MIN_SHARE = 0.1
CROWD_MAX_SHARE = 0.25
#: Fewest vacancy calls in the band, least ratio to the rest's rate, and chance (Poisson, at the
#: rest's rate) below which a band is said.
CROWD_MIN_CALLS = 8
CROWD_RATIO = 3.0
CROWD_CHANCE = 1e-4
#: Column kinds counted (missing atoms: what a distorted or damaged stretch of scan looks like).
_VACANCY_KINDS = ("V_X", "V_X2", "V_M")


def crowded_edge_message(sites: pd.DataFrame, shape: tuple[int, ...], a_px: float
                         ) -> str | None:
    """A sentence when the vacancy calls of ``sites`` (the per-site table of one image) crowd
    into a band along one edge of the field, else ``None``.

    A scan's first lines and the first pixels of each line are often distorted (the scan coils
    settling), which shifts and dims the columns there: a new user's real WS2 image (512²) had
    16 of its 27 vacancy calls in the top fifth of the field, 2.7 expected at the rate of the
    rest, and nothing said so. The band with the largest excess is named where it holds at least
    :data:`CROWD_MIN_CALLS` calls, :data:`CROWD_RATIO` times the rest's rate and a Poisson chance
    below :data:`CROWD_CHANCE`; the calls stay as they are.
    """
    from scipy.stats import poisson

    from ..materials.columns import lookup_class

    if sites.empty or not np.isfinite(a_px) or a_px <= 0:
        return None
    kinds = {c: getattr(lookup_class(c), "kind", None) for c in sites["class"].unique()}
    vacancy = sites["class"].map(kinds).isin(_VACANCY_KINDS).to_numpy()
    if vacancy.sum() < CROWD_MIN_CALLS:
        return None
    y, x = sites["y_px"].to_numpy(float), sites["x_px"].to_numpy(float)
    h, w = (float(n) for n in shape[-2:])
    best = None
    for edge, coord, side, low in (("top", y, h, True), ("bottom", y, h, False),
                                   ("left", x, w, True), ("right", x, w, False)):
        width = float(np.clip(CROWD_BAND_A * a_px, CROWD_MIN_SHARE * side, CROWD_MAX_SHARE * side))
        band = coord < width - 0.5 if low else coord > side - 0.5 - width
        n_in, v_in = int(band.sum()), int((vacancy & band).sum())
        n_out = int((~band).sum())
        if not n_in or not n_out or v_in < CROWD_MIN_CALLS:
            continue
        expected = (vacancy & ~band).sum() / n_out * n_in
        if v_in < CROWD_RATIO * expected or poisson.sf(v_in - 1, expected) >= CROWD_CHANCE:
            continue
        if best is None or v_in / max(expected, 1e-9) > best[0]:
            span = (f"rows 0–{width:.0f}" if edge == "top" else
                    f"rows {h - width:.0f}–{h:.0f}" if edge == "bottom" else
                    f"columns 0–{width:.0f}" if edge == "left" else
                    f"columns {w - width:.0f}–{w:.0f}")
            best = (v_in / max(expected, 1e-9), edge, span, v_in, expected, n_in / len(sites))
    if best is None:
        return None
    _, edge, span, v_in, expected, share = best
    return (f"{v_in} of the {int(vacancy.sum())} vacancy calls lie along the {edge} edge "
            f"({span}, {share:.0%} of the sites; {expected:.1f} expected at the rate of the "
            "rest): a scan's first lines and the first pixels of each line are often distorted, "
            "which shifts and dims the columns there — check those calls, or draw a region that "
            "leaves that band out.")


__all__ = ["EDGE_BAND_A", "EDGE_LOGIT_SCALE", "EDGE_LOGIT_SHIFT", "crowded_edge_message",
           "edge_adjusted", "edge_confidence", "edge_distance_a"]
