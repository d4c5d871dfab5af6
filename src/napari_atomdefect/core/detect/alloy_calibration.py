"""Calibration of an alloy layer from its lattice: Vegard's law over the composition found.

Without a usable pixel size (none in the file, or one the lattice replaced), the lattice
calibrates the image with the host's lattice constant. An S/Se alloy's lattice constant lies
between its two end members' (Vegard's law; WS2 0.3153 nm and WSe2 0.3282 nm differ by 4 %), so
once the detection has counted the columns' partner chalcogen atoms (Se in a sulfide, S in a
selenide), the pixel size is re-derived from the lattice constant of that composition: the nm
coordinates and the densities then follow the layer, not the host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pandas as pd

from ..lattice.lattice import Lattice
from ..materials.materials import Material, get_material, partner_material

#: Least share of partner atoms for which the calibration is re-derived (below it the change is
#: under 0.1 %).
MIN_PARTNER_SHARE = 0.02


def partner_atoms(classes: Iterable[str], host: str | Material) -> int:
    """Number of the host's S/Se partner atoms that the column classes ``classes`` hold: one
    per ``D_X`` column, two per ``D2_X2`` column (0 for a host without a partner)."""
    mat = get_material(host)
    partner = partner_material(mat)
    if partner is None:
        return 0
    d, x = partner.chalcogen, mat.chalcogen
    calls = [str(c) for c in classes]
    return calls.count(f"{d}_{x}") + 2 * calls.count(f"{d}2_{x}2")


def partner_share(sites: pd.DataFrame, host: str | Material) -> float:
    """Share of the chalcogen atoms of ``sites`` (a site table of detection) that are the host's
    S/Se partner: :func:`partner_atoms` over two per site."""
    chalcogen = sites[sites["sublattice"] == "chalcogen"]
    if chalcogen.empty:
        return 0.0
    return float(partner_atoms(chalcogen["class"], host) / (2 * len(chalcogen)))


def vegard_lattice_constant(host: str | Material, share: float) -> float:
    """Lattice constant (nm) of ``host`` with ``share`` of its chalcogen atoms replaced by its
    S/Se partner (Vegard's law; the host's own when it has no partner)."""
    mat = get_material(host)
    partner = partner_material(mat)
    if partner is None:
        return float(mat.a_nm)
    share = min(max(float(share), 0.0), 1.0)
    return float((1 - share) * mat.a_nm + share * partner.a_nm)


#: Words of the message of a Vegard calibration (:func:`vegard_calibration`).
VEGARD_NOTE = "with Vegard's law"


def vegard_calibration(lattice: Lattice, sites: pd.DataFrame) -> Lattice:
    """``lattice`` with its pixel size re-derived from the alloy's lattice constant.

    Only a lattice calibrated from the host's lattice constant is changed (a pixel size from the
    file or typed by the user is kept), and only when at least :data:`MIN_PARTNER_SHARE` of the
    chalcogen atoms are the partner; the message says what was done.
    """
    mat = lattice.material
    partner = partner_material(mat)
    host_px = mat.a_nm / lattice.a_px
    if (partner is None or lattice.calibration != "lattice"
            or abs(lattice.pixel_size_nm - host_px) > 1e-6 * host_px):
        return lattice
    share = partner_share(sites, mat)
    if share < MIN_PARTNER_SHARE:
        return lattice
    a_nm = vegard_lattice_constant(mat, share)
    px = a_nm / lattice.a_px
    note = (f"Pixel size calibrated from the lattice {VEGARD_NOTE} for {share:.0%} "
            f"{partner.chalcogen} (a = {a_nm:.4f} nm between {mat.name} {mat.a_nm:.4f} and "
            f"{partner.name} {partner.a_nm:.4f} nm): {px:.5f} nm/px.")
    messages = [m for m in lattice.messages if not m.startswith("Pixel size calibrated from")]
    return dataclasses.replace(lattice, pixel_size_nm=float(px), pixel_size_lattice_nm=float(px),
                               messages=messages + [note])


__all__ = ["VEGARD_NOTE", "partner_atoms", "partner_share", "vegard_calibration",
           "vegard_lattice_constant"]
