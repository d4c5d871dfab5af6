"""Statistics dock widget: counts, densities and concentrations, updated live as points change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPalette, QPen
from qtpy.QtWidgets import (
    QAbstractScrollArea,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from .._layers import layer_classes
from ..core.detect.overlap import one_atom_pair, sum_sentence
from ..core.io.class_style import class_color
from ..core.materials.columns import LEGACY_CLASSES, lookup_class
from ._common import follow_layers, layer_by_name, layer_combo, scrolling_layout
from .review import follows_new_detections, is_defect_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari


#: Chalcogen atoms a defect of each kind removes or replaces (a column holds two; a metal
#: antisite takes both atoms' place).
_ATOMS_AFFECTED = {"V_X": 1, "V_X2": 2, "D_X": 1, "D2_X2": 2, "M_X2": 2}


def _per_site(cls: str, n: int, n_metal: int | None, n_chalcogen: int | None) -> float:
    """Fraction of the affected lattice sites: metal sites for a metal vacancy, chalcogen atoms
    (two per column) for a chalcogen class, counting the atoms each defect removes or replaces;
    NaN for an unknown class or an unknown number of sites."""
    column = lookup_class(cls)
    if column is None:
        return np.nan
    if column.site == "metal":
        return n / n_metal if n_metal else np.nan
    return _ATOMS_AFFECTED[column.kind] * n / (2 * n_chalcogen) if n_chalcogen else np.nan


def defect_statistics(classes: pd.Series, n_metal: int | None, n_chalcogen: int | None,
                      area_nm2: float | None,
                      class_list: tuple[str, ...] = LEGACY_CLASSES) -> pd.DataFrame:
    """Counts per class, per nm², per unit cell, and per lattice site of the affected element.

    Parameters
    ----------
    classes : Series
        The class of every (shown) defect.
    n_metal, n_chalcogen : int or None
        Metal sites and chalcogen columns of the analysed area.
    area_nm2 : float or None
        Analysed area.
    class_list : tuple of str
        Rows, in order (the layer's classes); a class in ``classes`` but not here gets a row too.

    Returns
    -------
    DataFrame
        Index: class; columns ``count``, ``per_nm2``, ``per_cell``, ``per_site``. ``per_site`` is
        relative to chalcogen *atoms* (two per column) for chalcogen classes, counting two atoms
        for a column emptied or doubly substituted (``V_S2``, ``Se2_S2``), and to metal sites for
        metal vacancies (``V_Mo``, ``V_W``).
    """
    counts = classes.astype(str).value_counts()
    rows = {}
    extra = sorted(c for c in counts.index if c not in class_list)
    for cls in list(class_list) + extra:
        n = int(counts.get(cls, 0))
        per_site = _per_site(cls, n, n_metal, n_chalcogen)
        rows[cls] = {"count": n, "per_nm2": n / area_nm2 if area_nm2 else np.nan,
                     "per_cell": n / n_metal if n_metal else np.nan, "per_site": per_site}
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["count", "per_nm2", "per_cell", "per_site"])


def _text_colour(widget: QWidget) -> QColor:
    """The text colour of napari's theme (the widget's palette follows it): labels drawn in a
    fixed light grey vanished on the light theme (a trial)."""
    return widget.palette().color(QPalette.ColorRole.WindowText)


class BarChart(QWidget):
    """A minimal bar chart of counts per class (no plotting library needed)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, float] = {}
        self.setMinimumHeight(130)

    def set_values(self, values: dict[str, float]) -> None:
        self.values = dict(values)
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt API
        painter = QPainter(self)
        w, h = self.width(), self.height()
        n = max(len(self.values), 1)
        top = max(max(self.values.values(), default=0), 1)
        bar_w = w / n
        for k, (name, v) in enumerate(self.values.items()):
            bh = (h - 30) * v / top
            painter.fillRect(QRectF(k * bar_w + 6, h - 18 - bh, bar_w - 12, bh),
                             QColor(class_color(name)))
            painter.setPen(_text_colour(self))
            painter.drawText(QRectF(k * bar_w, h - 16, bar_w, 16), Qt.AlignmentFlag.AlignCenter, name)
            painter.drawText(QRectF(k * bar_w, h - 32 - bh, bar_w, 14),
                             Qt.AlignmentFlag.AlignCenter, f"{v:g}")
        painter.end()


def _class_pen(name: str) -> QPen:
    """Line of class ``name`` in plots: its colour, dashed for a doubly substituted column
    (``Se2_S2`` in the paler tint of ``Se_S``, as their markers are)."""
    pen = QPen(QColor(class_color(name)))
    pen.setWidth(2)
    if getattr(lookup_class(name), "kind", None) == "D2_X2":
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


def blurred_frames(layer) -> set[int]:
    """The frames of a movie's detections ``layer`` whose columns its run measured wider than
    the model's training images (:mod:`~..core.detect.blur`; recorded per frame)."""
    from ..core.detect.blur import is_blurred

    meta = {} if layer is None else layer.metadata.get("atomdefect", {})
    material = meta.get("material") or "MoS2"
    return {int(f["frame"]) for f in meta.get("frames") or []
            if "frame" in f and is_blurred(f.get("column_fwhm_nm"), material)}


def joined_steps(x: list[float]) -> list[bool]:
    """For each pair of neighbouring points of a line plot, whether the line joins them: not
    across a gap more than 1.5 times the usual step (a frame left out, not analysed, had been
    drawn as a line across it — a trial)."""
    steps = np.diff(np.asarray(x, float))
    if not len(steps):
        return []
    usual = float(np.median(steps))
    return [bool(d <= 1.5 * usual) for d in steps]


class LinePlot(QWidget):
    """A minimal line plot of counts per class against frame (no plotting library needed)."""

    def __init__(self):
        super().__init__()
        self.x: list[float] = []
        self.series: dict[str, list[float]] = {}
        self.x_label = "frame"
        self.setMinimumHeight(150)

    def set_data(self, x, series: dict[str, list[float]], x_label: str = "frame") -> None:
        """Plot ``series`` (name → values, one per ``x``) against ``x``."""
        self.x = [float(v) for v in x]
        self.series = {k: [float(v) for v in vals] for k, vals in series.items()}
        self.x_label = x_label
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt API
        painter = QPainter(self)
        w, h = self.width(), self.height()
        legend_w = self._legend_width(painter)
        # Room for the tick values and the label; the legend sits right of the axes.
        left, right, top, bottom = 34, 8 + legend_w, 8, 36
        painter.setPen(self.palette().color(QPalette.ColorRole.Mid))
        painter.drawLine(left, h - bottom, w - right, h - bottom)
        painter.drawLine(left, top, left, h - bottom)
        if self.x:
            x0, x1 = min(self.x), max(self.x)
            span = (x1 - x0) or 1.0
            ymax = max([max(v, default=0) for v in self.series.values()] + [1])

            def point(xv, yv):
                return (left + (w - left - right) * (xv - x0) / span,
                        h - bottom - (h - top - bottom) * yv / ymax)

            joined = joined_steps(self.x)
            for name, values in self.series.items():
                painter.setPen(_class_pen(name))
                pts = [point(xv, yv) for xv, yv in zip(self.x, values, strict=False)]
                for k, ((xa, ya), (xb, yb)) in enumerate(zip(pts, pts[1:], strict=False)):
                    if joined[k]:
                        painter.drawLine(int(xa), int(ya), int(xb), int(yb))
                    else:  # (each side of the gap a dot, so that a lone frame is seen)
                        painter.drawPoint(int(xa), int(ya))
                        painter.drawPoint(int(xb), int(yb))
            painter.setPen(_text_colour(self))
            painter.drawText(QRectF(0, top - 4, left - 4, 14), Qt.AlignmentFlag.AlignRight,
                             f"{ymax:g}")
            # (the counts start at zero: a trial read only the top value and took the bottom
            # for the smallest count)
            painter.drawText(QRectF(0, h - bottom - 10, left - 4, 14),
                             Qt.AlignmentFlag.AlignRight, "0")
            painter.drawText(QRectF(left, h - bottom + 2, w - left - right, 14),
                             Qt.AlignmentFlag.AlignLeft, f"{x0:g}")
            painter.drawText(QRectF(left, h - bottom + 2, w - left - right, 14),
                             Qt.AlignmentFlag.AlignRight, f"{x1:g}")
        painter.setPen(_text_colour(self))
        painter.drawText(QRectF(left, h - 18, w - left - right, 16),
                         Qt.AlignmentFlag.AlignCenter, self.x_label)
        self._draw_legend(painter, w - legend_w, top)
        painter.end()

    def legend_entries(self) -> list[tuple[str, str]]:
        """``(class, colour)`` of each line, in the legend's order."""
        return [(name, class_color(name)) for name in self.series]

    def _legend_width(self, painter) -> int:
        """Width of the legend (0 without series)."""
        if not self.series:
            return 0
        return max(painter.fontMetrics().horizontalAdvance(n) for n in self.series) + 26

    def _draw_legend(self, painter, x: float, top: float) -> None:
        """The legend right of the plot: a short line in each class colour, then its name."""
        line_h = painter.fontMetrics().height()
        width = self._legend_width(painter)
        for k, (name, _) in enumerate(self.legend_entries()):
            y = top + k * line_h
            painter.setPen(_class_pen(name))
            painter.drawLine(int(x), int(y + line_h / 2), int(x + 14), int(y + line_h / 2))
            painter.setPen(_text_colour(self))
            painter.drawText(QRectF(x + 18, y, width - 18, line_h),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)


#: Layer events after which the statistics are recomputed. Points layers have no ``shown`` event:
#: setting ``shown`` refreshes the layer, which emits ``set_data``.
_EVENTS = ("data", "features", "set_data")


#: What the Statistics dock says while no defect layer is there to count (it showed MoS2's
#: class rows, empty, to a trial analysing WS2).
NO_LAYER_NOTE = ("No defect layer yet: run Detect in the Detect defects dock, or open a defect "
                 "CSV; its classes and counts appear here.")


class StatsWidget(QWidget):
    """Live statistics of the shown points of a detections layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._connected = None
        self._connected_image = None  # the image of the layer shown (its dose metadata)
        self.layer_combo = layer_combo()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["count", "per nm²", "per cell", "per site"])
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.classes: tuple[str, ...] = ()
        self._set_rows(())  # (rows come with a defect layer: its material's classes)
        self.chart = BarChart()
        self.chart.setVisible(False)
        self.note = QLabel(NO_LAYER_NOTE)
        self.note.setWordWrap(True)
        # What the "†" on the table's figures means, right above the table (shown only with a
        # pair to name): at the end of the note below it was out of view in a stacked dock.
        self.overlap_note = QLabel("")
        self.overlap_note.setWordWrap(True)
        self.overlap_note.setVisible(False)
        # Movies (3-D layers): counts per class against frame (and cumulative dose if known).
        self.frame_table = QTableWidget(0, len(LEGACY_CLASSES))
        self.frame_table.setMinimumHeight(100)
        self.frame_plot = LinePlot()
        self.frame_note = QLabel("")
        self.frame_note.setWordWrap(True)
        layout = scrolling_layout(self)
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.overlap_note)
        layout.addWidget(self.table)
        # The note right under the table it explains (its "†"), above the chart: below the
        # chart it sat under the fold of a dock stacked with others.
        layout.addWidget(self.note)
        layout.addWidget(self.chart)
        layout.addWidget(self.frame_note)
        layout.addWidget(self.frame_table)
        layout.addWidget(self.frame_plot)
        self._show_movie_part(False)
        self._refresh_layers = follow_layers(self.viewer, self.layer_combo, is_defect_layer,
                                             self._layer_changed, follow_new=self._follows)

    def _follows(self, added) -> bool:
        """:func:`~.review.follows_new_detections`, as the Review dock (a trial saw the two
        docks on different layers once a reopened table arrived)."""
        current = self.layer() if hasattr(self, "layer_combo") else None
        return follows_new_detections(current, added)

    def layer(self):
        return layer_by_name(self.viewer, self.layer_combo)

    def _set_rows(self, classes) -> None:
        """One table row per class; the table is as tall as its rows plus the horizontal scroll
        bar a narrow dock shows, so that neither the bar chart below nor the scroll bar ever
        covers the last row."""
        self.classes = tuple(classes)
        self.table.setRowCount(len(self.classes))
        self.table.setVerticalHeaderLabels(list(self.classes))
        header = self.table.horizontalHeader().sizeHint().height()
        rows = sum(self.table.rowHeight(r) for r in range(len(self.classes)))
        scroll = self.table.horizontalScrollBar().sizeHint().height()
        height = header + rows + scroll + 2 * self.table.frameWidth() + 2
        self.table.setMinimumHeight(height)
        self.table.setMaximumHeight(height)

    def row_labels(self) -> list[str]:
        """The class of each table row, top to bottom."""
        return [self.table.verticalHeaderItem(r).text() for r in range(self.table.rowCount())]

    def _layer_changed(self, *args) -> None:
        if self._connected is not None:
            for ev in _EVENTS:
                emitter = getattr(self._connected.events, ev, None)
                if emitter is not None:
                    emitter.disconnect(self.update_stats)
        if self._connected_image is not None:
            self._connected_image.events.metadata.disconnect(self.update_stats)
            self._connected_image = None
        layer = self.layer()
        self._connected = layer
        if layer is not None:
            for ev in _EVENTS:
                emitter = getattr(layer.events, ev, None)
                if emitter is not None:
                    emitter.connect(self.update_stats)
            # (a dose per frame given to a movie's image after its detection: the plot follows)
            image = layer.metadata.get("atomdefect", {}).get("image")
            if image in self.viewer.layers:
                self._connected_image = self.viewer.layers[image]
                self._connected_image.events.metadata.connect(self.update_stats)
        self.update_stats()

    def statistics(self) -> pd.DataFrame | None:
        """Statistics of the shown points of the selected layer."""
        layer = self.layer()
        if layer is None:
            return None
        meta = layer.metadata.get("atomdefect", {})
        shown = np.asarray(layer.shown, bool)
        classes = layer.features["class"][shown] if len(layer.features) == len(shown) else \
            pd.Series([], dtype=str)
        return defect_statistics(classes, meta.get("n_metal_sites"),
                                 meta.get("n_chalcogen_sites"), meta.get("area_nm2"),
                                 layer_classes(layer))

    def _tracks_note(self) -> str:
        """"; count: detections summed over the frames (…); distinct defects (tracks …): V_S 31,
        …" for a movie layer with ``track_id``: each track once, in its class over its frames
        (:func:`~..core.io.table.track_classes`, the user's edits included)."""
        layer = self.layer()
        features = layer.features if layer is not None else pd.DataFrame()
        shown = np.asarray(layer.shown, bool) if layer is not None else np.zeros(0, bool)
        text = ("; count: detections summed over the frames (a defect seen in ten frames counts "
                "ten times)")
        if "track_id" not in features.columns or len(features) != len(shown):
            return text
        from ..core.io.table import track_classes

        table = features.loc[shown].copy()
        table["pooled"] = track_classes(table)
        linked = table[table["track_id"] >= 0]
        per_class = linked.groupby("pooled")["track_id"].nunique()
        alone = table[table["track_id"] < 0]["class"].astype(str).value_counts()
        tracks = {c: int(per_class.get(c, 0)) + int(alone.get(c, 0)) for c in self.classes}
        listed = ", ".join(f"{c} {n}" for c, n in tracks.items() if n)
        return text + (f"; distinct defects (tracks, each in the class its frames add up to): "
                       f"{listed}" if listed else "")

    def per_frame(self) -> pd.DataFrame | None:
        """Counts per class in every frame of the selected movie layer (shown points only), with
        a ``cumulative_dose`` column (e/Å² at the end of the frame) when the dose per frame is
        known (see :func:`~..core.detect.movie.dose_per_frame`); ``None`` for a 2-D layer."""
        from ..core.detect.movie import counts_per_frame, cumulative_dose, dose_per_frame

        layer = self.layer()
        if layer is None or layer.ndim != 3:  # a 3-D defects layer is a movie's
            return None
        meta = layer.metadata.get("atomdefect", {})
        shown = np.asarray(layer.shown, bool)
        data = np.asarray(layer.data)
        frames_all = np.round(data[:, 0]).astype(int) if len(data) else np.zeros(0, int)
        n_frames = meta.get("n_frames") or (int(frames_all.max()) + 1 if len(data) else 0)
        ok = len(layer.features) == len(shown)
        table = pd.DataFrame({
            "frame": frames_all[shown] if ok else np.zeros(0, int),
            "class": layer.features["class"].astype(str).to_numpy()[shown] if ok else []})
        classes = list(layer_classes(layer))
        classes += sorted(set(table["class"]) - set(classes))  # e.g. a class added by hand
        # Frames the run analysed (one left out — blank, constant — has no row, not zeros)
        analysed = [int(f["frame"]) for f in meta.get("frames") or [] if "frame" in f]
        counts = counts_per_frame(table, analysed or range(n_frames), classes)
        per_frame = dose_per_frame(layer.metadata)
        image = meta.get("image")
        if per_frame is None and image in self.viewer.layers:
            # (a dose given to the movie's image after its detection counts too)
            per_frame = dose_per_frame(self.viewer.layers[image].metadata)
        dose = cumulative_dose(per_frame, counts.index)
        if dose is not None:
            counts["cumulative_dose"] = dose
        return counts

    def _show_movie_part(self, visible: bool) -> None:
        for w in (self.frame_table, self.frame_plot, self.frame_note):
            w.setVisible(visible)

    def _update_frames(self) -> None:
        counts = self.per_frame()
        self._show_movie_part(counts is not None)
        if counts is None:
            return
        columns = list(counts.columns)
        self.frame_table.setColumnCount(len(columns))
        self.frame_table.setHorizontalHeaderLabels(
            [("dose (e/Å²)" if c == "cumulative_dose" else c) for c in columns])
        self.frame_table.setRowCount(len(counts))
        blurred = blurred_frames(self.layer())
        self.frame_table.setVerticalHeaderLabels(
            [f"{f} (blurred)" if f in blurred else str(f) for f in counts.index])
        for r, (_, row) in enumerate(counts.iterrows()):
            for c, col in enumerate(columns):
                text = f"{row[col]:.3g}" if col == "cumulative_dose" else f"{int(row[col])}"
                self.frame_table.setItem(r, c, QTableWidgetItem(text))
        # (counts are short: columns as wide as their header, not Qt's 100 px each, which hid
        # an alloy's fifth and sixth class behind a scroll bar in a trial)
        self.frame_table.resizeColumnsToContents()
        has_dose = "cumulative_dose" in counts.columns
        x = counts["cumulative_dose"] if has_dose else counts.index
        classes = [c for c in counts.columns if c != "cumulative_dose"]
        self.frame_plot.set_data(list(x), {c: counts[c].tolist() for c in classes},
                                 "cumulative dose (e/Å²)" if has_dose else "frame")
        self.frame_note.setText(
            "Per frame (shown points)" + (", plotted against the cumulative dose." if has_dose
                                          else ", plotted against frame (no dose per frame is "
                                          "known: metadata key dose_e_per_A2_per_frame).")
            + (" Frames marked blurred have columns wider than the model was trained on: their "
               "calls fail (out of focus?)." if blurred & set(counts.index) else ""))

    def update_stats(self, *args) -> None:
        stats = self.statistics()
        self._update_frames()
        if stats is None:  # (no defect layer, or it was deleted: no figures of another's)
            self._set_rows(())
            self.chart.set_values({})
            self.chart.setVisible(False)  # (an empty chart left a blank gap above the sentence)
            self.note.setText(NO_LAYER_NOTE)
            self._show_overlap_note("")
            return
        if tuple(stats.index) != self.classes:
            self._set_rows(stats.index)
        layer = self.layer()
        overlaps = [] if layer is None else layer.metadata.get("atomdefect", {}).get(
            "class_overlaps", [])
        partner = _overlap_partners(overlaps, stats.index)
        for r, cls in enumerate(self.classes):
            row = stats.loc[cls]
            # (a table opened without its image knows no area, cells or sites: a dash)
            values = [f"{int(row['count'])}",
                      f"{row['per_nm2']:.3g}" if np.isfinite(row["per_nm2"]) else "–",
                      f"{row['per_cell']:.3g}" if np.isfinite(row["per_cell"]) else "–",
                      f"{row['per_site']:.2%}" if np.isfinite(row["per_site"]) else "–"]
            # The figures of an overlapping pair carry the note's mark: each is exact as a
            # count of calls, what is uncertain is the split ("≈" had read as an estimate).
            # (a pair's class with no call shows a plain 0: one side of a one-sided split)
            marked = cls in partner and int(row["count"]) > 0
            for c, text in enumerate(values):
                item = QTableWidgetItem(f"{text} {OVERLAP_MARK}" if marked else text)
                if cls in partner:  # the split of an overlapping pair is uncertain
                    item.setToolTip(f"{cls} and {partner[cls]} overlap in this image: "
                                    f"{pair_note(cls, partner[cls])}.")
                self.table.setItem(r, c, item)
        movie = self.per_frame() is not None
        # (a movie's count is of detections in every frame: a defect seen in ten frames is ten)
        self.table.horizontalHeaderItem(0).setText("count (all frames)" if movie else "count")
        # Columns as wide as their text and header (Qt's default of 100 px each hid "per site"
        # behind a scroll bar in a dock of the usual width; a header renamed after the resize
        # read ": (all fra"); the last one takes what is left.
        self.table.resizeColumnsToContents()
        self.chart.set_values({c: int(stats.loc[c, "count"]) for c in self.classes})
        self.chart.setVisible(True)
        estimated = layer is not None and \
            layer.metadata.get("atomdefect", {}).get("sites_from") == "image area"
        self.note.setText("Shown points only" + (", all frames together (per nm², cell and site: "
                                                 "averages over the frames)" if movie else "")
                          + (self._tracks_note() if movie else "")
                          + (" (reopened table: unit cells and sites estimated from the image "
                             "area)" if estimated else "")
                          + ". " + _per_site_note(self.classes))
        self._show_overlap_note(_overlap_note(overlaps, stats).strip())

    def _show_overlap_note(self, text: str) -> None:
        self.overlap_note.setText(text)
        self.overlap_note.setVisible(bool(text))


#: The mark on the figures of a pair of classes the image could not tell apart, and on the note
#: under the table that says so.
OVERLAP_MARK = "†"


def _overlap_partners(overlaps: list, classes) -> dict[str, str]:
    """Each class of an overlapping pair shown in the table, with the other one: their rows'
    figures carry :data:`OVERLAP_MARK` (:mod:`~..core.detect.overlap`)."""
    shown = set(classes)
    out: dict[str, str] = {}
    for pair in overlaps:
        if len(pair) == 2 and set(pair) <= shown:
            out[pair[0]], out[pair[1]] = pair[1], pair[0]
    return out


def _overlap_note(overlaps: list, stats: pd.DataFrame) -> str:
    """" V_Se and S_Se overlap in this image: count them together (496)." for each pair the
    detection found it could not tell apart (:mod:`~..core.detect.overlap`), with the pair's
    current count (edits included)."""
    out = ""
    for pair in overlaps:
        if len(pair) == 2 and all(c in stats.index for c in pair):
            total = int(sum(stats.loc[c, "count"] for c in pair))
            if total == 0:  # (all hidden below a confidence, or corrected away)
                continue
            out += (f" {OVERLAP_MARK} {pair[0]} and {pair[1]} overlap in this image: "
                    f"{sum_sentence(pair[0], pair[1], total)}.")
    return out


def pair_note(a: str, b: str) -> str:
    """What a table cell of an overlapping pair's class is (its tooltip), without a count."""
    pair = one_atom_pair(a, b)
    if pair is None:
        return "their split is uncertain, their sum is not"
    return (f"each of their columns holds one {pair[0]} atom; whether the other site holds "
            f"{pair[1]} or is empty is uncertain")


def _per_site_note(classes) -> str:
    """What 'per site' is relative to, for the classes shown."""
    chalcogen = [c for c in classes if getattr(lookup_class(c), "site", None) == "chalcogen"]
    double = [c for c in chalcogen if _ATOMS_AFFECTED.get(lookup_class(c).kind) == 2]
    metal = [c for c in classes if getattr(lookup_class(c), "site", None) == "metal"]
    parts = []
    if chalcogen:
        parts.append(f"of chalcogen atoms ({', '.join(chalcogen)}"
                     + (f"; {', '.join(double)} count two" if double else "") + ")")
    if metal:
        parts.append(f"of metal sites ({', '.join(metal)})")
    return "'per site': " + ", ".join(parts) + "." if parts else ""
