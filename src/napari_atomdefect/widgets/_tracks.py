"""A movie's Tracks layer kept drawing the tracks of its (corrected) defect calls."""

from __future__ import annotations

import weakref

import numpy as np

from ._common import real_layer

#: Points layers whose Tracks layer already follows them (one connection per pair).
_FOLLOWED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tracks_layer_of(viewer, points):
    """The Tracks layer drawn for a movie's detections layer ``points`` (a detection's or a
    reopened table's: both carry the same :data:`~.._layers.TRACK_KEY`), or ``None``."""
    from .._layers import TRACK_KEY

    key = ((getattr(points, "metadata", None) or {}).get("atomdefect", {})).get(TRACK_KEY)
    for layer in viewer.layers if key else ():
        meta = (getattr(layer, "metadata", None) or {}).get("atomdefect", {})
        if meta.get("kind") == "tracks" and meta.get(TRACK_KEY) == key:
            return layer
    return None


def follow_tracks(viewer, points, tracks) -> None:
    """Keep the Tracks layer ``tracks`` drawing the tracks of the calls of ``points`` as they are
    corrected: a track whose calls were deleted by hand had stayed drawn with no marker on it
    (a trial). A layer with no track of two frames left is hidden, and shown again when one
    comes back (Undo). Connecting the same pair twice does nothing."""
    from ..core.detect.movie import track_layer_data
    from ..core.io.table import table_from_points

    points, tracks = real_layer(points), real_layer(tracks)
    if _FOLLOWED.get(points) is tracks:
        return
    _FOLLOWED[points] = tracks
    hidden = [False]  # (hidden here for want of a track: shown again when one comes back)

    def redraw(event=None) -> None:
        action = str(getattr(event, "action", "")) if event is not None else ""
        if action.endswith("ing") or _FOLLOWED.get(points) is not tracks \
                or points not in viewer.layers or tracks not in viewer.layers \
                or "track_id" not in points.features:
            return
        now = track_layer_data(table_from_points(points.data, points.features, None))
        if len(now):
            if now.shape != tracks.data.shape or not np.array_equal(now, tracks.data):
                tracks.data = now
            if hidden[0]:
                tracks.visible, hidden[0] = True, False
        elif tracks.visible:  # (no track of two frames left: nothing to draw)
            tracks.visible, hidden[0] = False, True

    points.events.data.connect(redraw)
    points.events.features.connect(redraw)  # (Undo puts the track ids back after the data)
