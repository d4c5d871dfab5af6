"""Review dock widget: add, delete and reclassify defects, hide low-confidence ones, export CSV."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from .._layers import CALLED_AT, calls_gone, layer_classes
from ..core.io.class_style import class_symbol
from ..core.materials.columns import LEGACY_CLASSES, class_site
from ._common import (
    ClassLegend,
    WrappingLabel,
    follow_layers,
    is_reference_layer,
    layer_by_name,
    layer_combo,
    real_layer,
    same_layer,
    scrolling_layout,
    show_in_dock,
)
from ._history import EditHistory
from ._tracks import follow_tracks, tracks_layer_of

if TYPE_CHECKING:  # pragma: no cover
    import napari


def is_defect_layer(layer) -> bool:
    """A Points layer whose features carry a defect ``class``."""
    from napari.layers import Points

    return isinstance(layer, Points) and "class" in layer.features.columns


def layer_meta(layer) -> dict:
    """The writer's ``meta`` for a layer (features, scale, units, metadata)."""
    return {"features": layer.features, "scale": tuple(layer.scale),
            "units": tuple(str(u) for u in layer.units), "metadata": layer.metadata}


def marker_size(layer) -> float:
    """The normal marker size of a defect layer (data pixels): 0.4 lattice constants, else the
    layer's size for new points."""
    a_px = (layer.metadata or {}).get("atomdefect", {}).get("a_px")
    return 0.4 * float(a_px) if a_px else float(layer.current_size)


def corrections_by_hand(layer) -> int:
    """How many points of a detections layer were added or corrected by hand (source manual),
    and how many of its calls were deleted (:func:`~.._layers.calls_gone`: a movie's track
    deleted by a trial left no manual row, and the next run took the docks off the layer).

    A call dragged to another place is one correction, not two: its old place is gone *and*
    the point is manual (the count had said two). So in each frame, as many gone places as
    there are manual points off every recorded place count as calls moved, not deleted (a
    call deleted and another added in the same frame count as one moved)."""
    gone = calls_gone(layer)
    return manual_calls(layer) + len(gone) - _moved_calls(layer, gone)


def _moved_calls(layer, gone: np.ndarray) -> int:
    """How many of the ``gone`` places (:func:`~.._layers.calls_gone`) are calls moved: per
    frame (every coordinate but the last two), the fewer of the gone places and of the manual
    points off every recorded place."""
    if not len(gone) or "source" not in layer.features:
        return 0
    data = np.asarray(layer.data, float)
    manual = data[(layer.features["source"].astype(str) == "manual").to_numpy()]
    at = np.asarray(layer.metadata.get("atomdefect", {}).get(CALLED_AT, []), float)
    if len(at) and len(manual) and at.shape[1] == manual.shape[1]:
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(at).query(manual)
        manual = manual[dist > 1e-6]
    if not len(manual) or manual.shape[1] != gone.shape[1]:
        return 0
    frames_gone = [tuple(r) for r in gone[:, :-2]]
    frames_new = [tuple(r) for r in manual[:, :-2]]
    return sum(min(frames_gone.count(f), frames_new.count(f)) for f in set(frames_gone))


def manual_calls(layer) -> int:
    """How many points of a detections layer were added or corrected by hand (source manual)."""
    features = layer.features
    return int((features["source"].astype(str) == "manual").sum()) if "source" in features else 0


def follows_new_detections(current, added) -> bool:
    """Whether a dock showing the layer ``current`` moves to the detections layer ``added``: a
    run's detections, not a reference table, and not away from a layer holding corrections by
    hand (Review and Statistics follow the same rule, so they stay on one layer)."""
    if added is None or is_reference_layer(added):
        return False
    return current is None or current is added or not corrections_by_hand(current)


def set_class(layer, indices, cls: str, new_points: bool = False) -> None:
    """Give the points ``indices`` of ``layer`` the class ``cls`` (a human decision: manual).

    ``new_points``: the points were just added by hand, so they belong to no track and no
    grain either (``track_id`` and ``grain`` -1), whatever napari copied into them from a
    selected point.
    """
    idx = np.asarray(sorted(indices), int)
    if idx.size == 0:
        return
    features = layer.features.copy()
    for col in ("class", "source"):
        if col in features and not isinstance(features[col].dtype, pd.CategoricalDtype):
            features[col] = features[col].astype("category")
    if "class" in features and cls not in features["class"].cat.categories:
        features["class"] = features["class"].cat.add_categories([cls])
    if "source" in features and "manual" not in features["source"].cat.categories:
        features["source"] = features["source"].cat.add_categories(["manual"])
    features.loc[idx, "class"] = cls
    if "source" in features:
        features.loc[idx, "source"] = "manual"
    if "confidence" in features:
        features.loc[idx, "confidence"] = 1.0
    for col in ("track_id", "grain"):
        if new_points and col in features:
            features.loc[idx, col] = -1
    layer.features = features
    symbols = np.asarray(layer.symbol, dtype=object).copy()
    if symbols.shape == (len(layer.data),):
        symbols[idx] = class_symbol(cls)  # napari turns names into its Symbol
        layer.symbol = symbols
    layer.refresh_colors()


def mark_moved(layer, indices) -> None:
    """Points of ``layer`` moved by hand keep their class and become the user's calls (source
    ``manual``, confidence 1: a trial's dragged call was exported as the model's, at 0.97)."""
    if "source" not in layer.features:
        return
    source = layer.features["source"].astype(str).to_numpy()
    classes = layer.features["class"].astype(str).to_numpy()
    todo = [int(i) for i in indices if 0 <= int(i) < len(source) and source[int(i)] != "manual"]
    for cls in sorted({classes[i] for i in todo}):
        set_class(layer, [i for i in todo if classes[i] == cls], cls)


#: A drag has ended when no move came for this long (ms): its points then go onto their sites.
DRAG_END_MS = 300
#: A point added by hand moves onto the nearest lattice site of its class's sublattice when one
#: lies within this many lattice constants (a click is rarely on the column's centre; the
#: nearest columns of the other sublattice are 0.58 a away, of the same one 1 a).
SNAP_A = 0.3
#: *Next low-confidence* zooms in (never out) so that about this many lattice constants span the
#: canvas: enough to see the call's column against its neighbours.
REVIEW_FIELD_CELLS = 8.0


def _site_layers(viewer, layer) -> list:
    """The sites layers of the image the detections ``layer`` belongs to (same dimensions)."""
    meta = layer.metadata.get("atomdefect", {})
    return [la for la in viewer.layers
            if la.metadata.get("atomdefect", {}).get("kind") == "lattice_sites"
            and la.metadata.get("atomdefect", {}).get("image") == meta.get("image")
            and la.data.shape[1:] == layer.data.shape[1:]]


def _nearest_site(sites: list, point: np.ndarray, bound: float, sublattice: str | None = None
                  ) -> tuple[np.ndarray, str] | None:
    """Position and sublattice of the site of the ``sites`` layers nearest ``point`` (of its
    frame, for a stack) within ``bound`` pixels, on ``sublattice`` only if given; ``None``
    when there is none."""
    best, best_d = None, bound
    for la in sites:
        cand = np.asarray(la.data, float)
        which = np.asarray(la.features["sublattice"]).astype(str)
        keep = np.ones(len(cand), bool) if sublattice is None else which == sublattice
        if len(point) == 3:  # a stack: the sites of the point's frame
            keep &= np.isclose(cand[:, 0], point[0])
        cand, which = cand[keep], which[keep]
        if not len(cand):
            continue
        d = np.hypot(*(cand[:, -2:] - point[-2:]).T)
        k = int(np.argmin(d))
        if d[k] < best_d:
            best, best_d = (cand[k], str(which[k])), d[k]
    return best


def on_other_sublattice(viewer, layer, indices, cls: str) -> list[int]:
    """Those of the points ``indices`` whose nearest lattice site (within :data:`SNAP_A`
    lattice constants) is on the other sublattice than ``cls``'s: a chalcogen class on a metal
    column, or a metal vacancy on a chalcogen column (a click beside the intended column)."""
    meta = layer.metadata.get("atomdefect", {})
    a_px, site = meta.get("a_px"), class_site(cls)
    if not a_px or site is None:
        return []
    sites = _site_layers(viewer, layer)
    data = np.asarray(layer.data, float)
    out = []
    for i in indices:
        nearest = _nearest_site(sites, data[i], SNAP_A * float(a_px))
        if nearest is not None and nearest[1] != site:
            out.append(int(i))
    return out


def snap_to_sites(viewer, layer, indices, cls: str) -> int:
    """Move the points ``indices`` of the detections ``layer`` onto the nearest site of the
    lattice found for its image (its sites layer, same frame), on the sublattice of ``cls`` (the
    metal's for a metal vacancy, the chalcogen's otherwise), where one lies within
    :data:`SNAP_A` lattice constants. Returns how many moved (none without a sites layer: a
    reopened CSV)."""
    meta = layer.metadata.get("atomdefect", {})
    a_px, site = meta.get("a_px"), class_site(cls)
    if not a_px or site is None or not len(indices):
        return 0
    sites = _site_layers(viewer, layer)
    data = np.asarray(layer.data, float).copy()
    moved = 0
    for i in indices:
        nearest = _nearest_site(sites, data[i], SNAP_A * float(a_px), site)
        if nearest is not None:
            data[i] = nearest[0]
            moved += 1
    if moved:
        layer.data = data
    return moved


#: A point added within this many lattice constants of an existing call is a new call for the
#: same column and replaces it (one call per column; the other sublattice's columns are 0.58 a
#: away).
SAME_COLUMN_A = 0.25


def _same_frame(data: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which rows of ``data`` lie in the frame of ``point`` (all of them for 2-D points)."""
    if data.shape[1] == 3:
        return np.isclose(data[:, 0], point[0])
    return np.ones(len(data), bool)


def calls_on_same_column(layer, indices) -> list[int]:
    """The points of ``layer`` other than ``indices`` within :data:`SAME_COLUMN_A` lattice
    constants of one of them (same frame): earlier calls of the column a new call was put on."""
    a_px = layer.metadata.get("atomdefect", {}).get("a_px")
    data = np.asarray(layer.data, float)
    bound = SAME_COLUMN_A * float(a_px) if a_px else 0.25 * marker_size(layer) / 0.4
    new = set(int(i) for i in indices)
    out: set[int] = set()
    for i in new:
        near = _same_frame(data, data[i]) & (np.hypot(*(data[:, -2:] - data[i, -2:]).T) < bound)
        out |= {int(k) for k in np.flatnonzero(near) if int(k) not in new}
    return sorted(out)


def take_over_column(layer, added, replaced) -> None:
    """Give each call just put on a called column the track and grain of the call it replaces
    (the column's defect, reclassified by a click: a movie's track had lost that frame, as
    *Set class of selected* keeps it)."""
    columns = [c for c in ("track_id", "grain") if c in layer.features]
    if not columns or not added:
        return
    data = np.asarray(layer.data, float)
    features = layer.features.copy()
    new = np.asarray(sorted(int(i) for i in added), int)
    for r in replaced:
        here = new[_same_frame(data[new], data[r])]
        if len(here):
            i = int(here[np.argmin(np.hypot(*(data[here, -2:] - data[r, -2:]).T))])
            features.loc[i, columns] = features.loc[r, columns].to_numpy()
    layer.features = features


def image_shape(viewer, layer) -> tuple[int, int] | None:
    """Rows and columns of the image the detections ``layer`` belongs to (``None`` when it is
    not in the viewer)."""
    name = layer.metadata.get("atomdefect", {}).get("image")
    if name is None or name not in viewer.layers:
        return None
    shape = viewer.layers[name].data.shape
    return int(shape[-2]), int(shape[-1])


def outside_image(viewer, layer, indices) -> list[int]:
    """Those of the points ``indices`` that lie outside the pixels of the layer's image."""
    shape = image_shape(viewer, layer)
    if shape is None:
        return []
    data = np.asarray(layer.data, float)
    return [int(i) for i in indices
            if not (np.all(data[i, -2:] >= -0.5) and np.all(data[i, -2:] <= np.subtract(shape, 0.5)))]


def _alive(ref):
    """The widget a weak reference holds, or ``None`` once it or its Qt object is gone (a
    layer keeps its key bindings after the dock is closed)."""
    widget = ref()
    if widget is None:
        return None
    try:
        widget.objectName()  # (raises once the widget's Qt object is deleted with its dock)
    except RuntimeError:
        return None
    return widget


def _while_alive(widget, handler):
    """A layer key binding that calls ``handler(widget, layer)`` while the dock widget lives
    (a binding holding the widget would reach a deleted Qt object; nothing once it is gone)."""
    ref = weakref.ref(widget)

    def bound(layer):
        alive = _alive(ref)
        if alive is not None:
            handler(alive, layer)
    return bound


#: The undo stack of each detections layer edited in a Review dock (layers held weakly).
EDIT_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _image_seen_note(viewer, layer, world: np.ndarray) -> str:
    """A sentence when the image the calls of ``layer`` were made on is not what the canvas
    shows at ``world``: hidden, or under another visible image there (images open together are
    drawn at one origin: a trial reviewed one image's calls over another's columns)."""
    from ._common import is_image_layer

    name = layer.metadata.get("atomdefect", {}).get("image")
    layers = list(viewer.layers)
    own = next((la for la in layers if la.name == name and is_image_layer(la)), None)
    if own is None:
        return ""
    if not own.visible:
        return f" {own.name}, the image of these calls, is hidden: show it to see the columns."
    above = []
    for other in layers[layers.index(own) + 1:]:
        if not (is_image_layer(other) and other.visible and other.opacity > 0.5):
            continue
        low, high = (np.asarray(v, float)[-2:] for v in other.extent.world)
        if np.all(world[-2:] >= low) and np.all(world[-2:] <= high):
            above.append(other.name)
    if not above:
        return ""
    return (f" {', '.join(above)} {'is' if len(above) == 1 else 'are'} drawn over {own.name} "
            "here: hide it to see these calls' columns.")


def _remove_keeping_indices(layer, remove: list[int], *indices: list[int]) -> list[list[int]]:
    """Remove the points ``remove`` of ``layer``; each list of ``indices`` (of other points)
    re-numbered as the layer now counts them (an index that was removed is dropped)."""
    gone = set(remove)
    keep = [i for i in range(len(layer.data)) if i not in gone]
    layer.selected_data = set()
    layer.remove(remove)
    shift = {old: new for new, old in enumerate(keep)}
    return [[shift[i] for i in ids if i in shift] for ids in indices]


def paste_calls(layer) -> list[int]:
    """Paste the points copied from ``layer`` (napari's Ctrl+C) into the frame shown, as
    hand-made calls of their copied classes (:func:`set_class`: source ``manual``,
    confidence 1, in no track or grain); their indices.

    napari's own paste emits no data event (nothing would record it) and fails on a movie's
    3-D layer (napari 0.9); this one adds the points with :meth:`Points.add`.
    """
    clip = getattr(layer, "_clipboard", None) or {}
    if len(clip.get("data", ())) == 0 or "features" not in clip:
        return []
    data = np.array(clip["data"], float)
    if data.shape[1] > 2:  # to the frame shown, from the one copied in
        hidden = list(layer._slice_input.not_displayed)
        now = np.asarray(layer._data_slice.point, float)
        then = np.asarray(clip["indices"].point, float)
        data[:, hidden] += (now - then)[hidden]
    classes = clip["features"]["class"].astype(str).to_numpy()
    before = len(layer.data)
    layer.add(data)
    new = list(range(before, len(layer.data)))
    for cls in sorted(set(classes)):
        set_class(layer, [i for i, c in zip(new, classes, strict=True) if c == cls], cls,
                  new_points=True)
    return new


def _paste_binding(widget):
    """A layer binding of Ctrl+V: :meth:`ReviewWidget.paste` while the dock widget lives,
    :func:`paste_calls` once it is closed."""
    ref = weakref.ref(widget)

    def bound(layer):
        alive = _alive(ref)
        if alive is None:
            paste_calls(layer)
        else:
            alive.paste(layer)
    return bound


class _EditNote(WrappingLabel):
    """The Review dock's message line: what an edit did, scrolled into view whenever it says
    something (a trial saw 5 of its 18 px in a dock squeezed by Detect's warnings above and
    Statistics below)."""

    def __init__(self, owner: QWidget) -> None:
        self._owner = weakref.ref(owner)
        super().__init__("")

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        owner = self._owner()
        if owner is not None and text:
            show_in_dock(owner, self)


class ReviewWidget(QWidget):
    """Correct a detections layer by hand and export it."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._watched = None  # the layer whose data events mark added points as manual
        self._last_reviewed: tuple | None = None  # (confidence, row, col) of the last *Next*
        # (kept with the layers, not the dock: a Review dock closed and opened again had lost
        # every edit's undo — a trial)
        self._histories = EDIT_HISTORIES
        # A drag is many moves; once they stop, the points dragged go onto their sites.
        self._dragged: tuple[object, set[int]] | None = None
        self._drag_end = QTimer(self)
        self._drag_end.setSingleShot(True)
        self._drag_end.setInterval(DRAG_END_MS)
        self._drag_end.timeout.connect(self.settle_moved)
        self.layer_combo = layer_combo()
        self.class_combo = QComboBox()
        self.class_combo.addItems(list(LEGACY_CLASSES))  # until a layer says which it has
        self._bound: tuple[object, tuple[str, ...]] | None = None  # (layer, keys bound)
        self.add_button = QPushButton("Add defects (click)")
        self.add_button.setCheckable(True)
        self.set_button = QPushButton("Set class of selected")
        self.delete_button = QPushButton("Delete selected")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last edit of the detections (Ctrl+Z on the layer)")
        self.undo_button.setEnabled(False)
        self.next_button = QPushButton("Next low-confidence")
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 100)
        self.threshold_label = QLabel("show all")
        # (movies: a defect seen in fewer frames is hidden, as one below the confidence is)
        self.min_frames = QSpinBox()
        self.min_frames.setRange(1, 1000)
        self.min_frames.setSuffix(" frame")  # (1 frame; the suffix follows the value)
        self.min_frames.valueChanged.connect(
            lambda n: self.min_frames.setSuffix(" frame" if n == 1 else " frames"))
        self.min_frames.setToolTip("Hide defects whose track spans fewer frames: at a low dose "
                                   "per frame most false calls are seen in one frame only.")
        self.export_button = QPushButton("Export CSV…")
        self.info = _EditNote(self)

        form = QFormLayout()
        form.addRow("Detections", self.layer_combo)
        form.addRow("Class", self.class_combo)
        thr = QHBoxLayout()
        thr.addWidget(self.threshold, 1)
        thr.addWidget(self.threshold_label)
        form.addRow("Hide below", thr)
        form.addRow("Seen in at least", self.min_frames)
        self._min_frames_row = (form.labelForField(self.min_frames), self.min_frames)
        for w in self._min_frames_row:  # (a movie's row: shown once a movie's layer is chosen)
            if w is not None:
                w.setVisible(False)
        row1 = QHBoxLayout()
        row1.addWidget(self.add_button)
        row1.addWidget(self.set_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.delete_button)
        row2.addWidget(self.undo_button)
        row3 = QHBoxLayout()
        row3.addWidget(self.next_button)
        row3.addWidget(self.export_button)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row3)
        # What an edit did, right under the buttons that made it (under the legend it was cut
        # to a sliver when Statistics was docked below: a trial never saw "replaced" or "Saved").
        layout.addWidget(self.info)
        self.keys_label = QLabel("")
        self.keys_label.setWordWrap(True)
        self.legend = ClassLegend(per_row=3, keys=True)
        layout.addWidget(self.keys_label)
        layout.addWidget(self.legend)
        self._show_classes(LEGACY_CLASSES)
        self._show_no_layer()
        layout.addStretch(1)

        self.class_combo.currentTextChanged.connect(self._class_changed)
        self.add_button.toggled.connect(self._toggle_add)
        self.set_button.clicked.connect(self.set_selected_class)
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button.clicked.connect(lambda *_: self.undo())
        self.next_button.clicked.connect(self.next_low_confidence)
        self.threshold.valueChanged.connect(self.apply_threshold)
        self.min_frames.valueChanged.connect(self.apply_threshold)
        self.export_button.clicked.connect(self._export_dialog)
        self._refresh_layers = follow_layers(self.viewer, self.layer_combo, is_defect_layer,
                                             self._layer_changed, follow_new=self._follows)

    # ------------------------------------------------------------------ layers
    def _follows(self, added) -> bool:
        """:func:`follows_new_detections`, saying where the new detections are when the review
        stays (a new run must not take the place of the table being corrected, nor be saved
        over it unnoticed)."""
        current = self.layer() if hasattr(self, "layer_combo") else None
        follows = follows_new_detections(current, added)
        if not follows and None not in (current, added) and not is_reference_layer(added) \
                and hasattr(self, "info"):
            n = corrections_by_hand(current)
            self.info.setText(f"New detections in {added.name}: the review stays on "
                              f"{current.name}, which holds {n} correction{'s' if n != 1 else ''} "
                              "by hand — calls added, changed or deleted (choose the new layer "
                              "above to review it).")
        return follows

    def layer(self):
        """The detections layer being reviewed (or ``None``)."""
        return layer_by_name(self.viewer, self.layer_combo)

    def _layer_changed(self, *args) -> None:
        layer = self.layer()
        if self._watched is not None and not same_layer(self._watched, layer):
            self._watched.events.data.disconnect(self._points_changed)
            self._watched.selected_data.events.items_changed.disconnect(self._selection_changed)
            self._watched = None
        if layer is None:
            self.undo_button.setEnabled(False)
            self._show_no_layer()
            return
        if self._watched is None:
            layer.events.data.connect(self._points_changed)
            layer.selected_data.events.items_changed.connect(self._selection_changed)
            self._watched = real_layer(layer)
            self._last_reviewed = None
            if layer in self._histories:  # edits made while another layer was reviewed
                self._histories[layer].resync()
        tracks = tracks_layer_of(self.viewer, layer)
        if tracks is not None:  # (a reopened movie table's tracks follow the corrections too)
            follow_tracks(self.viewer, layer, tracks)
        # (the layer the key was pressed on: the dock's had been undone, another image's edit)
        layer.bind_key("Control-Z", _while_alive(self, lambda widget, pressed: widget.undo(
            pressed)), overwrite=True)
        layer.bind_key("Control-V", _paste_binding(self), overwrite=True)
        self.undo_button.setEnabled(self._history(layer).can_undo)
        classes = layer_classes(layer)
        self._show_classes(classes)
        for k, cls in enumerate(classes[:9]):
            layer.bind_key(str(k + 1), self._key_handler(cls), overwrite=True)
        self._class_changed(self.class_combo.currentText())
        self.apply_threshold()

    def classes(self) -> tuple[str, ...]:
        """The classes offered (those of the reviewed layer, in its order)."""
        return tuple(self.class_combo.itemText(k) for k in range(self.class_combo.count()))

    def _show_classes(self, classes) -> None:
        """Offer ``classes`` in the class box, the key line and the legend (keeping the chosen
        class when it is among them)."""
        classes = tuple(classes)
        if classes != self.classes():
            current = self.class_combo.currentText()
            self.class_combo.blockSignals(True)
            self.class_combo.clear()
            self.class_combo.addItems(list(classes))
            if current in classes:
                self.class_combo.setCurrentText(current)
            self.class_combo.blockSignals(False)
        n = min(len(classes), 9)
        self.keys_label.setText(f"Keys 1–{n} set the class of the selected points:"
                                if n > 1 else "Key 1 sets the class of the selected points:")
        self.legend.set_classes(classes)

    def _show_no_layer(self) -> None:
        """No detections layer to review: no keys nor legend (a README trial read MoS2's keys
        while the Detect dock was set to WS2 with Se: the classes are the layer's)."""
        self.keys_label.setText("No detections layer yet: its classes and their keys appear "
                                "here when a detection runs or a defect CSV opens.")
        self.legend.set_classes(())

    def _history(self, layer) -> EditHistory:
        """The undo stack of ``layer`` (made when first needed; kept for the layer itself, not
        for napari's short-lived proxy of it)."""
        layer = real_layer(layer)
        if layer not in self._histories:
            self._histories[layer] = EditHistory(layer)
        return self._histories[layer]

    def _edited(self, layer, moved: tuple | None = None) -> None:
        self._history(layer).edited(moved)
        self.undo_button.setEnabled(self._history(layer).can_undo)

    def undo(self, layer=None) -> bool:
        """Undo the last edit of ``layer`` (default: the reviewed layer) — points added,
        deleted or moved, classes set; ``False`` when there is none. Ctrl+Z undoes the layer
        it is pressed on, as napari's keys act on the active layer."""
        reviewed = self.layer()
        layer = reviewed if layer is None else layer
        if layer is None or not self._history(layer).undo():
            self.info.setText("Nothing to undo." if same_layer(layer, reviewed) or layer is None
                              else f"Nothing to undo in {layer.name}.")
            return False
        if not same_layer(layer, reviewed):
            self.info.setText(f"Last edit of {layer.name} undone.")
            return True
        self.undo_button.setEnabled(self._history(layer).can_undo)
        self.apply_threshold()
        self.info.setText(self.info.text() + " Last edit undone.")
        return True

    def _points_changed(self, event) -> None:
        """Record every edit for undo. Points added by a click are manual detections of the
        chosen class (napari fills new points from the last *selected* point's features
        otherwise), on their column's site; a point off the image is taken back, and a call
        put on a column that had one replaces it."""
        from qtpy import sip

        if sip.isdeleted(self):  # (a closed dock: the one opened again records the edit, once)
            return
        action = str(getattr(event, "action", ""))
        layer = self.layer()
        if layer is None or action not in ("added", "removed", "changed"):
            return
        history = self._history(layer)
        if history.is_quiet:
            return
        if action == "removed":
            self._edited(layer)
            self.apply_threshold()
            n = len(getattr(event, "data_indices", None) or ())
            if n:  # (what the edit did, before how many are shown: a trial read only the count)
                self.info.setText(f"{n} call{'s' if n != 1 else ''} deleted. {self.info.text()}")
            return
        if action == "changed":
            # The points whose place changed (napari names every point when a whole array is
            # set, a script's say; a drag names the dragged ones): a call moved by hand is the
            # user's, and goes onto its site once the drag stops.
            moved = history.moved_since(layer)
            with history.quiet():
                mark_moved(layer, moved)
            self._edited(layer, moved=tuple(sorted(int(i) % max(len(layer.data), 1) for i in (
                getattr(event, "data_indices", None) or ()))))
            if moved:
                # (the layer itself: a docked widget's viewer hands out a new proxy each time)
                previous = (self._dragged[1] if self._dragged
                            and same_layer(self._dragged[0], layer) else set())
                self._dragged = (real_layer(layer), previous | set(moved))
                self._drag_end.start()
            return
        if len(layer.data) == 0:
            return
        n = len(layer.data)  # napari gives new points as negative indices (from the end)
        added = sorted({int(i) % n for i in (getattr(event, "data_indices", None) or ())})
        if not added:
            return
        cls = self.class_combo.currentText()
        notes = []
        with history.quiet():
            set_class(layer, added, cls, new_points=True)
            # A click nearer a column of the other sublattice is not snapped away from it: the
            # class or the place is wrong, and only the user knows which.
            wrong = on_other_sublattice(self.viewer, layer, added, cls)
            snap_to_sites(self.viewer, layer, [i for i in added if i not in wrong], cls)
            outside = outside_image(self.viewer, layer, added)
            if outside:
                added, wrong = _remove_keeping_indices(layer, outside, added, wrong)
                notes.append("A point clicked outside the image was not added: a defect is on "
                             "a column of the image.")
            # (a call on the other sublattice's column replaces nothing: it is said below)
            replaced = calls_on_same_column(layer, [i for i in added if i not in wrong])
            if replaced:
                old = ", ".join(sorted(set(layer.features["class"].iloc[replaced].astype(str))))
                take_over_column(layer, added, replaced)
                added, wrong = _remove_keeping_indices(layer, replaced, added, wrong)
                notes.append(f"The {old} already called on that column was replaced by the "
                             f"new {cls} (one call per column).")
            if added:
                layer.selected_data = set(added)
        if added:
            self._edited(layer)
        self.apply_threshold()
        if added:
            n = len(added)
            self.info.setText(f"{n} {cls} call{'s' if n != 1 else ''} added (manual, confidence "
                              f"1.00). {self.info.text()}")
        if wrong:
            other = "metal" if class_site(cls) == "chalcogen" else "chalcogen"
            notes.append(
                f"The {cls} just added lies on a {other} column, and {cls} is a "
                f"{class_site(cls)}-site class: set its class (a {other}-site one) or move "
                "it onto the column you meant.")
        if notes:
            self.info.setText(self.info.text() + " " + " ".join(notes))

    def settle_moved(self) -> int:
        """The points just dragged go onto the nearest site of their class's sublattice (as a
        point added does); part of the drag's edit (one undo). Returns how many moved."""
        dragged, self._dragged = self._dragged, None
        layer = self.layer()
        if dragged is None or layer is None or not same_layer(dragged[0], layer):
            return 0
        n = len(layer.data)
        idx = sorted(i for i in dragged[1] if i < n)
        history = self._history(layer)
        moved = 0
        with history.quiet():
            classes = layer.features["class"].astype(str).to_numpy()
            for cls in sorted({classes[i] for i in idx}):
                moved += snap_to_sites(self.viewer, layer, [i for i in idx if classes[i] == cls],
                                       cls)
        history.amend()
        if idx:
            what = f"Point {idx[0]}" if len(idx) == 1 else f"{len(idx)} points"
            self.info.setText(f"{what} moved by hand (source manual, confidence 1.00"
                              + (", onto the nearest site" if moved else "") + ").")
        return moved

    def paste(self, layer=None) -> list[int]:
        """Paste the points copied from the reviewed layer (Ctrl+V on it) into the frame shown
        (:func:`paste_calls`), onto their columns there (as a click is), as one edit for *Undo*;
        a pasted call on a called column replaces that call (a 2-D layer pastes in place: the
        copies replace the originals). The pasted points' indices."""
        layer = self.layer() if layer is None else layer
        if layer is None or not same_layer(layer, self.layer()):
            return []
        history = self._history(layer)
        with history.quiet():
            new = paste_calls(layer)
            # onto their columns in the frame shown (a movie's lattice drifts between frames)
            classes = layer.features["class"].astype(str).to_numpy()
            for cls in sorted(set(classes[new])):
                snap_to_sites(self.viewer, layer, [i for i in new if classes[i] == cls], cls)
            replaced = calls_on_same_column(layer, new) if new else []
            if replaced:
                [new] = _remove_keeping_indices(layer, replaced, new)
            if new:
                layer.selected_data = set(new)
        if not new:
            self.info.setText("Nothing to paste: copy calls first (select them, Ctrl+C).")
            return []
        self._edited(layer)
        self.apply_threshold()
        said = f"{len(new)} call{'s' if len(new) != 1 else ''} pasted (manual)"
        if replaced:
            where = "their columns" if len(replaced) != 1 else "its column"
            said += f", replacing the {len(replaced)} already on {where}"
        self.info.setText(said + ".")
        return new

    def _selection_changed(self, *args) -> None:
        """Hidden points (*Hide below*, *Seen in at least*) stay out of the selection: a box
        or select-all must not let them be deleted or reclassified unseen."""
        from qtpy import sip

        if sip.isdeleted(self):
            return
        layer = self._watched
        if layer is None or not layer.selected_data:
            return
        shown = np.asarray(layer.shown, bool)
        hidden = {i for i in layer.selected_data if i < len(shown) and not shown[i]}
        if hidden:
            layer.selected_data = set(layer.selected_data) - hidden

    def _key_handler(self, cls):
        def handler(widget, layer):
            if layer.selected_data:
                set_class(layer, layer.selected_data, cls)
                widget._edited(layer)
                widget._say_class_set(layer, cls)
            widget.class_combo.setCurrentText(cls)
        return _while_alive(self, handler)

    def _class_changed(self, cls: str) -> None:
        """The class for points added next; the selected points keep theirs (napari would
        restyle them: *Set class of selected* and the keys change a class)."""
        layer = self.layer()
        if layer is None:
            return
        defaults = layer.feature_defaults.copy()
        values = {"class": cls, "confidence": 1.0, "source": "manual", "grain": -1,
                  "track_id": -1}
        for col, value in values.items():
            if col in defaults.columns:
                if hasattr(defaults[col], "cat") and value not in defaults[col].cat.categories:
                    continue
                defaults.loc[0, col] = value
        with layer.block_update_properties():
            layer.feature_defaults = defaults
            layer.current_symbol = class_symbol(cls)

    # ------------------------------------------------------------------ edits
    def _toggle_add(self, on: bool) -> None:
        layer = self.layer()
        if layer is not None:
            layer.mode = "add" if on else "pan_zoom"
            self.viewer.layers.selection.active = layer

    def add_defect(self, position_px, cls: str | None = None) -> None:
        """Add a manual defect at pixel ``(row, col)`` (what a click in add mode does); on a
        movie's layer in the frame shown, unless ``(frame, row, col)`` is given."""
        layer = self.layer()
        if layer is None:
            return
        if cls:
            self.class_combo.setCurrentText(cls)
        position = np.atleast_2d(np.asarray(position_px, float))
        if layer.ndim == 3 and position.shape[1] == 2:
            frame = float(self.viewer.dims.current_step[0])
            position = np.column_stack([np.full(len(position), frame), position])
        # the layer's data event makes it manual, of the chosen class, on its site
        # (:meth:`_points_changed`, as for a click)
        layer.add(position)

    def set_selected_class(self) -> None:
        """Set the chosen class on the selected points."""
        layer = self.layer()
        if layer is not None and layer.selected_data:
            set_class(layer, layer.selected_data, self.class_combo.currentText())
            self._edited(layer)
            self._say_class_set(layer, self.class_combo.currentText())

    def _say_class_set(self, layer, cls: str) -> None:
        """The info line after a class was set on the selected points (it had kept the last
        reviewed point's old class and confidence)."""
        chosen = sorted(int(i) for i in layer.selected_data)
        what = f"Point {chosen[0]}" if len(chosen) == 1 else f"{len(chosen)} points"
        self.info.setText(f"{what} set to {cls} (manual, confidence 1.00).")

    def delete_selected(self) -> None:
        layer = self.layer()
        if layer is not None and layer.selected_data:
            layer.remove_selected()

    def apply_threshold(self, *args) -> None:
        """Hide (not delete) detections whose confidence is below the slider (and, in a movie,
        those whose track spans fewer frames than *Seen in at least*).

        Sets ``layer.shown``; as napari ignores ``shown`` for 2-D points when drawing, hidden
        points also get size 0 (shown ones get their marker size back), and the layer's smallest
        size on screen becomes 0 px (napari's default of 2 px would leave dots)."""
        from ..core.detect.movie import track_frames

        layer = self.layer()
        t = self.threshold.value() / 100
        self.threshold_label.setText("show all" if t == 0 else f"{t:.2f}")
        movie = layer is not None and "track_id" in layer.features
        for w in self._min_frames_row:
            if w is not None:
                w.setVisible(movie)
        if layer is None or "confidence" not in layer.features:
            return
        conf = layer.features["confidence"].to_numpy(float)
        shown = ~(conf < t)
        n_frames = self.min_frames.value() if movie else 1
        if n_frames > 1:
            frames = np.round(np.asarray(layer.data)[:, 0]).astype(int)
            tracks = layer.features.assign(frame=frames)
            # (a call you added is yours, not a detection to vet: it has no track of its own
            # yet and had been hidden with the one-frame ones, a trial)
            manual = (layer.features["source"].astype(str) == "manual").to_numpy() \
                if "source" in layer.features else np.zeros(len(conf), bool)
            shown &= (track_frames(tracks) >= n_frames) | manual
        sizes = np.asarray(layer.size, float).copy()
        sizes[sizes <= 0] = marker_size(layer)
        sizes[~shown] = 0.0
        if not shown.all():
            layer.canvas_size_limits = (0, layer.canvas_size_limits[1])
        layer.size = sizes
        layer.shown = shown
        hidden = int((~shown).sum())
        why = [f"below {t:.2f}"] if t > 0 else []
        why += [f"seen in fewer than {n_frames} frames"] if n_frames > 1 else []
        self.info.setText(f"{len(conf) - hidden} shown, {hidden} hidden"
                          + (f" ({' or '.join(why)})." if why else "."))

    def next_low_confidence(self) -> int | None:
        """Select and centre the next shown detection in order of increasing confidence.

        The order is kept by the last reviewed call's confidence and place, not by its index:
        a call corrected on the way (confidence 1) or deleted does not make the next press
        skip one."""
        layer = self.layer()
        if layer is None or len(layer.data) == 0:
            return None
        conf = layer.features["confidence"].to_numpy(float)
        data = np.asarray(layer.data, float)
        shown = np.flatnonzero(np.asarray(layer.shown, bool))
        if not shown.size:
            return None
        keys = {int(k): (conf[k], *(float(v) for v in data[k])) for k in shown}
        order = sorted(keys, key=lambda k: keys[k])
        last = self._last_reviewed
        later = [k for k in order if last is None or keys[k] > last]
        i = int(later[0] if later else order[0])
        self._last_reviewed = keys[i]
        layer.selected_data = {i}
        world = np.asarray(layer.data_to_world(layer.data[i]), float)
        if layer.ndim == 3:  # a movie: go to the detection's frame too
            self.viewer.dims.set_point(0, float(world[0]))
        zoom = self._zoom_showing_cells(layer, REVIEW_FIELD_CELLS)
        self.viewer.scene.camera.center = tuple(world[-2:])
        if zoom is not None:
            self.viewer.scene.camera.zoom = zoom
        cls = layer.features["class"].iloc[i]
        self.info.setText(f"Point {i}: {cls}, confidence {conf[i]:.2f}."
                          + _image_seen_note(self.viewer, layer, world))
        return i

    def _zoom_showing_cells(self, layer: napari.layers.Points, n_cells: float) -> float | None:
        """Camera zoom at which about ``n_cells`` lattice constants span the canvas, never less
        than the present zoom (a user zoomed in further stays so); ``None`` when the layer does
        not know its lattice constant.

        napari has no public canvas size; :meth:`napari.Viewer.reset_view` fits the scene to it,
        so the zoom it sets tells how many world units the canvas spans."""
        a_px = (layer.metadata or {}).get("atomdefect", {}).get("a_px")
        if not a_px:
            return None
        camera = self.viewer.scene.camera
        before = (camera.center, camera.zoom)
        extent = np.asarray(self.viewer.layers.extent.world, float)[:, -2:]
        span = float(np.max(extent[1] - extent[0]))
        self.viewer.reset_view()
        fit_zoom = float(camera.zoom)
        camera.center, camera.zoom = before
        target = fit_zoom * span / (n_cells * float(a_px) * float(np.max(layer.scale[-2:])))
        return max(float(before[1]), target)

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str) -> str | None:
        """Write the layer to ``path`` with the columns of ``atomdefect detect``; returns the
        path written, or ``None`` when it could not be (said in the dock and a notification;
        nothing is left half-written, an existing file stays as it was)."""
        from napari.utils.notifications import show_error, show_warning

        from .._writer import write_points_table
        from ..core.errors import AtomDefectError
        from ..core.io.table import manual_rows

        layer = self.layer()
        target = path if str(path).lower().endswith(".csv") else f"{path}.csv"
        edited_before = manual_rows(target)  # corrections by hand in the file replaced
        try:
            written, previous = write_points_table(path, layer.data, layer_meta(layer))
        except (AtomDefectError, OSError) as exc:
            self.info.setText(f"Not saved: {exc}")
            show_error(str(exc))
            return None
        hidden = int((~np.asarray(layer.shown, bool)).sum())
        note = (f" ({hidden} of them hidden by *Hide below* or *Seen in at least*: the file "
                "holds every call of the layer)" if hidden else "")
        # (calls, as the Detect dock counts them: an alloy's substitutions are not defects)
        text = f"Saved {len(layer.data)} calls{note} to {written}."
        own = layer.metadata.get("atomdefect", {}).get("pixel_size_nm")
        drawn = float(layer.scale[-1]) if str(layer.units[-1]) in ("nm", "nanometer") else None
        if own and drawn and abs(drawn / float(own) - 1) > 1e-3:
            # (a later run calibrated the image anew: this table keeps its own run's)
            text += (f" Its nm columns use its run's pixel size, {float(own):.5f} nm/px; the "
                     f"image is drawn at {drawn:.5f} nm/px now (a later run's calibration).")
        if previous is not None:
            kept = f"The table it replaced is kept as {Path(previous).name}"
            edited_now = manual_calls(layer)  # (as the file counts them: its manual rows)
            if edited_before > edited_now:  # corrections by hand the new file does not hold
                kept = (f"{Path(written).name} held {edited_before} defects corrected by hand, "
                        f"this layer {edited_now}: {kept[0].lower()}{kept[1:]}")
                show_warning(f"{kept}.")
            text = f"{text} {kept}."
        self.info.setText(text)
        return written

    def _export_dialog(self) -> None:
        from napari.utils.notifications import show_warning

        layer = self.layer()
        if layer is None:
            show_warning("There is no detections layer to export.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export defects", f"{layer.name}.csv",
                                              "CSV (*.csv)")
        if not path:
            return
        if not path.lower().endswith(".csv"):
            # (the dialog asked about the name typed; the file written is NAME.csv)
            path = f"{path}.csv"
            if Path(path).exists() and QMessageBox.question(
                    self, "Export defects", f"{Path(path).name} exists. Replace it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
                self.info.setText(f"Not saved: {path} was kept.")
                return
        self.export_csv(path)
