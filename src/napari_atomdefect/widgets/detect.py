"""Detect dock widget: image -> lattice -> defects, run in a cancellable background worker."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from .._layers import (
    defect_layer_kwargs,
    defect_points_data,
    grid_layer_data,
    image_frame,
    site_layer_kwargs,
    track_layer_kwargs,
)
from ..core.detect.decision import NEUTRAL
from ..core.device import DEVICE_CHOICES
from ..core.io.image import SUPPORTED_EXTENSIONS
from ..core.materials.columns import (
    LEGACY_CLASSES,
    default_substituents,
    lookup_class,
    rule_substituents,
    supported_substituents,
)
from ..core.materials.materials import MATERIALS
from ..core.progress import relay
from ._common import (
    ClassLegend,
    StepProgressBar,
    WrappingLabel,
    analysis_key,
    fold_group,
    foldable,
    follow_layers,
    given_pixel_size,
    image_file_name,
    is_image_layer,
    layer_by_name,
    layer_combo,
    real_layer,
    run_pixel_size,
    same_layer,
    scrolling_layout,
    show_in_dock,
    table_analysis_of,
    warning_colour,
)
from ._tracks import follow_tracks
from ._worker import LatticeCache, error_sentence, follow_models, start_job

if TYPE_CHECKING:  # pragma: no cover
    import napari


def _find_lattice_noting(image, material, pixel_size_nm, calibration, region=None,
                         substituents=None):
    """``find_grains`` with its warnings recorded (not printed, not silenced): returns the
    lattices of the grains (the first holds the calibration and the messages) and the warning
    texts that are not already among its messages, for the widget to show.
    """
    import warnings

    from ..core.lattice.grains import find_grains

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lattices = find_grains(image, material, pixel_size_nm=pixel_size_nm,
                               calibration=calibration, region=region,
                               substituents=substituents)
    extra = [str(w.message) for w in caught if str(w.message) not in lattices[0].messages]
    return lattices, list(dict.fromkeys(extra))


def _lattice_job(image, material, pixel_size_nm, calibration, region=None, substituents=None):
    """Worker body: find the lattice (one progress message, then the result)."""
    yield {"fraction": 0.1, "message": "Finding the lattice…"}
    lattices, notes = _find_lattice_noting(image, material, pixel_size_nm, calibration, region,
                                           substituents)
    return {"lattice": lattices[0], "lattices": lattices, "warnings": notes}


def _model_view_job(image, material, pixel_size_nm, calibration, model, device, lattice,
                    region=None, substituents=None):
    """Worker body: translate the image cell by cell into the simulated domain (gen_ba)."""
    from ..core.cells.tiles import TileSpec
    from ..core.detect.coarse import reads_coarse_enlarged
    from ..core.detect.model_view import iter_model_view
    from ..core.device import select_device
    from ..core.models.registry import load_noise_generators, resolve_model

    info = resolve_model(model)
    dev, dev_text = select_device(device)
    notes: list[str] = []
    said: list[str] = []  # the lattice's own notes (calibration, faded parts): information
    grains = lattice  # the cached lattices of the grains (or a single lattice), or None
    if grains is None:
        yield {"fraction": 0.05, "message": "Finding the lattice…"}
        grains, notes = _find_lattice_noting(image, material, pixel_size_nm, calibration,
                                             region, substituents)
        said = list(grains[0].messages)
    _, gen_ba = load_noise_generators(info, dev)
    spec = TileSpec(**info.card["noise"].get("tile", {}))
    result = yield from relay(iter_model_view(np.asarray(image, np.float32), grains, gen_ba,
                                              dev, spec,
                                              enlarge=reads_coarse_enlarged(info.card,
                                                                            info.bundled)))
    first = grains[0] if isinstance(grains, (list, tuple)) else grains
    return {"image": result["image"], "model": info.name, "device": dev_text,
            "lattice": first, "warnings": notes, "messages": said}


class _PixelSizeBox(QDoubleSpinBox):
    """The pixel-size box: typed, without napari's − and + buttons (a step of 0.0005 nm is 6 %
    of a typical pixel size, and the buttons took the room of the value: a dock of the usual
    width read "0.00859 nm/p"), never narrower than its longest value. (A minimum set when the
    dock was built measured the font before the dock's style reached it: 10 px for the text.)"""

    def __init__(self) -> None:
        super().__init__()
        self.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)

    def minimumSizeHint(self):  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        hint.setWidth(max(hint.width(),
                          self.fontMetrics().horizontalAdvance("0.00000 nm/px") + 60))
        return hint


def _detect_job(image, material, pixel_size_nm, calibration, model, device, lattice,
                operating_point=None, substituents=None, region=None):
    """Worker body: detection with progress; returns the final result of ``iter_detect``."""
    from ..core.detect.detect import iter_detect

    return (yield from relay(iter_detect(
        image, pixel_size_nm=pixel_size_nm, material=material, model=model, device=device,
        calibration=calibration, lattice=lattice, operating_point=operating_point,
        substituents=substituents, region=region)))


def _movie_job(stack, material, pixel_size_nm, calibration, model, device,
               operating_point=None, substituents=None):
    """Worker body: every frame of a movie (lattice drift followed), then the defect tracks."""
    from ..core.detect.movie import iter_detect_frames, link_tracks

    result = yield from relay(iter_detect_frames(
        stack, pixel_size_nm=pixel_size_nm, material=material, model=model, device=device,
        calibration=calibration, operating_point=operating_point, substituents=substituents))
    yield {"fraction": 1.0, "message": "Linking the defects into tracks…"}
    return {**result, "defects": link_tracks(result["defects"])}


def rule_substituents_of(material: str) -> tuple[str, ...]:
    """The other metal of a Mo/W alloy of ``material``, then its own metal (antisites): boxes
    of their own, whose columns the levels tell (no model needed)."""
    return rule_substituents(material) if material in MATERIALS else ()


def default_substituents_of_model(info, material: str) -> tuple[str, ...]:
    """The substituents a run takes when none of the material's is ticked: the material's
    defaults the model knows (what ``None`` means to :func:`~..core.detect.decision.run_classes`)."""
    known = model_substituents_of(info)
    return tuple(d for d in default_substituents(material) if d in known)


def _model_info(name: str | None):
    """The :class:`~..core.models.registry.ModelInfo` called ``name`` (``None`` if unknown)."""
    from ..core.errors import AtomDefectError
    from ..core.models.registry import resolve_model

    if not name:
        return None
    try:
        return resolve_model(name)
    except AtomDefectError:
        return None


def model_classes_of(info) -> tuple[str, ...]:
    """Defect classes a model was trained for (no model: the four legacy MoS2 classes)."""
    from ..core.models.registry import model_classes

    return LEGACY_CLASSES if info is None else tuple(model_classes(info))


def model_substituents_of(info) -> tuple[str, ...]:
    """Substituents a model was trained for (no model: O)."""
    from ..core.models.registry import model_substituents

    return ("O",) if info is None else tuple(model_substituents(info))


def _default_model_name(material: str, substituents: tuple[str, ...] = ()) -> str:
    """The bundled model of ``material`` for ``substituents`` (``mos2-default`` when it has
    none)."""
    from ..core.models.registry import default_model_name

    return default_model_name(material, substituents)


#: Choices of the Frames box for a stack (frames × rows × cols).
FRAME_CHOICES = ("current frame", "all frames")
#: The Shapes layer in which the user draws the part of the image to analyse.
ANALYSIS_REGION_LAYER = "analysis region"


def region_mask(shapes_layer, shape: tuple[int, int]) -> np.ndarray | None:
    """The pixels of an image of ``shape`` inside the rectangles, polygons and ellipses of
    ``shapes_layer`` (drawn in the image's pixel coordinates; the last two axes of a movie's
    shapes), or ``None`` when it holds none."""
    from skimage.draw import ellipse, polygon

    mask = np.zeros(shape, bool)
    for verts, kind in zip(shapes_layer.data, shapes_layer.shape_type, strict=True):
        v = np.asarray(verts, float)[:, -2:]
        if kind == "ellipse":
            (r0, c0), (r1, c1) = v.min(0), v.max(0)
            rr, cc = ellipse((r0 + r1) / 2, (c0 + c1) / 2, (r1 - r0) / 2, (c1 - c0) / 2,
                             shape=shape)
        elif kind in ("rectangle", "polygon"):
            rr, cc = polygon(v[:, 0], v[:, 1], shape=shape)
        else:  # lines and paths enclose nothing
            continue
        mask[rr, cc] = True
    return mask if mask.any() else None


class DetectWidget(QWidget):
    """Find the lattice and detect defects in an image layer.

    Steps run one by one (*Find lattice*, then *Detect*) or together (*Run all*), each in a
    background worker with a progress bar and a *Cancel* button; results become new layers.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None  # the running job (a _worker.JobHandle), None when idle
        # (layer, frame, material, pixel size) -> Lattice; layers held weakly, entries dropped
        # when the layer is removed or its data change.
        self._lattices = LatticeCache(self.viewer)
        self._pending_detect = False
        self._region_said = False  # Run all: the missing region was already said (find lattice)
        self._setting_px = False  # True while the widget (not the user) sets the pixel size
        # The status, warnings and progress shown belong to one image: each image's are kept
        # for when it is chosen again (layers held weakly), another image starts blank.
        self._status_layer = None
        # (kept with the images, not the dock: a dock opened again shows each image's lines)
        self._status_by_layer = STATUS_BY_IMAGE
        # image layer -> (weak) detections layer whose run the image's result line tells
        self._line_of: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._told_grey: weakref.WeakSet = weakref.WeakSet()  # colour layers said read as grey

        self.image_combo = layer_combo()
        self.open_button = QPushButton("Open file…")
        self.material = QComboBox()
        self.material.addItems(list(MATERIALS))
        self.pixel_size = _PixelSizeBox()
        self.pixel_size.setDecimals(5)
        self.pixel_size.setRange(0.0, 1.0)
        self.pixel_size.setSingleStep(0.0005)
        self.pixel_size.setSuffix(" nm/px")
        self.pixel_size.setSpecialValueText("unknown")  # (the line below says what is used)
        self.pixel_size.setToolTip("Pixel size; 'unknown' calibrates it from the lattice.")
        self.calibration_label = QLabel("")
        self.calibration_label.setWordWrap(True)
        # Room for two lines: a form row does not grow with a wrapped label.
        self.calibration_label.setMinimumHeight(
            2 * self.calibration_label.fontMetrics().lineSpacing() + 4)
        self.calibrate_button = QPushButton("Calibrate from lattice")
        self.model = QComboBox()
        # One box per substituent the material supports; enabled when the model knows it.
        self.substituent_row = QHBoxLayout()
        self.substituent_checks: dict[str, QCheckBox] = {}
        self._ticked: dict[tuple[str, ...], set[str]] = {}  # per host chalcogen, kept on switches
        self.device = QComboBox()
        self.device.addItems(list(DEVICE_CHOICES))
        self.device_label = QLabel("")
        # (a long "used: cpu (1 of 2 threads: …)" must wrap, not widen the dock past the window)
        self.device_label.setWordWrap(True)
        self.device_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                        QSizePolicy.Policy.Preferred)
        self.frames = QComboBox()
        self.frames.addItems(list(FRAME_CHOICES))
        self.frames.setToolTip("For a stack or movie: detect in the frame shown, or in every "
                               "frame (lattice drift followed, defects linked into tracks).")
        self.frames.setEnabled(False)
        self.region_check = QCheckBox("Only in the drawn region")
        self.region_check.setToolTip(
            f"Analyse only the shapes drawn in the '{ANALYSIS_REGION_LAYER}' layer (e.g. one "
            "grain of a polycrystalline layer, or away from contamination).")
        self.region_button = QPushButton("Draw region")
        self.lattice_button = QPushButton("Find lattice")
        self.detect_button = QPushButton("Detect")
        self.run_button = QPushButton("Run all")
        self.view_button = QPushButton("Show model's view")
        self.view_button.setToolTip("Translate the image cell by cell into the simulated domain "
                                    "with the model's real→simulated generator: what the "
                                    "detector was trained on.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = StepProgressBar()
        self.status = WrappingLabel("")
        # Whether the image looks like the model's training data: stays until the next detection.
        self.fit_label = WrappingLabel("")
        self.fit_label.setVisible(False)
        self.operating_group = self._operating_point_box()

        form = QFormLayout()
        # (a narrow dock puts the labels above their fields rather than clipping the right
        # edge: Cancel, Draw region and Calibrate from lattice stay visible)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        row = QHBoxLayout()
        row.addWidget(self.image_combo, 1)
        row.addWidget(self.open_button)
        form.addRow("Image", row)
        form.addRow("Material", self.material)
        cal = QHBoxLayout()
        cal.addWidget(self.pixel_size, 1)
        cal.addWidget(self.calibrate_button)
        form.addRow("Pixel size", cal)
        form.addRow(self.calibration_label)  # full width: it can take two lines
        form.addRow("Model", self.model)
        form.addRow("Substituents", self.substituent_row)
        dev = QHBoxLayout()
        dev.addWidget(self.device)
        dev.addWidget(self.device_label, 1)
        form.addRow("Device", dev)
        form.addRow("Frames", self.frames)
        region = QHBoxLayout()
        region.addWidget(self.region_check, 1)
        region.addWidget(self.region_button)
        form.addRow("Region", region)
        form.addRow(self.operating_group)
        buttons = QHBoxLayout()
        for b in (self.lattice_button, self.detect_button, self.run_button):
            buttons.addWidget(b)
        run = QHBoxLayout()
        run.addWidget(self.progress, 1)
        run.addWidget(self.cancel_button)
        self.legend = ClassLegend(per_row=4)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.view_button)
        layout.addLayout(run)
        layout.addWidget(self.status)
        layout.addWidget(self.fit_label)
        layout.addWidget(self.legend)
        layout.addStretch(1)

        self.open_button.clicked.connect(self._open_file)
        self.calibrate_button.clicked.connect(self.calibrate_from_lattice)
        self.lattice_button.clicked.connect(self.find_lattice)
        self.region_button.clicked.connect(self.start_region)
        self.detect_button.clicked.connect(self.detect)
        self.run_button.clicked.connect(self.run_all)
        self.view_button.clicked.connect(self.show_model_view)
        self.cancel_button.clicked.connect(self.cancel)
        self.pixel_size.valueChanged.connect(self._pixel_size_edited)
        # An image opened (or added) becomes the one analysed, as in the viewer.
        self._refresh_images = follow_layers(self.viewer, self.image_combo, is_image_layer,
                                             self._image_chosen, follow_new=True)
        self.refresh_models()
        follow_models(self, self.refresh_models)  # on the GUI thread, whoever saved the model
        self.material.currentTextChanged.connect(self._material_changed)
        self.model.currentIndexChanged.connect(self._model_changed)
        self._material_changed(self.material.currentText())
        self._ready = True
        self._image_chosen()  # (a dock opened again: the chosen image's last analysis)
        self.viewer.layers.events.inserted.connect(self._table_of_image_opened)
        self._follow_theme()
        self.viewer.events.theme.connect(self._follow_theme)

    def _follow_theme(self, event=None) -> None:
        """The fit sentences in amber on a dark theme, dark amber on a light one (the amber had
        read at 1.5:1 on napari's light background)."""
        from qtpy import sip

        if not sip.isdeleted(self.fit_label):
            self.fit_label.setStyleSheet(f"color: {warning_colour(str(self.viewer.theme))};")

    def _operating_point_box(self) -> QGroupBox:
        """The advanced "Operating point" section: one spin box per defect class (0.5 neutral).

        Unchecked (the default) the most probable class is called; checked, a site is called
        class c against one alternative when its calibrated probability reaches the value.
        """
        box = QGroupBox("Operating point (advanced)")
        box.setCheckable(True)
        box.setChecked(False)
        box.setToolTip("Per defect class: higher = call it only with more evidence (precision), "
                       "lower = call it sooner (recall); 0.5 = the most probable class.")
        self._operating_form = QFormLayout(box)
        self.operating_spins: dict[str, QDoubleSpinBox] = {}
        self._operating_values: dict[str, float] = {}  # kept when a class leaves and comes back
        self._operating_box = box
        self._set_operating_classes(LEGACY_CLASSES)
        foldable(box)  # folded while unchecked: its rows took the room Review and Statistics need
        return box

    def _set_operating_classes(self, classes) -> None:
        """One spin box per class of the run, in channel order (values kept per class)."""
        if tuple(classes) == tuple(self.operating_spins):
            return
        self._operating_values.update({c: s.value() for c, s in self.operating_spins.items()})
        while self._operating_form.rowCount():
            self._operating_form.removeRow(0)
        self.operating_spins = {}
        for cls in classes:
            spin = QDoubleSpinBox()
            spin.setRange(0.01, 0.99)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(self._operating_values.get(cls, NEUTRAL))
            spin.setToolTip(f"Calibrated probability a site needs to be called {cls} against one "
                            "alternative (recall ← 0.5 → precision).")
            self.operating_spins[cls] = spin
            self._operating_form.addRow(cls, spin)
        fold_group(self._operating_box, not self._operating_box.isChecked())

    def operating_point(self) -> dict[str, float]:
        """The operating point set in the widget for the run's classes (neutral while the
        section is unchecked)."""
        if not self.operating_group.isChecked():
            return {c: NEUTRAL for c in self.operating_spins}
        return {c: float(s.value()) for c, s in self.operating_spins.items()}

    # ------------------------------------------------------- classes of a run
    def _material_changed(self, material: str, substituents=None, model: str | None = None
                          ) -> None:
        """A new material: its substituent boxes (defaults ticked) and its default model —
        or ``substituents`` ticked and ``model`` chosen (an image's last analysis, where
        they are still offered)."""
        # (then the other metal of a Mo/W alloy: its columns are called from their brightness)
        supported = supported_substituents(material) + rule_substituents_of(material)
        if tuple(self.substituent_checks) != supported:
            # Remember the ticks of the host chalcogen left, for when the user comes back.
            self._ticked[tuple(self.substituent_checks)] = {
                d for d, box in self.substituent_checks.items() if box.isChecked()}
            for box in self.substituent_checks.values():
                self.substituent_row.removeWidget(box)
                box.hide()  # (a parentless visible widget flashes as a window of its own)
                box.setParent(None)
                box.deleteLater()
            self.substituent_checks = {}
            defaults = self._ticked.get(supported, set(default_substituents(material)))
            host_metal = MATERIALS[material].metal if material in MATERIALS else None
            for d in supported:
                box = QCheckBox(f"{d} antisites" if d == host_metal else d)
                box.setChecked(d in defaults)
                box.toggled.connect(self._substituents_toggled)
                self.substituent_checks[d] = box
                self.substituent_row.addWidget(box)
        if substituents is not None:
            for d, box in self.substituent_checks.items():
                box.blockSignals(True)
                box.setChecked(d in substituents)
                box.blockSignals(False)
        wanted = model if model is not None and self.model.findData(model) >= 0 else \
            _default_model_name(material, self._ticked_substituents())
        k = self.model.findData(wanted)
        if k >= 0 and k != self.model.currentIndex():
            self.model.setCurrentIndex(k)  # -> _model_changed
        else:
            self._model_changed()
        self._image_changed()  # the calibration line: what a run for this material starts from

    def _ticked_substituents(self) -> tuple[str, ...]:
        return tuple(d for d, box in self.substituent_checks.items() if box.isChecked())

    def _substituents_toggled(self, *args) -> None:
        """A bundled default model gives way to the material's one for the substituents now
        ticked (``mos2-alloy`` when Se is looked for in MoS2); a model the user chose stays."""
        from ..core.models.registry import is_default_model

        if is_default_model(self.model.currentData()):
            wanted = _default_model_name(self.material.currentText(), self._ticked_substituents())
            k = self.model.findData(wanted)
            if k >= 0 and k != self.model.currentIndex():
                self.model.setCurrentIndex(k)  # -> _model_changed -> _refresh_classes
                self._image_changed()
                return
        self._refresh_classes()
        self._image_changed()

    def _model_changed(self, *args) -> None:
        """Enable the substituents the chosen model was trained for; update the classes."""
        info = _model_info(self.model.currentData())
        known = model_substituents_of(info)
        name = info.name if info is not None else "the chosen model"
        metals = rule_substituents_of(self.material.currentText())
        mat = MATERIALS[self.material.currentText()]
        host_metal = mat.metal
        for d, box in self.substituent_checks.items():
            box.setEnabled(d in known or d in metals)
            box.setToolTip(
                f"Metal antisites: mark the {mat.chalcogen}2 columns that hold a {d} atom "
                f"({d}_{mat.chalcogen}2) from their brightness (no model needed)."
                if d == host_metal else
                f"A Mo/W alloy: mark the {d} columns ({d}_{host_metal}) from their brightness "
                "(no model needed)." if d in metals else
                f"Report {d} substitutions." if d in known else
                f"{name} was not trained for {d}: choose a model trained with it.")
        self._refresh_classes()

    def substituents(self) -> tuple[str, ...] | None:
        """The substituents ticked among those the model knows, and the other metal of a Mo/W
        alloy when ticked (``None`` when the model knows none of the material's and no metal is
        ticked: the detection then uses the model's defaults)."""
        metals = rule_substituents_of(self.material.currentText())
        enabled = [d for d, box in self.substituent_checks.items() if box.isEnabled()]
        ticked = tuple(d for d in enabled if self.substituent_checks[d].isChecked())
        if not [d for d in enabled if d not in metals]:  # (the model's defaults, and the metal)
            return None if not ticked else tuple(default_substituents_of_model(
                _model_info(self.model.currentData()), self.material.currentText())) + ticked
        return ticked

    def _run(self):
        """The run the next detection makes (``decision.run_classes``), or ``None`` when the
        model has no detector or does not fit the material (the run will say why)."""
        from ..core.detect.decision import run_classes
        from ..core.errors import AtomDefectError

        info = _model_info(self.model.currentData())
        if info is None or "detector" not in info.card:
            return None
        try:
            return run_classes(info.card, self.material.currentText(), self.substituents())
        except AtomDefectError:
            return None

    def run_classes(self) -> tuple[str, ...]:
        """The defect classes the next run can produce (model classes, chosen substituents) —
        the same rule as the detection itself, also when the model knows none of the material's
        substituents (then its own defaults)."""
        run = self._run()
        if run is None:  # the run will say why in one sentence; show what the model has
            return model_classes_of(_model_info(self.model.currentData()))
        return tuple(run.classes)

    def run_substituents(self) -> tuple[str, ...]:
        """The substituents the next run considers (the ticked ones, or the model's defaults
        when it knows none of the material's); they decide which pixel sizes fit an alloy."""
        run = self._run()
        return () if run is None else tuple(run.all_substituents)

    def _refresh_classes(self, *args) -> None:
        classes = self.run_classes()
        self._set_operating_classes(classes)
        self.legend.set_classes(classes)

    # ----------------------------------------------------------------- inputs
    def refresh_models(self) -> None:
        """Reload the model list (bundled first, then user models)."""
        from ..core.models.registry import list_models

        current = self.model.currentData()
        self.model.clear()
        for info in list_models():
            # A fine-tuned model that kept its base's detector says so (the same calls).
            kept = info.card.get("detector", {}).get("training", {}).get("kept_base_detector")
            label = "" if info.bundled else " (user, base detector kept)" if kept else " (user)"
            self.model.addItem(info.name + label, info.name)
        k = self.model.findData(current)
        if k >= 0:
            self.model.setCurrentIndex(k)

    def image_layer(self):
        """The selected Image layer (or ``None``)."""
        return layer_by_name(self.viewer, self.image_combo)

    def _image_chosen(self, *args) -> None:
        """Another image chosen: the material, substituents and model it was last analysed with
        come back with its result line (a trial read an image's WSe2 result beside MoS2 left
        from the image before, and Run all re-analysed it as MoS2)."""
        layer = self.image_layer()
        analysed = {} if layer is None else layer.metadata.get("atomdefect", {})
        if layer is not None and not analysed.get("material"):
            # Not analysed here: the material of a defect table reopened on it (a trial's WS2
            # table over its image left the dock on MoS2, and Run all would have read MoS2)
            analysed = table_analysis_of(self.viewer, layer) or analysed
        if not getattr(self, "_ready", False):  # (still being built: its boxes come later)
            return
        if analysed.get("material") and self.material.findText(analysed["material"]) >= 0:
            self.material.blockSignals(True)  # (one update below, not one per setting)
            self.material.setCurrentText(analysed["material"])
            self.material.blockSignals(False)
            self._material_changed(analysed["material"], substituents=analysed.get(
                "substituents"), model=analysed.get("model"))
        else:
            self._image_changed()

    def _table_of_image_opened(self, event) -> None:
        """A defect table opened on the chosen image, which was not analysed here: take the
        material and substituents it names."""
        from qtpy import sip

        if sip.isdeleted(self.image_combo):  # (the dock closed: the viewer's event outlives it)
            return
        table, image = getattr(event, "value", None), self.image_layer()
        if (table is not None and image is not None
                and table.metadata.get("atomdefect", {}).get("image") == image.name
                and not image.metadata.get("atomdefect", {}).get("material")):
            self._image_chosen()

    def _image_changed(self, *args) -> None:
        layer = self.image_layer()
        self.frames.setEnabled(layer is not None and _is_stack(layer))
        if layer is None:
            return
        self._switch_status(layer)
        # (what the next run starts from: a lattice calibration of another material or other
        # substituents is not kept)
        px, source = run_pixel_size(layer, self.material.currentText(), self.run_substituents())
        self._setting_px = True
        try:
            self.pixel_size.setValue(px or 0.0)
        finally:
            self._setting_px = False
        # Once the lattice of this image is known, the line keeps saying what is in use.
        lattices = self._lattices.get(self._key(layer, self._frame(layer)[1], px))
        # (an image another analysis calibrated since is shown at that one's pixel size: a
        # lattice kept from an earlier run of this analysis is not what is in use — a trial
        # read "In use: 0.00804" beside a box saying "unknown" and a scale of 0.00826)
        earlier = _earlier_lattice_text(layer, source)
        if lattices is not None and not earlier:  # (one per grain; the first holds it)
            self._show_choice(layer, lattices[0])
        else:
            text = _pending_text(px, source)
            if earlier:
                text = earlier
            elif source == "none" and (unitless := _unitless_scale(layer)) is not None:
                text += (f" The layer's scale ({unitless:.5g} per pixel) has no unit: if it is "
                         "in nm, type it under Pixel size to use it.")
            if source == "none" and _beside_calibrated(self.viewer, layer):
                text += (" Until then it is drawn at 1 nm per pixel beside the calibrated "
                         "images (napari says their units disagree): *Calibrate from lattice* "
                         "puts it at its own scale.")
            self.calibration_label.setText(text + _under_uncalibrated(self.viewer, layer))

    def _switch_status(self, layer) -> None:
        """Another image chosen: keep the status lines of the one left, show this one's (a
        user read the last image's calls and warnings under the next image's name)."""
        layer = real_layer(layer)
        if self.worker is not None or layer is self._status_layer:
            return  # (a running job's lines are its image's until it ends)
        if self._status_layer is not None:
            self._status_by_layer[self._status_layer] = (
                self.status.text(), self.fit_label.text(), self.progress.value())
        self._status_layer = layer
        text, fit, value = self._status_by_layer.get(layer, ("", "", 0))
        self.status.setText(text)
        self.fit_label.setText(fit)
        self.fit_label.setVisible(bool(fit))
        self.progress.setValue(value)

    def _pixel_size_edited(self, value: float) -> None:
        """The user typed a pixel size: remember it on the image layer (kept from now on)."""
        layer = self.image_layer()
        if self._setting_px or layer is None:
            return
        meta = dict(layer.metadata.get("atomdefect", {}))
        meta["user_pixel_size_nm"] = float(value)
        layer.metadata = {**layer.metadata, "atomdefect": meta}
        px, source = given_pixel_size(layer)
        self.calibration_label.setText(_pending_text(px, source))

    def _show_choice(self, layer, lattice) -> None:
        """Show, persistently, the pixel size in use, where it came from and any disagreement."""
        from ..core.detect.alloy_calibration import VEGARD_NOTE
        from ..core.lattice.calibration_policy import choose_pixel_size, describe_choice
        from ..core.lattice.lattice import CALIBRATION_TOLERANCE
        from ..core.materials.materials import lattice_constant_range_nm

        px, source = run_pixel_size(layer, lattice.material.name, self.run_substituents())
        lo, hi = lattice_constant_range_nm(lattice.material, self.run_substituents())
        choice = choose_pixel_size(px, source, lattice.pixel_size_lattice_nm,
                                   lattice.material.name, CALIBRATION_TOLERANCE,
                                   alloy_range_nm=(lo / lattice.a_px, hi / lattice.a_px))
        text = describe_choice(choice, source)
        vegard = next((m for m in lattice.messages if VEGARD_NOTE in m), None)
        if vegard is not None and choice.source == "lattice":  # an alloy's own lattice constant
            text = f"In use: {vegard[0].lower()}{vegard[1:]}"
        file_px = layer.metadata.get("atomdefect", {}).get("file_pixel_size_nm")
        if source == "lattice" and file_px and choice.source == "lattice":
            # Against the value in use (the message of the run says how far the file's is from
            # the whole range an alloy's lattice allows, which may be less).
            off = abs(file_px / choice.pixel_size_nm - 1)
            side = "below" if file_px < choice.pixel_size_nm else "above"
            text = text[:-1] + (f"; the file says {file_px:.5f} nm/px ({off:.1%} {side} the "
                                "value in use).")
        self.calibration_label.setText(text + _under_uncalibrated(self.viewer, layer))

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open STEM image", "",
            "STEM images (" + " ".join(f"*{ext}" for ext in SUPPORTED_EXTENSIONS) + ")")
        if path:
            self.viewer.open(path, plugin="napari-atomdefect")

    def _frame(self, layer) -> tuple[np.ndarray, int | None]:
        data = np.asarray(layer.data)
        if data.ndim == 3 and data.shape[-1] not in (3, 4):
            step = int(self.viewer.dims.current_step[0])
            step = min(max(step, 0), data.shape[0] - 1)
            return data[step], step
        return data, None

    def _inputs(self):
        from napari.utils.notifications import show_warning

        layer = self.image_layer()
        if layer is None:
            said = "Open an image first (File → Open, or the Open file… button)."
            self.status.setText(said)  # (the line still told of the image closed mid-run)
            show_warning(said)
            return None
        image, frame = self._frame(layer)
        if getattr(layer, "rgb", False):  # (a colour picture napari opened: read as grey)
            from napari.utils.notifications import show_info

            from ..core.io.image import to_grey

            image, said = to_grey(image, layer.name)
            if said and real_layer(layer) not in self._told_grey:  # (once: Run all asked twice)
                self._told_grey.add(real_layer(layer))
                show_info(said)
        px, calibration = run_pixel_size(layer, self.material.currentText(),
                                         self.run_substituents())
        # The image's analysis (the Fine-tune widget follows it): material and substituents.
        meta = dict(layer.metadata.get("atomdefect", {}))
        analysis = {"material": self.material.currentText(),
                    "substituents": list(self.run_substituents()),
                    "model": self.model.currentData()}
        if {k: meta.get(k) for k in analysis} != analysis:
            layer.metadata = {**layer.metadata, "atomdefect": {**meta, **analysis}}
        return layer, image, frame, px, calibration

    def start_region(self) -> None:
        """Add (or activate) the Shapes layer in which the part of the image to analyse is
        drawn, and tick *Only in the drawn region*."""
        layer = self.image_layer()
        if ANALYSIS_REGION_LAYER not in self.viewer.layers:
            frame = {} if layer is None else {
                **image_frame(layer),
                "metadata": {"atomdefect": {"kind": "analysis_region", "image": layer.name}}}
            self.viewer.add_shapes(name=ANALYSIS_REGION_LAYER, **frame, edge_color="#00e5ff",
                                   face_color="#00e5ff20", edge_width=2)
        shapes = self.viewer.layers[ANALYSIS_REGION_LAYER]
        self.viewer.layers.selection.active = shapes
        shapes.mode = "add_rectangle"
        self.region_check.setChecked(True)

    def region(self, image: np.ndarray) -> np.ndarray | None:
        """The mask of the drawn region for ``image`` (``None``: the whole image — unticked, or
        nothing drawn, which the status line then says)."""
        from napari.utils.notifications import show_warning

        if not self.region_check.isChecked():
            return None
        mask = None
        if ANALYSIS_REGION_LAYER in self.viewer.layers:
            mask = region_mask(self.viewer.layers[ANALYSIS_REGION_LAYER], image.shape[-2:])
        if mask is None and not self._region_said:
            show_warning(f"No region is drawn in the '{ANALYSIS_REGION_LAYER}' layer (Draw "
                         "region): the whole image is analysed.")
        return mask

    # ---------------------------------------------------------------- running
    def _start(self, job, args, on_done, label: str, layer=None) -> None:
        """Run ``job`` in a worker; ``on_done`` gets its result unless ``layer`` (the image it
        analyses) was closed meanwhile: then nothing is added, and a Run all stops there."""
        if self.worker is not None:
            return
        if layer is not None:
            self._switch_status(layer)  # (the lines that follow are this image's)
            show = on_done

            def on_done(result):
                if layer in self.viewer.layers:
                    show(result)
                    return
                from napari.utils.notifications import show_warning

                self._pending_detect = False
                text = f"{layer.name} was closed while it was analysed: nothing was added."
                self.status.setText(text)
                show_warning(text)
        self._set_running(True, label)
        # Every end (result, error — shown as one sentence —, Cancel) reaches _on_finished.
        self.worker = start_job(job, args, on_progress=self._on_progress, on_done=on_done,
                                on_error=self._on_error, on_aborted=self._on_aborted,
                                on_finished=self._on_finished, owner=self)

    def _set_running(self, running: bool, label: str = "") -> None:
        for b in (self.lattice_button, self.detect_button, self.run_button,
                  self.calibrate_button, self.view_button):
            b.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.progress.busy()  # (until the step says how far it is)
            self.status.setText(label)
        else:
            self.progress.idle()

    def _on_progress(self, item: dict) -> None:
        self.progress.setValue(int(100 * item.get("fraction", 0)))
        self.status.setText(item.get("message", ""))
        if item.get("fit") is not None:  # the model does not fit: say so before the long part
            self._show_fit(item["fit"].messages)

    def _show_fit(self, messages: list[str]) -> None:
        """Show (or clear) the model-fit warnings under the status: one paragraph each (the
        median-rung sentence had run into the contrast sentence)."""
        text = "\n".join(f"⚠ {m}" for m in messages if m.strip())
        self.fit_label.setText(text)
        self.fit_label.setVisible(bool(text))

    def _on_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error, show_warning

        from ..core.errors import AtomDefectError

        text = str(exc) if isinstance(exc, ValueError) else error_sentence(exc)
        if (self._pending_detect and isinstance(exc, AtomDefectError)
                and self.frames.isEnabled() and self.frames.currentText() == "all frames"):
            # Run all on a movie whose shown frame has no lattice (a failed scan): every frame
            # finds its own, the others are analysed and the bad one is left out (said then).
            text = (f"The frame shown: {text} Every frame is analysed on its own; those that "
                    "cannot be are left out.")
            self.status.setText(text)
            show_warning(text)
            return
        self._pending_detect = False
        self.progress.setValue(0)
        self.status.setText(text)
        show_error(text)

    def _on_aborted(self) -> None:
        self._pending_detect = False
        self.progress.setValue(0)
        self.status.setText("Cancelled: no detections were added (a lattice found before stays).")

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)
        if self._pending_detect:
            self._pending_detect = False
            self._region_said = True  # Run all's lattice step already said what is analysed
            try:
                self.detect()
            finally:
                self._region_said = False
        current = self.image_layer()
        if self.worker is None and current is not None:
            # another image chosen meanwhile: the lines stay with theirs
            self._switch_status(current)
        if self.worker is None and self._status_layer is not None:
            # (the lines of the job's end, kept for a dock opened again: a trial's reopened
            # dock had lost every image's result line)
            self._status_by_layer[self._status_layer] = (
                self.status.text(), self.fit_label.text(), self.progress.value())

    def cancel(self) -> None:
        """Stop the running step at its next checkpoint; no partial layer is added."""
        if self.worker is not None:
            self._pending_detect = False
            self.worker.cancel()

    # ------------------------------------------------------------------ steps
    def _key(self, layer, frame, px, region=None):
        drawn = None if region is None else hash(np.packbits(region).tobytes())
        # the chosen substituents decide which calibrations agree with the lattice (alloys)
        return (layer, frame, self.material.currentText(), px, drawn, self.run_substituents())

    def find_lattice(self) -> None:
        """Find the lattice of the selected image (adds a sites layer and a hidden cell grid)."""
        inputs = self._inputs()
        if inputs is None:
            return
        layer, image, frame, px, calibration = inputs
        region = self.region(image)
        key = self._key(layer, frame, px, region)

        def done(result):
            self._lattices[key] = result["lattices"]
            self._show_lattice(layer, result["lattices"], frame)

        self._start(_lattice_job, (image, self.material.currentText(), px, calibration, region,
                                   self.run_substituents()),
                    lambda result: (done(result), self._notify(result.get("warnings", []))),
                    "Finding the lattice…", layer)

    def calibrate_from_lattice(self) -> None:
        """Calibrate the pixel size from the material's lattice constant and apply it."""
        inputs = self._inputs()
        if inputs is None:
            return
        layer, image, frame, _, _ = inputs
        region = self.region(image)

        def done(result):
            from napari.utils.notifications import show_info

            lattice = result["lattice"]
            px = lattice.pixel_size_lattice_nm
            meta = dict(layer.metadata.get("atomdefect", {}))
            old = meta.get("pixel_size_nm")
            meta.pop("user_pixel_size_nm", None)
            meta.update(pixel_size_nm=px, calibration="lattice",
                        calibrated_for=analysis_key(lattice.material.name,
                                                    self.run_substituents()))
            layer.metadata = {**layer.metadata, "atomdefect": meta}
            apply_calibration(self.viewer, layer, px)
            self._lattices[self._key(layer, frame, px, region)] = result["lattices"]
            self._image_changed()
            self._show_choice(layer, lattice)
            show_info(f"Pixel size calibrated from the {lattice.material.name} lattice: "
                      f"{px:.5f} nm" + (f" (file said {old:.5f} nm)." if old else ".")
                      + " The image and its layers now use it.")
            self.status.setText(f"Pixel size {px:.5f} nm/px applied to {layer.name} and its "
                                "layers.")
            self.progress.setValue(100)

        self._start(_lattice_job, (image, self.material.currentText(), None, "none", region),
                    done, "Calibrating from the lattice…", layer)

    def _inputs_and_lattice(self):
        """:meth:`_inputs` plus the lattice already found for them (``None`` if not yet)."""
        inputs = self._inputs()
        if inputs is None:
            return None
        layer, image, frame, px, _ = inputs
        region = self.region(image)
        return (*inputs, region, self._lattices.get(self._key(layer, frame, px, region)))

    def detect(self) -> None:
        """Detect defects in the selected image (a new Points layer per run)."""
        inputs = self._inputs_and_lattice()
        if inputs is None:
            return
        layer, image, frame, px, calibration, region, lattice = inputs
        model = self.model.currentData()
        op = self.operating_point()
        subs = self.substituents()
        if frame is not None and self.frames.currentText() == "all frames":
            if region is not None:
                from napari.utils.notifications import show_warning

                show_warning("The drawn region applies to one frame; every frame of the movie "
                             "is analysed whole.")
            self._show_fit([])
            self._start(_movie_job, (np.asarray(layer.data), self.material.currentText(), px,
                                     calibration, model, self.device.currentText(), op, subs),
                        lambda result: self._show_movie(layer, result),
                        "Detecting in every frame…", layer)
            return

        def done(result):
            self._show_detections(layer, frame, result)

        self._show_fit([])
        self._start(_detect_job, (image, self.material.currentText(), px, calibration, model,
                                  self.device.currentText(), lattice, op, subs, region), done,
                    "Detecting…", layer)

    def show_model_view(self) -> None:
        """Add the image translated into the simulated domain as a new Image layer."""
        inputs = self._inputs_and_lattice()
        if inputs is None:
            return
        layer, image, frame, px, calibration, region, lattice = inputs

        def done(result):
            # as after a detection: the image (and its layers) take the pixel size in use
            from napari.utils.notifications import show_info

            self._adopt_lattice_calibration(layer, [result["lattice"]])
            self._show_choice(layer, result["lattice"])
            for msg in result.get("messages", []):  # (as Find lattice shows them: information)
                show_info(msg)
            self._notify(result.get("warnings", []))
            view = self.viewer.add_image(
                result["image"], name=f"{layer.name} model's view ({result['model']})",
                **image_frame(layer), colormap="gray",
                metadata={"atomdefect": {"kind": "model_view", "image": layer.name}})
            # just above its image, under the sites and detections (an opaque image on top hid
            # every marker: a trial)
            layers = self.viewer.layers
            if layer in layers:
                layers.move(layers.index(view), layers.index(layer) + 1)
            self.status.setText("Model's view added: the image as the detector's training "
                                "domain sees it (cell by cell, real → simulated).")
            self.progress.setValue(100)

        self._start(_model_view_job, (image, self.material.currentText(), px, calibration,
                                      self.model.currentData(), self.device.currentText(),
                                      lattice, region, self.run_substituents()), done,
                    "Translating cells…", layer)

    def run_all(self) -> None:
        """Find the lattice, then detect."""
        self._pending_detect = True
        self.find_lattice()

    # ---------------------------------------------------------------- results
    def _notify(self, notes) -> None:
        """Show warnings the lattice search raised (recorded in the worker) to the user."""
        from napari.utils.notifications import show_warning

        for note in notes:
            show_warning(note)
        if notes:
            self.status.setText(" ".join([self.status.text(), *notes]).strip())

    def _show_lattice(self, layer, lattices, frame_index: int | None = None) -> None:
        """Add the sites and the (hidden) cell grid of ``lattices`` (one per grain; the first
        holds the calibration), replacing the ones an earlier run added for the same image (and
        frame). On a stack they are drawn on their frame only."""
        from napari.utils.notifications import show_info

        for old in _derived_layers(self.viewer, layer, ("lattice_sites", "cell_grid")):
            if old.metadata["atomdefect"].get("frame") in (frame_index, ALL_FRAMES):
                self.viewer.layers.remove(old)
        stack = frame_index is not None
        frame = image_frame(layer, 3 if stack else 2)
        data, kwargs = site_layer_kwargs(lattices, f"{layer.name} sites", frame)
        # (named after the image: two images' grids told apart in the layer list)
        edges, gkw = grid_layer_data(lattices, f"{layer.name} unit cells", frame)
        lattice = lattices[0]
        n_cells = sum(la.n_cells for la in lattices)
        if stack:  # (frame, row, col): shown on the frame the lattice was found in
            data = np.column_stack([np.full(len(data), float(frame_index)), data])
            # (each edge starts on the frame and runs within it)
            edges = np.concatenate([np.zeros((len(edges), 2, 1)), edges], axis=2)
            edges[:, 0, 0] = float(frame_index)
            kwargs["name"] = f"{layer.name} sites (frame {frame_index})"
            gkw["name"] = f"{layer.name} unit cells (frame {frame_index})"
        for kw in (kwargs, gkw):
            kw["metadata"]["atomdefect"].update(image=layer.name, frame=frame_index)
        self.viewer.add_points(data, **kwargs)
        self.viewer.add_vectors(edges, **gkw)
        self.viewer.layers.selection.active = layer
        for msg in lattice.messages:
            show_info(msg)
        self._show_choice(layer, lattice)
        self.status.setText(" ".join(
            [f"Lattice: {n_cells} unit cells, a = {lattice.a_px:.2f} px, pixel size "
             f"{lattice.pixel_size_nm:.5f} nm ({lattice.calibration})."] + list(lattice.messages)))
        self.progress.setValue(100)
        self._adopt_lattice_calibration(layer, lattices)

    def _adopt_lattice_calibration(self, layer, lattices, remember: bool = True) -> None:
        """When the pixel size in use is the lattice's (the file had none, or one that
        disagreed) or one the user typed, give it to the image layer and its layers too: the
        scale bar, the cursor position and the CSV's nm then agree. The file's value stays in the
        metadata. ``lattices``: one per grain, the first holds the calibration; ``remember``:
        keep them as the lattice of the frame shown (not for a movie's first frame)."""
        lattice = lattices[0]
        if lattice.calibration not in ("lattice", "user"):
            return
        px = float(lattice.pixel_size_nm)
        if str(layer.units[-1]) in ("nm", "nanometer") and \
                abs(float(layer.scale[-1]) - px) <= 1e-9 * px:
            return
        if lattice.calibration == "lattice":  # (a typed value stays recorded as typed)
            meta = dict(layer.metadata.get("atomdefect", {}))
            if meta.get("pixel_size_nm") and meta.get("calibration") == "file":
                meta.setdefault("file_pixel_size_nm", float(meta["pixel_size_nm"]))
            meta.pop("user_pixel_size_nm", None)
            meta.update(pixel_size_nm=px, calibration="lattice",
                        calibrated_for=analysis_key(lattice.material.name,
                                                    self.run_substituents()))
            layer.metadata = {**layer.metadata, "atomdefect": meta}
        # (a pixel size the user typed is theirs for every table; a run's own calibration is
        # that run's: earlier tables keep theirs)
        apply_calibration(self.viewer, layer, px, tables=lattice.calibration == "user")
        frame = self._frame(layer)[1]
        if remember and not self.region_check.isChecked():  # (a region's: under its region)
            self._lattices[self._key(layer, frame, px)] = lattices
        self._image_changed()

    def _show_device(self, device: str) -> None:
        self.device_label.setText(f"used: {device}")
        self.device_label.setToolTip(f"used: {device}")

    def _show_movie(self, layer, result) -> None:
        """Add a movie's detections as one 3-D Points layer (frame, row, col) and its tracks."""
        from napari.utils.notifications import show_info

        from ..core.detect.image_fit import calls_summary
        from ..core.detect.movie import (
            DOSE_KEY,
            changing_class_message,
            dose_per_frame,
            track_layer_data,
        )
        from ..core.io.table import table_from_points

        table = result["defects"]
        px = table.attrs["pixel_size_nm"]
        frame3 = image_frame(layer, 3)
        name = f"{layer.name} defects ({_run_label(result['model'], table)}, all frames)"
        kwargs = defect_layer_kwargs(table, px, name, a_px=table.attrs["a_px"], frame=frame3)
        frames = result["frames"]
        from ..core.lattice.lattice import cell_area_nm2

        # The crystal analysed (cells over holes are left out), as for a single image.
        area = (sum(int(f["n_metal_sites"] or 0) for f in frames)
                * cell_area_nm2(table.attrs["a_px"] * px))
        kwargs["metadata"]["atomdefect"].update(
            model=result["model"], device=result["device"], image=layer.name,
            image_file=image_file_name(layer), movie=True,
            material=table.attrs.get("model_material"),
            substituents=list(table.attrs.get("substituents", ())),
            calibration=table.attrs.get("calibration"),
            n_frames=int(layer.data.shape[0]), frames=frames, area_nm2=area,
            frame_area_nm2=area / max(len(frames), 1),
            n_metal_sites=sum(int(f["n_metal_sites"] or 0) for f in frames),
            n_chalcogen_sites=sum(int(f["n_chalcogen_sites"] or 0) for f in frames),
            tracking=table.attrs.get("tracking"),
            class_overlaps=table.attrs.get("class_overlaps", []))
        dose = dose_per_frame(layer.metadata)
        if dose is not None:
            kwargs["metadata"]["atomdefect"][DOSE_KEY] = dose
        self._hide_earlier_detections(layer)
        self._show_movie_sites(layer, result["lattices"], [f["frame"] for f in frames])
        tracks = track_layer_data(table)
        tracks_kwargs = track_layer_kwargs(f"{layer.name} tracks ({result['model']})", frame3,
                                           px, layer.name, points_kwargs=kwargs)
        points = self.viewer.add_points(defect_points_data(table), **kwargs)
        if len(tracks):
            drawn = self.viewer.add_tracks(tracks, **tracks_kwargs)
            follow_tracks(self.viewer, points, drawn)
        self._show_device(result["device"])
        self._show_fit(result.get("fit_messages", []))
        drift = result["drift_px"][-1]
        subs = tuple(table.attrs.get("substituents", ()))

        def counted(found: np.ndarray) -> str:  # (an alloy's substitutions are no defects)
            return f"{calls_summary(list(found), subs)} in {len(frames)} frames."

        detected = counted(table["class"].astype(str).to_numpy())

        def tracks_said(layer) -> str:  # (the tracks as corrected: they follow the edits too)
            now = table_from_points(layer.data, layer.features, None)
            n_now = len(np.unique(track_layer_data(now)[:, 0])) if len(now) else 0
            changing = changing_class_message(now) if len(now) else None
            return (f"{n_now} tracks over two or more frames."
                    + (f" {changing}" if changing else ""))

        tracks_text = tracks_said(points)
        text = (f"{detected} {tracks_text} Lattice drift {drift[0]:+.1f}, {drift[1]:+.1f} px by "
                "the last frame.")
        left_out = [m for m in table.attrs.get("messages", []) if "could not be analysed" in m]
        if left_out:  # frames the run had to leave out (blank, constant): said where one looks
            from napari.utils.notifications import show_warning

            text += " " + left_out[0]
            show_warning(left_out[0])
        show_info(text)
        self.status.setText(text)
        self._follow_corrections(points, layer, detected, counted, len(table),
                                 [(tracks_text, tracks_said)])
        self.progress.setValue(100)
        # The first frame's calibration (every frame uses it) reaches the image and its layers,
        # as for a single image: a movie typed or calibrated in nm is shown in nm.
        self._adopt_lattice_calibration(layer, result["lattices"][:1], remember=False)

    def _show_movie_sites(self, layer, lattices, frames) -> None:
        """The sites of every analysed frame of a movie as one 3-D layer (frame, row, col),
        replacing the image's earlier sites layers: a point added by hand in any frame snaps to
        that frame's columns (only the frame shown had its sites before)."""
        import pandas as pd

        if not lattices:
            return
        for old in _derived_layers(self.viewer, layer, ("lattice_sites",)):
            self.viewer.layers.remove(old)
        frame3 = image_frame(layer, 3)
        parts, features, kwargs = [], [], None
        for k, lattice in zip(frames, lattices, strict=True):
            data, kw = site_layer_kwargs(lattice, f"{layer.name} sites (all frames)", frame3)
            parts.append(np.column_stack([np.full(len(data), float(k)), data]))
            features.append(kw["features"])
            kwargs = kwargs or kw
        kwargs["features"] = pd.concat(features, ignore_index=True)
        kwargs["metadata"]["atomdefect"].update(image=layer.name, frame=ALL_FRAMES)
        self.viewer.add_points(np.concatenate(parts), **kwargs)

    def _follow_corrections(self, points, image, detected: str,
                            sentence: Callable[[np.ndarray], str], n_detected: int,
                            parts: Sequence[tuple[str, Callable]] = ()) -> None:
        """Keep the result line's counts those of the layer as corrected: after an edit in the
        Review dock (a call added, deleted, reclassified) its first sentence (``sentence`` of
        the calls' classes; ``detected`` the run's) gives the counts now and how many were
        detected (a user read the run's counts beside corrected calls; a movie's too).
        ``parts``: further sentences of the line, each as said and its function of the layer
        (a movie's tracks: a trial read "10 tracks" where a deleted one had left 9)."""
        points = real_layer(points)
        image = real_layer(image)
        said = [detected, *(text for text, _ in parts)]
        # (the image's line is this run's now: an edit of an earlier run, hidden, had rewritten
        # the newest run's line where their sentences were alike — a trial)
        self._line_of[image] = weakref.ref(points)

        def recount(*args) -> None:
            from qtpy import sip

            if sip.isdeleted(self) or points not in self.viewer.layers:
                return  # (a closed dock: its line is gone with it)
            line = self._line_of.get(image)
            if line is None or line() is not points:
                return
            found = np.asarray(points.features["class"]).astype(str) \
                if "class" in points.features else np.zeros(0, str)
            counted = sentence(found)
            first = detected if counted == detected else (
                f"{counted[:-1]} as corrected; {n_detected} detected.")
            for k, now in enumerate([first, *(fn(points) for _, fn in parts)]):
                if now == said[k]:
                    continue
                if self._status_layer is image:
                    self.status.setText(self.status.text().replace(said[k], now, 1))
                elif image in self._status_by_layer:
                    text, fit, value = self._status_by_layer[image]
                    self._status_by_layer[image] = (text.replace(said[k], now, 1), fit, value)
                said[k] = now

        for name in ("data", "features"):
            getattr(points.events, name).connect(recount)

    def _hide_earlier_detections(self, layer) -> None:
        """Hide (not remove: they may hold corrections) the detections layers earlier runs made
        of this image: a run with other substituents left the last run's calls drawn under the
        new ones, as if both were the answer. Their eye in the layer list shows them again. A
        layer holding corrections by hand stays drawn (the docks stay on it)."""
        from .review import corrections_by_hand

        kept = False
        for old in _derived_layers(self.viewer, layer, ("detections",)):
            # (a layer you corrected stays drawn: Review and Statistics stay on it, and hiding
            # it left a trial reviewing calls it could not see)
            if corrections_by_hand(old):
                kept = True
            else:
                old.visible = False
        if not kept:  # (an earlier movie run's tracks go with its calls)
            for old in _derived_layers(self.viewer, layer, ("tracks",)):
                old.visible = False

    def _show_detections(self, layer, frame, result) -> None:
        table = result["defects"]
        lattice = result["lattice"]
        # (a frame of a stack says which: its 2-D layer is drawn over every frame)
        which = f" frame {frame}" if frame is not None else ""
        name = f"{layer.name}{which} defects ({_run_label(result['model'], table)})"
        kwargs = defect_layer_kwargs(table, lattice.pixel_size_nm, name, a_px=lattice.a_px,
                                     frame=image_frame(layer))
        meta = kwargs["metadata"]["atomdefect"]
        sites = result["sites"]
        least = sites.sort_values("confidence").head(100)
        meta.update(uncertain_sites_px=least[["y_px", "x_px"]].to_numpy().tolist(),
                    uncertain_confidence=least["confidence"].to_numpy().tolist())
        meta.update(model=result["model"], device=result["device"], image=layer.name,
                    image_file=image_file_name(layer),
                    material=table.attrs.get("model_material"),
                    substituents=list(table.attrs.get("substituents", ())),
                    calibration=table.attrs.get("calibration", lattice.calibration),
                    frame=frame, n_metal_sites=table.attrs.get("n_metal_sites"),
                    n_chalcogen_sites=table.attrs.get("n_chalcogen_sites"),
                    # the crystal analysed (every grain, not holes)
                    area_nm2=table.attrs.get("area_nm2", lattice.area_nm2),
                    grains=table.attrs.get("grains"))
        op = ",".join(f"{c}={v:g}" for c, v in self.operating_point().items())
        meta.update(fit=table.attrs.get("fit"), ladder=table.attrs.get("ladder"),
                    class_overlaps=table.attrs.get("class_overlaps", []),
                    operating_point=table.attrs.get("operating_point", op))
        self._hide_earlier_detections(layer)
        points = self.viewer.add_points(defect_points_data(table), **kwargs)
        self._show_device(result["device"])
        self._show_fit(result.get("fit_messages", []))
        self._show_choice(layer, lattice)
        from ..core.lattice.calibration_policy import REPLACED_NOTE
        from ..core.lattice.grains import GRAINS_NOTE
        from ..core.lattice.lattice import DISTORTION_NOTE, left_out_messages

        # what the lattice says of the field stays beside the result (a toast truncates it),
        # and that the file's pixel size was replaced
        left_out = left_out_messages(lattice) + [m for m in lattice.messages
                                                 if m.startswith(DISTORTION_NOTE)
                                                 or REPLACED_NOTE in m]
        grains = [m for m in lattice.messages if GRAINS_NOTE in m]
        # a Mo/W alloy whose other metal the user named: its share is part of the result
        alloy = ([lattice.metal_alloy.message(lattice.material)]
                 if getattr(lattice, "metal_alloy", None) and lattice.metal_alloy.named else [])
        n_cells = table.attrs.get("n_cells", lattice.n_cells)
        detected = _counts_sentence(table["class"].astype(str).to_numpy(), meta["classes"],
                                    n_cells, tuple(table.attrs.get("substituents", ())))
        self.status.setText(" ".join([detected, *alloy, *grains, *left_out]))
        subs = tuple(table.attrs.get("substituents", ()))
        self._follow_corrections(
            points, layer, detected,
            lambda found: _counts_sentence(found, meta["classes"], n_cells, subs), len(table))
        self.progress.setValue(100)
        self._adopt_lattice_calibration(layer, result.get("lattices", [lattice]))
        # after the calibration line took its final text (an alloy's Vegard line is longer)
        show_in_dock(self, self.status, self.fit_label)


#: Kinds (``metadata["atomdefect"]["kind"]``) of the layers the plugin derives from an image;
#: with ``metadata["atomdefect"]["image"]`` naming it, they follow its calibration.
_PLUGIN_KINDS = ("lattice_sites", "cell_grid", "detections", "reference", "model_view",
                 "finetune_selection", "tracks", "analysis_region")


def _counts_sentence(found: np.ndarray, classes, n_cells: int,
                     substituents: tuple[str, ...]) -> str:
    """The result line's first sentence: ``"12 defects in 216 unit cells (V_S: 5, …)."`` for
    the calls ``found`` (one class name each), every class of the run named."""
    from ..core.detect.image_fit import calls_summary

    summary = ", ".join(f"{c}: {int((found == c).sum())}" for c in classes)
    return f"{calls_summary(list(found), substituents)} in {n_cells} unit cells ({summary})."


def _is_stack(layer) -> bool:
    """Whether an image layer holds a stack of grey frames (frames × rows × cols)."""
    return layer.ndim == 3 and not getattr(layer, "rgb", False)


#: Each image layer's result lines in the Detect dock — status, fit sentences, progress —
#: (layers held weakly), shared by the docks of a session.
STATUS_BY_IMAGE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _derived_layers(viewer, image_layer, kinds: tuple[str, ...]) -> list:
    """The plugin's layers of these ``kinds`` made from ``image_layer`` (a list: the caller may
    remove them from the viewer)."""
    return [la for la in viewer.layers
            if la.metadata.get("atomdefect", {}).get("image") == image_layer.name
            and la.metadata.get("atomdefect", {}).get("kind") in kinds]


#: ``metadata["atomdefect"]["frame"]`` of a movie's sites layer holding every frame's sites.
ALL_FRAMES = "all"


def _run_label(model: str, table) -> str:
    """``"ws2-default, O+Se"``: what a detections layer's name says of its run (two runs with
    other substituents could not be told apart in the layer list); the host metal chosen for
    its antisites reads ``"W antisites"`` (a bare ``"W"`` reads as a Mo/W alloy)."""
    antisite_metals = set()
    for name in table.attrs.get("classes", ()):
        column = lookup_class(name)
        if column is not None and column.kind == "M_X2":
            antisite_metals.add(column.substituent)
    subs = [f"{s} antisites" if s in antisite_metals else s
            for s in table.attrs.get("substituents", ())]
    return f"{model}, {'+'.join(subs) if subs else 'vacancies only'}"


def _beside_calibrated(viewer, layer) -> bool:
    """Whether another image layer of the viewer is drawn at a pixel size (a calibrated image:
    an uncalibrated one beside it is drawn at one world unit per pixel, far too large)."""
    return any(is_image_layer(other) and not same_layer(other, layer)
               and not np.allclose(np.asarray(other.scale)[-2:], 1.0)
               for other in viewer.layers)


def _under_uncalibrated(viewer, layer) -> str:
    """A sentence (with a leading space) when ``layer``, drawn at its pixel size, lies under a
    visible uncalibrated image drawn at one world unit per pixel, many times larger: a trial
    took the uncalibrated image for this one, whose sites and calls were "visible" but a speck
    in a corner. Empty otherwise."""
    if np.allclose(np.asarray(layer.scale)[-2:], 1.0):
        return ""

    def width(lay) -> float:  # (world extent: any data, multiscale too)
        return float(np.max(np.ptp(np.asarray(lay.extent.world)[:, -2:], axis=0)))

    for other in viewer.layers:
        if (is_image_layer(other) and not same_layer(other, layer) and other.visible
                and np.allclose(np.asarray(other.scale)[-2:], 1.0)
                and width(other) > 5 * width(layer)):
            unit = str(layer.units[-1])
            unit = {"nanometer": "nm", "pixel": "units", "px": "units", "": "units"}.get(unit, unit)
            return (f" It is drawn {width(layer):.3g} {unit} wide in a corner of {other.name}, "
                    f"which has no pixel size and is drawn at 1 per pixel ({width(other):.0f} "
                    f"wide): hide {other.name} or calibrate it to see this image.")
    return ""


def _earlier_lattice_text(layer, source: str) -> str:
    """The calibration line of an image the lattice calibrated for another material or other
    substituents (empty otherwise): the next run calibrates it again (a trial read "Not
    calibrated" after ticking a box beside a calibrated image)."""
    meta = layer.metadata.get("atomdefect", {})
    if source != "none" or meta.get("calibration") != "lattice" or not meta.get(
            "pixel_size_nm"):
        return ""
    made = meta.get("calibrated_for") or {}
    subs = "+".join(made.get("substituents", ())) or "no substituents"
    then = f" for {made['material']} with {subs}" if made.get("material") else ""
    return (f"Calibrated from the lattice{then}: {float(meta['pixel_size_nm']):.5f} nm/px; the "
            "next run calibrates it again for the material and substituents chosen now (the "
            "lattice constant follows them).")


def _unitless_scale(layer) -> float | None:
    """The layer's pixel scale when it is set (not 1) without a length unit, else ``None``."""
    scale = float(layer.scale[-1])
    if np.isclose(scale, 1.0) or str(layer.units[-1]) not in ("pixel", "px", ""):
        return None
    return scale


def _pending_text(px: float | None, source: str) -> str:
    """What the calibration label says before the lattice has been found."""
    if source == "user":
        return f"Typed by you: {px:.5f} nm/px (kept even if the lattice disagrees)."
    if source == "file":
        return (f"From the file: {px:.5f} nm/px (replaced by the lattice's if they disagree "
                "by more than 3 %).")
    if source == "lattice":
        return f"Calibrated from the lattice: {px:.5f} nm/px."
    return "Not calibrated: the lattice will calibrate it."


def apply_calibration(viewer, image_layer, pixel_size_nm: float, tables: bool = True) -> None:
    """Give the image layer the pixel size ``pixel_size_nm`` (scale and nm units) and make the
    plugin's layers of that image (sites, cell grid, detections, model's view) follow it.

    Parameters
    ----------
    viewer : napari.Viewer
    image_layer : napari.layers.Image
    pixel_size_nm : float
    tables : bool
        Whether the detection and reference tables take it as their pixel size too (their
        CSV's nm and densities): yes for a calibration the user asked for; not for one a later
        run made on its own — an alloy's Vegard calibration depends on the composition its
        reading gives (a trial's WSe2 + S table, exported again after a WS2 + Se run, came out
        in that run's pixel size). Their layers are drawn in the image's scale either way.
    """
    px = float(pixel_size_nm)
    lead = image_layer.ndim - 2
    ratio = px / float(image_layer.scale[-1])
    camera = viewer.scene.camera
    centre = np.asarray(camera.center, float)
    origin = np.asarray(image_layer.translate[-2:], float)
    centre[-2:] = origin + (centre[-2:] - origin) * ratio  # keep the same part of the image in view
    zoom = camera.zoom / ratio
    image_layer.scale = tuple(image_layer.scale[:lead]) + (px, px)
    image_layer.units = tuple(str(u) for u in image_layer.units[:lead]) + ("nm", "nm")
    for other in viewer.layers:
        meta = dict(other.metadata.get("atomdefect", {}))
        if other is image_layer or meta.get("image") != image_layer.name or \
                meta.get("kind") not in _PLUGIN_KINDS:
            continue
        frame = image_frame(image_layer, min(other.ndim, image_layer.ndim))  # movies: 3-D
        other.scale, other.translate, other.units = (frame["scale"], frame["translate"],
                                                     frame["units"])
        if tables and meta.get("kind") in ("detections", "reference") and \
                meta.get("pixel_size_nm"):
            old = meta["pixel_size_nm"]
            for key in ("area_nm2", "frame_area_nm2"):
                if meta.get(key):
                    meta[key] = meta[key] * (px / old) ** 2
            meta["pixel_size_nm"] = px
            source = image_layer.metadata.get("atomdefect", {}).get("calibration")
            if source:  # (its CSV's pixel_size_source follows too)
                meta["calibration"] = source
            other.metadata = {**other.metadata, "atomdefect": meta}
    camera.center, camera.zoom = tuple(centre), zoom


__all__ = ["DetectWidget", "apply_calibration", "given_pixel_size"]

