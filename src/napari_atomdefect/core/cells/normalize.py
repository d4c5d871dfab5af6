"""Image-level intensity normalisation from the lattice: background 0, chalcogen column 1.

Detectors see tiles in these units, so that a model trained at one dose, detector gain or
background works at another: a pristine chalcogen column is about 1, a single-chalcogen column
about 0.5, an empty site about 0, and the metal columns whatever the material's contrast makes them.
Medians over all sites make the levels insensitive to the few defects. Before the levels are read,
:func:`prepare_image` flattens the local background measured at the hollow sites
(:mod:`.background`), so a column is read against the background around it, not the image's.

A chalcogen column's level in these units depends on the microscope (how coherently the two atoms
of a column add) and, in an alloy, on which column the median is. Detectors that take
:func:`image_context` as extra inputs also see the image's metal/chalcogen contrast, which tells
both apart: a single-atom column over the metal column depends only on the elements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..lattice.lattice import Lattice
from ..lattice.sites import box_smooth, within_field
from ..sampling import sample_bilinear
from .background import flatten_background, hollow_sites_px
from .edge_gain import correct_edge_gain
from .metal_alloy import equalise_metal_alloy, other_metal_columns

#: Bring the columns along the field's edge to the field's gain before reading them
#: (:mod:`.edge_gain`; real scans are dimmer at their edges). A switch for measuring its effect.
CORRECT_EDGE_GAIN = True

#: Quantiles of the chalcogen-column levels that describe an image's Z-contrast ladder.
LADDER_QUANTILES: tuple[float, float] = (0.2, 0.8)


@dataclass(frozen=True)
class IntensityLevels:
    """Typical smoothed intensities at the hollow (background), chalcogen and metal sites, and
    the lower and upper :data:`LADDER_QUANTILES` of the chalcogen sites (``None``: the median)."""

    background: float
    chalcogen: float
    metal: float
    chalcogen_low: float | None = None
    chalcogen_high: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def metal_to_chalcogen(self) -> float:
        """Metal column over chalcogen column contrast above background."""
        return (self.metal - self.background) / max(self.chalcogen - self.background, 1e-12)


def smoothed_for_sites(image: np.ndarray, a_px: float) -> np.ndarray:
    """``image`` smoothed over 0.08 lattice constants of ``a_px`` pixels: what column levels are
    read from."""
    return box_smooth(np.asarray(image, np.float32), max(0.8, 0.08 * a_px))


def site_smoothed(image: np.ndarray, lattice: Lattice) -> np.ndarray:
    """:func:`smoothed_for_sites` at the lattice's constant."""
    return smoothed_for_sites(image, lattice.a_px)


def site_values(smoothed: np.ndarray, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Values of ``smoothed`` (:func:`site_smoothed`) at the ``(N, 2)`` site positions at least
    ``margin`` pixels inside the image (the image's median when none is)."""
    h, w = smoothed.shape
    pts = np.asarray(points, float).reshape(-1, 2)
    pts = pts[within_field(pts, (h, w), margin)]
    if len(pts) == 0:
        return np.array([np.median(smoothed)], np.float32)
    return sample_bilinear(smoothed, pts[:, 0], pts[:, 1])


def intensity_levels(image: np.ndarray, lattice: Lattice,
                     smoothed: np.ndarray | None = None) -> IntensityLevels:
    """Measure background, chalcogen and metal levels of ``image`` at the lattice's sites
    (``smoothed``: :func:`site_smoothed` of the image when the caller has it already)."""
    img = np.asarray(image, np.float32)
    smoothed = site_smoothed(img, lattice) if smoothed is None else smoothed
    bg = float(np.median(site_values(smoothed, hollow_sites_px(lattice))))
    metal = float(np.median(site_values(smoothed, lattice.metal_sites_px)))
    chalc_values = site_values(smoothed, lattice.chalcogen_sites_px)
    chalc = float(np.median(chalc_values))
    low, high = (float(v) for v in np.quantile(chalc_values, LADDER_QUANTILES))
    if chalc - bg < 0.05 * (metal - bg):  # chalcogen invisible: fall back on a typical ratio
        chalc = low = high = bg + 0.35 * (metal - bg)
    return IntensityLevels(background=bg, chalcogen=chalc, metal=metal, chalcogen_low=low,
                           chalcogen_high=high)


#: Names of the image-level context values (:func:`image_context`), in input-channel order.
#: New values are only ever appended: a detector trained with the first ``k`` takes the first
#: ``k`` (:func:`~..models.unet.with_context`).
CONTEXT_NAMES: tuple[str, ...] = ("log_metal_to_chalcogen", "log_ladder_low", "log_ladder_high")


def image_context(levels: IntensityLevels) -> np.ndarray:
    """Image-level inputs of a context-aware detector.

    ``log`` of the metal/chalcogen contrast (the metal column is the reference that does not
    change in an alloy), then the image's Z-contrast ladder: ``log`` of the lower and upper
    :data:`LADDER_QUANTILES` of the chalcogen-column levels in chalcogen units. In a pristine
    layer both are near 1; in an alloy they sit on different rungs (S2, S + Se, Se2), which tells
    the detector which rung the median column — the unit of the tiles — is on.

    Returns
    -------
    ndarray
        ``(len(CONTEXT_NAMES),)`` float32, the same for every tile of the image.
    """
    ratio = float(np.clip(levels.metal_to_chalcogen, 0.05, 50.0))
    scale = max(levels.chalcogen - levels.background, 1e-12)

    def rung(value: float | None) -> float:
        v = 1.0 if value is None else (value - levels.background) / scale
        return float(np.log(np.clip(v, 0.05, 20.0)))

    return np.array([np.log(ratio), rung(levels.chalcogen_low), rung(levels.chalcogen_high)],
                    np.float32)


def normalise(image: np.ndarray, levels: IntensityLevels) -> np.ndarray:
    """``(image - background) / (chalcogen - background)`` as float32."""
    scale = max(levels.chalcogen - levels.background, 1e-12)
    return ((np.asarray(image, np.float32) - levels.background) / scale).astype(np.float32)


@dataclass(frozen=True)
class PreparedImage:
    """An image made ready for its cells to be read: background flattened, levels measured.

    Attributes
    ----------
    flat : ndarray
        The image with its local background flattened (image units, float32).
    smoothed : ndarray
        :func:`site_smoothed` of ``flat``.
    levels : IntensityLevels
        Levels of ``flat``.
    offset : ndarray or None
        The background variation subtracted (``None``: too few hollow sites to map one).
    other_metal : ndarray or None
        In a Mo/W alloy (the lattice's ``metal_alloy``), how probably each metal site of the
        lattice holds the other metal, read before its columns were brought to the host's level
        (:mod:`.metal_alloy`); else ``None``.
    """

    flat: np.ndarray
    smoothed: np.ndarray
    levels: IntensityLevels
    offset: np.ndarray | None
    other_metal: np.ndarray | None = None

    @property
    def normalised(self) -> np.ndarray:
        """``flat`` in chalcogen units (:func:`normalise`)."""
        return normalise(self.flat, self.levels)

    def normalise(self, image: np.ndarray) -> np.ndarray:
        """Another image of the same field (e.g. its noise-free version) flattened and normalised
        like this one."""
        img = np.asarray(image, np.float32)
        return normalise(img if self.offset is None else img - self.offset, self.levels)


def prepare_image(image: np.ndarray, lattice: Lattice,
                  smoothed: np.ndarray | None = None) -> PreparedImage:
    """Flatten the local background of ``image`` and measure its levels: the one way every
    detector, training set and fine-tuning selection reads an image's cells.

    Parameters
    ----------
    image : ndarray
        The analysis image.
    lattice : Lattice
        Its lattice.
    smoothed : ndarray, optional
        :func:`site_smoothed` of ``image`` when the caller has it already.
    """
    img = np.asarray(image, np.float32)
    smoothed = site_smoothed(img, lattice) if smoothed is None else smoothed
    flat, flat_smoothed, offset = flatten_background(img, lattice, smoothed)
    if CORRECT_EDGE_GAIN:
        flat, flat_smoothed = correct_edge_gain(flat, flat_smoothed, lattice)
    other = None
    if lattice.metal_alloy is not None:  # a Mo/W alloy: its other metal at the host's level
        background = float(np.median(site_values(flat_smoothed, hollow_sites_px(lattice))))
        found = other_metal_columns(flat_smoothed, lattice, background)
        flat, flat_smoothed = equalise_metal_alloy(flat, flat_smoothed, lattice, background, found)
        other = found[0]
    levels = intensity_levels(flat, lattice, flat_smoothed)
    return PreparedImage(flat=flat, smoothed=flat_smoothed, levels=levels, offset=offset,
                         other_metal=other)
