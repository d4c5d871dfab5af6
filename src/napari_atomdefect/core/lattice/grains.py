"""Grains of a polycrystalline field: one lattice each.

A lattice found by :func:`~.lattice.find_lattice` covers one grain: where it fades (another
grain at another orientation, vacuum, amorphous material) its sites are left out. The rest of the
field is searched again, restricted to the pixels no grain found so far covers; a lattice found
there at another orientation (or with another lattice constant) is a grain of its own. A search
that finds the same lattice again (the rim of a hole, a strip along a boundary) or none (vacuum,
amorphous material) ends the search. Every grain shares the first grain's pixel size — one image
has one calibration —; a grain whose own lattice disagrees with it is said.

A mirror twin (a grain rotated by 60°) has the same Bragg peaks, so the first lattice runs over
it with its chalcogen sites on the twin's hollows: such a domain (:func:`twin_sites`) is left out
of the first lattice, and found by the search as a grain whose metal-to-chalcogen step points the
other way (:func:`is_mirror_twin`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..errors import AtomDefectError
from ..io.blanked import blank_pixels
from ..io.validate import check_region
from ..materials.materials import Material, get_material
from ..sampling import sample_bilinear
from .crystal import OFF_CRYSTAL_NOTE, median_of, nearest_within
from .lattice import CALIBRATION_TOLERANCE, FADED_NOTE, CalibrationWarning, Lattice, find_lattice
from .sites import within_field

#: Pixels closer than this (in lattice constants) to a grain's sites belong to it, its edge
#: cells' transition band included (the Bragg filter resolves about a cell).
COVER_RADIUS_A = 1.0
#: Least uncovered area, in unit cells of the first grain, worth searching for another grain.
MIN_GRAIN_CELLS = 12
#: Most grains searched for in one field.
MAX_GRAINS = 4
#: Two lattices closer than this in orientation (degrees, modulo 60) and in lattice constant
#: (relative) are the same grain.
SAME_ORIENTATION_DEG = 2.0
SAME_CONSTANT = 0.03
#: A grain's lattice constant may differ from the first grain's by this much (relative; an S/Se
#: alloy grain: 4 %); beyond it the lattice found is not of this material (a pattern in
#: amorphous material, another phase).
MAX_CONSTANT_MISMATCH = 0.10
#: Least share of a grain's metal columns that refine to a peak of their own.
MIN_REFINED_SHARE = 0.5
#: Least Bragg amplitude of a grain at its metal sites, relative to the first grain's at its own.
MIN_AMPLITUDE_RATIO = 0.1
#: A chalcogen site whose neighbourhood reads its hollows brighter than its chalcogen positions
#: by more than this share of the metal-to-hollow contrast lies in a mirror-twin domain
#: (ordinary fields: +0.2 to +1.2, their lowest site above 0).
TWIN_CUT = -0.1
#: Radius of that neighbourhood, in lattice constants.
TWIN_NEIGHBOURHOOD_A = 2.1
#: Most neighbours read in that neighbourhood (a full one holds 12 within 2.1 a).
TWIN_NEIGHBOURS = 12
#: Least number of such sites that is a twin domain (fewer: noise at an edge).
MIN_TWIN_SITES = 6
#: Most passes of leaving a twin domain out of the first lattice.
MAX_TWIN_PASSES = 4
#: A metal site whose neighbourhood reads its metal positions less than this share of the
#: metal-to-hollow contrast above its hollows is not on the lattice's own columns: once a twin
#: domain is found, the lattice runs on over the twin there (:func:`off_column_sites`; 1 on
#: the lattice's own columns, about 0.6 on a twin in step with it, about 0 out of step).
OFF_COLUMN_CUT = 0.75
#: A metal site off its columns is in a twin in step with the lattice (its hollow on the twin's
#: chalcogen column) where its step stays above this and its hollow reads brighter than the
#: field's hollows by this share of the contrast (a twin: about 0.6 and 0.4).
TWIN_METAL_FLOOR = 0.3
TWIN_HOLLOW_BRIGHT = 0.2
#: Two orientation domains of one lattice at least this far apart (degrees) are two grains (a
#: low-angle boundary, whose Bragg peaks share one filter kernel): the scan distortion of real
#: and simulated fields turns their lattices by up to about 3.5° from corner to corner, but
#: smoothly.
LOW_ANGLE_MIN_DEG = 2.5
#: ... when the two domains hold at least this share of the variance of the site orientations
#: (a smooth turn across the field, spread evenly: 0.75; two uniform grains: 1).
LOW_ANGLE_SPLIT = 0.9
#: Radius (lattice constants) over which a site's orientation is the median of its neighbours'.
ORIENTATION_NEIGHBOURHOOD_A = 1.6
#: Most passes of leaving a low-angle domain out of the first lattice.
MAX_LOW_ANGLE_PASSES = 2
#: Most searches of the rest of the field (each finds a grain, or a lattice that is none).
MAX_SEARCHES = 6
#: Words of the sentence naming the grains found (:func:`grains_message`).
GRAINS_NOTE = "grains at different orientations"


def points_cover(points: np.ndarray, a_px: float, shape: tuple[int, int],
                 radius_a: float | None = None) -> np.ndarray:
    """Pixels of a field of ``shape`` within ``radius_a`` lattice constants (``a_px`` pixels
    each; default :data:`COVER_RADIUS_A`) of any of ``points`` (``(n, 2)`` row, column).

    Measured on a grid of about a sixth of a lattice constant (the distance transform of a
    4096² field would cost seconds), then read back at every pixel.
    """
    radius_a = COVER_RADIUS_A if radius_a is None else radius_a
    step = max(1, int(a_px / 6))
    coarse = (-(-shape[0] // step), -(-shape[1] // step))
    marks = np.zeros(coarse, bool)
    if len(points):
        rows = np.clip(np.round(points[:, 0] / step).astype(int), 0, coarse[0] - 1)
        cols = np.clip(np.round(points[:, 1] / step).astype(int), 0, coarse[1] - 1)
        marks[rows, cols] = True
    near = ndimage.distance_transform_edt(~marks) * step <= radius_a * a_px
    return np.repeat(np.repeat(near, step, 0), step, 1)[:shape[0], :shape[1]]


def lattice_cover(lattice: Lattice, shape: tuple[int, int],
                  radius_a: float | None = None) -> np.ndarray:
    """Pixels of a field of ``shape`` within ``radius_a`` lattice constants (default
    :data:`COVER_RADIUS_A`) of a site of ``lattice`` (metal or chalcogen)."""
    pts = np.concatenate([lattice.metal_sites_px, lattice.chalcogen_sites_px])
    return points_cover(pts, lattice.a_px, shape, radius_a)


def _local_level(image: np.ndarray, points: np.ndarray, radius_px: float) -> np.ndarray:
    """Mean of ``image`` at ``points`` and four points ``radius_px`` around each (bilinear)."""
    offsets = np.array([[0, 0], [radius_px, 0], [-radius_px, 0], [0, radius_px],
                        [0, -radius_px]], float)
    at = np.asarray(points, float)[None, :, :] + offsets[:, None, :]
    return sample_bilinear(image, at[..., 0], at[..., 1], dtype=np.float64).mean(axis=0)


def _neighbourhood_medians(points: np.ndarray, values: Sequence[np.ndarray],
                           a_px: float) -> list[np.ndarray]:
    """Per point, the median of each of ``values`` over the points within
    :data:`TWIN_NEIGHBOURHOOD_A` lattice constants (the nearest :data:`TWIN_NEIGHBOURS`, itself
    included; nan values left out, 0 where all are nan); one neighbour search for them all."""
    from scipy.spatial import cKDTree

    near = nearest_within(cKDTree(points), points, TWIN_NEIGHBOURS + 1,
                          TWIN_NEIGHBOURHOOD_A * a_px)
    return [np.nan_to_num(median_of(v, near), nan=0.0) for v in values]


def _steps(lattice: Lattice, image: np.ndarray, sites: np.ndarray,
           to_hollow: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Level at ``sites`` minus that at ``sites + to_hollow`` (the lattice's empty hollows), and
    the hollow's level above the median hollow, both in units of the field's metal-to-hollow
    contrast; nan where the hollow lies outside the field. ``None`` when the field shows no
    contrast."""
    img = np.asarray(image, np.float32)
    radius = 0.1 * lattice.a_px
    hollow = sites + to_hollow
    inside = within_field(hollow, img.shape)
    if not inside.any():
        return None
    at_hollow = _local_level(img, hollow, radius)
    contrast = float(np.median(_local_level(img, lattice.metal_sites_px, radius))
                     - np.median(at_hollow[inside]))
    if contrast <= 0:
        return None
    step = np.where(inside, (_local_level(img, sites, radius) - at_hollow) / contrast, np.nan)
    bright = np.where(inside, (at_hollow - np.median(at_hollow[inside])) / contrast, np.nan)
    return step, bright


def twin_sites(lattice: Lattice, image: np.ndarray) -> np.ndarray:
    """Chalcogen sites of ``lattice`` that lie in a mirror-twin domain, as booleans.

    A grain rotated by 60° (a mirror twin) has the same Bragg peaks, so one lattice runs over
    both; but there its chalcogen positions fall on the twin's empty hollows and its hollows on
    the twin's chalcogen columns. Per site, the level at the chalcogen position minus that at
    its hollow, in units of the field's metal-to-hollow contrast, is taken as the median over
    the chalcogen sites within about two lattice constants (a vacancy does not flip it); a
    site is in a twin domain where that median is below :data:`TWIN_CUT`.
    """
    chalc = lattice.chalcogen_sites_px
    if len(chalc) == 0:
        return np.zeros(0, bool)
    found = _steps(lattice, image, chalc, (lattice.a1_px + lattice.a2_px) / 3.0)
    if found is None:
        return np.zeros(len(chalc), bool)
    return _neighbourhood_medians(chalc, [found[0]], lattice.a_px)[0] < TWIN_CUT


def off_column_sites(lattice: Lattice, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metal sites of ``lattice`` that are not on its own columns, as two boolean arrays.

    Per site, the level at the metal position minus that at its hollow, in units of the
    field's metal-to-hollow contrast, is taken as the median over the metal sites within about
    two lattice constants: about 1 on the lattice's own columns. Below
    :data:`OFF_COLUMN_CUT` the site is off its columns (first array): beside a mirror twin (the
    same Bragg peaks) a lattice can run on over the twin out of step with its columns, where
    :func:`twin_sites` sees neither order. The second array holds the sites that are positively
    in a twin in step with the lattice whose chalcogen sites were dropped (so that
    :func:`twin_sites` cannot see it): the metal position on a column (step above
    :data:`TWIN_METAL_FLOOR`) and the hollow on one too (brighter than the field's hollows by
    :data:`TWIN_HOLLOW_BRIGHT`) — not a crystal's edge on vacuum or amorphous material, where
    the hollows are not columns.
    """
    metal = lattice.metal_sites_px
    found = _steps(lattice, image, metal, 2.0 * (lattice.a1_px + lattice.a2_px) / 3.0)
    if found is None or len(metal) == 0:
        return np.zeros(len(metal), bool), np.zeros(len(metal), bool)
    step, bright = _neighbourhood_medians(metal, found, lattice.a_px)
    off = step < OFF_COLUMN_CUT
    return off, off & (step > TWIN_METAL_FLOOR) & (bright > TWIN_HOLLOW_BRIGHT)


def site_orientations(lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """Local orientation at each refined metal column of ``lattice``.

    Returns
    -------
    points : ndarray
        ``(n, 2)`` positions (row, column) of the refined metal columns with at least three
        refined neighbours a lattice constant away.
    degrees : ndarray
        ``(n,)`` the orientation of the bonds to those neighbours (modulo 60°, relative to the
        lattice's own orientation, in -30..30), the median over the columns within
        :data:`ORIENTATION_NEIGHBOURHOOD_A` lattice constants (so one misplaced column counts
        little).
    """
    from scipy.spatial import cKDTree

    pos = lattice.metal_sites_px[lattice.metal_refined]
    if len(pos) < 7:
        return np.zeros((0, 2)), np.zeros(0)
    a = lattice.a_px
    dist, near = cKDTree(pos).query(pos, k=7)
    bond = pos[near[:, 1:]] - pos[:, None, :]
    ok = (dist[:, 1:] > 0.8 * a) & (dist[:, 1:] < 1.2 * a)
    ref = np.radians(orientation_deg(lattice))
    # six-fold average of the bond directions: exp(6i(angle - ref))
    z = np.where(ok, np.exp(6j * (np.arctan2(bond[..., 0], bond[..., 1]) - ref)), 0).sum(1)
    keep = ok.sum(1) >= 3
    own = np.degrees(np.angle(z)) / 6.0
    pos, own = pos[keep], own[keep]
    if len(pos) < 7:
        return np.zeros((0, 2)), np.zeros(0)
    near = nearest_within(cKDTree(pos), pos, 7, ORIENTATION_NEIGHBOURHOOD_A * a)
    return pos, median_of(own, near)


def low_angle_domain(lattice: Lattice) -> np.ndarray:
    """Refined metal columns of ``lattice`` in the smaller of two orientation domains, as
    ``(n, 2)`` positions (empty when the lattice is one grain).

    A grain turned by less than about 10° has its Bragg peaks in the same filter kernel as the
    first grain's: one lattice follows both, and its sites fall between the columns along the
    boundary. The columns' local orientations (:func:`site_orientations`) then fall into two
    groups: split at the threshold that best separates them (Otsu), they are two grains when the
    groups' means lie :data:`LOW_ANGLE_MIN_DEG` apart, the split holds :data:`LOW_ANGLE_SPLIT`
    of the variance and the smaller group holds :data:`MIN_GRAIN_CELLS` columns.
    """
    pos, deg = site_orientations(lattice)
    if len(deg) < 2 * MIN_GRAIN_CELLS:
        return np.zeros((0, 2))
    order = np.sort(deg)
    n = len(order)
    k = np.arange(1, n)                              # the first k values form the low group
    low_sum = np.cumsum(order)[:-1]
    mean_low, mean_high = low_sum / k, (order.sum() - low_sum) / (n - k)
    between = k * (n - k) / n ** 2 * (mean_high - mean_low) ** 2
    total = float(order.var())
    best = int(np.argmax(between))
    if total <= 0 or between[best] < LOW_ANGLE_SPLIT * total:
        return np.zeros((0, 2))
    if mean_high[best] - mean_low[best] < LOW_ANGLE_MIN_DEG:
        return np.zeros((0, 2))
    high = deg > order[best]
    smaller = high if high.sum() <= n / 2 else ~high
    if smaller.sum() < MIN_GRAIN_CELLS:
        return np.zeros((0, 2))
    return pos[smaller]


def orientation_deg(lattice: Lattice) -> float:
    """Orientation of ``lattice`` in degrees, modulo 60 (the hexagonal lattice's symmetry): the
    angle of its first basis vector from the image's column axis."""
    return float(np.degrees(np.arctan2(lattice.a1_px[0], lattice.a1_px[1])) % 60.0)


def misorientation_deg(first: Lattice, second: Lattice) -> float:
    """Smallest rotation (degrees, 0–30) between two hexagonal lattices."""
    d = abs(orientation_deg(first) - orientation_deg(second)) % 60.0
    return float(min(d, 60.0 - d))


def same_orientation(first: Lattice, second: Lattice) -> bool:
    """Whether two lattices have the same Bragg peaks: orientation (modulo 60°) and constant."""
    return (misorientation_deg(first, second) < SAME_ORIENTATION_DEG
            and abs(second.a_px / first.a_px - 1.0) < SAME_CONSTANT)


def _chalcogen_direction_deg(lattice: Lattice) -> float:
    """Direction of the metal-to-chalcogen step of ``lattice`` (degrees, modulo 120: the three
    equivalent steps of a 2H layer)."""
    step = lattice.a1_px + lattice.a2_px
    return float(np.degrees(np.arctan2(step[0], step[1])) % 120.0)


def is_mirror_twin(first: Lattice, second: Lattice) -> bool:
    """Whether ``second`` is a mirror twin of ``first``: the same Bragg peaks, but its
    metal-to-chalcogen step points the other way (60° apart, modulo 120°)."""
    if not same_orientation(first, second):
        return False
    d = abs(_chalcogen_direction_deg(first) - _chalcogen_direction_deg(second)) % 120.0
    return 30.0 < min(d, 120.0 - d)


def same_grain(first: Lattice, second: Lattice) -> bool:
    """Whether two lattices are one grain: the same orientation and lattice constant, and the
    same metal-to-chalcogen step (not a mirror twin)."""
    return same_orientation(first, second) and not is_mirror_twin(first, second)


def _metal_amplitude(lattice: Lattice) -> float:
    """Median Bragg amplitude of ``lattice`` at its metal sites (its phase maps)."""
    pm1, pm2 = lattice.phase_maps
    pos = np.clip(lattice.metal_sites_px, 0, None)
    return float(np.median(np.sqrt(pm1.field_amplitude_at(pos, lattice.shape)
                                   * pm2.field_amplitude_at(pos, lattice.shape))))


def is_crystal_grain(first: Lattice, grain: Lattice) -> bool:
    """Whether a lattice found in the rest of the field is a grain of the first grain's material:
    enough cells, a lattice constant within :data:`MAX_CONSTANT_MISMATCH` of the first's,
    columns that refine to peaks and a Bragg amplitude of the first's order (a pattern of
    amorphous material has none of these)."""
    return (grain.n_cells >= MIN_GRAIN_CELLS
            and abs(grain.a_px / first.a_px - 1.0) <= MAX_CONSTANT_MISMATCH
            and float(np.mean(grain.metal_refined)) >= MIN_REFINED_SHARE
            and _metal_amplitude(grain) >= MIN_AMPLITUDE_RATIO * _metal_amplitude(first))


def _grain_note(k: int, grain: Lattice, first: Lattice) -> str | None:
    """A sentence when grain ``k``'s own lattice disagrees with the pixel size in use."""
    own = grain.material.a_nm / grain.a_px
    host = first.material.a_nm / first.a_px
    off = abs(own / host - 1.0)
    if off <= CALIBRATION_TOLERANCE:
        return None
    return (f"Grain {k + 1}'s lattice constant differs from grain 1's by {off:.1%}: another "
            f"phase or material? It is analysed as {grain.material.name} with grain 1's pixel "
            "size.")


def grains_message(lattices: Sequence[Lattice]) -> str | None:
    """One sentence naming the grains found (``None`` for one grain)."""
    if len(lattices) < 2:
        return None
    first = lattices[0]
    angles = ", ".join("60° (a mirror twin)" if is_mirror_twin(first, la)
                       else f"{misorientation_deg(first, la):.0f}°" for la in lattices[1:])
    cells = ", ".join(str(la.n_cells) for la in lattices)
    return (f"{len(lattices)} {GRAINS_NOTE} (rotated {angles} from the "
            f"first): each is analysed on its own lattice ({cells} unit cells).")


def find_grains(image: np.ndarray, material: str | Material = "MoS2",
                pixel_size_nm: float | None = None, calibration: str = "user",
                region: np.ndarray | tuple[float, float, float, float] | None = None,
                substituents: str | Sequence[str] | None = None,
                max_grains: int = MAX_GRAINS, blank: np.ndarray | None = None) -> list[Lattice]:
    """The lattices of every grain of the field, the largest first.

    Parameters
    ----------
    image, material, pixel_size_nm, calibration, region, substituents, blank
        As for :func:`~.lattice.find_lattice` (the first grain is what it finds; later grains
        share its pixel size).
    max_grains : int
        Most grains to find (1: the first lattice only).

    Returns
    -------
    list of Lattice
        One lattice per grain; with several, the first lattice's messages name the grains (its
        note on cells "left out where this lattice fades" gives way to it) and every grain has
        the first grain's pixel size and calibration source.

    Raises
    ------
    NoLatticeError, BadImageError, AtomDefectError
        As :func:`~.lattice.find_lattice` for the first grain; a later search that fails only
        ends the search.
    """
    mat = get_material(material)
    if blank is None:  # (once, for every search below)
        blank = blank_pixels(image)
    first = find_lattice(image, mat, pixel_size_nm=pixel_size_nm, calibration=calibration,
                         region=region, substituents=substituents, blank=blank)
    shape = first.shape
    allowed = np.ones(shape, bool) if region is None else check_region(region, shape)
    # Where the lattice runs over a mirror twin, leave the twin out (it is found below as a
    # grain of its own); the lattice found without it may reach further into it: again.
    twin_area = np.zeros(shape, bool)
    # A twin shows as chalcogen sites on its hollows, or as metal sites whose hollows are its
    # columns; once one is found, also where the lattice runs on over it out of step.
    for _ in range(MAX_TWIN_PASSES if max_grains > 1 else 0):
        twin = twin_sites(first, image)
        off, twin_metal = off_column_sites(first, image)
        if not twin_area.any() and twin.sum() < MIN_TWIN_SITES:
            twin = np.zeros_like(twin)
            if twin_metal.sum() < MIN_TWIN_SITES:  # no twin in this field
                break
        if not twin.any() and not off.any():
            break
        twin_area |= points_cover(np.concatenate([first.chalcogen_sites_px[twin],
                                                  first.metal_sites_px[off]]), first.a_px,
                                  shape, radius_a=1.5)
        try:
            first = find_lattice(image, mat, pixel_size_nm=pixel_size_nm,
                                 calibration=calibration, region=allowed & ~twin_area,
                                 substituents=substituents, blank=blank)
        except AtomDefectError:  # (the twin is nearly the whole field: keep the lattice)
            break
    # Where the lattice follows a grain turned by a few degrees (a low-angle boundary), leave
    # the smaller orientation domain out: it is found below as a grain of its own.
    split_area = np.zeros(shape, bool)
    for _ in range(MAX_LOW_ANGLE_PASSES if max_grains > 1 else 0):
        domain = low_angle_domain(first)
        if not len(domain):
            break
        split_area |= points_cover(domain, first.a_px, shape)
        try:
            first = find_lattice(image, mat, pixel_size_nm=pixel_size_nm,
                                 calibration=calibration,
                                 region=allowed & ~twin_area & ~split_area,
                                 substituents=substituents, blank=blank)
        except AtomDefectError:  # (too little left: keep the lattice)
            break
    lattices, notes = [first], []
    searched = np.zeros(shape, bool)  # covered by a grain, or searched in vain
    cell_px = first.a_px ** 2 * np.sqrt(3) / 2
    searches = 0
    newest = first
    while len(lattices) < max_grains and searches < MAX_SEARCHES:
        searches += 1
        searched |= lattice_cover(newest, shape)
        rest = allowed & ~searched
        if rest.sum() < MIN_GRAIN_CELLS * cell_px:
            break
        try:
            with warnings.catch_warnings():  # its calibration is the first grain's: said below
                warnings.simplefilter("ignore")
                newest = find_lattice(image, mat, pixel_size_nm=first.pixel_size_nm,
                                      calibration="user", region=rest, substituents=substituents, blank=blank)
        except AtomDefectError:  # vacuum or amorphous material: no further grain
            break
        if any(same_grain(la, newest) for la in lattices):
            break  # the rim of a hole, a strip of a grain already found
        if not is_crystal_grain(first, newest):
            continue  # a pattern in amorphous material: searched, not a grain
        grain = newest
        note = _grain_note(len(lattices), grain, first)
        if note:
            notes.append(note)
        own = [m for m in grain.messages if m not in first.messages
               and FADED_NOTE not in m and OFF_CRYSTAL_NOTE not in m
               and "pixel size" not in m.lower()]
        lattices.append(dataclasses.replace(
            grain, calibration=first.calibration, pixel_size_nm=first.pixel_size_nm,
            pixel_size_lattice_nm=first.pixel_size_lattice_nm, messages=own))
    said = grains_message(lattices)
    left_out: list[str] = []  # (messages, like the notes on cells left out)
    if twin_area.any() and not any(is_mirror_twin(first, la) for la in lattices[1:]):
        share = float((twin_area & allowed).sum() / max(allowed.sum(), 1))
        left_out = [f"A mirror-twin domain (about {share:.0%} of the field) is left out: no "
                     "lattice of its own was found there."]
    if split_area.any() and len(lattices) == 1:
        share = float((split_area & allowed).sum() / max(allowed.sum(), 1))
        left_out.append(f"A domain turned by a few degrees (about {share:.0%} of the field, "
                         "beyond a low-angle grain boundary) is left out: no lattice of its own "
                         "was found there.")
    if said is None:
        if left_out:
            lattices[0] = dataclasses.replace(first, messages=list(first.messages) + left_out)
        return lattices
    for note in notes:
        warnings.warn(note, CalibrationWarning, stacklevel=2)
    # (cells left out where the columns do not stand above their hollows lie at the boundaries
    # too, not only over vacuum)
    kept = [m.replace(f"{OFF_CRYSTAL_NOTE}: no crystal there",
                      f"{OFF_CRYSTAL_NOTE}, or along a grain boundary")
            for m in first.messages if FADED_NOTE not in m]
    lattices[0] = dataclasses.replace(first, messages=kept + [said] + notes + left_out)
    return lattices


__all__ = ["GRAINS_NOTE", "find_grains", "grains_message", "is_crystal_grain", "is_mirror_twin",
           "lattice_cover", "low_angle_domain", "misorientation_deg", "orientation_deg",
           "points_cover", "same_grain", "same_orientation", "site_orientations", "twin_sites"]
