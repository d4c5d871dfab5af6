"""One calibration policy: the Detect widget, the CLI and ``detect()`` agree on the pixel size."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.core.detect.detect import detect
from napari_atomdefect.core.io.image import read_image, write_tiff
from napari_atomdefect.core.lattice.calibration_policy import choose_pixel_size
from napari_atomdefect.core.simulate.image import simulate_image
from napari_atomdefect.widgets.detect import DetectWidget

pytestmark = pytest.mark.viewer

WRONG_NM = 0.0139237  # 16 % off the true 0.012, with more digits than the widget shows


def test_policy_rules():
    file = choose_pixel_size(WRONG_NM, "file", 0.012, "MoS2", 0.03)
    assert (file.pixel_size_nm, file.source) == (0.012, "lattice") and "16.0%" in file.message
    user = choose_pixel_size(WRONG_NM, "user", 0.012, "MoS2", 0.03)
    assert (user.pixel_size_nm, user.source) == (WRONG_NM, "user") and "kept" in user.message
    close = choose_pixel_size(0.0121, "file", 0.012, "MoS2", 0.03)
    assert (close.pixel_size_nm, close.source, close.message) == (0.0121, "file", None)
    none = choose_pixel_size(None, "none", 0.012, "MoS2", 0.03)
    assert (none.pixel_size_nm, none.source) == (0.012, "lattice")


def test_wrong_file_calibration_same_in_widget_cli_and_api(make_napari_viewer, qtbot, tmp_path):
    sim = simulate_image("MoS2", (256, 256), 0.012, seed=1)
    path = tmp_path / "wrong.tif"
    write_tiff(path, sim.image, WRONG_NM)
    img = read_image(path)
    assert img.calibration == "file" and img.pixel_size_nm == pytest.approx(WRONG_NM, rel=1e-4)

    api = detect(img.data, img.pixel_size_nm, calibration="file").attrs["pixel_size_nm"]

    from napari_atomdefect.cli import main

    out = tmp_path / "cli.csv"
    assert main(["detect", str(path), "--out", str(out)]) in (0, None)
    table = pd.read_csv(out)
    cli = float(np.median(table.y_nm / table.y_px))

    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-atomdefect")
    widget = DetectWidget(viewer)
    assert "From the file" in widget.calibration_label.text()
    widget.run_all()
    qtbot.waitUntil(lambda: widget.worker is None and not widget._pending_detect,
                    timeout=180_000)
    [det] = [la for la in viewer.layers
             if la.metadata.get("atomdefect", {}).get("kind") == "detections"]
    gui = det.metadata["atomdefect"]["pixel_size_nm"]
    assert gui == pytest.approx(api, rel=1e-9) and cli == pytest.approx(api, rel=1e-4)  # CSV rounding
    assert api == pytest.approx(0.012, rel=0.01)
    # The widget says, persistently, what is in use and how far the file was off.
    label = widget.calibration_label.text()
    assert "calibrated from the lattice" in label and "the file says 0.01392" in label
    assert "16." in label
    # ... and the result line keeps the sentence that the file's was replaced (a trial saw it
    # only in a toast cut short, the calibration line being scrolled out of view)
    assert "The file's pixel size (0.01392 nm/px) disagrees" in widget.status.text()
    # The canvas uses it too: scale bar, cursor position and the CSV's nm agree.
    np.testing.assert_allclose(image.scale[-2:], [api, api], rtol=1e-9)
    np.testing.assert_allclose(det.scale[-2:], image.scale[-2:])
    assert image.metadata["atomdefect"]["file_pixel_size_nm"] == pytest.approx(WRONG_NM, rel=1e-4)


def test_the_model_view_adopts_the_lattice_calibration_too(make_napari_viewer, qtbot, tmp_path):
    """Trial, twenty-first session: *Show model's view* said it used the lattice calibration
    while the pixel-size line kept "From the file" and the image its file scale."""
    sim = simulate_image("MoS2", (256, 256), 0.012, seed=1)
    path = tmp_path / "wrong.tif"
    write_tiff(path, sim.image, WRONG_NM)
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-atomdefect")
    widget = DetectWidget(viewer)
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        widget.show_model_view()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=180_000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    label = widget.calibration_label.text()
    assert "calibrated from the lattice" in label and "the file says 0.01392" in label
    # the replaced calibration is information, as after Find lattice (a README trial saw it as
    # a yellow warning after Show model's view only)
    said = [n for n in seen if "disagrees" in str(n.message)]
    assert said and all(n.severity == NotificationSeverity.INFO for n in said), [
        (n.severity, n.message) for n in seen]
    assert image.scale[-1] == pytest.approx(0.012, rel=0.01)
    [view] = [la for la in viewer.layers
              if la.metadata.get("atomdefect", {}).get("kind") == "model_view"]
    np.testing.assert_allclose(view.scale, image.scale)
