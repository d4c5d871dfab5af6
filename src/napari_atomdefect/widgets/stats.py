"""Statistics dock widget: counts, densities and concentrations, updated live as points change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QComboBox, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from .._layers import CLASS_COLORS
from ..core.materials.materials import DEFECT_CLASSES
from ._common import follow_layers, layer_by_name
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
        layout = QVBoxLayout(self)
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.table)
        layout.addWidget(self.chart)
        layout.addWidget(self.note)
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

    def update_stats(self, *args) -> None:
        stats = self.statistics()
        if stats is None:
            return
        for r, cls in enumerate(DEFECT_CLASSES):
            row = stats.loc[cls]
            values = [f"{int(row['count'])}", f"{row['per_nm2']:.3g}", f"{row['per_cell']:.3g}",
                      f"{row['per_site']:.2%}" if np.isfinite(row["per_site"]) else "–"]
            for c, text in enumerate(values):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.chart.set_values({c: int(stats.loc[c, "count"]) for c in DEFECT_CLASSES})
        self.note.setText("Shown points only. 'per site': of chalcogen atoms (V_S, O_S; V_S2 "
                          "counts two), of metal sites (V_Mo).")
