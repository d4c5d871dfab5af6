"""Where the crystal is: lattice sites over vacuum or amorphous material are left out.

Real images of 2D layers hold holes (often made by the beam) and patches of amorphous material.
The lattice found by the Fourier analysis extends over them by about a unit cell (its phase and
amplitude maps are smooth on that scale), and a cell tiled there would be read as a cluster of
vacancies: a ring of `V_Mo` and `V_S2` calls inside every hole.

A site belongs to the crystal when the columns around it stand above the empty hollow sites
around them. :func:`crystal_support` measures that locally: every column's level above its
nearest hollows, over its sublattice's typical level, and the median of that over the six
columns of each sublattice nearest the site; the better of the two sublattices counts (in an
alloy region the chalcogen columns may sit on another rung, the metal ones do not). A point
defect changes one or two of them and leaves the median near 1; over vacuum the columns read
like the hollows (about 0), and over amorphous material the column and hollow positions see
the same random structure (0.1–0.4). Sites below :data:`MIN_CRYSTAL_SUPPORT` are left out of
the lattice, so no cell is tiled, classified or counted there. Within about half a lattice
constant of a hole's edge the sites stay: the columns there are the edge's.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..sampling import sample_bilinear
from .sites import within_field

#: Columns of each sublattice compared around a site (its nearest six, within
#: :data:`NEIGHBOUR_RADIUS_CELLS` lattice constants), and hollows giving each column's local
#: background.
NEAREST_COLUMNS = 6
NEAREST_HOLLOWS = 6
NEIGHBOUR_RADIUS_CELLS = 2.2
#: Least local column-over-hollow contrast, as a fraction of the image's typical one, for a site
#: to count as crystal (measured: 0.44–1.0 on 100 random simulated images including alloys,
#: contamination and doses of 1e4 e/Å², 0.73–1.0 on the real, dev-set and multislice images;
#: about 0 over vacuum and 0.1–0.4 over amorphous material).
MIN_CRYSTAL_SUPPORT = 0.4
#: A column below this fraction of its sublattice's typical level counts as missing, and its
#: site needs :data:`MIN_SUPPORT_OF_EMPTY_SITE` (point defects in a crystal: 0.7–1.0).
PRESENT_LEVEL = 0.5
MIN_SUPPORT_OF_EMPTY_SITE = 0.7
#: Percentile of a sublattice's column contrasts taken as the image's typical one (not the
#: median, which a hole covering half the field would pull down).
REFERENCE_PERCENTILE = 75.0
#: Column contrasts below this fraction of the largest are an exactly flat region's.
FLAT = 1e-6


#: Neighbour look-ups (points × neighbours) from which a query runs on every core.
PARALLEL_QUERY_SIZE = 100_000


def nearest_within(tree: cKDTree, points: np.ndarray, k: int, bound: float) -> np.ndarray:
    """``(P, k)`` indices of the ``k`` nearest tree points within ``bound`` (``-1``: none)."""
    k = min(k, tree.n)
    # (threads pay only for large queries: each call starts its own, ~1 ms)
    workers = -1 if len(points) * k > PARALLEL_QUERY_SIZE else 1
    _, idx = tree.query(points, k=k, distance_upper_bound=bound, workers=workers)
    idx = np.asarray(idx).reshape(len(points), k)
    return np.where(idx < tree.n, idx, -1)


def median_of(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Median over each row of ``values[idx]``, ignoring ``-1`` and NaN values (NaN where a row
    has none): ``np.nanmedian`` of the rows, to the bit, at a fifth of its time."""
    picked = np.where(idx >= 0, np.asarray(values)[np.maximum(idx, 0)], np.nan)
    n = (~np.isnan(picked)).sum(1)
    picked = np.sort(np.where(np.isnan(picked), np.inf, picked), axis=1)
    rows = np.arange(len(idx))
    lo = picked[rows, np.maximum((n - 1) // 2, 0)]
    hi = picked[rows, np.maximum(n // 2, 0)]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


def crystal_support(smoothed: np.ndarray, columns_px: list[np.ndarray], hollow_px: np.ndarray,
                    a_px: float, faded_px: list[np.ndarray] | None = None,
                    rung_ratio: list[float] | None = None
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Local crystal contrast at every column site of every sublattice.

    Every column's level is read above its local background (the median of its nearest
    hollows) and divided by its sublattice's typical level; a site's support is the larger, over
    the sublattices, of the median of that over the sublattice's columns nearest the site.

    Parameters
    ----------
    smoothed : ndarray
        The image smoothed as column levels are read.
    columns_px : list of ndarray
        ``(N, 2)`` positions (row, col) of the column sites of each sublattice (metal,
        chalcogen), vacant or not.
    hollow_px : ndarray
        ``(K, 2)`` positions of the hollow sites.
    a_px : float
        Lattice constant in pixels.
    faded_px : list of ndarray, optional
        Per sublattice, positions the lattice predicts where its Bragg amplitude fades (not
        sites any more): read as neighbours like the others, so that a site at the edge of a
        faded region is not judged by the crystal on its other side alone.
    rung_ratio : list of float, optional
        Per sublattice, the ratio of two rungs its present columns hold (1: one rung, the
        default; a Mo/W alloy's metal sublattice: its W/Mo ratio,
        :attr:`~.metal_rungs.MetalAlloyReading.ratio`): a column on the lower rung counts at the
        upper one's level. (The Mo columns of a WS2 host read 0.4 of the W ones: among S + Se
        neighbours one in five of them had been left out as over amorphous material.)

    Returns
    -------
    support : list of ndarray
        Per sublattice, ``(N,)``: about 1 in a crystal, about 0 over vacuum, 0 where no column
        is near.
    presence : list of ndarray
        Per sublattice, ``(N,)``: each site's own column level above its local background, over
        its sublattice's typical level (1 where the sublattice shows no contrast).
    """
    n_own = [len(np.asarray(c).reshape(-1, 2)) for c in columns_px]
    if faded_px is not None:
        columns_px = [np.concatenate([np.asarray(c, float).reshape(-1, 2),
                                      np.asarray(f, float).reshape(-1, 2)])
                      for c, f in zip(columns_px, faded_px, strict=True)]
    columns = [np.asarray(c, float).reshape(-1, 2) for c in columns_px]
    sites = np.concatenate(columns) if columns else np.zeros((0, 2))
    hollow_px = np.asarray(hollow_px, float).reshape(-1, 2)
    h, w = smoothed.shape
    # (a hollow beyond the edge would read the edge's pixels)
    hollow_px = hollow_px[within_field(hollow_px, (h, w))]
    if len(sites) == 0 or len(hollow_px) == 0:
        return [np.zeros(n) for n in n_own], [np.zeros(n) for n in n_own]

    def values(points: np.ndarray) -> np.ndarray:
        return sample_bilinear(smoothed, points[:, 0], points[:, 1], dtype=np.float64)

    bound = NEIGHBOUR_RADIUS_CELLS * a_px
    v_hollow = values(hollow_px)
    local_bg = median_of(v_hollow, nearest_within(cKDTree(hollow_px), sites, NEAREST_HOLLOWS,
                                                  bound))
    above = values(sites) - np.where(np.isfinite(local_bg), local_bg, np.median(v_hollow))
    near, presence, start = [], np.ones(len(sites)), 0
    ratios = [1.0] * len(columns) if rung_ratio is None else list(rung_ratio)
    for pos, ratio in zip(columns, ratios, strict=True):
        own = above[start:start + len(pos)]
        # (sites over an exactly flat region — a zero border of a padded or registered frame
        # — are no part of the typical contrast: at four fifths of the field they had made it 0
        # and every site "crystal")
        real = own[np.abs(own) > FLAT * np.abs(own).max()] if len(own) else own
        reference = float(np.percentile(real, REFERENCE_PERCENTILE)) if len(real) else np.nan
        start += len(pos)
        if not np.isfinite(reference) or reference <= 0:
            continue  # this sublattice shows no contrast: it cannot tell
        relative = own / reference
        if ratio > 1.0:  # the lower rung's columns, not a vacancy, at the upper rung's level
            lower = (relative < 1.0 / np.sqrt(ratio)) & (relative >= PRESENT_LEVEL / ratio)
            relative = np.where(lower, relative * ratio, relative)
        presence[start - len(pos):start] = relative
        near.append(median_of(relative, nearest_within(cKDTree(pos), sites, NEAREST_COLUMNS,
                                                        bound)))
    splits = np.cumsum([len(c) for c in columns])[:-1]

    def judged(values: np.ndarray) -> list[np.ndarray]:  # the sites, not the faded positions
        return [v[:n] for v, n in zip(np.split(values, splits), n_own, strict=True)]

    if not near:  # no contrast to compare with: leave every site in
        return [np.ones(n) for n in n_own], judged(presence)
    # The better-supported sublattice: in an alloy region one sublattice's columns sit on
    # another rung of the ladder (S2 in WSe2 reads 0.2 of Se2), the metal ones do not.
    medians = np.stack(near, axis=1)
    with np.errstate(all="ignore"):
        support = np.where(np.isfinite(medians).any(1), np.nanmax(medians, axis=1), 0.0)
    return judged(support), judged(presence)


def in_crystal(smoothed: np.ndarray, columns_px: list[np.ndarray], hollow_px: np.ndarray,
               a_px: float, faded_px: list[np.ndarray] | None = None,
               rung_ratio: list[float] | None = None) -> list[np.ndarray]:
    """Which column sites of each sublattice lie in the crystal.

    A site is in when its :func:`crystal_support` reaches :data:`MIN_CRYSTAL_SUPPORT`; a site
    whose own column is missing (below :data:`PRESENT_LEVEL` of its sublattice's typical level)
    needs :data:`MIN_SUPPORT_OF_EMPTY_SITE`: a vacancy in the crystal has all its neighbours,
    a site a lattice constant into a hole has half of them.

    ``faded_px``, ``rung_ratio``: see :func:`crystal_support`.

    Returns
    -------
    list of ndarray of bool
        Per sublattice of ``columns_px``.
    """
    supports, presences = crystal_support(smoothed, columns_px, hollow_px, a_px, faded_px,
                                          rung_ratio)
    return [(support >= MIN_CRYSTAL_SUPPORT)
            & ((presence >= PRESENT_LEVEL) | (support >= MIN_SUPPORT_OF_EMPTY_SITE))
            for support, presence in zip(supports, presences, strict=True)]


#: The words that mark the note of :func:`off_crystal_message` among a lattice's messages.
OFF_CRYSTAL_NOTE = "over vacuum or amorphous material"


def off_crystal_message(n_left_out: int, n_cells: int) -> str:
    """The note for the user when cells are left out (empty when none are)."""
    if n_left_out <= 0:
        return ""
    share = n_left_out / max(n_cells + n_left_out, 1)
    return f"{cells_and_share(n_left_out, share)} left out {OFF_CRYSTAL_NOTE}: no crystal there."


def cells_and_share(n: int, share: float) -> str:
    """``"74 unit cells (8%) are"``, ``"1 unit cell (under 1%) is"``."""
    percent = "under 1%" if 0 < share < 0.005 else f"{share:.0%}"
    return f"{n} unit cell{' (' if n == 1 else 's ('}{percent}) {'is' if n == 1 else 'are'}"


__all__ = ["MIN_CRYSTAL_SUPPORT", "NEAREST_COLUMNS", "OFF_CRYSTAL_NOTE", "cells_and_share",
           "crystal_support", "in_crystal", "off_crystal_message"]
