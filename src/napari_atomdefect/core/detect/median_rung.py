"""The median chalcogen column's class, as the Z-contrast ladder reads it, over the detector's.

The ladder reading (:func:`~..cells.ladder.read_ladder`) weighs the whole histogram of the
chalcogen-column levels, the metal column's level and the priors, and says which rung the median
column is on. The detector reads each column against the image's metal/chalcogen contrast, and
past the contrasts it was trained on it extrapolates: an independent simulator's pristine WSe2
image at a W/Se2 contrast of 2.31 (training reaches 2.05) — read by the ladder as the host at a
posterior of 1.00 — had 243 of its 260 Se2 columns called ``S_Se``, a uniform layer the detector
took for a Janus one.

:func:`keep_median_rung` returns such columns to the host: where the ladder reads the median
column as the host (:data:`MIN_POSTERIOR`) and the detector calls more than
:data:`MAJORITY` of the chalcogen columns one other class, the columns of that class whose level
lies on the median rung (within :data:`RUNG_WIDTH` of the ladder's spread) are called host,
their two probabilities shared in the ladder's proportion. Columns off the rung keep their call.

:func:`keep_host_rung` does the same for single-vacancy calls on the host column's rung when the
median column is not the host's (an alloy past the detector's contrasts): where most of them
read as bright as two atoms (:data:`ABOVE_ANY_SINGLE`), they are called host. The light
substituent's column (one host atom beside an S in a selenide, an O in a sulfide: 0.55–0.75 of
the host column at every microscope measured) is treated the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cells.ladder import LadderReading
from ..materials.columns import lookup_class

#: Least posterior of the host reading for the ladder to overrule the detector.
MIN_POSTERIOR = 0.9
#: Share of the chalcogen columns one non-host class must be called on.
MAJORITY = 0.5
#: Half-width of the median rung, in the ladder's spread of the column levels.
RUNG_WIDTH = 3.0
#: Smallest spread used (chalcogen units): a noise-free image's rung is not a point.
MIN_SPREAD = 0.02
HOST = "chalcogen"


def keep_median_rung(chalcogen: Mapping[str, np.ndarray], levels: np.ndarray,
                     ladder: LadderReading) -> tuple[dict, tuple[str, int] | None]:
    """Columns called another class on the median rung that the ladder reads as the host's,
    called host.

    Parameters
    ----------
    chalcogen : mapping
        The chalcogen columns' ``class``, ``confidence`` and ``p_<class>`` arrays.
    levels : ndarray
        Each column's level in chalcogen units (median column 1; NaN where unknown).
    ladder : LadderReading
        The image's ladder reading.

    Returns
    -------
    out : dict
        A copy of ``chalcogen``, mended.
    moved : tuple or None
        ``(class, n)``: how many columns of which class were called host.
    """
    out = {k: np.array(v, copy=True) for k, v in chalcogen.items()}
    cls = out["class"].astype(object)
    posterior = float(ladder.posterior.get(HOST, 0.0))
    if (ladder.median_class != HOST or ladder.ordered or posterior < MIN_POSTERIOR
            or not len(cls) or f"p_{HOST}" not in out):
        return out, None
    names, counts = np.unique(cls[cls != HOST], return_counts=True)
    if not len(names) or counts.max() <= MAJORITY * len(cls):
        return out, None
    other = str(names[np.argmax(counts)])
    if f"p_{other}" not in out:
        return out, None
    lv = np.asarray(levels, float)
    width = RUNG_WIDTH * max(float(ladder.sigma), MIN_SPREAD) * np.sqrt(max(ladder.host_level, 0.2))
    rows = np.flatnonzero((cls == other) & np.isfinite(lv)
                          & (np.abs(lv - ladder.host_level) <= width))
    if not len(rows):
        return out, None
    _call_host(out, cls, rows, other, posterior)
    return out, (other, len(rows))


def _call_host(out: dict, cls: np.ndarray, rows: np.ndarray, other: str, posterior: float) -> None:
    """Call ``rows`` host, their ``other`` and host probabilities shared in the ladder's
    proportion (in place)."""
    total = out[f"p_{other}"][rows] + out[f"p_{HOST}"][rows]
    out[f"p_{HOST}"][rows] = total * posterior
    out[f"p_{other}"][rows] = total * (1 - posterior)
    cls[rows] = HOST
    out["class"] = cls
    out["confidence"][rows] = out[f"p_{HOST}"][rows]


#: Level (in host columns) above which no single chalcogen atom lies at any microscope: a lone
#: atom reads 0.35-0.70 of its host column (multislice, docs/physics.md), never as bright as two.
ABOVE_ANY_SINGLE = 0.85
#: Fewest single-vacancy calls on the host rung for :func:`keep_host_rung` (a systematic
#: disagreement, not a stray call).
MIN_ON_HOST_RUNG = 5


def keep_host_rung(chalcogen: Mapping[str, np.ndarray], levels: np.ndarray,
                   ladder: LadderReading, vacancy: str) -> tuple[dict, tuple[str, int] | None]:
    """Single-vacancy calls on the host column's rung, called host, where most of them lie there.

    An independent simulator's WSe2 + 47 % Te alloy (its median column ``Te_Se``, read so by the
    ladder at 1.00; a W/Se2 contrast of 2.15, past the WSe2 detector's training) had 63 of its
    154 Se2 columns called ``V_Se`` at a confidence of ~0.57, at the host rung's level: one Se
    atom cannot read as bright as two.

    Parameters
    ----------
    chalcogen, levels, ladder
        As for :func:`keep_median_rung` (the ladder's host level, spread and posterior).
    vacancy : str
        The class below the host column whose calls are checked: the single vacancy (``V_Se``)
        or the light substituent's (``S_Se``).

    Returns
    -------
    out, moved
        As for :func:`keep_median_rung`; ``moved`` is ``(vacancy, n)``.
    """
    out = {k: np.array(v, copy=True) for k, v in chalcogen.items()}
    cls = out["class"].astype(object)
    posterior = float(ladder.posterior.get(ladder.median_class, 0.0))
    if (posterior < MIN_POSTERIOR or not len(cls) or f"p_{HOST}" not in out
            or f"p_{vacancy}" not in out or ladder.host_level <= 0):
        return out, None
    lv = np.asarray(levels, float) / ladder.host_level  # host columns
    width = RUNG_WIDTH * max(float(ladder.sigma), MIN_SPREAD) / np.sqrt(ladder.host_level)
    called = (cls == vacancy) & np.isfinite(lv)
    on_rung = called & (np.abs(lv - 1.0) <= width) & (lv >= ABOVE_ANY_SINGLE)
    rows = np.flatnonzero(on_rung)
    if len(rows) < MIN_ON_HOST_RUNG or len(rows) <= MAJORITY * called.sum():
        return out, None
    _call_host(out, cls, rows, vacancy, posterior)
    return out, (vacancy, len(rows))


def median_rung_message(moved: tuple[str, int] | None, ladder: LadderReading,
                        contrast: float) -> str | None:
    """One sentence for the user when :func:`keep_median_rung` moved columns, else ``None``."""
    if moved is None:
        return None
    name, n = moved
    return (f"{n} chalcogen columns the detector called {name} lie on the rung the Z-contrast "
            f"ladder reads as the host's (probability {ladder.posterior.get(HOST, 0.0):.2f}) "
            f"and are called host: the two disagree at this image's metal/chalcogen contrast "
            f"({contrast:.2f}). Check against a region of known composition.")


def host_rung_message(moved: tuple[str, int] | None) -> str | None:
    """One sentence for the user when :func:`keep_host_rung` moved columns, else ``None``."""
    if moved is None:
        return None
    name, n = moved
    column = lookup_class(name)
    what = ("one atom" if column is None or column.kind == "V_X"
            else f"one {column.atoms[0]} atom beside one {column.substituent}")
    return (f"{n} chalcogen columns the detector called {name} are as bright as the host "
            f"column, brighter than {what} can be, and are called host (the detector is "
            "outside its training at this image's contrast).")


__all__ = ["host_rung_message", "keep_host_rung", "keep_median_rung", "median_rung_message"]
