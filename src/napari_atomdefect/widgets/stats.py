"""Statistics dock widget: counts, densities and concentrations, updated live as points change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QComboBox, QLabel, QTableWidget, QTableWidgetItem, QWidget

from .._layers import CLASS_COLORS
from ..core.materials.materials import DEFECT_CLASSES
from ._common import follow_layers, layer_by_name, scrolling_layout
from .review import is_defect_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari


def defect_statistics(classes: pd.Series, n_metal: int | None, n_chalcogen: int | None,
                      area_nm2: float | None) -> pd.DataFrame:
    """Counts per class, per nm², per unit cell, and per lattice site of the affected element.

    ``per_site`` is relative to chalcogen *atoms* (two per column) for ``V_S``/``O_S``, to chalcogen
    atoms removed for ``V_S2`` (two per defect), and to metal sites for ``V_Mo``.
    """
    counts = classes.astype(str).value_counts()
    rows = {}
    for cls in DEFECT_CLASSES:
        n = int(counts.get(cls, 0))
        if cls == "V_Mo":
            per_site = n / n_metal if n_metal else np.nan
        elif n_chalcogen:
            atoms = 2 * n if cls == "V_S2" else n
            per_site = atoms / (2 * n_chalcogen)
        else:
            per_site = np.nan
        rows[cls] = {"count": n, "per_nm2": n / area_nm2 if area_nm2 else np.nan,
                     "per_cell": n / n_metal if n_metal else np.nan, "per_site": per_site}
    return pd.DataFrame.from_dict(rows, orient="index")


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
                             QColor(CLASS_COLORS.get(name, "#cccccc")))
            painter.setPen(QColor("#dddddd"))
            painter.drawText(QRectF(k * bar_w, h - 16, bar_w, 16), Qt.AlignmentFlag.AlignCenter, name)
            painter.drawText(QRectF(k * bar_w, h - 32 - bh, bar_w, 14),
                             Qt.AlignmentFlag.AlignCenter, f"{v:g}")
        painter.end()


class LinePlot(QWidget):
    """A minimal line plot of counts per class against frame (no plotting library needed)."""

    def __init__(self):
        super().__init__()
        self.x: list[float] = []
        self.series: dict[str, list[float]] = {}
        self.x_label = "frame"
        self.setMinimumHeight(130)

    def set_data(self, x, series: dict[str, list[float]], x_label: str = "frame") -> None:
        """Plot ``series`` (name → values, one per ``x``) against ``x``."""
        self.x = [float(v) for v in x]
        self.series = {k: [float(v) for v in vals] for k, vals in series.items()}
        self.x_label = x_label
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt API
        painter = QPainter(self)
        w, h = self.width(), self.height()
        left, right, top, bottom = 34, 8, 8, 36  # room for the tick values and the label
        painter.setPen(QColor("#888888"))
        painter.drawLine(left, h - bottom, w - right, h - bottom)
        painter.drawLine(left, top, left, h - bottom)
        if self.x:
            x0, x1 = min(self.x), max(self.x)
            span = (x1 - x0) or 1.0
            ymax = max([max(v, default=0) for v in self.series.values()] + [1])

            def point(xv, yv):
                return (left + (w - left - right) * (xv - x0) / span,
                        h - bottom - (h - top - bottom) * yv / ymax)

            for name, values in self.series.items():
                pen = painter.pen()
                pen.setColor(QColor(CLASS_COLORS.get(name, "#cccccc")))
                pen.setWidth(2)
                painter.setPen(pen)
                pts = [point(xv, yv) for xv, yv in zip(self.x, values, strict=False)]
                for (xa, ya), (xb, yb) in zip(pts, pts[1:], strict=False):
                    painter.drawLine(int(xa), int(ya), int(xb), int(yb))
            painter.setPen(QColor("#dddddd"))
            painter.drawText(QRectF(0, top - 4, left - 4, 14), Qt.AlignmentFlag.AlignRight,
                             f"{ymax:g}")
            painter.drawText(QRectF(left, h - bottom + 2, w - left - right, 14),
                             Qt.AlignmentFlag.AlignLeft, f"{x0:g}")
            painter.drawText(QRectF(left, h - bottom + 2, w - left - right, 14),
                             Qt.AlignmentFlag.AlignRight, f"{x1:g}")
        painter.setPen(QColor("#dddddd"))
        painter.drawText(QRectF(left, h - 18, w - left - right, 16),
                         Qt.AlignmentFlag.AlignCenter, self.x_label)
        painter.end()


#: Layer events after which the statistics are recomputed. Points layers have no ``shown`` event:
#: setting ``shown`` refreshes the layer, which emits ``set_data``.
_EVENTS = ("data", "features", "set_data")


class StatsWidget(QWidget):
    """Live statistics of the shown points of a detections layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._connected = None
        self.layer_combo = QComboBox()
        self.table = QTableWidget(len(DEFECT_CLASSES), 4)
        self.table.setHorizontalHeaderLabels(["count", "per nm²", "per cell", "per site"])
        self.table.setVerticalHeaderLabels(list(DEFECT_CLASSES))
        self.table.setMinimumHeight(150)
        self.chart = BarChart()
        self.note = QLabel("")
        self.note.setWordWrap(True)
        # Movies (3-D layers): counts per class against frame (and cumulative dose if known).
        self.frame_table = QTableWidget(0, len(DEFECT_CLASSES))
        self.frame_table.setMinimumHeight(100)
        self.frame_plot = LinePlot()
        self.frame_note = QLabel("")
        self.frame_note.setWordWrap(True)
        layout = scrolling_layout(self)
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.table)
        layout.addWidget(self.chart)
        layout.addWidget(self.note)
        layout.addWidget(self.frame_note)
        layout.addWidget(self.frame_table)
        layout.addWidget(self.frame_plot)
        self._show_movie_part(False)
        self._refresh_layers = follow_layers(self.viewer, self.layer_combo, is_defect_layer,
                                             self._layer_changed, follow_new=True)

    def layer(self):
        return layer_by_name(self.viewer, self.layer_combo)

    def _layer_changed(self, *args) -> None:
        if self._connected is not None:
            for ev in _EVENTS:
                emitter = getattr(self._connected.events, ev, None)
                if emitter is not None:
                    emitter.disconnect(self.update_stats)
        layer = self.layer()
        self._connected = layer
        if layer is not None:
            for ev in _EVENTS:
                emitter = getattr(layer.events, ev, None)
                if emitter is not None:
                    emitter.connect(self.update_stats)
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
                                 meta.get("n_chalcogen_sites"), meta.get("area_nm2"))

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
        counts = counts_per_frame(table, frames=range(n_frames))
        dose = cumulative_dose(dose_per_frame(layer.metadata), counts.index)
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
        self.frame_table.setVerticalHeaderLabels([str(f) for f in counts.index])
        for r, (_, row) in enumerate(counts.iterrows()):
            for c, col in enumerate(columns):
                text = f"{row[col]:.3g}" if col == "cumulative_dose" else f"{int(row[col])}"
                self.frame_table.setItem(r, c, QTableWidgetItem(text))
        has_dose = "cumulative_dose" in counts.columns
        x = counts["cumulative_dose"] if has_dose else counts.index
        self.frame_plot.set_data(list(x), {c: counts[c].tolist() for c in DEFECT_CLASSES},
                                 "cumulative dose (e/Å²)" if has_dose else "frame")
        self.frame_note.setText(
            "Per frame (shown points)" + (", plotted against the cumulative dose:" if has_dose
                                          else "; no dose per frame is known (metadata key "
                                          "dose_e_per_A2_per_frame):"))

    def update_stats(self, *args) -> None:
        stats = self.statistics()
        self._update_frames()
        if stats is None:
            return
        for r, cls in enumerate(DEFECT_CLASSES):
            row = stats.loc[cls]
            values = [f"{int(row['count'])}", f"{row['per_nm2']:.3g}", f"{row['per_cell']:.3g}",
                      f"{row['per_site']:.2%}" if np.isfinite(row["per_site"]) else "–"]
            for c, text in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.chart.set_values({c: int(stats.loc[c, "count"]) for c in DEFECT_CLASSES})
        movie = self.per_frame() is not None
        self.note.setText("Shown points only" + (", all frames together (per nm², cell and site: "
                                                 "averages over the frames)" if movie else "")
                          + ". 'per site': of chalcogen atoms (V_S, O_S; V_S2 counts two), of "
                          "metal sites (V_Mo).")
