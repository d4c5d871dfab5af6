"""Layers the plugin adds are drawn on the image, also for an image without a pixel size."""

import numpy as np
import pytest

from napari_atomdefect.core.simulate.image import simulate_image
from napari_atomdefect.widgets.detect import DetectWidget
from tests.viewer.helpers import layers_of, wait_idle

pytestmark = pytest.mark.viewer


@pytest.fixture(scope="module")
def sim():
    return simulate_image("MoS2", (256, 256), 0.012, seed=1)


def _world(layer, points):
    return np.array([layer.data_to_world(p) for p in np.asarray(points)])


def _nearest(a, b):
    return np.min(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2), axis=1)


def test_run_all_on_uncalibrated_numpy_image(make_napari_viewer, qtbot, sim):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.asarray(sim.image), name="raw")  # scale 1, no units
    widget = DetectWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    [sites] = layers_of(viewer, "lattice_sites")
    [grid] = layers_of(viewer, "cell_grid")
    assert grid.name == "raw unit cells"  # (two images' grids told apart in the layer list)
    [det] = layers_of(viewer, "detections")
    for layer in (sites, grid, det):
        np.testing.assert_allclose(layer.scale, image.scale)
        np.testing.assert_allclose(layer.translate, image.translate)
        assert tuple(layer.units) == tuple(image.units)
    assert len(det.data) >= 3
    # Every marker sits on a lattice site, in world coordinates, and on the same image pixel.
    a_px = det.metadata["atomdefect"]["a_px"]
    d = _nearest(_world(det, det.data), _world(sites, sites.data))
    assert d.max() < 0.15 * a_px
    np.testing.assert_allclose(_world(det, det.data), _world(image, det.data))
    # The nm calibration from the lattice is kept for exports.
    assert det.metadata["atomdefect"]["pixel_size_nm"] == pytest.approx(0.012, rel=0.01)


def test_calibrate_moves_image_and_its_layers_together(make_napari_viewer, qtbot, sim):
    """An uncalibrated image takes the lattice calibration when the lattice is found (it is the
    pixel size in use): image and layers move together and the view stays on the same pixels."""
    viewer = make_napari_viewer()
    image = viewer.add_image(np.asarray(sim.image), name="raw")
    widget = DetectWidget(viewer)
    viewer.scene.camera.center = (100.0, 60.0)
    viewer.scene.camera.zoom = 3.0
    widget.run_all()
    wait_idle(qtbot, widget)
    [sites], [det] = layers_of(viewer, "lattice_sites"), layers_of(viewer, "detections")
    px = image.scale[-1]
    assert px == pytest.approx(0.012, rel=0.01) and str(image.units[-1]) == "nanometer"
    for layer in (sites, det, *layers_of(viewer, "cell_grid")):
        np.testing.assert_allclose(layer.scale, image.scale)
        assert str(layer.units[-1]) == "nanometer"
    np.testing.assert_allclose(_world(det, det.data), _world(image, det.data))
    assert det.metadata["atomdefect"]["pixel_size_nm"] == pytest.approx(px)
    assert widget.pixel_size.value() == pytest.approx(px, abs=1e-5)
    assert "calibrated from the lattice" in widget.calibration_label.text()
    # The view stays on the same part of the image.
    np.testing.assert_allclose(image.world_to_data(viewer.scene.camera.center[-2:]),
                               [100.0, 60.0], atol=1e-6)
    assert viewer.scene.camera.zoom == pytest.approx(3.0 / px)
    # Calibrating again from the lattice changes nothing.
    before = _world(det, det.data)
    widget.calibrate_from_lattice()
    wait_idle(qtbot, widget)
    np.testing.assert_allclose(_world(det, det.data), before, rtol=1e-6)


def test_typed_pixel_size_is_kept(make_napari_viewer, qtbot, sim):
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(sim.image), name="raw")
    widget = DetectWidget(viewer)
    widget.pixel_size.setValue(0.0125)  # what typing does (4 % off the lattice)
    assert "Typed by you" in widget.calibration_label.text()
    widget.run_all()
    wait_idle(qtbot, widget)
    assert widget.pixel_size.value() == pytest.approx(0.0125)
    [det] = layers_of(viewer, "detections")
    assert det.metadata["atomdefect"]["pixel_size_nm"] == pytest.approx(0.0125)
    label = widget.calibration_label.text()
    assert "0.01250 nm/px (typed by you)" in label and "lattice says 0.0120" in label
    image = viewer.layers["raw"]
    np.testing.assert_allclose(image.scale, [0.0125, 0.0125])  # the canvas uses it too
    np.testing.assert_allclose(det.scale, image.scale)
    # Choosing another image and coming back does not lose the typed value.
    viewer.add_image(np.zeros((64, 64), np.float32), name="other")
    widget.image_combo.setCurrentText("other")
    assert widget.pixel_size.value() == 0.0
    widget.image_combo.setCurrentText("raw")
    assert widget.pixel_size.value() == pytest.approx(0.0125)
    # ... and the line still says what is in use (the lattice of this image is known), now
    # with where it is drawn: 3.2 nm wide in a corner of "other", drawn 64 units wide.
    back = widget.calibration_label.text()
    assert back.startswith(label) and "in a corner of other" in back[len(label):]
    viewer.add_shapes(name="anything")  # adding an unrelated layer changes nothing either
    assert widget.calibration_label.text() == back
    widget.detect()
    wait_idle(qtbot, widget)
    assert layers_of(viewer, "detections")[-1].metadata["atomdefect"]["pixel_size_nm"] == \
        pytest.approx(0.0125)


def test_lattice_warnings_reach_the_widget(make_napari_viewer, qtbot, sim):
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(sim.image), name="raw")
    widget = DetectWidget(viewer)
    widget.pixel_size.setValue(0.014)
    widget.find_lattice()
    wait_idle(qtbot, widget)
    assert "kept as given" in widget.status.text()
    assert "off" in widget.calibration_label.text()


def test_an_alloy_calibrated_with_vegard_says_so_in_the_calibration_line(make_napari_viewer,
                                                                          qtbot):
    """An uncalibrated Se-rich WS2 layer analysed as WS2 with Se takes its pixel size from
    Vegard's law; the calibration line says so (it said only "calibrated from the lattice",
    the Se share appeared nowhere)."""
    c = 0.9
    sim = simulate_image("WS2", 256, 0.012, seed=3, substituents="Se",
                         defect_fractions={"Se_S": 2 * c * (1 - c), "Se2_S2": c * c})
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(sim.image), name="alloy")
    widget = DetectWidget(viewer)
    widget.material.setCurrentText("WS2")
    for name, box in widget.substituent_checks.items():
        box.setChecked(name == "Se")
    widget.run_all()
    wait_idle(qtbot, widget)
    label = widget.calibration_label.text()
    assert "Vegard's law" in label and "% Se" in label, label
    assert "off)" not in label


def test_the_calibration_line_tells_no_disagreement_within_the_tolerance():
    from napari_atomdefect.core.lattice.calibration_policy import (
        choose_pixel_size,
        describe_choice,
    )

    close = choose_pixel_size(0.01180, "lattice", 0.01188, "MoS2", 0.03)
    assert describe_choice(close, "lattice") == ("In use: 0.01180 nm/px (calibrated from the "
                                                 "lattice).")
    far = choose_pixel_size(0.01100, "lattice", 0.01188, "MoS2", 0.03)
    assert "the earlier calibration was 0.01100 nm/px (7.4% off)" in describe_choice(
        far, "lattice")


def test_a_scale_in_angstrom_is_read_as_a_pixel_size(make_napari_viewer):
    """A layer whose scale is in Å (or pm, µm) has a pixel size (it was ignored: only nm
    counted); a scale in pixels has none."""
    from napari_atomdefect.widgets._common import given_pixel_size

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((32, 32)), scale=(0.11, 0.11), units=("angstrom",) * 2)
    assert given_pixel_size(layer) == (pytest.approx(0.011), "file")
    widget = DetectWidget(viewer)
    assert "0.01100 nm/px" in widget.calibration_label.text()
    bare = viewer.add_image(np.zeros((32, 32)))
    assert given_pixel_size(bare) == (None, "none")


def test_a_lattice_calibration_of_another_material_is_not_kept(make_napari_viewer, qtbot):
    """Trial, twenty-second session: an uncalibrated WSe2 image run first as MoS2 kept MoS2's
    lattice calibration (3.8 % off) for the WSe2 run that followed — within the S/Se alloy's
    range of lattice constants, so never replaced. A run of another material (or other
    substituents) calibrates anew; the line says so as soon as the material changes."""
    sim = simulate_image("WSe2", (256, 256), 0.0125, seed=2)
    viewer = make_napari_viewer()
    image = viewer.add_image(np.asarray(sim.image), name="raw")
    widget = DetectWidget(viewer)
    widget.material.setCurrentText("MoS2")
    widget.run_all()
    wait_idle(qtbot, widget)
    mos2_px = float(image.scale[-1])
    assert mos2_px == pytest.approx(0.0125 * 0.3160 / 0.3282, rel=0.01)  # MoS2's constant
    widget.material.setCurrentText("WSe2")
    assert "the next run calibrates it again" in widget.calibration_label.text()
    widget.run_all()
    wait_idle(qtbot, widget)
    assert float(image.scale[-1]) == pytest.approx(0.0125, rel=0.01)
    assert image.metadata["atomdefect"]["calibrated_for"] == {"material": "WSe2",
                                                              "substituents": ["S"]}
    # the same analysis again keeps its calibration (no needless new lattice search)
    before = float(image.scale[-1])
    widget.run_all()
    wait_idle(qtbot, widget)
    assert float(image.scale[-1]) == before
    # Back to the first analysis, whose lattice is kept: the line says what is in use now
    # (WSe2's), not that lattice's MoS2 calibration (a trial read "In use: 0.00804" beside
    # "unknown" and a scale of 0.00826)
    widget.material.setCurrentText("MoS2")
    said = widget.calibration_label.text()
    assert said.startswith(f"Calibrated from the lattice for WSe2 with S: {before:.5f} nm/px; "
                           "the next run calibrates it again"), said
    # the earlier runs' calls are hidden, not removed (a trial saw the MoSe2 run's S_Se calls
    # drawn under the next run's, as if both were the answer)
    runs = layers_of(viewer, "detections")
    assert len(runs) == 3 and [la.visible for la in runs] == [False, False, True]
    # their names say the model and the substituents of the run
    assert runs[0].name == "raw defects (mos2-default, O)"
    assert runs[-1].name.startswith("raw defects (wse2-default, S)")


def test_an_uncalibrated_image_beside_a_calibrated_one_says_how_it_is_drawn(make_napari_viewer,
                                                                            sim):
    """An image without a pixel size opened beside a calibrated one is drawn at one nm per
    pixel (napari warns that the units disagree) until the lattice calibrates it: the
    calibration line says so, and which button puts it at its scale; alone, it does not."""
    viewer = make_napari_viewer()
    widget = DetectWidget(viewer)
    viewer.add_image(np.asarray(sim.image), name="raw")
    widget.image_combo.setCurrentText("raw")
    assert "Not calibrated" in widget.calibration_label.text()
    assert "beside the calibrated" not in widget.calibration_label.text()
    viewer.add_image(np.asarray(sim.image), name="calibrated", scale=(0.012, 0.012))
    widget.image_combo.setCurrentText("calibrated")
    widget.image_combo.setCurrentText("raw")
    assert "beside the calibrated images" in widget.calibration_label.text()
    assert "Calibrate from lattice" in widget.calibration_label.text()


def test_the_calibration_line_says_what_a_new_choice_does(make_napari_viewer, qtbot, sim):
    """Trial, thirty-first session: after a run, ticking a substituent box put the line back to
    "Not calibrated" beside a calibrated image, and a scale set without a unit was ignored
    without a word."""
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(sim.image), name="raw", scale=(0.012, 0.012))  # no unit
    widget = DetectWidget(viewer)
    label = widget.calibration_label.text()
    assert "Not calibrated" in label and "has no unit" in label and "0.012 per pixel" in label
    widget.run_all()
    wait_idle(qtbot, widget)
    assert "calibrated from the lattice" in widget.calibration_label.text()
    widget.substituent_checks["Se"].setChecked(True)
    label = widget.calibration_label.text()
    assert "Not calibrated" not in label, label
    assert "Calibrated from the lattice for MoS2 with O" in label and "again" in label, label


def test_a_calibrated_image_under_an_uncalibrated_one_says_where_it_is(make_napari_viewer, sim):
    """The reverse: a calibrated image opened after an uncalibrated one is drawn a few nm wide
    in a corner of it (a trial took the other image for this one); the calibration line says
    so and what to do, and stops saying it once the other image is hidden."""
    viewer = make_napari_viewer()
    widget = DetectWidget(viewer)
    viewer.add_image(np.asarray(sim.image), name="raw")
    viewer.add_image(np.asarray(sim.image), name="calibrated", scale=(0.012, 0.012),
                     units=("nm", "nm"))  # (as the plugin's reader opens a calibrated file)
    widget.image_combo.setCurrentText("calibrated")
    text = widget.calibration_label.text()
    # (3.06 or 3.07 nm: napari versions measure a layer's extent to pixel centres or edges)
    assert "nm wide in a corner of raw" in text and "hide raw" in text
    widget.image_combo.setCurrentText("raw")
    assert "in a corner of" not in widget.calibration_label.text()
    viewer.layers["raw"].visible = False
    widget.image_combo.setCurrentText("calibrated")
    assert "in a corner of" not in widget.calibration_label.text()


def test_run_all_on_an_uncalibrated_image_with_a_blanked_stripe(make_napari_viewer, qtbot, sim):
    """A stripe of NaN pixels (a blanked glitch) in an uncalibrated array: no site and no call
    on it, and the dock says beside the result how many columns were left out unread (a trial's
    stripe had made "15 % of the columns can only be vacancies" and a Mo/W alloy)."""
    viewer = make_napari_viewer()
    data = np.asarray(sim.image, np.float32).copy()
    data[120:132, 20:236] = np.nan
    viewer.add_image(data, name="striped")
    widget = DetectWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    [sites], [det] = layers_of(viewer, "lattice_sites"), layers_of(viewer, "detections")
    for layer in (sites, det):
        on_stripe = (layer.data[:, -2] > 120 - 2) & (layer.data[:, -2] < 132 + 2) \
            & (layer.data[:, -1] > 22) & (layer.data[:, -1] < 234)
        assert not on_stripe.any(), layer.name
    status = widget.status.text()
    assert "on NaN or infinite pixels (blanked)" in status
    assert "alloy" not in widget.fit_label.text() and "can only be" not in widget.fit_label.text()
