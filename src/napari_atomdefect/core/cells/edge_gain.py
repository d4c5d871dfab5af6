"""Columns at the edge of a real scan read dimmer: their gain, measured on the metal columns.

Real HAADF images are often dimmer along their edges than inside: the fly-back of
the scan distorts its first columns, and a rolling-ball background subtraction (as the Nion
images of ``../shared/data/real`` had) cannot fit its ball beyond the field. On those images
the metal columns within half a lattice constant of an edge read 3–20 % below the field's
(35 % along one image's left edge), and the chalcogen columns there were called substituted or
missing several times as often as inside — while on simulated images, which have no such edge,
the columns read the same to 1 % and their calls are as good as inside.

The metal columns measure that gain: away from a metal vacancy they hold the same atom all over
the field. Per side of the field, their amplitude above the typical hollow level, over the
interior's median, is fitted by ``1 + A exp(-d / L)`` (``d`` the column's distance to that side,
``L`` = :data:`EDGE_GAIN_LENGTH_A`; one number per side from every column near it, robust to a
vacancy, so a low dose adds little noise), and where a side is clearly dimmer than the interior
the columns near it are divided by it. Simulated and multislice fields, whose edge columns read
up to 0.1 brighter after the flattening (the same in training and in use), are left alone.
Inside the field nothing changes — a domain of another composition, whose chalcogen tails
brighten its metal columns by a few per cent, is not flattened away.
"""

from __future__ import annotations

import numpy as np

from ..lattice.lattice import Lattice
from ..lattice.sites import within_field
from ..robust import robust_sd
from ..sampling import sample_bilinear
from .background import hollow_sites_px

#: Decay length of the edge's gain (lattice constants): the real images' metal columns are
#: 5-25 % dim within a quarter of a lattice constant of the edge and within 3 % of the
#: interior from half a lattice constant on.
EDGE_GAIN_LENGTH_A = 0.3
#: Columns within this distance of a side (lattice constants) fit its gain and are corrected.
EDGE_GAIN_BAND_A = 1.5
#: Metal columns further than this from the edge (lattice constants) give the interior level.
INTERIOR_FROM_A = 2.0
#: Fewest interior metal columns, and fewest columns near a side, for a gain to be measured.
MIN_INTERIOR_COLUMNS = 20
MIN_SIDE_COLUMNS = 8
#: A side is corrected only where it is dimmer (``A`` negative) by at least this, and by this
#: many times the standard error of ``A``.
MIN_EDGE_DIMMING = 0.05
EDGE_SIGNIFICANCE = 3.0
#: Most a side's gain at the edge is lowered by (beyond it the edge holds no crystal to read).
MAX_EDGE_DIMMING = 0.5


def _strips(h: int, w: int, band: int) -> list[tuple[slice, slice]]:
    """The field's border strips of ``band`` pixels, each pixel in one of them."""
    band = min(band, h // 2, w // 2)
    if band <= 0:
        return []
    return [(slice(0, band), slice(0, w)), (slice(h - band, h), slice(0, w)),
            (slice(band, h - band), slice(0, band)), (slice(band, h - band), slice(w - band, w))]


def _side_distances(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(N, 4)`` distances (pixels) of ``(N, 2)`` positions to the top, bottom, left and right
    edges of a field of ``shape`` (pixel centres at integers, the edge half a pixel beyond)."""
    h, w = shape
    r, c = points[:, 0], points[:, 1]
    return np.stack([r + 0.5, h - 0.5 - r, c + 0.5, w - 0.5 - c], axis=1)


def _typical_hollow(image: np.ndarray, lattice: Lattice) -> float | None:
    """Median level of the lattice's empty hollows inside the field (``None``: none inside)."""
    h, w = image.shape
    hollow = hollow_sites_px(lattice)
    inside = within_field(hollow, (h, w))
    if not inside.any():
        return None
    return float(np.median(sample_bilinear(image, hollow[inside, 0], hollow[inside, 1])))


def edge_gain(smoothed: np.ndarray, lattice: Lattice) -> np.ndarray | None:
    """Amplitude ``A`` of the gain ``1 + A exp(-d / L)`` of each side of the field.

    Parameters
    ----------
    smoothed : ndarray
        The background-flattened image, smoothed as column levels are read.
    lattice : Lattice
        The image's lattice.

    Returns
    -------
    ndarray or None
        ``(4,)`` amplitudes of the top, bottom, left and right sides (0 where a side is not
        clearly dimmer than the interior, or holds too few columns to fit); ``None`` when the
        field holds too few interior metal columns.
    """
    img = np.asarray(smoothed, np.float32)
    return _edge_gain(img, lattice, _typical_hollow(img, lattice))


def _edge_gain(img: np.ndarray, lattice: Lattice, typical: float | None) -> np.ndarray | None:
    """:func:`edge_gain` of the float32 ``img`` whose typical hollow level is ``typical``."""
    h, w = img.shape
    a_px = float(lattice.a_px)
    metal = lattice.metal_sites_px
    if len(metal) < MIN_INTERIOR_COLUMNS or typical is None:
        return None
    amp = sample_bilinear(img, metal[:, 0], metal[:, 1]) - typical
    dist = _side_distances(metal, (h, w)) / a_px
    interior = dist.min(axis=1) > INTERIOR_FROM_A
    if interior.sum() < MIN_INTERIOR_COLUMNS:
        return None
    level = float(np.median(amp[interior]))
    if level <= 0:
        return None
    rel = amp / level - 1.0
    out = np.zeros(4)
    for side in range(4):
        near = np.flatnonzero((dist[:, side] < EDGE_GAIN_BAND_A)
                              & (dist[:, side] == dist.min(axis=1)))
        if len(near) < MIN_SIDE_COLUMNS:
            continue
        e = np.exp(-dist[near, side] / EDGE_GAIN_LENGTH_A)
        r = rel[near]
        keep = np.ones(len(near), bool)
        amplitude = 0.0
        for _ in range(3):  # least squares, dropping columns far off the fit (a vacancy)
            amplitude = float((e[keep] * r[keep]).sum() / max((e[keep] ** 2).sum(), 1e-9))
            res = r - amplitude * e
            spread = robust_sd(res[keep]) + 1e-9
            keep = np.abs(res) < 3 * spread
            if keep.sum() < MIN_SIDE_COLUMNS:
                break
        # Only a dimmer side, and only where that stands out of its own uncertainty: simulated
        # and multislice fields read their edge columns up to 0.1 brighter after the flattening
        # (the same in training and in use), a real scan's dim side 0.1-1.
        se = spread / np.sqrt(max((e[keep] ** 2).sum(), 1e-9))
        if -amplitude >= max(MIN_EDGE_DIMMING, EDGE_SIGNIFICANCE * se):
            out[side] = max(amplitude, -MAX_EDGE_DIMMING)
    return out


def correct_edge_gain(flat: np.ndarray, flat_smoothed: np.ndarray, lattice: Lattice,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``flat`` and ``flat_smoothed`` with the columns near the edge brought to the field's gain
    (:func:`edge_gain`): within :data:`EDGE_GAIN_BAND_A` of a side their level above the
    typical hollow is divided by the product of the sides' gains (copies; the inputs returned
    as they are where no gain is measured)."""
    smoothed = np.asarray(flat_smoothed, np.float32)
    level = _typical_hollow(smoothed, lattice)
    amplitudes = _edge_gain(smoothed, lattice, level)
    if amplitudes is None or not np.any(amplitudes):
        return flat, flat_smoothed
    h, w = smoothed.shape
    typical = np.float32(level)
    a_px = float(lattice.a_px)
    rows = np.arange(h, dtype=np.float32)
    cols = np.arange(w, dtype=np.float32)
    top, bottom = rows + 0.5, h - 0.5 - rows
    left, right = cols + 0.5, w - 0.5 - cols

    def factor(amplitude: float, d_px: np.ndarray) -> np.ndarray:
        return 1.0 + amplitude * np.exp(-d_px / (EDGE_GAIN_LENGTH_A * a_px))

    g_rows = factor(amplitudes[0], top) * factor(amplitudes[1], bottom)  # (h,)
    g_cols = factor(amplitudes[2], left) * factor(amplitudes[3], right)  # (w,)
    out = [np.array(flat, np.float32), np.array(flat_smoothed, np.float32)]
    for rs, cs in _strips(h, w, int(np.ceil(EDGE_GAIN_BAND_A * a_px))):
        gain = (g_rows[rs][:, None] * g_cols[cs][None, :]).astype(np.float32)
        for arr in out:
            arr[rs, cs] = typical + (arr[rs, cs] - typical) / gain
    return out[0], out[1]


__all__ = ["EDGE_GAIN_BAND_A", "EDGE_GAIN_LENGTH_A", "correct_edge_gain", "edge_gain"]
