"""Screenshots of the dock widgets in use, for docs/user_guide.md and docs/finetuning.md.

Run under a display or Xvfb:  xvfb-run -a python docs/make_screenshots.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

from napari_atomdefect.widgets.detect import DetectWidget
from napari_atomdefect.widgets.finetune import REGION_LAYER, FinetuneWidget
from napari_atomdefect.widgets.review import ReviewWidget
from napari_atomdefect.widgets.stats import StatsWidget

OUT = Path(__file__).resolve().parent / "images"


def settle(seconds: float = 0.5) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait_worker(widget) -> None:
    while widget.worker is not None:
        settle(0.1)


def shot(viewer, name: str) -> None:
    settle(0.6)
    imsave(OUT / name, viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)
    print("wrote", OUT / name)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    # The fine-tuned model of the screenshots goes to a scratch folder, not the user's models.
    os.environ["ATOMDEFECT_USER_MODELS"] = tempfile.mkdtemp()
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1500, 1000)
    viewer.open_sample("napari-atomdefect", "mos2")
    viewer.layers["ground truth (sample)"].visible = False
    detect = DetectWidget(viewer)
    viewer.window.add_dock_widget(detect, name="Detect defects", area="right")
    shot(viewer, "guide_1_open.png")

    detect.find_lattice()
    wait_worker(detect)
    viewer.camera.zoom *= 2.5
    shot(viewer, "guide_2_lattice.png")

    detect.detect()
    wait_worker(detect)
    sites = [layer for layer in viewer.layers if layer.name.endswith("sites")]
    for layer in sites:
        layer.visible = False
    viewer.reset_view()
    shot(viewer, "guide_3_detect.png")

    review = ReviewWidget(viewer)
    stats = StatsWidget(viewer)
    viewer.window.add_dock_widget(review, name="Review and correct", area="right")
    viewer.window.add_dock_widget(stats, name="Statistics", area="right")
    review.threshold.setValue(50)
    layer = review.layer()
    first = review.next_low_confidence()
    viewer.camera.zoom *= 3
    if first is not None:
        viewer.camera.center = tuple(np.asarray(layer.data[first]) * np.asarray(layer.scale))
    shot(viewer, "guide_4_review.png")

    viewer.layers["ground truth (sample)"].visible = True
    viewer.layers["ground truth (sample)"].opacity = 0.5
    shot(viewer, "guide_5_compare_truth.png")

    detect.show_model_view()
    wait_worker(detect)
    for lyr in viewer.layers:
        lyr.visible = lyr.metadata.get("atomdefect", {}).get("kind") == "model_view"
    shot(viewer, "guide_6_model_view.png")
    viewer.window.remove_dock_widget(review)
    viewer.window.remove_dock_widget(stats)
    finetune_shots(viewer)
    viewer.close()


def finetune_shots(viewer) -> None:
    """Fine-tune widget: a region of cells selected, then a short run with corrections."""
    for lyr in viewer.layers:
        lyr.visible = lyr.name == "MoS2 sample (simulated)"
    viewer.reset_view()
    ft = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(ft, name="Fine-tune", area="right")
    ft.image_combo.setCurrentText("MoS2 sample (simulated)")
    ft.start_region()
    h, w = viewer.layers["MoS2 sample (simulated)"].data.shape
    viewer.layers[REGION_LAYER].add_polygons([np.array([[0.1 * h, 0.1 * w], [0.1 * h, 0.9 * w],
                                                        [0.9 * h, 0.9 * w], [0.9 * h, 0.1 * w]])])
    ft.use_corrections.setChecked(True)
    settle(1.0)
    shot(viewer, "finetune_1_select.png")
    ft.advanced.setChecked(True)
    ft.noise_steps.setValue(30)
    ft.detector_steps.setValue(100)
    ft.name_edit.setText("my-microscope")
    ft.start()
    wait_worker(ft)
    shot(viewer, "finetune_2_done.png")


if __name__ == "__main__":
    main()
