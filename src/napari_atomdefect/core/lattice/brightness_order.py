"""Which of two equally uniform sublattices is the metal, where their brightness alone does not
tell.

A host's metal and chalcogen columns differ in brightness, and the lattice takes the brighter
(or the dimmer) for the metal as the material says. A chalcogen column that holds a substituent
beside a host atom can sit on the other side of the metal: a Janus MoSSe layer's S + Se columns
(read as MoSe2 with S, or as MoS2 with Se) are about as bright as its Mo columns — 0.8–1.3
times by the microscopes of :func:`~..simulate.microscopes.ladder_physics`. Where both
sublattices are uniform (no alloy varies one of them), the brightness order then fits either
reading about as well, and an independent simulator's Janus MoSe2 + S layer had been read with
its sublattices exchanged, silently (every Mo column a "Se2" one).

Two things tell them apart: the ratio of the two sublattices' levels, as likely under each
reading over the microscopes (as taken, host columns or a Janus layer of the S/Se partner; the
other way round, only the Janus layer, :func:`ratio_log10_odds`); and the columns that miss
atoms, which lie on the chalcogen sublattice far more often (chalcogen vacancies are the common
point defect of these layers; a metal column holds one atom, so it has no partly empty level
either). Where both together still do not decide, the brighter-or-dimmer choice of the material
stands and the user is told how to choose the other (:func:`order_note`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..materials.columns import lookup_class, median_classes, parse_substituents
from ..materials.materials import Material, partner_material
from ..materials.physics import partner_chalcogen
from ..robust import robust_sd
from ..simulate.microscopes import (
    METAL_LOG_SIGMA,
    ladder_physics,
    median_class_prior,
    microscope_prior,
)

#: A column is deficient below this fraction of its sublattice's median level and
#: :data:`DEFICIENT_SIGMAS` robust spreads below it.
DEFICIENT_LEVEL = 0.85
DEFICIENT_SIGMAS = 4.0
#: Share of the deficient columns of a layer that lie on its chalcogen sublattice, for the odds
#: they give: 0.8 — over 191 simulated images of four simulators, the chalcogen sublattice held
#: 2–10 times the metal's deficient columns (vacancies; the metal's also from noise and edges).
CHALCOGEN_DEFICIENT_SHARE = 0.8
#: Log10 odds from which the exchanged reading is taken; between minus this and this, the
#: images are said to fit both.
DECISIVE_LOG10_ODDS = 2.0
#: Log10 odds, over the level ratio alone, from which the ratio settles the order and nothing
#: is read or said: for the material's order, a WS2 layer's W columns 3–10 times its S2 ones;
#: against it, a layer of another host (MoS2 analysed as MoSe2: the model-fit check says so,
#: :mod:`..detect.image_fit`).
RATIO_SETTLES_LOG10 = 4.0
#: The words that begin the lattice's sentence on such a pair of sublattices, and those of its
#: undecided form (the reading may be the wrong way round: said beside the result).
ORDER_NOTE = "The two sublattices are equally uniform and about as bright"
ORDER_UNDECIDED_NOTE = "fit them alike"


@dataclass(frozen=True)
class BrightnessOrder:
    """What :func:`brightness_order` found.

    Attributes
    ----------
    exchange : bool
        Whether the sublattice the brightness order took for the chalcogen is the metal.
    log10_odds : float
        Log10 odds of the exchanged reading over the material's order (ratio and deficient
        columns together).
    ratio_log10_odds : float
        The part the level ratio gives.
    deficient : tuple of int
        Deficient columns on the sublattice taken for the metal and on the one taken for the
        chalcogen.
    ratio : float
        The level of the sublattice taken for the metal over the other's.
    """

    exchange: bool
    log10_odds: float
    ratio_log10_odds: float
    deficient: tuple[int, int]
    ratio: float

    @property
    def undecided(self) -> bool:
        """Whether the image fits both readings (neither is :data:`DECISIVE_LOG10_ODDS` likelier)."""
        return abs(self.log10_odds) < DECISIVE_LOG10_ODDS


def ratio_log10_odds(ratio: float, material: Material, substituents: Sequence[str]) -> float:
    """Log10 odds, over the level ratio alone, that the sublattice taken for the metal (its
    level ``ratio`` times the other's) is the chalcogen, for ``material`` with ``substituents``:
    the ratio's likelihood under each reading, summed over the classes a uniform layer's
    chalcogen columns may be (as taken, the host's or the S/Se partner beside a host atom in an
    ordered layer; the other way round, the latter only; each by its prior,
    :func:`~..simulate.microscopes.median_class_prior`) and the microscopes (by theirs)."""
    names, rungs, _, metal = ladder_physics(material.name, tuple(substituents))
    prior = microscope_prior(len(metal))
    every = median_classes(material, tuple(substituents))
    # Not a median column with both atoms replaced: uniform, that is another host's layer,
    # which its lattice constant and contrast tell (the model-fit check says so). Nor one of Te
    # beside Se: a WSeTe or MoSeTe Janus layer is rare, while at low contrasts its columns
    # would fit pristine WSe2 and MoSe2 images read the other way round (a held-out WSe2 at
    # W/Se2 1.34, S and Te chosen, was questioned).
    kinds = {c: getattr(lookup_class(c), "kind", None) for c in every}
    partner = partner_chalcogen(material)
    classes = [c for c in every if c in names and kinds[c] != "D2_X2"
               and (kinds[c] != "D_X" or getattr(lookup_class(c), "substituent", None) == partner)]

    def likelihood(r: float, among: list[str]) -> float:
        total = 0.0
        for name in among:
            predicted = metal / rungs[:, names.index(name)]
            # (uniform: a layer of singly substituted columns is an ordered one)
            weight = median_class_prior(name, len(every), kinds[name] == "D_X", ordered=True)
            total += weight * float(prior @ np.exp(-0.5 * ((np.log(r) - np.log(predicted))
                                                        / METAL_LOG_SIGMA) ** 2))
        return total

    # The other way round, the layer is a Janus one: pristine host columns dimmer than their
    # metal where the host's are brighter (or the reverse) are no host's — the model-fit check
    # weighs the contrast against each host (a held-out WSe2 at W/Se2 1.34 had been questioned).
    taken = likelihood(ratio, classes)
    exchanged = likelihood(1.0 / ratio, [c for c in classes if kinds[c] == "D_X"])
    return float(np.log10(max(exchanged, 1e-300)) - np.log10(max(taken, 1e-300)))


def deficient_columns(peaks: np.ndarray) -> int:
    """Columns of a sublattice (their peak levels above the background) well below its median:
    under :data:`DEFICIENT_LEVEL` of it and :data:`DEFICIENT_SIGMAS` robust spreads below."""
    peaks = np.asarray(peaks, float)
    peaks = peaks[np.isfinite(peaks)]
    if not len(peaks) or np.median(peaks) <= 0:
        return 0
    rel = peaks / float(np.median(peaks))
    sd = robust_sd(rel, centre=1.0)
    return int((rel < min(DEFICIENT_LEVEL, 1.0 - DEFICIENT_SIGMAS * sd)).sum())


def brightness_order(metal_peaks: np.ndarray, chalcogen_peaks: np.ndarray, material: Material,
                     substituents: str | Sequence[str] | None) -> BrightnessOrder | None:
    """Whether two uniform sublattices are the other way round from the material's brightness
    order.

    Parameters
    ----------
    metal_peaks, chalcogen_peaks : ndarray
        Peak levels (above the background) of the columns of the sublattice the brightness
        order took for the metal, and of the other.
    material : Material
    substituents : str or sequence of str, optional
        The substituents chosen (default: the material's).

    Returns
    -------
    BrightnessOrder or None
        ``None`` where the level ratio alone settles it (:data:`RATIO_SETTLES_LOG10`).
    """
    m = np.asarray(metal_peaks, float)
    x = np.asarray(chalcogen_peaks, float)
    m, x = m[np.isfinite(m)], x[np.isfinite(x)]
    if not len(m) or not len(x) or np.median(m) <= 0 or np.median(x) <= 0:
        return None
    chosen = parse_substituents(substituents, material)
    ratio = float(np.median(m) / np.median(x))
    by_ratio = ratio_log10_odds(ratio, material, chosen)
    if abs(by_ratio) >= RATIO_SETTLES_LOG10:
        return None
    d_m, d_x = deficient_columns(m), deficient_columns(x)
    per_column = np.log10(CHALCOGEN_DEFICIENT_SHARE / (1 - CHALCOGEN_DEFICIENT_SHARE))
    odds = by_ratio + (d_m - d_x) * per_column
    return BrightnessOrder(bool(odds >= DECISIVE_LOG10_ODDS), float(odds), float(by_ratio),
                           (d_m, d_x), ratio)



def order_note(order: BrightnessOrder, mat: Material, metal_brighter: bool) -> str:
    """The sentence on two equally uniform sublattices about as bright: which was taken for the
    metal, and why; where undecided, how to take the other (``metal_brighter``: the material's
    metal outshines its chalcogen)."""
    brighter = max(order.ratio, 1 / order.ratio)
    metal_is_brighter = metal_brighter != order.exchange
    side = "brighter" if metal_is_brighter else "dimmer"
    other_side = "dimmer" if metal_is_brighter else "brighter"
    head = f"{ORDER_NOTE} (the brighter {brighter:.2f} times the other)"
    if order.exchange:
        on_taken_metal, on_taken_chalcogen = order.deficient
        why = (f"the {other_side} one holds the columns that miss atoms ({on_taken_metal} "
               f"against {on_taken_chalcogen}), so it"
               if on_taken_metal > on_taken_chalcogen else
               f"their brightness ratio fits the {mat.metal} as the {side} one far better, so the "
               f"{other_side} one")
        return (f"{head}, as a Janus layer's {mat.metal} and mixed chalcogen columns are: {why} "
                f"is taken for the chalcogen and the {side} for the {mat.metal}, against "
                f"{mat.name}'s usual order.")
    partner = partner_material(mat)
    held = (f"{partner.chalcogen} beside {mat.chalcogen}" if partner is not None
            else "a substituent")
    note = (f"{head}: {mat.name}'s own order and the other way round (chalcogen columns holding "
            f"{held}, as in a Janus layer) {ORDER_UNDECIDED_NOTE}, and too few columns miss "
            f"atoms to tell. The {side} sublattice is taken for the {mat.metal}")
    partner_weights = None if partner is None else partner.column_contrast()
    if partner_weights is not None and (partner_weights[0] >= partner_weights[1]) \
            != metal_brighter:  # (the partner host takes the other order)
        return (f"{note}; if the {mat.metal} columns are the {other_side} ones, analyse the "
                f"layer as {partner.name} with {mat.chalcogen}, which takes them so.")
    return f"{note}: check the metal sites on the image."


__all__ = ["ORDER_NOTE", "ORDER_UNDECIDED_NOTE", "BrightnessOrder", "brightness_order",
           "deficient_columns", "order_note", "ratio_log10_odds"]
