"""The Detect dock widget driven as a user would, in a real (Xvfb) viewer."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.core.detect.evaluate import score
from napari_atomdefect.widgets.detect import DetectWidget
from tests.viewer.helpers import layers_of, wait_idle

pytestmark = pytest.mark.viewer


@pytest.fixture
def viewer_with_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    return viewer


def test_find_lattice_then_detect(viewer_with_sample, qtbot):
    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    assert widget.image_combo.currentText() == "MoS2 sample (simulated)"
    assert widget.pixel_size.value() == pytest.approx(0.012)
    assert widget.model.count() >= 1
    widget.find_lattice()
    wait_idle(qtbot, widget)
    sites = layers_of(viewer, "lattice_sites")
    assert len(sites) == 1 and len(sites[0].data) > 700
    assert len(layers_of(viewer, "cell_grid")) == 1
    assert not layers_of(viewer, "cell_grid")[0].visible  # the grid starts hidden

    widget.detect()
    wait_idle(qtbot, widget)
    [layer] = layers_of(viewer, "detections")
    assert set(layer.features.columns) >= {"class", "confidence", "source"}
    assert set(layer.features["source"].astype(str)) == {"model"}
    assert widget.device_label.text().startswith("used: cpu")
    np.testing.assert_allclose(layer.scale, [0.012, 0.012])
    pred = pd.DataFrame({"y_px": layer.data[:, 0], "x_px": layer.data[:, 1],
                         "class": layer.features["class"].astype(str)})
    truth_layer = viewer.layers["ground truth (sample)"]
    truth = pd.DataFrame({"y_px": truth_layer.data[:, 0], "x_px": truth_layer.data[:, 1],
                          "class": truth_layer.features["class"].astype(str)})
    s = score(pred, truth, radius_px=0.08 / 0.012)
    assert s.loc["V_S2", "f1"] > 0.8 and s.loc["V_Mo", "f1"] > 0.8
    assert s.loc["V_S|O_S", "f1"] > 0.8
    # napari moves a dragged point in place: the layer's data must be writable (pandas' view
    # was not, and every drag of a call failed)
    layer.selected_data = {0}
    start = layer.data[0].copy()
    layer._set_drag_start({0}, start)  # (pressed on the point, then moved: napari's drag)
    layer._move({0}, start + 2.0)
    layer._move({0}, start + 4.0)
    np.testing.assert_allclose(layer.data[0], start + 4.0)
    assert str(layer.features["source"].iloc[0]) == "model"  # (no Review dock: left as it is)
    # A second run makes a new layer and leaves the first (possibly edited) one alone.
    layer.data = layer.data[:-1]
    n_before = len(layer.data)
    widget.detect()
    wait_idle(qtbot, widget)
    assert len(layers_of(viewer, "detections")) == 2 and len(layer.data) == n_before


def test_run_all_and_cancel(viewer_with_sample, qtbot):
    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    widget.detect()
    widget.cancel()
    wait_idle(qtbot, widget)
    assert not layers_of(viewer, "detections")  # cancelled: no half-made layer
    assert "Cancelled" in widget.status.text()
    widget.run_all()
    wait_idle(qtbot, widget)       # lattice, then the detection it starts
    assert len(layers_of(viewer, "lattice_sites")) == 1
    assert len(layers_of(viewer, "detections")) == 1


def test_errors_become_messages(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((256, 256)).astype(np.float32), name="noise")
    widget = DetectWidget(viewer)
    widget.find_lattice()
    wait_idle(qtbot, widget)
    assert "No crystal lattice found" in widget.status.text()
    assert not layers_of(viewer, "lattice_sites")


def test_a_colour_picture_opens_in_napari_and_is_detected_as_grey(make_napari_viewer, qtbot,
                                                                    tmp_path):
    """A false-colour rendering of a STEM image is napari's own to open (in colour); the Detect
    dock reads such a layer as grey by luminance, says so, and finds the simulated defects."""
    from PIL import Image

    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 320, 0.012, seed=3,
                         defect_fractions={"V_S": 0.05, "V_S2": 0.04, "V_Mo": 0.03})
    grey = (sim.image - sim.image.min()) / (sim.image.max() - sim.image.min())
    tinted = np.stack([grey, grey ** 0.8, grey ** 1.25], axis=-1)  # (its channels differ)
    Image.fromarray((tinted * 255).astype(np.uint8)).save(tmp_path / "rendering.png")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "rendering.png"))
    assert layer.rgb  # napari's reader, in colour: this plugin's declined it
    widget = DetectWidget(viewer)
    widget.pixel_size.setValue(0.012)
    widget.detect()
    wait_idle(qtbot, widget)
    [calls] = layers_of(viewer, "detections")
    pred = pd.DataFrame({"y_px": calls.data[:, 0], "x_px": calls.data[:, 1],
                         "class": calls.features["class"].astype(str)})
    s = score(pred, sim.defects, radius_px=0.08 / 0.012)
    assert s.loc["V_S2", "f1"] > 0.8 and s.loc["V_Mo", "f1"] > 0.8
    assert s.loc["V_S", "f1"] > 0.7


def test_model_view_layer(viewer_with_sample, qtbot):
    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    widget.show_model_view()
    wait_idle(qtbot, widget)
    [view] = layers_of(viewer, "model_view")
    image = viewer.layers["MoS2 sample (simulated)"]
    assert view.data.shape == image.data.shape
    np.testing.assert_allclose(view.scale, image.scale)
    inner = (slice(40, -40), slice(40, -40))
    corr = np.corrcoef(np.asarray(view.data)[inner].ravel(), image.data[inner].ravel())[0, 1]
    assert corr > 0.5  # the translated cells keep the columns where they are
    # just above its image, under every marker layer (on top, the opaque view hid them: a trial)
    order = list(viewer.layers)
    assert order.index(view) == order.index(image) + 1
    assert all(order.index(la) > order.index(view) for la in order if la._type_string == "points")
    # The model's view is derived data: neither the Detect nor the Fine-tune widget offers it as
    # an image to analyse, so choosing the next step never lands on it by default.
    from napari_atomdefect.widgets.finetune import FinetuneWidget

    names = [widget.image_combo.itemText(k) for k in range(widget.image_combo.count())]
    assert names == ["MoS2 sample (simulated)"]
    tune = FinetuneWidget(viewer)
    assert tune.image_combo.currentText() == "MoS2 sample (simulated)"


def test_model_that_does_not_fit_is_shown_in_the_widget(make_napari_viewer, qtbot):
    """A WS2 image analysed with the MoS2 model: the widget says so in a line that stays."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    sim = simulate_image("WS2", 320, 0.012, params=MicroscopeParams(), seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="ws2", scale=(0.012, 0.012), units=("nm", "nm"))
    widget = DetectWidget(viewer)
    widget.material.setCurrentText("MoS2")
    widget.run_all()
    wait_idle(qtbot, widget)
    assert widget.fit_label.isVisibleTo(widget)
    assert "outside what the MoS2 model was trained on" in widget.fit_label.text()
    assert "WS2 fits better" in widget.fit_label.text()
    # one paragraph per sentence of the fit check, each with its sign
    lines = widget.fit_label.text().split("\n")
    assert len(lines) >= 2 and all(x.startswith("⚠ ") for x in lines), lines
    assert any(x.startswith("⚠ Metal/chalcogen contrast") for x in lines)
    [layer] = layers_of(viewer, "detections")
    assert layer.metadata["atomdefect"]["fit"]["proposed"] == "WS2"

    # An image that fits clears the misfit sentence at the next detection (at the sample's low
    # dose the line may still say that O_S and V_S overlap: that is not a misfit).
    viewer.layers.clear()
    viewer.open_sample("napari-atomdefect", "mos2")
    assert widget.image_combo.currentText() == "MoS2 sample (simulated)"
    widget.run_all()
    wait_idle(qtbot, widget)
    said = widget.fit_label.text() if widget.fit_label.isVisibleTo(widget) else ""
    assert "trained on" not in said and "fits better" not in said, said


def test_image_with_a_hole_has_no_calls_inside_it(make_napari_viewer, qtbot):
    """An uncalibrated image with a hole and an amorphous patch: no site or marker inside them,
    the status line says how many cells were left out, and Statistics' densities are over the
    crystal analysed."""
    from napari_atomdefect.widgets.stats import StatsWidget
    from tests.scenarios import holey_image

    hole = (250.0, 250.0, 110.0)
    _, image = holey_image(hole=hole)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="holey")
    widget = DetectWidget(viewer)
    stats = StatsWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    [layer] = layers_of(viewer, "detections")
    a_px = 0.316 / 0.012
    for points in (layer.data, layers_of(viewer, "lattice_sites")[0].data):
        inside = hole[2] - np.hypot(points[:, 0] - hole[0], points[:, 1] - hole[1])
        assert (inside > 0.75 * a_px).sum() == 0
    # (the hole's cells are left out where the lattice fades, its rim by the crystal check)
    assert "are left out" in widget.status.text() and "vacuum" in widget.status.text()
    meta = layer.metadata["atomdefect"]
    image_area = image.shape[0] * image.shape[1] * meta["pixel_size_nm"] ** 2
    assert 0.8 * image_area < meta["area_nm2"] < 0.95 * image_area
    table = stats.statistics()
    assert table["per_nm2"].sum() == pytest.approx(len(layer.data) / meta["area_nm2"], rel=1e-3)


def test_bicrystal_is_said_and_a_drawn_region_analyses_one_grain(make_napari_viewer, qtbot):
    """Two grains, 18 degrees apart, in an uncalibrated image: *Run all* analyses both, each on
    its own lattice (sites of both grains, a ``grain`` feature, the status line says so); *Draw
    region* around the
    other grain (a rectangle in the 'analysis region' layer), ticked *Only in the drawn
    region*: its lattice, sites and markers lie in that grain, its defects are found, and the
    analysis region layer shares the image's frame."""
    from napari_atomdefect.widgets.detect import ANALYSIS_REGION_LAYER
    from tests.scenarios import bicrystal_image

    left, right, image = bicrystal_image()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="bicrystal")
    widget = DetectWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    assert "2 grains at different orientations" in widget.status.text()
    [whole] = layers_of(viewer, "detections")
    assert set(whole.features["grain"]) == {0, 1}
    [sites] = layers_of(viewer, "lattice_sites")
    assert set(sites.features["grain"]) == {0, 1}
    assert (sites.data[:, 1] < 200).sum() > 300 and (sites.data[:, 1] > 312).sum() > 300
    first = whole.data[whole.features["grain"].to_numpy() == 0]
    on_right = np.median(first[:, 1]) > 256
    other, grain_cols = (left, (0, 250)) if on_right else (right, (262, 512))

    widget.start_region()
    assert widget.region_check.isChecked()
    shapes = viewer.layers[ANALYSIS_REGION_LAYER]
    assert shapes.mode == "add_rectangle"
    shapes.add_rectangles(np.array([[0, grain_cols[0]], [511, grain_cols[1]]], float))
    widget.run_all()
    wait_idle(qtbot, widget)
    layers = layers_of(viewer, "detections")
    assert len(layers) == 2
    found = layers[-1]
    cols = found.data[:, 1]
    assert cols.min() >= grain_cols[0] - 2 and cols.max() <= grain_cols[1] + 2
    sites = layers_of(viewer, "lattice_sites")[-1].data
    assert sites[:, 1].min() >= grain_cols[0] - 2 and sites[:, 1].max() <= grain_cols[1] + 2
    a = 0.316 / found.metadata["atomdefect"]["pixel_size_nm"]
    lo, hi = grain_cols[0] + a, grain_cols[1] - a
    pred = pd.DataFrame({"y_px": found.data[:, 0], "x_px": found.data[:, 1],
                         "class": found.features["class"].astype(str)})
    inside = lambda t: t[(t.x_px > lo) & (t.x_px < hi) & (t.y_px > a) & (t.y_px < 511 - a)]  # noqa: E731
    f1 = score(inside(pred), inside(other.defects), 0.08 / 0.012)["f1"]
    assert f1[["V_S2", "V_Mo"]].min() >= 0.9, f1
    np.testing.assert_allclose(shapes.scale, viewer.layers["bicrystal"].scale)


def test_region_reaches_calibration_and_the_model_view(viewer_with_sample, qtbot):
    """With *Only in the drawn region* ticked and a rectangle drawn, *Calibrate from lattice*
    calibrates from the region's lattice and the model's view translates the region's cells
    only (outside it the view is blank); unticked, a drawn region is ignored."""
    from napari_atomdefect.widgets.detect import ANALYSIS_REGION_LAYER

    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    widget.start_region()
    viewer.layers[ANALYSIS_REGION_LAYER].add_rectangles(np.array([[0, 0], [300, 300]], float))
    widget.calibrate_from_lattice()
    wait_idle(qtbot, widget)
    assert widget.pixel_size.value() == pytest.approx(0.012, rel=0.02)
    widget.show_model_view()
    wait_idle(qtbot, widget)
    [view] = layers_of(viewer, "model_view")
    data = np.asarray(view.data)
    assert np.ptp(data[20:260, 20:260]) > 0  # translated cells in the region
    assert np.ptp(data[400:, 400:]) == 0  # nothing outside it: the background
    widget.region_check.setChecked(False)
    assert widget.region(np.asarray(viewer.layers["MoS2 sample (simulated)"].data)) is None


def test_run_all_says_once_that_no_region_is_drawn(viewer_with_sample, qtbot, monkeypatch):
    """*Only in the drawn region* ticked, nothing drawn: *Run all* analyses the whole image and
    says so once (not once for the lattice and again for the detection)."""
    import napari.utils.notifications as notifications

    said = []
    monkeypatch.setattr(notifications, "show_warning", said.append)
    widget = DetectWidget(viewer_with_sample)
    widget.region_check.setChecked(True)
    widget.run_all()
    wait_idle(qtbot, widget)
    assert sum("No region is drawn" in s for s in said) == 1
    [found] = layers_of(viewer_with_sample, "detections")
    assert len(found.data) > 10  # the whole image was analysed


def test_an_image_opened_next_is_the_one_analysed(viewer_with_sample, qtbot, tmp_path):
    """A second image opened after a run becomes the Detect and Fine-tune widgets' image (a
    user trial found Detect re-running the first, hidden image, with the pixel size typed for the
    second); the derived layers of a run do not take the choice, and the user can go back."""
    from napari_atomdefect.widgets.finetune import FinetuneWidget

    viewer = viewer_with_sample
    widget, tune = DetectWidget(viewer), FinetuneWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    assert widget.image_combo.currentText() == "MoS2 sample (simulated)"  # not its layers
    np.save(tmp_path / "second.npy", np.asarray(viewer.layers[0].data)[:300, :300])
    viewer.open(str(tmp_path / "second.npy"), plugin="napari-atomdefect")
    assert widget.image_combo.currentText() == "second"
    assert tune.image_combo.currentText() == "second"
    assert widget.image_layer() is viewer.layers["second"]
    widget.image_combo.setCurrentText("MoS2 sample (simulated)")
    assert widget.image_layer() is viewer.layers["MoS2 sample (simulated)"]


def _run_in_a_squeezed_dock(widget, qtbot) -> None:
    """Run all in a Detect dock as short as one among several stacked docks, and let the
    deferred scrolling happen."""
    widget.resize(420, 260)
    widget.show()
    qtbot.waitExposed(widget)
    widget.run_all()
    wait_idle(qtbot, widget)
    qtbot.wait(50)


def test_a_squeezed_dock_scrolls_the_result_and_its_warning_into_view(make_napari_viewer, qtbot):
    """With several docks stacked the Detect dock is short: after a run its result line and the
    warning under it are scrolled into view (a trial found them below the fold)."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    sim = simulate_image("WS2", 320, 0.012, params=MicroscopeParams(), seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="ws2", scale=(0.012, 0.012), units=("nm", "nm"))
    widget = DetectWidget(viewer)
    widget.material.setCurrentText("MoS2")  # a misfit: a warning line appears
    _run_in_a_squeezed_dock(widget, qtbot)
    assert widget.fit_label.isVisibleTo(widget)
    assert widget.scroll_area.verticalScrollBar().value() > 0
    assert not widget.fit_label.visibleRegion().isEmpty()


def test_the_result_stays_in_view_when_the_calibration_line_grows(make_napari_viewer, qtbot):
    """An alloy without a pixel size takes Vegard's law once classified: the calibration line
    grows by several lines after the run and must not push the result below the fold again."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    sim = simulate_image("WS2", 320, 0.012, params=MicroscopeParams(), seed=4,
                         substituents="Se", defect_fractions={"Se_S": 0.35, "Se2_S2": 0.15})
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="ws2se")  # no pixel size: the lattice calibrates it
    widget = DetectWidget(viewer)
    widget.material.setCurrentText("WS2")
    widget.substituent_checks["Se"].setChecked(True)
    _run_in_a_squeezed_dock(widget, qtbot)
    assert "Vegard" in widget.calibration_label.text()
    viewport = widget.scroll_area.viewport()
    top = widget.status.mapTo(viewport, widget.status.rect().topLeft()).y()
    assert 0 <= top and top + widget.status.height() <= viewport.height()  # wholly in view


def test_a_distorted_lattice_is_said_beside_the_result(make_napari_viewer, qtbot):
    """A scan stretched by 10 % along its slow axis: the note stays in the dock's result line
    (a toast alone is truncated and gone)."""
    from napari_atomdefect.core.simulate.image import simulate_image

    from ..conftest import pristine_params

    sim = simulate_image("MoS2", 320, 0.012, params=pristine_params(y_stretch=0.10), seed=3)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="stretched", scale=(0.012, 0.012), units=("nm", "nm"))
    widget = DetectWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    assert "The lattice is distorted: its three spacings differ by" in widget.status.text()
    assert "defects" in widget.status.text() or "calls" in widget.status.text()


def test_the_review_dock_shows_the_movie_row_only_for_a_movie(make_napari_viewer):
    """A trial saw *Seen in at least 1 frame* (a movie's filter) in a Review dock with no layer."""
    from napari_atomdefect.widgets.review import ReviewWidget

    review = ReviewWidget(make_napari_viewer())
    assert not review.min_frames.isVisibleTo(review)


def test_an_image_closed_while_it_is_analysed_gets_no_layer(viewer_with_sample, qtbot):
    """Trial, thirty-second session: an image removed mid-run still got its detections layer (and
    the view of a layer with no image under it)."""
    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    image = viewer.layers["MoS2 sample (simulated)"]
    widget.run_all()
    viewer.layers.remove(image)
    wait_idle(qtbot, widget)
    assert not layers_of(viewer, "detections") and not layers_of(viewer, "lattice_sites")
    assert widget.status.text() == ("MoS2 sample (simulated) was closed while it was analysed: "
                                    "nothing was added.")


def test_a_long_file_name_breaks_in_the_dock_text(make_napari_viewer, qtbot):
    """Trial, thirty-second session: 'New detections in Partially_converted_images_SuperScan__…'
    ran past the Review dock's edge as one unbreakable word."""
    from qtpy.QtWidgets import QLabel

    from napari_atomdefect.widgets._common import WrappingLabel

    name = "Partially_converted_images_SuperScan__HAADF__10_corrected"
    label = WrappingLabel(f"New detections in {name} defects.")
    assert label.text() == f"New detections in {name} defects."          # as set
    shown = QLabel.text(label)
    assert shown.replace("\u200b", "") == label.text() and shown.count("\u200b") == 8
    assert QLabel.text(WrappingLabel("short_name stays")) == "short_name stays"
    label.resize(200, 400)
    label.show()
    qtbot.waitExposed(label)
    assert label.sizeHint().width() < 400


def test_the_status_lines_belong_to_their_image(make_napari_viewer, qtbot):
    """After a run, choosing another image shows that image's lines (none yet), not the last
    run's calls and warnings under its name; coming back shows them again. A cancelled or
    failed run leaves the bar at 0, not at the 100 % of a result."""
    from napari_atomdefect.core.simulate.image import simulate_image

    viewer = make_napari_viewer()
    sim = simulate_image("MoS2", (256, 256), 0.012, seed=3)
    viewer.add_image(np.asarray(sim.image), name="first", scale=(0.012, 0.012))
    viewer.add_image(np.random.default_rng(0).random((256, 256)).astype(np.float32),
                     name="noise", scale=(0.012, 0.012))
    widget = DetectWidget(viewer)
    widget.image_combo.setCurrentText("first")
    widget.run_all()
    wait_idle(qtbot, widget)
    result = widget.status.text()
    assert "cells" in result and widget.progress.value() == 100
    widget.image_combo.setCurrentText("noise")
    assert widget.status.text() == "" and widget.progress.value() == 0
    assert not widget.fit_label.isVisibleTo(widget)
    widget.find_lattice()  # no lattice in noise: an error, the bar back at 0
    wait_idle(qtbot, widget)
    assert "No crystal lattice found" in widget.status.text() and widget.progress.value() == 0
    widget.image_combo.setCurrentText("first")
    assert widget.status.text() == result and widget.progress.value() == 100
    widget.image_combo.setCurrentText("noise")
    assert "No crystal lattice found" in widget.status.text()
    widget.image_combo.setCurrentText("first")
    widget.detect()
    widget.cancel()
    wait_idle(qtbot, widget)
    assert "Cancelled" in widget.status.text() and widget.progress.value() == 0


def test_the_bar_is_busy_until_a_step_says_how_far_it_is(make_napari_viewer, qtbot):
    """The lattice search says no fraction for seconds on a large image: the bar animates
    (Qt's busy bar, range 0–0) instead of standing at 0 %, and is a plain bar at the end."""
    from napari_atomdefect.widgets._common import StepProgressBar

    bar = StepProgressBar()
    bar.setValue(0)
    bar.busy()
    bar.setValue(0)  # a first progress item at 0: still busy
    assert bar.maximum() == 0
    bar.setValue(40)
    assert (bar.minimum(), bar.maximum(), bar.value()) == (0, 100, 40)
    bar.busy()
    bar.idle()  # ended (cancelled) before any fraction: a plain bar at 0
    assert (bar.maximum(), bar.value()) == (100, 0)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    widget = DetectWidget(viewer)
    widget.find_lattice()
    assert widget.progress.maximum() == 0  # busy while the lattice is searched
    wait_idle(qtbot, widget)
    assert widget.progress.maximum() == 100 and widget.progress.value() == 100


def test_the_result_line_counts_the_calls_as_corrected(make_napari_viewer, qtbot):
    """A call deleted or reclassified in the detections layer: the Detect dock's result line
    gives the counts of the layer as it is now and how many were detected (it kept the run's
    counts beside corrected calls); the counts back as detected, the line is the run's again."""
    from napari_atomdefect.core.simulate.image import simulate_image
    from napari_atomdefect.widgets.review import set_class

    viewer = make_napari_viewer()
    sim = simulate_image("MoS2", (256, 256), 0.012, seed=3)
    viewer.add_image(np.asarray(sim.image), name="first", scale=(0.012, 0.012))
    viewer.add_image(np.zeros((64, 64), np.float32), name="other")
    widget = DetectWidget(viewer)
    widget.image_combo.setCurrentText("first")
    widget.run_all()
    wait_idle(qtbot, widget)
    [layer] = layers_of(viewer, "detections")
    detected = widget.status.text()
    n = len(layer.data)
    assert detected.startswith(f"{n} defects in ")
    classes = layer.features["class"].astype(str).to_numpy()
    was = classes[0]
    set_class(layer, [0], "V_Mo" if was != "V_Mo" else "V_S2")
    layer.data = layer.data[:-1]  # (the Review dock's delete does the same)
    line = widget.status.text()
    assert line.startswith(f"{n - 1} defects in ") and f"as corrected; {n} detected." in line
    now = layer.features["class"].astype(str).to_numpy()
    assert f"V_Mo: {int((now == 'V_Mo').sum())}" in line
    widget.image_combo.setCurrentText("other")  # (edits while another image is shown)
    set_class(layer, [1], "V_S2")
    widget.image_combo.setCurrentText("first")
    now = layer.features["class"].astype(str).to_numpy()
    assert f"V_S2: {int((now == 'V_S2').sum())}" in widget.status.text()
    assert "as corrected" in widget.status.text()


def test_warning_and_plot_text_follow_the_theme(make_napari_viewer, qtbot):
    """On napari's light theme the fit sentences were amber at 1.5:1 and the Statistics plots'
    labels light grey on a light grey dock (a trial): both follow the theme now."""
    from qtpy.QtGui import QPalette

    from napari_atomdefect.widgets._common import WARNING_COLOURS
    from napari_atomdefect.widgets.stats import BarChart, _text_colour

    viewer = make_napari_viewer()
    _, detect = viewer.window.add_plugin_dock_widget("napari-atomdefect", "Detect defects")
    _, stats = viewer.window.add_plugin_dock_widget("napari-atomdefect", "Statistics")
    chart = stats.findChild(BarChart)
    for theme in ("light", "dark"):
        viewer.theme = theme
        qtbot.wait(50)
        assert WARNING_COLOURS[theme] in detect.fit_label.styleSheet()
        text = _text_colour(chart)
        window = chart.palette().color(QPalette.ColorRole.Window)
        assert abs(text.lightness() - window.lightness()) > 150  # (dark on light, light on dark)


def test_a_renamed_image_keeps_its_layers_and_its_last_analysis(make_napari_viewer, qtbot):
    """Trial (forty-first session): an image renamed in the layer list vanished from the Detect
    dock (Run all: "Open an image first") and its sites and detections, linked by name, stayed
    at the old pixel size after the next run; going back to an image analysed as WSe2 left the
    material of the image before (MoS2), and Run all re-analysed it so."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-atomdefect", "Detect defects")
    first = viewer.add_image(np.zeros((64, 64), np.float32), name="first")
    first.metadata["atomdefect"] = {"material": "WSe2", "substituents": ["S"]}
    sites = viewer.add_points(np.zeros((1, 2)), name="first sites",
                              metadata={"atomdefect": {"kind": "lattice_sites", "image": "first"}})
    viewer.add_image(np.zeros((64, 64), np.float32), name="second")
    widget.material.setCurrentText("MoS2")  # (the second image, analysed as MoS2)
    assert widget.image_combo.currentText() == "second"
    widget.image_combo.setCurrentText("first")
    assert widget.material.currentText() == "WSe2"
    assert widget._ticked_substituents() == ("S",)
    assert widget.model.currentData() == "wse2-default"
    first.name = "renamed"
    assert widget.image_combo.currentText() == "renamed"
    assert widget.image_layer() is not None and widget.image_layer().name == "renamed"
    assert sites.metadata["atomdefect"]["image"] == "renamed"


def test_an_edit_of_an_earlier_run_leaves_the_newest_runs_line(viewer_with_sample, qtbot):
    """Trial (forty-first session): two runs alike, a call deleted from the first (hidden) —
    the dock's line, the second run's, read "… as corrected" although that run was untouched."""
    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    widget.detect()
    wait_idle(qtbot, widget)
    first, second = layers_of(viewer, "detections")
    line = widget.status.text()
    assert "as corrected" not in line
    first.data = first.data[1:]  # (as Review's delete does: one call fewer)
    assert widget.status.text() == line
    second.data = second.data[1:]
    assert "as corrected" in widget.status.text()


def test_an_image_removed_takes_its_lattice_layers_and_leaves_its_calls(make_napari_viewer,
                                                                         qtbot):
    """Trial (forty-first session): an image deleted while Run all ran left its sites and cell
    grid, which claimed the image opened again under its name, at the old pixel size."""
    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget("napari-atomdefect", "Detect defects")
    image = viewer.add_image(np.zeros((64, 64), np.float32), name="scan")
    for kind in ("lattice_sites", "cell_grid", "detections"):
        viewer.add_points(np.zeros((1, 2)), name=f"scan {kind}",
                          metadata={"atomdefect": {"kind": kind, "image": "scan"}})
    viewer.layers.remove(image)
    qtbot.waitUntil(lambda: "scan lattice_sites" not in viewer.layers, timeout=2000)
    assert [la.name for la in viewer.layers] == ["scan detections"]


def test_a_detect_dock_opened_again_shows_the_images_result_line(viewer_with_sample, qtbot):
    """Trial (forty-first session): a Detect dock closed and opened again had lost every image's
    result line."""
    from qtpy import sip

    viewer = viewer_with_sample
    widget = DetectWidget(viewer)
    widget.run_all()
    wait_idle(qtbot, widget)
    line = widget.status.text()
    assert " defects in " in line
    sip.delete(widget)
    again = DetectWidget(viewer)
    assert again.status.text() == line
