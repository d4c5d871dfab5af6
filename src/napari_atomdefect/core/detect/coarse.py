"""Coarsely sampled images: their columns read on the image enlarged by cubic interpolation.

The detectors were trained on 14–40 pixels per lattice constant and read their tiles at 16
(bilinear sampling). A survey image taken at a low magnification puts a lattice constant over
fewer pixels: at 6 px (0.05 nm/px) a column is two or three pixels wide, bilinear sampling
between them flattens its peak by an amount that depends on where the column falls between the
pixels, and the columns' levels scatter. Measured on an independent simulator's images (set N,
thirty-sixth session) binned to coarser pixels (thirty-eighth session): WS2 + Se at 5.8 px
lost every `V_S` (F1 0.86 → 0.00, 549 calls for 467 defects), MoSe2 + S at 6.0 px its `V_Se`
(1.00 → 0.22), and a MoSe2 + S, Te field at 9.9 px made 730 calls for 93 defects (pooled F1
0.14). Read on the same images enlarged by cubic interpolation they are back (`V_S` 0.86,
`V_Se` 1.00, pooled 0.87); over set N binned 2× and 3× (``benchmarks/bench_sampling.py
binned``), the 35 readings under 12 px went from a mean pooled F1 of 0.766 to 0.931 (18 better,
16 the same, one lower by 0.012).

So a lattice constant under :data:`COARSEST_READ_A_PX` pixels is read on the image enlarged by
the smallest whole factor that brings it to :data:`READ_A_PX` (:func:`enlargement`); the calls
are mapped back to the image's pixels, and one sentence says so (:func:`coarse_message`).
Where the enlarged image would exceed :data:`MAX_ENLARGED_PIXELS` (memory) the image is read as
it is, and the sentence says the calls are unreliable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..lattice.lattice import Lattice

#: Fewest pixels per lattice constant read as they are.
COARSEST_READ_A_PX = 12.0
#: Pixels per lattice constant the enlargement aims at (at least).
READ_A_PX = 14.0
#: Largest enlarged image (pixels); beyond it the image is read as it is.
MAX_ENLARGED_PIXELS = 40_000_000


def enlargement(a_px: float, shape: tuple[int, ...]) -> int:
    """The whole factor an image of ``shape`` with a lattice constant of ``a_px`` pixels is
    enlarged by before its columns are read: 1 at :data:`COARSEST_READ_A_PX` and more, or
    where the enlarged image would exceed :data:`MAX_ENLARGED_PIXELS`."""
    if not a_px > 0 or a_px >= COARSEST_READ_A_PX:
        return 1
    k = int(np.ceil(READ_A_PX / a_px))
    return k if int(shape[0]) * int(shape[1]) * k * k <= MAX_ENLARGED_PIXELS else 1


def to_enlarged(points: np.ndarray, k: int) -> np.ndarray:
    """Pixel positions in an image enlarged ``k`` times (pixel centres kept: ``(p + ½)k − ½``)."""
    return (np.asarray(points, float) + 0.5) * k - 0.5


def from_enlarged(points: np.ndarray, k: int) -> np.ndarray:
    """Positions in an image enlarged ``k`` times back in the image's pixels."""
    return (np.asarray(points, float) + 0.5) / k - 0.5


@dataclasses.dataclass(frozen=True)
class _EnlargedPhaseMap:
    """A lattice's distortion map (:class:`~..lattice.gpa.PhaseMap`) read at the positions of
    an image enlarged ``k`` times: fine-tuning reads the cells' fractional coordinates off it."""

    base: Any
    k: int

    @property
    def g_ref(self) -> np.ndarray:
        return np.asarray(self.base.g_ref, float) / self.k

    @property
    def kernel_sigma_px(self) -> float:
        return float(self.base.kernel_sigma_px) * self.k

    def phase_at(self, points: np.ndarray) -> np.ndarray:
        return self.base.phase_at(from_enlarged(points, self.k))

    def amplitude_at(self, points: np.ndarray) -> np.ndarray:
        return self.base.amplitude_at(from_enlarged(points, self.k))

    def field_amplitude_at(self, points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        small = tuple(int(round(s / self.k)) for s in shape)
        return self.base.field_amplitude_at(from_enlarged(points, self.k), small)

    def total_phase_cycles(self, points: np.ndarray) -> np.ndarray:
        return self.base.total_phase_cycles(from_enlarged(points, self.k))


def enlarged(image: np.ndarray, lattice: Lattice, k: int) -> tuple[np.ndarray, Lattice]:
    """``image`` enlarged ``k`` times by cubic interpolation, and ``lattice`` in its pixels (its
    pixel size ``k`` times smaller; its distortion maps read through the enlargement).

    Parameters
    ----------
    image : ndarray
        The analysis image (float32, 2-D).
    lattice : Lattice
        Its lattice.
    k : int
        The factor (:func:`enlargement`).
    """
    from scipy import ndimage

    img = ndimage.zoom(np.asarray(image, np.float32), k, order=3, mode="reflect",
                       grid_mode=True).astype(np.float32)
    return img, dataclasses.replace(
        lattice, a1_px=np.asarray(lattice.a1_px, float) * k,
        a2_px=np.asarray(lattice.a2_px, float) * k,
        origin_px=to_enlarged(lattice.origin_px, k), shape=img.shape,
        metal_sites_px=to_enlarged(lattice.metal_sites_px, k),
        chalcogen_sites_px=to_enlarged(lattice.chalcogen_sites_px, k),
        pixel_size_nm=lattice.pixel_size_nm / k,
        pixel_size_lattice_nm=lattice.pixel_size_lattice_nm / k,
        messages=list(lattice.messages),
        phase_maps=tuple(_EnlargedPhaseMap(pm, k) for pm in lattice.phase_maps))


def reads_coarse_enlarged(card: dict, bundled: bool) -> bool:
    """Whether a model reads a coarse image enlarged: the bundled ones, and those fine-tuned on
    an image enlarged as detection reads it (their card's ``fine_tuning.reads_coarse_enlarged``;
    models fine-tuned before it read every image as it is, as their fine-tuning did)."""
    return bundled or bool(card.get("fine_tuning", {}).get("reads_coarse_enlarged", False))


def coarse_message(a_px: float, pixel_size_nm: float, k: int) -> str | None:
    """One sentence on a coarse sampling: read enlarged ``k`` times (``k`` > 1), or too coarse
    and too large to be (``k`` = 1 below :data:`COARSEST_READ_A_PX`); ``None`` otherwise."""
    if a_px >= COARSEST_READ_A_PX:
        return None
    spans = (f"A lattice constant spans only {a_px:.1f} pixels ({pixel_size_nm:.3f} nm/px), "
             f"coarser than the detectors read ({COARSEST_READ_A_PX:g} or more)")
    if k > 1:
        return (f"{spans}: the columns were read on the image enlarged {k}× by cubic "
                "interpolation, and the calls mapped back to its pixels; a finer pixel size "
                "reads them more surely.")
    return (f"{spans}, and the image is too large to be enlarged for them: single vacancies and "
            "substitutions are missed or miscalled — analyse it cropped into parts, or "
            "acquire at a finer pixel size.")


__all__ = ["COARSEST_READ_A_PX", "READ_A_PX", "coarse_message", "enlarged", "enlargement",
           "from_enlarged", "reads_coarse_enlarged", "to_enlarged"]
