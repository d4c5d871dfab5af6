"""The Fine-tune widget driven headless: selection, a short run, the model list, cancel."""

import numpy as np
import pytest

from napari_atomdefect.widgets.detect import DetectWidget
from napari_atomdefect.widgets.finetune import CELLS_LAYER, REGION_LAYER, FinetuneWidget

pytestmark = pytest.mark.viewer


def _wait(qtbot, widget, timeout=300_000):
    """Wait until the worker has finished and its result was handled (no signal race)."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_select_and_finetune(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    detect = DetectWidget(viewer)
    ft = FinetuneWidget(viewer)
    assert ft.base_model.currentText() == "mos2-default"
    # Too few cells: a clear message, nothing starts.
    ft.start_picking()
    viewer.layers[CELLS_LAYER].data = np.array([[100.0, 100.0], [200.0, 200.0]])
    assert ft.count_label.text().startswith("2 cells selected (at least")
    ft.start()
    assert ft.worker is None and "at least" in ft.status.text()
    # A region selects every cell inside it.
    ft.start_region()
    viewer.layers[REGION_LAYER].add_polygons([np.array([[0, 0], [0, 300], [300, 300],
                                                        [300, 0]], float)])
    n = int(ft.count_label.text().split()[0])
    assert n > 60
    assert ft.preview.pixmap() is not None and not ft.preview.pixmap().isNull()
    ft.advanced.setChecked(True)
    assert ft.settings().keep_better_detector  # on by default
    ft.keep_base.setChecked(False)
    assert not ft.settings().keep_better_detector
    ft.noise_steps.setValue(12)
    ft.detector_steps.setValue(20)
    ft.name_edit.setText("widget-test")
    ft.start()
    _wait(qtbot, ft)
    assert ft.last_result is not None and ft.last_result["path"].name == "widget-test"
    assert "widget-test" in [ft.models.item(i).text().split(" — ")[0]
                             for i in range(ft.models.count())]
    # The Detect widget lists the new model at once.
    assert detect.model.findData("widget-test") >= 0


def test_cancel_writes_nothing(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    ft = FinetuneWidget(viewer)
    ft.all_cells.setChecked(True)
    ft.advanced.setChecked(True)
    ft.noise_steps.setValue(500)
    ft.start()
    ft.cancel()
    _wait(qtbot, ft)
    assert "Cancelled" in ft.status.text()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
