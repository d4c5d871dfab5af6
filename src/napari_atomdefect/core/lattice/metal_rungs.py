"""Two levels on the metal sublattice: a Mo/W alloy (Mo₁₋ₓWₓS₂, Mo₁₋ₓWₓSe₂).

A metal column holds one atom. In a Mo/W alloy it holds Mo or W, and a W atom scatters 2.4–3.0
times a Mo atom into a HAADF detector (screened Rutherford, 60–300 kV, 60–250 mrad:
:func:`~..materials.physics.haadf_cross_section`), somewhat less where channelling dims W
(:data:`~..materials.physics.METAL_MODEL_FACTOR`). So the metal sublattice splits into two tight
rungs, and each rung shows its own host's metal/chalcogen contrast against the chalcogen columns,
which stay as they are: the Mo rung over S₂ as in MoS₂, the W rung over S₂ as in WS₂.

That matters before anything is classified: the lattice takes for the metal the sublattice whose
columns are alike (an S/Se alloy varies its chalcogen columns, never its metal ones,
``lattice._is_the_varied_one``). A Mo/W alloy varies its metal columns, and
was read with its sublattices exchanged — every S₂ column a metal, hundreds of "metal vacancies".
:func:`read_metal_alloy` says whether the varied sublattice reads as the two metals over a
uniform chalcogen one; an S/Se alloy's chalcogen ladder (S₂, S+Se, Se₂: rungs 2.0 and 1.6 apart,
the metal between them) fails it, because its lowest rung over the metal is no host's contrast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..materials.materials import METAL_PARTNER, Material, get_material
from ..materials.ranges import TRAINING_RANGES
from ..robust import robust_sd

#: Range of the W/Mo column ratio taken as a Mo/W alloy's two rungs: 2.4–3.0 for single atoms
#: (screened Rutherford over 60–300 kV, 60–250 mrad), 1.6–1.8 at 60 kV and 2.4–2.6 at 200 kV in
#: multislice, where channelling dims W against the model more than Mo
#: (:data:`~..materials.physics.METAL_MODEL_FACTOR`), with room for the detector.
HEAVY_TO_LIGHT_RATIO = (1.4, 3.6)
#: The two rungs' medians must lie this many pooled robust standard deviations apart (log levels):
#: two atoms, not a broad spread of one.
RUNG_SEPARATION = 4.0
#: Each rung holds at least this share of the metal columns, and at least this many.
MIN_RUNG_SHARE = 0.02
MIN_RUNG_COLUMNS = 4
#: Factor by which each rung's contrast over the chalcogen columns may lie outside its host's
#: simulated range (:data:`~..materials.ranges.TRAINING_RANGES`).
CONTRAST_SLACK = 1.3
#: The words of the lattice's note that a selenide could be a Mo/W alloy (said beside the result).
METAL_ALLOY_NOTE = "could also be read as a Mo/W alloy"
#: The words of the lattice's note that the metal columns the user named the other metal for take
#: two levels, yet not as the two metals of the chosen host (a wrong material?).
METAL_TWO_LEVELS_NOTE = "take two levels, but not"
#: Columns below this fraction of the median metal level are left out (metal vacancies: within
#: ±0.1 of the background; a Mo column of a W host lies at 0.22–0.45 of the median W).
VACANCY_LEVEL = 0.15
#: Columns closer than this (lattice constants) to the edge of the field are left out of the
#: rungs: the edge cuts them, and a cut W column reads like a Mo one.
EDGE_A = 0.15
#: Hosts whose metal rungs cannot be mistaken for a chalcogen ladder. In a sulfide both metals
#: outshine S₂ 1.6–10×, and an S/Se ladder's lowest rung lies below the metal. In a selenide
#: a Mo/W alloy's rungs (Mo 0.5–0.85, W 0.9–2 of Se₂) are those of an S-rich MoSe₂ ladder (S₂ and
#: S+Se under the Mo) or a Te-rich WSe₂ one (Se₂ and Se+Te around the W), read against a
#: uniform sublattice alike: the levels cannot tell them apart.
HOSTS: tuple[str, ...] = ("MoS2", "WS2")


@dataclass(frozen=True)
class MetalRungs:
    """The metal columns' two levels: the host metal's rung and the other metal's.

    Attributes
    ----------
    host, other : float
        The two rungs' median levels.
    threshold : float
        The level between them.
    other_share : float
        Share of the columns read on the other metal's rung.
    host_sd, other_sd : float
        Robust spreads of the two rungs' log levels (the host's for an other rung of a few
        columns).
    """

    host: float
    other: float
    threshold: float
    other_share: float
    host_sd: float
    other_sd: float

    def other_probability(self, levels: np.ndarray) -> np.ndarray:
        """Posterior of the other metal's rung for each level under two log-normal rungs
        weighted by their shares (0 for a level at or below zero)."""
        x = np.log(np.maximum(np.asarray(levels, float), 1e-12))

        def log_density(centre: float, sd: float, share: float) -> np.ndarray:
            sd = max(sd, 1e-3)
            return np.log(max(share, 1e-6)) - np.log(sd) - 0.5 * ((x - np.log(centre)) / sd) ** 2

        odds = (log_density(self.host, self.host_sd, 1 - self.other_share)
                - log_density(self.other, self.other_sd, self.other_share))
        return np.where(np.asarray(levels) > 0, 1 / (1 + np.exp(np.clip(odds, -50, 50))), 0.0)


@dataclass(frozen=True)
class MetalAlloyReading:
    """A metal sublattice read as two metals.

    Attributes
    ----------
    host_metal, other_metal : str
        The chosen material's metal and the other one of the alloy.
    other_share : float
        Share of the metal columns (vacancies left out) on the other metal's rung.
    ratio : float
        The heavier rung's level over the lighter one's.
    threshold : float
        The level between the two rungs (the units of the levels read).
    n_columns : int
        Metal columns read.
    named : bool
        Whether the user named the other metal among the substituents (its columns are then
        a class, ``W_Mo``).
    n_other : int
        Columns on the other metal's rung.
    below_share : float
        Share of the columns read that lie well below the lighter metal's rung yet above a
        vacancy (:func:`below_lighter_rung`): a metal column holds one atom or none, so a
        third, lower rung says the sublattice read is a chalcogen ladder.
    """

    host_metal: str
    other_metal: str
    other_share: float
    ratio: float
    threshold: float
    n_columns: int
    named: bool = False
    n_other: int = 0
    below_share: float = 0.0

    def message(self, material: str | Material) -> str:
        """One sentence for the user: the alloy seen, and how the image is analysed."""
        mat = get_material(material)
        cls = f"{self.other_metal}_{mat.metal}"
        if self.other_metal == "W":
            looks = f"{self.ratio:.2g}× as bright as the rest"
        else:
            looks = f"{self.ratio:.2g}× dimmer than the rest"
        percent = 100 * self.other_share
        share = (f"{self.n_other} of them ({percent:.1f} %)" if percent < 10
                 else f"{percent:.0f} % of them")
        text = (f"The {mat.metal} columns take two levels: {share} "
                f"{'is' if self.n_other == 1 else 'are'} {looks}, as "
                f"{self.other_metal} columns are in a Mo/W alloy")
        if self.named:
            text += (f": marked {cls}; the chalcogen columns and vacancies are analysed as in "
                     f"{mat.name}")
        else:
            text += (f". The chalcogen columns and vacancies are analysed as in {mat.name}; "
                     f"choose {self.other_metal} among the substituents to mark the "
                     f"{self.other_metal} columns ({cls})")
        if self.other_share > 0.5:
            other = f"{self.other_metal}{mat.name[len(mat.metal):]}"
            text += f"; with mostly {self.other_metal}, analyse it as {other}"
        return text + "."


def two_rungs(levels: np.ndarray) -> tuple[float, float, float, float] | None:
    """Split positive ``levels`` into two rungs (Otsu on their logarithms).

    Returns
    -------
    tuple or None
        ``(low, high, threshold, high_share)``: the two rungs' medians, the level between them and
        the share of the levels on the high rung; ``None`` when the levels are not two rungs
        (:data:`RUNG_SEPARATION`, :data:`MIN_RUNG_SHARE`, :data:`MIN_RUNG_COLUMNS`).
    """
    x = np.sort(np.log(np.asarray(levels, float)[np.asarray(levels, float) > 0]))
    n = len(x)
    least = max(MIN_RUNG_COLUMNS, int(np.ceil(MIN_RUNG_SHARE * n)))
    if n < 2 * least:
        return None
    csum = np.cumsum(x)
    k = np.arange(1, n)                       # k levels on the low side
    m_low = csum[:-1] / k
    m_high = (csum[-1] - csum[:-1]) / (n - k)
    between = k * (n - k) * (m_high - m_low) ** 2
    between[(k < least) | (n - k < least)] = -1.0
    split = int(np.argmax(between)) + 1
    if between[split - 1] < 0:
        return None
    low, high = x[:split], x[split:]
    pooled = np.sqrt((robust_sd(low) ** 2 + robust_sd(high) ** 2) / 2)
    gap = float(np.median(high) - np.median(low))
    if gap < RUNG_SEPARATION * max(pooled, 1e-6):
        return None
    return (float(np.exp(np.median(low))), float(np.exp(np.median(high))),
            float(np.exp((x[split - 1] + x[split]) / 2)), float(len(high) / n))


#: A few columns of the other metal (fewer than a rung of :data:`MIN_RUNG_SHARE`): each must lie
#: this many robust spreads of the host rung away from it (log levels), at the W/Mo ratio of
#: :data:`FEW_COLUMNS_RATIO` — named by the user, the multislice range; unasked, only the
#: single-atom one (2.4–3.0; one W column of a real WS2 image dimmed 1.9× by a scan glitch had
#: been read as Mo) — and there must be :data:`FEW_COLUMNS_MIN` of them.
OUTLIER_SIGMAS = 6.0
FEW_COLUMNS_RATIO: dict[bool, tuple[float, float]] = {True: (1.5, 3.4), False: (2.1, 3.4)}
FEW_COLUMNS_MIN = 2


def metal_rungs(levels: np.ndarray, other_metal: str, named: bool = False) -> MetalRungs | None:
    """The host and other-metal rungs of metal column ``levels`` (vacancies left out), or ``None``.

    Two rungs (:func:`two_rungs`) whose ratio is :data:`HEAVY_TO_LIGHT_RATIO`; or, where the other
    metal holds too few columns to be a rung, the columns of the host rung's outliers
    (:data:`OUTLIER_SIGMAS`) that lie at :data:`FEW_COLUMNS_RATIO` from it (``named``: the
    user named the other metal) — brighter for W in a Mo host, dimmer for Mo in a W host (a
    dilute alloy: a few W columns in MoS2 made their S2 neighbours ``O_S`` calls).
    """
    levels = np.asarray(levels, float)
    levels = levels[np.isfinite(levels)]
    if not len(levels):
        return None
    levels = levels[levels > VACANCY_LEVEL * np.median(levels)]
    brighter = other_metal == "W"
    rungs = two_rungs(levels)
    if rungs is not None and HEAVY_TO_LIGHT_RATIO[0] <= rungs[1] / rungs[0] <= HEAVY_TO_LIGHT_RATIO[1]:
        low, high, threshold, high_share = rungs
        x = np.log(levels)
        sd_low = robust_sd(x[levels <= threshold])
        sd_high = robust_sd(x[levels > threshold])
        if brighter:
            return MetalRungs(low, high, threshold, high_share, sd_low, sd_high)
        return MetalRungs(high, low, threshold, 1 - high_share, sd_high, sd_low)
    if len(levels) < 2 * MIN_RUNG_COLUMNS:
        return None
    x = np.log(levels)
    centre, sd = float(np.median(x)), max(robust_sd(x), 1e-3)
    step = (x - centre) if brighter else (centre - x)
    low_ratio, high_ratio = FEW_COLUMNS_RATIO[named]
    far = ((step >= np.log(low_ratio)) & (step <= np.log(high_ratio))
           & (step >= OUTLIER_SIGMAS * sd))
    # (a few columns: more would have been a rung of their own)
    if not FEW_COLUMNS_MIN <= far.sum() <= max(MIN_RUNG_COLUMNS, MIN_RUNG_SHARE * len(levels)):
        return None
    other = float(np.exp(np.median(x[far])))
    host = float(np.exp(centre))
    return MetalRungs(host, other, float(np.sqrt(host * other)), float(far.mean()), sd, sd)


#: A column lies "below the lighter rung" (:func:`below_lighter_rung`) this many of that rung's
#: robust spreads under it (log levels), and at least :data:`BELOW_RUNG_FACTOR` dimmer.
BELOW_RUNG_SIGMAS = 6.0
BELOW_RUNG_FACTOR = 0.8


def below_lighter_rung(levels: np.ndarray, rungs: MetalRungs, other_metal: str) -> float:
    """Share of the non-vacancy ``levels`` well below the lighter metal's rung of ``rungs``.

    A metal column holds Mo, W or nothing: between a vacancy (:data:`VACANCY_LEVEL`) and the
    lighter rung lies nothing but noise. A chalcogen sublattice read as two metals keeps its
    lower rungs there (S₂ under S + Se and Se₂ in an S-rich selenide).
    """
    levels = np.asarray(levels, float)
    levels = levels[np.isfinite(levels)]
    if not len(levels):
        return 0.0
    levels = levels[levels > VACANCY_LEVEL * np.median(levels)]
    light, sd = ((rungs.host, rungs.host_sd) if other_metal == "W"
                 else (rungs.other, rungs.other_sd))
    cut = min(np.log(light) - BELOW_RUNG_SIGMAS * sd, np.log(BELOW_RUNG_FACTOR * light))
    return float(np.mean(np.log(levels) < cut)) if len(levels) else 0.0


def _within(contrast: float, host: str) -> bool:
    lo, _, hi = TRAINING_RANGES[host]["metal_to_chalcogen"]
    return lo / CONTRAST_SLACK <= contrast <= hi * CONTRAST_SLACK


def read_metal_alloy(metal_levels: np.ndarray, chalcogen_level: float | Sequence[float],
                     material: str | Material, named: bool = False) -> MetalAlloyReading | None:
    """Whether the metal columns read as a Mo/W alloy over uniform chalcogen columns.

    Parameters
    ----------
    metal_levels : ndarray
        Levels of the sublattice taken for the metal (above the hollow-site background).
    chalcogen_level : float or sequence of float
        The level of the other sublattice's host columns (same units); several where a
        chalcogen alloy leaves it open (the median column, and the end of the chalcogen ladder
        where the host's own columns lie): the contrasts must hold against one of them.
    material : str or Material
        The chosen host (:data:`HOSTS` only, unless ``named``: in selenides the reading is
        ambiguous).
    named : bool
        Whether the user named the other metal among the substituents (which settles it).

    Returns
    -------
    MetalAlloyReading or None
        The reading, when the levels form two rungs :data:`HEAVY_TO_LIGHT_RATIO` apart (or the
        other metal's few columns lie there, :func:`metal_rungs`) and each rung over
        ``chalcogen_level`` shows its own host's contrast; else ``None``.
    """
    mat = get_material(material)
    other = METAL_PARTNER.get(mat.metal)
    references = [float(r) for r in np.atleast_1d(np.asarray(chalcogen_level, float))
                  if np.isfinite(r) and r > 0]
    if (mat.name not in HOSTS and not named) or other is None or not references:
        return None
    rungs = metal_rungs(metal_levels, other, named)
    if rungs is None:
        return None
    mo_level, w_level = ((rungs.host, rungs.other) if other == "W"
                         else (rungs.other, rungs.host))
    chalcogen_part = mat.name[len(mat.metal):]           # "S2", "Se2"
    if not any(_within(mo_level / ref, f"Mo{chalcogen_part}")
               and _within(w_level / ref, f"W{chalcogen_part}") for ref in references):
        return None
    levels = np.asarray(metal_levels, float)
    n = int(np.sum(np.isfinite(levels) & (levels > VACANCY_LEVEL * np.nanmedian(levels))))
    return MetalAlloyReading(mat.metal, other, rungs.other_share, w_level / mo_level,
                             rungs.threshold, n, named, int(round(rungs.other_share * n)),
                             below_lighter_rung(levels, rungs, other))


__all__ = ["EDGE_A", "FEW_COLUMNS_RATIO", "HEAVY_TO_LIGHT_RATIO", "HOSTS", "METAL_ALLOY_NOTE",
           "METAL_TWO_LEVELS_NOTE", "MetalAlloyReading", "MetalRungs", "below_lighter_rung", "metal_rungs",
           "read_metal_alloy", "two_rungs"]
