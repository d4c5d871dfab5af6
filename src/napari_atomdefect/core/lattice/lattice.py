"""Lattice detection for 2H-TMD monolayers: vectors, sublattices, locally refined sites, calibration.

Pipeline (all steps tolerate scan distortion that varies across the field):

1. :func:`~.fft_peaks.find_reciprocal_basis` picks the hexagon of first-order spots.
2. :mod:`.gpa` turns two reflections into smooth fractional-coordinate maps ``(u(r), v(r))``: the lattice
   follows drift and shear instead of being a rigid grid.
3. The image folded onto one cell (mean over all cells) shows the two occupied honeycomb sites and the
   empty hollow; the material's expected contrast says which one is the metal.
4. Every site predicted from the maps is refined to the local intensity maximum; missing or faint
   columns (vacancies) and outliers fall back to the prediction corrected by their neighbours.
5. The global vectors are the least-squares fit of the refined metal sites; the pixel size is
   calibrated from the material's lattice constant when the file has none or a wrong one.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import AtomDefectError, NoLatticeError
from ..io.blanked import BLANKED_NOTE, blank_pixels, blanked_message, blanked_sites
from ..io.validate import as_analysis_image, check_pixel_size, check_region
from ..materials.columns import (
    DOUBLE_SUBSTITUTION,
    HEAVIER_SUBSTITUENT,
    metal_substituents,
    parse_substituents,
)
from ..materials.materials import (
    ATOMIC_NUMBER,
    METAL_PARTNER,
    Material,
    get_material,
    lattice_constant_range_nm,
)
from ..robust import robust_sd
from ..sampling import sample_bilinear
from .brightness_order import brightness_order, order_note
from .crystal import OFF_CRYSTAL_NOTE, cells_and_share, in_crystal, off_crystal_message
from .fft_peaks import ReciprocalBasis, find_reciprocal_basis, finer_hexagon, spots_stand_out
from .gpa import PhaseMap, image_spectrum, mean_frequency, phase_map
from .mean_cell import fold_onto_cell
from .metal_rungs import (
    EDGE_A,
    METAL_ALLOY_NOTE,
    METAL_TWO_LEVELS_NOTE,
    VACANCY_LEVEL,
    MetalAlloyReading,
    metal_rungs,
    read_metal_alloy,
)
from .metal_rungs import HOSTS as METAL_ALLOY_HOSTS
from .sites import box_smooth, centroid_refine, neighbour_mean, refine_peaks, within_field

#: File and lattice calibrations further apart than this are reported (relative difference).
CALIBRATION_TOLERANCE = 0.03
#: A pixel size the user gives is kept when it disagrees with the lattice (they may know better,
#: or have chosen another material: said), unless the lattice constant it implies is further
#: than this factor from every supported material's: then it is wrong (a 10× slip gives a
#: lattice constant of 3 nm), and the run stops with one sentence rather than write every
#: distance and density in nm wrong.
IMPLAUSIBLE_LATTICE_FACTOR = 1.3
#: Words of the note on a second sublattice too faint to place the chalcogen sites by.
SECOND_SUBLATTICE_NOTE = "The second sublattice is barely visible"
#: Fewest unit cells for a usable lattice.
MIN_CELLS = 6
#: The user is told when the lattice's three nearest-neighbour spacings differ by more than
#: this share of their mean (scan distortion, drift, strain). Simulated fields, whose scans are
#: stretched and sheared by up to 4 %, spread by 0.1-4 %; the multislice and dev-set images by
#: under 1.5 %; the real Nion images by 2-11 %.
DISTORTION_NOTE_SPREAD = 0.05
#: Words that open the note on a distorted lattice.
DISTORTION_NOTE = "The lattice is distorted"
#: Margin (in lattice constants) that an unmeasured border site must keep from the image edge.
#: Zero: a border column is often unmeasured *because* it is a vacancy (no peak to refine), and
#: a margin of 0.05 a dropped a third of the true defects within a quarter lattice constant of
#: the edge (3 % of all defects of small multislice images; the calls kept there are as precise
#: as inside: 49 of 50 right).
BORDER_MARGIN_A = 0.0
#: Chalcogen sublattice offset from the metal in the normalised basis (fractional coordinates).
CHALCOGEN_OFFSET = np.array([1.0 / 3.0, 1.0 / 3.0])

#: Fractional lattice coordinates ``(N, 2)`` of image points ``(N, 2)``.
FracFn = Callable[[np.ndarray], np.ndarray]
#: Fractional lattice coordinates on a grid of rows x cols: ``(len(rows), len(cols), 2)``.
FracGridFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def cell_area_nm2(a_nm: float) -> float:
    """Area of one hexagonal unit cell of lattice constant ``a_nm`` (nm²)."""
    return float(np.sqrt(3) / 2 * a_nm**2)


class CalibrationWarning(UserWarning):
    """The pixel size from the file and the one from the lattice disagree."""


@dataclass
class Lattice:
    """A detected 2H-TMD lattice.

    The basis is normalised: ``a1`` and ``a2`` are 60 degrees apart, right-handed in ``(row, col)``
    (``a1[0]*a2[1] - a1[1]*a2[0] > 0``) and the chalcogen of the cell with metal site ``(i, j)`` is
    at ``metal + (a1 + a2) / 3``.

    Attributes
    ----------
    a1_px, a2_px : ndarray
        Global primitive vectors ``(row, col)`` in pixels (least-squares fit of the metal sites).
    origin_px : ndarray
        Position of metal site ``(0, 0)`` of the global fit.
    pixel_size_nm : float
        Pixel size used for physical units.
    calibration : str
        Where the pixel size came from: ``"file"``, ``"user"`` or ``"lattice"``.
    pixel_size_lattice_nm : float
        Pixel size implied by the material's lattice constant.
    material : Material
    shape : tuple
        Image shape.
    metal_sites_px, chalcogen_sites_px : ndarray
        ``(N, 2)`` locally refined site positions ``(row, col)``.
    metal_index, chalcogen_index : ndarray
        ``(N, 2)`` integer cell indices ``(i, j)`` of each site.
    metal_refined, chalcogen_refined : ndarray of bool
        Whether the position was measured (False: predicted from the lattice, e.g. a vacancy).
    messages : list of str
        Notes for the user (calibration changes, warnings).
    metal_alloy : MetalAlloyReading or None
        The metal columns read as a Mo/W alloy (:mod:`.metal_rungs`), if they are one.
    """

    a1_px: np.ndarray
    a2_px: np.ndarray
    origin_px: np.ndarray
    pixel_size_nm: float
    calibration: str
    pixel_size_lattice_nm: float
    material: Material
    shape: tuple
    metal_sites_px: np.ndarray
    metal_index: np.ndarray
    metal_refined: np.ndarray
    chalcogen_sites_px: np.ndarray
    chalcogen_index: np.ndarray
    chalcogen_refined: np.ndarray
    messages: list = field(default_factory=list)
    phase_maps: tuple = field(default=(), repr=False)
    frac_sign: float = 1.0
    metal_alloy: MetalAlloyReading | None = None

    @property
    def n_cells(self) -> int:
        """Number of unit cells (metal sites) in the field of view."""
        return int(len(self.metal_sites_px))

    def __repr__(self) -> str:  # (the default printed every site array: kilobytes)
        return (f"Lattice({self.material.name}, {self.n_cells} cells, a = {self.a_px:.2f} px, "
                f"{self.pixel_size_nm:.5f} nm/px ({self.calibration}), image "
                f"{self.shape[-2]}×{self.shape[-1]}, {len(self.messages)} message(s))")

    @property
    def area_nm2(self) -> float:
        """Area of the unit cells found (the analysed crystal, without vacuum or amorphous
        patches), in nm² at the pixel size in use."""
        return self.n_cells * cell_area_nm2(self.a_px * self.pixel_size_nm)

    @property
    def a_px(self) -> float:
        """Mean lattice constant in pixels (from the cell area, robust to obliquity)."""
        area = abs(self.a1_px[0] * self.a2_px[1] - self.a1_px[1] * self.a2_px[0])
        return float(np.sqrt(area / (np.sqrt(3) / 2)))

    def fractional(self, points: np.ndarray) -> np.ndarray:
        """Local fractional lattice coordinates ``(u, v)`` of image points (follows distortion)."""
        points = np.atleast_2d(np.asarray(points, float))
        pm1, pm2 = self.phase_maps
        uv = np.stack([pm1.total_phase_cycles(points), pm2.total_phase_cycles(points)], axis=1)
        return self.frac_sign * uv

    def fractional_grid(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """:meth:`fractional` at every point of the pixel grid ``rows`` x ``cols``,
        ``(len(rows), len(cols), 2)``: read separably (two small matrix products per phase map,
        :meth:`~.gpa.PhaseMap.total_phase_cycles_grid`), equal within float64 rounding and far
        faster for many points."""
        pm1, pm2 = self.phase_maps
        return self.frac_sign * np.stack([pm1.total_phase_cycles_grid(rows, cols),
                                          pm2.total_phase_cycles_grid(rows, cols)], -1)

    def to_dict(self, sites: bool = True) -> dict:
        """JSON-ready summary (the format of ``atomdefect lattice --json``)."""
        out = {
            "a1_px": [float(v) for v in self.a1_px],
            "a2_px": [float(v) for v in self.a2_px],
            "pixel_size_nm": float(self.pixel_size_nm),
            "calibration": self.calibration,
            "n_cells": self.n_cells,
        }
        if sites:
            out["metal_sites_px"] = np.round(self.metal_sites_px, 3).tolist()
            out["chalcogen_sites_px"] = np.round(self.chalcogen_sites_px, 3).tolist()
        out["material"] = self.material.name
        out["pixel_size_lattice_nm"] = float(self.pixel_size_lattice_nm)
        out["messages"] = list(self.messages)
        return out


def _mean_cell(smoothed: np.ndarray, frac_grid: FracGridFn, bins: int = 24,
               max_points: int = 120_000) -> np.ndarray:
    """Image folded onto one unit cell: mean intensity per fractional-coordinate bin."""
    h, w = smoothed.shape
    stride = max(1, int(np.sqrt(h * w / max_points)))
    rows, cols = np.arange(0, h, stride), np.arange(0, w, stride)
    vals = smoothed[np.ix_(rows, cols)].ravel()
    cell, counts, _ = fold_onto_cell(vals, frac_grid(rows, cols).reshape(-1, 2), bins)
    cell[counts == 0] = np.mean(vals)
    return ndimage.gaussian_filter(cell, 1.0, mode="wrap")


def _cell_peak(cell: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Sub-bin position (fractional) of the mean-cell maximum near bin ``where``."""
    bins = cell.shape[0]
    i, j = int(where[0]) % bins, int(where[1]) % bins
    c0 = cell[i, j]
    up, dn = cell[(i - 1) % bins, j], cell[(i + 1) % bins, j]
    lf, rt = cell[i, (j - 1) % bins], cell[i, (j + 1) % bins]
    di = 0.5 * (up - dn) / (up - 2 * c0 + dn) if (up - 2 * c0 + dn) < 0 else 0.0
    dj = 0.5 * (lf - rt) / (lf - 2 * c0 + rt) if (lf - 2 * c0 + rt) < 0 else 0.0
    return (np.array([i + np.clip(di, -0.5, 0.5), j + np.clip(dj, -0.5, 0.5)]) + 0.5) / bins


def _solve_positions(frac_fn: FracFn, targets: np.ndarray, basis: np.ndarray,
                     start: np.ndarray) -> np.ndarray:
    """Image positions whose local fractional coordinates equal ``targets`` (Newton iterations)."""
    r = start + (targets - frac_fn(start[None, :])) @ basis
    for _ in range(4):
        r = r - (frac_fn(r) - targets) @ basis
    return r


#: A sublattice whose columns vary this many times more than the other's (shot noise accounted
#: for) is the chalcogen one, whatever the expected brightness order says.
UNIFORMITY_SWAP_FACTOR = 2.0
#: ... provided its own columns vary by at least this relative inter-quartile range.
UNIFORMITY_MIN_SPREAD = 0.08
#: The lattice's reference amplitude is this percentile of its Bragg-filtered amplitude over the
#: image (:func:`_amplitude_reference`): that of its crystal, whatever share of the field is
#: vacuum, amorphous material or a grain at another orientation.
AMPLITUDE_REF_PERCENTILE = 75
#: Amplitudes below this fraction of the largest are an exactly flat region's (no noise).
FLAT_AMPLITUDE = 1e-3
#: Fields smaller than this many kernel widths of the Bragg filter (about 9 cells across) keep
#: the typical amplitude of the padded grid as reference (:func:`_amplitude_reference`).
SMALL_FIELD_KERNELS = 8
#: Sites where the amplitude is below this fraction of the reference are not on this lattice.
AMPLITUDE_CUT = 0.3
#: Next to a faded position (within this many lattice constants), a site needs this fraction of
#: the reference: the cell at the edge of a faded part is half over it (at a grain boundary it
#: reads the other grain's columns; calls there were wrong at 0.47-0.57, right from 0.65).
TRANSITION_CELLS = 1.5
TRANSITION_CUT = 0.6
#: Share of the cells left out that way from which the user is told, and what is said.
FADED_NOTE_SHARE = 0.05
FADED_NOTE = "where this lattice fades"
#: A few columns off the common level leave the inter-quartile range as it is (a layer almost
#: fully converted to the other host: one column in ten mixed). Columns further than this many
#: robust standard deviations from their sublattice's median are its *outliers*...
OUTLIER_SIGMAS = 3.5
#: ... and a sublattice with at least this share of outliers, and this many times the other's
#: share, is the chalcogen one: metal columns differ only where a metal atom is missing (rare).
OUTLIER_MIN_SHARE = 0.05
OUTLIER_SWAP_FACTOR = 3.0
#: A Mo/W alloy named by the user is read on the sublattice the brightness order took for the
#: chalcogen (and the two exchanged) when the other metal's share there is at least this (by the
#: other metal) and at most :data:`SWAPPED_ALLOY_MAX`, and exceeds what the first reading found
#: (the alloy's mean metal column is as bright as Se2: MoSe2 with a fifth to a half W, WSe2 with
#: about half Mo). A pure MoSe2's Se2 columns over their vacancy rung read as mostly "W"; a
#: WSe2's dim Se2 columns — single vacancies and S, an eighth of them in a defect-rich image —
#: as a few "Mo": those must not turn the sublattices.
SWAPPED_ALLOY_SHARE: dict[str, float] = {"W": 0.1, "Mo": 0.25}
SWAPPED_ALLOY_MAX = 0.5


@dataclass(frozen=True)
class _Sublattice:
    """One sublattice's columns as read for the choice of the metal: the median level above the
    background, the relative inter-quartile range, the share of outliers
    (:data:`OUTLIER_SIGMAS`), every column's peak level above the background, and which columns
    lie :data:`~.metal_rungs.EDGE_A` inside the field (the edge cuts the others)."""

    median: float
    spread: float
    outliers: float
    peaks: np.ndarray
    inner: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.median) and np.isfinite(self.spread) and self.median > 0)


def _inner_peaks(sub: _Sublattice) -> np.ndarray:
    """A sublattice's column peaks clear of the field's edge (all where none is)."""
    return sub.peaks[sub.inner] if sub.inner.any() else sub.peaks


def _read_sublattice(smoothed: np.ndarray, frac_fn: FracFn, basis: np.ndarray,
                     offset: np.ndarray, background: float,
                     on_lattice: Callable[[np.ndarray], np.ndarray],
                     steady: Callable[[np.ndarray], np.ndarray] | None = None) -> _Sublattice:
    """The columns of one sublattice (fractional ``offset`` in the cell), read at their predicted
    positions where ``on_lattice`` says the lattice is; ``inner`` marks those clear of the field's
    edge and, where ``steady`` says so for at least half of them, of the lattice's fades (a grain
    boundary's columns read the other grain: a pure MoS2 bicrystal's had read as the Mo rung of
    a 97 % W alloy)."""
    h, w = smoothed.shape
    pos = _solve_positions(frac_fn, _index_range(frac_fn, smoothed.shape) + offset, basis,
                           np.array([h / 2, w / 2]))
    pos = pos[(pos[:, 0] >= 2) & (pos[:, 0] <= h - 3) & (pos[:, 1] >= 2) & (pos[:, 1] <= w - 3)]
    pos = pos[on_lattice(pos)]
    if len(pos) < MIN_CELLS:
        return _Sublattice(float("nan"), float("nan"), float("nan"), np.zeros(0))
    levels = sample_bilinear(smoothed, pos[:, 0], pos[:, 1], dtype=np.float64) - background
    q25, med, q75 = np.percentile(levels, [25, 50, 75])
    # Outliers at each column's own peak (within 0.15 a of the prediction): a predicted
    # position off a sharp column reads low, which is no outlying column.
    a_px = float(np.sqrt(abs(np.linalg.det(basis)) / (np.sqrt(3) / 2)))
    peaks = refine_peaks(smoothed, pos, 0.15 * a_px)[1] - background
    deviation = np.abs(peaks - np.median(peaks))
    spread = max(robust_sd(peaks), 1e-12)
    outliers = float(np.mean(deviation > OUTLIER_SIGMAS * spread))
    inner = within_field(pos, (h, w), EDGE_A * a_px)
    if steady is not None:
        clear = inner & steady(pos)
        inner = clear if clear.sum() >= 0.5 * inner.sum() else inner
    return _Sublattice(float(med), float((q75 - q25) / med) if med > 0 else float("nan"),
                       outliers, np.asarray(peaks, float), inner)


def _is_the_varied_one(metal: _Sublattice, chalcogen: _Sublattice) -> bool:
    """Whether the sublattice taken for the metal (``metal``) varies far more than the other.

    Every metal column of a host holds the same atom; chalcogen columns differ with their content
    (alloys, converted layers). The relative spreads must differ by
    :data:`UNIFORMITY_SWAP_FACTOR`, both as they are and after removing what shot noise alone
    gives (it grows as ``1 / sqrt(level)``), so that neither the dimmer sublattice's counts nor
    position errors on the sharper columns make a sublattice look varied.
    A layer nearly converted to the other host varies in a few columns only (one in ten mixed):
    its inter-quartile range is that of a pure layer, but its share of outlying columns is not
    (:data:`OUTLIER_MIN_SHARE`, :data:`OUTLIER_SWAP_FACTOR`).
    An S-rich MoSe2 alloy (metal brighter than its chalcogen) or an Se-rich MoS2 one (chalcogen
    brighter than its metal) reverses the expected brightness order; uniformity does not. (A
    Mo/W alloy varies its metal columns: :mod:`.metal_rungs` tells it apart.)
    """
    if not (metal.finite and chalcogen.finite):
        return False
    if (metal.outliers >= OUTLIER_MIN_SHARE
            and metal.outliers > OUTLIER_SWAP_FACTOR * chalcogen.outliers
            and chalcogen.spread <= UNIFORMITY_SWAP_FACTOR * metal.spread):
        # (the other sublattice must not be the varied one by its inter-quartile range: a
        # chalcogen sublattice barely above the background spreads widely and has no outliers)
        return True
    # Both the relative spreads (what position errors on sharp columns give alike) and the
    # shot-noise normalised ones must say so.
    normalised_m = metal.spread * np.sqrt(metal.median)
    normalised_x = chalcogen.spread * np.sqrt(chalcogen.median)
    return bool(metal.spread >= UNIFORMITY_MIN_SPREAD
                and metal.spread > UNIFORMITY_SWAP_FACTOR * chalcogen.spread
                and normalised_m > UNIFORMITY_SWAP_FACTOR * normalised_x)


#: Chalcogen levels at the ends of the ladder of an alloy with the chosen substituents, as
#: percentiles of its columns (vacancies left out): a heavier substituent puts the host's own
#: columns at the bottom, a lighter one (S in a selenide) at the top.
HOST_END_PERCENTILE = {"heavier": 15.0, "lighter": 85.0}
#: A chalcogen sublattice whose relative inter-quartile range reaches this is alloyed (a
#: uniform one, vacancies and noise included: 0.02–0.15).
ALLOYED_CHALCOGEN_SPREAD = 0.3
#: Two readings of the metal columns whose shares of columns below the lighter rung
#: (:attr:`~.metal_rungs.MetalAlloyReading.below_share`) differ by more than this are told apart
#: by it.
BELOW_SHARE_MARGIN = 0.02


def _chalcogen_references(chalcogen: _Sublattice, mat: Material,
                          chosen: Sequence[str]) -> list[float]:
    """Levels the host's own chalcogen columns may have: the median column, and where the user
    chose a substituent that alloys (S, Se, Te), the end of the ladder the host's columns hold
    (a Mo/W alloy's contrasts were read against an S + Se median: WS2 with 30 % Se and 20 % Mo
    and WSe2 with 30 % S and Mo were not read as alloys)."""
    refs = [chalcogen.median]
    host_z = ATOMIC_NUMBER[mat.chalcogen]
    ends = {"heavier" if ATOMIC_NUMBER[d] > host_z else "lighter"
            for d in chosen if d in DOUBLE_SUBSTITUTION}
    peaks = _inner_peaks(chalcogen)
    peaks = peaks[np.isfinite(peaks)]
    if ends and len(peaks) >= MIN_CELLS:
        peaks = peaks[peaks > VACANCY_LEVEL * np.median(peaks)]
        scale = chalcogen.median / max(float(np.median(peaks)), 1e-12)
        refs += [scale * float(np.percentile(peaks, HOST_END_PERCENTILE[end]))
                 for end in sorted(ends)]
    return refs


#: A single-vacancy rung (:func:`_vacancy_rung`): columns between this fraction of a
#: sublattice's lowest atom rung and :data:`VACANCY_RUNG_TOP` of it, at least
#: :data:`VACANCY_RUNG_SIGMAS` robust spreads below it; at least :data:`VACANCY_RUNG_MIN`
#: columns and :data:`VACANCY_RUNG_SHARE` of the sublattice.
VACANCY_RUNG_BOTTOM = 0.3
VACANCY_RUNG_TOP = 0.8
VACANCY_RUNG_SIGMAS = 6.0
VACANCY_RUNG_MIN = 3
VACANCY_RUNG_SHARE = 0.01


def _vacancy_rung(sub: _Sublattice, reading: MetalAlloyReading | None = None) -> bool:
    """Whether ``sub`` holds a single-vacancy rung: columns well below its lowest atom rung (the
    median column's, or the lighter metal's of a Mo/W ``reading`` of it) yet far from empty. A
    chalcogen column that lost one of its two atoms keeps 0.45–0.7 of it; a metal column holds
    one atom or none (selenides of four simulators: never on the metal sublattice, 1–38 % of
    the chalcogen columns)."""
    peaks = _inner_peaks(sub)
    peaks = peaks[np.isfinite(peaks)]
    if not len(peaks) or not sub.finite:
        return False
    rel = peaks / float(np.median(peaks))
    lowest = 1.0 if reading is None else min(1.0, reading.threshold / float(np.median(peaks))
                                             / np.sqrt(reading.ratio))
    core = rel[np.abs(rel / lowest - 1.0) < 0.15]
    sd = robust_sd(core / lowest, centre=1.0) if len(core) else 1.0
    low = rel / lowest
    below = ((low > VACANCY_RUNG_BOTTOM) & (low < VACANCY_RUNG_TOP)
             & (low < 1.0 - VACANCY_RUNG_SIGMAS * sd))
    return bool(below.sum() >= max(VACANCY_RUNG_MIN, VACANCY_RUNG_SHARE * len(rel)))


def _metal_by_vacancy_rung(taken_m: _Sublattice, taken_x: _Sublattice,
                           first: MetalAlloyReading | None, maybe: MetalAlloyReading | None,
                           least: float, varied_m: bool
                           ) -> tuple[bool, MetalAlloyReading] | None:
    """A selenide's Mo/W alloy told by its chalcogen vacancies, the other metal not named.

    The levels alone cannot tell a Mo/W ladder from an S-rich one (:data:`~.metal_rungs.HOSTS`);
    the single vacancies can: the sublattice holding a single-vacancy rung (:func:`_vacancy_rung`)
    is the chalcogen, and the other must read as the two metals, its other metal a minority
    (:data:`SWAPPED_ALLOY_SHARE` to one half). Returns ``(swap, reading)`` when that settles it
    against the uniformity the choice would follow (``varied_m``: ``taken_m`` would become the
    chalcogen), else ``None``. (Independent images of MoSe2 + 20 % W, WSe2 + 30 % Mo and WSe2
    + 30 % Mo + 30 % S had been read with their sublattices exchanged.)
    """
    # taken_m the metal (no swap), against the choice that made it the chalcogen, or the reverse
    if varied_m:
        metal, chalcogen, reading, swap = taken_m, taken_x, first, False
    else:
        metal, chalcogen, reading, swap = taken_x, taken_m, maybe, True
    if (reading is not None and least <= reading.other_share <= SWAPPED_ALLOY_MAX
            and _vacancy_rung(chalcogen) and not _vacancy_rung(metal, reading)):
        return swap, reading
    return None


def _both_alloyed(reading: MetalAlloyReading, chalcogen: _Sublattice) -> bool:
    """Whether a clean two-metal ``reading`` (nothing below its lighter rung) stands over a
    chalcogen sublattice that varies too (:data:`ALLOYED_CHALCOGEN_SPREAD`): a Mo/W alloy with
    an S/Se one (MoS2 with 30 % W and half its S as Se), not a chalcogen ladder read as metals
    over a uniform metal sublattice."""
    return (reading.below_share <= BELOW_SHARE_MARGIN
            and bool(chalcogen.spread >= ALLOYED_CHALCOGEN_SPREAD))


def _better_reading(swapped: MetalAlloyReading, first: MetalAlloyReading) -> bool:
    """Whether the metal reading of the other sublattice (``swapped``) beats ``first``.

    A metal sublattice has no rung between its vacancies and its lighter metal, a chalcogen
    ladder read as metals has (:attr:`~.metal_rungs.MetalAlloyReading.below_share`); where that
    does not tell, the reading consistent with the chosen host (its metal the majority) wins,
    and then the larger share of the other metal (a chalcogen sublattice's vacancies read as a
    few columns of it).
    """
    if abs(swapped.below_share - first.below_share) > BELOW_SHARE_MARGIN:
        return swapped.below_share < first.below_share
    if (swapped.other_share <= SWAPPED_ALLOY_MAX) != (first.other_share <= SWAPPED_ALLOY_MAX):
        return swapped.other_share <= SWAPPED_ALLOY_MAX
    return swapped.other_share > first.other_share


def _metal_sublattice(taken_m: _Sublattice, taken_x: _Sublattice, mat: Material,
                      substituents: str | Sequence[str] | None, metal_brighter: bool
                      ) -> tuple[bool, MetalAlloyReading | None, list[str]]:
    """Which of the two sublattices is the metal, given the one the expected brightness order
    took for it (``taken_m``; ``metal_brighter``: the material's metal outshines its chalcogen).

    Returns whether to exchange the two, the Mo/W alloy the metal columns read as (if any,
    :mod:`.metal_rungs`) and the sentences for the user. The uniform sublattice is the metal (an
    S/Se alloy varies its chalcogen columns), unless the varied one reads as the two metals of a
    Mo/W alloy over uniform chalcogen columns (read unasked in sulfides, and in selenides when the
    user named the other metal).
    """
    messages: list[str] = []
    heavier = HEAVIER_SUBSTITUENT.get(mat.chalcogen)
    chosen = () if substituents is None else parse_substituents(substituents, mat)
    # The other metal of a Mo/W alloy named by the user: read in selenides too.
    named = bool(metal_substituents(substituents, mat))

    def alloy_reading(metal: _Sublattice, chalcogen: _Sublattice,
                      as_named: bool = named) -> MetalAlloyReading | None:
        # Metal columns in two rungs that each show their host's contrast over chalcogen
        # columns that are the uniform ones: a reading of mostly the other metal over a varied
        # sublattice is a selenide's chalcogen columns (Se2 and its vacancy rung) read against
        # its Mo/W columns. (A few columns of the other metal beside a chalcogen sublattice
        # whose vacancies make it look varied are no such reading; in a sulfide a chalcogen
        # ladder's lowest rung over the metal is no host's contrast, so mostly W over an S/Se
        # alloy — WS2 with Mo and Se analysed as MoS2 — is read, and the majority said.)
        if not chalcogen.finite:
            return None
        reading = read_metal_alloy(metal.peaks[metal.inner],
                                   _chalcogen_references(chalcogen, mat, chosen), mat,
                                   named=as_named)
        if (reading is not None and reading.other_share > 0.5
                and (mat.name not in METAL_ALLOY_HOSTS or reading.below_share > BELOW_SHARE_MARGIN)
                and _is_the_varied_one(chalcogen, metal)):
            return None
        return reading

    swap = False
    metal_alloy = alloy_reading(taken_m, taken_x)
    if (metal_alloy is not None and heavier in chosen and not named
            and _is_the_varied_one(taken_m, taken_x)
            and not _both_alloyed(metal_alloy, taken_x)):
        metal_alloy = None  # (a chalcogen alloy read the wrong way round, as chosen)
    least = SWAPPED_ALLOY_SHARE[METAL_PARTNER.get(mat.metal, "W")]
    swapped = alloy_reading(taken_x, taken_m) if named else None
    if (swapped is not None and least <= swapped.other_share <= SWAPPED_ALLOY_MAX
            and (metal_alloy is None or _better_reading(swapped, metal_alloy))):
        # The alloy's mean metal column is as bright as the chalcogen one (MoSe2 with a fifth
        # to a half W): the brightness order took the metal for the chalcogen, whose single
        # vacancies then read as a few columns of the other metal.
        swap, metal_alloy = True, swapped
    elif (metal_alloy is None and not named and mat.name not in METAL_ALLOY_HOSTS
          and heavier not in chosen):
        # A selenide's metal columns in two rungs are read only when the other metal is named
        # (an S- or Te-rich ladder looks alike): the possibility is said (not when Te was
        # chosen: a Te-rich ladder is what the user expects) — unless the sublattice the
        # levels would make the metal keeps a single-vacancy rung, which no metal column has.
        maybe = alloy_reading(taken_x, taken_m, as_named=True)
        first = alloy_reading(taken_m, taken_x, as_named=True)
        by_vacancies = _metal_by_vacancy_rung(taken_m, taken_x, first, maybe, least,
                                              _is_the_varied_one(taken_m, taken_x))
        if by_vacancies is not None:
            swap, metal_alloy = by_vacancies
            metal_alloy = dataclasses.replace(metal_alloy, named=False)
        elif first or (maybe and least <= maybe.other_share <= SWAPPED_ALLOY_MAX):
            other = METAL_PARTNER[mat.metal]
            messages.append(f"The columns here {METAL_ALLOY_NOTE} ({mat.name} with {other} in "
                            f"place of some {mat.metal}): if the layer holds {other}, choose "
                            f"{other} among the substituents — its sublattices and classes are "
                            "then read for that alloy.")
    if metal_alloy is None and _is_the_varied_one(taken_m, taken_x):
        swap = True
        if metal_brighter and heavier in chosen:  # what a layer rich in the chosen atom shows
            messages.append(f"The chalcogen columns outshine the {mat.metal} columns here, as "
                            f"they can in a {mat.name} alloy with {heavier}: the uniform "
                            f"sublattice is taken for the {mat.metal}.")
        else:
            messages.append(f"The {'brighter' if metal_brighter else 'dimmer'} sublattice "
                            f"varies from column to column and the other does not: it is taken "
                            f"for the chalcogen, against {mat.name}'s usual brightness order "
                            "(an alloy?).")
    if (not swap and metal_alloy is None and taken_m.finite and taken_x.finite
            and not _is_the_varied_one(taken_x, taken_m)):
        # Both uniform: the brightness order may be the wrong way round (a Janus layer).
        order = brightness_order(_inner_peaks(taken_m), _inner_peaks(taken_x), mat, substituents)
        if order is not None and (order.exchange or order.undecided):
            swap = order.exchange
            # (two uniform sublattices: no metal columns in two rungs to read as a Mo/W alloy)
            messages = [m for m in messages if METAL_ALLOY_NOTE not in m]
            messages.append(order_note(order, mat, metal_brighter))
    if metal_alloy is not None:
        messages.append(metal_alloy.message(mat))
    elif named:
        final = taken_x if swap else taken_m
        other = METAL_PARTNER[mat.metal]
        if final.finite and metal_rungs(final.peaks[final.inner], other, named=True) is not None:
            # (named, the user is told the other metal was not found: not "one level" here)
            messages.append(f"The {mat.metal} columns {METAL_TWO_LEVELS_NOTE} as {mat.metal} and "
                            f"{other} columns of {mat.name} would over its chalcogen columns (each "
                            f"at its own host's contrast): is the layer {mat.name}? No {other} "
                            "column is marked.")
    return swap, metal_alloy, messages


def _amplitude_reference(pm1: PhaseMap, pm2: PhaseMap, shape: tuple[int, ...],
                         region: np.ndarray | None = None) -> float:
    """The lattice's typical Bragg-filtered amplitude where its crystal is: the
    :data:`AMPLITUDE_REF_PERCENTILE` percentile over a grid of points inside the image (and the
    ``region`` mask; the padding around it, vacuum, amorphous patches and other grains do not
    lower it)."""
    h, w = shape[:2]
    if min(h, w) < SMALL_FIELD_KERNELS * max(pm1.kernel_sigma_px, pm2.kernel_sigma_px):
        # A field of a few kernels: the amplitude varies by a factor of three across a perfect
        # crystal (the filter's edges meet), so only the typical amplitude of the padded grid
        # (about a third of the crystal's) separates a crystal from nothing.
        return float(np.sqrt(np.median(pm1.amplitude) * np.median(pm2.amplitude)))
    rows, cols = np.meshgrid(np.linspace(0, h - 1, 48), np.linspace(0, w - 1, 48), indexing="ij")
    grid = np.stack([rows.ravel(), cols.ravel()], axis=1)
    if region is not None:
        picked = grid[region[np.round(grid[:, 0]).astype(int), np.round(grid[:, 1]).astype(int)]]
        grid = picked if len(picked) >= 16 else grid
    amp = np.sqrt(pm1.field_amplitude_at(grid, shape) * pm2.field_amplitude_at(grid, shape))
    # (an exactly flat part — the zero border of a padded frame — has no amplitude at all: at
    # three quarters of the field it had made the reference 0 and every position "crystal")
    shows = amp[amp > FLAT_AMPLITUDE * amp.max()] if len(amp) else amp
    return float(np.percentile(shows if len(shows) >= 16 else amp, AMPLITUDE_REF_PERCENTILE))


def _in_transition(pos: np.ndarray, faded: np.ndarray, amplitude: Callable[[np.ndarray], np.ndarray],
                   amp_ref: float, a_px: float) -> np.ndarray:
    """Sites within :data:`TRANSITION_CELLS` lattice constants of a faded position whose
    amplitude is below :data:`TRANSITION_CUT` of the reference."""
    if len(pos) == 0 or len(faded) == 0:
        return np.zeros(len(pos), bool)
    from scipy.spatial import cKDTree

    near = cKDTree(faded).query(pos, distance_upper_bound=TRANSITION_CELLS * a_px)[0] < np.inf
    out = np.zeros(len(pos), bool)
    if near.any():
        out[near] = amplitude(pos[near]) < TRANSITION_CUT * amp_ref
    return out


def faded_lattice_message(n_faded: int, n_cells: int) -> str:
    """The note for the user when parts of the field do not show the lattice (empty when they
    are fewer than :data:`FADED_NOTE_SHARE` of the cells)."""
    share = n_faded / max(n_cells + n_faded, 1)
    if share < FADED_NOTE_SHARE:
        return ""
    return (f"{cells_and_share(n_faded, share)} left out {FADED_NOTE}: vacuum, amorphous material or "
            f"another grain no lattice of its own was found for (to analyse it, draw a region "
            f"around it in the Detect widget, or --region).")


def left_out_messages(lattice: Lattice) -> list[str]:
    """The lattice's notes on the parts of the field it leaves out (faded lattice, no crystal,
    blanked pixels)."""
    return [m for m in lattice.messages
            if FADED_NOTE in m or OFF_CRYSTAL_NOTE in m or BLANKED_NOTE in m]


def _index_range(frac_fn: FracFn, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape
    corners = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1], [h / 2, w / 2]], float)
    uv = frac_fn(corners)
    lo = np.floor(uv.min(axis=0)) - 2
    hi = np.ceil(uv.max(axis=0)) + 2
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    return np.stack([ii.ravel(), jj.ravel()], axis=1)


def _refine_sublattice(image: np.ndarray, smoothed: np.ndarray, predicted: np.ndarray,
                       index: np.ndarray, radius: float, background: float, sigma: float,
                       min_rel_height: float = 0.4):
    """Refine one sublattice; faint columns and outliers take their neighbours' correction."""
    refined, height, ok = refine_peaks(smoothed, predicted, radius)
    refined = centroid_refine(image, refined, sigma, background, max_shift=radius)
    rel = height - background
    typical = np.nanmedian(rel[ok]) if ok.any() else np.nan
    strong = ok & (rel > min_rel_height * typical) if np.isfinite(typical) else ok
    resid = refined - predicted
    nbr = neighbour_mean(resid, index, strong, size=3)
    missing = np.isnan(nbr[:, 0])
    if missing.any():
        nbr[missing] = neighbour_mean(resid, index, strong, size=7)[missing]
    nbr = np.nan_to_num(nbr)
    dev = np.hypot(*(resid - nbr).T)
    spread = robust_sd(dev[strong], centre=0.0)
    good = strong & (dev <= max(4.0 * spread, 0.08 * radius / 0.22))
    model = predicted + nbr
    final = np.where(good[:, None], refined, model)
    return final, good


def _unit_cell_lattice(image: np.ndarray, arr: np.ndarray, basis0: ReciprocalBasis,
                       a_px0: float, mat: Material, pixel_size_nm: float | None,
                       calibration: str, region: np.ndarray | tuple | None,
                       substituents: str | Sequence[str] | None,
                       blank: np.ndarray | None = None) -> Lattice | None:
    """The lattice of the unit cell when ``basis0`` is the second-order ring, else ``None``.

    On a small field the first-order spots are broad and the second-order ring (√3 farther
    out, turned by 30°) can win: its "cell" is a third of the unit cell, every column and hollow
    on one sublattice, so the second sublattice is barely visible. The unit cell's own spots lie
    a third of the way between two second-order ones; where they stand out of the spectrum and
    the lattice found with them shows its second sublattice (and agrees with a given pixel size
    at least as well), it is the right one.
    """
    finer = finer_hexagon(basis0)
    if not spots_stand_out(arr, finer):
        return None  # (a mirror twin's lattice, run over both domains, has none there)
    try:
        coarser = find_lattice(image, mat, pixel_size_nm, calibration, region, substituents,
                               blank=blank, _reciprocal=finer)
    except AtomDefectError:
        return None
    if any(SECOND_SUBLATTICE_NOTE in m for m in coarser.messages):
        return None
    if pixel_size_nm is not None:  # a given pixel size must not fit the first lattice better
        expected = mat.a_nm / pixel_size_nm
        if abs(np.log(coarser.a_px / expected)) > abs(np.log(a_px0 / expected)):
            return None
    return coarser


def find_lattice(
    image: np.ndarray,
    material: str | Material = "MoS2",
    pixel_size_nm: float | None = None,
    calibration: str = "user",
    region: np.ndarray | tuple[float, float, float, float] | None = None,
    substituents: str | Sequence[str] | None = None,
    blank: np.ndarray | None = None,
    _reciprocal: ReciprocalBasis | None = None,
) -> Lattice:
    """Detect the lattice, its metal and chalcogen sites, and calibrate the pixel size.

    Parameters
    ----------
    image : ndarray
        A single 2-D HAADF-STEM frame (bright atoms).
    material : str or Material
        Preset name; its lattice constant calibrates the pixel size and its contrast tells the metal
        sublattice from the chalcogen one.
    pixel_size_nm : float, optional
        Known pixel size. ``None`` calibrates from the lattice.
    calibration : {"user", "file", "lattice", "none"}
        Where ``pixel_size_nm`` comes from. A file (or earlier lattice) calibration that disagrees
        with the lattice by more than ``CALIBRATION_TOLERANCE`` is replaced by the lattice value (with
        a warning); a user value is kept (with a warning when it disagrees). See
        :func:`~.calibration_policy.choose_pixel_size`.
    region : ndarray of bool or (row0, row1, col0, col1), optional
        The pixels to analyse (:func:`~..io.validate.check_region`), e.g. one grain of a
        polycrystalline layer: the lattice is searched there only and no site lies outside.
    substituents : str or sequence of str, optional
        The substituents the analysis considers (e.g. ``"Se"``). With the host's S/Se partner
        among them the layer may be an alloy, whose lattice constant lies anywhere between the
        two end members: a given pixel size agrees when it fits that range (the lattice
        calibration itself uses the host's constant; the detection follows the composition,
        :func:`~..detect.alloy_calibration.vegard_calibration`).
    blank : ndarray of bool, optional
        Pixels whose values were filled in (NaN or infinite in the original,
        :func:`~..io.blanked.blank_pixels`; taken from ``image`` itself when not given): the
        columns on them are read in no statistic and are no sites, as outside ``region``; a
        message says how many (:mod:`~..io.blanked`).

    Returns
    -------
    Lattice

    Raises
    ------
    NoLatticeError
        If no hexagonal lattice is present (amorphous or non-periodic input) or too few cells are.
    BadImageError
        For stacks, RGB, NaN-filled, constant or tiny images.
    AtomDefectError
        If ``pixel_size_nm`` is not a number or (unless it comes from a file) lies outside
        :data:`~.validate.PIXEL_SIZE_RANGE_NM`.
    """
    mat = get_material(material)
    from .calibration_policy import SOURCES

    if calibration not in SOURCES:  # ("none": no pixel size known, as the Detect dock says)
        raise AtomDefectError(f"calibration must be one of {', '.join(map(repr, SOURCES))} "
                              f"(where the pixel size comes from), not {calibration!r}.")
    if blank is None:
        blank = blank_pixels(image)
    arr = as_analysis_image(image)
    if blank is not None and blank.shape != arr.shape:
        blank = None
    mask = None if region is None else check_region(region, arr.shape)
    if mask is not None:  # the rest of the field neither shows a lattice nor holds sites
        arr = np.where(mask, arr, np.float32(np.median(arr[mask]))).astype(np.float32)
    if pixel_size_nm is not None:  # a file's value may be implausible: calibration replaces it
        pixel_size_nm = check_pixel_size(pixel_size_nm, plausible=calibration != "file")
    # (a known pixel size tells where the first-order spots are expected)
    expected_g = None if pixel_size_nm is None else 2.0 / (np.sqrt(3) * mat.a_nm / pixel_size_nm)
    basis0 = (find_reciprocal_basis(arr, expected_g=expected_g) if _reciprocal is None
              else _reciprocal)
    period = float(1.0 / min(np.linalg.norm(basis0.g1), np.linalg.norm(basis0.g2)))
    spectrum, pad = image_spectrum(arr, period)
    pm1 = phase_map(spectrum, basis0.g1, pad)
    pm2 = phase_map(spectrum, basis0.g2, pad)
    del spectrum
    g = np.stack([mean_frequency(pm1), mean_frequency(pm2)])
    basis = np.linalg.inv(g).T  # rows a1, a2 with a_i . g_j = delta_ij
    if basis[0, 0] * basis[1, 1] - basis[0, 1] * basis[1, 0] < 0:  # make right-handed
        pm1, pm2 = pm2, pm1
        basis = basis[::-1].copy()
    sign = 1.0

    def frac_fn(points: np.ndarray, _s: float | None = None) -> np.ndarray:
        s = sign if _s is None else _s
        return s * np.stack([pm1.total_phase_cycles(points), pm2.total_phase_cycles(points)], 1)

    def frac_grid(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return sign * np.stack([pm1.total_phase_cycles_grid(rows, cols),
                                pm2.total_phase_cycles_grid(rows, cols)], -1)

    a_px0 = float(np.sqrt(abs(np.linalg.det(basis)) / (np.sqrt(3) / 2)))
    smoothed = box_smooth(arr, max(0.8, 0.08 * a_px0))
    amp_ref = _amplitude_reference(pm1, pm2, arr.shape, mask)

    def in_region(pos: np.ndarray) -> np.ndarray:
        if mask is None:
            return np.ones(len(pos), bool)
        rows = np.clip(np.round(pos[:, 0]).astype(int), 0, mask.shape[0] - 1)
        cols = np.clip(np.round(pos[:, 1]).astype(int), 0, mask.shape[1] - 1)
        return mask[rows, cols]

    def amplitude(pos: np.ndarray) -> np.ndarray:
        pos = np.clip(pos, 0, None)
        return np.sqrt(pm1.field_amplitude_at(pos, arr.shape) * pm2.field_amplitude_at(pos, arr.shape))

    def on_lattice(pos: np.ndarray) -> np.ndarray:
        return (amplitude(pos) > AMPLITUDE_CUT * amp_ref) & in_region(pos)

    def readable(pos: np.ndarray) -> np.ndarray:
        # (a column on filled-in pixels reads the median grey: not one of the sublattice's)
        keep = on_lattice(pos)
        if blank is not None:
            keep &= ~blanked_sites(blank, pos[:, 0], pos[:, 1], a_px0)
        return keep

    # Sublattices from the image folded onto one cell.
    cell = _mean_cell(smoothed, frac_grid)
    bins = cell.shape[0]
    third = bins // 3
    site_a = np.array(np.unravel_index(np.argmax(cell), cell.shape))
    cand_b, cand_h = site_a + third, site_a + 2 * third
    i_b = cell[tuple(cand_b % bins)]
    i_h = cell[tuple(cand_h % bins)]
    if i_b < i_h:
        cand_b, cand_h = cand_h, cand_b
        i_b, i_h = i_h, i_b
    i_a = cell.max()
    messages: list[str] = []
    w_m, w_x = mat.column_contrast()
    metal_bin, chalc_bin = (site_a, cand_b) if w_m >= w_x else (cand_b, site_a)
    metal_alloy = None
    if (i_b - i_h) >= 0.05 * (i_a - i_h):
        def steady(pos: np.ndarray) -> np.ndarray:
            return amplitude(pos) >= TRANSITION_CUT * amp_ref

        taken_m = _read_sublattice(smoothed, frac_fn, basis, _cell_peak(cell, metal_bin),
                                   float(i_h), readable, steady)
        taken_x = _read_sublattice(smoothed, frac_fn, basis, _cell_peak(cell, chalc_bin),
                                   float(i_h), readable, steady)
        swap, metal_alloy, said = _metal_sublattice(taken_m, taken_x, mat, substituents,
                                                    w_m >= w_x)
        if swap:
            metal_bin, chalc_bin = chalc_bin, metal_bin
        messages += said
    if (i_b - i_h) < 0.05 * (i_a - i_h):
        if _reciprocal is None:  # the second-order ring of a small field? (see there)
            coarser = _unit_cell_lattice(image, arr, basis0, a_px0, mat, pixel_size_nm,
                                         calibration, region, substituents, blank)
            if coarser is not None:
                return coarser
        messages.append(f"{SECOND_SUBLATTICE_NOTE}; chalcogen sites are placed from the lattice "
                        "geometry.")
    off_m = _cell_peak(cell, metal_bin)
    step = np.mod(np.round((chalc_bin - metal_bin) / third), 3)
    if np.all(step == 2):  # chalcogen at -(a1+a2)/3: rotate the basis by 180 degrees
        sign = -1.0
        basis = -basis
        off_m = np.mod(-off_m, 1.0)

    # Predict, refine and clean every site.
    h, w = arr.shape
    index = _index_range(frac_fn, arr.shape)
    centre = np.array([h / 2, w / 2])

    def predict(offset: np.ndarray):
        pos = _solve_positions(frac_fn, index + offset, basis, centre)
        slack = 0.5 + 0.1 * a_px0  # the final cut (in_field) follows refinement
        inside = within_field(pos, (h, w), -slack) & in_region(pos)
        keep = inside & on_lattice(pos)
        return pos[keep], index[keep].astype(int), pos[inside & ~keep]

    metal_pred, metal_idx, metal_faded = predict(off_m)
    chalc_pred, chalc_idx, chalc_faded = predict(off_m + CHALCOGEN_OFFSET)
    hollow_pred, _, _ = predict(off_m + 2 * CHALCOGEN_OFFSET)
    # Where the lattice fades, the cell next to the faded part is half on it (the Bragg filter
    # resolves about a cell): such a site at a grain boundary reads the other grain's columns.
    faded_all = np.concatenate([metal_faded, chalc_faded])
    keep_m = ~_in_transition(metal_pred, faded_all, amplitude, amp_ref, a_px0)
    keep_x = ~_in_transition(chalc_pred, faded_all, amplitude, amp_ref, a_px0)
    metal_faded = np.concatenate([metal_faded, metal_pred[~keep_m]])
    chalc_faded = np.concatenate([chalc_faded, chalc_pred[~keep_x]])
    metal_pred, metal_idx = metal_pred[keep_m], metal_idx[keep_m]
    chalc_pred, chalc_idx = chalc_pred[keep_x], chalc_idx[keep_x]
    faded = faded_lattice_message(len(metal_faded), len(metal_pred))
    if faded:
        messages.append(faded)
    if len(metal_pred) < MIN_CELLS:
        raise NoLatticeError(
            f"Only {len(metal_pred)} unit cells were found; at least {MIN_CELLS} are needed. "
            "The crystalline area is too small or the image is mostly amorphous.")
    background = float(np.median(sample_bilinear(smoothed, hollow_pred[:, 0], hollow_pred[:, 1],
                                                 dtype=np.float64))) \
        if len(hollow_pred) else float(np.percentile(smoothed, 5))
    radius = 0.2 * a_px0
    sigma_col = 0.11 * a_px0
    metal_pos, metal_ok = _refine_sublattice(arr, smoothed, metal_pred, metal_idx, radius,
                                             background, sigma_col)
    chalc_pos, chalc_ok = _refine_sublattice(arr, smoothed, chalc_pred, chalc_idx, radius,
                                             background, sigma_col)

    def in_field(pos: np.ndarray, measured: np.ndarray) -> np.ndarray:
        # A border column that could not be measured keeps its neighbours' position correction,
        # which can be off by a pixel or two (BORDER_MARGIN_A: how much further inside it must
        # lie).
        edge = np.where(measured, 0.0, BORDER_MARGIN_A * a_px0)
        return ((pos[:, 0] >= -0.5 + edge) & (pos[:, 0] <= h - 0.5 - edge)
                & (pos[:, 1] >= -0.5 + edge) & (pos[:, 1] <= w - 0.5 - edge))

    keep = in_field(metal_pos, metal_ok)
    metal_pos, metal_idx, metal_ok = metal_pos[keep], metal_idx[keep], metal_ok[keep]
    keep = in_field(chalc_pos, chalc_ok)
    chalc_pos, chalc_idx, chalc_ok = chalc_pos[keep], chalc_idx[keep], chalc_ok[keep]

    # Global vectors: least squares on well-measured metal sites (all sites if too few).
    use = metal_ok if metal_ok.sum() >= MIN_CELLS else np.ones(len(metal_pos), bool)
    design = np.column_stack([np.ones(use.sum()), metal_idx[use]])
    coef, *_ = np.linalg.lstsq(design, metal_pos[use], rcond=None)
    origin, a1, a2 = coef[0], coef[1], coef[2]
    a_px = float(np.sqrt(abs(a1[0] * a2[1] - a1[1] * a2[0]) / (np.sqrt(3) / 2)))
    px_lattice = mat.a_nm / a_px

    # No cell over vacuum or amorphous material (core/lattice/crystal.py).
    # (the hollows of the faded region too: the columns at its edge are read against them)
    hollows = np.concatenate([chalc_pos, chalc_faded]) + (a1 + a2) / 3.0
    metal_in, chalc_in = in_crystal(smoothed, [metal_pos, chalc_pos], hollows, a_px,
                                    faded_px=[metal_faded, chalc_faded],
                                    rung_ratio=[1.0 if metal_alloy is None else metal_alloy.ratio,
                                                1.0])
    if blank is not None:  # (filled-in pixels are no vacuum: their columns are left out below)
        metal_in |= blanked_sites(blank, metal_pos[:, 0], metal_pos[:, 1], a_px)
        chalc_in |= blanked_sites(blank, chalc_pos[:, 0], chalc_pos[:, 1], a_px)
    if metal_in.sum() < MIN_CELLS:
        raise NoLatticeError(
            f"Only {int(metal_in.sum())} unit cells lie in crystalline areas; at least "
            f"{MIN_CELLS} are needed. The image is mostly vacuum or amorphous material.")
    left_out = off_crystal_message(int((~metal_in).sum()), int(metal_in.sum()))
    if left_out:
        messages.append(left_out)
    metal_pos, metal_idx, metal_ok = metal_pos[metal_in], metal_idx[metal_in], metal_ok[metal_in]
    chalc_pos, chalc_idx, chalc_ok = chalc_pos[chalc_in], chalc_idx[chalc_in], chalc_ok[chalc_in]
    if blank is not None:
        # Columns on filled-in pixels read the median grey: no site of the lattice, as outside a
        # region (every statistic of the image and every count then goes without them), said.
        off_m = blanked_sites(blank, metal_pos[:, 0], metal_pos[:, 1], a_px)
        off_x = blanked_sites(blank, chalc_pos[:, 0], chalc_pos[:, 1], a_px)
        if off_m.any() or off_x.any():
            messages.append(blanked_message(int(off_m.sum() + off_x.sum())))
            metal_pos, metal_idx, metal_ok = (v[~off_m] for v in (metal_pos, metal_idx, metal_ok))
            chalc_pos, chalc_idx, chalc_ok = (v[~off_x] for v in (chalc_pos, chalc_idx, chalc_ok))

    # The calibration policy (one for GUI, CLI and API): see core/lattice/calibration_policy.py.
    from .calibration_policy import choose_pixel_size

    # (``None``: no substituent widens the range; a string such as "Se,O" is read as the CLI does)
    subs = () if substituents is None else parse_substituents(substituents, mat)
    lo_nm, hi_nm = lattice_constant_range_nm(mat, subs)
    choice = choose_pixel_size(pixel_size_nm, calibration if pixel_size_nm is not None else "none",
                               px_lattice, mat.name, CALIBRATION_TOLERANCE, mat.a_nm,
                               alloy_range_nm=(lo_nm / a_px, hi_nm / a_px))
    px_used, source = choice.pixel_size_nm, choice.source
    if source == "user":
        _check_user_lattice_constant(float(pixel_size_nm) * a_px, float(pixel_size_nm),
                                     px_lattice, mat)
    if choice.message:
        messages.append(choice.message)
        if choice.given_nm is not None:
            warnings.warn(choice.message, CalibrationWarning, stacklevel=2)

    distorted = distortion_message(np.asarray(a1), np.asarray(a2))
    if distorted:
        messages.append(distorted)

    return Lattice(
        a1_px=np.asarray(a1), a2_px=np.asarray(a2), origin_px=np.asarray(origin),
        pixel_size_nm=float(px_used), calibration=source, pixel_size_lattice_nm=float(px_lattice),
        material=mat, shape=arr.shape,
        metal_sites_px=metal_pos, metal_index=metal_idx, metal_refined=metal_ok,
        chalcogen_sites_px=chalc_pos, chalcogen_index=chalc_idx, chalcogen_refined=chalc_ok,
        messages=messages, phase_maps=(pm1, pm2), frac_sign=sign, metal_alloy=metal_alloy,
    )


def _check_user_lattice_constant(a_nm: float, given_nm: float, lattice_nm: float,
                                 material: Material) -> None:
    """Raise one sentence when the lattice constant ``a_nm`` that a pixel size the user gave
    implies is no supported material's (:data:`IMPLAUSIBLE_LATTICE_FACTOR`)."""
    from ..materials.materials import MATERIALS

    lo = min(m.a_nm for m in MATERIALS.values())
    hi = max(m.a_nm for m in MATERIALS.values())
    if lo / IMPLAUSIBLE_LATTICE_FACTOR <= a_nm <= hi * IMPLAUSIBLE_LATTICE_FACTOR:
        return
    raise AtomDefectError(
        f"The pixel size you gave ({given_nm:.5g} nm/px) makes the lattice constant "
        f"{a_nm:.3g} nm, which no supported material has ({lo:.3f}–{hi:.3f} nm; the "
        f"{material.name} lattice gives {lattice_nm:.5f} nm/px here): check the pixel size, or "
        "leave it out to calibrate it from the lattice.")


def distortion_message(a1_px: np.ndarray, a2_px: np.ndarray) -> str | None:
    """A sentence for the user when the lattice's three nearest-neighbour spacings (``|a1|``,
    ``|a2|``, ``|a2 - a1|`` of the 60-degree basis) spread by more than
    :data:`DISTORTION_NOTE_SPREAD` of their mean, else ``None``.

    The cells are read in each one's local lattice frame, so the calls do not suffer; positions
    and distances in nm do along the stretched direction. Areas, and so densities per nm², come
    from the cell area and are not affected.
    """
    spacings = np.linalg.norm([a1_px, a2_px, np.asarray(a2_px) - np.asarray(a1_px)], axis=1)
    spread = float((spacings.max() - spacings.min()) / spacings.mean())
    if not np.isfinite(spread) or spread <= DISTORTION_NOTE_SPREAD:
        return None
    return (f"{DISTORTION_NOTE}: its three spacings differ by {spread:.0%} "
            f"({spacings.min():.1f}-{spacings.max():.1f} px; scan distortion, drift or strain), so "
            f"positions and distances in nm are off by up to about {spread / 2:.0%} along some "
            f"directions; the calls and the densities per nm² (from the cell area) are not.")


__all__ = ["CalibrationWarning", "DISTORTION_NOTE", "DISTORTION_NOTE_SPREAD", "Lattice", "PhaseMap",
           "cell_area_nm2", "distortion_message", "find_lattice", "left_out_messages"]
