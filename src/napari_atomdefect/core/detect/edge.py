"""Defect calls at the edge of the field: their confidence says how often such calls are right.

A column whose centre lies within :data:`EDGE_BAND_A` lattice constants of the image's edge is
read from part of its profile (the tile beyond the edge holds the edge's values). The card's
calibration is fitted on every call of its held-out images, nearly all of them inside the field,
so an edge call's confidence said more than its precision: on 64 held-out images of the four
hosts (``bench_materials.py`` seeds 960000–960005 and 961000–961009) the 110 calls within 0.1
lattice constants of the edge had a mean confidence of 0.84 for a precision of 0.63 (0.1–0.2:
0.89 / 0.84; inside: 0.91 / 0.91). Their log-odds are lowered by :data:`EDGE_LOGIT_SHIFT`, the
maximum-likelihood shift on those calls; on 64 other held-out images (seeds 962000–962015) the
band's 99 calls then have a mean confidence of 0.63 for a precision of 0.60 (0.82 before). So
*Hide below* and *Next low-confidence* treat them as what they are; the calls themselves stay.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Band along the edge of the field (lattice constants) whose defect calls are less reliable.
EDGE_BAND_A = 0.1
#: Shift of the log-odds of a defect call's confidence in that band (maximum likelihood on the
#: band's calls of the first 64 held-out images, see the module docstring).
EDGE_LOGIT_SHIFT = -1.76
#: Classes of the per-site table that are not defect calls.
_PRISTINE = ("metal", "chalcogen")


def edge_distance_a(points: np.ndarray, shape: tuple[int, ...], a_px: float) -> np.ndarray:
    """Distance of ``(N, 2)`` pixel positions (row, col) to the nearest edge of an image of
    ``shape`` (pixel centres at integers, the edge half a pixel beyond them), in lattice
    constants of ``a_px`` pixels."""
    pts = np.asarray(points, float).reshape(-1, 2)
    size = np.asarray(shape[-2:], float)
    return np.minimum(pts + 0.5, size - 0.5 - pts).min(axis=1) / float(a_px)


def edge_adjusted(sites: pd.DataFrame, shape: tuple[int, ...], a_px: float) -> pd.DataFrame:
    """``sites`` (the per-site table) with the confidence of its defect calls within
    :data:`EDGE_BAND_A` of the edge lowered by :data:`EDGE_LOGIT_SHIFT` in log-odds (a copy;
    pristine sites and calls inside the field keep theirs)."""
    if sites.empty or not np.isfinite(a_px) or a_px <= 0:
        return sites
    near = edge_distance_a(sites[["y_px", "x_px"]].to_numpy(), shape, a_px) < EDGE_BAND_A
    calls = near & ~sites["class"].isin(_PRISTINE).to_numpy()
    if not calls.any():
        return sites
    out = sites.copy()
    conf = np.clip(out["confidence"].to_numpy(float)[calls], 1e-6, 1 - 1e-6)
    logit = np.log(conf / (1 - conf)) + EDGE_LOGIT_SHIFT
    values = out["confidence"].to_numpy(float).copy()
    values[calls] = 1 / (1 + np.exp(-logit))
    out["confidence"] = values
    return out


__all__ = ["EDGE_BAND_A", "EDGE_LOGIT_SHIFT", "edge_adjusted", "edge_distance_a"]
