"""The per-site table of a detection, assembled with array operations (no Python loop per site).

Each tile classifies its own cell's metal and chalcogen site; a tile contributes a metal row if
its metal site is in the lattice (and in the field), then a chalcogen row if its chalcogen site is.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..lattice.lattice import Lattice

#: Columns of the per-site table, in order; further per-site columns may follow.
SITE_COLUMNS = ("y_px", "x_px", "sublattice", "class", "confidence", "p_defect")


def site_table(lattice: Lattice, metal_rows: np.ndarray, chalcogen_rows: np.ndarray,
               metal: Mapping[str, np.ndarray], chalcogen: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per classified site, in tile order (each tile's metal row before its chalcogen row).

    Parameters
    ----------
    lattice : Lattice
        The lattice the tiles were cut from (site positions).
    metal_rows, chalcogen_rows : ndarray
        ``(N,)`` per tile: the row of its metal / chalcogen site in ``lattice.metal_sites_px`` /
        ``lattice.chalcogen_sites_px``, ``-1`` where the tile does not classify that site.
    metal, chalcogen : mapping of str to ndarray
        Per tile, the columns of its metal / chalcogen row (at least ``class``, ``confidence`` and
        ``p_defect``; any further keys, the same in both, become further columns).

    Returns
    -------
    DataFrame
        :data:`SITE_COLUMNS` and the further columns.
    """
    metal_rows = np.asarray(metal_rows, np.int64)
    chalcogen_rows = np.asarray(chalcogen_rows, np.int64)
    n = len(metal_rows)
    keep = np.stack([metal_rows >= 0, chalcogen_rows >= 0], axis=1).ravel()  # tile-major order

    def interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        dtype: type | np.dtype
        if a.dtype.kind in "USO" or b.dtype.kind in "USO":
            dtype = object
        else:  # floats as float64, like Python floats
            dtype = np.result_type(a, b, np.float64) if a.dtype.kind == "f" else np.result_type(a, b)
        out = np.empty((n, 2), dtype)
        out[:, 0], out[:, 1] = a, b
        return out.ravel()[keep]

    pos = np.zeros((n, 2, 2))
    if len(lattice.metal_sites_px):
        pos[:, 0] = lattice.metal_sites_px[np.maximum(metal_rows, 0)]
    if len(lattice.chalcogen_sites_px):
        pos[:, 1] = lattice.chalcogen_sites_px[np.maximum(chalcogen_rows, 0)]
    pos = pos.reshape(-1, 2)[keep]
    columns = {"y_px": pos[:, 0], "x_px": pos[:, 1],
               "sublattice": interleave(np.full(n, "metal", object), np.full(n, "chalcogen", object))}
    extra = [k for k in metal if k not in ("class", "confidence", "p_defect")]
    for key in ("class", "confidence", "p_defect", *extra):
        columns[key] = interleave(metal[key], chalcogen[key])
    return pd.DataFrame(columns)
