"""Vacancy calls in a row along one scan line: what a glitch of the scan looks like.

A STEM image is written line by line. Where the beam jumps or the signal drops for a few lines
(a flyback glitch, a charging flash, a vibration), the columns those lines cross read dimmer or
are cut, and the detector calls them vacancies, one after another along the line. A new user's
trial on a real Nion WS2 image (thirty-third session) found seven ``V_S`` calls side by side
along one scan line (y ≈ 411 px, x 4–222 of 1024) over a visible tear of the scan, and nothing
said so; two more such rows were in the same image and one in another.

:func:`scan_line_runs` looks, along every horizontal band of :data:`BAND_A` lattice constants,
for runs of dim chalcogen calls (``V_X``, ``V_X2`` and a substituent lighter than the host:
what a dimmed column is called) no more than :data:`GAP_A` apart along the line, and keeps those
that chance alone makes unlikely: at least :data:`MIN_RUN` calls, nearly all of the band's
chalcogen columns over the run's stretch (binomial chance at the image's own rate of such calls,
times the number of bands searched and of the places along its band the run could have started,
below :data:`MAX_CHANCE`).
:func:`scan_line_message` says it in one sentence; the calls stay as they are (a row of real
vacancies along a scan line is possible, a row of them by chance is not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Half-height of a scan-line band, in lattice constants: a glitch a few lines high dims the
#: columns whose centres lie within about a column's radius of it.
BAND_A = 0.2
#: Largest distance (lattice constants) between neighbouring calls of one run along the line (a
#: column left uncalled between two may be skipped).
GAP_A = 2.0
#: Fewest calls in a run.
MIN_RUN = 5
#: Largest chance of a run (binomial at the image's rate, times the number of bands searched
#: and of the run's possible starts along its band).
MAX_CHANCE = 0.01
#: Column kinds counted (what a dimmed or cut column is called; a lighter substituent too).
_VACANCY_KINDS = ("V_X", "V_X2")


def _dim(name: str) -> bool:
    """Whether a chalcogen column called ``name`` reads dimmer than a pristine one."""
    from ..materials.columns import lighter_than_host, lookup_class

    column = lookup_class(name)
    if column is None:
        return False
    host = str(name).rsplit("_", 1)[-1].rstrip("2")
    return column.kind in _VACANCY_KINDS or lighter_than_host(column, host)


@dataclass(frozen=True)
class ScanLineRun:
    """Dim chalcogen calls in a row along one scan line.

    Attributes
    ----------
    y_px : float
        The line's row (median of the calls').
    x_px : tuple of float
        First and last call along the line.
    n_calls : int
        Calls in the run.
    n_columns : int
        Chalcogen columns of the band over the run's stretch.
    expected : float
        Calls expected there at the image's rate.
    chance : float
        Chance of such a run anywhere in the image at that rate.
    """

    y_px: float
    x_px: tuple[float, float]
    n_calls: int
    n_columns: int
    expected: float
    chance: float


def scan_line_runs(sites: pd.DataFrame, shape: tuple[int, ...], a_px: float
                   ) -> list[ScanLineRun]:
    """Runs of dim chalcogen calls (vacancies, lighter substituents) along scan lines that chance
    does not explain.

    Parameters
    ----------
    sites : DataFrame
        The per-site table of one image (``y_px``, ``x_px``, ``sublattice``, ``class``).
    shape : tuple of int
        The image's shape (rows are scan lines).
    a_px : float
        Lattice constant in pixels.

    Returns
    -------
    list of ScanLineRun
        One per line (the likeliest run of each), top to bottom.
    """
    from scipy.stats import binom

    if sites.empty or not np.isfinite(a_px) or a_px <= 0:
        return []
    chalc = sites[sites["sublattice"] == "chalcogen"]
    vacancy = chalc["class"].map({c: _dim(c) for c in chalc["class"].unique()}).to_numpy(bool)
    if vacancy.sum() < MIN_RUN:
        return []
    y, x = chalc["y_px"].to_numpy(float), chalc["x_px"].to_numpy(float)
    rate = float(vacancy.mean())
    half = BAND_A * a_px
    n_bands = max(float(shape[-2]) / (2 * half), 1.0)
    found: list[ScanLineRun] = []
    for y0 in np.unique(np.round(y[vacancy])):
        band = np.abs(y - y0) <= half
        xv = np.sort(x[band & vacancy])
        if len(xv) < MIN_RUN:
            continue
        for run in np.split(xv, np.flatnonzero(np.diff(xv) > GAP_A * a_px) + 1):
            if len(run) < MIN_RUN:
                continue
            over = band & (x >= run[0] - 0.5 * a_px) & (x <= run[-1] + 0.5 * a_px)
            n_cols, n_calls = int(over.sum()), int((over & vacancy).sum())
            # (the run could have started at any of the band's columns: an alloy with a
            # substituent lighter than its host calls two columns in five so, and ten in a
            # row somewhere along one of its lines came by chance)
            windows = max(int(band.sum()) - n_cols + 1, 1)
            chance = float(binom.sf(n_calls - 1, n_cols, rate)) * n_bands * windows
            if chance < MAX_CHANCE:
                found.append(ScanLineRun(float(np.median(y[over & vacancy])),
                                         (float(run[0]), float(run[-1])), n_calls, n_cols,
                                         rate * n_cols, chance))
    # One run per line: bands centred a few rows apart find the same calls.
    found.sort(key=lambda r: r.chance)
    kept: list[ScanLineRun] = []
    for line in found:
        if all(abs(line.y_px - k.y_px) > 2 * half or line.x_px[1] < k.x_px[0]
               or line.x_px[0] > k.x_px[1] for k in kept):
            kept.append(line)
    return sorted(kept, key=lambda r: r.y_px)


def scan_line_message(runs: list[ScanLineRun]) -> str | None:
    """One sentence on :func:`scan_line_runs` for the user, or ``None`` when there is none."""
    if not runs:
        return None
    n = sum(r.n_calls for r in runs)
    where = "; ".join(f"y ≈ {r.y_px:.0f} px, x {r.x_px[0]:.0f}–{r.x_px[1]:.0f}: "
                      f"{r.n_calls} of {r.n_columns} columns, {r.expected:.1f} expected"
                      for r in runs)
    lines = "a row along a scan line" if len(runs) == 1 else f"rows along {len(runs)} scan lines"
    return (f"{n} vacancy or light-substituent calls lie in {lines} ({where}): a glitch of the "
            "scan (the beam or the signal jumping for a few lines) dims or cuts the columns it "
            "crosses — check those calls.")


__all__ = ["ScanLineRun", "scan_line_message", "scan_line_runs"]
