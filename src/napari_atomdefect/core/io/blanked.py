"""Columns over blanked pixels: not read, and said.

An image may carry NaN or infinite pixels where its owner blanked a detector glitch, a torn
stretch of the scan or a label (up to :data:`~.validate.MAX_NONFINITE_SHARE` of them; more is
refused). The analysis reads them as the image's median so that the lattice search and the
filters see a plain field; a column on such pixels is then read from that flat grey and called
whatever a flat level resembles — a new-user trial blanked a stripe ten rows high and got an
``O_S`` (89 % of the pixels around it blanked) and a ``V_S`` on columns that were pristine and
``V_S2`` in the original. :func:`blanked_sites` marks the sites whose disc of
:data:`BLANK_RADIUS_A` lattice constants holds at least :data:`BLANK_SHARE` of blanked pixels;
the lattice leaves them out of its sublattice statistics (a stripe of grey metal columns had
read as the dim rung of a Mo/W alloy) and then out of its sites, as pixels outside a region:
every statistic of the image (its ladder, contrast, spread) and every count goes without them
— a trial's stripe had added "15 % of the columns can only be vacancies" — and the lattice
says how many (:func:`blanked_message`). Detection leaves out any such site of a lattice found
without them.
"""

from __future__ import annotations

import numpy as np

#: Radius (lattice constants) of the disc around a column that its reading depends on (its
#: profile and the ring of background beside it).
BLANK_RADIUS_A = 0.3
#: Share of blanked pixels in that disc from which a column is not read.
BLANK_SHARE = 0.25


def blank_pixels(image: object) -> np.ndarray | None:
    """Mask of the NaN or infinite pixels of a 2-D float ``image`` (``None`` when there are
    none, or the image is not a float array)."""
    arr = np.asarray(image)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        return None
    blank = ~np.isfinite(arr)
    return blank if blank.any() else None


def blanked_sites(blank: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  a_px: float) -> np.ndarray:
    """Which sites (pixel positions ``rows``, ``cols``) lie on blanked pixels.

    Parameters
    ----------
    blank : ndarray of bool
        :func:`blank_pixels` of the image.
    rows, cols : ndarray
        Site positions in pixels.
    a_px : float
        Lattice constant in pixels.

    Returns
    -------
    ndarray of bool
        True where at least :data:`BLANK_SHARE` of the disc of :data:`BLANK_RADIUS_A` lattice
        constants around the site is blanked.
    """
    rows = np.asarray(rows, float)
    cols = np.asarray(cols, float)
    out = np.zeros(len(rows), bool)
    if not len(rows):
        return out
    radius = max(1.0, BLANK_RADIUS_A * float(a_px))
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = (dy ** 2 + dx ** 2) <= radius ** 2
    dy, dx = dy[disc], dx[disc]
    h, w = blank.shape
    yy = np.clip(np.round(rows)[:, None].astype(int) + dy[None, :], 0, h - 1)
    xx = np.clip(np.round(cols)[:, None].astype(int) + dx[None, :], 0, w - 1)
    return blank[yy, xx].mean(axis=1) >= BLANK_SHARE


#: The words that mark the sentence of :func:`blanked_message` among a lattice's messages.
BLANKED_NOTE = "on NaN or infinite pixels (blanked)"


def blanked_message(n_sites: int) -> str:
    """The sentence for ``n_sites`` columns left unread on blanked pixels."""
    return (f"{n_sites} column{' lies' if n_sites == 1 else 's lie'} {BLANKED_NOTE}: "
            f"{'it is' if n_sites == 1 else 'they are'} not read, neither pristine nor defect, "
            "and not counted.")


__all__ = ["BLANKED_NOTE", "BLANK_RADIUS_A", "BLANK_SHARE", "blank_pixels", "blanked_message",
           "blanked_sites"]
