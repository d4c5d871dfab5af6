"""Metal antisites: one atom of the host's own metal in a chalcogen column (``Mo_S2``).

One metal atom scatters as a metal column does, so a chalcogen column that holds one instead of
its two chalcogen atoms reads at the metal columns' level: 2.3–3.5 host columns in MoS2, 6–8 in
WS2 at HAADF angles; in selenides (0.7–2) it stands clear of the host columns only where the
metal does (:data:`MIN_CONTRAST`). The detector was never shown such a column (it calls it
pristine): the levels decide here, once the user has said that antisites may be there. That
choice is needed because a column holding an unchosen heavier substituent reads as bright (S + Se
≈ 2 S2 columns, near a Mo column): with the heavier substituent chosen too, antisites are not
read (:data:`WITH_HEAVIER`), and many such columns are an alloy, not antisites
(:data:`MAX_SHARE`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..materials.columns import HEAVIER_SUBSTITUENT, antisite_class
from ..materials.materials import Material
from ..robust import robust_sd

#: An antisite column's level lies between these multiples of the metal columns' level (our
#: simulator's, four hosts: 0.94–1.14; a brighter column is a cluster or an adatom on top, a
#: fainter one no whole atom — an independent simulator's WSe2 image with a strong background
#: had two Se2 columns at 0.74).
LOW_OF_METAL = 0.8
HIGH_OF_METAL = 1.4
#: The metal column over the host chalcogen column below which a metal atom in a chalcogen
#: column is not told from the host columns and their substituents (MoSe2: 0.7–0.8).
MIN_CONTRAST = 1.5
#: ... and an antisite column lies at least this many robust spreads of the host columns above
#: the host column (shot noise alone: never on the host columns of an image).
MIN_SIGMAS = 6.0
#: Above this share of the chalcogen columns, columns at the metal's level are an alloy (an
#: unchosen heavier substituent), not antisites.
MAX_SHARE = 0.1


def antisite_probability(levels: np.ndarray, metal_level: float, host_level: float,
                         metal_spread: float) -> tuple[np.ndarray, str | None]:
    """How probably each chalcogen column holds one metal atom rather than its host atoms.

    Parameters
    ----------
    levels : ndarray
        Chalcogen column levels in chalcogen units (the median column 1; NaN where unknown).
    metal_level : float
        The metal columns' level in the same units.
    host_level : float
        The host chalcogen column's level in the same units (the ladder's).
    metal_spread : float
        Relative spread of the metal columns' levels (the antisite rung is as wide).

    Returns
    -------
    probability : ndarray
        Per column, 0 outside the antisite band (:data:`LOW_OF_METAL` to :data:`HIGH_OF_METAL`
        of the metal level, :data:`MIN_SIGMAS` above the host), else the posterior of the metal
        rung against the host rung (equal priors).
    reason : str or None
        Why no column can be one: ``"contrast"`` (the metal too faint against the host column,
        :data:`MIN_CONTRAST`), ``"noise"`` (a metal column's level within :data:`MIN_SIGMAS`
        spreads of the host's: shot noise, or an unchosen alloy's upper rungs), ``"alloy"``
        (more than :data:`MAX_SHARE` of the columns in the band) or ``None``.
    """
    x = np.asarray(levels, float)
    p = np.zeros(len(x))
    finite = np.isfinite(x)
    if not (np.isfinite(metal_level) and np.isfinite(host_level) and host_level > 0
            and finite.any()):
        return p, "contrast"
    if metal_level < MIN_CONTRAST * host_level:
        return p, "contrast"
    # The host columns' spread from their upper half (every defect but this one lies below the
    # host level, and may be a quarter of the columns of a small field)
    upper = x[finite & (x >= host_level)]
    sd_host = max(robust_sd(upper, centre=host_level), 1e-3 * host_level)
    if host_level + MIN_SIGMAS * sd_host > metal_level:
        return p, "noise"
    sd_metal = float(np.hypot(sd_host, max(metal_spread, 0.0) * metal_level))
    band = (finite & (x >= LOW_OF_METAL * metal_level) & (x <= HIGH_OF_METAL * metal_level)
            & (x >= host_level + MIN_SIGMAS * sd_host))
    if band.sum() > MAX_SHARE * finite.sum():
        return p, "alloy"
    xb = x[band]
    log_metal = -0.5 * ((xb - metal_level) / sd_metal) ** 2 - np.log(sd_metal)
    log_host = -0.5 * ((xb - host_level) / sd_host) ** 2 - np.log(sd_host)
    p[band] = 1.0 / (1.0 + np.exp(np.clip(log_host - log_metal, -50, 50)))
    return p, None


def antisite_calls(chalcogen: Mapping[str, np.ndarray], levels: np.ndarray, metal_level: float,
                   host_level: float, metal_spread: float, material: Material,
                   substituents: tuple[str, ...], chosen: bool, threshold: float = 0.5
                   ) -> tuple[dict, str | None]:
    """The tiles' chalcogen columns that hold a metal atom, called the host's antisite class.

    Parameters
    ----------
    chalcogen : mapping
        Per tile, its chalcogen row's columns (``class``, ``confidence``, ``p_defect``, …).
    levels : ndarray
        Per tile, its chalcogen column's level (chalcogen units; NaN where the tile has none).
    metal_level, host_level, metal_spread : float
        See :func:`antisite_probability`.
    material : Material
        The host.
    substituents : tuple of str
        The chalcogen substituents chosen (a heavier one rules antisites out).
    chosen : bool
        Whether the user chose the antisites (else nothing is called; a sentence says where
        columns look like them).
    threshold : float
        The probability a column needs to be called one (the run's operating point for the
        class; 0.5 neutral).

    Returns
    -------
    chalcogen : dict
        With the antisite columns' ``class`` and ``confidence`` replaced (and ``p_defect`` at
        least that), and a ``p_<class>`` column (only when ``chosen``).
    message : str or None
        One sentence for the user, or ``None``.
    """
    name = antisite_class(material).name
    metal, pair = material.metal, f"{material.chalcogen}2"
    out = dict(chalcogen)
    heavier = HEAVIER_SUBSTITUENT.get(material.chalcogen)
    if heavier in substituents:
        if chosen:
            out[f"p_{name}"] = np.full(len(levels), np.nan)
            return out, (f"{metal} antisites ({name}) are not marked beside {heavier}: an {pair} "
                         f"column holding {heavier} can read as bright as one holding a {metal} "
                         f"atom.")
        return out, None
    p, reason = antisite_probability(levels, metal_level, host_level, metal_spread)
    call = p >= (threshold if chosen else 0.5)
    n = int(call.sum())
    if not chosen:
        if not n:
            return out, None
        return out, (f"{n} {pair} column{'s are' if n != 1 else ' is'} as bright as a {metal} "
                     f"column: a {metal} atom in {'each' if n != 1 else 'it'} (an antisite) — or "
                     f"{heavier}, where the layer holds some; choose {metal} among the substituents "
                     f"(its antisites) to mark {'them' if n != 1 else 'it'} as {name}.")
    out[f"p_{name}"] = p
    message = None
    if reason == "contrast":
        message = (f"{metal} antisites ({name}) cannot be told in this image: its {metal} "
                   f"columns are only {metal_level / max(host_level, 1e-6):.1f} times as bright "
                   f"as an {pair} column (at least {MIN_CONTRAST:g} needed).")
    elif reason == "noise":
        message = (f"{metal} antisites ({name}) cannot be told in this image: its {pair} "
                   f"columns spread too widely (noise, or a heavier substituent) to set a {metal} "
                   "atom apart.")
    elif reason == "alloy":
        message = (f"Too many {pair} columns are as bright as a {metal} column to be antisites "
                   f"(over {MAX_SHARE:.0%}): the layer holds a heavier substituent"
                   f"{f' ({heavier}?)' if heavier else ''}; none is marked {name}.")
    out["class"] = np.where(call, name, np.asarray(out["class"], object)).astype(object)
    out["confidence"] = np.where(call, p, out["confidence"])
    out["p_defect"] = np.where(call, np.maximum(p, out["p_defect"]), out["p_defect"])
    return out, message


__all__ = ["antisite_calls", "antisite_probability"]
