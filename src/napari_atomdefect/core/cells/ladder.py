"""Which rung of the Z-contrast ladder the median chalcogen column is on.

Tiles are read in *chalcogen units*: the median chalcogen column is 1 (:mod:`.normalize`). In
a pristine or lightly alloyed layer that median column is a host column (S2 in WS2); in an alloy
with more than about a third of its atoms substituted it is a mixed column (Se + S), and in a
nearly converted layer a fully substituted one (Se2). A detector that sees only the tile and the
metal/chalcogen contrast must guess which, and the contrast does not tell it: the same WSe2 + Te
image reads the same at a microscope whose Se2 columns are as bright as W with the median on Se2,
and at an ordinary one with the median on Se + Te.

The ladder itself tells. Every image's chalcogen columns sit on rungs whose spacings are fixed by
the elements (vacancy 0, one host atom, the host column, one substituent beside a host atom, two
substituents), up to the column coherence and the detector angles. :func:`read_ladder` fits the
histogram of the chalcogen-column levels with the rungs of each hypothesis (the median column is
the host, or ``D_X`` for each chosen alloying substituent ``D``, or ``D2_X2`` for the S/Se
partner) over a fixed set of random microscopes of the simulator
(:func:`~..materials.physics.random_column_physics` at the five voltages of the held-out
images; drawn at every voltage of the training range, it misread two cases of
``tests/test_ladder.py``, a clustered WSe2 + S alloy as a Te alloy and a Janus WSSe layer;
twentieth session), weighs in the metal column's level (which an alloy does not change)
against what each microscope predicts and how far the fitted populations are from a random
alloy's, and returns the host column's level in chalcogen units. Vacancies (and substituents not
looked for) are a minority under a prior on their share (:data:`POINT_DEFECT_MEAN`); a uniform
layer — nearly every column on the median rung — read as the host and as an ordered one is
scored with its other rungs free to sit a little off the microscopes' places
(:data:`UNIFORM_SHARE`), so that the few columns off the median rung do not decide between the
two by a slight misfit of the simulator's physics (twenty-seventh session).
Detectors trained in *host units* (:func:`to_host_units`) read tiles where a host column is 1
whatever the composition.

The levels are peak values smoothed over a few pixels, and measured levels of simulated images
follow the column weights within a few per cent (the probe tails cancel in the ratios after the
hollow-site background is subtracted), so the rungs are read from the column weights directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..lattice.lattice import Lattice
from ..materials.columns import (
    DOUBLE_SUBSTITUTION,
    ColumnClass,
    column_classes,
    lookup_class,
    median_classes,
    parse_substituents,
    supported_substituents,
)
from ..materials.materials import Material, get_material
from ..simulate.microscopes import (
    LONE_RUNG_PREFIX,
    METAL_LOG_SIGMA,
    ladder_physics,
    lone_rung,
    median_class_prior,
    microscope_prior,
)
from .normalize import PreparedImage, site_values

#: ``detector.unit`` of a model card whose detector reads tiles in host units.
HOST_UNITS = "host"
#: Histogram of the levels: range (chalcogen units) and bin width.
LEVEL_RANGE: tuple[float, float] = (-0.5, 4.0)
LEVEL_BIN = 0.02
#: Level below which a column's noise no longer falls with its level (read noise, background).
LOW_LEVEL = 0.2
#: Smallest and largest spread of a column at the median level the fit may take.
SIGMA_RANGE: tuple[float, float] = (0.02, 0.35)
#: Largest share of the chalcogen columns the point-defect rungs (vacancies, and substituents the
#: user does not look for) may take in the fit, each and together: without the cap a cluster of
#: substituted columns reads as a quarter of the columns missing one atom, or as the light
#: substituent. Capped one by one only, two of them (`V_S` and `O_S`) took 29 % of a real
#: partly converted WS2 image's columns when a 23°-rotated view of it was read a rung low
#: (twenty-first session, ``benchmarks/bench_real_invariance.py``).
MAX_DEFECT_SHARE = 0.15
#: Mean of the prior on the point-defect rungs' share of the columns (a Beta(1, β) prior): a
#: reading that needs many vacancies pays for them. Without it, the few alternatives of a
#: MoSe2 + 12 % S alloy of an independent simulator read as an even chance of a Janus MoSSe
#: layer whose S + Se columns were 12 % single-Se vacancies (296 columns called ``S_Se``).
POINT_DEFECT_MEAN = 0.03
#: The point-defect prior counts once for every this many columns read (at least once): the
#: histogram's evidence grows with the columns, and a fixed prior let a reading that put a tenth
#: of them on vacancy rungs win by fitting the histogram's shape better. Real image 10 (WS2 +
#: O, Se: 840 columns) read its median column as S + Se (37 % Se) on the whole field and as
#: pristine S2 (18 % Se, confidence 0.97, its S2 columns called `V_S`/`O_S`) on the field cropped
#: by 4 or 8 px — a new user's trial, thirty-eighth session; the S2 reading's histogram lead
#: (15–25 nats) against the S + Se reading's metal level, alloy proportions and prior (~20) is
#: reversed by a crop. Counted per 200 columns, every crop reads as the whole field; set N's 4375
#: calls and the simulated and dev-set analyses are unchanged, the real images move by 55 of
#: 4654 calls (image 10: `Se2_S2` 113 → 104). Dividing the histogram's weight by 2 instead fixed
#: the crops too but read a Janus MoSe2 layer as MoS2 + Se a rung off (``test_ladder.py``).
POINT_PRIOR_COLUMNS = 200
#: Largest share of the chalcogen columns the singly substituted class may take in the fit: a
#: random alloy has at most half its columns mixed (binomial, at half substitution); a layer
#: whose columns are nearly all mixed is ordered (Janus), which this reading does not assume —
#: without the cap one broad host rung reads as the mixed rung of an unusual microscope.
MAX_MIXED_SHARE = 0.75
#: Weight of the random-alloy deviance in a hypothesis' score (:class:`_AlloyPairs`): atoms
#: substituted independently put host, mixed and doubly substituted columns in binomial
#: proportions, which tells readings apart that the rung spacings cannot (a WSe2 + Te image's
#: Te_Se/Se2 ratio can equal Se2/S_Se); tempered, since ordered layers (Janus, domains) exist.
ALLOY_DEVIANCE_WEIGHT = 0.1
#: Least posterior of a reading under which a host-unit detector is also run (its probabilities
#: averaged over the readings, weighted by their posteriors).
MIN_ALTERNATIVE_POSTERIOR = 0.1
#: Largest share of the flat outlier term (columns on no rung: contamination, misplaced sites).
MAX_OUTLIER_SHARE = 0.05
#: How far the hypothesised median rung may sit from the median column (a factor).
SCALE_RANGE: tuple[float, float] = (0.9, 1.1)
#: A mixed median rung whose two orders lie further apart than this (in its own units) is fitted
#: from each order as well as from its middle.
MIN_SPLIT_TO_START_TWICE = 0.06
EM_ITERATIONS = 20
#: A random alloy's mixed columns are read with their two orders (the substituent on the
#: entrance or the exit side) split as each microscope says, and split by this share of it as
#: well (each microscope once more; the median rung keeps its split). How far apart the orders
#: lie depends on the channelling, which a sharp probe, a thin specimen or an incoherent image
#: formation can leave out: with the full split only, the unsplit mixed columns of a sharp
#: WSe2 + 11 % S image of another simulator fitted no random alloy and the image read as an
#: ordered (Janus) WSSe layer, every Se2 column called S_Se. At no split (0) the minority rung
#: of a heavier substituent fits a tight cluster of host columns as well (a MoSe2 + S + Te alloy
#: whose median column is S_Se read as pristine with its Se2 columns Te_Se). An ordered layer's
#: reading keeps the full split: read without it, a pristine layer fits it as well as its own.
REDUCED_SPLIT_SHARE = 0.5
#: Host columns the image must hold (number, and fraction of its chalcogen columns) for their
#: level to be read off the data rather than from the microscopes' rungs.
MIN_HOST_COLUMNS = 10
MIN_HOST_FRACTION = 0.05
#: Share of the columns on the median rung from which a layer is uniform. Read as the host and
#: as an ordered (Janus) layer, only its few other columns tell the two apart, and where their
#: rungs lie rests on the simulator tying them together (a single host atom and a substituent
#: beside one move with the same cross-sections), which another microscope or simulator need
#: not: the readings of a uniform layer let each rung but the median one sit off its
#: microscope's place by :data:`RUNG_TOLERANCE` of its level (one standard deviation). With the
#: rungs tied, a pristine WSe2 image of an independent simulator (17 single-Se and 9 S + Se
#: columns 0.01–0.02 off the drawn microscopes' joint places) fitted the Janus reading better:
#: 302 columns called ``S_Se``. Alloys are read with the rungs tied: free, they read random
#: alloys whose median column is mixed as the host, and a WSe2 + Te alloy as a Janus WSSe layer.
#: Only the light substituent's ordered reading (S in a selenide, O in a sulfide) is so scored:
#: where a light atom's column lies is what the microscopes know least (it adds 0.06–0.7 of a
#: host atom, by coherence); with a heavy one's too, a held-out pristine MoSe2 image with a few
#: Te, S and Te chosen, read as a Janus MoSeTe layer (``Te_Se`` at 0.98, 223 calls).
UNIFORM_SHARE = 0.85
RUNG_TOLERANCE = 0.03


@dataclass(frozen=True)
class LadderReading:
    """Result of :func:`read_ladder`.

    Attributes
    ----------
    median_class : str
        Class of the rung the median chalcogen column is on (``"chalcogen"``: the host column).
    host_level : float
        The host column's level in chalcogen units (1 when the median column is a host column).
    posterior : dict
        Probability of each hypothesis (by ``median_class``).
    sigma : float
        Fitted spread of the column levels around their rungs (chalcogen units).
    ordered : bool
        Whether the best reading needs more singly substituted (mixed) columns than a random
        alloy can hold (about half at most): an ordered layer — a Janus layer, or a conversion
        that went one side first — rather than atoms substituted independently.
    host_levels : dict
        The host column's level under each hypothesis (by ``median_class``).
    point_share : float
        Share of the chalcogen columns the best reading puts on point-defect rungs (vacancies
        and substituents the user did not choose): a reading that needs many is strained.
    shares : dict
        Share of the chalcogen columns on each rung (by class name) under the best reading.
    evidence : float
        Log evidence of the levels under every reading together (priors included): readings of
        one image with different substituents compare by it.
    readings : tuple of (str, bool, float, float)
        ``(median class, ordered, host level, posterior)`` of every reading: each median class,
        as atoms substituted at random and (a singly substituted median) as an ordered layer.
        The two readings of one median class can be a near tie that puts the host rung in
        different places (the real partly converted image 12: as a random alloy 46 ``Se2_S2``
        calls, as an ordered layer 6, and six rows cropped off flipped the choice):
        :meth:`alternatives` weighs them both, :meth:`order_message` says so.
    """

    median_class: str = "chalcogen"
    host_level: float = 1.0
    posterior: dict[str, float] = field(default_factory=lambda: {"chalcogen": 1.0})
    sigma: float = float("nan")
    ordered: bool = False
    host_levels: dict[str, float] = field(default_factory=dict)
    point_share: float = 0.0
    shares: dict[str, float] = field(default_factory=dict)
    evidence: float = float("nan")
    readings: tuple[tuple[str, bool, float, float], ...] = ()

    @property
    def confidence(self) -> float:
        """Posterior probability of the chosen hypothesis."""
        return float(self.posterior.get(self.median_class, 1.0))

    def alternatives(self, min_posterior: float = MIN_ALTERNATIVE_POSTERIOR
                     ) -> list[tuple[float, float]]:
        """``(host level, weight)`` of every reading at least ``min_posterior`` probable, the
        weights summing to 1 (the best reading alone when no other is): a detector in host units
        is run under each and its probabilities averaged with these weights. Readings are those
        of :attr:`readings` where known (a random alloy and an ordered layer of one median
        class count apart), else one per median class."""
        if self.readings:
            # (readings that put the host level at the same place are one run of the detector:
            # a random and an ordered reading with enough host columns read it off the data)
            merged: dict[float, float] = {}
            for _, _, level, p in self.readings:
                key = round(level, 4)
                merged[key] = merged.get(key, 0.0) + p
            best = round(self.host_level, 4)
            chosen = [(self.host_level if key == best else key, p) for key, p in merged.items()
                      if p >= min_posterior or key == best]
        else:
            chosen = [(self.host_levels.get(h, self.host_level) if h != self.median_class
                       else self.host_level, p) for h, p in self.posterior.items()
                      if p >= min_posterior or h == self.median_class]
        total = sum(p for _, p in chosen)
        return [(float(h), float(p / total)) for h, p in chosen]

    def order_message(self, material: str | Material, weighed: bool = True,
                      min_posterior: float = MIN_ALTERNATIVE_POSTERIOR) -> str:
        """A sentence when the median class reads about as well as atoms substituted at random
        and as an ordered layer (each at least ``min_posterior`` probable; empty otherwise):
        the two put the host column's rung in different places, so the doubly substituted
        columns' count depends on which holds; ``weighed``: the calls weigh both (a detector
        in host units, :meth:`alternatives`), else they follow the likelier."""
        both = {ordered: p for h, ordered, _, p in self.readings if h == self.median_class}
        column = lookup_class(self.median_class)  # (only a singly substituted one is ordered)
        if len(both) < 2 or min(both.values()) < min_posterior or column is None:
            return ""
        sub, x = column.substituent, get_material(material).chalcogen
        total = sum(both.values())
        # (the readings' probabilities, said as such: "(81%)" after each read as shares of
        # the layer to a trial)
        return (f"Two readings of the chalcogen columns fit about as well — {sub} atoms "
                f"replaced at random ({both[False] / total:.0%} likely) or an ordered layer, "
                f"one side converted first as in a Janus layer ({both[True] / total:.0%} "
                f"likely): they put the {x}2 column's level in different places, so how many "
                f"columns hold two {sub} ({sub}2_{x}2) depends on which is right; the calls "
                f"{'weigh both' if weighed else 'follow the likelier'}.")

    def to_dict(self) -> dict:
        return {"median_class": self.median_class, "host_level": round(self.host_level, 4),
                "confidence": round(self.confidence, 4),
                "posterior": {k: round(v, 4) for k, v in self.posterior.items()},
                "sigma": round(self.sigma, 4), "ordered": self.ordered,
                "host_levels": {k: round(v, 4) for k, v in self.host_levels.items()},
                "point_share": round(self.point_share, 4),
                "shares": {k: round(v, 4) for k, v in self.shares.items()}}


class _AlloyPairs:
    """Indices of the host, ``D_X`` and ``D2_X2`` rungs of each alloying substituent, and how
    far fitted column counts are from a random alloy."""

    def __init__(self, names: tuple[str, ...], x: str, substituents: tuple[str, ...]) -> None:
        self.triples = [(names.index("chalcogen"), names.index(f"{d}_{x}"),
                         names.index(f"{d}2_{x}2")) for d in substituents
                        if d in DOUBLE_SUBSTITUTION and f"{d}2_{x}2" in names]

    def deviance(self, n_c: np.ndarray) -> np.ndarray:
        """``(M,)`` binomial deviance of the ``(M, C)`` counts: for each substituent, the host,
        singly and doubly substituted columns against ``(1-c)², 2c(1-c), c²`` at the best
        ``c`` (atoms substituted independently), summed."""
        out = np.zeros(len(n_c))
        for trio in self.triples:
            n = np.maximum(n_c[:, list(trio)], 0.0) + 0.5  # (M, 3), a half column of slack each
            total = n.sum(1, keepdims=True)
            c = ((n[:, 1] + 2 * n[:, 2]) / (2 * total[:, 0]))[:, None]
            p = np.concatenate([(1 - c) ** 2, 2 * c * (1 - c), c**2], axis=1)
            out += 2 * (n * np.log(n / (total * p))).sum(1)
        return out


def _share_cap(column: ColumnClass | None, chosen: tuple[str, ...]) -> float:
    """Largest share of the chalcogen columns a rung may take in the fit: point defects (a
    vacancy, a substituent not looked for) are a minority; a random alloy has at most half its
    columns mixed (:data:`MAX_MIXED_SHARE`)."""
    if column is None:  # the host column
        return 1.0
    if column.kind in ("V_X", "V_X2") or column.substituent not in chosen:
        return MAX_DEFECT_SHARE
    return MAX_MIXED_SHARE if column.kind == "D_X" else 1.0


def _capped(weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Rows of mixture ``weights`` (summing to 1) with no component above its cap: the excess
    goes to the components below their caps, in proportion."""
    w = weights / weights.sum(1, keepdims=True)
    for _ in range(len(caps)):
        over = w > caps
        if not over.any():
            break
        w = np.where(over, caps, w)
        free = np.where(over, 0.0, w)
        room = 1.0 - np.where(over, caps, 0.0).sum(1, keepdims=True)
        w = np.where(over, caps, free * room / np.maximum(free.sum(1, keepdims=True), 1e-12))
    return w


def _group_capped(weights: np.ndarray, group: np.ndarray, cap: float) -> np.ndarray:
    """Rows of mixture ``weights`` (summing to 1) whose ``group`` components hold at most
    ``cap`` together: a row over it has them scaled down to it and the others up, in
    proportion."""
    total = weights[:, group].sum(1, keepdims=True)
    over = total > cap
    if not over.any():
        return weights
    rest = weights[:, ~group].sum(1, keepdims=True)
    out = weights.copy()
    out[:, group] = np.where(over, weights[:, group] * cap / np.maximum(total, 1e-12),
                             weights[:, group])
    out[:, ~group] = np.where(over, weights[:, ~group] * (1 - cap) / np.maximum(rest, 1e-12),
                              weights[:, ~group])
    return out


#: Fewest microscopes (rows) for :func:`_fit_mixture` to share them out between threads.
PARALLEL_MIN_ROWS = 64


def _fit_mixture(counts: np.ndarray, centres: np.ndarray, rungs: np.ndarray, split: np.ndarray,
                 caps: np.ndarray, median_split: np.ndarray | float = 0.0,
                 scale_init: np.ndarray | float = 1.0, median: int | None = None,
                 tolerance: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_fit_mixture_rows`, its microscopes shared out between a few threads: each row is
    a fit of its own, so the result is the same, to a sum's last-bit rounding (the real images'
    ladders took 1–2 s on one core)."""
    from ..parallel import map_threads, n_workers

    m = rungs.shape[0]
    if m < PARALLEL_MIN_ROWS or n_workers() == 1:
        return _fit_mixture_rows(counts, centres, rungs, split, caps, median_split, scale_init,
                                 median, tolerance)
    split = np.broadcast_to(split, rungs.shape)
    median_split = np.broadcast_to(np.asarray(median_split, float), (m,))
    scale_init = np.broadcast_to(np.asarray(scale_init, float), (m,))

    def part(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return _fit_mixture_rows(counts, centres, rungs[rows], split[rows], caps,
                                 median_split[rows], scale_init[rows], median, tolerance)

    parts = map_threads(part, np.array_split(np.arange(m), n_workers()))
    loglik, sigma, scale, n_c, mean_c = (np.concatenate(p) for p in zip(*parts, strict=True))
    return loglik, sigma, scale, n_c, mean_c


def _fit_mixture_rows(counts: np.ndarray, centres: np.ndarray, rungs: np.ndarray,
                      split: np.ndarray, caps: np.ndarray,
                      median_split: np.ndarray | float = 0.0,
                      scale_init: np.ndarray | float = 1.0, median: int | None = None,
                      tolerance: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM of a mixture of Gaussians at ``scale * rungs`` on binned data, plus a flat outlier
    component.

    Each row of ``rungs`` ``(M, C)`` is one microscope's ladder; a rung's variance is the
    common spread squared times its level (shot noise); a rung with a ``split`` (a mixed column,
    its substituent on the entrance or the exit side) is two Gaussians of half its share at
    ``scale * (rung ± split)`` (at high angles the two orders lie up to a third of a host column
    apart: one wide Gaussian put the host rung where a mixed column's lower order is); per row
    the fit takes one spread and one scale
    within :data:`SCALE_RANGE` (the median column sits anywhere in its rung's spread, or between
    two rungs), widened by ``median_split`` (``(M,)``: the median rung's own split, in its units:
    the median column may be either order of a mixed column), starting from ``scale_init``, and
    no component more than its ``caps`` share, nor the point-defect components (a cap of at
    most :data:`MAX_DEFECT_SHARE`) more than that together (vacancies are a minority).
    With a ``tolerance``, every rung but the ``median`` one (whose place the scale sets) may sit
    off its microscope's place by a Gaussian of that share of its level: each rung's offset is
    fitted (MAP) and its prior and Laplace factor are counted in the likelihood.

    Returns
    -------
    loglik, sigma, scale : ndarray
        ``(M,)`` per row.
    n_c, mean_c : ndarray
        ``(M, C)`` columns each component holds and their mean level.
    """
    lo, hi = LEVEL_RANGE
    n_total = counts.sum()
    m, c = rungs.shape
    weights = np.full((m, c + 1), 1.0 / (c + 1))
    sigma = np.full(m, 0.06)
    scale = np.broadcast_to(np.asarray(scale_init, float), (m,)).copy()
    flat = 1.0 / (hi - lo)  # the outlier component's density, the same in every bin
    all_caps = np.append(caps, MAX_OUTLIER_SHARE)
    # The point-defect rungs, capped together as well (the outlier term is not one of them).
    defects = np.append(caps <= MAX_DEFECT_SHARE, False)
    # The components: a rung that is split (a mixed column) in any microscope is its two orders,
    # each half its share; any other rung one Gaussian (its two orders would coincide).
    split = np.broadcast_to(split, rungs.shape)
    two = np.flatnonzero((split != 0).any(0))
    rung_of = np.concatenate([np.arange(c), two])  # (K,) the rung of each component
    orders = np.concatenate([rungs + split, rungs[:, two] - split[:, two]], axis=1)  # (M, K)
    share = np.where(np.isin(np.arange(c), two), 0.5, 1.0)[rung_of]
    to_rung = np.zeros((len(rung_of), c))
    to_rung[np.arange(len(rung_of)), rung_of] = 1.0
    # The common spread is measured on the rungs of one column order only (a mixed column's split
    # is the simulator's, not measured: it must not drive the others' spread).
    plain = (split == 0)[:, rung_of]  # (M, K)
    scale_lo = SCALE_RANGE[0] - np.broadcast_to(median_split, (m,))
    scale_hi = SCALE_RANGE[1] + np.broadcast_to(median_split, (m,))
    # Each rung's offset from its microscope's place (in median-rung units), its prior width,
    # and what the offsets cost (their prior density and Laplace factor).
    tol = tolerance * np.abs(rungs)  # (M, C)
    if median is not None:
        tol[:, median] = 0.0
    offset, occam = np.zeros((m, c)), np.zeros(m)
    squares = centres ** 2
    for it in range(EM_ITERATIONS + 1):
        placed = orders + offset[:, rung_of]
        means = scale[:, None] * placed
        # Shot noise: a column's variance grows with its level (sigma is the host column's).
        level = np.maximum(means, LOW_LEVEL)
        var = sigma[:, None] ** 2 * level  # (M, K)
        # Each component's weighted density in each bin, built in place on one (M, K, B) array
        # (the fit's cost: the temporaries of the plain expression took 2.7x as long); the
        # bins' sums below are those of the responsibilities against the bins' centres.
        sub = centres[None, None, :] - means[..., None]
        np.square(sub, out=sub)
        sub *= (-0.5 / var)[..., None]
        np.exp(sub, out=sub)
        sub *= (share * weights[:, rung_of] / np.sqrt(2 * np.pi * var))[..., None]
        outlier = weights[:, c] * flat  # (M,)
        total = sub.sum(1) + outlier[:, None] + 1e-300  # (M, B)
        loglik = (counts[None, :] * np.log(total * LEVEL_BIN)).sum(1) - occam
        per_bin = counts[None, :] / total  # (M, B)
        sub *= per_bin[:, None, :]  # the responsibilities times the counts
        r0, r1 = sub.sum(2), sub @ centres  # (M, K): columns, and their summed level
        n_k = np.concatenate([r0 @ to_rung, (outlier * per_bin.sum(1))[:, None]], axis=1)
        if it == EM_ITERATIONS:
            break
        weights = _capped((n_k + 0.1) / (n_total + 0.1 * (c + 1)), all_caps)
        if defects.any():
            weights = _capped(_group_capped(weights, defects, MAX_DEFECT_SHARE), all_caps)
        # (the spread below is measured around this iteration's means)
        spread2 = sub @ squares - 2 * means * r1 + means ** 2 * r0  # sum of r (centre - mean)^2
        scale = np.clip((r1 * placed).sum(1) / np.maximum((r0 * placed ** 2).sum(1), 1e-12),
                        scale_lo, scale_hi)
        if tol.any():  # each rung's offset: its columns' pull against its prior
            prec = (r0 / var) @ to_rung * scale[:, None] ** 2  # (M, C)
            pull = (((r1 - scale[:, None] * orders * r0) / var) @ to_rung) * scale[:, None]
            inv_prior = 1.0 / np.maximum(tol, 1e-12) ** 2
            offset = np.where(tol > 0, pull / (prec + inv_prior), 0.0)
            occam = np.where(tol > 0, 0.5 * offset**2 * inv_prior
                             + 0.5 * np.log1p(prec / inv_prior), 0.0).sum(1)
        common = (plain * spread2 / level).sum(1) / np.maximum((plain * r0).sum(1), 1e-9)
        sigma = np.clip(np.sqrt(np.maximum(common, 0.0)), *SIGMA_RANGE)
    n_c = n_k[:, :c]
    mean_c = (r1 @ to_rung) / np.maximum(n_c, 1e-9)
    return loglik, sigma, scale, n_c, mean_c


def read_ladder(chalcogen_levels: np.ndarray, metal_level: float, material: str | Material,
                substituents: str | tuple[str, ...] | list[str] | None = None) -> LadderReading:
    """Which rung the median chalcogen column is on, and where the host column's rung is.

    Parameters
    ----------
    chalcogen_levels : ndarray
        Level of every chalcogen column in chalcogen units (background 0, median column 1).
    metal_level : float
        The typical metal column's level in the same units.
    material : str or Material
        The host material.
    substituents : str or sequence of str, optional
        Substituents the user looks for (default: the material's defaults): the median column
        may hold them. Without an alloying substituent (Se, S, Te) it is a host column. The
        material's light substituent (O, S) is always among the rungs fitted.

    Returns
    -------
    LadderReading
    """
    mat = get_material(material)
    if substituents is not None and not isinstance(substituents, str):
        substituents = tuple(d for d in substituents if d in supported_substituents(mat))
    subs = parse_substituents(substituents, mat)
    hyps = median_classes(mat, subs)
    x = np.asarray(chalcogen_levels, float)
    x = x[np.isfinite(x)]
    if len(hyps) == 1 or len(x) < 20 or not np.isfinite(metal_level) or metal_level <= 0:
        return LadderReading()
    # The rungs: the chosen substituents' and the light one's (O in a sulfide, S in a
    # selenide: a common point defect whether looked for or not, whose columns sit between a
    # single host atom and the host column).
    light = mat.light_substituent
    rung_subs = tuple(d for d in supported_substituents(mat) if d in subs or d == light)
    names, rungs, split, metal = ladder_physics(mat.name, rung_subs)
    lo, hi = LEVEL_RANGE
    edges = np.arange(lo, hi + LEVEL_BIN / 2, LEVEL_BIN)
    counts, _ = np.histogram(np.clip(x, lo, hi - 1e-9), edges)
    centres = (edges[:-1] + edges[1:]) / 2
    centres, counts = centres[counts > 0], counts[counts > 0]  # empty bins add nothing
    classes = {c.name: c for c in column_classes(mat, rung_subs)}
    # (a column left with one substituent atom: a point defect of an ordered layer only)
    caps = np.array([MAX_DEFECT_SHARE if n.startswith(LONE_RUNG_PREFIX)
                     else _share_cap(classes.get(n), subs) for n in names])
    data = _Rungs(counts.astype(float), centres, len(x), names, rungs, split, metal, caps,
                  classes, _AlloyPairs(names, mat.chalcogen, subs), len(hyps), metal_level)
    # Every rung the median column may be on; a singly substituted median also as an ordered
    # (Janus) layer: nearly every column mixed, no random-alloy proportions.
    variants = [(h, False) for h in hyps] + [(h, True) for h in hyps if _is_single(h, classes)]
    reads = {v: _read_variant(data, *v) for v in variants}
    # A uniform layer read as the host and as an ordered one of the light substituent: only its
    # few other columns tell the two apart, their rungs then free to sit a little off in the
    # scores (:data:`UNIFORM_SHARE`); the host level stays where the microscopes that fit put it.
    ordered_light = (f"{light}_{mat.chalcogen}", True)
    uniform = [v for v in variants if v in (("chalcogen", False), ordered_light)
               and reads[v].on_median >= UNIFORM_SHARE]
    if ("chalcogen", False) in uniform and len(uniform) > 1:
        reads.update({v: replace(reads[v], score=_read_variant(
            data, *v, tolerance=RUNG_TOLERANCE).score) for v in uniform})
    scores = {v: r.score for v, r in reads.items()}
    top = max(scores.values())
    norm = sum(np.exp(v - top) for v in scores.values())
    posterior: dict[str, float] = {}
    for (h, _), v in scores.items():  # a median class's probability, ordered layer or not
        posterior[h] = posterior.get(h, 0.0) + float(np.exp(v - top) / norm)
    # The most probable median class (over both variants), and each class's host level from its
    # more probable variant.
    variant = {h: max((k for k in scores if k[0] == h), key=scores.__getitem__)
               for h in posterior}
    host_levels = {h: reads[k].host_level for h, k in variant.items()}
    best = reads[variant[max(posterior, key=posterior.__getitem__)]]
    return LadderReading(median_class=best.median_class, host_level=best.host_level,
                         posterior=posterior, sigma=best.sigma, ordered=best.ordered,
                         host_levels=host_levels, point_share=best.point_share,
                         shares=dict(zip(names, best.shares, strict=True)),
                         evidence=float(top + np.log(norm)),
                         readings=tuple((v[0], v[1], float(reads[v].host_level),
                                         float(np.exp(score - top) / norm))
                                        for v, score in scores.items()))


@dataclass(frozen=True)
class _Rungs:
    """What every reading of one image's ladder is fitted to: the histogram of its chalcogen
    columns (``counts`` at ``centres``, ``n_columns`` in all), the microscopes' rungs
    (:func:`ladder_physics`), the rungs' share caps and classes, and the metal level."""

    counts: np.ndarray
    centres: np.ndarray
    n_columns: int
    names: tuple[str, ...]
    rungs: np.ndarray
    split: np.ndarray
    metal: np.ndarray
    caps: np.ndarray
    classes: dict[str, ColumnClass]
    pairs: _AlloyPairs
    n_hypotheses: int
    metal_level: float


@dataclass(frozen=True)
class _VariantReading:
    """One reading of the ladder (:func:`_read_variant`)."""

    median_class: str
    ordered: bool
    score: float
    host_level: float
    sigma: float
    on_median: float
    point_share: float = 0.0
    shares: tuple[float, ...] = ()


def _read_variant(data: _Rungs, h: str, janus: bool, tolerance: float = 0.0
                  ) -> _VariantReading:
    """The ladder read with its median column on rung ``h`` (``janus``: of an ordered layer):
    its score (log evidence over the microscopes, prior included), where it puts the host
    column, the spread, and the share of the columns on the median rung. ``tolerance``: how far
    each other rung may sit off its microscope's place (:func:`_fit_mixture`).

    A column left with one substituent atom (its host atom lost, no class) is a level of an
    ordered layer of that substituent's mixed columns only, where a single vacancy takes either
    atom: the ordered reading is fitted with that rung as well, and the better of the two kept
    (without it, a Janus MoSSe layer whose vacancies left S, read as MoSe2 + S, fitted pristine
    MoSe2 better: every S_Se column called Se2; with it alone, the mixture's fit can settle
    elsewhere — the real image 19 read as WSe2 with S and Te). That second fit takes every
    microscope (the 32 that fit best without the rung, while the fit was slower, read our
    simulator's Janus MoSSe with lone Se, as MoS2 with Se, right in 2 of 6 layers; every one
    reads 5 of 6, at about 0.2 s more per real alloy analysis).
    """
    names = data.names
    plain = [i for i, n in enumerate(names) if not n.startswith(LONE_RUNG_PREFIX)]
    reading = _fit_variant(data, h, janus, tolerance, plain)
    column = data.classes.get(h)
    own = lone_rung(column.substituent) if janus and column is not None else None
    if own in names:
        with_lone = _fit_variant(data, h, janus, tolerance, sorted(plain + [names.index(own)]))
        if with_lone.score > reading.score:
            reading = with_lone
    return reading


def _fit_variant(data: _Rungs, h: str, janus: bool, tolerance: float, used: list[int]
                 ) -> _VariantReading:
    """:func:`_read_variant` with the rungs ``used`` only (indices into ``data.names``)."""
    names, rungs, split, metal = data.names, data.rungs, data.split, data.metal
    at, host = names.index(h), names.index("chalcogen")
    if janus:
        rungs_h, split_h, metal_h = rungs, split, metal
    else:  # each microscope also with a reduced split (:data:`REDUCED_SPLIT_SHARE`)
        own = np.array(names) == h
        rungs_h, metal_h = np.concatenate([rungs, rungs]), np.concatenate([metal, metal])
        split_h = np.concatenate([split, np.where(own, split, REDUCED_SPLIT_SHARE * split)])
    unit = rungs_h[:, at]  # the median rung in host units, per microscope
    column = data.classes.get(h)
    cols = np.asarray(used)
    at_used = int(np.flatnonzero(cols == at)[0])
    all_caps = np.where(np.array(names) == h, 1.0, data.caps) if janus else data.caps
    hyp_caps = all_caps[cols]
    median_split = split_h[:, at] / unit
    args = (data.counts, data.centres, rungs_h[:, cols] / unit[:, None],
            split_h[:, cols] / unit[:, None], hyp_caps)
    loglik, sigma, scale, n_used, mean_used = _fit_mixture(*args, median_split, median=at_used,
                                                           tolerance=tolerance)
    # The median column may sit on either order of a mixed median rung: where the two lie
    # far apart, the fit starts from each too and keeps, per microscope, the best.
    wide = np.flatnonzero(median_split > MIN_SPLIT_TO_START_TWICE)
    for start in (1 / (1 + median_split[wide]), 1 / np.maximum(1 - median_split[wide], 0.5)):
        if not len(wide):
            break
        sub = _fit_mixture(args[0], args[1], args[2][wide], args[3][wide], hyp_caps,
                           median_split[wide], start, median=at_used, tolerance=tolerance)
        better = wide[sub[0] > loglik[wide]]
        keep = sub[0] > loglik[wide]
        for full, part in zip((loglik, sigma, scale, n_used, mean_used), sub, strict=True):
            full[better] = part[keep]
    n_c = np.zeros((len(loglik), len(names)))
    mean_c = np.zeros((len(loglik), len(names)))
    n_c[:, cols], mean_c[:, cols] = n_used, mean_used
    metal_term = (-0.5 * ((np.log(data.metal_level) - np.log(scale * metal_h / unit))
                          / METAL_LOG_SIGMA) ** 2
                  - np.log(METAL_LOG_SIGMA * np.sqrt(2 * np.pi)))
    deviance = 0.0 if janus else ALLOY_DEVIANCE_WEIGHT * data.pairs.deviance(n_c)
    # The point-defect rungs' share of the columns, under its prior (:data:`POINT_DEFECT_MEAN`).
    # In an ordered (Janus) layer a doubly substituted column breaks the order as a vacancy does
    # (an independent simulator's pristine MoSe2 with 5 % single-Se vacancies read as a Janus
    # MoSSe layer whose vacancies were "S2" columns, free of the prior, and 726 columns were
    # called S_Se); host columns are the part not converted (the real "fully converted" Nion
    # image: a quarter of its columns Se2 beside two-thirds S + Se).
    defect_rungs = (np.isin(names, [h, "chalcogen"], invert=True) if janus
                    else all_caps <= MAX_DEFECT_SHARE)
    share = n_c[:, defect_rungs].sum(1) / data.n_columns
    point_prior = ((1 / POINT_DEFECT_MEAN - 2) * np.log1p(-np.minimum(share, 0.99))
                   * max(1.0, data.n_columns / POINT_PRIOR_COLUMNS))
    # What the reading puts on vacancy and unchosen-substituent rungs (the point defects a user
    # is told of): in an ordered reading the prior's share above also holds the columns that
    # break the order (doubly substituted ones of a chosen substituent), which are no such thing
    # — a cropped real image read as an ordered layer was told "15 % of the chalcogen columns
    # can only be vacancies or substituents you did not choose" for its Se2_S2 columns.
    point = (n_c[:, all_caps <= MAX_DEFECT_SHARE].sum(1) / data.n_columns) if janus else share
    total = loglik + metal_term - deviance + point_prior
    top = total.max()
    # (each microscope by its prior: a non-Janus reading holds every microscope twice)
    partner = "Se" if h.rsplit("_", 1)[-1] == "S" else "S"  # (the host's S/Se partner)
    scope = microscope_prior(len(data.rungs), janus and column is not None
                             and column.substituent not in (None, partner))
    w = np.exp(total - top) * (scope if janus else np.concatenate([scope, scope]) / 2)
    prior = median_class_prior(h, data.n_hypotheses, _is_single(h, data.classes), janus)
    score = float(top + np.log(w.sum()) + np.log(prior))
    w /= w.sum()  # the microscopes, weighted by how well they explain the image
    # Where the host columns are: read off the data when enough of them are there, else
    # where the microscopes that fit put the host rung.
    n_host = float(w @ n_c[:, host])
    enough = n_host >= max(MIN_HOST_COLUMNS, MIN_HOST_FRACTION * data.n_columns)
    host_level = float(w @ (mean_c[:, host] if enough else scale / unit))
    return _VariantReading(h, janus, score, host_level, float(w @ sigma),
                           float(w @ n_c[:, at]) / data.n_columns, float(w @ point),
                           tuple(float(v) for v in w @ n_c / data.n_columns))


def _is_single(name: str, classes: dict[str, ColumnClass]) -> bool:
    """Whether ``name`` is a singly substituted column class (``D_X``)."""
    column = classes.get(name)
    return column is not None and column.kind == "D_X"


#: Columns closer than this (lattice constants) to the field's edge are not read by the ladder.
EDGE_MARGIN_A = 0.25
#: Fewest columns inside that margin for it to apply (a small field reads every column).
MIN_INNER_COLUMNS = 30


def read_image_ladder(prepared: PreparedImage, lattice: Lattice, material: str | Material,
                      substituents: str | tuple[str, ...] | list[str] | None = None
                      ) -> LadderReading:
    """:func:`read_ladder` of a prepared image's chalcogen columns (levels as the tiles show
    them). Columns within :data:`EDGE_MARGIN_A` of the field's edge, part of whose profile is
    cut off, are not read while enough others are."""
    lv = prepared.levels
    scale = max(lv.chalcogen - lv.background, 1e-12)
    sites = lattice.chalcogen_sites_px
    shape = np.asarray(prepared.smoothed.shape[-2:], float)
    margin = EDGE_MARGIN_A * lattice.a_px
    inner = np.all((sites >= margin - 0.5) & (sites <= shape - 0.5 - margin), axis=1)
    if inner.sum() >= MIN_INNER_COLUMNS:
        sites = sites[inner]
    chalc = (site_values(prepared.smoothed, sites) - lv.background) / scale
    return read_ladder(chalc, (lv.metal - lv.background) / scale, material, substituents)


def uses_host_units(detector_card: dict) -> bool:
    """Whether a card's ``detector`` section reads tiles in host units (``"unit": "host"``;
    models without the key read them in chalcogen units)."""
    return detector_card.get("unit") == HOST_UNITS


def to_host_units(tiles: np.ndarray, context: np.ndarray | None, host_level: float | np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Tiles and context of an image (or ``(N,)`` images) in chalcogen units re-expressed in
    host units: the tiles divided by the host column's level, every context value (a log of a
    level over the chalcogen unit, :func:`~.normalize.image_context`) less its log."""
    h = np.asarray(host_level, np.float32)
    per_image = h.reshape(-1, 1) if h.ndim else h
    tiles = np.asarray(tiles, np.float32) / (per_image[..., None] if h.ndim else h)
    if context is not None:
        context = np.asarray(context, np.float32) - np.log(per_image)
    return tiles, context


__all__ = ["HOST_UNITS", "LadderReading", "ladder_physics", "read_image_ladder", "read_ladder",
           "to_host_units", "uses_host_units"]
