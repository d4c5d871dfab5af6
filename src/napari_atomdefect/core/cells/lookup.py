"""Vectorised lookup of cell indices ``(i, j)``: which row of a site table holds each cell."""

from __future__ import annotations

import numpy as np


class CellLookup:
    """Rows of a ``(N, 2)`` array of integer cell indices, found for many cells at once.

    The numpy counterpart of ``{tuple(ij): k for k, ij in enumerate(index)}``: cells are encoded
    as one integer each and looked up with a binary search, with no Python loop per cell.

    Parameters
    ----------
    index : ndarray
        ``(N, 2)`` integer cell indices (unique, as in a lattice; of a repeated cell one of its
        rows is returned).
    """

    def __init__(self, index: np.ndarray):
        idx = np.asarray(index, np.int64).reshape(-1, 2)
        self._lo = idx.min(0) if len(idx) else np.zeros(2, np.int64)
        self._span = (idx.max(0) - self._lo + 1) if len(idx) else np.ones(2, np.int64)
        keys = self._keys(idx)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    def _keys(self, idx: np.ndarray) -> np.ndarray:
        rel = idx - self._lo
        return rel[:, 0] * self._span[1] + rel[:, 1]

    def rows(self, cells: np.ndarray) -> np.ndarray:
        """Row of each cell in the index, ``-1`` where it is absent.

        Parameters
        ----------
        cells : ndarray
            ``(M, 2)`` integer cell indices.

        Returns
        -------
        ndarray
            ``(M,)`` int64 rows.
        """
        q = np.asarray(cells, np.int64).reshape(-1, 2)
        out = np.full(len(q), -1, np.int64)
        if not len(q) or not len(self._sorted):
            return out
        rel = q - self._lo
        ok = ((rel >= 0) & (rel < self._span)).all(1)
        keys = self._keys(q[ok])
        pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        hit = self._sorted[pos] == keys
        found = np.full(len(keys), -1, np.int64)
        found[hit] = self._order[pos[hit]]
        out[ok] = found
        return out
