"""Small helpers shared by the dock widgets."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QGridLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QVBoxLayout,
    QWidget,
)


def fold_group(box, folded: bool) -> None:
    """Hide (``folded``) or show the rows of a checkable group box: unchecked, its greyed rows
    only took the room the docks below it need. Folded, the box is drawn flat (its title line
    only: the frame around no rows was an empty box)."""
    for child in box.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        child.setVisible(not folded)
    box.setFlat(folded)
    # napari's style sheet draws a group box's border whatever ``flat`` says (a trial saw the
    # empty frame under the folded *Operating point* title)
    box.setStyleSheet("QGroupBox { border: none; }" if folded else "")


def foldable(box) -> None:
    """Fold a checkable group box's rows while it is unchecked (now and on every toggle)."""
    box.toggled.connect(lambda checked: fold_group(box, not checked))
    fold_group(box, not box.isChecked())


#: A word this long or longer (a real file name) may break after its ``_``, ``-`` or ``.``.
LONG_WORD = 24
_BREAK = "\u200b"  # zero-width space: a place to break, drawn as nothing


def _breakable(text: str) -> str:
    """``text`` with a zero-width space after each ``_``, ``-`` and ``.`` of its long words."""
    return re.sub(rf"\S{{{LONG_WORD},}}",
                  lambda m: re.sub(r"([_\-.])", r"\1" + _BREAK, m.group(0)), text)


class StepProgressBar(QProgressBar):
    """A 0–100 % bar that shows Qt's busy animation while a step has said no fraction yet
    (:meth:`busy`): the lattice search of a large image reports nothing for seconds, and a bar
    standing at 0 % read as frozen. The first fraction above 0 (or :meth:`idle`) makes it a
    plain bar again."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setRange(0, 100)

    def busy(self) -> None:
        """Animate until a fraction above 0 arrives."""
        self.setRange(0, 0)

    def idle(self) -> None:
        """A plain bar again (at 0 % if it was still busy)."""
        if self.maximum() == 0:
            self.setRange(0, 100)
            super().setValue(0)

    def setValue(self, value: int) -> None:  # noqa: N802 - Qt's name
        if self.maximum() == 0:
            if value <= 0:
                return  # (still nothing to show: keep the animation)
            self.setRange(0, 100)
        super().setValue(value)


class WrappingLabel(QLabel):
    """A word-wrapped label whose long words (real file names: ``…_HAADF__10_corrected``) break
    at their ``_``, ``-`` and ``.``: one unbroken name had pushed the rest of a sentence out of
    the dock. :meth:`text` gives the text as set."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self._text = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._text = str(text)
        super().setText(_breakable(self._text))

    def text(self) -> str:
        return self._text


#: Colour of the model-fit sentences on a dark and on a light theme: amber on dark, a dark amber
#: on light (the amber read at 1.5:1 on napari's light background; a trial).
WARNING_COLOURS = {"dark": "#ffb000", "light": "#8a4b00"}


def warning_colour(theme: str) -> str:
    """The colour of warning text on napari's ``theme`` (its background light or dark)."""
    from napari.utils.theme import get_theme

    try:
        background = get_theme(theme).background.as_rgb_tuple()
    except Exception:  # (an unknown theme: as on the default, dark one)
        return WARNING_COLOURS["dark"]
    light = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2] > 128
    return WARNING_COLOURS["light" if light else "dark"]


class MiddleElidedCombo(QComboBox):
    """A combo box that elides a long current text in the middle: real file names differ at
    their end (``…_HAADF__10_corrected`` / ``…_19_corrected``) and run labels end a
    detections layer's name, so the end must stay in sight."""

    def shown_text(self) -> str:
        """The current text as drawn: elided in the middle to the box's text field."""
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                            QStyle.SubControl.SC_ComboBoxEditField, self)
        return self.fontMetrics().elidedText(self.currentText(), Qt.TextElideMode.ElideMiddle,
                                             max(field.width(), 1))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QStylePainter(self)
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        opt.currentText = self.shown_text()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)


def layer_combo() -> QComboBox:
    """A combo box for layer names that never widens the dock: long names (real file names)
    are elided in the middle to the dock's width (in the list too) and shown in full as the
    tooltip."""
    combo = MiddleElidedCombo()
    combo.view().setTextElideMode(Qt.TextElideMode.ElideMiddle)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(12)
    combo.currentTextChanged.connect(combo.setToolTip)
    return combo


def refresh_layer_combo(combo, layers, accept: Callable, keep=None) -> None:
    """Fill ``combo`` with the names of the accepted layers, keeping the current choice if it
    is still there (``keep``: that layer, under its name now — it was renamed; else the last
    layer), without emitting change signals while filling."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    for layer in layers:
        if accept(layer):
            combo.addItem(layer.name)
            if keep is not None and same_layer(layer, keep):
                current = layer.name
    k = combo.findText(current)
    combo.setCurrentIndex(k if k >= 0 else combo.count() - 1)
    combo.blockSignals(False)
    combo.setToolTip(combo.currentText())  # (the change signal was blocked)


def layer_by_name(viewer, combo):
    """The layer named by ``combo``'s current text, or ``None``."""
    name = combo.currentText()
    return viewer.layers[name] if name in viewer.layers else None


def real_layer(layer):
    """The layer itself behind napari's proxy: a dock widget is given a proxy of the viewer,
    whose layers are new proxy objects at each access — equal to the layer, never identical
    to it (nor to the layer a key binding is called with)."""
    return getattr(layer, "__wrapped__", layer)


def same_layer(a, b) -> bool:
    """Whether ``a`` and ``b`` are one layer (either may be napari's proxy of it, or None)."""
    return real_layer(a) is real_layer(b)


def is_reference_layer(layer) -> bool:
    """Whether ``layer`` shows a reference table (ground-truth labels, an annotation opened from
    a CSV without confidences), which the Review and Statistics widgets list but do not jump to
    when it is opened."""
    return (getattr(layer, "metadata", None) or {}).get("atomdefect", {}).get("kind") == "reference"


def table_analysis_of(viewer, image) -> dict:
    """The analysis (``material``, ``substituents``) named by the newest defect table reopened
    on ``image`` (its layer's ``atomdefect`` metadata), ``{}`` when none names one: what the
    docks follow for an image not analysed here."""
    if image is None:
        return {}
    return next((la.metadata["atomdefect"] for la in reversed(viewer.layers)
                 if la.metadata.get("atomdefect", {}).get("image") == image.name
                 and la.metadata["atomdefect"].get("material")), {})


def is_image_layer(layer) -> bool:
    """Whether ``layer`` is a napari Image layer holding a micrograph to analyse — not one this
    plugin derived from another image (the "model's view")."""
    from napari.layers import Image

    if not isinstance(layer, Image):
        return False
    return (layer.metadata or {}).get("atomdefect", {}).get("kind") != "model_view"


def follow_layers(viewer, combo, accept: Callable, on_change: Callable | None = None,
                  follow_new: bool | Callable = False) -> Callable:
    """Keep ``combo`` listing the accepted layers of ``viewer``; call ``on_change`` when the chosen
    layer changes (a new choice, or the chosen layer removed or replaced) — not on every layer
    event, so that adding an unrelated layer never resets what the user set for the chosen one.
    With ``follow_new`` (``True``, or a test of the added layer), an accepted layer added to the
    viewer becomes the choice (an image just opened, a new run's detections); otherwise the
    user's choice is kept. Returns the refresh function."""
    chosen: list = [object()]  # nothing seen yet: the first refresh reports the choice

    def changed(*_) -> None:
        layer = real_layer(layer_by_name(viewer, combo))
        if layer is not chosen[0]:
            chosen[0] = layer
            if on_change is not None:
                on_change()

    def refresh(event=None) -> None:
        refresh_layer_combo(combo, viewer.layers, accept)
        added = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        if event is None and callable(follow_new):
            # Opened after the layers: start on the newest one a new layer would have been
            # followed to (a run's detections, not a reference table opened after them).
            followed = [la for la in viewer.layers if accept(la) and follow_new(la)]
            added = followed[-1] if followed else None
        # (a layer the combo does not list is never asked about: the Review dock's test says
        # why it stays, and a fine-tuning region is no detections to stay away from)
        accepted = added is not None and accept(added)
        follows = accepted and (follow_new(added) if callable(follow_new) else follow_new)
        if follows:
            k = combo.findText(added.name)
            if k >= 0:
                combo.blockSignals(True)
                combo.setCurrentIndex(k)
                combo.blockSignals(False)
                combo.setToolTip(combo.currentText())  # (its change signal was blocked)
        changed()

    def renamed(event=None) -> None:
        # (a layer renamed in the layer list: listed under its new name, still the choice —
        # the combo had kept the old name, and the dock found no image to analyse)
        from qtpy import sip

        if sip.isdeleted(combo):  # (a closed dock)
            return
        refresh_layer_combo(combo, viewer.layers, accept, keep=chosen[0])
        changed()

    def watch(event=None) -> None:
        layers = [event.value] if event is not None else list(viewer.layers)
        for layer in layers:
            layer.events.name.connect(renamed)

    follow_renames(viewer)
    combo.currentIndexChanged.connect(changed)
    viewer.layers.events.inserted.connect(refresh)
    viewer.layers.events.inserted.connect(watch)
    viewer.layers.events.removed.connect(refresh)
    watch()
    refresh()
    return refresh


def image_file_name(layer) -> str:
    """The name a defect table gives the image ``layer`` (its ``image`` column): the name of the
    file it was opened from, without extension — what napari names its layer, and stays so when
    the layer is renamed (a table saved after a rename named the new name, which no reopened
    image had: it went onto another image) — else the layer's name."""
    from pathlib import Path

    path = getattr(getattr(layer, "source", None), "path", None)
    return Path(str(path)).stem if path else str(layer.name)


#: Viewers whose layer renames are followed (:func:`follow_renames`): each layer's last name.
_RENAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: Layers made for an image that go when it goes (its lattice): calls stay — they may hold
#: corrections, and a table reopened with its image goes onto it.
LATTICE_KINDS = ("lattice_sites", "cell_grid")


def follow_renames(viewer) -> None:
    """Once per viewer: a layer renamed in the layer list takes the layers made for it along —
    the sites, cell grid, detections and tracks of an image name it in their
    ``metadata["atomdefect"]["image"]`` (renamed, the image had lost them: a new run's
    calibration left them at the old pixel size, and Review found no sites to snap to). An
    image removed takes its sites and cell grid with it (:data:`LATTICE_KINDS`: left, they
    claimed the image opened again under that name, at the old pixel size — a trial)."""
    real = getattr(viewer, "__wrapped__", viewer)
    if real in _RENAMES:
        return
    names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _RENAMES[real] = names

    def renamed(ref: weakref.ref) -> None:
        layer = ref()
        if layer is None:
            return
        old, new = names.get(layer), layer.name
        names[layer] = new
        if old is None or old == new:
            return
        for other in real.layers:
            meta = other.metadata.get("atomdefect")
            if other is not layer and isinstance(meta, dict) and meta.get("image") == old:
                meta["image"] = new

    def watch(layer) -> None:
        layer = real_layer(layer)
        names[layer] = layer.name
        ref = weakref.ref(layer)
        layer.events.name.connect(lambda event=None: renamed(ref))

    def removed(event) -> None:
        gone = real_layer(event.value)
        if not is_image_layer(gone) or any(
                is_image_layer(la) and la.name == gone.name for la in real.layers):
            return
        # (after the removal has finished: not from inside the layer list's own event)
        QTimer.singleShot(0, lambda: [real.layers.remove(la) for la in list(real.layers)
                                      if la.metadata.get("atomdefect", {}).get("image")
                                      == gone.name and la.metadata["atomdefect"].get("kind")
                                      in LATTICE_KINDS])

    for layer in real.layers:
        watch(layer)
    real.layers.events.inserted.connect(lambda event: watch(event.value))
    real.layers.events.removed.connect(removed)


class _VerticalScroll(QScrollArea):
    """A scroll area as wide as its content that may be squeezed vertically (then it scrolls)."""

    def _extra(self) -> int:
        return self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        inner = self.widget().sizeHint() if self.widget() is not None else QSize(0, 0)
        return QSize(inner.width() + self._extra(), inner.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        inner = self.widget().minimumSizeHint() if self.widget() is not None else QSize(0, 0)
        return QSize(inner.width() + self._extra(), min(inner.height(), 120))


def scrolling_layout(widget) -> QVBoxLayout:
    """The vertical layout to fill ``widget`` with, inside a vertical scroll area.

    Docks stacked in a napari window share its height: squeezed below their natural height, a
    plain layout makes rows overlap, and a minimum height makes the window taller than the screen.
    In a scroll area the content keeps its layout and a scroll bar appears instead; the width still
    follows the content.
    """
    inner = QWidget()
    scroll = _VerticalScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(inner)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    widget.scroll_area = scroll  # for show_in_dock
    widget._fit_docks = _FitDocksOnFirstShow(widget)  # (kept: Qt holds filters weakly)
    widget.installEventFilter(widget._fit_docks)
    return QVBoxLayout(inner)


#: Pixels given to a fitted dock beyond its size hint (the dock's frame and the scroll area's
#: margins: without them its last row was cut by a few pixels).
DOCK_FIT_SLACK_PX = 10
#: The last dock of a column keeps at least this height (px: a table's header and four rows)
#: when the others take their own; below it the column is shared by need.
LAST_DOCK_MIN_PX = 180


def fit_stacked_docks(widget) -> None:
    """Share the height of the dock column holding ``widget`` by what each dock needs.

    A dock added below another gets only what Qt takes from its neighbour (two rows of Review and
    Statistics under a Detect dock that kept an empty third of the window: trial, twenty-first
    session). When the docks' natural heights fit, each but the last gets its own and the last
    (often Statistics, a table) the rest; otherwise each dock gets a share of the column in
    proportion to its need, and the docks scroll.
    Floating or tabbed docks are left alone.
    """
    main = widget.window()
    if not isinstance(main, QMainWindow):
        return
    docks = [d for d in main.findChildren(QDockWidget) if d.isVisible() and not d.isFloating()]
    own = next((d for d in docks if d.isAncestorOf(widget)), None)
    if own is None:
        return
    area, x = main.dockWidgetArea(own), own.geometry().x()
    stack = sorted((d for d in docks if main.dockWidgetArea(d) == area
                    and d.geometry().x() == x and not main.tabifiedDockWidgets(d)),
                   key=lambda d: d.geometry().y())
    if len(stack) < 2 or own not in stack:
        return
    total = sum(d.height() for d in stack)
    needs = [d.sizeHint().height() + DOCK_FIT_SLACK_PX for d in stack]
    rest = total - sum(needs[:-1])
    if rest >= max(stack[-1].minimumSizeHint().height(), min(LAST_DOCK_MIN_PX, needs[-1])):
        main.resizeDocks(stack, needs[:-1] + [rest], Qt.Orientation.Vertical)
        return
    # Too little for all: each dock its share of the column by need, so that the last (a
    # table: Statistics) keeps some rows in view, and the others scroll (a trial's Statistics
    # had 120 px, two rows of six, under Detect and Review).
    shares = [max(1, int(total * n / sum(needs))) for n in needs]
    main.resizeDocks(stack, shares, Qt.Orientation.Vertical)


class _FitDocksOnFirstShow(QObject):
    """Event filter: :func:`fit_stacked_docks` once, when the widget is first shown in a dock."""

    def __init__(self, widget) -> None:
        super().__init__(widget)
        self._done = False

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if not self._done and event.type() == QEvent.Type.Show:
            self._done = True
            QTimer.singleShot(0, lambda: _fit_if_alive(obj))
        return False


def _fit_if_alive(widget) -> None:
    """:func:`fit_stacked_docks`, unless the widget was closed meanwhile."""
    try:
        fit_stacked_docks(widget)
    except RuntimeError:  # its C++ object is gone (a viewer closed at once)
        pass


def show_in_dock(widget, *children) -> None:
    """Scroll ``widget``'s dock (:func:`scrolling_layout`) so that the visible ``children`` — a
    run's result line and its warning — are in view (a squeezed dock hid them below the fold)."""
    scroll = getattr(widget, "scroll_area", None)
    if scroll is None:
        return

    def scroll_to_children() -> None:
        try:
            inner = scroll.widget()
            if inner is not None and inner.layout() is not None:
                inner.layout().activate()  # the labels' heights for their new text
            for child in children:
                if child.isVisibleTo(widget):
                    scroll.ensureWidgetVisible(child, 0, 8)
        except RuntimeError:  # (the dock was closed meanwhile: its Qt objects are gone)
            return

    scroll_to_children()
    # once more after the pending layout: labels whose text just grew (the calibration line of
    # an alloy) push the result down only when the layout runs (a trial found it below the fold)
    QTimer.singleShot(0, scroll_to_children)


def given_pixel_size(layer) -> tuple[float | None, str]:
    """The pixel size known for an image layer and where it comes from.

    A value the user typed in the Detect widget wins; then the file's (or an applied lattice
    calibration); then a nm scale set on the layer by another reader; else ``(None, "none")``.

    Parameters
    ----------
    layer : napari.layers.Image

    Returns
    -------
    tuple
        ``(pixel size in nm or None, "user" | "file" | "lattice" | "none")``
    """
    meta = layer.metadata.get("atomdefect", {})
    if "user_pixel_size_nm" in meta:
        value = meta["user_pixel_size_nm"]
        return (float(value), "user") if value else (None, "none")
    px = meta.get("pixel_size_nm")
    if px:
        source = meta.get("calibration")
        return float(px), source if source in ("file", "lattice") else "file"
    nm = _scale_in_nm(layer)
    if nm is not None:
        return nm, "file"
    return None, "none"


def run_pixel_size(layer, material: str, substituents) -> tuple[float | None, str]:
    """:func:`given_pixel_size` for a run of ``material`` with ``substituents``: a lattice
    calibration made for another material or other substituents is no given value — the
    lattice calibrates anew (from the file's value, if the file had one). A run of MoS2 had
    calibrated a WSe2 image 3.8 % off, and the WSe2 run that followed kept it (within the
    S/Se alloy's range of lattice constants)."""
    px, source = given_pixel_size(layer)
    meta = layer.metadata.get("atomdefect", {})
    if source == "lattice" and meta.get("calibrated_for") != analysis_key(material,
                                                                          substituents):
        file_px = meta.get("file_pixel_size_nm")
        return (float(file_px), "file") if file_px else (None, "none")
    return px, source


def analysis_key(material: str, substituents) -> dict:
    """What a lattice calibration was made for (kept as ``calibrated_for`` in the image layer's
    metadata): the material and the substituents, which set the lattice constant (Vegard)."""
    return {"material": str(material), "substituents": sorted(str(d) for d in substituents)}


def _scale_in_nm(layer) -> float | None:
    """The layer's pixel size in nm when its scale is in a length unit (nm, Å, pm, µm; set by
    another reader or by hand), else ``None`` (a scale of 1 in pixels says nothing)."""
    unit = layer.units[-1]
    scale = float(layer.scale[-1])
    if str(unit) in ("nm", "nanometer"):
        return scale if scale != 1.0 else None
    try:
        nm = float((scale * unit).to("nm").magnitude)
    except Exception:  # (pint: pixel or another dimension)
        return None
    return nm if np.isfinite(nm) and nm > 0 else None


class ClassLegend(QWidget):
    """Legend of defect classes: the marker glyph in the class colour, then the name (and the
    key that sets the class, when ``keys``), a few classes per row."""

    def __init__(self, per_row: int = 4, keys: bool = False):
        super().__init__()
        self.per_row = per_row
        self.keys = keys
        self.classes: tuple[str, ...] = ()
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)

    def set_classes(self, classes) -> None:
        """Show ``classes`` (in that order), replacing what was shown."""
        from ..core.io.class_style import SYMBOL_GLYPHS, class_color, class_symbol

        self.classes = tuple(classes)
        while self._grid.count():
            old = self._grid.takeAt(0).widget()
            if old is not None:
                old.hide()  # (a parentless visible widget flashes as a window of its own)
                old.setParent(None)  # gone at once (findChild), freed later
                old.deleteLater()
        for k, cls in enumerate(self.classes):
            row, col = divmod(k, self.per_row)
            swatch = QLabel(SYMBOL_GLYPHS.get(class_symbol(cls), "○"))
            swatch.setStyleSheet(f"color: {class_color(cls)}; font-size: 16px;")
            swatch.setObjectName(f"legend-swatch-{cls}")
            name = QLabel(f"{k + 1}: {cls}" if self.keys else cls)
            name.setObjectName(f"legend-name-{cls}")
            self._grid.addWidget(swatch, row, 2 * col)
            self._grid.addWidget(name, row, 2 * col + 1)
        # each name next to its own glyph: the spare width goes after the names, not between
        # a glyph and its name
        for col in range(min(self.per_row, len(self.classes))):
            self._grid.setColumnStretch(2 * col, 0)
            self._grid.setColumnStretch(2 * col + 1, 1)
        self._grid.setHorizontalSpacing(4)

    def entries(self) -> list[tuple[str, str, str]]:
        """``(glyph, colour, text)`` of every entry, in order (what a user reads)."""
        out = []
        for cls in self.classes:
            swatch = self.findChild(QLabel, f"legend-swatch-{cls}")
            name = self.findChild(QLabel, f"legend-name-{cls}")
            colour = swatch.styleSheet().split("color:")[1].split(";")[0].strip()
            out.append((swatch.text(), colour, name.text()))
        return out
