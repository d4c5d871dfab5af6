"""Screenshots of the dock widgets in use, for docs/user_guide.md.

Run under a display or Xvfb:  xvfb-run -a python docs/make_screenshots.py
"""

from __future__ import annotations

import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

from napari_atomdefect.widgets.detect import DetectWidget
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
    viewer.close()


if __name__ == "__main__":
    main()
