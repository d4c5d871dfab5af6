"""Review, statistics and export widgets on a detections layer, in a real (Xvfb) viewer."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect._layers import defect_layer_kwargs, defect_points_data, layer_classes
from napari_atomdefect.core.io.table import read_defects_csv
from napari_atomdefect.widgets.review import ReviewWidget, corrections_by_hand, set_class
from napari_atomdefect.widgets.stats import StatsWidget, defect_statistics

pytestmark = pytest.mark.viewer


@pytest.fixture
def viewer_and_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"y_px": rng.uniform(0, 500, 12), "x_px": rng.uniform(0, 500, 12),
                          "class": ["V_S"] * 5 + ["V_S2"] * 3 + ["O_S"] * 2 + ["V_Mo"] * 2,
                          "confidence": np.linspace(0.3, 0.99, 12), "source": "model"})
    kwargs = defect_layer_kwargs(table, 0.012, "det", a_px=26.3)
    kwargs["metadata"]["atomdefect"].update(n_metal_sites=400, n_chalcogen_sites=400,
                                            area_nm2=37.7)
    layer = viewer.add_points(table[["y_px", "x_px"]].to_numpy(), **kwargs)
    return viewer, layer


def test_reclassify_sets_the_class_symbol(viewer_and_layer):
    """The marker of a reclassified point follows its class (set with public napari API only)."""
    _, layer = viewer_and_layer
    set_class(layer, [0, 9], "V_Mo")
    symbols = [str(getattr(s, "value", s)) for s in layer.symbol]
    assert symbols[0] == symbols[9] == "triangle_up"
    assert symbols[1] == "disc" and symbols[5] == "square" and symbols[8] == "triangle_down"
    assert list(layer.features["class"].iloc[[0, 9]]) == ["V_Mo", "V_Mo"]


def test_add_delete_reclassify_keep_features_consistent(viewer_and_layer):
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    assert review.layer() is layer
    review.add_defect([100.0, 120.0], cls="V_Mo")
    assert len(layer.data) == 13 and len(layer.features) == 13
    new = layer.features.iloc[-1]
    assert (new["class"], new["source"], new["confidence"]) == ("V_Mo", "manual", 1.0)
    # the message line says what the edit did (a trial read only "13 shown, 0 hidden.")
    assert review.info.text().startswith("1 V_Mo call added (manual, confidence 1.00). 13 shown")
    layer.selected_data = {0, 1}
    review.class_combo.setCurrentText("O_S")
    review.set_selected_class()
    assert list(layer.features["class"].iloc[:2]) == ["O_S", "O_S"]
    assert list(layer.features["source"].iloc[:2].astype(str)) == ["manual", "manual"]
    layer.selected_data = {2}
    review.delete_selected()
    assert len(layer.data) == 12 == len(layer.features)
    assert review.info.text().startswith("1 call deleted. 12 shown")
    # Hollow markers whose border colour follows the class after every edit.
    _assert_hollow_class_colours(layer)


def _assert_hollow_class_colours(layer):
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_atomdefect.core.io.class_style import class_color

    assert len(layer.border_color) == len(layer.data) == len(layer.face_color)
    for cls, colour in zip(layer.features["class"], layer.border_color, strict=True):
        np.testing.assert_allclose(colour, transform_color(class_color(cls))[0], atol=1e-3)
    np.testing.assert_array_equal(layer.face_color[:, 3], 0.0)  # transparent face
    assert np.all(np.asarray(layer.border_width) > 0.1)


def test_markers_hollow_in_class_colour(viewer_and_layer):
    viewer, layer = viewer_and_layer
    _assert_hollow_class_colours(layer)
    review = ReviewWidget(viewer)
    layer.selected_data = {0}
    review._key_handler("V_Mo")(layer)  # the review key recolours the border
    review.add_defect([50.0, 60.0], cls="O_S")
    assert layer.features["class"].iloc[0] == "V_Mo"
    _assert_hollow_class_colours(layer)


def test_number_keys_set_class(viewer_and_layer):
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    layer.selected_data = {5}
    review._key_handler("V_S2")(layer)  # what pressing "2" does
    assert layer.features["class"].iloc[5] == "V_S2"
    assert review.class_combo.currentText() == "V_S2"


def test_confidence_threshold_hides_without_deleting(viewer_and_layer):
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    review.threshold.setValue(60)
    conf = layer.features["confidence"].to_numpy()
    np.testing.assert_array_equal(layer.shown, conf >= 0.6)
    assert len(layer.data) == 12
    first = review.next_low_confidence()
    assert conf[first] == conf[layer.shown].min() and layer.selected_data == {first}
    review.threshold.setValue(0)
    assert layer.shown.all()


def test_next_low_confidence_zooms_in_on_the_call(viewer_and_layer):
    """Next low-confidence centres the call and zooms in to a few lattice constants, never out."""
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    viewer.reset_view()
    whole = viewer.scene.camera.zoom
    i = review.next_low_confidence()
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], layer.data_to_world(layer.data[i]),
                               atol=1e-6)
    # the 500 px field spans the canvas at `whole`; about 8 lattice constants (8 x 26.3 px) now
    assert viewer.scene.camera.zoom == pytest.approx(whole * 500 / (8 * 26.3), rel=0.15)
    viewer.scene.camera.zoom = zoomed_in = viewer.scene.camera.zoom * 4  # the user looks closer
    review.next_low_confidence()
    assert viewer.scene.camera.zoom == pytest.approx(zoomed_in)


def test_statistics_update_live(viewer_and_layer):
    viewer, layer = viewer_and_layer
    stats = StatsWidget(viewer)
    s = stats.statistics()
    assert s.loc["V_S", "count"] == 5 and s.loc["V_Mo", "per_site"] == pytest.approx(2 / 400)
    assert s.loc["V_S2", "per_site"] == pytest.approx(2 * 3 / 800)
    assert s.loc["V_S", "per_nm2"] == pytest.approx(5 / 37.7)
    assert stats.table.item(0, 0).text() == "5"
    layer.selected_data = {0}
    layer.remove_selected()
    assert stats.table.item(0, 0).text() == "4"          # live update
    assert stats.chart.values["V_S"] == 4
    # The note that explains the table ("†", per site) comes right under it, above the chart
    # (below the chart it was under the fold of a stacked dock).
    layout = stats.note.parentWidget().layout()
    assert layout.indexOf(stats.table) + 1 == layout.indexOf(stats.note) < layout.indexOf(
        stats.chart)


def test_export_and_reimport_identical(viewer_and_layer, tmp_path):
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    review.add_defect([10.5, 20.25], cls="V_S2")
    path = review.export_csv(str(tmp_path / "out.csv"))
    table = read_defects_csv(path)
    np.testing.assert_array_equal(table[["y_px", "x_px"]].to_numpy(), layer.data)
    np.testing.assert_allclose(table.y_nm, layer.data[:, 0] * 0.012)
    assert list(table["class"]) == list(layer.features["class"].astype(str))
    [new] = viewer.open(path, plugin="napari-atomdefect")
    np.testing.assert_array_equal(new.data, layer.data)
    assert list(new.features["class"].astype(str)) == list(layer.features["class"].astype(str))
    np.testing.assert_array_equal(new.features["confidence"], layer.features["confidence"])
    np.testing.assert_allclose(new.scale, layer.scale)


def test_export_that_cannot_be_written_says_so_and_keeps_the_old_file(viewer_and_layer,
                                                                       tmp_path, monkeypatch):
    """A folder that is not there, or a file in place of a folder: one sentence in the dock and
    a notification (not a traceback); the last "Saved" line does not stay."""
    import napari.utils.notifications as notifications

    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    good = review.export_csv(str(tmp_path / "good.csv"))
    before = open(good).read()
    assert review.info.text().startswith("Saved")
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "missing" / "out.csv", tmp_path / "afile" / "out.csv"):
        assert review.export_csv(str(bad)) is None
        assert review.info.text().startswith("Not saved:") and not bad.exists()
    assert len(shown) == 2 and all(isinstance(m, str) and m for m in shown)
    assert open(good).read() == before


def test_defect_statistics_without_sites():
    s = defect_statistics(pd.Series(["V_S", "V_Mo"]), None, None, None)
    assert s.loc["V_S", "count"] == 1 and np.isnan(s.loc["V_S", "per_site"])


def test_hide_below_hides_on_canvas_and_in_statistics(viewer_and_layer):
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    stats = StatsWidget(viewer)
    conf = layer.features["confidence"].to_numpy()
    size = layer.size[0]
    review.threshold.setValue(60)
    keep = conf >= 0.6
    np.testing.assert_array_equal(layer.shown, keep)
    # napari draws 2-D points regardless of `shown`: the hidden ones must have no size on canvas.
    np.testing.assert_array_equal(np.asarray(layer._view_size) > 0, keep)
    assert layer.canvas_size_limits[0] == 0  # no 2-px dot left where a point is hidden
    shown_classes = layer.features["class"][keep].astype(str)
    assert stats.statistics().loc["V_S", "count"] == (shown_classes == "V_S").sum() < 5
    assert stats.table.item(0, 0).text() == str((shown_classes == "V_S").sum())
    assert "hidden" in review.info.text() and len(layer.data) == 12
    review.threshold.setValue(0)  # everything back, at its size
    assert layer.shown.all() and np.allclose(layer.size, size)
    assert stats.table.item(0, 0).text() == "5"


def test_review_and_statistics_follow_new_detections(viewer_and_layer):
    viewer, old = viewer_and_layer
    review, stats = ReviewWidget(viewer), StatsWidget(viewer)
    assert review.layer() is old and stats.layer() is old
    table = pd.DataFrame({"y_px": [10.0, 20.0, 30.0], "x_px": [5.0, 6.0, 7.0],
                          "class": ["V_Mo"] * 3, "confidence": [0.9] * 3, "source": "model"})
    kwargs = defect_layer_kwargs(table, 0.012, "det 2", a_px=26.3)
    kwargs["metadata"]["atomdefect"].update(n_metal_sites=400, n_chalcogen_sites=400,
                                            area_nm2=37.7)
    new = viewer.add_points(table[["y_px", "x_px"]].to_numpy(), **kwargs)  # what Detect does
    assert review.layer() is new and stats.layer() is new
    assert stats.table.item(3, 0).text() == "3"  # V_Mo of the new layer, not nan
    review.add_defect([40.0, 40.0], cls="V_S")
    assert len(new.data) == 4 and len(old.data) == 12  # edits go into the new layer
    # The user's own choice is kept when an unrelated layer is added.
    review.layer_combo.setCurrentText("det")
    viewer.add_image(np.zeros((8, 8)), name="other")
    assert review.layer() is old and stats.layer() is new


def test_click_added_point_is_manual_of_the_chosen_class_even_after_a_selection(
        make_napari_viewer):
    """napari fills a new point from the selected point's features; a click in add mode must
    still give a manual point of the chosen class, confidence 1, and later edits must work."""
    import pandas as pd

    from napari_atomdefect._layers import defect_layer_kwargs
    from napari_atomdefect.widgets.review import ReviewWidget

    viewer = make_napari_viewer()
    table = pd.DataFrame({"y_px": [10.0, 40.0], "x_px": [10.0, 40.0], "class": ["O_S", "V_S"],
                          "confidence": [0.62, 0.9], "source": ["model", "model"]})
    layer = viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                              **defect_layer_kwargs(table, 0.012, "dets", a_px=26.0))
    review = ReviewWidget(viewer)
    review.class_combo.setCurrentText("V_Mo")
    layer.selected_data = {0}  # looking at the O_S detection copies its features to the defaults
    layer.add(np.array([[70.0, 70.0]]))  # what a click in add mode does
    new = layer.features.iloc[-1]
    assert (new["class"], new["confidence"], new["source"]) == ("V_Mo", 1.0, "manual")
    assert isinstance(layer.features["source"].dtype, pd.CategoricalDtype)
    from napari_atomdefect.widgets.review import set_class

    set_class(layer, [1], "V_S2")  # later edits still work
    assert list(layer.features["class"].astype(str)) == ["O_S", "V_S2", "V_Mo"]


def test_choosing_a_class_leaves_the_selected_point_alone_and_added_points_have_no_grain(
        make_napari_viewer):
    """With a detection selected, choosing a class in the box is for the points added next:
    the selected one keeps its class, marker and colour (napari restyled it: an orange diamond
    still called V_S). A point added while a grain-0 detection is selected belongs to no grain
    (-1), as every point added by hand."""
    from napari_atomdefect._layers import defect_layer_kwargs
    from napari_atomdefect.widgets.review import ReviewWidget

    viewer = make_napari_viewer()
    table = pd.DataFrame({"y_px": [10.0, 40.0], "x_px": [10.0, 40.0], "class": ["V_S", "V_S2"],
                          "confidence": [0.62, 0.9], "source": ["model", "model"],
                          "grain": [0, 1]})
    layer = viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                              **defect_layer_kwargs(table, 0.012, "dets", a_px=26.0))
    review = ReviewWidget(viewer)
    review.class_combo.setCurrentText("V_S")
    layer.selected_data = {0}
    symbol_before = str(getattr(layer.symbol[0], "value", layer.symbol[0]))
    colour_before = layer.border_color[0].copy()
    review.class_combo.setCurrentText("O_S")
    assert str(layer.features["class"].iloc[0]) == "V_S"
    assert str(getattr(layer.symbol[0], "value", layer.symbol[0])) == symbol_before == "disc"
    np.testing.assert_allclose(layer.border_color[0], colour_before)
    layer.add(np.array([[70.0, 70.0]]))  # a click in add mode, point 0 still selected
    new = layer.features.iloc[-1]
    assert (str(new["class"]), int(new["grain"]), str(new["source"])) == ("O_S", -1, "manual")
    assert str(getattr(layer.symbol[-1], "value", layer.symbol[-1])) == "triangle_down"
    assert str(layer.features["class"].iloc[0]) == "V_S"


@pytest.fixture
def review_on_a_lattice(make_napari_viewer):
    """A simulated MoS2 image with its sites layer and a detections layer of one call, and a
    Review dock on it: ``(review, layer, lattice)``."""
    from napari_atomdefect._layers import site_layer_kwargs
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.simulate.image import simulate_image

    from ..conftest import pristine_params

    viewer = make_napari_viewer()
    sim = simulate_image("MoS2", 256, 0.012, params=pristine_params(), seed=2)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    viewer.add_image(sim.image, name="img")
    data, skw = site_layer_kwargs(lattice, "img sites")
    skw["metadata"]["atomdefect"].update(image="img", frame=None)
    viewer.add_points(data, **skw)
    table = pd.DataFrame({"y_px": [50.0], "x_px": [60.0], "class": ["V_S"],
                          "confidence": [0.9], "source": "model"})
    kwargs = defect_layer_kwargs(table, 0.012, "img defects", a_px=lattice.a_px)
    kwargs["metadata"]["atomdefect"].update(image="img")
    layer = viewer.add_points(defect_points_data(table), **kwargs)  # (as Detect adds it)
    # docked as a user docks it: napari then gives the widget a proxy of the viewer, whose
    # layers are new objects at each access (a drag's settling compared them by identity)
    _, review = viewer.window.add_plugin_dock_widget("napari-atomdefect", "Review and correct")
    review.layer_combo.setCurrentText("img defects")
    return review, layer, lattice


def test_added_defect_snaps_to_its_sublattice_site(review_on_a_lattice):
    """A click near a column puts the manual defect on the lattice site of its class's
    sublattice (metal for V_Mo, chalcogen otherwise); far from any site, or without a sites
    layer (a reopened CSV), it stays where clicked."""
    review, layer, lattice = review_on_a_lattice
    a = lattice.a_px
    metal, chalc = lattice.metal_sites_px, lattice.chalcogen_sites_px
    target_m = metal[np.argmin(np.hypot(*(metal - [128, 128]).T))]
    review.add_defect(target_m + [0.2 * a, -0.1 * a], cls="V_Mo")
    np.testing.assert_allclose(layer.data[-1], target_m)
    target_c = chalc[np.argmin(np.hypot(*(chalc - [128, 128]).T))]
    review.add_defect(target_c + [0.15 * a, 0.15 * a], cls="V_S")
    np.testing.assert_allclose(layer.data[-1], target_c)
    # a chalcogen class clicked on a metal column stays where clicked (its own sites are 0.58 a
    # away, beyond the snap)
    review.add_defect(target_m + [1.0, 1.0], cls="O_S")
    np.testing.assert_allclose(layer.data[-1], target_m + [1.0, 1.0])
    assert list(layer.features["class"].iloc[-3:]) == ["V_Mo", "V_S", "O_S"]
    assert list(layer.features["source"].iloc[-3:].astype(str)) == ["manual"] * 3


def test_a_dragged_call_becomes_the_users_and_settles_on_its_site(review_on_a_lattice, qtbot):
    """Trial, thirty-seventh session: a call dragged by hand kept source 'model' and its
    confidence, and stayed 8.5 px off the column it was dropped near; the CSV then gave the
    model a place it never called. Now it is the user's, on the site, one undo."""
    review, layer, lattice = review_on_a_lattice
    a = lattice.a_px
    chalc = lattice.chalcogen_sites_px
    target = chalc[np.argmin(np.hypot(*(chalc - [128, 128]).T))]
    start = layer.data.copy()
    layer.selected_data = {0}
    drop = target + [0.2 * a, -0.1 * a]
    path = np.linspace(layer.data[0], drop, 4)[1:]
    layer._set_drag_start({0}, layer.data[0])  # (napari's drag: pressed on the point, then
    for point in path:                          # a move per mouse event, as its binding does)
        layer._move({0}, point)
    np.testing.assert_allclose(layer.data[0], drop)
    row = layer.features.iloc[0]
    assert (row["class"], row["source"], row["confidence"]) == ("V_S", "manual", 1.0)
    qtbot.waitUntil(lambda: review._dragged is None, timeout=2000)
    np.testing.assert_allclose(layer.data[0], target)
    assert review.info.text() == ("Point 0 moved by hand (source manual, confidence 1.00, onto "
                                  "the nearest site).")
    assert corrections_by_hand(layer) == 1  # one call moved (its old place gone: it said 2)
    assert review.undo()  # the drag and its settling are one edit
    np.testing.assert_allclose(layer.data, start)
    assert corrections_by_hand(layer) == 0
    assert str(layer.features["source"].iloc[0]) == "model"
    assert layer.features["confidence"].iloc[0] == pytest.approx(0.9)
    # the whole array set again unchanged (napari names every point then): no call is moved
    layer.data = layer.data.copy()
    qtbot.wait(400)
    assert str(layer.features["source"].iloc[0]) == "model"


def test_a_class_added_on_the_other_sublattice_is_said_and_not_moved(review_on_a_lattice):
    """A chalcogen class clicked on a metal column (or a metal vacancy on a chalcogen column)
    is left where clicked and the dock says which sublattice it lies on (trial, twenty-first
    session: a V_S landed on a W column without a word)."""
    review, layer, lattice = review_on_a_lattice
    metal, chalc = lattice.metal_sites_px, lattice.chalcogen_sites_px
    target_m = metal[np.argmin(np.hypot(*(metal - [128, 128]).T))]
    review.add_defect(target_m + [1.0, 1.0], cls="V_S")
    np.testing.assert_allclose(layer.data[-1], target_m + [1.0, 1.0])
    assert "lies on a metal column" in review.info.text()
    assert "V_S is a chalcogen-site class" in review.info.text()
    target_c = chalc[np.argmin(np.hypot(*(chalc - [128, 128]).T))]
    review.add_defect(target_c + [0.5, -0.5], cls="V_Mo")
    np.testing.assert_allclose(layer.data[-1], target_c + [0.5, -0.5])
    assert "lies on a chalcogen column" in review.info.text()
    review.add_defect(target_c + [0.5, -0.5], cls="O_S")  # the right sublattice: snapped
    np.testing.assert_allclose(layer.data[-1], target_c)


def test_export_says_when_hidden_points_are_in_the_file(viewer_and_layer, tmp_path):
    """*Hide below* hides points on the canvas and in Statistics; the export keeps them all and
    the dock says so (a user who filtered expects to be told)."""
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    review.threshold.setValue(60)
    hidden = int((~layer.shown).sum())
    assert hidden > 0
    path = review.export_csv(str(tmp_path / "all.csv"))
    assert len(read_defects_csv(path)) == len(layer.data)
    assert f"Saved {len(layer.data)} calls ({hidden} of them hidden" in review.info.text()
    review.threshold.setValue(0)
    review.export_csv(str(tmp_path / "all2.csv"))
    assert "of them hidden" not in review.info.text()


def test_stacked_docks_each_get_the_room_they_need(make_napari_viewer, qtbot):
    """Trial, twenty-first session: Review and Statistics docked under Detect got two rows
    each while Detect kept an empty third of the window; the column is now shared by need."""
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1700, 1100)
    viewer.add_image(np.zeros((128, 128), np.float32), name="img")
    docks = [viewer.window.add_plugin_dock_widget("napari-atomdefect", name)[0]
             for name in ("Detect defects", "Review and correct", "Statistics")]
    assert all(isinstance(d, QDockWidget) for d in docks)
    detect, review, stats = docks
    qtbot.wait(500)  # the docks placed (Qt's own split first: 757 / 140 / 140 px here)
    assert review.height() >= review.sizeHint().height()
    assert detect.height() >= detect.sizeHint().height()
    assert stats.height() >= stats.minimumSizeHint().height()


def test_a_short_column_of_docks_keeps_rows_of_statistics_in_view(make_napari_viewer, qtbot):
    """Trial, twenty-fifth session: in a window too short for all three docks' natural
    heights, Statistics kept 120 px (two rows of six) under Detect and Review; the column is
    now shared by need and the docks scroll."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 900)
    viewer.add_image(np.zeros((128, 128), np.float32), name="img")
    detect, review, stats = (viewer.window.add_plugin_dock_widget("napari-atomdefect", name)[0]
                             for name in ("Detect defects", "Review and correct", "Statistics"))
    qtbot.wait(500)
    needs = [d.sizeHint().height() for d in (detect, review, stats)]
    total = detect.height() + review.height() + stats.height()
    heights = [d.height() for d in (detect, review, stats)]
    assert total < sum(needs)  # (the case: too little room for all)
    for height, need in zip(heights[1:], needs[1:], strict=True):  # (Qt's split: 557/140/140)
        assert height >= 0.8 * total * need / sum(needs), (heights, needs)


def test_the_review_message_is_in_view_with_statistics_docked_below(make_napari_viewer, qtbot):
    """Trial, thirty-seventh session: with Detect, Review and Statistics docked as the guide
    says, Review's message line (what an edit did, "Saved …") showed 5 of its 18 px."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1700, 1050)
    viewer.add_image(np.zeros((500, 500), np.float32), name="img")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"y_px": rng.uniform(0, 500, 12), "x_px": rng.uniform(0, 500, 12),
                          "class": ["V_S"] * 12, "confidence": 0.9, "source": "model"})
    kwargs = defect_layer_kwargs(table, 0.012, "det", a_px=26.3)
    viewer.add_points(defect_points_data(table), **kwargs)
    detect, review, _ = (viewer.window.add_plugin_dock_widget("napari-atomdefect", name)[1]
                         for name in ("Detect defects", "Review and correct", "Statistics"))
    # (a real image's run leaves the Detect dock long: its result and several warnings)
    detect.status.setText("185 calls (26 defects, 159 alloying substitutions) in 246 cells. "
                          + "The lattice is distorted. " * 8)
    detect._show_fit(["A sentence of the fit check, as long as they come. " * 6] * 4)
    qtbot.wait(500)
    review.add_defect([100.0, 120.0], cls="V_S2")
    qtbot.wait(200)
    assert review.info.text()
    seen = review.info.visibleRegion().boundingRect().height()
    assert seen >= review.info.height() - 1, (seen, review.info.height())


def _classes(layer) -> list[str]:
    return [str(c) for c in layer.features["class"]]


def test_undo_takes_back_each_hand_edit(viewer_and_layer):
    """Points added, deleted, reclassified (button or key) and dragged are undone one edit at a
    time, positions, classes, sources and symbols included (napari's Points have no undo; a
    trial's Ctrl+Z changed nothing and a deleted call was lost)."""
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    start = (layer.data.copy(), _classes(layer), list(layer.features["source"].astype(str)))
    assert not review.undo_button.isEnabled()
    review.add_defect([100.0, 120.0], cls="V_Mo")
    layer.selected_data = {0, 1}
    review.class_combo.setCurrentText("O_S")
    review.set_selected_class()
    assert review.info.text() == "2 points set to O_S (manual, confidence 1.00)."
    layer.selected_data = {3}
    review._key_handler("V_S2")(layer)
    assert review.info.text() == "Point 3 set to V_S2 (manual, confidence 1.00)."
    layer.selected_data = {2}
    review.delete_selected()
    layer.selected_data = {4}
    for step in range(1, 4):  # a drag: several moves of one selection, one edit
        layer._move({4}, layer.data[4] + [0.0, 3.0 * step])
    moved = layer.data[4].copy()
    assert len(layer.data) == 12 and review.undo_button.isEnabled()

    assert review.undo()  # the drag
    assert layer.selected_data == {4}  # the same points: still selected (trial, 25th session)
    assert not np.allclose(layer.data[4], moved) and len(layer.data) == 12
    assert review.undo()  # the deletion
    assert len(layer.data) == 13 and _classes(layer)[2] == start[1][2]
    assert layer.selected_data == set()  # (points came back: nothing selected)
    assert review.undo()  # the key
    assert _classes(layer)[3] == start[1][3]
    assert str(getattr(layer.symbol[3], "value", layer.symbol[3])) == "disc"
    assert review.undo()  # the button
    assert _classes(layer)[:2] == start[1][:2]
    assert list(layer.features["source"].astype(str))[:2] == start[2][:2]
    bound = layer.keymap  # Ctrl+Z on the layer undoes too: the added point
    assert any("Z" in str(k) for k in bound)
    assert review.undo()
    np.testing.assert_allclose(layer.data, start[0])
    assert _classes(layer) == start[1]
    assert not review.undo() and "Nothing to undo" in review.info.text()
    assert not review.undo_button.isEnabled()
    _assert_hollow_class_colours(layer)


def test_next_low_confidence_does_not_skip_after_a_correction(viewer_and_layer):
    """Correcting the call being reviewed (its confidence becomes 1) leaves the next press on
    the next lowest confidence (a trial's went one too far after each correction)."""
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    conf = layer.features["confidence"].to_numpy()
    order = list(np.argsort(conf))
    seen = []
    for _ in range(5):
        i = review.next_low_confidence()
        seen.append(float(conf[i]))
        layer.selected_data = {i}
        review._key_handler("V_S")(layer)  # corrected: confidence 1
    assert seen == [float(conf[k]) for k in order[:5]]


def test_hidden_points_stay_out_of_the_selection(viewer_and_layer):
    """With *Hide below* on, a box or select-all selects only the shown points, so a deletion
    never removes calls the user cannot see."""
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    review.threshold.setValue(60)
    shown = np.flatnonzero(layer.shown)
    assert 0 < len(shown) < len(layer.data)
    layer.selected_data = set(range(len(layer.data)))
    assert layer.selected_data == set(shown.tolist())
    review.delete_selected()
    assert len(layer.data) == 12 - len(shown)
    assert (layer.features["confidence"] < 0.6).all()


def test_a_call_added_on_a_called_column_replaces_it(review_on_a_lattice):
    """A click in add mode on a column that has a call replaces that call (one call per column,
    said), instead of stacking a second point on it."""
    review, layer, lattice = review_on_a_lattice
    chalc = lattice.chalcogen_sites_px
    site = chalc[np.argmin(np.hypot(*(chalc - [128, 128]).T))]
    review.add_defect(site, cls="V_S")
    assert len(layer.data) == 2
    review.add_defect(site + [1.5, -1.0], cls="V_S2")
    assert len(layer.data) == 2
    np.testing.assert_allclose(layer.data[-1], site)
    assert _classes(layer) == ["V_S", "V_S2"]
    assert "The V_S already called on that column was replaced" in review.info.text()
    assert review.undo()  # the replacement is one edit
    assert _classes(layer) == ["V_S", "V_S"]


def test_a_point_clicked_outside_the_image_is_not_added(review_on_a_lattice):
    """A click past the image's edge adds nothing and says why (a trial's point 0.7 px past
    the last row made its reopened CSV lose the image's scale)."""
    review, layer, _ = review_on_a_lattice
    review.add_defect([257.0, 100.0], cls="V_S")
    assert len(layer.data) == 1
    assert "outside the image" in review.info.text()
    assert not review.undo_button.isEnabled()  # nothing to undo either


def test_the_layers_review_keys_outlive_a_closed_dock(viewer_and_layer):
    """The layer keeps its key bindings (1–n, Ctrl+Z, Ctrl+V) after the Review dock is closed:
    pressed then, they do nothing (a paste pastes) instead of reaching a deleted widget."""
    import gc

    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    layer.selected_data = {0}
    keys = {str(k): v for k, v in layer.keymap.items()}
    undo, one = keys["Ctrl+Z"], keys["1"]
    one(layer)
    assert review.undo_button.isEnabled()
    from qtpy.QtCore import QCoreApplication, QEvent

    review.close()
    review.deleteLater()  # what closing its dock does
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    with pytest.raises(RuntimeError):
        review.objectName()  # (its Qt object is gone)
    del review
    gc.collect()
    before = list(layer.features["class"].astype(str))
    undo(layer)
    one(layer)
    assert list(layer.features["class"].astype(str)) == before
    layer.selected_data = {0}  # a paste still pastes (napari's own would, unrecorded)
    layer._copy_data()
    keys["Ctrl+V"](layer)
    assert len(layer.data) == 13 and str(layer.features["source"].iloc[-1]) == "manual"


def _press(layer, key: str) -> None:
    """Call the layer's binding of ``key`` (as napari does on a key press over the canvas)."""
    bindings = {str(k): v for k, v in layer.keymap.items()}
    bindings[key](layer)


def test_pasted_calls_are_manual_replace_their_column_and_undo(viewer_and_layer):
    """Ctrl+V (napari's paste, which emits no event) gives hand-made calls of the copied classes
    — source manual, confidence 1 — one edit for Undo; pasted on the copied call's own column
    (a 2-D layer pastes in place) it replaces that call instead of stacking a second one."""
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    start = (layer.data.copy(), _classes(layer), list(layer.features["source"].astype(str)))
    layer.selected_data = {0, 8}  # a V_S and an O_S of the model
    layer._copy_data()
    _press(layer, "Ctrl+V")
    assert len(layer.data) == 12
    src = layer.features["source"].astype(str).to_numpy()
    assert sorted(_classes(layer)[i] for i in np.flatnonzero(src == "manual")) == ["O_S", "V_S"]
    assert (layer.features["confidence"].to_numpy()[src == "manual"] == 1.0).all()
    assert sorted(map(tuple, layer.data)) == sorted(map(tuple, start[0]))
    assert "2 calls pasted" in review.info.text() and "replacing the 2" in review.info.text()
    assert review.undo()
    np.testing.assert_allclose(layer.data, start[0])
    assert _classes(layer) == start[1]
    assert list(layer.features["source"].astype(str)) == start[2]


def test_calls_pasted_into_another_frame_of_a_movie_are_recorded(make_napari_viewer):
    """On a movie's 3-D layer, calls copied in one frame and pasted in another are new manual
    calls there (in no track), and Undo removes them."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 64, 64), np.float32), name="movie")
    table = pd.DataFrame({"frame": [0, 0, 1], "y_px": [10.0, 30.0, 10.0],
                          "x_px": [10.0, 40.0, 10.0], "class": ["V_S", "V_S2", "V_S"],
                          "confidence": [0.8, 0.9, 0.7], "source": "model",
                          "track_id": [0, 1, 0]})
    kwargs = defect_layer_kwargs(table, None, "det", a_px=20.0)
    layer = viewer.add_points(table[["frame", "y_px", "x_px"]].to_numpy(), **kwargs)
    review = ReviewWidget(viewer)
    viewer.dims.set_current_step(0, 0)
    layer.selected_data = {1}  # the V_S2 of frame 0
    layer._copy_data()
    viewer.dims.set_current_step(0, 2)
    _press(layer, "Ctrl+V")
    assert len(layer.data) == 4
    np.testing.assert_allclose(layer.data[-1], [2.0, 30.0, 40.0])
    f = layer.features.iloc[-1]
    assert (str(f["class"]), str(f["source"]), int(f["track_id"])) == ("V_S2", "manual", -1)
    assert review.undo() and len(layer.data) == 3


def test_long_layer_names_keep_their_end_in_sight(viewer_and_layer, qtbot):
    """Real file names differ at their end (``…__10_corrected`` / ``…__19_corrected``) and a
    detections layer's run label ends its name: the layer boxes elide in the middle (a trial
    could not tell two images apart in any dock)."""
    viewer, layer = viewer_and_layer
    name = "Partially_converted_images_SuperScan__HAADF__19_corrected defects (ws2-default, O+Se)"
    layer.name = name
    review = ReviewWidget(viewer)
    qtbot.addWidget(review)
    review.resize(320, 600)
    review.show()
    qtbot.waitExposed(review)
    combo = review.layer_combo
    assert combo.currentText() == name and combo.toolTip() == name
    shown = combo.shown_text()
    assert "…" in shown and shown.startswith("Part") and shown.endswith("O+Se)")
    assert combo.width() < 330


def test_export_named_without_csv_asks_before_replacing_that_csv(viewer_and_layer, tmp_path,
                                                                  monkeypatch):
    """A name typed without ``.csv`` is written as NAME.csv: the dialog's own "replace?"
    was about NAME, so replacing an existing NAME.csv is asked first (a trial's was replaced
    unasked)."""
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    kept = tmp_path / "truth.csv"
    kept.write_text("y_px,x_px,class\n1,2,V_S\n")
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "truth"), "CSV (*.csv)"))
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    review._export_dialog()
    assert asked and "truth.csv exists" in asked[0]
    assert kept.read_text() == "y_px,x_px,class\n1,2,V_S\n" and "was kept" in review.info.text()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    review._export_dialog()
    assert len(pd.read_csv(kept)) == 12


def test_review_as_a_dock_works_through_napari_proxies(viewer_and_layer):
    """Opened as napari opens it (a dock given a proxy of the viewer, whose layers are new proxy
    objects at each access), pasting, the Undo button and the layer's keys act on the layer the
    keys are called with (a trial's Ctrl+V did nothing: the proxy was never the layer)."""
    viewer, layer = viewer_and_layer
    _, review = viewer.window.add_plugin_dock_widget("napari-atomdefect", "Review and correct")
    assert review.layer() is not layer and review.layer() == layer  # (the proxy)
    start = (layer.data.copy(), _classes(layer))
    layer.selected_data = {0}
    _press(layer, "2")  # a key: the layer's second class
    assert _classes(layer)[0] == layer_classes(layer)[1]
    layer.selected_data = {3}
    layer._copy_data()
    _press(layer, "Ctrl+V")
    assert "1 call pasted" in review.info.text()
    assert str(layer.features["source"].iloc[-1]) == "manual"
    import gc

    gc.collect()  # (proxies die: the undo stack must not have been kept for one)
    review.undo_button.click()
    review.undo_button.click()
    np.testing.assert_allclose(layer.data, start[0])
    assert _classes(layer) == start[1]


def test_a_new_run_neither_takes_the_place_of_corrections_nor_is_saved_over_them(
        viewer_and_layer, tmp_path, monkeypatch):
    """A user's trial: a corrected table reopened, Detect pressed again — the review moved to the
    new, unedited layer and *Export* wrote it over the corrected file, keeping no copy. The
    review now stays on the corrected layer (and says so), and a file of corrections replaced
    is kept as NAME.previous.csv, said in the dock and a notification."""
    import napari.utils.notifications as notifications

    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    layer.selected_data = {0, 1, 2}
    review.class_combo.setCurrentText("O_S")
    review.set_selected_class()
    path = tmp_path / "reviewed.csv"
    review.export_csv(str(path))
    corrected = path.read_text()
    assert (read_defects_csv(str(path))["source"] == "manual").sum() == 3
    # A new run's detections arrive: the review stays on the corrected layer.
    table = pd.DataFrame({"y_px": [50.0, 60.0], "x_px": [70.0, 80.0], "class": ["V_S", "V_Mo"],
                          "confidence": [0.9, 0.8], "source": "model"})
    fresh = viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                              **defect_layer_kwargs(table, 0.012, "det [2]", a_px=26.3))
    assert review.layer() is layer
    assert "stays on det" in review.info.text() and "3 corrections" in review.info.text()
    # A layer that is no detections (a fine-tuning region) says nothing of new detections (a
    # trial saw "New detections in fine-tune region").
    review.info.setText("")
    viewer.add_shapes([[[0, 0], [0, 40], [40, 40]]], shape_type="polygon", name="fine-tune region")
    assert "New detections" not in review.info.text() and review.layer() is layer
    # Chosen by hand and saved over the corrected file: the corrections are kept beside it.
    warned = []
    monkeypatch.setattr(notifications, "show_warning", warned.append)
    review.layer_combo.setCurrentText(fresh.name)
    assert review.layer() is fresh
    review.export_csv(str(path))
    kept = tmp_path / "reviewed.previous.csv"
    assert kept.read_text() == corrected
    assert len(read_defects_csv(str(path))) == 2
    assert "held 3 defects corrected by hand, this layer 0" in review.info.text()
    assert "reviewed.previous.csv" in review.info.text() and len(warned) == 1
    # The same table saved again: nothing replaced, nothing more kept or said.
    review.export_csv(str(path))
    assert kept.read_text() == corrected and "previous" not in review.info.text()


def test_review_opened_before_any_detections_follows_the_first_run(make_napari_viewer):
    """Opened on an image alone (an empty layer list in its selector), the review takes the
    first detections layer a run adds — with no error (the trial of the twenty-seventh session
    found the check for corrections tripping over the empty selector)."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img")
    review = ReviewWidget(viewer)
    assert review.layer() is None
    viewer.add_points(np.array([[1.0, 2.0]]), name="lattice sites")  # added first by a run
    assert review.layer() is None
    table = pd.DataFrame({"y_px": [5.0], "x_px": [6.0], "class": ["V_S"], "confidence": [0.9],
                          "source": "model"})
    layer = viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                              **defect_layer_kwargs(table, 0.012, "det", a_px=26.3))
    assert review.layer() is layer


def test_statistics_stays_with_the_review_on_a_corrected_layer(viewer_and_layer):
    """Trial, twenty-ninth session: after a reopened table arrived, Statistics moved to it while
    Review stayed on the layer holding corrections by hand — two docks on two layers. Statistics
    now stays too; an uncorrected layer is still left for a new run's detections."""
    viewer, layer = viewer_and_layer
    review, stats = ReviewWidget(viewer), StatsWidget(viewer)
    table = pd.DataFrame({"y_px": [50.0], "x_px": [70.0], "class": ["V_S"], "confidence": [0.9],
                          "source": "model"})
    first = viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                              **defect_layer_kwargs(table, 0.012, "det [2]", a_px=26.3))
    assert review.layer() is first and stats.layer() is first  # nothing corrected: both follow
    review.layer_combo.setCurrentText(layer.name)
    stats.layer_combo.setCurrentText(layer.name)
    set_class(layer, [0, 1], "O_S")  # corrections by hand
    again = viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                              **defect_layer_kwargs(table, 0.012, "det reopened", a_px=26.3))
    assert review.layer() is layer and stats.layer() is layer
    assert again.name in [stats.layer_combo.itemText(k) for k in range(stats.layer_combo.count())]


def test_no_keys_are_offered_before_a_detections_layer_exists(make_napari_viewer):
    """README trial, thirty-third session: before any detection the dock showed MoS2's keys
    1-4 while the Detect dock was set to WS2 with Se. The keys and the legend are the reviewed
    layer's; without one, the dock says so."""
    viewer = make_napari_viewer()
    review = ReviewWidget(viewer)
    assert review.layer() is None
    assert review.keys_label.text().startswith("No detections layer yet")
    assert review.legend.classes == ()
    table = pd.DataFrame({"y_px": [10.0, 50.0], "x_px": [20.0, 60.0], "class": ["Se_S", "V_S"],
                          "confidence": [0.9, 0.8], "source": "model"})
    kwargs = defect_layer_kwargs(table, 0.009, "det", a_px=35.0)
    kwargs["metadata"]["atomdefect"]["classes"] = ["V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_W"]
    layer = viewer.add_points(table[["y_px", "x_px"]].to_numpy(), **kwargs)
    assert review.layer() is layer
    assert review.keys_label.text().startswith("Keys 1–6")
    assert review.legend.classes == ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_W")
    viewer.layers.remove(layer)
    assert review.keys_label.text().startswith("No detections layer yet")


def test_corrections_count_a_moved_call_once():
    """The count of corrections by hand: a call moved is one (its place gone and the point
    manual had read two), a call deleted one, a class changed in place one; a movie's call
    moved into another frame is not paired with a place gone from this one."""
    from napari.layers import Points

    table = pd.DataFrame({"y_px": [50.0, 150.0, 90.0], "x_px": [60.0, 160.0, 30.0],
                          "class": ["V_S", "O_S", "V_S"], "confidence": [0.9, 0.8, 0.7],
                          "source": "model"})
    kwargs = defect_layer_kwargs(table, 0.012, "d", a_px=26.0)
    layer = Points(defect_points_data(table), **kwargs)
    assert corrections_by_hand(layer) == 0
    moved = layer.data.copy()
    moved[0] = [200.0, 20.0]
    layer.data = moved
    set_class(layer, [0], "V_S")
    assert corrections_by_hand(layer) == 1
    set_class(layer, [1], "V_S")  # a class changed in place
    assert corrections_by_hand(layer) == 2
    layer.data = layer.data[:2]  # a call deleted
    layer.features = layer.features.iloc[:2].reset_index(drop=True)
    assert corrections_by_hand(layer) == 3

    movie = table.assign(frame=[0, 0, 1], track_id=[0, 1, 2])
    layer = Points(defect_points_data(movie), **defect_layer_kwargs(movie, 0.012, "m", a_px=26.0))
    data = layer.data.copy()
    data[0, 0] = 1  # the frame-0 call now in frame 1
    layer.data = data
    set_class(layer, [0], "V_S")
    assert corrections_by_hand(layer) == 2


def test_a_renamed_detections_layer_stays_reviewed_and_ctrl_z_undoes_its_own_layer(
        make_napari_viewer):
    """Trial (forty-first session): a detections layer renamed vanished from Review and
    Statistics (export: "no detections layer"), and Ctrl+Z pressed on one image's layer undid
    the edit of the layer the dock showed."""
    viewer = make_napari_viewer()
    layers = []
    for name in ("a defects", "b defects"):
        table = pd.DataFrame({"y_px": [10.0, 20.0], "x_px": [10.0, 20.0], "class": ["V_S", "O_S"],
                              "confidence": [0.9, 0.8], "source": "model"})
        layers.append(viewer.add_points(defect_points_data(table),
                                        **defect_layer_kwargs(table, 0.012, name)))
    review = ReviewWidget(viewer)
    stats = StatsWidget(viewer)
    a, b = layers
    review.layer_combo.setCurrentText("a defects")
    stats.layer_combo.setCurrentText("a defects")
    a.selected_data = {0}
    review.delete_selected()  # an edit of a
    review.layer_combo.setCurrentText("b defects")
    b.selected_data = {1}
    review.delete_selected()  # an edit of b, the layer the dock shows
    assert (len(a.data), len(b.data)) == (1, 1)
    assert review.undo(a)  # (Ctrl+Z pressed on a: its own edit back)
    assert (len(a.data), len(b.data)) == (2, 1)
    assert review.info.text() == "Last edit of a defects undone."
    b.name = "b reviewed"
    assert review.layer_combo.currentText() == "b reviewed"
    assert review.layer() is not None and review.layer().name == "b reviewed"
    a.name = "a reviewed"
    assert stats.layer_combo.currentText() == "a reviewed"


def test_next_low_confidence_says_when_another_image_covers_the_call(make_napari_viewer):
    """Trial (forty-first session): three images open at one origin, Next low-confidence
    centred on a call of the first over the last one's columns, nothing said."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((100, 100), np.float32), name="scan10")
    table = pd.DataFrame({"y_px": [10.0], "x_px": [20.0], "class": ["V_S"],
                          "confidence": [0.6], "source": "model"})
    kwargs = defect_layer_kwargs(table, None, "scan10 defects")
    kwargs["metadata"]["atomdefect"]["image"] = "scan10"
    viewer.add_points(defect_points_data(table), **kwargs)
    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText("scan10 defects")
    review.next_low_confidence()
    assert review.info.text() == "Point 0: V_S, confidence 0.60."
    other = viewer.add_image(np.zeros((100, 100), np.float32), name="scan14")
    review._last_reviewed = None
    review.next_low_confidence()
    assert review.info.text().endswith(" scan14 is drawn over scan10 here: hide it to see these "
                                       "calls' columns.")
    other.visible = False
    viewer.layers["scan10"].visible = False
    review._last_reviewed = None
    review.next_low_confidence()
    assert "scan10, the image of these calls, is hidden" in review.info.text()


def test_undo_outlives_a_closed_review_dock(make_napari_viewer):
    """Trial (forty-first session): a Review dock closed and opened again said "Nothing to undo"
    for the edits made before."""
    viewer = make_napari_viewer()
    table = pd.DataFrame({"y_px": [10.0, 20.0], "x_px": [10.0, 20.0], "class": ["V_S", "O_S"],
                          "confidence": [0.9, 0.8], "source": "model"})
    layer = viewer.add_points(defect_points_data(table),
                              **defect_layer_kwargs(table, 0.012, "d"))
    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText("d")
    layer.selected_data = {0}
    review.delete_selected()
    from qtpy import sip

    sip.delete(review)  # (as napari deletes a closed dock; its Python object may linger)
    again = ReviewWidget(viewer)
    again.layer_combo.setCurrentText("d")
    assert again.undo() and len(layer.data) == 2
    layer.selected_data = {1}
    again.delete_selected()  # recorded once (not also by the closed dock)
    assert again.undo() and len(layer.data) == 2
    assert not again.undo()
