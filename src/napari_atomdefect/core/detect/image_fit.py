"""Does the chosen material (and the model's training range) fit the image?

Before detection the image is measured where the lattice says the columns are:

- the **metal / chalcogen contrast** (column intensities above the hollow-site background), which
  separates the four host materials far better than the lattice constant does: under HAADF's
  ``Z^n`` contrast a W column outshines an S₂ column ~7×, an Se₂ column ~2×; a Mo column outshines
  S₂ ~2.9× and is *dimmer* than Se₂ (~0.8×);
- the **excess spread of the chalcogen-column intensities**: their relative inter-quartile range
  over the one of the metal columns, divided by the square root of the contrast (the factor shot
  noise alone would give). Noise, jitter and probe changes spread both sublattices alike; only a
  chalcogen sublattice with varied *content* (alloys, converted or Janus layers, contamination, a
  wrong material) makes it large. Over all simulated training microscopes it stays below ~2.3;
- the **lattice constant**, when the pixel size comes from the file or the user (it cannot be used
  when the pixel size was calibrated from the lattice itself).

Each measurement is compared with what the simulator that trains the models produces for each
material over its whole range of random microscopes (:data:`TRAINING_RANGES`, regenerated with
:func:`measure_training_ranges`). Contrast alone cannot tell MoS₂ from WSe₂ (both ~2–3): when
several materials fit, the one with the chosen material's metal is proposed first — users know
which metal they grew; what changes in their samples is the chalcogen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..cells.ladder import LadderReading, read_image_ladder
from ..cells.normalize import PreparedImage, intensity_levels, prepare_image, site_smoothed
from ..lattice.lattice import Lattice
from ..lattice.metal_rungs import METAL_ALLOY_NOTE, METAL_TWO_LEVELS_NOTE
from ..materials.columns import (
    DOUBLE_SUBSTITUTION,
    HEAVIER_SUBSTITUENT,
    lookup_class,
    supported_substituents,
)
from ..materials.materials import (
    MATERIALS,
    METAL_PARTNER,
    Material,
    get_material,
    materials_with_lattice_constant,
    partner_material,
)
from ..materials.ranges import TRAINING_RANGES
from .alloy_calibration import alloy_atom_weights

#: Factor by which a measured contrast may lie outside a material's simulated range and still fit it
#: (detectors, background subtraction and dynamical scattering beyond the simulator's range).
CONTRAST_TOLERANCE = 1.15
#: Likelihood ratio (contrast of the host column under each material's simulated range, read
#: as a log-normal through its 1st, 50th and 99th percentiles) from which the other metal's host
#: of the same chalcogen is named: MoS2 and WS2 (MoSe2 and WSe2) differ by 0.3 % in lattice
#: constant, so only the contrast tells them apart, and their ranges overlap. Multislice MoS2
#: analysed as WS2: 8–100 (one microscope at 80 kV, 90–220 mrad: 1.3–1.6); the multislice
#: and real hosts as themselves: below 0.8; 48 simulated images per host without an alloying
#: substituent chosen: none above it.
TWIN_LIKELIHOOD_RATIO = 5.0
#: Factor by which the chalcogen spread may exceed the largest seen in training.
SPREAD_TOLERANCE = 1.25
#: Relative lattice-constant mismatch (file or user pixel size) reported as a misfit.
LATTICE_TOLERANCE = 0.06
#: Fraction of chalcogen sites flagged as defects above which the result is implausible for a
#: monolayer the models were trained on (training images hold ~9 % defective chalcogen sites).
FLAGGED_FRACTION_LIMIT = 0.25


class ModelFitWarning(UserWarning):
    """The image does not look like the chosen material or the model's training data."""


@dataclass(frozen=True)
class ImageMeasurements:
    """What the image shows at the lattice's sites.

    Attributes
    ----------
    metal_to_chalcogen : float
        Median metal-column over median chalcogen-column intensity, both above the hollow level.
    chalcogen_spread : float
        ``(q75 - q25) / q50`` of the (smoothed) chalcogen-column intensities above background.
    metal_spread : float
        The same for the metal columns.
    a_nm : float or None
        Lattice constant from the pixel size in use; ``None`` when that pixel size was itself
        calibrated from the lattice.
    n_chalcogen_sites : int
        Chalcogen columns measured.
    chalcogen_relative : ndarray
        Each chalcogen column's level over their median.
    skewness : float
        Skewness of the smoothed image's pixel values: positive for bright columns on a darker
        field (HAADF: +0.6 to +2.6 on every image at hand), negative for an inverted image.
    """

    metal_to_chalcogen: float
    chalcogen_spread: float
    metal_spread: float
    a_nm: float | None
    n_chalcogen_sites: int
    chalcogen_relative: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    skewness: float = 1.0

    def bright_share(self, host_level: float = 1.0) -> float:
        """Share of the chalcogen columns brighter than a host column (``host_level``, in units
        of the median column) by more than :data:`BRIGHT_SIGMAS` noise widths — the width a
        column's level has from shot noise, scaled from the metal columns' spread — and by
        at least :data:`BRIGHT_FLOOR`."""
        rel = self.chalcogen_relative
        if len(rel) < 20 or not np.isfinite(self.metal_spread):
            return 0.0
        width = self.metal_spread / 1.349 * np.sqrt(max(self.metal_to_chalcogen, 1e-3))
        return float(np.mean(rel > host_level + max(BRIGHT_SIGMAS * width, BRIGHT_FLOOR)))

    @property
    def excess_spread(self) -> float:
        """Chalcogen over metal relative spread, divided by the square root of the contrast (the
        factor shot noise alone would give): ~1–2 for any single host material."""
        scale = max(self.metal_spread, 0.01) * np.sqrt(max(self.metal_to_chalcogen, 1e-3))
        return float(self.chalcogen_spread / scale)


@dataclass
class FitReport:
    """How well the chosen material and model fit the image.

    Attributes
    ----------
    material : str
        The material chosen by the user.
    model_material : str
        The material the model was trained for.
    measurements : ImageMeasurements
    fits : bool
        Whether the image looks like the model's training data (contrast, spread, lattice constant).
    candidates : tuple of str
        Materials whose simulated contrast range holds the measured contrast, best first.
    proposed : str or None
        The material to try instead (``None`` when the chosen one fits).
    messages : list of str
        One plain sentence per problem found (empty when everything fits).
    heavier : str or None
        A heavier substituent not chosen that explains the image better (said in ``messages``).
    partner_substituents : tuple of str
        The substituents to name when the layer is sent to its S/Se partner host, where that
        host's heavier substituent is among them (:func:`partner_host_substituents`).
    spread_only : bool
        Whether the chalcogen columns' spread is the only problem found (many vacancies make
        it too: a heavily damaged layer, :func:`flagged_fraction_message`).
    beyond_contrast : bool
        Whether the host columns' metal/chalcogen contrast lies outside the range the model
        was trained on (its calls between neighbouring rungs are then extrapolated).
    """

    material: str
    model_material: str
    measurements: ImageMeasurements
    fits: bool
    candidates: tuple[str, ...]
    proposed: str | None
    messages: list[str] = field(default_factory=list)
    heavier: str | None = None
    partner_substituents: tuple[str, ...] = ()
    spread_only: bool = False
    beyond_contrast: bool = False

    @property
    def summary(self) -> str:
        """One line for the CLI and the widget."""
        m = self.measurements
        text = (f"metal/chalcogen contrast {m.metal_to_chalcogen:.2f}, excess chalcogen spread "
                f"{m.excess_spread:.1f}")
        if self.fits:
            return f"Image fits {self.model_material} ({text})."
        return " ".join(self.messages)

    def to_dict(self) -> dict:
        """JSON-ready form (stored with detection results)."""
        m = self.measurements
        return {"material": self.material, "model_material": self.model_material,
                "fits": self.fits, "candidates": list(self.candidates), "proposed": self.proposed,
                "metal_to_chalcogen": m.metal_to_chalcogen, "excess_spread": m.excess_spread,
                "a_nm": m.a_nm, "messages": list(self.messages)}


def _column_values(smoothed: np.ndarray, points: np.ndarray, background: float) -> np.ndarray:
    """Column levels above ``background`` at the sites a pixel or more inside the image."""
    from ..cells.normalize import site_values

    return site_values(smoothed, points, margin=1.0) - background


def measure_image(image: np.ndarray, lattice: Lattice,
                  smoothed: np.ndarray | None = None) -> ImageMeasurements:
    """Measure contrast, chalcogen spread and lattice constant of ``image`` at ``lattice``'s sites.

    Parameters
    ----------
    image : ndarray
        The 2-D frame the lattice was found in (detection passes it with its background
        flattened, :func:`~..cells.normalize.prepare_image`).
    lattice : Lattice
        Its lattice.
    smoothed : ndarray, optional
        :func:`~..cells.normalize.site_smoothed` of the image, when the caller has it already.

    Returns
    -------
    ImageMeasurements
    """
    smoothed = site_smoothed(image, lattice) if smoothed is None else smoothed
    levels = intensity_levels(image, lattice, smoothed)
    chalc = _column_values(smoothed, lattice.chalcogen_sites_px, levels.background)
    metal = _column_values(smoothed, lattice.metal_sites_px, levels.background)
    a_nm = None if lattice.calibration == "lattice" else float(lattice.a_px * lattice.pixel_size_nm)
    median = float(np.median(chalc)) if len(chalc) else 0.0
    skewness = _skewness(smoothed)
    return ImageMeasurements(metal_to_chalcogen=float(levels.metal_to_chalcogen),
                             chalcogen_spread=_relative_spread(chalc),
                             metal_spread=_relative_spread(metal), a_nm=a_nm,
                             n_chalcogen_sites=len(chalc),
                             chalcogen_relative=(chalc / median if median > 0
                                                 else np.zeros(0)),
                             skewness=skewness)


#: Pixels read for the skewness (a regular subsample of larger images: 2.9 s for the whole of
#: a 4096² field, 0.02 s for 512², 5 ms for this many; the sign that tells an inverted image,
#: :data:`INVERTED_SKEWNESS`, is read from a few thousand pixels alike).
SKEWNESS_PIXELS = 256 * 256


def _skewness(image: np.ndarray) -> float:
    """Skewness of the pixel values of ``image`` (a regular subsample of a large one)."""
    img = np.asarray(image)
    step = max(1, int(np.ceil(np.sqrt(img.size / SKEWNESS_PIXELS))))
    values = np.asarray(img[::step, ::step], np.float64).ravel()
    spread = float(values.std())
    if not spread > 0:
        return 0.0
    z = (values - values.mean()) / spread
    return float(np.mean(z * z * z))  # (``z ** 3`` runs numpy's pow: 60x the time)


def _relative_spread(values: np.ndarray) -> float:
    """Inter-quartile range over the median (NaN for fewer than 4 values)."""
    if len(values) < 4:
        return float("nan")
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float((q75 - q25) / max(abs(q50), 1e-12))


def _contrast_distance(ratio: float, material: str) -> float:
    """0 inside the material's (widened) contrast range, else the log-distance to it."""
    lo, _, hi = TRAINING_RANGES[material]["metal_to_chalcogen"]
    lo, hi = lo / CONTRAST_TOLERANCE, hi * CONTRAST_TOLERANCE
    if ratio <= 0:
        return float("inf")
    return float(max(np.log(lo / ratio), np.log(ratio / hi), 0.0))


def _log_likelihood(ratio: float, material: str) -> float:
    """Log-likelihood of a host contrast under ``material``'s simulated range, read as a
    log-normal (two half-widths) through its 1st, 50th and 99th percentiles."""
    lo, med, hi = TRAINING_RANGES[material]["metal_to_chalcogen"]
    sigma = float(np.log(med / lo) if ratio < med else np.log(hi / med)) / 2.326
    return float(-0.5 * (np.log(ratio / med) / sigma) ** 2 - np.log(sigma))


def twin_material(material: str) -> str | None:
    """The host of the same chalcogen with the other metal (MoS2 ↔ WS2, MoSe2 ↔ WSe2)."""
    mat = MATERIALS[material]
    return next((n for n, m in MATERIALS.items()
                 if m.chalcogen == mat.chalcogen and m.metal != mat.metal), None)


def twin_message(host_ratio: float, chosen: str) -> tuple[str, str] | None:
    """``(twin, sentence)`` when the host contrast is :data:`TWIN_LIKELIHOOD_RATIO` times likelier
    under the other metal's host of the same chalcogen than under ``chosen``, else ``None``."""
    twin = twin_material(chosen)
    if twin is None or host_ratio <= 0 or not np.isfinite(host_ratio):
        return None
    if _log_likelihood(host_ratio, twin) - _log_likelihood(host_ratio, chosen) < np.log(
            TWIN_LIKELIHOOD_RATIO):
        return None
    med, twin_med = (TRAINING_RANGES[m]["metal_to_chalcogen"][1] for m in (chosen, twin))
    side = "low" if host_ratio < med else "high"
    return twin, (f"Metal/chalcogen contrast {host_ratio:.2f} is {side} for {chosen} (typically "
                  f"{med:.1f}) and likelier for {twin} (typically {twin_med:.1f}): if the metal is "
                  f"{MATERIALS[twin].metal}, analyse it as {twin} (their lattice constants "
                  "differ by 0.3 %: only the contrast tells them apart).")


def rank_materials(ratio: float, metal: str | None = None,
                   a_nm: float | None = None) -> tuple[str, ...]:
    """Materials whose simulated contrast range holds ``ratio``, best first.

    Materials whose lattice constant agrees with ``a_nm`` (measured with a pixel size from the
    file or the user; :func:`~..materials.materials.materials_with_lattice_constant`) come
    first: the sulfides and selenides differ by 4 %. Among those the contrast decides (the
    nearer the range's median, the better; two hosts of one chalcogen differ by over twice in
    contrast), ``metal`` only breaks ties: an MoS2 image analysed as WSe2 is MoS2, not WS2.
    Without a lattice constant that tells, materials with ``metal`` come first (contrast alone
    cannot separate e.g. MoS2 from WSe2), then the nearer the range's median, the better.
    """
    fitting = [m for m in TRAINING_RANGES if _contrast_distance(ratio, m) == 0.0]
    on_lattice = () if a_nm is None else materials_with_lattice_constant(a_nm)

    def key(name: str) -> tuple:
        median = TRAINING_RANGES[name]["metal_to_chalcogen"][1]
        distance = abs(np.log(ratio / median))
        other_metal = MATERIALS[name].metal != metal
        if on_lattice:
            return (name not in on_lattice, distance, other_metal)
        return (other_metal, distance)

    return tuple(sorted(fitting, key=key))


def _lattice_rules_out(candidate: str, chosen: str, a_nm: float | None) -> bool:
    """Whether a lattice constant measured with a known pixel size (``a_nm``) is the ``chosen``
    host's and not ``candidate``'s (the sulfides and selenides differ by 4 %)."""
    if a_nm is None:
        return False
    on_lattice = materials_with_lattice_constant(a_nm)
    return chosen in on_lattice and candidate not in on_lattice


def alloy_between(ratio: float, metal: str) -> tuple[str, str] | None:
    """``(sulfide, selenide)`` of ``metal`` when ``ratio`` lies between their contrast ranges.

    A chalcogen sublattice partly converted from S to Se shows a metal/chalcogen contrast between
    the two hosts' (a column's intensity grows with its Se content); ``None`` otherwise.
    """
    pair = [name for name, mat in MATERIALS.items() if mat.metal == metal]
    sulfide = next((n for n in pair if MATERIALS[n].chalcogen == "S"), None)
    selenide = next((n for n in pair if MATERIALS[n].chalcogen == "Se"), None)
    if sulfide is None or selenide is None:
        return None
    low = TRAINING_RANGES[selenide]["metal_to_chalcogen"][1]  # Se2 columns: low contrast
    high = TRAINING_RANGES[sulfide]["metal_to_chalcogen"][1]
    return (sulfide, selenide) if low < ratio < high else None


def _nearer_first(pair: tuple[str, str], ratio: float) -> tuple[str, str]:
    """The two end members of an alloy, the one whose typical contrast is nearer ``ratio``
    first."""
    a, b = sorted(pair, key=lambda n: abs(np.log(
        ratio / TRAINING_RANGES[n]["metal_to_chalcogen"][1])))
    return a, b


def _edge_of_range_message(host_ratio: float, chosen: str, candidates: tuple[str, ...],
                           a_nm: float | None = None) -> str | None:
    """A sentence when the host contrast lies past the chosen host's simulated range (inside
    only its tolerance) and inside the range of a host of the other metal among ``candidates``
    that the lattice constant ``a_nm`` (when measured) does not exclude: a WSe2 + Te layer
    analysed as MoSe2 read 0.97 (MoSe2 up to 0.85, WSe2 from 0.92) and went unsaid."""
    lo, _, hi = TRAINING_RANGES[chosen]["metal_to_chalcogen"]
    if lo <= host_ratio <= hi:
        return None
    metal = MATERIALS[chosen].metal
    on_lattice = None if a_nm is None else materials_with_lattice_constant(a_nm)
    others = [c for c in candidates if MATERIALS[c].metal != metal
              and (on_lattice is None or c in on_lattice)
              and TRAINING_RANGES[c]["metal_to_chalcogen"][0] <= host_ratio
              <= TRAINING_RANGES[c]["metal_to_chalcogen"][2]]
    if not others:
        return None
    other = MATERIALS[others[0]]
    # (three decimals where two would print the contrast on the bound: "1.60 past 1.60–4.09")
    digits = 3 if f"{host_ratio:.2f}" in (f"{lo:.2f}", f"{hi:.2f}") else 2
    return (f"Metal/chalcogen contrast {host_ratio:.{digits}f} lies past {chosen}'s "
            f"({lo:.{digits}f}–{hi:.{digits}f}) and inside {other.name}'s: if the metal is "
            f"{other.metal}, analyse it as {other.name}.")


def _other_metal_host(host_ratio: float, chosen: str, substituents: tuple[str, ...]) -> str:
    """"; the host columns' contrast is WS2's: if the metal is W, analyse it as WS2 with O, Se"
    when the host contrast ``host_ratio`` lies in the range of the host of ``chosen``'s
    chalcogen with the other metal, else ``""``."""
    mat = MATERIALS[chosen]
    other = next((n for n, m in MATERIALS.items() if m.chalcogen == mat.chalcogen
                  and m.metal != mat.metal), None)
    if other is None:
        return ""
    lo, _, hi = TRAINING_RANGES[other]["metal_to_chalcogen"]
    if not lo <= host_ratio <= hi:
        return ""
    subs = f" with {', '.join(substituents)}" if substituents else ""
    return (f"; the host columns' contrast is {other}'s: if the metal is "
            f"{MATERIALS[other].metal}, analyse it as {other}{subs}")


def _typical(material: str) -> str:
    """"WS2's typical 6.3": a host's median simulated contrast, for the alloy sentences."""
    return f"{material}'s typical {TRAINING_RANGES[material]['metal_to_chalcogen'][1]:.1f}"


def _other_metal_note(candidates: tuple[str, ...], a_nm: float | None) -> str:
    """" (or WSe2, if the metal is W)" when the second candidate has another metal than the
    first and no lattice constant tells them apart (contrast alone ranks MoSe2 and WSe2, or MoS2
    and WSe2, close): a user who followed the first alone went round in a loop."""
    if a_nm is not None or len(candidates) < 2:
        return ""
    first, second = MATERIALS[candidates[0]], MATERIALS[candidates[1]]
    return (f" (or {second.name}, if the metal is {second.metal})"
            if second.metal != first.metal else "")


#: Below this skewness of its pixel values an image is taken for inverted (columns dark).
INVERTED_SKEWNESS = 0.0
#: The same for an image whose columns are blurred beyond the training images' (:mod:`.blur`):
#: blur makes the pixel values symmetric — simulated HAADF images of the four hosts at a probe
#: of 0.16 nm read +0.24 to +1.04 at 256² and down to −0.3 at 384² with a background (the
#: inverted-image sentence had followed the blurred one), inverted ones −0.23 to −1.04; at
#: 0.20 nm −0.1 to +0.7 and −0.1 to −0.7 (forty-first session).
BLURRED_INVERTED_SKEWNESS = -0.35
#: A chalcogen column this many noise widths above a host column holds a heavier atom.
BRIGHT_SIGMAS = 4.0
#: ... and at least this far above it, in host columns (multislice columns scatter by ~5 %
#: at rest even where shot noise is small).
BRIGHT_FLOOR = 0.2
#: Least share of such columns that is said (pristine and light-substituted images: under 2 %).
BRIGHT_SHARE = 0.05


def alloying_partner(material: str | Material) -> str:
    """The other chalcogen whose substitution turns ``material`` into an S/Se alloy."""
    return "Se" if get_material(material).chalcogen == "S" else "S"


def heavier_substituent_reading(prepared: PreparedImage, lattice: Lattice,
                                material: str | Material, substituents: tuple[str, ...],
                                ladder: LadderReading) -> str | None:
    """The heavier substituent (Te in a selenide) that explains the image better than the
    ladder reading of the chosen ``substituents``, else ``None``.

    With the S/Se partner chosen but not the heavier atom, a selenide with Te in a tenth of its
    columns reads as an S-rich alloy: its Te columns take the host's rung and its pristine
    columns the partner's (``S_Se``), so every pristine column would be called substituted. When
    the same levels read with the heavier substituent put the median column back on the host's
    rung, that substituent is the likelier explanation (simulated MoSe2/WSe2 with 10–25 % Te
    read so every time; S-rich alloys keep their ``S_Se`` median either way). Past a tenth Te
    the median column holds Te: the heavier reading is then named where the levels are
    :data:`HEAVIER_EVIDENCE` likelier under it (log evidence): an independent simulator's
    WSe2 + 47 % Te read as WSe2 with S had its Se2 columns called ``S_Se`` and no hint of Te.
    """
    return read_heavier_substituent(prepared, lattice, material, substituents, ladder)[0]


def read_heavier_substituent(prepared: PreparedImage, lattice: Lattice, material: str | Material,
                             substituents: tuple[str, ...], ladder: LadderReading
                             ) -> tuple[str | None, LadderReading | None]:
    """:func:`heavier_substituent_reading`, and the ladder read with the heavier substituent
    (``None`` where it was not read): :func:`heavier_suggestion` reads its shares."""
    mat = get_material(material)
    heavier = HEAVIER_SUBSTITUENT.get(mat.chalcogen)
    if (ladder.median_class == "chalcogen" or heavier is None or heavier in substituents
            or heavier not in supported_substituents(mat)):
        return None, None
    with_heavier = read_image_ladder(prepared, lattice, mat, tuple(substituents) + (heavier,))
    if with_heavier.median_class == "chalcogen":
        return heavier, with_heavier
    # A layer past a tenth Te has a Te column as its median: the heavier reading explains it
    # where the levels are far likelier under it (:data:`HEAVIER_EVIDENCE`).
    column = lookup_class(with_heavier.median_class)
    if (column is not None and column.substituent == heavier
            and with_heavier.evidence - ladder.evidence >= HEAVIER_EVIDENCE):
        return heavier, with_heavier
    return None, with_heavier


#: Share of the chalcogen atoms below which the S/Se partner is not kept in the substituents
#: suggested with the heavier one (:func:`heavier_suggestion`).
PARTNER_SHOWN_SHARE = 0.02


def heavier_suggestion(material: str | Material, substituents: tuple[str, ...], heavier: str,
                       with_heavier: LadderReading) -> tuple[str, ...]:
    """The substituents to suggest once the ``heavier`` one explains the image
    (:func:`read_heavier_substituent`, whose ladder reading with it is ``with_heavier``): the
    chosen ones with it added, the S/Se partner left out where that reading holds under
    :data:`PARTNER_SHOWN_SHARE` of the partner's atoms. Told to add Te to S, a trial's user
    analysed a WSe2 + 47 % Te layer with both, which read its Se2 columns as S_Se and its
    Te2_Se2 as Te_Se, and nothing said; with Te alone it reads right."""
    mat = get_material(material)
    added = tuple(substituents) + (heavier,)
    partner = alloying_partner(mat)
    if partner not in substituents:
        return added
    shown = alloy_atom_weights(with_heavier.shares, mat).get(partner, 0.0) / 2
    return added if shown >= PARTNER_SHOWN_SHARE else tuple(d for d in added if d != partner)


#: Log evidence by which the ladder read with the heavier substituent must beat the chosen
#: substituents' reading to name it when its median column holds that substituent: selenides
#: with S only (40 images of four simulators, the multislice ones included) read with Te -0.6
#: to -1.0 (the prior of more rungs), with 5–60 % Te +13 to +630 (one at 10 % Te: +0.7).
HEAVIER_EVIDENCE = 10.0


#: Share of the chalcogen atoms an alloying element must hold, read with the S/Se partner host's
#: ladder, to be named in the sentence that sends the user to that host.
PARTNER_NAMED_SHARE = 0.05


def partner_host_substituents(prepared: PreparedImage, lattice: Lattice,
                              material: str | Material, ladder: LadderReading) -> tuple[str, ...]:
    """The substituents to analyse the layer with as its S/Se partner host, when that host's
    heavier substituent (Te in a selenide) is among them; else ``()`` (the partner host with
    ``material``'s chalcogen, the sentence's default).

    Read only where the ``ladder`` of ``material`` puts the partner chalcogen in the median
    column (a layer whose majority chalcogen may be the partner's): the image is read again as
    the partner host with both its substituents (``material``'s chalcogen and the heavier one),
    and each is named when it holds :data:`PARTNER_NAMED_SHARE` of the chalcogen atoms. A WSe2
    layer with 38–47 % Te analysed as WS2 with Se reads as 75 % Se and was sent to "WSe2 with
    S", whose reading then asked for Te: it is now sent to "WSe2 with Te" at once.
    """
    mat = get_material(material)
    other = partner_material(mat)
    if other is None:
        return ()
    column = lookup_class(ladder.median_class)
    heavier = HEAVIER_SUBSTITUENT.get(other.chalcogen)
    if (column is None or column.substituent != other.chalcogen or heavier in (None, mat.chalcogen)
            or heavier not in supported_substituents(other)):
        return ()
    reading = read_image_ladder(prepared, lattice, other, (mat.chalcogen, heavier))
    atoms = alloy_atom_weights(reading.shares, other)
    named = tuple(d for d in (mat.chalcogen, heavier) if atoms.get(d, 0.0) / 2
                  >= PARTNER_NAMED_SHARE)
    return named if heavier in named else ()


def assess_fit(image: np.ndarray, lattice: Lattice, material: str | Material,
               model_material: str | None = None,
               smoothed: np.ndarray | None = None,
               substituents: tuple[str, ...] = (), host_level: float = 1.0,
               heavier_explains: str | None = None,
               suggested_substituents: tuple[str, ...] | None = None,
               blurred: bool = False) -> FitReport:
    """Compare what ``image`` shows with ``material`` and with the model's training range.

    Parameters
    ----------
    image : ndarray
        The 2-D frame.
    lattice : Lattice
        Its lattice (found for ``material``).
    material : str or Material
        The material the user chose.
    model_material : str, optional
        The material the model was trained for (default: ``material``).
    smoothed : ndarray, optional
        :func:`~..cells.normalize.site_smoothed` of the image, when the caller has it already.
    substituents : tuple of str
        The substituents the run looks for. With the other chalcogen among them (Se in a sulfide,
        S in a selenide) an S/Se alloy is what the user expects: a contrast between the two hosts
        and a wide spread of chalcogen columns are then no misfit (the models are trained on
        alloys); with Te in a selenide a wide spread is expected too.
    host_level : float
        The host chalcogen column's level in chalcogen units, read off the image's Z-contrast
        ladder (:func:`~..cells.ladder.read_image_ladder`; 1 when the median column is a host
        column). The chosen material's contrast range is checked against the host column's
        contrast, ``metal / host``: an alloy whose median column is substituted has the host's
        contrast where its host columns are.
    heavier_explains : str, optional
        A heavier substituent not chosen that reads the image as the host with that atom in its
        brightest columns (:func:`heavier_substituent_reading`): said, as the likelier reading.
    suggested_substituents : tuple of str, optional
        The substituents that sentence suggests (:func:`heavier_suggestion`; default: the chosen
        ones and ``heavier_explains``).
    blurred : bool
        The columns are blurred beyond the training images' (said by :mod:`.blur`): the image is
        taken for inverted only below :data:`BLURRED_INVERTED_SKEWNESS`.

    Returns
    -------
    FitReport
        ``fits`` is False, with one sentence per problem in ``messages``, when the contrast lies
        outside the model material's range, the chalcogen columns vary far more than in training,
        the lattice constant disagrees with the material, or the model was trained for another
        material.
    """
    chosen = get_material(material).name
    trained = get_material(model_material or chosen).name
    meas = measure_image(image, lattice, smoothed)
    ratio = meas.metal_to_chalcogen
    host_ratio = ratio / max(host_level, 1e-6)  # the host column's contrast
    candidates = rank_materials(ratio, MATERIALS[chosen].metal, meas.a_nm)
    messages = []
    if trained != chosen:
        messages.append(f"The model was trained for {trained}, not {chosen}.")
    lo, _, hi = TRAINING_RANGES[trained]["metal_to_chalcogen"]
    metal = MATERIALS[chosen].metal
    alloy = alloy_between(ratio, metal)
    same_metal = [c for c in candidates if MATERIALS[c].metal == metal]
    alloy_expected = alloying_partner(chosen) in substituents
    nearer = None
    heavier = HEAVIER_SUBSTITUENT.get(MATERIALS[chosen].chalcogen)  # (not chosen: said below)
    bright = meas.bright_share(host_level)
    # Inside the chosen sulfide's contrast range but with columns brighter than it can show:
    # the partner chalcogen in them, and a contrast between the two hosts' — an S/Se alloy.
    partner_seen = (alloy is not None and same_metal and not alloy_expected
                    and heavier == alloying_partner(chosen) and bright > BRIGHT_SHARE)
    if partner_seen:
        nearer, _ = _nearer_first(alloy, ratio)
        # The host chosen first (the user knows what the layer was made from; its model with
        # the partner read the real fully converted image with the fewest vacancy calls), then
        # the other end of the alloy.
        other = alloy[1] if alloy[0] == chosen else alloy[0]
        messages.append(
            f"{bright:.0%} of the chalcogen columns are brighter than a {chosen} column can be "
            f"and the metal/chalcogen contrast {ratio:.2f} lies between {_typical(alloy[0])} "
            f"and {_typical(alloy[1])}: an S/Se alloy (a partly converted layer), nearer "
            f"{nearer} — analyse "
            f"it as an alloy: {chosen} with {alloying_partner(chosen)}, or {other} with "
            f"{alloying_partner(other)}.")
    if alloy and not same_metal:
        nearer, other = _nearer_first(alloy, ratio)
        better = (f"; it lies between {alloy[0]} and {alloy[1]}: the chalcogen columns look "
                  f"like an S/Se alloy (a partly converted layer), nearer {nearer} — analyse it as "
                  f"an alloy: {nearer} with {alloying_partner(nearer)}, or {other} with "
                  f"{alloying_partner(other)}")
        # the other metal's host whose range holds the contrast (a WSe2 + Te layer analysed as
        # MoSe2 with Te was sent round MoS2 and MoSe2 alloys, W never named: a trial)
        other_metal = next((c for c in candidates if MATERIALS[c].metal != metal), None)
        if other_metal is not None:
            better += (f" — or {other_metal}, if the metal is {MATERIALS[other_metal].metal} "
                       "(its contrast range holds it)")
    elif (candidates and candidates[0] != chosen
          and host_ratio > TRAINING_RANGES[chosen]["metal_to_chalcogen"][2]
          and _lattice_rules_out(candidates[0], chosen, meas.a_nm)):
        # The metal outshines the chalcogen columns more than the chosen host's range holds, and
        # the lattice constant, measured with the file's or the user's pixel size, is the chosen
        # host's and not the one whose contrast range holds the image's: the microscope, not the
        # material (an independent simulator's WSe2 + S alloy at a W/Se2 contrast of 2.44, with
        # its pixel size given, was told "MoS2 fits better"). Below the range the chalcogen
        # columns are brighter than the host's: a heavier atom in them, said as before.
        better = (f"; the image's lattice constant ({meas.a_nm:.3f} nm) is {chosen}'s, not "
                  f"{candidates[0]}'s, so the microscope rather than the material is likely the "
                  "cause (a larger inner detector angle makes the metal outshine the chalcogen "
                  "columns more): the chalcogen classes, read from brightness, may be off — "
                  "correct a few calls and fine-tune")
    elif candidates and candidates[0] != chosen:
        better = f"; {candidates[0]} fits better"
        partner = alloying_partner(chosen)
        if MATERIALS[candidates[0]].metal == metal and partner not in substituents:
            better += f" (or, for an S/Se alloy, {chosen} with {partner})"
        better += _other_metal_note(candidates, meas.a_nm)
    elif not candidates and 0 < ratio < 1 and rank_materials(1 / ratio, None, meas.a_nm):
        # Nothing shows this contrast, but its inverse is a material's whose metal outshines its
        # chalcogen (WS2 analysed as MoSe2, where the chalcogen is the brighter sublattice):
        # the sublattices were taken the wrong way round for that material.
        swapped = rank_materials(1 / ratio, MATERIALS[chosen].metal, meas.a_nm)[0]
        candidates = (swapped,)
        usual = (f"as {chosen}'s are" if TRAINING_RANGES[chosen]["metal_to_chalcogen"][2] < 1
                 else f"against {chosen}'s usual order")
        better = (f"; the brighter columns were taken for the chalcogen, {usual}, "
                  f"but as metal columns they show {swapped}'s contrast ({1 / ratio:.1f}): "
                  f"{swapped} fits better")
    elif host_ratio < TRAINING_RANGES[chosen]["metal_to_chalcogen"][0]:
        # the chalcogen columns outshine the chosen host's: a heavier atom in them
        better = (f": the chalcogen columns are brighter than {chosen}'s — a heavier "
                  f"substituent ({heavier}) to choose among the substituents, or another material"
                  if heavier and heavier not in substituents else "")
    else:
        better = ""
    if not better and host_ratio != ratio:
        # The ladder read the median column as substituted: the host columns' contrast is what
        # tells the metal (a trial's converted WS2 layer analysed as MoS2 with Se read 6.34,
        # outside MoS2's range, and no other host was named).
        better = _other_metal_host(host_ratio, chosen, substituents)
    if better and any(METAL_ALLOY_NOTE in m or METAL_TWO_LEVELS_NOTE in m
                      for m in lattice.messages):
        # (the lattice said its metal columns could be a Mo/W alloy's: another host proposed
        # from the contrast alone would point away from it — a trial's WSe2 + Mo + S was sent to
        # MoS2)
        better += (f" — unless the layer is {chosen} with {METAL_PARTNER[metal]} in place of "
                   f"some {metal}, a Mo/W alloy (see the sentence on it)")
    # An S/Se alloy chosen explains a contrast between the two hosts' only where the ladder
    # reads the median column as substituted: read as the host's, it is the host's contrast
    # (a WSe2 + Te layer analysed as MoSe2 with S and Te had gone unsaid).
    alloy_explains = alloy_expected and alloy and not same_metal and host_level != 1.0
    if _contrast_distance(host_ratio, chosen) > 0 and not alloy_explains:
        c_lo, _, c_hi = TRAINING_RANGES[chosen]["metal_to_chalcogen"]
        what = (f"what the {trained} model was trained on" if trained == chosen
                else f"what {chosen} shows")
        messages.append(f"Metal/chalcogen contrast {host_ratio:.2f} is outside {what} "
                        f"({c_lo:.1f}–{c_hi:.1f}){better}.")
    elif (host_level == 1.0  # else the host columns are where the chosen host puts them
          and candidates and candidates[0] != chosen and MATERIALS[candidates[0]].metal == metal
          and chosen in candidates):
        # Inside both ranges (they overlap at their edges) but typical of the other host.
        messages.append(f"Metal/chalcogen contrast {ratio:.2f} is more typical of "
                        f"{candidates[0]} than of {chosen}: {candidates[0]} fits better.")
    elif (host_level == 1.0 and not partner_seen  # (an S/Se alloy already explains it)
          and (edge := _edge_of_range_message(host_ratio, chosen, candidates, meas.a_nm))):
        messages.append(edge)
    if trained != chosen and _contrast_distance(ratio, trained) > 0:
        messages.append(f"Metal/chalcogen contrast {ratio:.2f} is outside what the {trained} model "
                        f"was trained on ({lo:.1f}–{hi:.1f}).")
    if meas.skewness < (BLURRED_INVERTED_SKEWNESS if blurred else INVERTED_SKEWNESS):
        messages.insert(0, f"The image looks inverted: most of its pixels are bright and a few "
                           f"dark (skewness {meas.skewness:+.1f}; a HAADF image of atomic columns "
                           "is the other way round, above +0.5), so its columns are darker than "
                           "the space between them. Is it a bright-field or ABF image? HAADF "
                           "(Z-contrast) is needed: invert it, or open the HAADF channel.")
    if heavier_explains:
        partner = alloying_partner(chosen)
        suggested = suggested_substituents or (*substituents, heavier_explains)
        read = (f"The chalcogen columns read as an {partner}-rich {chosen} alloy, with its "
                f"brightest columns pristine; they read better as {chosen} with "
                f"{heavier_explains} in its brightest columns ({bright:.0%} of them)")
        if partner in substituents and partner not in suggested:
            messages.append(
                f"{read}, and show no {partner} then: choose {', '.join(suggested)} as the "
                f"substituents, in place of {', '.join(substituents)} (with {partner} kept, a "
                f"{heavier_explains}-rich layer can read as an ordered {partner} layer).")
        else:
            messages.append(
                f"{read}: add {heavier_explains} to the substituents ({', '.join(suggested)}) "
                f"unless the layer is known to hold {partner} and no {heavier_explains}.")
    if heavier and heavier not in substituents and bright > BRIGHT_SHARE \
            and not any(heavier in m for m in messages):
        partner = alloying_partner(chosen)
        # A selenide whose contrast lies towards its sulfide's, the partner (S) not chosen: the
        # bright columns are likelier the host's own Se2 among S + Se ones (the real fully
        # converted image analysed as WSe2 was told Te alone).
        s_rich = (alloy is not None and partner not in substituents
                  and partner != heavier and heavier != "Se")
        first = (f"{MATERIALS[chosen].chalcogen}2 columns among {partner}-substituted ones (the "
                 f"contrast {ratio:.2f} lies between {_typical(alloy[0])} and "
                 f"{_typical(alloy[1])}: choose {partner}), " if s_rich and alloy else "")
        messages.append(f"{bright:.0%} of the chalcogen columns are brighter than a {chosen} "
                        f"column can be: {first}a heavier substituent ({heavier}) to choose "
                        "among the substituents, contamination or another material.")
    spread_max = TRAINING_RANGES[trained]["excess_spread"][0]
    excess = meas.excess_spread
    # Any alloying substituent chosen (S/Se, or Te in a selenide): a wide spread is expected.
    any_alloy = alloy_expected or any(d in DOUBLE_SUBSTITUTION for d in substituents)
    spread_said = False
    if np.isfinite(excess) and excess > spread_max * SPREAD_TOLERANCE and not any_alloy:
        messages.append(f"Chalcogen columns vary far more than in any training image (excess "
                        f"spread {excess:.1f}, training ≤ {spread_max:.1f}): an alloy, a "
                        "converted layer, many vacancies (a damaged layer), contamination or "
                        "another material; many columns will be flagged.")
        spread_said = True
    # A pixel size the user typed is judged by the calibration policy, which knows an alloy's
    # range of lattice constants (Vegard) and has said it in the lattice's messages already.
    if meas.a_nm is not None and lattice.calibration != "user":
        a_ref = MATERIALS[chosen].a_nm
        if abs(meas.a_nm / a_ref - 1) > LATTICE_TOLERANCE:
            fitting = [n for n in materials_with_lattice_constant(meas.a_nm) if n != chosen]
            named = (f" ({' or '.join(fitting)} has it)" if fitting else "")
            messages.append(f"Lattice constant {meas.a_nm:.3f} nm (from the pixel size in use) is "
                            f"not {chosen}'s {a_ref:.3f} nm{named}: check the pixel size or the "
                            "material.")
    # The other metal's host of the same chalcogen, which no range check names: the metal is
    # what the user knows, but a contrast far likelier under the twin is worth a sentence —
    # unless an alloying chalcogen is chosen, whose columns make the contrast a poor witness of
    # the metal (simulated WS2 + Se alloys read as MoS2's contrast in 3 of 16).
    twin = None
    alloying_chosen = any(d in DOUBLE_SUBSTITUTION for d in substituents)
    said = (None if partner_seen or heavier_explains or alloying_chosen
            or _contrast_distance(host_ratio, chosen) > 0 else twin_message(host_ratio, chosen))
    if said and not any(said[0] in m for m in messages):
        twin = said[0]
        messages.append(said[1])
    fits = not messages
    proposed = twin
    if not fits and candidates and candidates[0] != chosen and (same_metal or not alloy):
        proposed = candidates[0]
    elif not fits and nearer is not None and nearer != chosen:
        proposed = nearer
    return FitReport(material=chosen, model_material=trained, measurements=meas, fits=fits,
                     candidates=candidates, proposed=proposed, messages=messages,
                     heavier=heavier_explains, spread_only=spread_said and len(messages) == 1,
                     beyond_contrast=_contrast_distance(host_ratio, trained) > 0)


def flagged_fraction_message(n_flagged: int, n_sites: int,
                             operating_point: str | None = None,
                             fits: bool = False) -> str | None:
    """A sentence when an implausible fraction of chalcogen sites was flagged, else ``None``.

    ``n_flagged`` counts vacancies and substitutions other than an alloying chalcogen the user
    chose (see :func:`counts_as_flagged`); ``operating_point``: the run's, when the user set one
    (a low one calls more defects: that is named as the likelier cause); ``fits``: whether the
    image passed the other checks (contrast, lattice constant; :func:`assess_fit` — a wide spread
    of the columns alone is what many vacancies make) — then a heavily damaged layer is as
    likely as a misfit, and both are named (set K, thirty-third
    session: a WS2 field with 25 % chalcogen defects was told "the model likely does not fit"
    while its vacancy calls were right; the late frames of a beam-damage movie are such
    layers).
    """
    if n_sites <= 0:
        return None
    frac = n_flagged / n_sites
    if frac <= FLAGGED_FRACTION_LIMIT:
        return None
    if operating_point:
        return (f"{100 * frac:.0f} % of the chalcogen columns were flagged as defects at the "
                f"operating point {operating_point} (a value below 0.5 calls its class more "
                "readily): run at the neutral point (0.5) to tell whether the model fits this "
                "image.")
    if fits:
        return (f"{100 * frac:.0f} % of the chalcogen columns were flagged as defects — more "
                "than any training image holds: a heavily damaged layer (beam damage), or a "
                "model that does not fit this image; check a few of the calls.")
    return (f"{100 * frac:.0f} % of the chalcogen columns were flagged as defects — implausible for "
            "the model's training data: the model likely does not fit this image.")


def measure_training_ranges(n_images: int = 200, seed: int = 1000,
                            materials: tuple[str, ...] | None = None) -> dict:
    """Regenerate :data:`TRAINING_RANGES` from ``n_images`` simulated images per material
    (``materials``: only these).

    Each image has a random microscope (:meth:`~.simulate.MicroscopeParams.random`) — or, for
    the material's :data:`~..materials.ranges.INCOHERENT_TRAINING_SHARE` of them, one of the
    incoherent Z-contrast rule, as its model was trained (drawn from a generator of their own,
    so that the other images stay those of a material without) —, a random pixel size
    (0.008–0.02 nm) and the default defect densities. Besides the contrast and spread, the
    columns' width (:func:`~.blur.column_fwhm_nm`, 1st, 50th and 99th percentile).
    """
    from ..errors import NoLatticeError
    from ..lattice.lattice import find_lattice
    from ..materials.ranges import INCOHERENT_TRAINING_SHARE
    from ..simulate.image import MicroscopeParams, simulate_image
    from ..simulate.microscopes import incoherent_share_overrides
    from .blur import column_fwhm_nm

    out = {}
    for name, mat in MATERIALS.items():
        if materials is not None and name not in materials:
            continue
        mix = incoherent_share_overrides(INCOHERENT_TRAINING_SHARE.get(name, 0.0))
        mix_rng = np.random.default_rng(seed + 1_000_003)
        ratios, spreads, widths = [], [], []
        for k in range(n_images):
            rng = np.random.default_rng(seed + k)
            fixed = mix(mix_rng) if mix is not None else {}
            params = MicroscopeParams.random(rng, mat, all_voltages=True, **fixed)
            px = float(rng.uniform(0.008, 0.02))
            size = int(np.clip(14 * mat.a_nm / px, 192, 512))
            sim = simulate_image(mat, size, px, params=params, seed=k)
            try:
                lattice = find_lattice(sim.image, mat, pixel_size_nm=px)
            except NoLatticeError:  # a few very low-dose images show no lattice
                continue
            prepared = prepare_image(sim.image, lattice)  # as detection measures it
            meas = measure_image(prepared.flat, lattice, prepared.smoothed)
            ratios.append(meas.metal_to_chalcogen)
            spreads.append(meas.excess_spread)
            widths.append(column_fwhm_nm(sim.image, lattice))
        out[name] = {"metal_to_chalcogen": tuple(round(float(v), 3) for v in
                                                 np.percentile(ratios, [1, 50, 99])),
                     "excess_spread": (round(float(np.nanpercentile(spreads, 99)), 3),),
                     "column_fwhm_nm": tuple(round(float(v), 3) for v in
                                             np.nanpercentile(widths, [1, 50, 99])),
                     "n_images": (len(ratios),)}
    return out


#: Excess chalcogen spread below which the chalcogen columns are as uniform as a pristine layer's:
#: pristine WS2 images of 60 random microscopes measure 1.0–2.0 (5th–95th percentile), S/Se alloys
#: with 20–80 % Se 4.7–26 (fourth session of 2026-12-02).
UNIFORM_SPREAD = 3.0
#: Fraction of chalcogen columns called substituted above which a uniform image is questioned.
UNIFORM_SUBSTITUTED_FRACTION = 0.5


def uniform_substitution_message(n_substituted: int, n_sites: int, excess_spread: float,
                                 called: str, contrast: float,
                                 other_host: str | None = None,
                                 lighter: bool = False,
                                 material: str | None = None) -> str | None:
    """A sentence when most chalcogen columns are called substituted although they are as uniform
    as a pristine layer's, else ``None``.

    The metal/chalcogen contrast alone cannot tell a chalcogen sublattice brightened by a
    substituent from a microscope whose contrast is low: a pristine layer imaged at a low contrast
    is then read as an alloy — and one dimmed by a lighter substituent (S in a selenide) from a
    microscope whose contrast is high. A real random alloy spreads its chalcogen columns widely;
    a uniform Janus or fully substituted layer does not, so the sentence names both readings.

    Parameters
    ----------
    n_substituted, n_sites : int
        Chalcogen columns called substituted by an alloying chalcogen, and all chalcogen columns.
    excess_spread : float
        :attr:`ImageMeasurements.excess_spread` of the image.
    called : str
        The substituted classes called, for the sentence (e.g. ``"Se_S/Se2_S2"``).
    contrast : float
        The image's metal/chalcogen contrast.
    other_host : str, optional
        The host whose chalcogen nearly every column was called to hold twice (WSe2 when a WS2
        layer's columns are nearly all ``Se2_S2``): the layer is that material, to analyse as it.
    lighter : bool
        The substituent called is lighter than the host chalcogen (S in a selenide): the pristine
        alternative is a microscope of *higher* contrast than the reading expects, not lower.
    material : str, optional
        The chosen host: where the contrast is far likelier under the other metal's host of the
        same chalcogen (:func:`twin_message`), that pristine layer is named too — a simulated
        MoS2 field analysed as WS2 with Se read as a uniform 46 % Se alloy, and nothing named
        MoS2 (with Se chosen, an alloy explains a low contrast; the lattice constants differ by
        0.3 %).
    """
    if n_sites <= 0 or not np.isfinite(excess_spread):
        return None
    frac = n_substituted / n_sites
    if frac < UNIFORM_SUBSTITUTED_FRACTION or excess_spread > UNIFORM_SPREAD:
        return None
    if other_host:
        return (f"{100 * frac:.0f} % of the chalcogen columns were called {called}, as uniform "
                f"as a pristine layer's (excess spread {excess_spread:.1f}): the layer is "
                f"{other_host} — analyse it as {other_host} — unless it is the chosen host imaged "
                "at an unusual metal/chalcogen contrast.")
    twin = (twin_message(contrast, material) or (None,))[0] if material else None
    pristine = (f", or pristine {twin}, whose contrast this is (typically "
                f"{TRAINING_RANGES[twin]['metal_to_chalcogen'][1]:.1f}; the lattice constants "
                "differ by 0.3 %: if the metal is "
                f"{MATERIALS[twin].metal}, analyse it as {twin})" if twin else "")
    return (f"{100 * frac:.0f} % of the chalcogen columns were called {called}, yet they are as "
            f"uniform as a pristine layer's (excess spread {excess_spread:.1f}): either a uniform "
            "Janus or alloy layer, or the pristine host imaged at a "
            f"{'higher' if lighter else 'lower'} metal/chalcogen contrast ({contrast:.2f}) than "
            f"this reading expects of it{pristine}. Check against a region of known composition, "
            "or detect without that substituent.")


#: Share of the chalcogen columns holding atoms called doubly substituted by the S/Se partner above
#: which the layer is that partner's host (a WS2 layer analysed as WSe2 with S: ~99 % ``S2_Se2``).
OTHER_HOST_SHARE = 0.9


def other_host_reading(class_counts: Mapping[str, int], n_sites: int,
                       material: str | Material) -> str | None:
    """The partner host (WS2 for WSe2) when at least :data:`OTHER_HOST_SHARE` of the ``n_sites``
    chalcogen columns that hold atoms (vacancies left out) were called doubly substituted by its
    chalcogen, else ``None``."""
    mat = get_material(material)
    double = f"{alloying_partner(mat)}2_{mat.chalcogen}2"
    vacancies = sum(n for name, n in class_counts.items()
                    if (c := lookup_class(name)) is not None and c.kind in ("V_X", "V_X2"))
    holding = n_sites - vacancies
    if holding <= 0 or class_counts.get(double, 0) < OTHER_HOST_SHARE * holding:
        return None
    other = partner_material(mat)
    return other.name if other is not None else None


#: Share of the chalcogen atoms read as the S/Se partner above which the host chosen is said to
#: decide which single vacancies have a class: near an equal alloy or past it (0.55 until a
#: trial's MoS2 + 50 % Se analysed as MoSe2 with S turned its 11 `V_S` into `S2_Se2` calls and
#: said nothing, in either direction).
PARTNER_MAJORITY_SHARE = 0.45
#: ... and above which the layer is said to be the partner host's alloy, to analyse as it: two
#: thirds, past which the partner host's own column (two partner atoms) is the layer's most
#: common column (``c**2 > 2c(1 - c)`` in a random alloy). Between the two the layer is either
#: host's and the sentence asks for both analyses: told to switch at 60 %, a new user analysed
#: the real fully converted WS2 layer (60 % Se as WS2 with Se) as WSe2 with S, whose reading
#: flags a sixth of its columns as vacancies (S + Se columns by their levels), and nothing sent
#: them back — while a simulated WS2 with 37 % Se, analysed as WSe2 (61 % S), misses all its
#: single vacancies.
PARTNER_HOST_SHARE = 2 / 3


def partner_majority_message(share: float, material: str | Material,
                             partner_substituents: tuple[str, ...] = ()) -> str | None:
    """A sentence when more than :data:`PARTNER_MAJORITY_SHARE` of the chalcogen atoms were read
    as the host's S/Se partner (S in WSe2, Se in WS2), else ``None``: past
    :data:`PARTNER_HOST_SHARE` the layer is the partner host's alloy, to analyse as it; below,
    either host's, to analyse as both. ``partner_substituents`` (:func:`partner_host_substituents`)
    are named for the partner host in place of ``material``'s chalcogen: a selenide with Te
    analysed as a sulfide with Se reads as mostly Se.

    A layer is named after its majority chalcogen for a reason the classes carry: a column that
    lost one of its two atoms has a class only for the host's chalcogen (``V_Se`` is one Se
    left; one S left beside a vacancy is no class of a selenide, and one Se left is none of a
    sulfide). In a WS2 layer converted a third of the way to Se, analysed as WSe2 with S, a
    trial's 42 ``V_S`` became 32 pristine-looking and 10 empty columns, and 17 ``O_S`` became
    ``S2_Se2``: the vacancy count depended fourfold on the host chosen, and nothing said so.
    """
    mat = get_material(material)
    other = partner_material(mat)
    if other is None or not share > PARTNER_MAJORITY_SHARE:
        return None
    x, d = mat.chalcogen, other.chalcogen
    missed = (f"As {mat.name}, {_no_class_clause(mat, d)}: the single vacancies that left {d} are "
              "missed, and other columns may "
              f"be called V_{x} in their place; as {other.name} it is the reverse — where "
              "vacancies may have left either atom (made before the conversion, say), compare "
              "the two counts.")
    subs = " and ".join(partner_substituents or (mat.chalcogen,))
    read = f"{100 * share:.0f} % of the chalcogen atoms read as {other.chalcogen}"
    heavier = HEAVIER_SUBSTITUENT.get(other.chalcogen)
    if heavier in partner_substituents:
        read += (f" as {mat.name} with {other.chalcogen}; read as {other.name}, its brightest "
                 f"columns hold {heavier}")
    if share > PARTNER_HOST_SHARE:
        return (f"{read}: the layer is {other.name} alloyed with {subs} — analyse it as "
                f"{other.name} with {subs}. {missed}")
    return (f"{read}: near an equal alloy, the layer may be called {mat.name} or {other.name} "
            f"— analyse it as {other.name} with {subs} as well and compare the two. {missed}")


#: Share of the chalcogen atoms read as the S/Se partner from which, below
#: :data:`PARTNER_MAJORITY_SHARE`, the single vacancies that left a partner atom are said to be
#: missed (:func:`partner_vacancy_message`): a trial's fully converted layer read 31 % S as
#: WSe2 with S (61 % Se as WS2 with Se) and its 116 V_Se were five times the other reading's
#: single vacancies, with nothing said of the other reading.
PARTNER_MENTION_SHARE = 0.25


def partner_vacancy_message(share: float, material: str | Material) -> str | None:
    """A sentence when :data:`PARTNER_MENTION_SHARE` to :data:`PARTNER_MAJORITY_SHARE` of the
    chalcogen atoms were read as the host's S/Se partner (above, :func:`partner_majority_message`
    says more), else ``None``: the single vacancies that left the partner atom have no class in
    this reading, and a run as the partner host counts them."""
    mat = get_material(material)
    other = partner_material(mat)
    if other is None or not PARTNER_MENTION_SHARE <= share <= PARTNER_MAJORITY_SHARE:
        return None
    x, d = mat.chalcogen, other.chalcogen
    return (f"{100 * share:.0f} % of the chalcogen atoms read as {d}: as {mat.name}, "
            f"{_no_class_clause(mat, d)}, so the single vacancies that left {d} are missed or "
            "called another class; where vacancies may have left either atom, compare the "
            f"vacancy counts with a run as {other.name} with {x}.")


def _no_class_clause(mat: Material, partner: str) -> str:
    """"a column left with one Se atom has no class (one left with S is V_S)": why a reading
    of ``mat`` misses the single vacancies that left the S/Se ``partner``."""
    x = mat.chalcogen
    return f"a column left with one {partner} atom has no class (one left with {x} is V_{x})"


#: Share of the chalcogen columns on point-defect rungs (vacancies, substituents not chosen) at
#: which a ladder reading is strained: the fit allows 15 % at most. Over 143 simulated images of
#: four simulators (true vacancy shares up to 7 %) the readings stayed at or below 6 %; an
#: independent simulator's WSe2 + 53 % Te read as pristine WSe2 needed 17 %, and the real partly
#: converted WS2 images read as WSe2 with S 12–17 % (as WS2 with Se, 11 % at most).
STRAINED_POINT_SHARE = 0.14


def strained_reading_message(point_share: float, material: str | Material,
                             substituents: tuple[str, ...]) -> str | None:
    """A sentence when the Z-contrast ladder's reading puts ``point_share`` (at least
    :data:`STRAINED_POINT_SHARE`) of the chalcogen columns on vacancy or unchosen-substituent
    rungs, else ``None``."""
    if not point_share >= STRAINED_POINT_SHARE:
        return None
    mat = get_material(material)
    subs = ", ".join(substituents) if substituents else "no substituent"
    left = [d for d in supported_substituents(mat) if d not in substituents]
    unchosen = f" ({', '.join(left)} not chosen)" if left else ""
    return (f"Read as {mat.name} with {subs}, {100 * point_share:.0f} % of the chalcogen columns "
            "can only be vacancies or substituents you did not choose — near the most this "
            f"reading allows: check the material and the substituents{unchosen}; a layer "
            "substituted past half, another element or a heavily damaged layer reads like "
            f"this, and the calls may be a class off.{_other_metal_alloy_note(mat, substituents)}")


def _other_metal_alloy_note(mat: Material, substituents: tuple[str, ...]) -> str:
    """A sentence for a Mo sulfide read with Se: a W layer's S + Se columns stand to W as S2
    columns stand to Mo (both about 2.7), so a converted WS2 layer reads as MoS2 with its S2
    columns a rung low — as vacancies (a trial's partly converted WS2 image analysed as MoS2
    with O, Se: 194 V_S against 39 as WS2, and nothing named W)."""
    if mat.name != "MoS2" or "Se" not in substituents:
        return ""
    return (" If the metal is W, analyse it as WS2 with "
            f"{', '.join(substituents)}: a W layer's S + Se columns stand to W as S2 columns "
            "stand to Mo, so its S2 columns read a rung low, as vacancies.")


def counts_as_flagged(class_name: str, substituents: tuple[str, ...]) -> bool:
    """Whether a site of ``class_name`` counts as a defect (towards the flagged fraction of the
    chalcogen sites and the defect counts): every defect class except substitutions by a chosen
    alloying chalcogen (Se in S, S in Se, Te in Se), which may cover any fraction of an alloy,
    and the other metal of a Mo/W alloy (``W_Mo``)."""
    if class_name in ("chalcogen", "metal"):
        return False
    c = lookup_class(class_name)
    if c is not None and c.kind == "D_M":
        return False
    return not (c is not None and c.substituent in substituents
                and c.substituent in DOUBLE_SUBSTITUTION)


def alloying_count(classes: list[str] | tuple[str, ...], substituents: tuple[str, ...]) -> int:
    """How many of ``classes`` (one per call or true site) are alloying substitutions, not
    defects (:func:`counts_as_flagged`)."""
    return sum(1 for c in classes if not counts_as_flagged(str(c), tuple(substituents)))


def calls_summary(classes: list[str] | tuple[str, ...], substituents: tuple[str, ...]) -> str:
    """``"N defects"``, or ``"N calls (a defects, b alloying substitutions)"`` when some calls
    are substitutions by a chosen alloying chalcogen or the other metal of a Mo/W alloy (the
    alloy's composition, not defects)."""
    def many(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    n_alloy = alloying_count(classes, substituents)
    if not n_alloy:
        return many(len(classes), "defect")
    return (f"{many(len(classes), 'call')} ({many(len(classes) - n_alloy, 'defect')}, "
            f"{many(n_alloy, 'alloying substitution')})")


__all__ = ["FitReport", "ModelFitWarning", "ImageMeasurements", "alloying_count",
           "alloying_partner", "assess_fit",
           "calls_summary", "counts_as_flagged", "flagged_fraction_message",
           "heavier_suggestion", "partner_host_substituents", "partner_majority_message",
           "partner_vacancy_message",
           "read_heavier_substituent", "uniform_substitution_message",
           "measure_image", "measure_training_ranges", "rank_materials", "alloy_between"]
