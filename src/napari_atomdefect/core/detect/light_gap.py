"""Whether the image's microscope can tell a single vacancy from the light substituent at all.

A column that lost one chalcogen atom (``V_S``) and one whose atom was replaced by the light
substituent (``O_S``; ``S_Se`` in a selenide) differ by what the light atom adds, and that depends
on the microscope: at low detector angles an O beside an S adds a fifth of a column, at high
angles a few per cent or nothing (in multislice at 80 kV, 90–220 mrad an ``O_S`` column reads
*below* a single S on average; docs/benchmarks.md, twenty-sixth session). Where it adds less than
the noise of a column, the detector's split of the two is a guess that its probabilities need not
show: an independent simulator's WS2 + O images had 29 of 34 ``O_S`` called ``V_S`` at a
confidence of ~0.8, and no sentence said so.

The image tells which microscopes it may come from: its metal/chalcogen contrast (a high-angle
detector raises it) selects the simulator's microscopes of that contrast
(:func:`~..simulate.microscopes.ladder_physics`, within :data:`CONTRAST_FACTOR`), and their rungs say how
far the light substituent's column lies above the single vacancy's; the metal columns' spread says
how noisy a column is (shot noise, scaled to the single-atom level). When the gap at the lower
:data:`GAP_QUANTILE` of those microscopes is less than :data:`MIN_SEPARATION` noise widths, the
two classes are said to overlap (their sum is what to trust). Measured on 28 images of four
simulators (docs/model_fit.md): the nine below the threshold had ``O_S`` F1 ≤ 0.54; above it the
split is good on most images but not all (the dev set: 0–0.89), so its absence proves nothing.

For O in a sulfide (:data:`WEAK_LIGHT`) the image's own columns are asked too
(:func:`with_image_split`): the columns called either class are one population of single-atom
columns plus, if the split is real, a second one a gap above; their spread beyond the noise width
and the share called the light class give the gap the image shows. Below :data:`MIN_SHOWN_GAP`
noise widths the image does not show the split, which then rests on the training microscopes
alone, and the two are said to overlap. Measured (twenty-eighth session, docs/benchmarks.md) on
48 images of three simulators: on the 25 sulfide images whose ``O_S`` F1 was below 0.7 the
sentence came on 12 before and 21 after; on the 7 above, once (a dev-set image, 0.89). In
selenides (S adds a quarter to a half of an Se atom) the test misread few-S images whose split
was right, and is not applied.

The image can also show the split plainly while the calls do not follow it: a fresh set of an
independent simulator (thirty-third session) had two high-dose sulfide images whose columns
called either class formed two groups far apart (0.48 and 0.59 of an S2 column, eleven noise
widths), all called ``V_S`` at a confidence of ~0.76 — the detector's microscopes of that
contrast put ``O_S`` higher still — and nothing was said. Where the columns fall into two
groups (:func:`two_groups`: each of :data:`MIN_GROUP_COLUMNS`, :data:`GROUP_SEPARATION` of their
own spreads and :data:`MIN_SHOWN_GAP` noise widths apart) whose calls are not one class each,
the two are said to overlap too, with the groups' levels: which group holds the O the image
cannot say for certain (an O usually brightens its column; at rest at high angles one on the
exit side can read darker than a lone S).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..materials.materials import Material, get_material
from .overlap import sum_sentence

#: Microscopes whose metal/chalcogen contrast lies within this factor of the image's.
CONTRAST_FACTOR = 1.1
#: Fewest such microscopes for a reading (else nothing is said).
MIN_MICROSCOPES = 10
#: The quantile of their gaps taken (the lower end of what the contrast allows).
GAP_QUANTILE = 0.1
#: Gaps below this many noise widths of a single-atom column: the two classes overlap.
MIN_SEPARATION = 1.5
#: The metal columns' interquartile range over this is one standard deviation.
IQR_PER_SD = 1.349
#: Light substituents whose columns the image itself must show apart (O adds 0–0.3 of an S
#: atom, by microscope: at high angles less than the noise of a column).
WEAK_LIGHT = ("O",)
#: Gap (noise widths) the columns called either class must show for their split to be seen.
MIN_SHOWN_GAP = 3.0
#: Fewest columns called either class for the image's own test (fewer: not asked).
MIN_SPLIT_COLUMNS = 6
#: Two groups of levels (:func:`two_groups`): fewest columns (and least share) each, and least
#: distance of their medians in their own robust spreads (one normal population split in two
#: lies 2–3 apart).
MIN_GROUP_COLUMNS = 3
MIN_GROUP_SHARE = 0.1
GROUP_SEPARATION = 5.0
#: Columns above this level (host columns) are no single-atom columns: an O beside an S reads
#: 0.77 of its column at most (low angles); a pristine column called either class at a low dose
#: (a 1e5 e/Å² image's three S2 columns called O_S at 0.8) is no group of the two.
HIGHEST_SINGLE_LEVEL = 0.8
#: The calls follow two groups when each group's calls are this share one class, and the two
#: groups' classes differ.
GROUP_PURITY = 0.75


@dataclass(frozen=True)
class LightGap:
    """How far apart the single vacancy and the light substituent may lie in this image.

    Attributes
    ----------
    classes : tuple of str
        ``(V_X, L_X)``, e.g. ``("V_S", "O_S")``.
    contrast : float
        The image's metal/chalcogen contrast.
    gap : float
        The light substituent's column above the single vacancy's, in host columns, at
        :data:`GAP_QUANTILE` of the microscopes of that contrast.
    separation : float
        ``gap`` in noise widths of a single-atom column.
    """

    classes: tuple[str, str]
    contrast: float
    gap: float
    separation: float
    #: The gap the image's own columns show, in noise widths (:func:`with_image_split`; ``None``:
    #: not asked).
    shown: float | None = None
    #: The median levels (host columns) of two groups the columns called either class form and
    #: their calls do not follow (:func:`with_image_split`; ``None``: none such).
    groups: tuple[float, float] | None = None
    #: How many of the columns called either class were called the light one
    #: (:func:`with_image_split`; ``None``: not asked).
    n_light: int | None = None

    @property
    def unseen(self) -> bool:
        """Whether the image's own columns do not show the two classes apart."""
        return self.shown is not None and self.shown < MIN_SHOWN_GAP

    @property
    def overlap(self) -> bool:
        """Whether the two classes cannot be told apart reliably."""
        return self.separation < MIN_SEPARATION or self.unseen or self.groups is not None

    def message(self, n_calls: int, where: str = "this image's") -> str:
        """One sentence for the user (``n_calls``: calls of either class; ``where``: whose
        contrast, e.g. ``"these frames'"``)."""
        v, light = self.classes
        if self.groups is not None and self.separation >= MIN_SEPARATION and not self.unseen:
            whose = where.replace("this image's", "this image").rstrip("'")
            element = light.split("_")[0]
            host = f"{v.split('_')[-1]}2"
            low, high = self.groups
            return (f"{v} and {light} cannot be told apart reliably in {whose}: the columns "
                    f"called either form two groups ({low:.2f} and {high:.2f} of an {host} "
                    "column) that the calls do not follow; one group is probably the "
                    f"{light} columns (an {element} usually brightens its column; at rest at "
                    f"high angles it can read darker than a lone {v.split('_')[-1]}), so "
                    f"{sum_sentence(v, light, n_calls)}.")
        if self.unseen and self.separation >= MIN_SEPARATION:
            whose = where.replace("this image's", "this image").rstrip("'")
            element = light.split("_")[0]
            if self.n_light == 0:  # (all called the vacancy: a layer without the light atom
                # reads so too — an independent movie with no O was told its "split" was
                # uncertain)
                return (f"All {n_calls} columns at the single vacancy's level in {whose} are "
                        f"called {v}, and their levels form one group: at some microscopes an {element} adds "
                        f"less to its column than the noise, so {light} columns, if the layer "
                        f"has any, would be among them and not stand out; the {n_calls} "
                        f"together are sure, the share of {light} among them is not.")
            return (f"{v} and {light} cannot be told apart reliably in {whose}: the levels of "
                    f"the columns called either do not show two groups (at some microscopes an "
                    f"{element} adds less to its column than the noise), so their split rests on "
                    f"the model's training alone: {sum_sentence(v, light, n_calls)}.")
        above = (f"no brighter than {v}" if self.gap < 0.005 else
                 f"as little as {self.gap:.2f} of a column above {v} "
                 f"({self.separation:.1f} noise widths)")
        host = f"{v.split('_')[-1]}2"  # (the host column: in an alloy not the median one)
        return (f"{v} and {light} cannot be told apart reliably at {where} metal/{host} "
                f"contrast ({self.contrast:.2f}: a metal column over a pristine {host} column) "
                "and noise: microscopes of that contrast put "
                f"{light} {above}, so {sum_sentence(v, light, n_calls)}.")


def light_gap(material: str | Material, substituents: tuple[str, ...], contrast: float,
              metal_spread: float) -> LightGap | None:
    """The gap between the single vacancy's and the light substituent's columns this image's
    microscope may have, or ``None`` (the light substituent not looked for, the contrast or
    spread unknown, too few microscopes of that contrast).

    Parameters
    ----------
    material : str or Material
    substituents : tuple of str
        The run's substituents.
    contrast : float
        Metal/chalcogen contrast (:attr:`~.image_fit.ImageMeasurements.metal_to_chalcogen`).
    metal_spread : float
        ``(q75 - q25) / q50`` of the metal columns
        (:attr:`~.image_fit.ImageMeasurements.metal_spread`).
    """
    from ..simulate.microscopes import N_MICROSCOPES, ladder_physics

    mat = get_material(material)
    light = mat.light_substituent
    if light not in substituents or not (np.isfinite(contrast) and contrast > 0
                                         and np.isfinite(metal_spread) and metal_spread > 0):
        return None
    x = mat.chalcogen
    names, rungs, _, metal = ladder_physics(mat.name, (light,))
    # (the simulator's microscopes only: the ladder's incoherent Z**n ones put the light atom
    # at the top of its range, and the lower end is what this asks about)
    rungs, metal = rungs[:N_MICROSCOPES], metal[:N_MICROSCOPES]
    vac, sub = names.index(f"V_{x}"), names.index(f"{light}_{x}")
    near = np.abs(np.log(metal / contrast)) <= np.log(CONTRAST_FACTOR)
    if near.sum() < MIN_MICROSCOPES:
        return None
    gap = float(np.quantile(rungs[near, sub] - rungs[near, vac], GAP_QUANTILE))
    # A column's noise in host-column units: the metal's relative spread at the metal's level,
    # scaled by shot noise to the host column's, then to a single-atom column's.
    host_width = metal_spread / IQR_PER_SD * np.sqrt(contrast)
    single = float(np.median(rungs[near, vac]))
    width = host_width * np.sqrt(max(single, 1e-3))
    return LightGap(classes=(f"V_{x}", f"{light}_{x}"), contrast=float(contrast), gap=gap,
                    separation=float(gap / max(width, 1e-9)))


def two_groups(levels: np.ndarray, width: float) -> tuple[np.ndarray, float, float] | None:
    """Two groups the ``levels`` fall into plainly, or ``None``.

    The split of the sorted levels with the least spread within the two parts (each of
    :data:`MIN_GROUP_COLUMNS` and :data:`MIN_GROUP_SHARE` at least) is two groups when their
    medians lie :data:`GROUP_SEPARATION` robust spreads (each part's, at least ``width``: a
    column's noise) and :data:`MIN_SHOWN_GAP` noise widths apart, and every level lies nearer
    its own part's median than the other's.

    Returns
    -------
    upper : ndarray of bool
        Which levels (in their given order) are in the upper group.
    low, high : float
        The two groups' medians.
    """
    from ..robust import robust_sd

    x = np.asarray(levels, float)
    n = len(x)
    least = max(MIN_GROUP_COLUMNS, int(np.ceil(MIN_GROUP_SHARE * n)))
    if n < 2 * least or not width > 0:
        return None
    order = np.argsort(x)
    xs = x[order]
    k = np.arange(least, n - least + 1)
    c1, c2 = np.cumsum(xs), np.cumsum(xs**2)
    sse_low = c2[k - 1] - c1[k - 1] ** 2 / k
    sse_high = (c2[-1] - c2[k - 1]) - (c1[-1] - c1[k - 1]) ** 2 / (n - k)
    cut = int(k[np.argmin(sse_low + sse_high)])
    low, high = xs[:cut], xs[cut:]
    spread = np.sqrt((max(robust_sd(low), width) ** 2 + max(robust_sd(high), width) ** 2) / 2)
    gap = float(np.median(high) - np.median(low))
    if gap < GROUP_SEPARATION * spread or gap < MIN_SHOWN_GAP * width:
        return None
    # Each level nearer its own group than the other: a group held to its least size can take
    # in a level of the other (two vacancies below nine O columns made a "group" of three with
    # one O in it, robust spreads blind to it, and correct calls were said not to follow it).
    middle = 0.5 * (float(np.median(low)) + float(np.median(high)))
    if low[-1] > middle or high[0] <= middle:
        return None
    upper = np.zeros(n, bool)
    upper[order[cut:]] = True
    return upper, float(np.median(low)), float(np.median(high))


def _calls_follow(upper: np.ndarray, is_light: np.ndarray) -> bool:
    """Whether each group's calls are one class (:data:`GROUP_PURITY`) and the two differ."""
    share = [float(np.mean(is_light[part])) for part in (~upper, upper)]
    return (all(max(p, 1 - p) >= GROUP_PURITY for p in share)
            and (share[0] > 0.5) != (share[1] > 0.5))


def with_image_split(gap: LightGap | None, light: str, levels: np.ndarray, n_light: int,
                     metal_spread: float, is_light: np.ndarray | None = None
                     ) -> LightGap | None:
    """``gap`` with the gap the image's own columns show (:attr:`LightGap.shown`), for a
    light substituent of :data:`WEAK_LIGHT`, and the two groups they form when their calls
    do not follow them (:attr:`LightGap.groups`, given ``is_light``).

    Parameters
    ----------
    gap : LightGap or None
        :func:`light_gap`'s reading (``None``: returned as it is).
    light : str
        The light substituent (``"O"``).
    levels : ndarray
        Levels, in host columns, of the columns called either class of ``gap.classes``.
    n_light : int
        How many of them are called the light class.
    metal_spread : float
        As for :func:`light_gap`.
    is_light : ndarray of bool, optional
        Per level, whether its column is called the light class.

    Returns
    -------
    LightGap or None
        With ``shown`` (and ``groups``) set where asked (:data:`MIN_SPLIT_COLUMNS` columns or
        more).
    """
    x = np.asarray(levels, float)
    finite = np.isfinite(x)
    x = x[finite]
    if gap is None or light not in WEAK_LIGHT or len(x) < MIN_SPLIT_COLUMNS:
        return gap
    # The noise width of a single-atom column (as light_gap), and the columns' own spread.
    width = metal_spread / IQR_PER_SD * np.sqrt(gap.contrast) * np.sqrt(max(np.median(x), 1e-3))
    q25, q75 = np.percentile(x, [25, 75])
    spread = (q75 - q25) / IQR_PER_SD / max(width, 1e-9)
    # Two populations a gap g apart, a share p of the upper one: variance w² + p(1 − p) g².
    p = n_light / len(x)
    p = 0.5 if p <= 0 or p >= 1 else p  # (all called one class: the smallest gap it allows)
    shown = float(np.sqrt(max(spread**2 - 1, 0.0) / (p * (1 - p))))
    groups = None
    if is_light is not None:
        single = x <= HIGHEST_SINGLE_LEVEL
        found = two_groups(x[single], width)
        if found is not None and not _calls_follow(
                found[0], np.asarray(is_light, bool)[finite][single]):
            groups = found[1:]
    return replace(gap, shown=shown, groups=groups, n_light=int(n_light))


__all__ = ["LightGap", "MIN_SEPARATION", "light_gap", "two_groups", "with_image_split"]
