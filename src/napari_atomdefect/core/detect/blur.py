"""Blurred columns: an image out of focus, a wide probe, vibration or drift within the scan.

Every class rests on how bright a column is against its neighbours and the hollow between them.
A probe wider than any the models were trained on spreads each column into its neighbours (a
metal and a chalcogen column of MoS2 are 0.18 nm apart): the ladder of column levels is
compressed and the single vacancies fade into their neighbours' tails. Measured on the
project's simulator (``benchmarks/bench_blur.py``, forty-first session, 16 images of the four
hosts per width): the training probes are 0.07–0.12 nm wide (FWHM), where F1 is 0.83–0.93; at
0.14 nm 0.80–0.90 (one MoSe2 image of four read 500 false calls); at 0.16 nm 17–42 % of the
defects were missed (F1 0.86 MoS2, 0.83 MoSe2, 0.69 WS2, 0.21 WSe2 with 459 false calls); at
0.20 nm half or more (F1 0.21–0.55); at 0.25 nm nearly all — and nothing was said. An in-situ
movie's frame out of focus, or an image of a microscope without an aberration corrector, is
such an image.

:func:`column_fwhm_nm` measures the columns' width from the image itself: the image folded onto
one unit cell along the lattice (which follows its distortion), fitted with Gaussian columns of
one width on both sublattices and a constant. The width is read in lattice constants and given
in nm by the material's lattice constant, so a wrong pixel size does not change it; it includes
everything that blurs a column — probe, its tails, scan jitter — as the training images' widths
(:data:`~..materials.ranges.TRAINING_RANGES`) do. :func:`blur_message` says when it lies beyond
them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..lattice.lattice import Lattice
from ..lattice.mean_cell import fold_onto_cell
from ..materials.materials import get_material
from ..materials.ranges import TRAINING_RANGES

#: Bins of the folded unit cell along each lattice vector.
FOLD_BINS = 24
#: Pixels folded at most (a regular subsample of larger images: the mean cell of 20 000 pixels
#: is already smooth; the fold's lattice coordinates are the costly part).
FOLD_PIXELS = 20_000
#: Gaussian FWHM over sigma.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Range of the column's Gaussian sigma searched, in lattice constants.
SIGMA_RANGE_A = (0.03, 0.5)
#: Factor by which the measured width may exceed the widest of the training images (their 99th
#: percentile) before it is said.
BLUR_TOLERANCE = 1.15
#: First words of the sentence (a movie names its blurred frames in one sentence instead).
BLUR_NOTE = "The atomic columns are blurred"


def column_fwhm_nm(image: np.ndarray, lattice: Lattice) -> float:
    """The width (FWHM, nm) of the image's atomic columns, fitted on its mean unit cell.

    Parameters
    ----------
    image : ndarray
        The 2-D frame the lattice was found in.
    lattice : Lattice
        Its lattice (the fold follows its local distortion).

    Returns
    -------
    float
        Full width at half maximum of Gaussian columns (both sublattices one width) in nm, at
        the material's lattice constant; NaN where the cell shows no column.
    """
    img = np.asarray(image, float)
    h, w = img.shape
    stride = max(1, int(np.sqrt(h * w / FOLD_PIXELS)))
    rows, cols = np.arange(0, h, stride), np.arange(0, w, stride)
    cell, counts, _ = fold_onto_cell(img[np.ix_(rows, cols)].ravel(),
                                     lattice.fractional_grid(rows, cols).reshape(-1, 2), FOLD_BINS)
    good = counts.ravel() > 0
    if good.sum() < 10 or not np.isfinite(cell).all():
        return float("nan")
    centres = (np.arange(FOLD_BINS) + 0.5) / FOLD_BINS
    uu, vv = np.meshgrid(centres, centres, indexing="ij")
    uv = np.stack([uu.ravel(), vv.ravel()], axis=1)[good]
    values = cell.ravel()[good]
    peak = _brightest(np.where(counts > 0, cell, values.min()))
    basis = np.stack([np.asarray(lattice.a1_px, float), np.asarray(lattice.a2_px, float)])
    a_px = lattice.a_px
    # the brightest column and the sites of the cell's other two thirds: one of them is the
    # other sublattice's column, the other the hollow (which one depends on which sublattice is
    # the brighter): both are scanned coarsely, the better one searched finely
    d2_peak = _squared_distances(uv, peak, basis)
    fits = []
    for third in (1.0 / 3.0, -1.0 / 3.0):
        d2_other = _squared_distances(uv, peak + third, basis)

        def residual(sigma_a: float, d2_other: np.ndarray = d2_other) -> float:
            k = 1.0 / (2.0 * (sigma_a * a_px) ** 2)
            design = np.stack([np.ones_like(values), _gaussian_sums(d2_peak, k),
                               _gaussian_sums(d2_other, k)], axis=1)
            coef, *_ = np.linalg.lstsq(design, values, rcond=None)
            if coef[1] <= 0 or coef[2] < 0:
                return np.inf
            return float(((design @ coef - values) ** 2).sum())

        grid = np.linspace(np.log(SIGMA_RANGE_A[0]), np.log(SIGMA_RANGE_A[1]), 7)
        scan = [residual(float(np.exp(g))) for g in grid]
        fits.append((min(scan), residual, grid, scan))
    lowest, residual, grid, scan = min(fits, key=lambda f: f[0])
    if not np.isfinite(lowest):
        return float("nan")
    sigma_a, _ = _golden_minimum(residual, grid, scan)
    return float(sigma_a * FWHM_PER_SIGMA * lattice.material.a_nm)


#: Least exponent taken: ``exp`` of anything below underflows on a slow path (5x the time of the
#: whole sum at the narrowest widths searched), and ``exp(-700)`` (1e-304) vanishes beside the
#: nearest copy's term of every bin (at least 1e-87 there): the same sums to the bit.
_LEAST_EXPONENT = -700.0


def _gaussian_sums(d2: np.ndarray, k: float) -> np.ndarray:
    """``exp(-d2 * k).sum(1)``: each bin's Gaussian weights of a site's 25 periodic copies."""
    return np.exp(np.maximum(-d2 * k, _LEAST_EXPONENT)).sum(1)


def _brightest(cell: np.ndarray) -> np.ndarray:
    """Fractional position of the folded cell's brightest bin, refined by a parabola through its
    neighbours (the cell is periodic)."""
    bins = cell.shape[0]
    i, j = np.unravel_index(int(np.argmax(cell)), cell.shape)

    def vertex(before: float, at: float, after: float) -> float:
        curvature = before - 2.0 * at + after
        return float(np.clip(0.5 * (before - after) / curvature, -0.5, 0.5)) \
            if curvature < 0 else 0.0

    di = vertex(cell[(i - 1) % bins, j], cell[i, j], cell[(i + 1) % bins, j])
    dj = vertex(cell[i, (j - 1) % bins], cell[i, j], cell[i, (j + 1) % bins])
    return (np.array([i + di, j + dj]) + 0.5) / bins


def _squared_distances(uv: np.ndarray, site: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Squared pixel distances ``(N, 25)`` from the fractional points ``uv`` to the periodic
    copies of ``site`` in the 5 × 5 cells around the folded one."""
    steps = np.arange(-2, 3, dtype=float)
    copies = np.stack(np.meshgrid(steps, steps, indexing="ij"), axis=-1).reshape(-1, 2) + site
    du = uv[:, None, 0] - copies[None, :, 0]
    dv = uv[:, None, 1] - copies[None, :, 1]
    # (the two components written out: a stacked (N, 25, 2) @ (2, 2) product took 4x the time)
    rows = du * basis[0, 0] + dv * basis[1, 0]
    cols = du * basis[0, 1] + dv * basis[1, 1]
    return rows * rows + cols * cols


def _golden_minimum(func: Callable[[float], float], grid: np.ndarray, scan: list[float],
                    steps: int = 14) -> tuple[float, float]:
    """The minimum of ``func`` (of a width) by a golden-section search in the width's
    logarithm around the lowest point of a coarse ``scan`` of it over ``grid`` (logarithms), so
    that an edge minimum is found too. Returns ``(width, value)``."""
    k = int(np.argmin(scan))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = func(float(np.exp(x1))), func(float(np.exp(x2)))
    for _ in range(steps):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = func(float(np.exp(x1)))
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = func(float(np.exp(x2)))
    x, f = (x1, f1) if f1 <= f2 else (x2, f2)
    if scan[k] < f:
        x, f = grid[k], scan[k]
    return float(np.exp(x)), float(f)


def widest_trained_nm(material: str) -> float | None:
    """The widest columns (FWHM, nm; 99th percentile) of the training images of ``material``'s
    model, or ``None`` where the ranges do not hold them."""
    widths = TRAINING_RANGES.get(get_material(material).name, {}).get("column_fwhm_nm")
    return float(widths[2]) if widths else None


def is_blurred(fwhm_nm: float | None, material: str) -> bool:
    """Whether columns ``fwhm_nm`` wide lie beyond the training images of ``material``'s model
    (by more than :data:`BLUR_TOLERANCE`; ``None`` or NaN: not measured)."""
    widest = widest_trained_nm(material)
    return bool(widest and fwhm_nm is not None and np.isfinite(fwhm_nm)
                and fwhm_nm > BLUR_TOLERANCE * widest)


def blur_message(fwhm_nm: float, material: str, frames: str | None = None,
                 several: bool = False) -> str | None:
    """A sentence when the columns are wider than the training images of ``material``'s model
    show them (:func:`is_blurred`), else ``None``.

    ``frames``: a movie's blurred frames as named in a sentence (``"frame 4"``, ``"3 frames (2,
    4, 7)"``; ``several`` when more than one, ``fwhm_nm`` then the widest of them).
    """
    if not is_blurred(fwhm_nm, material):
        return None
    widest = widest_trained_nm(material)
    where = f" in {frames}" if frames else ""
    width = f"{'up to ' if several else ''}{fwhm_nm:.2f} nm wide"
    such = ("such frames" if several else "such a frame") if frames else "such images"
    return (f"{BLUR_NOTE}{where}: {width} (FWHM), where the microscopes the model was trained "
            f"on give at most {widest:.2f} nm — out of focus, a wider probe, vibration or drift "
            f"during the scan. The calls fail in {such}: in simulated images blurred to 0.16 "
            "nm a fifth to two fifths of the defects were missed (and some gained many false "
            "calls), at 0.20 nm half or more — refocus, or check the calls by eye.")


__all__ = ["BLUR_NOTE", "blur_message", "column_fwhm_nm", "is_blurred", "widest_trained_nm"]
