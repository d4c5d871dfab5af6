"""The rungs of a chalcogen column's Z-contrast ladder over many microscopes: what the
simulator's random microscopes (probe, detector, voltage, column coherence), and the incoherent
Z-contrast rule, say each column class of a material shows against its host column and its
metal column. The ladder reading (:mod:`..cells.ladder`), the heavy rungs and the light gap
(:mod:`..detect`) and the lattice's choice of the metal sublattice (:mod:`..lattice`) compare
an image with them."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ..materials.columns import DOUBLE_SUBSTITUTION, column_classes
from ..materials.materials import get_material

#: Microscopes drawn (seed 0) to span the physics of the rungs.
N_MICROSCOPES = 256
#: ... plus this many microscopes of the incoherent Z-contrast rule (each atom ``Z**n``, ``n``
#: evenly over :data:`ZN_EXPONENTS`, no cross term between a column's atoms, the light
#: substituent too): the textbook description of annular dark field at high angles, and the
#: physics of simple independent simulators, which our multislice-grounded microscopes do not
#: reach — a lone S reads a fifth of an S + Se column where the metal outshines that column
#: 3.35 times (the nearest of ours: the metal 1.9 times), Te-rich WSe2's rungs 1–2 % apart
#: from ours and its W brighter.
#: Thirty-third session: an independent simulator's WS2 with one whole side Se read as uniform
#: Se2 columns ("MoS2 fits better", 21 false Se2_S2) and three of six Te-rich WSe2 images
#: (45–60 % Te) a rung low (`Te2_Se2` 0.00–0.75); with these microscopes they read right
#: (set J `Te_Se` 0.004 → 0.93, set G 0.70 → 0.98), every other benchmark set within two calls
#: and the real images' calls unchanged (with the prior shares below).
ZN_MICROSCOPES = 32
ZN_EXPONENTS = (1.5, 2.0)
#: ... and their share of the prior over microscopes (the rest shared by the
#: :data:`N_MICROSCOPES`): small, so that they decide only where none of the others explains
#: the image (the Te-rich and Janus readings above were 30–42 log units worse without them) —
#: smaller still in an ordered reading of the heavy substituent (a Janus MoSeTe / WSeTe layer):
#: a pristine MoSe2 with a few Te (and a clustered WSe2 + S alloy), S and Te chosen, read so
#: under a Z**n microscope from a share of 5e-4 on, while an independent simulator's WSe2 +
#: 47 % Te needed 1e-3 in its random-alloy reading, and its Janus MoSSe layers theirs in the
#: ordered S/Se reading (the S/Se Janus layers are the common ones: made by converting one
#: side).
ZN_PRIOR = 1e-2
ZN_PRIOR_ORDERED_HEAVY = 1e-4


def incoherent_params(z_exponent: float) -> dict:
    """Keywords of :class:`~.image.MicroscopeParams` for a microscope of the incoherent
    Z-contrast rule: every atom weighs ``Z**z_exponent`` (the light substituent too) and the two
    atoms of a column add without a cross term, on either side alike (see :data:`ZN_MICROSCOPES`).
    """
    return dict(z_exponent=float(z_exponent), element_weights=None, light_ratio=None,
                second_atom_factor=1.0, partner_cross_term=None, heavy_order_asymmetry=0.0,
                light_order_asymmetry=0.0)


def incoherent_share_overrides(share: float) -> Callable[[np.random.Generator], dict] | None:
    """A function ``rng -> simulator keywords`` that makes a ``share`` of the images it is drawn
    for microscopes of the incoherent rule (:func:`incoherent_params`, exponent uniform in
    :data:`ZN_EXPONENTS`) and leaves the others to the random microscope; ``None`` for a share
    of 0 (no draw at all: the images of a seed stay those without it)."""
    if not 0.0 < share <= 1.0:
        return None

    def draw(rng: np.random.Generator) -> dict:
        if rng.random() >= share:
            return {}
        return incoherent_params(rng.uniform(*ZN_EXPONENTS))
    return draw


def microscope_prior(n_rows: int, ordered_heavy: bool = False) -> np.ndarray:
    """Prior weight of each microscope of :func:`ladder_physics` (``n_rows`` of them: the
    :data:`ZN_MICROSCOPES` incoherent ones last), summing to 1; ``ordered_heavy``: in an ordered
    reading of the heavy substituent (Te in a selenide)."""
    n_zn = ZN_MICROSCOPES if n_rows > ZN_MICROSCOPES else 0
    share = (ZN_PRIOR_ORDERED_HEAVY if ordered_heavy else ZN_PRIOR) if n_zn else 0.0
    prior = np.full(n_rows, (1.0 - share) / max(n_rows - n_zn, 1))
    if n_zn:
        prior[n_rows - n_zn:] = share / n_zn
    return prior


@lru_cache(maxsize=32)
def ladder_physics(material_name: str, substituents: tuple[str, ...]
                   ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Rungs of :data:`N_MICROSCOPES` random microscopes (seed 0) and :data:`ZN_MICROSCOPES` of
    the incoherent Z-contrast rule (``M`` in all).

    Returns
    -------
    names : tuple of str
        Class of each rung: ``"chalcogen"`` (the host column) first, then every chalcogen-site
        class of ``material`` with ``substituents``, then a column left with one atom of each
        alloying substituent (:func:`lone_rung`: no class, a point defect of an ordered layer).
    rungs : ndarray
        ``(M, len(names))`` column weights over the host column's (a column of one
        substituent beside one host atom: the mean of its two orders).
    split : ndarray
        ``(M, len(names))`` half the difference between the two orders of such a
        column (the substituent on the entrance or the exit side,
        :func:`~..materials.physics.order_asymmetry`), 0 for the others: the rung is that much
        wider.
    metal : ndarray
        ``(M,)`` metal column weight over the host column's.
    """
    from ..materials.physics import random_column_physics
    from .image import MicroscopeParams, column_weight, lone_substituent_weight

    mat = get_material(material_name)
    classes = ("chalcogen",) + tuple(c.name for c in column_classes(mat, substituents)
                                     if c.site == "chalcogen")
    lone = tuple(d for d in substituents if d in DOUBLE_SUBSTITUTION and d != mat.chalcogen)
    names = classes + tuple(lone_rung(d) for d in lone)

    def weights(params: MicroscopeParams, side: float | None = None) -> np.ndarray:
        return np.array([column_weight(n, "chalcogen", params, mat, side=side) for n in classes]
                        + [lone_substituent_weight(d, params, mat) for d in lone])
    rng = np.random.default_rng(0)
    rungs, split, metal = [], [], []
    for _ in range(N_MICROSCOPES):
        phys = random_column_physics(mat, rng)
        params = MicroscopeParams(**{k: v for k, v in phys.items()
                                     if k not in ("detector", "thermal_damping")})
        host = column_weight("chalcogen", "chalcogen", params, mat)
        sides = np.stack([weights(params, side=v) for v in (1, -1)], axis=1) / host
        rungs.append(sides.mean(1))
        split.append(np.abs(sides[:, 0] - sides[:, 1]) / 2)
        metal.append(column_weight("metal", "metal", params, mat) / host)
    # ... and the incoherent limit: every atom by Z**n, the two atoms of a column adding
    # without a cross term (see ZN_MICROSCOPES).
    for n in np.linspace(ZN_EXPONENTS[0], ZN_EXPONENTS[1], ZN_MICROSCOPES):
        params = MicroscopeParams(**incoherent_params(n))
        host = column_weight("chalcogen", "chalcogen", params, mat)
        rungs.append(weights(params) / host)
        split.append(np.zeros(len(names)))
        metal.append(column_weight("metal", "metal", params, mat) / host)
    return names, np.array(rungs), np.array(split), np.array(metal)


#: What the rung of a chalcogen column left with one substituent atom is called
#: (:func:`lone_rung`).
LONE_RUNG_PREFIX = "lone "


def lone_rung(substituent: str) -> str:
    """Name of the rung of a column left with one ``substituent`` atom, its host atom lost: a
    level of an ordered (Janus) layer whose vacancies took either atom, not a class."""
    return f"{LONE_RUNG_PREFIX}{substituent}"


#: Spread (in log) of the metal level around what a microscope predicts, beyond the spread of
#: the drawn microscopes themselves (which already span the metal cross-section measured by
#: multislice, :func:`~..materials.physics.metal_factor_range`): probe shape and what the
#: simulator leaves out. 0.12 until the thirteenth session; at 0.07 the metal level — which an
#: alloy does not change — outweighs an equally good histogram fit that puts it 30 % off
#: (a clustered WSe2/MoSe2 + S alloy with Te chosen read as a WSeTe layer; S-rich binomial
#: selenide alloys read as host); the multislice and real images read the same from 0.035 to 0.12.
#: The ladder reading's metal term (:mod:`..cells.ladder`) and the lattice's choice of the
#: metal sublattice (:mod:`..lattice.brightness_order`) both use it.
METAL_LOG_SIGMA = 0.07
#: Prior probability that the median chalcogen column of a layer is a host column; the rest is
#: shared by the alloy hypotheses (:func:`~..materials.columns.median_classes`).
HOST_PRIOR = 0.6
#: Share of a singly substituted median's prior given to the ordered (Janus) layer, whose
#: columns are nearly all mixed: MoSSe, WSSe and WSeTe Janus monolayers are made on purpose.
JANUS_PRIOR_SHARE = 0.25


def median_class_prior(name: str, n_classes: int, single: bool, ordered: bool) -> float:
    """Prior probability that a layer's median chalcogen column is of class ``name``, one of
    ``n_classes`` hypotheses (the host column ``"chalcogen"`` first); ``single``: a column of one
    substituent beside a host atom, in an ``ordered`` (Janus) layer or a random alloy."""
    prior = HOST_PRIOR if name == "chalcogen" else (1 - HOST_PRIOR) / max(n_classes - 1, 1)
    if single:
        prior *= JANUS_PRIOR_SHARE if ordered else 1 - JANUS_PRIOR_SHARE
    return prior



__all__ = ["HOST_PRIOR", "JANUS_PRIOR_SHARE", "LONE_RUNG_PREFIX", "METAL_LOG_SIGMA",
           "N_MICROSCOPES", "ZN_EXPONENTS", "ZN_MICROSCOPES", "ZN_PRIOR", "ZN_PRIOR_ORDERED_HEAVY",
           "incoherent_params", "incoherent_share_overrides", "ladder_physics", "lone_rung",
           "median_class_prior", "microscope_prior"]
