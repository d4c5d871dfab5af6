"""Local background from the empty hollow sites: flattening an image before its cells are read.

A HAADF image of a 2D crystal sits on a background that varies across the field: amorphous
carbon or hydrocarbon contamination, a support film, the tails of a probe that is not ideal.
It changes over a few unit cells, and a chalcogen column's level is read against it: a
background step of 5 % of a chalcogen column is as large as the difference between a single-S
column and an S + O column. The hollow site of every cell holds no atom; what it shows is the
background plus the tails of its six neighbouring columns, which are the same for every cell of
a pristine lattice. So the hollow sites measure the local background, cell by cell — as a careful
classical analysis (atomap) does — and subtracting their smoothed map leaves the column levels
on a flat background.

The map is robust to defects (each hollow is replaced by the median of itself and its six
nearest hollows before smoothing) and averages about eight hollows (a Gaussian of
:data:`BACKGROUND_SIGMA_CELLS` lattice constants), which keeps the noise it adds small against
the noise of the column it corrects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..lattice.lattice import Lattice
from ..lattice.sites import within_field
from ..sampling import sample_bilinear

#: Gaussian width of the background map, in lattice constants.
BACKGROUND_SIGMA_CELLS = 0.75
#: Hollows whose median replaces each hollow's value (itself and its six neighbours).
_ROBUST_NEIGHBOURS = 7


def hollow_sites_px(lattice: Lattice) -> np.ndarray:
    """``(N, 2)`` positions (row, col) of the empty hollow site of every chalcogen site's cell."""
    return lattice.chalcogen_sites_px + (lattice.a1_px + lattice.a2_px) / 3.0


def _linear_upsample(field: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a coarse grid (node ``i`` at pixel ``i * step``) to ``shape``:
    two interpolation matrices, applied as dense products (BLAS; faster here than a gather or
    sparse products)."""

    def weights(n: int, m: int) -> np.ndarray:
        pos = np.minimum(np.arange(n, dtype=np.float64) / step, m - 1)
        i0 = np.minimum(pos.astype(int), max(m - 2, 0))
        f = (pos - i0).astype(np.float32)
        w = np.zeros((n, m), np.float32)
        w[np.arange(n), i0] = 1 - f
        if m > 1:
            w[np.arange(n), i0 + 1] += f
        return w

    wy = weights(shape[0], field.shape[0])
    wx = weights(shape[1], field.shape[1])
    return (wy @ np.asarray(field, np.float32)) @ wx.T


def _coarse_background(smoothed: np.ndarray,
                       lattice: Lattice) -> tuple[np.ndarray, int, float] | None:
    """The background map on a coarse grid (node ``i`` at pixel ``i * step``), the grid step and
    the typical hollow level; ``None`` with fewer than 7 hollow sites in the field."""
    img = np.asarray(smoothed, np.float32)
    h, w = img.shape
    pts = hollow_sites_px(lattice)
    pts = pts[within_field(pts, (h, w))]
    if len(pts) < _ROBUST_NEIGHBOURS:
        return None
    from scipy.spatial import cKDTree

    values = sample_bilinear(img, pts[:, 0], pts[:, 1])
    _, nearest = cKDTree(pts).query(pts, k=_ROBUST_NEIGHBOURS)
    values = np.median(values[nearest], axis=1).astype(np.float32)

    a_px = lattice.a_px
    step = max(1, int(a_px / 4))
    gh, gw = (h - 1) // step + 2, (w - 1) // step + 2
    node = np.rint(pts / step).astype(int)
    num = np.zeros((gh, gw), np.float64)
    den = np.zeros((gh, gw), np.float64)
    np.add.at(num, (node[:, 0], node[:, 1]), values)
    np.add.at(den, (node[:, 0], node[:, 1]), 1.0)
    sigma = BACKGROUND_SIGMA_CELLS * a_px / step
    num = ndimage.gaussian_filter(num, sigma, mode="constant", truncate=3.0)
    den = ndimage.gaussian_filter(den, sigma, mode="constant", truncate=3.0)
    typical = float(np.median(values))
    # Far from every hollow (beyond the lattice's edge) the map relaxes to the typical level.
    eps = 1e-3 * float(den.max())
    coarse = (num + eps * typical) / (den + eps)
    return coarse.astype(np.float32), step, typical


def local_background(smoothed: np.ndarray, lattice: Lattice) -> np.ndarray | None:
    """Background under every pixel, measured at the hollow sites of ``smoothed``.

    Parameters
    ----------
    smoothed : ndarray
        The image smoothed as column levels are read (:func:`.normalize.site_smoothed`).
    lattice : Lattice
        The image's lattice.

    Returns
    -------
    ndarray or None
        float32 map of the image's shape, or ``None`` when the field holds too few hollow sites
        (fewer than 7) to map a background.
    """
    found = _coarse_background(smoothed, lattice)
    if found is None:
        return None
    coarse, step, _ = found
    return _linear_upsample(coarse, step, np.shape(smoothed))


def flatten_background(image: np.ndarray, lattice: Lattice,
                       smoothed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Subtract the local background's variation (its typical level stays).

    Parameters
    ----------
    image : ndarray
        The analysis image.
    lattice : Lattice
        Its lattice.
    smoothed : ndarray
        :func:`.normalize.site_smoothed` of ``image``.

    Returns
    -------
    flat, flat_smoothed : ndarray
        ``image`` and ``smoothed`` with the background flattened (float32).
    offset : ndarray or None
        What was subtracted: the map less the typical hollow level (``None`` when the field is
        too small to map a background; then ``flat`` and ``flat_smoothed`` are the inputs
        unchanged).
    """
    img = np.asarray(image, np.float32)
    sm = np.asarray(smoothed, np.float32)
    found = _coarse_background(sm, lattice)
    if found is None:
        return img, sm, None
    coarse, step, typical = found
    offset = _linear_upsample(coarse - np.float32(typical), step, sm.shape)
    return img - offset, sm - offset, offset


__all__ = ["BACKGROUND_SIGMA_CELLS", "flatten_background", "hollow_sites_px", "local_background"]
