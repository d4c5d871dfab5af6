"""The other metal of a Mo/W alloy brought to the host metal's level before cells are read.

The detectors learnt the chalcogen columns of one host, whose metal columns are all alike; they
read a chalcogen column partly against the metal columns around it. In a Mo/W alloy
(:mod:`..lattice.metal_rungs`) an S₂ column beside W columns of a MoS₂ host then looks dim for
its surroundings: 2 or 3 W neighbours made half of those S₂ columns `O_S` calls (independent
simulator, Mo₀.₇W₀.₃S₂). Each column of the other metal is therefore scaled, above the local
background and within a window that ends well before the chalcogen columns, to the host metal's
level: the chalcogen columns keep every count they have (the other metal's probe tails included),
and the metal vacancies stay empty.
"""

from __future__ import annotations

import numpy as np

from ..lattice.lattice import Lattice
from ..lattice.metal_rungs import EDGE_A, VACANCY_LEVEL, metal_rungs
from ..lattice.sites import within_field
from ..sampling import sample_bilinear

#: Radius (lattice constants) of the window's flat top around a metal column: the column itself.
WINDOW_FLAT_A = 0.2
#: Gaussian fall-off (lattice constants) beyond the flat top; at a chalcogen column (0.577 a
#: away) the window is below 1e-4.
WINDOW_EDGE_A = 0.08


def other_metal_columns(smoothed: np.ndarray, lattice: Lattice,
                        background: float) -> tuple[np.ndarray, float]:
    """How probably each metal site holds the other metal of the lattice's Mo/W alloy, and the
    factor that brings such a column's level to the host metal's.

    Parameters
    ----------
    smoothed : ndarray
        The image smoothed for reading sites (:func:`~.normalize.site_smoothed`).
    lattice : Lattice
        Its lattice; without a :attr:`~..lattice.lattice.Lattice.metal_alloy` reading no site is
        the other metal.
    background : float
        The hollow-site level of ``smoothed``.

    Returns
    -------
    probability : ndarray
        One entry per metal site of the lattice: the posterior of the other metal's rung under
        two log-normal rungs (each its own median and robust spread, weighted by its share);
        0 at a metal vacancy.
    factor : float
        Host metal's level over the other metal's (1.0 when there is none).
    """
    reading = lattice.metal_alloy
    sites = lattice.metal_sites_px
    none = np.zeros(len(sites)), 1.0
    if reading is None or not len(sites):
        return none
    levels = sample_bilinear(smoothed, sites[:, 0], sites[:, 1]) - background
    inner = within_field(sites, smoothed.shape, EDGE_A * lattice.a_px)
    rungs = metal_rungs(levels[inner], reading.other_metal, reading.named)
    if rungs is None:
        return none
    present = levels > VACANCY_LEVEL * float(np.median(levels))
    return np.where(present, rungs.other_probability(levels), 0.0), rungs.host / rungs.other


def equalise_metal_alloy(flat: np.ndarray, smoothed: np.ndarray, lattice: Lattice,
                         background: float, other: tuple[np.ndarray, float]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``flat`` and its ``smoothed`` copy with the other metal's columns at the host's level.

    Parameters
    ----------
    flat, smoothed : ndarray
        The background-flattened image and :func:`~.normalize.site_smoothed` of it.
    lattice : Lattice
        Its lattice (nothing changes without a Mo/W alloy reading).
    background : float
        The hollow-site level of ``smoothed``.
    other : (ndarray, float)
        :func:`other_metal_columns` of ``smoothed``: the columns to scale and by how much.

    Returns
    -------
    flat, smoothed : ndarray
        New arrays (the inputs when nothing changes).
    """
    probability, factor = other
    scaled = probability >= 0.5
    if not scaled.any():
        return flat, smoothed
    from scipy import signal  # (0.7 s to import: only where a Mo/W alloy is read)

    a = lattice.a_px
    radius = int(np.ceil((WINDOW_FLAT_A + 4 * WINDOW_EDGE_A) * a))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    r = np.hypot(yy, xx) / a
    window = np.exp(-0.5 * (np.clip(r - WINDOW_FLAT_A, 0, None) / WINDOW_EDGE_A) ** 2)
    # Impulses at the other metal's columns, spread bilinearly over their four pixels, then the
    # window around each (the columns are a lattice constant apart: windows do not overlap).
    impulses = np.zeros(flat.shape, np.float32)
    pos = lattice.metal_sites_px[scaled]
    r0, c0 = np.floor(pos[:, 0]).astype(int), np.floor(pos[:, 1]).astype(int)
    fr, fc = pos[:, 0] - r0, pos[:, 1] - c0
    h, w = flat.shape
    for dr, dc, wt in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                       (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        np.add.at(impulses, (rr[ok], cc[ok]), wt[ok].astype(np.float32))
    cover = signal.oaconvolve(impulses, window.astype(np.float32), mode="same")
    gain = 1.0 + (factor - 1.0) * np.clip(cover, 0.0, 1.0)
    return ((background + (flat - background) * gain).astype(np.float32),
            (background + (smoothed - background) * gain).astype(np.float32))


__all__ = ["equalise_metal_alloy", "other_metal_columns"]
