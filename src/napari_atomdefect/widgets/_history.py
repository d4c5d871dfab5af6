"""Undo of the hand edits of a detections layer (napari's Points layers have no undo).

Each edit — points added, deleted or moved, classes set — pushes the layer's state before it
(positions, features, symbols, sizes); :meth:`EditHistory.undo` puts the last one back. A drag
makes many small moves: those of one selection within :data:`MOVE_COALESCE_S` seconds of each
other are one edit.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Edits kept for undo.
MAX_UNDO = 200
#: Moves of the same points closer in time than this are one drag.
MOVE_COALESCE_S = 1.0


@dataclass
class _State:
    data: np.ndarray
    features: pd.DataFrame
    symbol: np.ndarray
    size: np.ndarray


class EditHistory:
    """The undo stack of one Points layer.

    Parameters
    ----------
    layer : napari.layers.Points
        The layer whose edits are recorded (held weakly).
    """

    def __init__(self, layer) -> None:
        self._layer = weakref.ref(layer)
        self._undo: list[_State] = []
        self._quiet = 0
        self._last_move: tuple[tuple, float] | None = None
        self._state = self._snapshot(layer)

    @staticmethod
    def _snapshot(layer) -> _State:
        return _State(data=np.array(layer.data, copy=True), features=layer.features.copy(),
                      symbol=np.asarray(layer.symbol, dtype=object).copy(),
                      size=np.asarray(layer.size, float).copy())

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Changes made inside are part of the edit being recorded (a new point's class and
        snapping), not edits of their own."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    @property
    def is_quiet(self) -> bool:
        """Whether the layer is being changed as part of an edit already recorded (or by
        :meth:`undo`)."""
        return self._quiet > 0

    def resync(self) -> None:
        """Take the layer's present state as the one the next edit starts from (it changed
        while no one recorded: the undo stack then skips those changes)."""
        layer = self._layer()
        if layer is not None:
            self._state = self._snapshot(layer)
        self._last_move = None

    def moved_since(self, layer) -> tuple[int, ...]:
        """Indices of the points of ``layer`` whose positions differ from the state the last
        recorded edit left (none when points were added or removed since)."""
        before = self._state.data
        now = np.asarray(layer.data)
        if before.shape != now.shape:
            return ()
        return tuple(int(i) for i in np.flatnonzero((before != now).any(axis=1)))

    def amend(self) -> None:
        """Take the layer's present state as the end of the last edit (changes made within
        :meth:`quiet` after it was recorded, e.g. dragged points put onto their sites)."""
        layer = self._layer()
        if layer is not None:
            self._state = self._snapshot(layer)

    def edited(self, moved: tuple | None = None) -> None:
        """Record that the layer was just edited (its state before goes on the undo stack).

        ``moved``: the indices of points being dragged; a move of the same points soon after
        the last one continues that edit.
        """
        layer = self._layer()
        if layer is None or self._quiet:
            return
        now = time.monotonic()
        continuing = (moved is not None and self._last_move is not None
                      and self._last_move[0] == moved
                      and now - self._last_move[1] < MOVE_COALESCE_S)
        self._last_move = (moved, now) if moved is not None else None
        if not continuing:
            self._undo.append(self._state)
            del self._undo[:-MAX_UNDO]
        self._state = self._snapshot(layer)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> bool:
        """Put the layer back as it was before its last edit; ``False`` when there is none."""
        layer = self._layer()
        if layer is None or not self._undo:
            return False
        state = self._undo.pop()
        # The same points (a class set, a move undone): they stay selected, so that the next
        # key or Ctrl+Z acts on them as before; points added or deleted: no selection.
        keep = set(layer.selected_data) if len(state.data) == len(layer.data) else set()
        with self.quiet():
            layer.selected_data = set()
            layer.data = state.data
            layer.features = state.features
            if len(state.symbol) == len(state.data):
                layer.symbol = state.symbol
            if len(state.size) == len(state.data):
                layer.size = state.size
            layer.refresh_colors()
            layer.selected_data = keep
        self._state = self._snapshot(layer)
        self._last_move = None
        return True
