"""Calibration of an alloy layer from its lattice: Vegard's law over the composition found.

Without a usable pixel size (none in the file, or one the lattice replaced), the lattice
calibrates the image with the host's lattice constant. An alloy's lattice constant lies between
its end members' (Vegard's law; WS2 0.3153 nm and WSe2 0.3282 nm differ by 4 %, WSe2 and 2H-WTe2
0.3551 nm by 8 %), so once the detection has counted the columns' alloying atoms (Se in a
sulfide, S or Te in a selenide), the pixel size is re-derived from the lattice constant of that
composition: the nm coordinates and the densities then follow the layer, not the host.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping

import pandas as pd

from ..lattice.lattice import Lattice
from ..materials.materials import (
    Material,
    end_member_lattice_constant,
    get_material,
    partner_material,
)

#: Least share of an alloying element's atoms for which the calibration is re-derived (below it
#: the change is under 0.1 %).
MIN_PARTNER_SHARE = 0.02


def partner_atoms(classes: Iterable[str], host: str | Material) -> int:
    """Number of the host's S/Se partner atoms that the column classes ``classes`` hold: one
    per ``D_X`` column, two per ``D2_X2`` column (0 for a host without a partner)."""
    partner = partner_material(host)
    return 0 if partner is None else alloy_atoms(classes, host).get(partner.chalcogen, 0)


def partner_share(sites: pd.DataFrame, host: str | Material) -> float:
    """Share of the chalcogen atoms of ``sites`` (a site table of detection) that are the host's
    S/Se partner: :func:`partner_atoms` over two per site."""
    chalcogen = sites[sites["sublattice"] == "chalcogen"]
    if chalcogen.empty:
        return 0.0
    return float(partner_atoms(chalcogen["class"], host) / (2 * len(chalcogen)))


def alloy_atoms(classes: Iterable[str], host: str | Material) -> dict[str, int]:
    """Alloying atoms that the column classes ``classes`` hold, per element (one per ``D_X``
    column, two per ``D2_X2``): the S/Se partner and, in a selenide, Te; none of O."""
    counts = Counter(str(c) for c in classes)
    return {d: int(n) for d, n in alloy_atom_weights(counts, host).items()}


def alloy_atom_weights(columns: Mapping[str, float], host: str | Material) -> dict[str, float]:
    """Alloying atoms per element that columns of each class hold, given ``columns`` (how many
    or what share of the columns are of each class name): one per ``D_X`` column, two per
    ``D2_X2``; the elements that form an alloy with ``host`` only."""
    mat = get_material(host)
    x = mat.chalcogen
    return {d: float(columns.get(f"{d}_{x}", 0) + 2 * columns.get(f"{d}2_{x}2", 0))
            for d in ("O", "S", "Se", "Te") if end_member_lattice_constant(mat, d) is not None}


def alloy_lattice_constant(host: str | Material, shares: dict[str, float]) -> float:
    """Lattice constant (nm) of ``host`` with ``shares`` of its chalcogen atoms replaced by
    alloying elements (Vegard's law over every end member; an element that forms no alloy with
    ``host`` counts for nothing)."""
    mat = get_material(host)
    a = float(mat.a_nm)
    left = 1.0
    for d, share in shares.items():
        end = end_member_lattice_constant(mat, d)
        if end is None:
            continue
        share = min(max(float(share), 0.0), left)
        left -= share
        a += share * (end - mat.a_nm)
    return a


def vegard_lattice_constant(host: str | Material, share: float) -> float:
    """Lattice constant (nm) of ``host`` with ``share`` of its chalcogen atoms replaced by its
    S/Se partner (Vegard's law; the host's own when it has no partner)."""
    partner = partner_material(host)
    if partner is None:
        return float(get_material(host).a_nm)
    return alloy_lattice_constant(host, {partner.chalcogen: share})


#: Words of the message of a Vegard calibration (:func:`vegard_calibration`).
VEGARD_NOTE = "with Vegard's law"


def vegard_calibration(lattice: Lattice, sites: pd.DataFrame) -> Lattice:
    """``lattice`` with its pixel size re-derived from the alloy's lattice constant.

    Only a lattice calibrated from the lattice constant is changed (a pixel size from the file
    or typed by the user is kept) — the host's, or an earlier lattice calibration of the image
    (the Detect dock's, given back to a movie's frames: a movie of a WS2 + 22 % Se layer had
    kept the host's 0.00869 nm/px where each of its frames read alone took Vegard's 0.00877) —
    and only by the alloying elements (the S/Se partner, Te in a selenide) of which at least
    :data:`MIN_PARTNER_SHARE` of the chalcogen atoms are; the message says what was done.
    """
    mat = lattice.material
    if lattice.calibration != "lattice":
        return lattice
    chalcogen = sites[sites["sublattice"] == "chalcogen"]
    n_atoms = 2 * len(chalcogen)
    shares = {d: n / n_atoms for d, n in alloy_atoms(chalcogen["class"], mat).items()
              if n_atoms and n / n_atoms >= MIN_PARTNER_SHARE}
    if not shares:
        return lattice
    a_nm = alloy_lattice_constant(mat, shares)
    px = a_nm / lattice.a_px
    if abs(px - lattice.pixel_size_nm) <= 1e-9 * px:  # (applied already)
        return lattice
    ends = " and ".join(f"{_end_name(mat, d)} {end_member_lattice_constant(mat, d):.4f}"
                        for d in shares)
    what = " and ".join(f"{share:.0%} {d}" for d, share in shares.items())
    note = (f"Pixel size calibrated from the lattice {VEGARD_NOTE} for {what} "
            f"(a = {a_nm:.4f} nm between {mat.name} {mat.a_nm:.4f} and {ends} nm): "
            f"{px:.5f} nm/px.")
    messages = [m for m in lattice.messages if not m.startswith("Pixel size calibrated from")]
    return dataclasses.replace(lattice, pixel_size_nm=float(px), pixel_size_lattice_nm=float(px),
                               messages=messages + [note])


def _end_name(host: Material, substituent: str) -> str:
    """Name of the end member of ``host``'s alloy with ``substituent`` (WSe2, 2H-WTe2)."""
    partner = partner_material(host)
    if partner is not None and partner.chalcogen == substituent:
        return partner.name
    return f"2H-{host.metal}{substituent}2"


__all__ = ["VEGARD_NOTE", "alloy_atom_weights", "alloy_atoms", "alloy_lattice_constant", "partner_atoms",
           "partner_share", "vegard_calibration", "vegard_lattice_constant"]
