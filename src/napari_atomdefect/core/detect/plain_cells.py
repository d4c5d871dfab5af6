"""Cells whose own two columns sit plainly on the host's levels: the detector reads a sample.

Most unit cells of a real layer are pristine, and most of those show it plainly: their metal
column and their chalcogen column lie within a few noise widths of the host's levels, far from
every defect's rung (a vacancy empties a column, a single chalcogen atom or an O beside one
leaves 0.45–0.77 of it, a metal vacancy nothing). The detector is the costly step and would call
every such cell pristine. So, where one ladder reading holds, a cell whose two columns both lie
inside the band (:func:`plain_cells`) is read by the detector only in a regular sample (one in
:data:`SAMPLE_EVERY`); when every sampled cell of a batch is called pristine with at least
:data:`CONFIRM_PROBABILITY` at both sites, the others take the sample's mean probabilities, else
the detector reads them all. Nothing a defect could be is skipped:
the band is the narrower of :data:`PLAIN_SIGMAS` robust noise widths of the image's own columns
and :data:`MAX_DEVIATION` of the host level, and a noisy or alloyed image, whose columns spread
wider, leaves few cells plain (below :data:`MIN_PLAIN_SHARE` none is skipped). Above the host level
the band stops at :data:`MAX_DEVIATION` only where the run has a class brighter than the host on
that sublattice (a heavier substituent, the other metal of an alloy, an antisite:
:func:`brighter_classes`); where it has none — MoS2 with O, the default — nothing a defect could be
reads brighter than the host, and the band is the noise's :data:`PLAIN_SIGMAS` widths: on a
1024² MoS2 field (its chalcogen columns' noise 0.08 of their level) 1 241 → 1 379 of 1 934
cells plain. An operating point
of a detector class lowered below neutral reads every cell (the user asks for faint calls, and a
plain cell's small defect probability would be lost in the sample's mean; the metal antisite's
does not: it is read from the levels); the calls can still differ where the
detector would have called a plain column a defect against its level (one false `S_Se` on a
pristine Se2 column of the benchmark sets), and the notes that count the detector's raw calls
(those lifted back to the host rung) count the read cells only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from ..materials.columns import lookup_class
from ..materials.materials import ATOMIC_NUMBER, Material
from ..robust import robust_sd

#: Half-width of the band, in robust standard deviations of the sublattice's relative levels.
PLAIN_SIGMAS = 2.5
#: ... and at most this far from the host level (relative): the lightest defect rung of a
#: chalcogen column lies 0.23 below it (O beside an S at low angles, 0.77), a metal vacancy
#: at 0.
MAX_DEVIATION = {"metal": 0.12, "chalcogen": 0.10}
#: One plain cell in this many is read by the detector, to confirm the others.
SAMPLE_EVERY = 8
#: ... and at least this many of a batch's plain cells (all of them when fewer).
MIN_SAMPLE = 24
#: The sampled plain cells confirm the others when every one of them is called pristine at both
#: sites and at least :data:`CONFIRM_SHARE` of them with this probability or more (the second
#: reading's threshold, :data:`~.detect.SECOND_VIEW_BELOW`; a few plain cells of a 1024² MoS2
#: field read 0.83–0.89 pristine, none was called anything else).
CONFIRM_PROBABILITY = 0.9
CONFIRM_SHARE = 0.9
#: Below this share of plain cells in a batch, the detector reads every cell.
MIN_PLAIN_SHARE = 0.3
#: Set to ``0`` to read every cell with the detector (benchmarks compare the two).
ENV_SWITCH = "ATOMDEFECT_PLAIN_CELLS"


def enabled() -> bool:
    """Whether plain cells may be read in a sample (``ATOMDEFECT_PLAIN_CELLS`` is not ``0``)."""
    return os.environ.get(ENV_SWITCH, "1").strip() != "0"


def relative_levels(levels: np.ndarray) -> tuple[np.ndarray, float]:
    """``levels`` over their median, and the robust standard deviation of that (NaN-safe)."""
    levels = np.asarray(levels, float)
    finite = levels[np.isfinite(levels)]
    median = float(np.median(finite)) if len(finite) else 0.0
    if not median > 0:
        return np.full(len(levels), np.nan), float("inf")
    rel = levels / median
    sd = robust_sd(rel[np.isfinite(rel)], centre=1.0)
    return rel, sd


def in_band(relative: np.ndarray, sd: float, sublattice: str, brighter: bool = True) -> np.ndarray:
    """Which ``relative`` levels lie within the plain band of their ``sublattice``; without a
    ``brighter`` class on it the band reaches :data:`PLAIN_SIGMAS` noise widths above the host
    level whatever :data:`MAX_DEVIATION` says."""
    below = min(PLAIN_SIGMAS * sd, MAX_DEVIATION[sublattice])
    above = below if brighter else PLAIN_SIGMAS * sd
    rel = np.asarray(relative, float)
    return np.isfinite(rel) & (rel >= 1.0 - below) & (rel <= 1.0 + above)


def brighter_classes(classes: Iterable[str], material: Material) -> dict[str, bool]:
    """Per sublattice (``"metal"``, ``"chalcogen"``), whether any of ``classes`` puts an element
    heavier than the host's on it (``Se_S``, ``W_Mo``, ``Mo_S2``; not ``O_S`` or a vacancy)."""
    out = {"metal": False, "chalcogen": False}
    for name in classes:
        column = lookup_class(name)
        if column is None or column.substituent is None:
            continue
        host = material.metal if column.site == "metal" else material.chalcogen
        if ATOMIC_NUMBER[column.substituent] > ATOMIC_NUMBER[host]:
            out[column.site] = True
    return out


def plain_cells(metal_plain: np.ndarray, chalcogen_plain: np.ndarray, metal_rows: np.ndarray,
                chalcogen_rows: np.ndarray, has_metal: np.ndarray) -> np.ndarray:
    """Which tiles of a batch are plain: both own sites present and inside their bands.

    Parameters
    ----------
    metal_plain, chalcogen_plain : ndarray of bool
        Per lattice site of each sublattice: inside its band (and clear of the field's edge).
    metal_rows, chalcogen_rows : ndarray of int
        Per tile, its own site's row in those arrays (``-1``: none).
    has_metal : ndarray of bool
        Per tile, whether it holds its metal site (border tiles do not).
    """
    m_ok = (metal_rows >= 0) & has_metal
    c_ok = chalcogen_rows >= 0
    out = np.zeros(len(metal_rows), bool)
    out[m_ok & c_ok] = (metal_plain[metal_rows[m_ok & c_ok]]
                        & chalcogen_plain[chalcogen_rows[m_ok & c_ok]])
    return out


def sample(plain: np.ndarray) -> np.ndarray:
    """The plain tiles the detector reads all the same: one in :data:`SAMPLE_EVERY`, at least
    :data:`MIN_SAMPLE` (every plain tile when a batch has too few to skip any)."""
    idx = np.flatnonzero(plain)
    picked = np.zeros(len(plain), bool)
    if len(idx) <= MIN_SAMPLE or len(idx) < MIN_PLAIN_SHARE * len(plain):
        picked[idx] = True
        return picked
    step = max(1, min(SAMPLE_EVERY, len(idx) // MIN_SAMPLE))
    picked[idx[::step]] = True
    return picked


def confirmed(p_metal: np.ndarray, p_chalcogen: np.ndarray) -> bool:
    """Whether the sampled plain tiles (rows of the site probabilities, pristine first) are every
    one called pristine at both sites, and at least :data:`CONFIRM_SHARE` of them with
    :data:`CONFIRM_PROBABILITY` or more."""
    if not len(p_metal):
        return False
    pristine = (p_metal.argmax(1) == 0) & (p_chalcogen.argmax(1) == 0)
    sure = (p_metal[:, 0] >= CONFIRM_PROBABILITY) & (p_chalcogen[:, 0] >= CONFIRM_PROBABILITY)
    return bool(pristine.all() and sure.mean() >= CONFIRM_SHARE)


__all__ = ["CONFIRM_PROBABILITY", "CONFIRM_SHARE", "ENV_SWITCH", "MAX_DEVIATION", "MIN_PLAIN_SHARE",
           "MIN_SAMPLE", "PLAIN_SIGMAS", "SAMPLE_EVERY", "brighter_classes", "confirmed", "enabled",
           "in_band", "plain_cells", "relative_levels", "sample"]
