"""Cut intensities: a saturated detector, a black level set too high, or an export whose
contrast was stretched past the image's ends.

Every class rests on how bright a column is against the background between the columns. An
image whose brightest pixels were cut at one value (a saturated detector; "auto contrast" in a
viewer, then saved as 8-bit) has its brightest columns' peaks flattened there: the brightness
ladder of the chalcogen columns is compressed at its top. One whose darkest pixels were cut
(a black level above the background, or the same export at its dark end) hides the background
under the columns: read against the hollow sites, which now show the cut value, every column
reads dimmer than it is — the lighter ones most.

Measured on an independent simulator's images (set N, thirty-sixth session) exported at 8 bits
with a share of their pixels cut: an ImageJ-style export (0.35 % cut) changed no call. Cut at
the top, a MoSe2 + S alloy (its Se2 columns the brightest: 43–47 % of its chalcogen columns cut
with 1–3 % of the pixels) kept its calls with 2 % of its pixels cut and read 46 % S instead of
29 % with 3 % (`S_Se` F1 0.96 → 0.69); a WSe2 + Te alloy (84 % of its W columns cut) lost a
third of its `V_Se` with 2 %; MoS2 every `V_S` with 10 % (its metal/chalcogen contrast 2.51 →
2.29 with 3 %, 1.42 with 10 %). Cut at the bottom, WS2 + Se kept its calls with 58 % of the
pixels around its hollow sites at the cut value and lost a fifth of its `V_S` with 89 %; MoS2,
MoSe2 and WSe2 kept theirs up to 67–78 %. The real Nion images of ``shared/data/real``
(background-subtracted, cut at zero) have 1–10 % of those pixels cut: their columns read about
0.01 of a chalcogen column dimmer, no more, and nothing is said.

:func:`clipped_columns` measures it from the lattice's sites; :func:`clipping_message` says it
when enough columns (or hollow sites) are cut to change what is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells.background import hollow_sites_px
from ..lattice.lattice import Lattice
from ..lattice.sites import disc_offsets

#: Radius of a column's reading disc, in lattice constants (at least one pixel).
DISC_CELLS = 0.12
#: A column is cut when this share of its disc's pixels sits at the image's brightest value.
CUT_COLUMN_SHARE = 0.25
#: Share of the chalcogen columns cut for the classes to be at risk (said).
CHALCOGEN_CUT_SHARE = 0.05
#: Share of the metal columns cut for the metal/chalcogen contrast to read low (said).
METAL_CUT_SHARE = 0.5
#: Share of the pixels around the hollow sites at the darkest value for the background to be
#: hidden (said).
HOLLOW_CUT_SHARE = 0.8


@dataclass(frozen=True)
class Clipping:
    """How much of an image's lattice sits at its extreme values.

    Attributes
    ----------
    top, bottom : float
        The image's brightest and darkest values.
    chalcogen_cut, metal_cut : float
        Share of the chalcogen and metal columns whose reading disc is cut at ``top`` (at least
        :data:`CUT_COLUMN_SHARE` of its pixels there).
    hollow_cut : float
        Share of the pixels around the hollow sites that sit at ``bottom``.
    """

    top: float
    bottom: float
    chalcogen_cut: float
    metal_cut: float
    hollow_cut: float


def _disc_shares(image: np.ndarray, plateau: np.ndarray, points: np.ndarray,
                 radius: float) -> np.ndarray:
    """Per point inside the field, the share of its disc's pixels on ``plateau``."""
    off = disc_offsets(radius)
    h, w = image.shape
    p = np.rint(np.asarray(points, float).reshape(-1, 2)).astype(int)
    r = int(np.ceil(radius))
    inside = (p[:, 0] >= r) & (p[:, 0] < h - r) & (p[:, 1] >= r) & (p[:, 1] < w - r)
    p = p[inside]
    if len(p) == 0:
        return np.zeros(0)
    return plateau[p[:, 0, None] + off[None, :, 0], p[:, 1, None] + off[None, :, 1]].mean(axis=1)


def clipped_columns(image: np.ndarray, lattice: Lattice) -> Clipping:
    """Measure how much of ``image``'s lattice is cut at its brightest and darkest values.

    Parameters
    ----------
    image : ndarray
        The analysis image (:func:`~..io.validate.as_analysis_image`).
    lattice : Lattice
        Its lattice.

    Returns
    -------
    Clipping
    """
    img = np.asarray(image, np.float32)
    top, bottom = float(img.max()), float(img.min())
    radius = max(1.0, DISC_CELLS * lattice.a_px)
    at_top = img >= top
    chalcogen = _disc_shares(img, at_top, lattice.chalcogen_sites_px, radius)
    metal = _disc_shares(img, at_top, lattice.metal_sites_px, radius)
    hollow = _disc_shares(img, img <= bottom, hollow_sites_px(lattice), radius)

    def cut(shares: np.ndarray) -> float:
        return float((shares >= CUT_COLUMN_SHARE).mean()) if len(shares) else 0.0

    return Clipping(top=top, bottom=bottom, chalcogen_cut=cut(chalcogen), metal_cut=cut(metal),
                    hollow_cut=float(hollow.mean()) if len(hollow) else 0.0)


def clipping_message(clip: Clipping, metal: str = "metal") -> str | None:
    """One sentence on what the cut values do to the reading, or ``None`` where they change
    nothing that is read (see the module's measurements)."""
    raw = "analyse the data as the microscope wrote them (not an export with stretched contrast)"
    parts = []
    if clip.chalcogen_cut >= CHALCOGEN_CUT_SHARE:
        parts.append(f"{clip.chalcogen_cut:.0%} of the chalcogen columns are cut at the image's "
                     f"brightest value ({clip.top:g}), so the brightest of them read alike")
    elif clip.metal_cut >= METAL_CUT_SHARE:
        parts.append(f"{clip.metal_cut:.0%} of the {metal} columns are cut at the image's "
                     f"brightest value ({clip.top:g}), so the {metal}/chalcogen contrast reads "
                     "low (a material proposed from it may be wrong)")
    if clip.hollow_cut >= HOLLOW_CUT_SHARE:
        parts.append(f"{clip.hollow_cut:.0%} of the pixels between the columns sit at its darkest "
                     f"value ({clip.bottom:g}), so the background under the columns is hidden "
                     "and every column reads dimmer than it is, vacancies most")
    if not parts:
        return None
    what = " and ".join(parts)
    return (f"The image's intensities are cut (a saturated detector, a black level set too high "
            f"or an export with stretched contrast): {what} — the classes read from brightness "
            f"may be off; {raw}.")


__all__ = ["Clipping", "clipped_columns", "clipping_message"]
