"""The Fine-tune widget driven headless: selection, a short run, the model list, cancel."""

import re

import numpy as np
import pytest

from napari_atomdefect.widgets.detect import DetectWidget
from napari_atomdefect.widgets.finetune import CELLS_LAYER, REGION_LAYER, FinetuneWidget
from tests.viewer.helpers import wait_idle

pytestmark = pytest.mark.viewer


def _count(qtbot, ft, start: str, timeout=60_000):
    """Wait for the selection count (the lattice is found in a worker, once)."""
    qtbot.waitUntil(lambda: ft.count_label.text().startswith(start), timeout=timeout)


def _all_selected(qtbot, ft) -> int:
    """Wait until every cell of the lattice is selected (*All cells*); the count."""
    qtbot.waitUntil(lambda: re.match(r"\d+ cells? selected", ft.count_label.text()) is not None,
                    timeout=60_000)
    wait_idle(qtbot, ft, 60_000)
    n = int(ft.count_label.text().split()[0])
    assert n == ft.lattice.n_cells and n > 400
    return n


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
    _count(qtbot, ft, "2 cells selected (at least")
    wait_idle(qtbot, ft, 60_000)
    ft.start()
    assert ft.worker is None and "at least" in ft.status.text()
    # A region selects every cell inside it.
    ft.start_region()
    viewer.layers[REGION_LAYER].add_polygons([np.array([[0, 0], [0, 300], [300, 300],
                                                        [300, 0]], float)])
    _count(qtbot, ft, "")
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
    wait_idle(qtbot, ft)
    assert ft.last_result is not None and ft.last_result["path"].name == "widget-test"
    assert ft.outcome.text() == ft.last_result["outcome"] and ft.outcome.text()
    assert "widget-test" in [ft.models.item(i).text().split(" — ")[0]
                             for i in range(ft.models.count())]
    # The Detect widget lists the new model at once.
    assert detect.model.findData("widget-test") >= 0
    # its card says the dock made it (it had recorded the script that opened napari)
    import json

    from napari_atomdefect.widgets.finetune import WIDGET_COMMAND

    card = json.loads((tmp_path / "models" / "widget-test" / "card.json").read_text())
    assert card["command"] == WIDGET_COMMAND and card["fine_tuning"]["source_image"]
    # A name taken (by that model, or by a bundled one) is refused before anything runs: the
    # user's model is not replaced, and none is made that a bundled model would hide.
    written = (tmp_path / "models" / "widget-test" / "card.json").stat().st_mtime_ns
    for taken, said in (("widget-test", "exists already"), ("ws2-default", "bundled model")):
        ft.name_edit.setText(taken)
        ft.start()
        assert ft.worker is None and said in ft.status.text()
    assert (tmp_path / "models" / "widget-test" / "card.json").stat().st_mtime_ns == written
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["widget-test"]


def test_cancel_writes_nothing(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Cancel after the first progress item ends the run within seconds; bar and status say
    Cancelled; no model folder is written."""
    import time

    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    ft = FinetuneWidget(viewer)
    ft.all_cells.setChecked(True)
    _all_selected(qtbot, ft)
    ft.advanced.setChecked(True)
    ft.noise_steps.setValue(500)
    ft.start()
    assert ft.worker is not None
    first = []
    ft.worker.worker.yielded.connect(lambda item: first.append(time.perf_counter()))
    qtbot.waitUntil(lambda: len(first) > 0, timeout=60_000)
    ft.cancel()
    t0 = time.perf_counter()
    wait_idle(qtbot, ft, 60_000)
    assert time.perf_counter() - t0 < 15.0
    assert ft.status.text().startswith("Cancelled")
    assert ft.progress.format() == "Cancelled"
    assert ft.start_button.isEnabled() and not ft.cancel_button.isEnabled()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_lattice_cache_follows_frame_and_layer(make_napari_viewer, qtbot):
    """The lattice is found in a worker, once per layer, frame, material and pixel size; new
    data or a removed layer forget it; a click is cheap (no re-tiling, no new lattice)."""
    from napari_atomdefect._sample_data import make_sample_data

    viewer = make_napari_viewer()
    image = np.asarray(make_sample_data()[0][0], np.float32)
    layer = viewer.add_image(np.stack([image, image[::-1].copy()]), name="stack")
    ft = FinetuneWidget(viewer)
    ft.all_cells.setChecked(True)
    _all_selected(qtbot, ft)
    first = ft.lattice
    assert len(ft._lattices) == 1 and ft._key()[1] == 0
    viewer.dims.set_current_step(0, 1)
    assert ft.lattice is None  # another frame: not the first frame's lattice
    ft.update_selection()
    _all_selected(qtbot, ft)
    assert len(ft._lattices) == 2 and ft.lattice is not first
    # A click selects through the cached lattice, without a worker.
    ft.all_cells.setChecked(False)
    ft.start_picking()
    lat = ft.lattice
    viewer.layers[CELLS_LAYER].data = lat.metal_sites_px[10:13] + (lat.a1_px + lat.a2_px) / 3
    assert ft.worker is None and ft.count_label.text().startswith("3 cells selected")
    layer.data = np.stack([image, image, image])
    assert len(ft._lattices) == 0
    viewer.layers.remove(layer)
    assert len(ft._lattices) == 0


def test_lattice_follows_the_calibration_policy(make_napari_viewer, qtbot):
    """A file pixel size 16 % off the lattice yields to the lattice here too, as in Detect, the
    CLI and the API: fine-tuning simulates its training cells at the right sampling."""
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 256, 0.012, seed=5)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="wrong", scale=(0.01392, 0.01392), units=("nm", "nm"),
                     metadata={"atomdefect": {"pixel_size_nm": 0.01392, "calibration": "file"}})
    ft = FinetuneWidget(viewer)
    ft.ensure_lattice()
    qtbot.waitUntil(lambda: ft.lattice is not None, timeout=60_000)
    assert ft.lattice.calibration == "lattice"
    assert ft.lattice.pixel_size_nm == pytest.approx(0.012, rel=0.01)


def test_finetune_follows_the_material_the_image_was_analysed_as(make_napari_viewer):
    """A WS2 image analysed as WS2 with Se in the Detect widget: the Fine-tune widget takes WS2
    and its bundled model as the base (it stayed at MoS2 / mos2-default and fine-tuned that)."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="ws2")
    detect, finetune = DetectWidget(viewer), FinetuneWidget(viewer)
    assert finetune.material.currentText() == "MoS2"
    detect.material.setCurrentText("WS2")
    for name, box in detect.substituent_checks.items():
        box.setChecked(name == "Se")
    assert detect._inputs() is not None  # what every run of the Detect widget starts with
    assert finetune.material.currentText() == "WS2"
    assert finetune.base_model.currentText() == "ws2-default"
    # a later analysis as another material is followed too
    detect.material.setCurrentText("WSe2")
    detect._inputs()
    assert (finetune.material.currentText(), finetune.base_model.currentText()) == (
        "WSe2", "wse2-default")


def test_the_base_follows_the_material_chosen_in_the_finetune_dock(make_napari_viewer):
    """Trial, twenty-first session: choosing WS2 in the Fine-tune dock itself (no detection
    first) left mos2-default as the base. A bundled base follows the material chosen."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    finetune = FinetuneWidget(viewer)
    assert finetune.base_model.currentText() == "mos2-default"
    finetune.material.setCurrentText("WS2")
    assert finetune.base_model.currentText() == "ws2-default"
    finetune.material.setCurrentText("MoSe2")
    assert finetune.base_model.currentText() == "mose2-default"
    # the Advanced section folds away while unchecked (its greyed rows took the dock's room)
    assert finetune.noise_steps.isHidden() and finetune.keep_base.isHidden()
    finetune.advanced.setChecked(True)
    assert not finetune.noise_steps.isHidden() and not finetune.keep_base.isHidden()


def test_time_left_comes_from_the_training_part_in_progress():
    """The estimate follows the steps of the part being trained (stage 1, then the detector),
    not the fraction of the whole bar, and starts again when the next part starts."""
    from napari_atomdefect.widgets.finetune import PartTimer

    timer = PartTimer()
    assert timer.seconds_left({"fraction": 0.01, "message": "Simulating"}, 0.0) is None
    assert timer.seconds_left({"step": 0, "steps": 100}, 10.0) is None
    assert timer.seconds_left({"step": 3, "steps": 100}, 13.0) is None  # too few steps yet
    assert timer.seconds_left({"step": 10, "steps": 100}, 20.0) == pytest.approx(90.0)
    # the detector part: 50 steps at 0.5 s a step, whatever stage 1 took
    assert timer.seconds_left({"step": 0, "steps": 50}, 200.0) is None
    assert timer.seconds_left({"step": 10, "steps": 50}, 205.0) == pytest.approx(20.0)


def test_suggested_sites_cover_enough_cells_for_the_held_out_check():
    """Trial, twenty-second session: *Suggest cells to review* marked 50 sites, which fell in 48
    cells, and the run then held none out to check the result on the user's cells (that needs
    50). Enough sites are marked now for their cells to number 50."""
    from napari_atomdefect.core.finetune.selection import select_cells
    from napari_atomdefect.core.finetune.verdict import min_cells_to_hold_out
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.simulate.image import simulate_image
    from napari_atomdefect.widgets.finetune import suggested_sites

    sim = simulate_image("MoS2", 384, 0.012, seed=3)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    want = min_cells_to_hold_out()
    # the sites of cells in pairs (two uncertain sites often share a cell)
    pairs = np.concatenate([lattice.metal_sites_px[:, None], lattice.metal_sites_px[:, None]
                            + [0.3, 0.3]], axis=1).reshape(-1, 2)[:120]
    chosen = suggested_sites(pairs, lattice)
    assert len(select_cells(lattice, chosen, None, False)) >= want
    assert len(select_cells(lattice, chosen[:-1], None, False)) < want  # no more than needed
    assert len(chosen) > want
    few = pairs[:40]  # fewer cells than that: every site
    assert len(suggested_sites(few, lattice)) == 40
    assert len(suggested_sites(pairs, None)) == int(want * 1.1)  # no lattice yet


def test_model_management_asks_before_deleting_and_says_what_failed(make_napari_viewer,
                                                                     tmp_path, monkeypatch):
    """Delete asks first (one click had removed a model for good); an export that cannot be
    written, a rename and Start without an image each leave one sentence in the dock, never a
    traceback."""
    import shutil

    from qtpy.QtWidgets import QFileDialog, QMessageBox

    from napari_atomdefect.core.models.registry import resolve_model

    models = tmp_path / "models"
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(models))
    models.mkdir()
    shutil.copytree(resolve_model("mos2-default").path, models / "mine")
    viewer = make_napari_viewer()
    ft = FinetuneWidget(viewer)
    ft.refresh_models()
    ft.start()
    assert "Open an image first" in ft.status.text()
    ft.models.setCurrentRow([ft.models.item(k).text() for k in range(ft.models.count())]
                            .index("mine"))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    ft._delete_selected()
    assert (models / "mine").is_dir() and "kept" in ft.status.text()
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "no such folder" / "m.zip"), ""))
    ft._export_dialog()
    assert ft.status.text().startswith("Not exported")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    ft._delete_selected()
    assert not (models / "mine").exists() and "Deleted model mine" in ft.status.text()


def test_suggestions_join_the_cells_picked_and_unreviewed_cells_are_said(make_napari_viewer,
                                                                         qtbot):
    """A user's trial: *Suggest cells to review* replaced the cells picked by hand, and a run on
    suggested cells nobody had corrected learnt the detections back without a word."""
    import pandas as pd

    from napari_atomdefect.core.finetune.selection import unreviewed_note

    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    ft = FinetuneWidget(viewer)
    ft.start_picking()
    viewer.layers[CELLS_LAYER].data = np.array([[100.0, 100.0], [200.0, 200.0]])
    _count(qtbot, ft, "2 cells selected")
    wait_idle(qtbot, ft, 60_000)
    lattice = ft.lattice
    uncertain = lattice.metal_sites_px[::7][:30]
    viewer.add_points(np.zeros((0, 2)), name="det",
                      metadata={"atomdefect": {"uncertain_sites_px": uncertain.tolist()}})
    ft.suggest_cells()
    data = viewer.layers[CELLS_LAYER].data
    np.testing.assert_allclose(data[:2], [[100.0, 100.0], [200.0, 200.0]])  # kept, first
    picked = np.array([[100.0, 100.0], [200.0, 200.0]])
    near = np.linalg.norm(uncertain[:, None] - picked[None], axis=2).min(1) < 0.5 * lattice.a_px
    assert len(data) == 2 + int((~near).sum()) and (~near).sum() >= 28  # a site on a picked cell
    # Suggest again: nothing new, and its own suggestions are not called "picked" (a trial)
    from unittest import mock

    with mock.patch("napari.utils.notifications.show_info") as said:
        ft.suggest_cells()
    assert len(viewer.layers[CELLS_LAYER].data) == len(data)
    assert said.call_args[0][0].startswith(f"No new least-certain sites: the {len(data)} marked")
    # Learning from the detections of cells none of which holds a correction: said.
    ids = np.arange(40)
    sites = lattice.metal_sites_px[ids]
    table = pd.DataFrame({"y_px": sites[:, 0], "x_px": sites[:, 1], "class": "V_Mo",
                          "confidence": 0.9, "source": "model"})
    note = unreviewed_note(lattice, ids, table)
    assert note.startswith("None of the 40 selected cells holds a call added or changed by hand")
    table.loc[3, "source"] = "manual"
    assert unreviewed_note(lattice, ids, table) == ""
    far = table.copy()  # a correction on a cell not selected
    far.loc[3, ["y_px", "x_px"]] = lattice.metal_sites_px[300]
    far.loc[3, "source"] = "manual"
    assert unreviewed_note(lattice, ids, far).startswith("None of the 40")


def test_a_squeezed_fine_tune_dock_scrolls_its_outcome_into_view(make_napari_viewer, qtbot):
    """Trial, twenty-ninth session: with Detect, Review and Fine-tune docked, the Fine-tune dock
    was 150 px high and its outcome, status and *Start* stayed below the fold when a run ended."""
    from pathlib import Path

    viewer = make_napari_viewer()
    ft = FinetuneWidget(viewer)
    ft.resize(420, 200)
    ft.show()
    qtbot.waitExposed(ft)
    result = {"message": "Fine-tuned.", "path": Path("my-model"), "outcome": "The fine-tuned "
              "detector is kept (simulated images of your microscope: mean F1 0.70 → 0.80).",
              "card": {"detector": {"metrics": {"validation_site_f1": {"V_S": 0.8}}},
                       "fine_tuning": {"outcome": {"lost": False}}}}
    ft._on_done(result)
    qtbot.wait(50)
    assert ft.scroll_area.verticalScrollBar().value() > 0
    assert not ft.outcome.visibleRegion().isEmpty()


def test_corrections_made_on_another_image_are_refused(make_napari_viewer, qtbot, tmp_path,
                                                       monkeypatch):
    """Trial, thirty-second session: the corrected detections of image 19 taught a model of image
    10's cells (base F1 0.12 on "your" held-out cells), and the model was kept."""
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    other = viewer.add_image(np.zeros((64, 64), np.float32), name="another image")
    corrections = viewer.add_points(
        np.array([[10.0, 10.0]]), name="another image defects", features={"class": ["V_S"]},
        metadata={"atomdefect": {"kind": "detections", "image": other.name}})
    ft = FinetuneWidget(viewer)
    ft.image_combo.setCurrentText("MoS2 sample (simulated)")
    ft.all_cells.setChecked(True)
    _all_selected(qtbot, ft)
    ft.use_corrections.setChecked(True)
    ft.corrections.setCurrentText(corrections.name)
    ft.start()
    assert ft.worker is None
    assert ft.status.text() == (
        "The corrections in 'another image defects' were made on 'another image', not on "
        "'MoS2 sample (simulated)': choose that image to fine-tune on, or this image's own "
        "corrected detections.")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_selection_layer_going_away_starts_no_lattice_search(make_napari_viewer):
    """Closing the viewer removes every layer: a lattice search started then outlived the
    window and aborted napari (a trial). Removing a selection layer only updates the count."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    ft = FinetuneWidget(viewer)
    viewer.add_points(np.zeros((0, 2)), name=CELLS_LAYER)
    viewer.add_shapes(name=REGION_LAYER)
    assert ft.lattice is None and ft.worker is None
    viewer.layers.remove(REGION_LAYER)
    assert ft.worker is None


def test_the_bar_is_full_when_the_lattice_is_found(make_napari_viewer, qtbot):
    """The lattice search's bar ends full (it stood at 2 % after the search: a trial)."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    ft = FinetuneWidget(viewer)
    ft.all_cells.setChecked(True)
    _all_selected(qtbot, ft)
    assert ft.status.text().startswith("Lattice: ") and ft.progress.value() == 100
