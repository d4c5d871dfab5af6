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

A glitch dims every column it crosses, the metal columns too; a line of chalcogen vacancies —
the beam makes such lines, and one may lie along the scan — leaves them as they are. Given the
image, a run whose metal columns within :data:`METAL_BAND_A` of its line read as the field's do
(their median no lower than :data:`METAL_INTACT_Z` standard errors below the field's median
metal column) is no glitch and is not said. An independent simulator's line of six ``V_S2``
2° from the scan direction had been said to be a glitch (its metal columns at 1.00 of the
field's); the four glitches of the real Nion images read their metal columns at 0.89–0.95 of the
field's (1.5–3.2 standard errors below) and are still said. Where the line passes fewer than
:data:`MIN_METALS` metal columns, or the metal columns spread too widely to tell (a Mo/W alloy,
:data:`MAX_METAL_SPREAD`), the run is said as before.
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
#: Half-height (lattice constants) of the band around a run's line whose metal columns tell a
#: glitch (which dims them) from a line of chalcogen vacancies (which does not).
METAL_BAND_A = 0.4
#: Fewest metal columns in that band for the test.
MIN_METALS = 3
#: A run's metal columns read as the field's when their median lies no more than this many
#: standard errors (1.25 robust standard deviations of the field's metal levels over the square
#: root of their number) below the field's median.
METAL_INTACT_Z = 1.0
#: Above this robust spread of the metal levels (relative) the test cannot tell: a run is said.
MAX_METAL_SPREAD = 0.15


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


def scan_line_runs(sites: pd.DataFrame, shape: tuple[int, ...], a_px: float,
                   image: np.ndarray | None = None) -> list[ScanLineRun]:
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
    image : ndarray, optional
        The image the sites were read in: runs whose metal columns read as the field's are left
        out (a line of chalcogen vacancies, not a glitch; :func:`metal_columns_intact`).

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
    if image is not None and kept:
        intact = metal_columns_intact(kept, sites, image, a_px)
        kept = [line for line, ok in zip(kept, intact, strict=True) if not ok]
    return sorted(kept, key=lambda r: r.y_px)


def metal_columns_intact(runs: list[ScanLineRun], sites: pd.DataFrame, image: np.ndarray,
                         a_px: float) -> list[bool]:
    """Per run, whether the metal columns along its line read as the field's do (a line of
    chalcogen vacancies; a glitch would dim them): their median level no lower than
    :data:`METAL_INTACT_Z` standard errors below the field's median metal level, from at least
    :data:`MIN_METALS` columns within :data:`METAL_BAND_A` of the line, where the field's metal
    levels spread less than :data:`MAX_METAL_SPREAD`."""
    from ..cells.normalize import smoothed_for_sites
    from ..robust import robust_sd
    from ..sampling import sample_bilinear

    metal = sites[sites["sublattice"] == "metal"]
    if len(metal) < 2 * MIN_METALS:
        return [False] * len(runs)
    y, x = metal["y_px"].to_numpy(float), metal["x_px"].to_numpy(float)
    levels = sample_bilinear(smoothed_for_sites(image, a_px), y, x, dtype=np.float64)
    median = float(np.median(levels))
    if not median > 0:
        return [False] * len(runs)
    relative = levels / median
    spread = robust_sd(relative, centre=1.0)
    if not np.isfinite(spread) or spread > MAX_METAL_SPREAD:
        return [False] * len(runs)
    out = []
    for run in runs:
        near = ((np.abs(y - run.y_px) <= METAL_BAND_A * a_px)
                & (x >= run.x_px[0] - 0.5 * a_px) & (x <= run.x_px[1] + 0.5 * a_px))
        n = int(near.sum())
        if n < MIN_METALS:
            out.append(False)
            continue
        standard_error = 1.25 * spread / np.sqrt(n)
        out.append(bool(np.median(relative[near]) >= 1.0 - METAL_INTACT_Z * standard_error))
    return out


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


__all__ = ["MAX_METAL_SPREAD", "METAL_BAND_A", "METAL_INTACT_Z", "MIN_METALS", "ScanLineRun",
           "metal_columns_intact", "scan_line_message", "scan_line_runs"]
