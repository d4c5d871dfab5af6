"""Neighbouring rungs of the Z-contrast ladder split where the image puts them: the heavy
substituent's two (``D_X``, ``D2_X2``) and the single vacancy below the light substituent
(``V_X``, ``L_X``).

A column with one heavy substituent (Se in a sulfide, Te in a selenide) and one with two sit on
two rungs of the Z-contrast ladder 1.3–1.7 times apart: in an alloy with many such columns they
form two clusters of column levels that the image itself separates, whatever the microscope. The
detector reads each column against the host column and the image's metal/chalcogen contrast, and
its idea of where the two rungs lie follows how the simulator ties them to that contrast. An
image whose rungs sit elsewhere for its contrast — an independent simulator's WS2 + Se alloy at
a W/S2 contrast of 7 with its Se2 columns 3.7 host columns bright, where the simulator puts them
at 3.9–4.9 — had 92 % of its ``Se2_S2`` columns called ``Se_S`` although the two clusters lay
24 standard deviations apart.

:func:`split_heavy_rungs` fits the levels of the columns called either class with two clusters
(a Gaussian mixture of the log levels, one spread; columns whose level is nearer another
class's calls are left out): when the clusters are clearly apart
(:data:`MIN_SEPARATION`), their ratio is one the physics allows for the two rungs (the
simulator's microscopes, :func:`~..simulate.microscopes.ladder_physics`, ± :data:`RATIO_MARGIN`) and
each holds enough columns, the two are not equal halves (:data:`EQUAL_HALVES`) and the host,
``D_X`` and ``D2_X2`` counts they give are those of a random alloy (:func:`_random_alloy_counts`)
— the two orders of a singly substituted column (the substituent above or below its host atom)
can lie as far apart as two rungs — the lower cluster's columns are ``D_X`` and the upper's
``D2_X2``, their probabilities shared between the two in the clusters' proportions. Otherwise
(a few columns, one rung only, clusters that overlap: a low dose, an ordered layer) the
detector's calls stand.

:func:`split_vacancy_rung` does the same one rung lower, for a single vacancy ``V_X`` and the
light substituent's ``L_X`` (S in a selenide, O in a sulfide): where many columns hold the light
substituent (an S/Se alloy) they form a cluster the image places, and a small cluster clearly
below it is the columns that lost an atom. How far apart the two lie is a matter of coherence
(a light atom adds 0.06–0.7 of a host atom, by microscope): an independent simulator's MoSe2 + S
alloy put its single Se columns at 0.50 of an Se2 column and its S + Se columns at 0.64, 7
standard deviations apart, and all its 59 ``V_Se`` were called ``S_Se`` (the simulator puts the
two closer for that contrast, and the alloy makes ``S_Se`` the likelier class). Only a small
lower cluster is read as vacancies: two clusters of similar size may be the light substituent's
two orders (entrance or exit side), which at high angles lie as far apart (our multislice MoS2
at 80 kV, 90–220 mrad splits its ``O_S`` that way).

Two clusters of any size are used one way only: where the detector's calls already follow them
(:data:`BOUNDARY_AGREEMENT` of the columns called as their cluster says) and they lie
:data:`BOUNDARY_MIN_SEPARATION` spreads apart, the columns between the two are called as the
image's clusters say — the detector's boundary moved to the image's (each cluster its own spread:
shot noise makes the vacancies' narrower). A 1024² MoS2 field of our simulator with 137 single
columns had 6 of its 53 ``O_S`` called ``V_S``, between clusters 4.4 spreads apart (``V_S`` 0.960
→ 0.982, ``O_S`` 0.909 → 0.953, where a careful atomap pipeline gets 0.982 / 0.972). Clusters
the calls do not follow (our multislice MoS2 at 80 kV, 90–220 mrad, whose ``O_S`` split by side:
agreement 0.23–0.43) keep the detector's calls. The heavy substituent's two rungs take the same
second look where their clusters are too close for a clear split (thirty-third session: an
independent simulator's MoSe2 + Te at 8e4 e/Å² had 18 of 42 ``Te2_Se2`` called ``Te_Se``, each
brighter than any ``Te_Se``, between clusters at 1.44 and 1.96 of an Se2 column) — provided
their ratio is one the physics allows for the two rungs (the two orders of one ``D_X`` lie far
closer).

Both call a column they move as the run's operating point prefers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..materials.columns import HEAVIER_SUBSTITUENT, supported_substituents
from ..materials.materials import Material, get_material

#: Fewest columns called either class for a split to be tried.
MIN_COLUMNS = 20
#: Fewest columns (expected) and least share each cluster must hold.
MIN_CLUSTER_COLUMNS = 5
MIN_CLUSTER_SHARE = 0.02
#: Least distance between the two clusters' centres, in their common spread (log levels).
MIN_SEPARATION = 6.0
#: Margin around the simulator's range of the two rungs' ratio.
RATIO_MARGIN = 0.1
EM_ITERATIONS = 60
#: Two clusters whose counts are within this factor of each other are not split: the two
#: orders of a singly substituted column (the substituent above or below its host atom) come
#: in equal numbers in any layer substituted at random, and at high angles lie as far apart as
#: two rungs; a random alloy's doubly substituted columns are fewer than half its singly
#: substituted ones below two-thirds substitution.
EQUAL_HALVES = 1.6
#: How far (a factor) the host columns' share may lie from a random alloy's for the split.
HOST_SHARE_FACTOR = 1.5
#: The vacancy rung: least separation (in the common spread of the log levels) and the largest
#: share of the columns the lower cluster (the vacancies) may hold.
VACANCY_MIN_SEPARATION = 3.0
VACANCY_MAX_SHARE = 0.25
#: The least separation of the vacancy rung where the image's metal/chalcogen contrast lies
#: outside what the model was trained on: the detector's boundary between the two classes is
#: then an extrapolation, and the image's own small lower cluster counts at a shorter distance.
#: An independent simulator's WSe2 + 28 % S alloy at a W/Se2 contrast of 2.44 (the WSe2 model:
#: 0.9–2.1) had its 6 single-Se columns 2.8 spreads below its 116 S + Se ones and 41 of those
#: called V_Se; within the trained range, clusters that close keep the detector's calls (a low
#: dose blurs an alloy's S + Se columns into a tail that fits as such a cluster).
BEYOND_TRAINING_SEPARATION = 2.5
#: Least share of the upper cluster's columns the detector itself called the light substituent:
#: the large cluster is an alloy's light-substituent columns, not the vacancies themselves (a
#: frame of an independent simulator's MoS2 movie, no O in it: its 21 V_S calls, a tight
#: cluster with a few stragglers below, had 16 sent to O_S at a confidence of 0.99).
UPPER_CALLED_SHARE = 0.5
#: Two clusters of the single vacancy and the light substituent of any size: least separation
#: (in levels, over the root mean square of the two clusters' own spreads) and least share of
#: the columns whose detector call agrees with their cluster, for the detector's boundary
#: between the two to follow the image's.
BOUNDARY_MIN_SEPARATION = 3.0
BOUNDARY_AGREEMENT = 0.85
#: A lower cluster of as few as :data:`FEW_VACANCIES` columns is the vacancies when it lies
#: :data:`FEW_VACANCIES_SEPARATION` spreads or more below the light substituent's: an
#: independent simulator's WSe2 + S alloys (21–34 % S) had the lower order of their S + Se
#: columns (0.60 of Se2, the upper at 0.63) called V_Se — 21 and 15 of them — beside their
#: 4 and 2 true single-Se columns at 0.50–0.55, too few for a cluster of five.
FEW_VACANCIES = 1.5
FEW_VACANCIES_SEPARATION = 6.0


def _ladder_physics(mat: Material, substituents: tuple[str, ...]
                    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~..simulate.microscopes.ladder_physics` of the rungs the image's ladder reading uses for
    ``substituents`` (those chosen and the light one, in the material's order): the same cached
    microscopes as that reading, not a second set (0.5 s the first time)."""
    from ..simulate.microscopes import ladder_physics

    light = mat.light_substituent
    rung_subs = tuple(d for d in supported_substituents(mat) if d in substituents or d == light)
    return ladder_physics(mat.name, rung_subs)


def rung_ratio_range(material: str | Material, substituent: str,
                     substituents: tuple[str, ...] = ()) -> tuple[float, float]:
    """Range of ``D2_X2 / D_X`` (the two rungs' ratio) over the simulator's microscopes,
    widened by :data:`RATIO_MARGIN` (``substituents``: the run's, for the shared cache)."""
    mat = get_material(material)
    x = mat.chalcogen
    names, rungs, _, _ = _ladder_physics(mat, (substituent, *substituents))
    ratio = rungs[:, names.index(f"{substituent}2_{x}2")] / rungs[:, names.index(f"{substituent}_{x}")]
    return float(ratio.min() * (1 - RATIO_MARGIN)), float(ratio.max() * (1 + RATIO_MARGIN))


def vacancy_ratio_range(material: str | Material, light: str,
                        substituents: tuple[str, ...] = ()) -> tuple[float, float]:
    """Range of ``L_X / V_X`` (the light substituent's rung over the single vacancy's) over the
    simulator's microscopes, the two orders of ``L_X`` included, widened by
    :data:`RATIO_MARGIN` (``substituents``: the run's, for the shared cache)."""
    mat = get_material(material)
    x = mat.chalcogen
    names, rungs, split, _ = _ladder_physics(mat, (light, *substituents))
    vac, sub = names.index(f"V_{x}"), names.index(f"{light}_{x}")
    low = (rungs[:, sub] - split[:, sub]) / rungs[:, vac]
    high = (rungs[:, sub] + split[:, sub]) / rungs[:, vac]
    return float(low.min() * (1 - RATIO_MARGIN)), float(high.max() * (1 + RATIO_MARGIN))


def _best_two_clusters(z: np.ndarray, starts: list[tuple[float, float]], common: bool = True
                       ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The likeliest of :func:`_two_clusters` from several starts (run side by side:
    :func:`_two_clusters_from`)."""
    return max(_two_clusters_from(z, starts, common), key=lambda fit: fit[0])


def _two_clusters_from(z: np.ndarray, starts: list[tuple[float, float]], common: bool = True
                       ) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`_two_clusters` from each of ``starts``, the EMs run side by side (one array
    operation for all: the iterations of a few hundred levels cost their numpy calls, not their
    arithmetic). Each start's fit is :func:`_two_clusters`'s, its iterations stopping where
    that one's would."""
    z = np.asarray(z, float)
    k = len(starts)
    if k == 0:
        return []
    m = np.array([sorted(st) for st in starts], float)             # (k, 2)
    w = np.full((k, 2), 0.5)
    s = np.full((k, 2), max(float(np.std(z)) / 2, 1e-3))
    post = np.full((k, len(z)), 0.5)
    loglik = np.full(k, -np.inf)
    active = np.ones(k, bool)
    zc = z[None, :, None]                                          # (1, n, 1)
    for _ in range(EM_ITERATIONS):
        d = np.exp(-0.5 * ((zc - m[:, None, :]) / s[:, None, :]) ** 2) * w[:, None, :] \
            / s[:, None, :]                                        # (k, n, 2)
        total = d[..., 0] + d[..., 1] + 1e-300                     # (k, n)
        loglik = np.where(active, np.log(total).sum(1), loglik)
        r = d / total[..., None]
        n = r.sum(1)                                               # (k, 2)
        active &= ~(n < 1e-9).any(1)
        if not active.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            m_new = (r * zc).sum(1) / n
            sq = (r * (zc - m_new[:, None, :]) ** 2).sum(1)
            s_new = np.maximum(np.sqrt(np.repeat(((sq[:, 0] + sq[:, 1]) / len(z))[:, None], 2, 1)
                                       if common else sq / np.maximum(n, 1e-9)), 1e-3)
        if active.all():
            w, m, s, post = n / len(z), m_new, s_new, r[:, :, 1]
        else:  # (a start that stopped keeps its fit)
            keep = active[:, None]
            w = np.where(keep, n / len(z), w)
            m = np.where(keep, m_new, m)
            s = np.where(keep, s_new, s)
            post = np.where(keep, r[:, :, 1], post)
    fits = []
    for i in range(k):
        mi, wi, si, pi = m[i], w[i], s[i], post[i]
        if mi[1] < mi[0]:
            mi, wi, si, pi = mi[::-1], wi[::-1], si[::-1], 1 - pi
        fits.append((float(loglik[i]), mi.copy(), wi.copy(), si.copy(), pi.copy()))
    return fits


def _two_clusters(z: np.ndarray, start: tuple[float, float], common: bool = True
                  ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM of two Gaussians on ``z``, with one spread (``common``) or one each; ``(loglik,
    means, weights, sigma (2,), posterior of the upper)``."""
    return _two_clusters_from(z, [start], common)[0]


def _followed_clusters(z: np.ndarray, starts: list[tuple[float, float]], called_hi: np.ndarray
                       ) -> tuple[float, np.ndarray] | None:
    """Two clusters of the levels ``exp(z)`` (each its own spread: shot noise makes a lower
    rung's narrower) that the detector's calls already follow — :data:`BOUNDARY_MIN_SEPARATION`
    spreads apart, :data:`MIN_CLUSTER_COLUMNS` each, the calls (``called_hi``: called the upper
    class) agreeing with them on :data:`BOUNDARY_AGREEMENT` of the columns — as ``(ratio of the
    two levels, posterior of the upper)``, else ``None``. The columns between the two are the
    ones the detector can get wrong; the clusters place its boundary where the image puts it."""
    _, means, weights, sigma, post = _best_two_clusters(
        np.exp(z), [tuple(np.exp(st)) for st in starts], common=False)
    separation = (means[1] - means[0]) / float(np.sqrt((sigma**2).mean()))
    agree = float((called_hi == (post > 0.5)).mean())
    if not (separation >= BOUNDARY_MIN_SEPARATION
            and (weights * len(z)).min() >= MIN_CLUSTER_COLUMNS
            and agree >= BOUNDARY_AGREEMENT):
        return None
    return float(means[1] / max(means[0], 1e-6)), post


def _random_alloy_counts(n_host: int, n_single: int, n_double: int) -> bool:
    """Whether host, singly and doubly substituted column counts are those of a random alloy:
    the host columns' share within :data:`HOST_SHARE_FACTOR` of ``(1 - c)**2`` at the
    composition ``c`` the counts imply. Two clusters of singly substituted columns alone — the
    substituent above or below its host atom, which at some microscopes differ in level as
    much as one and two substituents do — put half the columns on the upper rung with next to
    no host columns, which no random alloy does."""
    total = n_host + n_single + n_double
    if total == 0:
        return False
    c = (n_single + 2 * n_double) / (2 * total)
    expected = max((1 - c) ** 2, 1e-6)
    observed = max(n_host / total, 0.5 / total)
    return 1 / HOST_SHARE_FACTOR <= observed / expected <= HOST_SHARE_FACTOR


def split_heavy_rungs(chalcogen: Mapping[str, np.ndarray], levels: np.ndarray,
                      material: str | Material, substituents: tuple[str, ...],
                      operating_point: Mapping[str, float] | None = None,
                      doubly_common: bool = False) -> tuple[dict, dict[str, int]]:
    """Calls of the heavy substituent's ``D_X`` and ``D2_X2`` made to follow the image's own
    two clusters of column levels, where it has them clearly.

    Parameters
    ----------
    chalcogen : mapping of str to ndarray
        Per tile, its chalcogen column's ``class``, ``confidence``, ``p_defect`` and ``p_<class>``
        of every chalcogen site choice (as :func:`~.detect._decide` gives them).
    levels : ndarray
        Per tile, its chalcogen column's level (any unit proportional to the signal; ``nan``
        where the tile has none).
    material : str or Material
    substituents : tuple of str
        The run's substituents.
    operating_point : mapping of str to float, optional
        The run's operating point: a column moved between the two classes is called the one it
        prefers (:mod:`.decision`); the neutral point when not given.
    doubly_common : bool
        Whether the image's ladder says, surely, that doubly substituted columns are about as
        many as singly substituted ones (its median column ``D2_X2``, or a random alloy's
        reading with the two shares within :data:`EQUAL_HALVES`, the orders of ``D_X`` split as
        the microscopes split them): two clusters of near-equal counts are then the two rungs,
        not the two orders of ``D_X`` (the host columns' count still a random alloy's).

    Returns
    -------
    chalcogen : dict
        The columns, with the class, confidence and the two classes' probabilities of the
        columns whose class changed (the others as they were).
    moved : dict
        Per class, how many calls it received.
    """
    mat = get_material(material)
    x = mat.chalcogen
    d = HEAVIER_SUBSTITUENT.get(x)
    lo, hi = f"{d}_{x}", f"{d}2_{x}2"
    out, picked = _pair_input(chalcogen, levels, (lo, hi), d is not None and d in substituents)
    moved: dict[str, int] = {}
    if picked is None:
        return out, moved
    cls, pick, z = picked
    is_hi = cls[pick] == hi
    starts = [tuple(np.quantile(z, [0.2, 0.8])), tuple(np.quantile(z, [0.5, 0.95]))]
    if is_hi.sum() >= 3 and (~is_hi).sum() >= 3:
        starts.insert(0, (float(np.median(z[~is_hi])), float(np.median(z[is_hi]))))
    loglik, means, weights, sigma, post = _best_two_clusters(z, starts)
    ratio = float(np.exp(means[1] - means[0]))
    r_lo, r_hi = rung_ratio_range(mat, d, tuple(substituents))
    n_each = weights * len(z)
    if not (r_lo <= ratio <= r_hi and (means[1] - means[0]) / sigma[0] >= MIN_SEPARATION
            and n_each.min() >= MIN_CLUSTER_COLUMNS and weights.min() >= MIN_CLUSTER_SHARE):
        # Two clusters the detector's calls already follow, nearer than a clear split: its
        # boundary moved to where the image puts it, as for the vacancy rung.
        followed = _followed_clusters(z, starts, cls[pick] == hi)
        if followed is not None and r_lo <= followed[0] <= r_hi:
            _reassign(out, cls, pick, followed[1], lo, hi, moved, operating_point)
        return out, moved
    new_hi = post > 0.5
    n_hi, n_lo = int(new_hi.sum()), int((~new_hi).sum())
    if not doubly_common and 1 / EQUAL_HALVES <= n_hi / max(n_lo, 1) <= EQUAL_HALVES:
        return out, moved  # (two halves: the two orders of one rung, as likely as two rungs)
    # (the host columns' count a random alloy's, also where the ladder read the doubly
    # substituted columns as common: a Janus WSSe layer whose Se_S columns split by order was
    # read by the ladder as a random alloy with 48 % Se2_S2, and only its 2.7 % of S2 columns —
    # a third of such an alloy's — kept its Se_S calls)
    if not _random_alloy_counts(int((cls == "chalcogen").sum()), int((~new_hi).sum()),
                                int(new_hi.sum())):
        return out, moved
    _reassign(out, cls, pick, post, lo, hi, moved, operating_point)
    return out, moved


def _reassign(out: dict, cls: np.ndarray, pick: np.ndarray, post: np.ndarray, lo: str, hi: str,
              moved: dict[str, int], operating_point: Mapping[str, float] | None) -> None:
    """Columns ``pick`` given the two classes' probabilities in the proportion ``post`` (of
    ``hi``) and called the one the operating point prefers (``hi`` where ``logit(post) >=
    logit(t_hi) - logit(t_lo)``: ``post >= 0.5`` at the neutral point, as the decision
    does); ``out`` and ``moved`` updated."""
    op = operating_point or {}
    t_hi, t_lo = (float(np.clip(op.get(c, 0.5), 1e-6, 1 - 1e-6)) for c in (hi, lo))
    p = np.clip(post, 1e-12, 1 - 1e-12)
    new_hi = np.log(p / (1 - p)) >= np.log(t_hi / (1 - t_hi)) - np.log(t_lo / (1 - t_lo))
    is_hi = cls[pick] == hi
    change = new_hi != is_hi
    if not change.any():
        return
    rows = pick[change]
    total = out[f"p_{lo}"][rows] + out[f"p_{hi}"][rows]
    out[f"p_{hi}"][rows] = total * post[change]
    out[f"p_{lo}"][rows] = total * (1 - post[change])
    cls[rows] = np.where(new_hi[change], hi, lo)
    out["class"] = cls
    out["confidence"][rows] = np.where(new_hi[change], out[f"p_{hi}"][rows], out[f"p_{lo}"][rows])
    for name in (lo, hi):
        n = int((cls[rows] == name).sum())
        if n:
            moved[name] = moved.get(name, 0) + n


def _pair_columns(cls: np.ndarray, lv: np.ndarray, pair: tuple[str, str]) -> np.ndarray:
    """Rows of the columns called either class of ``pair`` whose level is nearer (in log) to the
    median of the pair's calls than to that of any other class called :data:`MIN_CLUSTER_COLUMNS`
    times or more: a doubly substituted column called a vacancy (a low dose) is no cluster of
    the pair's and would pull the fit's lower cluster onto itself."""
    good = np.isfinite(lv) & (lv > 0)
    z = np.log(np.where(good, lv, 1.0))
    in_pair = np.isin(cls, list(pair)) & good
    if not in_pair.any():
        return np.flatnonzero(in_pair)
    centre = float(np.median(z[in_pair]))
    keep = in_pair.copy()
    for name in set(cls[good]) - set(pair):
        own = (cls == name) & good
        if own.sum() >= MIN_CLUSTER_COLUMNS:
            other = float(np.median(z[own]))
            keep &= np.abs(z - centre) <= np.abs(z - other)
    return np.flatnonzero(keep)


def _pair_input(chalcogen: Mapping[str, np.ndarray], levels: np.ndarray, pair: tuple[str, str],
                chosen: bool) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """A copy of the columns (what a split returns), and the columns' classes, the rows of the
    pair's columns to fit (:func:`_pair_columns`) and their log levels — ``None`` when the
    pair's substituent was not ``chosen``, the run has no probability of either class or
    fewer than :data:`MIN_COLUMNS` columns are to fit."""
    out = {k: np.array(v, copy=True) for k, v in chalcogen.items()}
    return out, _pair_levels(out, levels, pair) if chosen else None


def _pair_levels(out: Mapping[str, np.ndarray], levels: np.ndarray, pair: tuple[str, str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """See :func:`_pair_input`."""
    if any(f"p_{c}" not in out for c in pair):
        return None
    cls = out["class"].astype(object)
    lv = np.asarray(levels, float)
    pick = _pair_columns(cls, lv, pair)
    if len(pick) < MIN_COLUMNS:
        return None
    return cls, pick, np.log(lv[pick])


def split_vacancy_rung(chalcogen: Mapping[str, np.ndarray], levels: np.ndarray,
                       material: str | Material, substituents: tuple[str, ...],
                       operating_point: Mapping[str, float] | None = None,
                       beyond_training: bool = False) -> tuple[dict, dict[str, int]]:
    """Calls of ``V_X`` and the light substituent's ``L_X`` made to follow the image's own two
    clusters of column levels, where a small cluster lies clearly below a large one.

    Parameters and returns as :func:`split_heavy_rungs`; ``beyond_training``: the image's
    metal/chalcogen contrast lies outside the model's training range
    (:attr:`~.image_fit.FitReport.beyond_contrast`). The split is made only when at least
    :data:`MIN_COLUMNS` columns are called either class (those nearer another class's level
    left out, :func:`_pair_columns`), the two clusters are
    :data:`VACANCY_MIN_SEPARATION` spreads apart (:data:`BEYOND_TRAINING_SEPARATION`
    ``beyond_training``), their ratio is one the physics allows
    (:func:`vacancy_ratio_range`), each holds :data:`MIN_CLUSTER_COLUMNS` (the lower as few as
    :data:`FEW_VACANCIES` when :data:`FEW_VACANCIES_SEPARATION` spreads below), the lower (the
    vacancies) holds at most :data:`VACANCY_MAX_SHARE` of the columns and the detector called
    at least :data:`UPPER_CALLED_SHARE` of the upper's the light substituent — or, for two
    clusters of any size, when they are :data:`BOUNDARY_MIN_SEPARATION` spreads apart (each its
    own, in levels), hold :data:`MIN_CLUSTER_COLUMNS` each, the detector's calls follow them on
    :data:`BOUNDARY_AGREEMENT` of the columns and their ratio is one the physics allows.
    """
    mat = get_material(material)
    x = mat.chalcogen
    light = mat.light_substituent
    lo, hi = f"V_{x}", f"{light}_{x}"
    out, picked = _pair_input(chalcogen, levels, (lo, hi), light in substituents)
    moved: dict[str, int] = {}
    if picked is None:
        return out, moved
    cls, pick, z = picked
    # A small lower cluster: starts from the lowest columns as well as from the middle.
    starts = [tuple(np.quantile(z, q)) for q in ([0.05, 0.5], [0.1, 0.6], [0.2, 0.8])]
    _, means, weights, sigma, post = _best_two_clusters(z, starts)
    n_each = weights * len(z)
    new_hi = post > 0.5
    separation = (means[1] - means[0]) / sigma[0]
    # A few vacancies (fewer than MIN_CLUSTER_COLUMNS) are a cluster too when far below.
    fewest = MIN_CLUSTER_COLUMNS if separation < FEW_VACANCIES_SEPARATION else FEW_VACANCIES
    least = BEYOND_TRAINING_SEPARATION if beyond_training else VACANCY_MIN_SEPARATION
    small_below = (separation >= least
                   and n_each.min() >= fewest
                   and (~new_hi).sum() <= VACANCY_MAX_SHARE * len(z)
                   and (cls[pick][new_hi] == hi).mean() >= UPPER_CALLED_SHARE)
    ratio = float(np.exp(means[1] - means[0]))
    if not small_below:
        # Two clusters of any size that the detector's calls already follow: its boundary
        # moved to where the image puts it.
        followed = _followed_clusters(z, starts, cls[pick] == hi)
        if followed is None:
            return out, moved
        ratio, post = followed
    # (the physics last: its microscopes cost)
    r_lo, r_hi = vacancy_ratio_range(mat, light, tuple(substituents))
    if not r_lo <= ratio <= r_hi:
        return out, moved
    _reassign(out, cls, pick, post, lo, hi, moved, operating_point)
    return out, moved


__all__ = ["rung_ratio_range", "split_heavy_rungs", "split_vacancy_rung", "vacancy_ratio_range"]
