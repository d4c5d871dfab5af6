"""Fine-tune dock widget: pick real cells, retrain both stages, manage user models."""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..core.finetune.finetune import FinetuneSettings
from ..core.finetune.simulator import describe_calibration
from ..core.materials.materials import MATERIALS
from ._common import (
    WrappingLabel,
    foldable,
    follow_layers,
    is_image_layer,
    layer_by_name,
    layer_combo,
    real_layer,
    run_pixel_size,
    scrolling_layout,
    show_in_dock,
    table_analysis_of,
)
from ._worker import LatticeCache, error_sentence, follow_models, start_job
from .review import is_defect_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari

CELLS_LAYER = "fine-tune cells"
REGION_LAYER = "fine-tune region"


#: Widest a montage of tiles in the dock may be (pixels): wider, it widened the whole dock area
#: and the dock's right side was cut off in a 1700-pixel window (trial, twenty-first session).
MONTAGE_MAX_WIDTH = 280


def montage_pixmap(tiles: np.ndarray, columns: int = 6, zoom: int = 2) -> QPixmap:
    """A QPixmap showing a few tiles side by side (contrast stretched per tile), enlarged by up to
    ``zoom`` while it stays within :data:`MONTAGE_MAX_WIDTH`."""
    tiles = np.asarray(tiles, float)[: columns * 2]
    if len(tiles) == 0:
        return QPixmap()
    s = tiles.shape[-1]
    zoom = max(1, min(zoom, MONTAGE_MAX_WIDTH // (columns * (s + 2))))
    rows = int(np.ceil(len(tiles) / columns))
    canvas = np.zeros((rows * (s + 2), columns * (s + 2)), np.uint8)
    for k, t in enumerate(tiles):
        lo, hi = np.percentile(t, [1, 99.5])
        img = np.clip((t - lo) / max(hi - lo, 1e-9), 0, 1) * 255
        r, c = divmod(k, columns)
        canvas[r * (s + 2):r * (s + 2) + s, c * (s + 2):c * (s + 2) + s] = img
    canvas = np.ascontiguousarray(np.kron(canvas, np.ones((zoom, zoom), np.uint8)))
    h, w = canvas.shape
    qimg = QImage(canvas.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(qimg)


class PartTimer:
    """Time left in the training part a progress item belongs to (stage 1 or the detector),
    from the rate of its own steps so far.

    The run's parts take very different times for different settings, so the fraction of the
    whole progress bar says little about the time left; a training loop's ``step``/``steps``
    does. A new part starts when ``steps`` changes or ``step`` goes back.
    """

    #: Steps a part must have run before its rate is trusted.
    MIN_STEPS = 6

    def __init__(self) -> None:
        self._part: tuple[int, float, int] | None = None  # (steps, start time, first step)
        self._last_step = -1

    def seconds_left(self, item: dict, now: float) -> float | None:
        """Seconds left in ``item``'s part, or ``None`` when it is not a training step or its
        part has not run :data:`MIN_STEPS` steps yet."""
        step, steps = item.get("step"), item.get("steps")
        if step is None or not steps:
            return None
        step, steps = int(step), int(steps)
        if self._part is None or self._part[0] != steps or step < self._last_step:
            self._part = (steps, now, step)
        self._last_step = step
        _, t0, first = self._part
        if step - first < self.MIN_STEPS:
            return None
        return (now - t0) / (step - first) * (steps - step)


def _lattice_job(image, material, pixel_size_nm, calibration="user"):
    """Worker body: the image's lattice (its warnings reach napari's notifications)."""
    from ..core.lattice.lattice import find_lattice

    yield {"fraction": 0.02, "message": "Finding the lattice…"}
    return find_lattice(image, material, pixel_size_nm=pixel_size_nm, calibration=calibration)


def _source_name(layer) -> str:
    """The image a model is tuned on, as its card names it: the file's name, as the command
    line writes it (the layer's name had no extension), else the layer's."""
    from pathlib import Path

    path = (layer.metadata or {}).get("atomdefect", {}).get("source_path")
    return Path(str(path)).name if path else layer.name


def _finetune_job(image, lattice, cell_ids, base, name, settings, corrections, device, source,
                  substituents=None):
    from ..core.finetune.finetune import iter_finetune
    from ..core.progress import relay

    return (yield from relay(iter_finetune(image, lattice, cell_ids, base, name, settings,
                                           corrections, device, source,
                                           substituents=substituents, command=WIDGET_COMMAND)))


#: How a model tuned in the dock was made, for its card (its settings are under
#: ``fine_tuning.settings``; ``atomdefect finetune`` repeats them from the command line).
WIDGET_COMMAND = "napari-atomdefect Fine-tune widget (settings: fine_tuning.settings)"


def suggested_sites(uncertain: np.ndarray, lattice) -> np.ndarray:
    """The least certain sites (``uncertain``, most uncertain first) to review: enough of them
    that their cells number :func:`~..core.finetune.verdict.min_cells_to_hold_out` — a fifth is
    then held out to check the result on the user's own cells (50 sites had given 48 cells, and
    no check) — or all of them. Without the lattice yet, that many sites and a tenth more."""
    from ..core.finetune.selection import select_cells
    from ..core.finetune.verdict import min_cells_to_hold_out

    want = min_cells_to_hold_out()
    if lattice is None:
        return uncertain[:int(want * 1.1)]
    for k in range(min(want, len(uncertain)), len(uncertain) + 1):
        if len(select_cells(lattice, uncertain[:k], None, False)) >= want:
            return uncertain[:k]
    return uncertain


class FinetuneWidget(QWidget):
    """Adapt both stages to the user's microscope from cells of their own image."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None  # the running job (a _worker.JobHandle): the lattice or fine-tuning
        self._job = ""  # "lattice" or "finetune"
        self._after_lattice = None  # "start" when Start waits for the lattice
        # (layer, frame, material, pixel size) -> Lattice, found in a worker; layers held weakly,
        # entries dropped when the layer is removed or its data change.
        self._lattices = LatticeCache(self.viewer)
        self._followed = None  # the image layer whose analysed material is followed
        self._watched_layers: list[weakref.ref] = []  # selection layers whose edits are followed
        self._part_timer = PartTimer()
        self.last_result = None

        self.image_combo = layer_combo()
        self.material = QComboBox()
        self.material.addItems(list(MATERIALS))
        self.pick_button = QPushButton("Pick cells (click)")
        self.region_button = QPushButton("Draw region")
        self.all_cells = QCheckBox("All cells of this image")
        self.suggest_button = QPushButton("Suggest cells to review")
        self.count_label = WrappingLabel("0 cells selected")  # (its note wraps in a narrow dock)
        self.preview = QLabel()
        self.corrections = layer_combo()
        self.use_corrections = QCheckBox("Learn from my corrected detections in")
        self.base_model = QComboBox()
        self.name_edit = QLineEdit("my-microscope")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.advanced = QGroupBox("Advanced")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        defaults = FinetuneSettings()
        self.noise_steps = QSpinBox()
        self.noise_steps.setRange(10, 20000)
        self.noise_steps.setValue(defaults.noise_steps)
        self.detector_steps = QSpinBox()
        self.detector_steps.setRange(10, 50000)
        self.detector_steps.setValue(defaults.detector_steps)
        self.noise_lr = QDoubleSpinBox()
        self.noise_lr.setDecimals(6)
        self.noise_lr.setRange(1e-6, 1e-2)
        self.noise_lr.setValue(defaults.noise_lr)
        self.detector_lr = QDoubleSpinBox()
        self.detector_lr.setDecimals(6)
        self.detector_lr.setRange(1e-6, 1e-1)
        self.detector_lr.setValue(defaults.detector_lr)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(2, 512)
        self.batch_size.setValue(defaults.detector_batch_size)
        # Short: a check box does not wrap its text, and a long one widened the whole dock area.
        self.keep_base = QCheckBox("Keep the base detector if fine-tuning loses")
        self.keep_base.setToolTip("Judged on held-out corrected cells, or on simulated images "
                                  "when there are too few of them.")
        self.keep_base.setChecked(defaults.keep_better_detector)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.start_button = QPushButton("Start fine-tuning")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = WrappingLabel("")
        # What the last run kept (fine-tuned or base detector, and why): stays after the status
        # moves on.
        self.outcome = WrappingLabel("")
        self.samples = QLabel()
        self.models = QListWidget()
        self.rename_button = QPushButton("Rename")
        self.delete_button = QPushButton("Delete")
        self.export_button = QPushButton("Export…")
        self.import_button = QPushButton("Import…")

        adv = QFormLayout(self.advanced)
        adv.addRow("Stage-1 steps", self.noise_steps)
        adv.addRow("Stage-2 steps", self.detector_steps)
        adv.addRow("Stage-1 learning rate", self.noise_lr)
        adv.addRow("Stage-2 learning rate", self.detector_lr)
        adv.addRow("Stage-2 batch size", self.batch_size)
        adv.addRow("Seed", self.seed)
        adv.addRow(self.keep_base)
        foldable(self.advanced)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Material", self.material)
        pick = QHBoxLayout()
        pick.addWidget(self.pick_button)
        pick.addWidget(self.region_button)
        form.addRow("Cells", pick)
        form.addRow("", self.all_cells)
        form.addRow("", self.suggest_button)
        form.addRow("", self.count_label)
        form.addRow("", self.preview)
        form.addRow(self.use_corrections)  # (the layer on a row of its own: the dock stays narrow)
        form.addRow("", self.corrections)
        form.addRow("Start from", self.base_model)
        form.addRow("New model name", self.name_edit)
        form.addRow("Device", self.device)
        run = QHBoxLayout()
        run.addWidget(self.start_button)
        run.addWidget(self.cancel_button)
        manage = QHBoxLayout()
        for b in (self.rename_button, self.delete_button, self.export_button, self.import_button):
            manage.addWidget(b)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addLayout(run)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.outcome)
        layout.addWidget(self.samples)
        layout.addWidget(QLabel("Your models"))
        layout.addWidget(self.models)
        layout.addLayout(manage)

        self.pick_button.clicked.connect(self.start_picking)
        self.region_button.clicked.connect(self.start_region)
        self.all_cells.toggled.connect(self.update_selection)
        self.material.currentTextChanged.connect(self.update_selection)
        self.material.currentTextChanged.connect(lambda m: self._base_for_material(m))
        self.suggest_button.clicked.connect(self.suggest_cells)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.rename_button.clicked.connect(self._rename_dialog)
        self.delete_button.clicked.connect(self._delete_selected)
        self.export_button.clicked.connect(self._export_dialog)
        self.import_button.clicked.connect(self._import_dialog)
        follow_layers(self.viewer, self.image_combo, is_image_layer, self._image_changed,
                      follow_new=True)
        follow_layers(self.viewer, self.corrections, is_defect_layer)
        self.viewer.layers.events.inserted.connect(self._watch_selection_layers)
        self.viewer.layers.events.inserted.connect(self._table_of_image_opened)
        # (a deleted cells or region layer takes its cells with it: the count follows)
        self.viewer.layers.events.removed.connect(self._selection_layer_removed)
        follow_models(self, self.refresh_models)  # on the GUI thread, whoever saved the model
        self._watch_selection_layers()
        self.refresh_models()

    # --------------------------------------------------------------- layers
    def _watch_selection_layers(self, event=None) -> None:
        for name in (CELLS_LAYER, REGION_LAYER):
            if name in self.viewer.layers:
                layer = real_layer(self.viewer.layers[name])
                if not any(w() is layer for w in self._watched_layers):
                    layer.events.data.connect(self.update_selection)
                    self._watched_layers.append(weakref.ref(layer))

    def _selection_layer_removed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and layer.name in (CELLS_LAYER, REGION_LAYER):
            # (no lattice search started for a layer going away: closing the viewer removes
            # every layer, and a search started then outlived the window and aborted napari)
            self.update_selection(find=False)

    def refresh_models(self) -> None:
        from ..core.models.registry import default_model_name, list_models

        # Keep the user's choice; the first time, the material's bundled default.
        current = self.base_model.currentText() or default_model_name(
            self.material.currentText())
        self.base_model.clear()
        self.models.clear()
        for info in list_models():
            if "noise" in info.card and "detector" in info.card:
                self.base_model.addItem(info.name)
            if not info.bundled:
                ft = info.card.get("fine_tuning", {})
                extra = f" — {ft.get('cells_used', '?')} cells of {ft.get('source_image', '?')}" \
                    if ft else ""
                if info.card.get("detector", {}).get("training", {}).get("kept_base_detector"):
                    extra += " (base detector kept)"
                self.models.addItem(info.name + extra)
        k = self.base_model.findText(current)
        if k >= 0:
            self.base_model.setCurrentIndex(k)

    def image_layer(self):
        return layer_by_name(self.viewer, self.image_combo)

    def _image_changed(self, *args) -> None:
        layer = real_layer(self.image_layer())
        if self._followed is not None and self._followed is not layer:
            self._followed.events.metadata.disconnect(self._follow_material)
            self._followed = None
        if layer is not None and self._followed is None:
            layer.events.metadata.connect(self._follow_material)
            self._followed = layer
        self._follow_material()
        self.update_selection()

    def _follow_material(self, *args) -> None:
        """Take the material the image was analysed as in the Detect widget (recorded on the
        image layer) or that a defect table reopened on it names, and that material's bundled
        model as the base when the base was another material's bundled model."""
        layer = self.image_layer()
        meta = {} if layer is None else layer.metadata.get("atomdefect", {})
        if layer is not None and not meta.get("material"):
            # Not analysed here: the material of a defect table reopened on this image
            meta = table_analysis_of(self.viewer, layer) or meta
        material = meta.get("material")
        if not material or material == self.material.currentText() \
                or self.material.findText(material) < 0:
            return
        self.material.setCurrentText(material)  # (the base follows, for its substituents too)
        self._base_for_material(material, meta.get("substituents"))

    def _table_of_image_opened(self, event) -> None:
        """A defect table opened on the image chosen: follow the material it names."""
        layer, image = getattr(event, "value", None), self.image_layer()
        if layer is not None and image is not None and \
                layer.metadata.get("atomdefect", {}).get("image") == image.name:
            self._follow_material()

    def _base_for_material(self, material: str, substituents=None) -> None:
        """Make ``material``'s bundled model the base when the base is another bundled model
        (or none): a user model chosen by hand stays."""
        from ..core.models.registry import default_model_name, list_models

        bundled = {info.name for info in list_models() if info.bundled}
        if self.base_model.currentText() in bundled or not self.base_model.currentText():
            k = self.base_model.findText(default_model_name(material, substituents))
            if k >= 0:
                self.base_model.setCurrentIndex(k)

    def _frame_index(self, layer) -> int | None:
        if np.ndim(layer.data) != 3:
            return None
        step = int(self.viewer.dims.current_step[0])
        return min(max(step, 0), layer.data.shape[0] - 1)

    def _frame(self):
        layer = self.image_layer()
        data = np.asarray(layer.data)
        frame = self._frame_index(layer)
        return layer, (data if frame is None else data[frame])

    # ------------------------------------------------------------ selection
    def _key(self) -> tuple:
        layer = self.image_layer()
        # the Detect widget's calibration policy (a lattice calibration of another analysis
        # is not kept)
        analysis = layer.metadata.get("atomdefect", {})
        px, source = run_pixel_size(layer, self.material.currentText(),
                                    analysis.get("substituents", ()))
        return (layer, self._frame_index(layer), self.material.currentText(), px, source)

    @property
    def lattice(self):
        """The lattice of the current image, frame, material and pixel size (``None`` if not
        found yet)."""
        return None if self.image_layer() is None else self._lattices.get(self._key())

    def ensure_lattice(self):
        """The current lattice, or ``None`` after starting to find it in a background worker
        (the selection is updated when it is there)."""
        lattice = self.lattice
        if lattice is None and self.worker is None and self.image_layer() is not None:
            key = self._key()
            layer, image = self._frame()

            def done(found):
                self._lattices[key] = found
                self.progress.setValue(100)  # (it stood at the search's first step: a trial)
                self.status.setText(f"Lattice: {found.n_cells} unit cells.")

            self._run("lattice", _lattice_job, (image, key[2], key[3], key[4]), done,
                      "Finding the lattice…")
        return lattice

    def _frame_kwargs(self) -> dict:
        """Scale, translate, units and plugin metadata of a selection layer drawn on the image
        (so that it follows the image, also through *Calibrate from lattice*)."""
        from .._layers import image_frame

        layer = self.image_layer()
        if layer is None:
            return {}
        return {**image_frame(layer),
                "metadata": {"atomdefect": {"kind": "finetune_selection", "image": layer.name}}}

    def start_picking(self) -> None:
        """Add (or activate) the Points layer in which clicks pick cells."""
        if CELLS_LAYER not in self.viewer.layers:
            self.viewer.add_points(np.zeros((0, 2)), name=CELLS_LAYER, **self._frame_kwargs(),
                                   face_color="#ffd70080", border_color="#ffd700", size=12,
                                   symbol="cross")
            self._watch_selection_layers()
        layer = self.viewer.layers[CELLS_LAYER]
        self.viewer.layers.selection.active = layer
        layer.mode = "add"

    def start_region(self) -> None:
        """Add (or activate) the Shapes layer in which drawn polygons select cells."""
        if REGION_LAYER not in self.viewer.layers:
            self.viewer.add_shapes(name=REGION_LAYER, **self._frame_kwargs(), edge_color="#ffd700",
                                   face_color="#ffd70030", edge_width=2)
            self._watch_selection_layers()
        layer = self.viewer.layers[REGION_LAYER]
        self.viewer.layers.selection.active = layer
        layer.mode = "add_polygon"

    def selected_cells(self) -> np.ndarray:
        """Indices of the selected cells of the current image's lattice."""
        from ..core.finetune.selection import select_cells

        if self.image_layer() is None:
            return np.zeros(0, int)
        if not self._selecting():
            return np.zeros(0, int)
        lattice = self.lattice
        if lattice is None:
            return np.zeros(0, int)
        points = self.viewer.layers[CELLS_LAYER].data if CELLS_LAYER in self.viewer.layers \
            else None
        polys = list(self.viewer.layers[REGION_LAYER].data) \
            if REGION_LAYER in self.viewer.layers else None
        return select_cells(lattice, points, polys, self.all_cells.isChecked())

    def _selecting(self) -> bool:
        return self.all_cells.isChecked() or CELLS_LAYER in self.viewer.layers \
            or REGION_LAYER in self.viewer.layers

    def update_selection(self, *args, find: bool = True) -> None:
        """Count and preview the selected cells (cheap: the lattice is found once, in a worker,
        and only the previewed cells are tiled); ``find=False``: without a lattice found, the
        count waits for one (no search is started)."""
        from ..core.finetune.selection import MIN_CELLS, preview_tiles

        if self.image_layer() is not None and self._selecting() and self.lattice is None:
            if not find:
                self.count_label.setText("")
                self.preview.clear()
                return
            if self.ensure_lattice() is None:
                self.count_label.setText("Finding the lattice…")
                return
        ids = self.selected_cells()
        note = "" if len(ids) >= MIN_CELLS or len(ids) == 0 else \
            f" (at least {MIN_CELLS} are needed)"
        self.count_label.setText(f"{len(ids)} cell{'' if len(ids) == 1 else 's'} selected{note}")
        if len(ids):
            _, image = self._frame()
            self.preview.setPixmap(montage_pixmap(preview_tiles(image, self.lattice, ids[:12])))
        else:
            self.preview.clear()

    def suggest_cells(self) -> None:
        """Put the least certain sites of the latest detections into the cells layer."""
        from napari.utils.notifications import show_info

        layers = [lyr for lyr in self.viewer.layers
                  if lyr.metadata.get("atomdefect", {}).get("uncertain_sites_px")]
        if not layers:
            show_info("Run detection first: suggestions are the cells whose predictions are "
                      "least certain.")
            return
        pts = suggested_sites(np.asarray(layers[-1].metadata["atomdefect"]["uncertain_sites_px"]),
                              self.lattice)
        self.start_picking()
        cells = self.viewer.layers[CELLS_LAYER]
        picked = np.asarray(cells.data, float)
        if len(picked) and len(pts) and picked.shape[1] == pts.shape[1]:
            # the cells picked already stay; the suggestions on other cells are added
            from scipy.spatial import cKDTree

            near = cKDTree(picked[:, -2:]).query(pts[:, -2:])[0] < 0.5 * self.lattice.a_px
            pts = np.concatenate([picked, pts[~near]])
        else:
            picked = picked[:0]
        added = len(pts) - len(picked)
        cells.data = pts
        cells.mode = "pan_zoom"
        # (the cells layer's points: picked by hand or suggested before — a second Suggest
        # said "0 … beside the 55 you picked" of its own suggestions: a trial)
        kept = f" (beside the {len(picked)} already marked)" if len(picked) else ""
        if not added and len(picked):
            show_info(f"No new least-certain sites: the {len(picked)} marked already hold "
                      "them. Review (and correct) their detections, then fine-tune on these cells.")
            return
        show_info(f"{added} least-certain sites marked{kept}: review (and correct) their "
                  "detections first, then fine-tune on these cells.")

    # ------------------------------------------------------------------ run
    def settings(self):
        s = FinetuneSettings(seed=int(self.seed.value()))
        if self.advanced.isChecked():
            s.noise_steps = int(self.noise_steps.value())
            s.detector_steps = int(self.detector_steps.value())
            s.noise_lr = float(self.noise_lr.value())
            s.detector_lr = float(self.detector_lr.value())
            s.detector_batch_size = int(self.batch_size.value())
            s.keep_better_detector = self.keep_base.isChecked()
        s.use_corrections = self.use_corrections.isChecked()
        return s

    def start(self) -> None:
        """Start fine-tuning in a background worker (Cancel stops it within a few seconds).

        Without the lattice yet, it is found first (in a worker) and the run starts after it.
        """
        from napari.utils.notifications import show_error

        from ..core.errors import AtomDefectError
        from ..core.finetune.selection import check_selection, unreviewed_note
        from ..core.io.table import table_from_points

        if self.image_layer() is None:
            self.status.setText("Open an image first: fine-tuning learns from its cells.")
            return
        if self.worker is not None:
            if self._job == "lattice":
                self._after_lattice = "start"
            return
        if self.ensure_lattice() is None:
            self._after_lattice = "start"
            self.status.setText("Finding the lattice first…")
            return
        try:
            ids = self.selected_cells()
            check_selection(self.lattice, ids)
        except AtomDefectError as exc:
            self.status.setText(str(exc))
            show_error(str(exc))
            return
        corrections = None
        unreviewed = ""
        layer, image = self._frame()
        if self.use_corrections.isChecked() and self.corrections.currentText():
            lyr = self.viewer.layers[self.corrections.currentText()]
            # Corrections made on another image would label these cells with its calls.
            made_on = lyr.metadata.get("atomdefect", {}).get("image")
            if made_on and made_on != layer.name:
                text = (f"The corrections in {lyr.name!r} were made on {made_on!r}, not on "
                        f"{layer.name!r}: choose that image to fine-tune on, or this image's own "
                        "corrected detections.")
                self.status.setText(text)
                show_error(text)
                return
            corrections = table_from_points(lyr.data, lyr.features, None)
            unreviewed = unreviewed_note(self.lattice, ids, corrections)  # (said after the start)
        name = self.name_edit.text().strip() or "my-microscope"
        from ..core.models.registry import check_new_user_model

        try:
            check_new_user_model(name)
        except AtomDefectError as exc:
            self.status.setText(str(exc))
            show_error(str(exc))
            return
        self.outcome.setText("")
        self._part_timer = PartTimer()
        # the substituents the image was analysed for (Detect's run), when for this material
        analysis = layer.metadata.get("atomdefect", {})
        substituents = (tuple(analysis.get("substituents") or ())
                        if analysis.get("material") == self.material.currentText()
                        and "substituents" in analysis else None)
        self._run("finetune", _finetune_job,
                  (image, self.lattice, ids, self.base_model.currentText() or None, name,
                   self.settings(), corrections, self.device.currentText(),
                   _source_name(layer), substituents),
                  self._on_done, "Starting fine-tuning…")
        if unreviewed:  # said once the run has started (its progress replaces the status)
            from napari.utils.notifications import show_warning

            self.outcome.setText(unreviewed)
            show_warning(unreviewed)

    def _run(self, kind: str, job, args, on_done, label: str) -> None:
        self._job = kind
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        self.status.setText(label)
        show_in_dock(self, self.progress, self.status)  # (the progress, in a squeezed dock too)
        self.worker = start_job(job, args, on_progress=self._on_progress, on_done=on_done,
                                on_error=self._on_error, on_aborted=self._on_aborted,
                                on_finished=self._on_finished, owner=self)

    def _on_progress(self, item: dict) -> None:
        from napari.utils.notifications import show_info

        frac = float(item.get("fraction", 0))
        self.progress.setValue(int(100 * frac))
        left = (self._part_timer.seconds_left(item, time.perf_counter())
                if self._job == "finetune" else None)
        eta = f", about {left:.0f} s left in this part" if left is not None else ""
        self.status.setText(f"{item.get('message', '')}{eta}")
        if "samples" in item:
            self.samples.setPixmap(montage_pixmap(item["samples"], columns=4))
        # The fitted simulator and the held-out check are worth keeping after the status moves on.
        if "calibration" in item:
            show_info(describe_calibration(item["calibration"]))
        if "real_validation" in item:
            show_info(item["message"])

    def _on_done(self, result) -> None:
        from napari.utils.notifications import show_info, show_warning

        self.last_result = result
        self.progress.setValue(100)
        metrics = result["card"]["detector"]["metrics"]
        text = f"{result['message']} Validation F1 (simulated): " + ", ".join(
            f"{k} {v:.2f}" for k, v in metrics["validation_site_f1"].items()) + "."
        real = metrics.get("real_validation")
        if real and real.get("n_defect_sites"):  # (no defect held out: no F1 to give, not nan)
            text += (f" On your held-out cells: mean F1 {real['mean_f1_before']:.2f} → "
                     f"{real['mean_f1_after']:.2f}.")
        self.status.setText(text)
        outcome = result.get("outcome", "")
        self.outcome.setText(outcome)
        lost = result["card"]["fine_tuning"].get("outcome", {}).get("lost", False)
        show_info(f"Model {result['path'].name} saved; it is now in the Detect widget's list.")
        (show_warning if lost else show_info)(outcome)  # (last: the toast a user sees)
        show_in_dock(self, self.status, self.outcome)  # (a squeezed dock hid both: a trial)

    def _on_error(self, exc) -> None:
        from napari.utils.notifications import show_error

        text = error_sentence(exc)
        if self._job == "lattice":
            self._after_lattice = None
            self.count_label.setText(text)
            self.status.setText(text)
            show_error(text)
            return
        self.status.setText(text)
        show_error(f"Fine-tuning failed, no model was changed: {text}")

    def _on_aborted(self) -> None:
        self._after_lattice = None
        self.progress.setFormat("Cancelled")
        self.status.setText("Cancelled: no model was written, existing models are unchanged."
                            if self._job == "finetune" else "Cancelled.")

    def _on_finished(self) -> None:
        kind, then = self._job, self._after_lattice
        self.worker = None
        self._job = ""
        self._after_lattice = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if kind == "lattice" and self.lattice is not None:
            self.update_selection()
            if then == "start":
                self.start()
        elif kind == "finetune" and self.lattice is None and self._selecting():
            self.update_selection()  # the image or frame changed during the run

    def cancel(self) -> None:
        """Stop the running job at its next progress item (within a few seconds)."""
        if self.worker is not None:
            self._after_lattice = None
            self.worker.cancel()

    # --------------------------------------------------------------- models
    def _selected_model_name(self) -> str | None:
        item = self.models.currentItem()
        return item.text().split(" — ")[0] if item else None

    def _rename_dialog(self) -> None:
        from ..core.models.registry import ModelError, rename_model

        old = self._selected_model_name()
        if not old:
            return
        new, ok = QInputDialog.getText(self, "Rename model", "New name", text=old)
        if ok and new:
            try:
                rename_model(old, new.strip())
            except ModelError as exc:
                self.status.setText(str(exc))
            else:
                self.status.setText(f"Renamed model {old} to {new.strip()}.")

    def _delete_selected(self) -> None:
        from ..core.models.registry import ModelError, delete_model

        name = self._selected_model_name()
        if not name:
            return
        # (a model is hours of training or a user's corrections: one click must not lose it)
        if QMessageBox.question(
                self, "Delete model", f"Delete the model {name}? This cannot be undone "
                "(Export… keeps a copy first).",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            self.status.setText(f"Model {name} kept.")
            return
        try:
            delete_model(name)
        except (ModelError, OSError) as exc:
            self.status.setText(f"Not deleted: {error_sentence(exc)}")
            return
        self.status.setText(f"Deleted model {name}.")

    def _export_dialog(self) -> None:
        from napari.utils.notifications import show_error

        from ..core.models.registry import ModelError, export_model

        name = self._selected_model_name()
        if not name:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export model", f"{name}.zip", "Zip (*.zip)")
        if path:
            try:
                export_model(name, path)
            except (ModelError, OSError) as exc:
                text = f"Not exported: {error_sentence(exc)}"
                self.status.setText(text)
                show_error(text)
                return
            self.status.setText(f"Exported {name} to {path}.")

    def _import_dialog(self) -> None:
        from ..core.models.registry import ModelError, import_model

        path, _ = QFileDialog.getOpenFileName(self, "Import model", "", "Zip (*.zip)")
        if path:
            try:
                dst = import_model(path)
                self.status.setText(f"Imported model {dst.name}.")
            except ModelError as exc:
                self.status.setText(str(exc))


__all__ = ["FinetuneWidget"]
