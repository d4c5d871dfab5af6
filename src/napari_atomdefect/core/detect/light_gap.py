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
(:func:`~..cells.ladder.ladder_physics`, within :data:`CONTRAST_FACTOR`), and their rungs say how
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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..materials.materials import Material, get_material

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

    @property
    def unseen(self) -> bool:
        """Whether the image's own columns do not show the two classes apart."""
        return self.shown is not None and self.shown < MIN_SHOWN_GAP

    @property
    def overlap(self) -> bool:
        """Whether the two classes cannot be told apart reliably."""
        return self.separation < MIN_SEPARATION or self.unseen

    def message(self, n_calls: int, where: str = "this image's") -> str:
        """One sentence for the user (``n_calls``: calls of either class; ``where``: whose
        contrast, e.g. ``"these frames'"``)."""
        v, light = self.classes
        if self.unseen and self.separation >= MIN_SEPARATION:
            whose = where.replace("this image's", "this image").rstrip("'")
            element = light.split("_")[0]
            return (f"{v} and {light} cannot be told apart reliably in {whose}: the levels of "
                    f"the columns called either do not show two groups (at some microscopes an "
                    f"{element} adds less to its column than the noise), so their split rests on "
                    f"the model's training alone and is uncertain, while their sum ({n_calls}) "
                    "is not.")
        above = (f"no brighter than {v}" if self.gap < 0.005 else
                 f"as little as {self.gap:.2f} of a column above {v} "
                 f"({self.separation:.1f} noise widths)")
        host = f"{v.split('_')[-1]}2"  # (the host column: in an alloy not the median one)
        return (f"{v} and {light} cannot be told apart reliably at {where} metal/{host} "
                f"contrast ({self.contrast:.2f}: a metal column over a pristine {host} column) "
                "and noise: microscopes of that contrast put "
                f"{light} {above}, so their split is uncertain while their sum ({n_calls}) is "
                "not.")


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
    from ..cells.ladder import ladder_physics

    mat = get_material(material)
    light = mat.light_substituent
    if light not in substituents or not (np.isfinite(contrast) and contrast > 0
                                         and np.isfinite(metal_spread) and metal_spread > 0):
        return None
    x = mat.chalcogen
    names, rungs, _, metal = ladder_physics(mat.name, (light,))
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


def with_image_split(gap: LightGap | None, light: str, levels: np.ndarray, n_light: int,
                     metal_spread: float) -> LightGap | None:
    """``gap`` with the gap the image's own columns show (:attr:`LightGap.shown`), for a
    light substituent of :data:`WEAK_LIGHT`.

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

    Returns
    -------
    LightGap or None
        With ``shown`` set where asked (:data:`MIN_SPLIT_COLUMNS` columns or more).
    """
    x = np.asarray(levels, float)
    x = x[np.isfinite(x)]
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
    return replace(gap, shown=shown)


__all__ = ["LightGap", "MIN_SEPARATION", "light_gap", "with_image_split"]
