"""Background jobs of the widgets with REAL napari thread workers on a one-thread pool: a cancelled
detection must not poison the next job on that thread, an error must never leave a widget stuck,
model lists refresh on the GUI thread, and the lattice caches follow their layers."""

import re
import sys
import threading
import time

import numpy as np
import pytest
from qtpy.QtCore import QThread, QThreadPool
from qtpy.QtWidgets import QApplication

from napari_atomdefect.core.detect import detect as detect_module
from napari_atomdefect.widgets._worker import start_job
from napari_atomdefect.widgets.detect import DetectWidget

pytestmark = pytest.mark.viewer

TIMEOUT_MS = 120_000  # generous on two busy cores; a stuck widget fails instead of hanging


@pytest.fixture
def one_pool_thread():
    """Every worker runs on the same pool thread (what made the poisoning visible)."""
    pool = QThreadPool.globalInstance()
    old = pool.maxThreadCount()
    pool.waitForDone(30_000)
    pool.setMaxThreadCount(1)
    yield pool
    pool.waitForDone(30_000)
    pool.setMaxThreadCount(old)


@pytest.fixture
def viewer_with_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    return viewer


def _idle(qtbot, widget, timeout=TIMEOUT_MS):
    qtbot.waitUntil(lambda: widget.worker is None and not widget._pending_detect,
                    timeout=timeout)


def _training_job(record: dict):
    """A short real detector training (two steps) on simulated cells; records its thread."""
    import torch

    from napari_atomdefect.core.cells.tiles import TileSpec
    from napari_atomdefect.core.simulate.image import simulate_image
    from napari_atomdefect.core.train.datasets import cells_from_simulation
    from napari_atomdefect.core.train.loops import train_detector

    record["thread"] = threading.get_ident()
    record["inference_mode"] = torch.is_inference_mode_enabled()
    yield {"fraction": 0.1, "message": "simulating"}
    cells = cells_from_simulation(simulate_image("MoS2", 160, 0.012, seed=5), TileSpec())
    result = None
    for item in train_detector(cells, cells, steps=2, batch_size=4, report_every=1, width=8):
        if item.get("done"):
            result = item
        else:
            yield {"fraction": item["step"] / item["steps"], "message": "training"}
    return result


def test_cancelled_detection_does_not_poison_the_next_training(viewer_with_sample, qtbot,
                                                               one_pool_thread, monkeypatch):
    widget = DetectWidget(viewer_with_sample)
    original = detect_module.iter_detect
    seen = {}

    def cancel_midway(*args, **kwargs):
        # Cancel (set the abort flag) just before the first classification progress item
        # reaches the worker: the worker then stops with iter_detect suspended in its loop.
        for item in original(*args, **kwargs):
            if item.get("step") == "detect" and "thread" not in seen:
                seen["thread"] = threading.get_ident()
                seen["fraction"] = item["fraction"]
                widget.worker.cancel()
            yield item

    monkeypatch.setattr(detect_module, "iter_detect", cancel_midway)
    widget.detect()
    _idle(qtbot, widget)
    assert "thread" in seen
    assert widget.status.text().startswith("Cancelled")
    assert widget.detect_button.isEnabled() and not widget.cancel_button.isEnabled()

    record, results, errors = {}, [], []
    handle = start_job(_training_job, (record,), on_progress=lambda item: None,
                       on_done=results.append, on_error=errors.append, on_aborted=lambda: None,
                       on_finished=lambda: None)
    qtbot.waitUntil(lambda: handle.ended, timeout=TIMEOUT_MS)
    assert record["thread"] == seen["thread"]  # really the same pool thread
    assert not record["inference_mode"]
    assert errors == []
    assert len(results) == 1 and results[0]["done"]
    # Cells from a simulation are labelled with every class of the material (all substituents).
    assert set(results[0]["metrics"]) == {"V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_Mo"}


def test_runtime_error_leaves_the_widget_usable(viewer_with_sample, qtbot, one_pool_thread,
                                                monkeypatch):
    widget = DetectWidget(viewer_with_sample)
    original = detect_module.iter_detect

    def out_of_memory(*args, **kwargs):
        yield {"step": "lattice", "fraction": 0.0, "message": "Finding the lattice"}
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(detect_module, "iter_detect", out_of_memory)
    widget.detect()
    _idle(qtbot, widget, timeout=30_000)  # before the fix: stuck for ever
    assert widget.status.text().startswith("The device ran out of memory; choose the CPU device")
    assert "CUDA out of memory" in widget.status.text()
    assert widget.detect_button.isEnabled() and not widget.cancel_button.isEnabled()
    # Usable again: a real detection runs to the end.
    monkeypatch.setattr(detect_module, "iter_detect", original)
    widget.detect()
    _idle(qtbot, widget)
    found = re.search(r" defects in (\d+) unit cells \(", widget.status.text())
    assert found and 400 < int(found.group(1)) < 460, widget.status.text()


def test_an_error_in_the_result_handler_still_frees_the_widget(viewer_with_sample, qtbot,
                                                               one_pool_thread, monkeypatch):
    widget = DetectWidget(viewer_with_sample)

    def broken(*args):
        raise KeyError("defects")

    monkeypatch.setattr(widget, "_show_detections", broken)
    widget.detect()
    _idle(qtbot, widget)
    assert widget.status.text() == "Unexpected error: KeyError: 'defects'"
    assert widget.detect_button.isEnabled()


def test_model_saved_from_a_worker_thread_refreshes_on_the_gui_thread(
        make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_atomdefect.core.models import registry
    from napari_atomdefect.widgets.finetune import FinetuneWidget

    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    viewer = make_napari_viewer()
    detect = DetectWidget(viewer)
    ft = FinetuneWidget(viewer)
    archive = registry.export_model(None, tmp_path / "copy.zip")
    threads = []
    list_models = registry.list_models

    def recording_list_models():
        if sys._getframe(1).f_code.co_name == "refresh_models":  # the widgets' refreshes only
            threads.append(QThread.currentThread())
        return list_models()

    monkeypatch.setattr(registry, "list_models", recording_list_models)
    saver = threading.Thread(target=registry.import_model, args=(archive, "from-thread"))
    saver.start()
    saver.join(60)
    qtbot.waitUntil(lambda: detect.model.findData("from-thread") >= 0
                    and ft.base_model.findText("from-thread") >= 0, timeout=30_000)
    main = QApplication.instance().thread()
    assert len(threads) >= 2 and all(t == main for t in threads)


def test_detect_lattice_cache_follows_the_layer(viewer_with_sample, qtbot):
    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    layer = widget.image_layer()
    widget.find_lattice()
    _idle(qtbot, widget)
    assert len(widget._lattices) == 1
    assert widget._inputs_and_lattice()[-1] is not None
    # New data in the same layer: the old lattice is forgotten.
    layer.data = np.asarray(layer.data)[:400, :400].copy()
    assert len(widget._lattices) == 0 and widget._inputs_and_lattice()[-1] is None
    widget.find_lattice()
    _idle(qtbot, widget)
    assert len(widget._lattices) == 1
    # A removed layer (whose id a new layer may reuse) takes its lattices with it.
    name = layer.name
    viewer.layers.remove(layer)
    assert len(widget._lattices) == 0
    viewer.add_image(np.zeros((64, 64), np.float32), name=name)
    assert len(widget._lattices) == 0
    assert widget._inputs_and_lattice()[-1] is None


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_a_job_whose_widget_is_deleted_updates_nothing_and_stops(qtbot, one_pool_thread, ending):
    """The viewer closed while a detection ran (a trial): the finished job's callbacks updated
    deleted widgets ("wrapped C/C++ object … has been deleted") and the process aborted, and a
    job failing after it (Python shutting down) emitted on deleted signals. Now the job is asked
    to stop, no callback runs, and nothing is raised."""
    from qtpy import sip
    from qtpy.QtWidgets import QWidget

    owner = QWidget()
    calls: list[str] = []
    release = threading.Event()
    steps: list[int] = []

    def job():
        for k in range(50):
            steps.append(k)
            yield {"fraction": k / 50}
            if k == 1:
                release.wait(10)  # (the widget is deleted here)
            time.sleep(0.01)
            if k == 3 and ending == "raises":
                raise ValueError("cannot schedule new futures after interpreter shutdown")
        return "result"

    record = {name: (lambda *a, name=name: calls.append(name))
              for name in ("on_progress", "on_done", "on_error", "on_aborted", "on_finished")}
    handle = start_job(job, (), owner=owner, **record)
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=10_000)
    QApplication.processEvents()
    seen = list(calls)
    sip.delete(owner)  # (as a closed viewer deletes its docks: destroyed asks the job to stop)
    release.set()
    qtbot.waitUntil(lambda: handle.ended or not one_pool_thread.activeThreadCount(),
                    timeout=10_000)
    one_pool_thread.waitForDone(10_000)
    QApplication.processEvents()
    assert calls == seen and "on_done" not in calls and "on_error" not in calls
    assert len(steps) < 50  # it stopped at its next progress item
