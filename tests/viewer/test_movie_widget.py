"""Movies in the viewer: Detect on a 3-D image layer (all frames → one 3-D Points layer and a
Tracks layer), Statistics per frame with the cumulative dose, Review and the CSV round trip on
the 3-D layer, and Cancel mid-movie."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect._reader import read_defects_layer
from napari_atomdefect._writer import write_points_csv
from napari_atomdefect.core.simulate.movie import simulate_movie
from napari_atomdefect.widgets.detect import DetectWidget, apply_calibration
from napari_atomdefect.widgets.review import layer_meta, set_class
from napari_atomdefect.widgets.stats import StatsWidget
from tests.viewer.helpers import layers_of, wait_idle

pytestmark = pytest.mark.viewer


@pytest.fixture(scope="module")
def movie():
    return simulate_movie("MoS2", 256, n_frames=4, pixel_size_nm=0.012, seed=0)


@pytest.fixture
def viewer_with_movie(make_napari_viewer, movie):
    viewer = make_napari_viewer()
    viewer.add_image(movie.frames, name="movie", scale=(1.0, 0.012, 0.012),
                     translate=(0.0, 0.5, -0.25), units=("pixel", "nm", "nm"),
                     metadata={"atomdefect": {"pixel_size_nm": 0.012, "calibration": "file",
                                              "dose_e_per_A2_per_frame": 2e4}})
    return viewer


def _detect_all_frames(viewer, qtbot):
    """Run the Detect dock on every frame of the viewer's movie; the dock and its layer."""
    widget = DetectWidget(viewer)
    widget.frames.setCurrentText("all frames")
    widget.device.setCurrentText("cpu")
    widget.detect()
    wait_idle(qtbot, widget)
    [points] = layers_of(viewer, "detections")
    return widget, points


def test_detect_all_frames_tracks_and_statistics(viewer_with_movie, movie, qtbot, tmp_path):
    viewer = viewer_with_movie
    widget = DetectWidget(viewer)
    assert widget.frames.isEnabled()  # a stack: current frame or all frames
    widget.frames.setCurrentText("all frames")
    widget.device.setCurrentText("cpu")
    widget.detect()
    wait_idle(qtbot, widget)
    [points] = layers_of(viewer, "detections")
    [tracks] = layers_of(viewer, "tracks")
    assert points.ndim == 3 and tracks.ndim == 3
    np.testing.assert_allclose(points.scale, [1.0, 0.012, 0.012])
    np.testing.assert_allclose(points.translate, [0.0, 0.5, -0.25])
    np.testing.assert_allclose(tracks.scale, [1.0, 0.012, 0.012])
    assert [str(u) for u in points.units] == [str(u) for u in viewer.layers["movie"].units]
    frames = np.round(points.data[:, 0]).astype(int)
    assert set(frames) == {0, 1, 2, 3}
    # One sites layer holds every frame's sites (each on its frame, following the drift): a
    # point added by hand in any frame snaps to its columns (only the frame shown had them).
    [sites] = layers_of(viewer, "lattice_sites")
    assert sites.ndim == 3 and set(np.round(sites.data[:, 0]).astype(int)) == {0, 1, 2, 3}
    np.testing.assert_allclose(sites.scale, points.scale)
    from napari_atomdefect.widgets.review import ReviewWidget

    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(points.name)
    chalc = sites.data[(np.round(sites.data[:, 0]) == 3)
                       & (np.asarray(sites.features["sublattice"]) == "chalcogen")]
    target = chalc[len(chalc) // 2]
    viewer.dims.set_point(0, 3)
    review.add_defect(target[1:] + [1.0, -1.0], cls="V_S")
    np.testing.assert_allclose(points.data[-1], target)
    review.undo()
    # Every true vacancy is found in its frame, and its detections share one track.
    a = np.hypot(*movie.a1_px)
    for _, t in movie.truth.groupby("track_id"):
        ids = set()
        for _, row in t.iterrows():
            here = points.data[frames == row.frame][:, 1:]
            d = np.hypot(*(here - [row.y_px, row.x_px]).T)
            assert d.min() < 0.3 * a
            ids.add(int(points.features["track_id"][frames == row.frame].iloc[int(d.argmin())]))
        assert len(ids) <= 2  # at most one break per vacancy over the movie
    n_long = (points.features.groupby("track_id").size() >= 2).sum()
    assert len(np.unique(tracks.data[:, 0])) == n_long == movie.truth["track_id"].nunique()
    assert "tracks over two or more frames" in widget.status.text()

    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText(points.name)
    per_frame = stats.per_frame()
    assert list(per_frame.index) == [0, 1, 2, 3]
    for f in range(4):
        classes = points.features["class"][frames == f].astype(str)
        assert per_frame.loc[f, "V_S"] == (classes == "V_S").sum()
    np.testing.assert_allclose(per_frame["cumulative_dose"], [2e4, 4e4, 6e4, 8e4])
    assert stats.frame_table.rowCount() == 4 and stats.frame_table.isVisibleTo(stats)
    assert stats.frame_plot.x_label.startswith("cumulative dose")
    assert int(stats.statistics()["count"].sum()) == len(points.data)
    # the count is of detections in every frame; the defects themselves are the tracks (a
    # trial read 282 V_S where 54 had been seen)
    assert stats.table.horizontalHeaderItem(0).text() == "count (all frames)"
    header = stats.table.horizontalHeader()  # wide enough for its header (read ": (all fra")
    assert stats.table.columnWidth(0) >= header.fontMetrics().horizontalAdvance(
        "count (all frames)")
    from napari_atomdefect.core.io.table import track_classes

    feats = points.features.copy()
    feats["track_class"] = track_classes(feats)
    n_vs = feats.loc[(feats["track_class"] == "V_S") & (feats["track_id"] >= 0),
                     "track_id"].nunique() \
        + int(((feats["class"] == "V_S") & (feats["track_id"] < 0)).sum())
    assert f"add up to): V_S {n_vs}" in stats.note.text(), stats.note.text()
    assert n_vs < (feats["class"] == "V_S").sum()

    # Review on the 3-D layer: a reclassification reaches the per-frame counts.
    k = int(np.flatnonzero(frames == 2)[0])
    before = int(per_frame.loc[2, "V_Mo"])
    set_class(points, [k], "V_Mo")
    assert stats.per_frame().loc[2, "V_Mo"] == before + 1

    # Next low-confidence on a movie goes to the detection's frame and centres on it.
    from napari_atomdefect.widgets.review import ReviewWidget

    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(points.name)
    i = review.next_low_confidence()
    assert viewer.dims.current_step[0] == int(round(points.data[i][0]))
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], points.data_to_world(points.data[i])[-2:])

    # Writer and reader keep frame and track_id: the same 3-D layer comes back.
    [path] = write_points_csv(str(tmp_path / "movie.csv"), points.data, layer_meta(points))
    header = open(path).readline().strip().split(",")
    assert header[-9:] == ["frame", "track_id", "track_class", "material", "substituents",
                           "overlaps", "pixel_size_nm", "pixel_size_source", "image"]
    written = pd.read_csv(path)
    assert set(written["pixel_size_source"]) == {"file"}
    np.testing.assert_allclose(written["pixel_size_nm"], 0.012)
    [(data, kwargs, kind), (track_data, track_kwargs, track_kind)] = read_defects_layer(path)
    assert kind == "points" and track_kind == "tracks"
    # the movie's tracks come back with it (a reopened movie table had shown none), drawn on it
    np.testing.assert_array_equal(track_data, tracks.data)
    key = track_kwargs["metadata"]["atomdefect"]["track_key"]
    assert key and kwargs["metadata"]["atomdefect"]["track_key"] == key
    np.testing.assert_allclose(track_kwargs["scale"], tracks.scale)
    assert kwargs["metadata"]["atomdefect"]["calibration"] == "file"  # (kept on export)
    # reopened over its movie: every frame's area and sites (a trial saw "–" densities)
    meta = kwargs["metadata"]["atomdefect"]
    assert meta["n_frames"] == 4 and meta["sites_from"] == "image area"
    np.testing.assert_allclose(meta["area_nm2"], 4 * meta["frame_area_nm2"])
    np.testing.assert_allclose(meta["area_nm2"], points.metadata["atomdefect"]["area_nm2"],
                               rtol=0.1)
    np.testing.assert_array_equal(data, points.data)
    np.testing.assert_array_equal(kwargs["features"]["track_id"], points.features["track_id"])
    assert len(kwargs["scale"]) == 3
    reopened = viewer.add_points(data, **kwargs)
    reopened_tracks = viewer.add_tracks(track_data, **track_kwargs)
    # corrected in Review, the reopened tracks follow as a detection's do
    review.layer_combo.setCurrentText(reopened.name)
    ids = reopened.features["track_id"].to_numpy(int)
    gone = int(reopened_tracks.data[0, 0])
    reopened.selected_data = set(np.flatnonzero(ids == gone).tolist())
    review.delete_selected()
    assert gone not in set(reopened_tracks.data[:, 0].astype(int))
    assert review.undo() and gone in set(reopened_tracks.data[:, 0].astype(int))

    # A new calibration reaches the 3-D layers (the frame axis keeps its scale).
    area = points.metadata["atomdefect"]["frame_area_nm2"]
    apply_calibration(viewer, viewer.layers["movie"], 0.0125)
    np.testing.assert_allclose(points.scale, [1.0, 0.0125, 0.0125])
    np.testing.assert_allclose(tracks.scale, [1.0, 0.0125, 0.0125])
    assert points.metadata["atomdefect"]["frame_area_nm2"] == pytest.approx(
        area * (0.0125 / 0.012) ** 2)


def test_current_frame_stays_2d_and_cancel_mid_movie(viewer_with_movie, qtbot):
    viewer = viewer_with_movie
    widget = DetectWidget(viewer)
    widget.device.setCurrentText("cpu")
    widget.frames.setCurrentText("all frames")
    widget.detect()
    qtbot.waitUntil(lambda: widget.status.text().startswith("Frame 1 (2 of 4)"), timeout=120_000)
    widget.cancel()
    wait_idle(qtbot, widget)
    assert not layers_of(viewer, "detections") and not layers_of(viewer, "tracks")
    assert "Cancelled" in widget.status.text()

    viewer.dims.set_current_step(0, 2)
    widget.frames.setCurrentText("current frame")
    widget.detect()
    wait_idle(qtbot, widget)
    [points] = layers_of(viewer, "detections")
    assert points.ndim == 2 and points.metadata["atomdefect"]["frame"] == 2
    assert points.name.startswith("movie frame 2 defects")  # (drawn over every frame)
    assert not layers_of(viewer, "tracks")


def test_lattice_of_a_frame_is_drawn_on_that_frame_and_replaced_by_a_rerun(viewer_with_movie,
                                                                           qtbot):
    viewer = viewer_with_movie
    widget = DetectWidget(viewer)
    widget.device.setCurrentText("cpu")
    viewer.dims.set_current_step(0, 2)
    widget.find_lattice()
    wait_idle(qtbot, widget)
    widget.find_lattice()  # a second run replaces the first one's layers
    wait_idle(qtbot, widget)
    [sites] = layers_of(viewer, "lattice_sites")
    [grid] = layers_of(viewer, "cell_grid")
    assert sites.ndim == 3 and np.all(sites.data[:, 0] == 2)  # shown on frame 2 only
    assert grid.ndim == 3
    np.testing.assert_allclose(sites.scale, viewer.layers["movie"].scale)
    viewer.dims.set_current_step(0, 0)
    widget.find_lattice()
    wait_idle(qtbot, widget)
    assert sorted(int(la.data[0, 0]) for la in layers_of(viewer, "lattice_sites")) == [0, 2]


def test_an_uncalibrated_movie_takes_the_pixel_size_it_was_analysed_with(make_napari_viewer,
                                                                          movie, qtbot):
    """A bare stack (scale 1, no units) analysed with all frames at a typed pixel size: the
    image, its detections and tracks are shown in nm afterwards, as a single image is (they
    stayed in pixels), and the frame axis keeps its scale."""
    viewer = make_napari_viewer()
    viewer.add_image(movie.frames, name="bare")
    widget = DetectWidget(viewer)
    widget.pixel_size.setValue(0.012)
    widget.frames.setCurrentText("all frames")
    widget.device.setCurrentText("cpu")
    widget.detect()
    wait_idle(qtbot, widget)
    image = viewer.layers["bare"]
    [points] = layers_of(viewer, "detections")
    [tracks] = layers_of(viewer, "tracks")
    for layer in (image, points, tracks):
        np.testing.assert_allclose(layer.scale, [1.0, 0.012, 0.012])
        assert [str(u) for u in layer.units[1:]] == ["nanometer", "nanometer"]


def test_an_overlap_of_two_classes_in_a_movie_is_shown_and_marked(viewer_with_movie, qtbot,
                                                                  monkeypatch):
    """Two classes whose split the movie's calls cannot tell: one sentence beside the result,
    and their rows in Statistics carry the mark "†" (a movie's frames had each said it to the console
    only, twice with the pair in either order)."""
    import napari_atomdefect.core.detect.movie as movie_module
    from napari_atomdefect.core.detect.overlap import ClassOverlap

    monkeypatch.setattr(movie_module, "class_overlaps",
                        lambda sites: [ClassOverlap(("V_S", "O_S"), (4, 3), (12, 6))])
    viewer = viewer_with_movie
    widget = DetectWidget(viewer)
    widget.frames.setCurrentText("all frames")
    widget.device.setCurrentText("cpu")
    widget.detect()
    wait_idle(qtbot, widget)
    assert widget.fit_label.isVisibleTo(widget)
    text = widget.fit_label.text()
    assert text.count("overlap") == 1 and "V_S and O_S overlap in these frames" in text
    [points] = layers_of(viewer, "detections")
    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText(points.name)
    stats.update_stats()
    rows = {stats.table.verticalHeaderItem(r).text(): stats.table.item(r, 0).text()
            for r in range(stats.table.rowCount())}
    assert rows["V_S"].endswith(" †")
    # (a class of the pair with no call is shown as 0, not "about zero")
    n_o = int((points.features["class"].astype(str) == "O_S").sum())
    assert rows["O_S"] == "0" if n_o == 0 else rows["O_S"].endswith(" †")
    assert not rows["V_S2"].endswith(" †")


def test_review_hides_defects_seen_in_too_few_frames(viewer_with_movie, qtbot):
    """On a movie's layer, *Seen in at least N frames* hides the detections whose track spans
    fewer frames (as *Hide below* does; Statistics counts the rest); the control is not offered
    for a single image's layer."""
    from napari_atomdefect.core.detect.movie import track_frames
    from napari_atomdefect.widgets.review import ReviewWidget

    viewer = viewer_with_movie
    widget, points = _detect_all_frames(viewer, qtbot)
    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(points.name)
    assert review.min_frames.isVisibleTo(review)
    frames = np.round(points.data[:, 0]).astype(int)
    spans = track_frames(points.features.assign(frame=frames))
    review.min_frames.setValue(3)
    np.testing.assert_array_equal(points.shown, spans >= 3)
    assert 0 < points.shown.sum() < len(points.data)  # this movie has short tracks
    assert f"{int((spans < 3).sum())} hidden (seen in fewer than 3 frames)" in review.info.text()
    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText(points.name)
    assert int(stats.statistics()["count"].sum()) == int(points.shown.sum())
    review.min_frames.setValue(1)
    assert points.shown.all()
    # a defect added by the API on the movie's layer lands in the frame shown (a trial's
    # add_defect((row, col)) raised on the 3-D layer), and Undo takes it back
    viewer.dims.set_point(0, 2)
    n = len(points.data)
    review.add_defect((40.0, 50.0), cls=str(points.features["class"].iloc[0]))
    assert len(points.data) == n + 1 and points.data[-1][0] == 2.0
    assert int(points.features["track_id"].iloc[-1]) == -1
    review.min_frames.setValue(3)  # yours: not hidden as a one-frame call (a trial)
    assert points.shown[-1] and not points.shown[:n].all()
    review.min_frames.setValue(1)
    assert review.undo() and len(points.data) == n
    one = viewer.add_points(points.data[frames == 0][:, 1:], name="one frame",
                            features=points.features[frames == 0].drop(columns="track_id"),
                            metadata=dict(points.metadata))
    review.layer_combo.setCurrentText(one.name)
    assert not review.min_frames.isVisibleTo(review)


def test_a_dose_given_to_the_image_after_detection_reaches_the_plot(make_napari_viewer, movie,
                                                                    qtbot):
    """The dose per frame typed into the image's metadata after the detection: Statistics
    plots against the cumulative dose from then on (it had stayed against frame)."""
    viewer = make_napari_viewer()
    image = viewer.add_image(movie.frames, name="movie", scale=(1.0, 0.012, 0.012),
                             metadata={"atomdefect": {"pixel_size_nm": 0.012,
                                                      "calibration": "file"}})
    widget, points = _detect_all_frames(viewer, qtbot)
    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText(points.name)
    assert "cumulative_dose" not in stats.per_frame().columns
    # assigned as the guide shows: Statistics redraws without being asked (a trial's in-place
    # change waited for the layer to be picked again)
    image.metadata = {**image.metadata, "atomdefect": {**image.metadata["atomdefect"],
                                                       "dose_e_per_A2_per_frame": 5e4}}
    np.testing.assert_allclose(stats.per_frame()["cumulative_dose"], [5e4, 1e5, 1.5e5, 2e5])
    assert stats.frame_plot.x_label.startswith("cumulative dose")


def test_a_blank_frame_is_said_and_has_no_row_in_statistics(make_napari_viewer, movie, qtbot):
    """A frame that cannot be analysed (a failed scan) is named in the dock's status and has no
    row in Statistics' per-frame table (it had read as a frame with no defect, unsaid)."""

    viewer = make_napari_viewer()
    frames = movie.frames.copy()
    frames[2] = frames[2].mean()
    viewer.add_image(frames, name="movie", scale=(1.0, 0.012, 0.012),
                     metadata={"atomdefect": {"pixel_size_nm": 0.012, "calibration": "file"}})
    widget, points = _detect_all_frames(viewer, qtbot)
    assert "Frame 2 could not be analysed" in widget.status.text()
    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText(points.name)
    per_frame = stats.per_frame()
    assert list(per_frame.index) == [0, 1, 3]


def test_run_all_on_a_movie_shown_at_its_blank_frame_analyses_the_others(make_napari_viewer,
                                                                          movie, qtbot):
    """*Run all* with *all frames* while the slider shows a blank frame: the lattice step on
    that frame fails, said, and every other frame is analysed (it had stopped at "The image is
    constant", nothing analysed)."""
    viewer = make_napari_viewer()
    frames = movie.frames.copy()
    frames[2] = frames[2].mean()
    viewer.add_image(frames, name="movie", scale=(1.0, 0.012, 0.012),
                     metadata={"atomdefect": {"pixel_size_nm": 0.012, "calibration": "file"}})
    viewer.dims.set_current_step(0, 2)
    widget = DetectWidget(viewer)
    widget.frames.setCurrentText("all frames")
    widget.device.setCurrentText("cpu")
    widget.run_all()
    wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: bool(layers_of(viewer, "detections")), timeout=120_000)
    [points] = layers_of(viewer, "detections")
    assert set(np.round(points.data[:, 0]).astype(int)) <= {0, 1, 3}
    assert "Frame 2 could not be analysed" in widget.status.text()


def test_a_call_pasted_into_a_drifted_frame_lands_on_its_column(viewer_with_movie, movie, qtbot):
    """A call copied in frame 0 and pasted into frame 3 (the lattice drifted 4.5, -3 px) sits
    on its column of frame 3, as a click would (a trial's stayed at frame 0's pixels)."""
    from napari_atomdefect.widgets.review import ReviewWidget

    viewer = viewer_with_movie
    _, points = _detect_all_frames(viewer, qtbot)
    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(points.name)
    first = int(np.flatnonzero(np.round(points.data[:, 0]) == 0)[0])
    viewer.dims.set_current_step(0, 0)
    points.selected_data = {first}
    points._copy_data()
    viewer.dims.set_current_step(0, 3)
    [new] = review.paste(points)
    moved = points.data[new, 1:] - points.data[first, 1:]
    np.testing.assert_allclose(moved, 3 * np.asarray(movie.drift_px[1] - movie.drift_px[0]),
                               atol=1.0)
    assert points.data[new, 0] == 3


def test_a_deleted_track_is_a_correction_the_tracks_and_result_line_follow(viewer_with_movie,
                                                                          qtbot):
    """Deleting every call of a track (a trial's edit): the Tracks layer stops drawing it, the
    result line counts the calls as corrected, and a second run neither takes Review and
    Statistics off the corrected layer nor hides it (deletions leave no manual row: the next
    run had taken both docks to the new layer and hidden the edited one)."""
    from napari_atomdefect.widgets.review import ReviewWidget, corrections_by_hand

    viewer = viewer_with_movie
    widget, points = _detect_all_frames(viewer, qtbot)
    [tracks] = layers_of(viewer, "tracks")
    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(points.name)
    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText(points.name)
    ids = points.features["track_id"].to_numpy(int)
    drawn = np.unique(tracks.data[:, 0]).astype(int)
    gone = int(drawn[0])
    n = len(points.data)
    points.selected_data = set(np.flatnonzero(ids == gone).tolist())
    review.delete_selected()
    assert len(points.data) == n - int((ids == gone).sum())
    assert gone not in set(np.unique(tracks.data[:, 0]).astype(int))
    assert len(np.unique(tracks.data[:, 0])) == len(drawn) - 1
    assert corrections_by_hand(points) == int((ids == gone).sum())
    assert f"as corrected; {n} detected." in widget.status.text()
    # the line's track count follows too (it had read the run's)
    assert f" {len(drawn) - 1} tracks over two or more frames." in widget.status.text()
    assert review.undo() and len(points.data) == n and corrections_by_hand(points) == 0
    assert len(np.unique(tracks.data[:, 0])) == len(drawn)
    assert f" {len(drawn)} tracks over two or more frames." in widget.status.text()
    points.selected_data = set(np.flatnonzero(ids == gone).tolist())
    review.delete_selected()
    widget.detect()  # a second run of every frame
    wait_idle(qtbot, widget)
    first, second = layers_of(viewer, "detections")
    assert first is points and points.visible and second.visible
    assert review.layer() is points and stats.layer_combo.currentText() == points.name
    assert "holds" in review.info.text() and "deleted" in review.info.text()


def test_a_movie_table_opened_before_its_movie_brings_its_tracks_onto_it(
        make_napari_viewer, movie, qtbot, tmp_path):
    """A movie's CSV opened in a fresh viewer comes back with its Tracks layer; opened before
    its (uncalibrated) movie file, both layers land on the movie's pixel grid together (a
    reopened movie table had shown no tracks)."""
    from napari_atomdefect.core.detect.movie import track_layer_data

    viewer = make_napari_viewer()
    viewer.add_image(movie.frames, name="movie")
    _, points = _detect_all_frames(viewer, qtbot)
    [path] = write_points_csv(str(tmp_path / "movie defects.csv"), points.data,
                              layer_meta(points))
    again = make_napari_viewer()
    layers = again.open(path, plugin="napari-atomdefect")
    assert [layer._type_string for layer in layers] == ["points", "tracks"]
    reopened, tracks = layers
    assert again.dims.axis_labels == ("frame", "y", "x")  # (alone, the slider read "-3")
    table = pd.read_csv(path)
    np.testing.assert_array_equal(tracks.data, track_layer_data(table))
    np.save(tmp_path / "movie.npy", movie.frames)
    again.open(str(tmp_path / "movie.npy"), plugin="napari-atomdefect")
    image = again.layers["movie"]
    for layer in (reopened, tracks):  # drawn on the movie's frame (pixels: no calibration)
        np.testing.assert_allclose(layer.scale, image.scale)
        assert layer.metadata["atomdefect"]["image"] == "movie"
        # under its markers (napari puts a new layer on top: it had hidden them, a trial)
        assert list(again.layers).index(image) < list(again.layers).index(layer)


def test_a_call_clicked_onto_a_tracked_call_keeps_its_track(viewer_with_movie, qtbot):
    """Adding a call of another class on a column a tracked call holds replaces it and takes
    over its track (the track had lost that frame, the Tracks layer a point, in a trial), as
    *Set class of selected* keeps it."""
    from napari_atomdefect.widgets.review import ReviewWidget

    viewer = viewer_with_movie
    _, points = _detect_all_frames(viewer, qtbot)
    [tracks] = layers_of(viewer, "tracks")
    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(points.name)
    k = int(np.flatnonzero(points.features["track_id"].to_numpy(int) >= 0)[0])
    track, where = int(points.features["track_id"].iloc[k]), points.data[k].copy()
    n_rows = len(tracks.data)
    review.add_defect(where, cls="V_S2")
    [i] = np.flatnonzero(np.all(np.isclose(points.data, where), axis=1))
    assert str(points.features["class"].iloc[i]) == "V_S2"
    assert int(points.features["track_id"].iloc[i]) == track
    assert len(tracks.data) == n_rows


def test_a_frame_left_out_is_a_gap_in_the_per_frame_plot():
    from napari_atomdefect.widgets.stats import joined_steps

    assert joined_steps([0, 1, 3, 4, 5]) == [True, False, True, True]
    assert joined_steps([0, 2, 4, 6]) == [True, True, True]  # (every other frame analysed)
    assert joined_steps([3]) == []


def test_statistics_marks_a_movies_blurred_frames(make_napari_viewer):
    """A frame out of focus (its columns wider than the training images') is marked in the
    per-frame table, and the note says why its counts are not to be trusted."""
    from napari_atomdefect._layers import defect_layer_kwargs, defect_points_data
    from napari_atomdefect.widgets.stats import StatsWidget

    viewer = make_napari_viewer()
    table = pd.DataFrame({"y_px": [10.0, 12.0, 11.0], "x_px": [10.0, 12.0, 11.0],
                          "class": ["V_S", "V_S", "V_S2"], "confidence": 0.9, "source": "model",
                          "frame": [0, 1, 2], "track_id": [0, 0, 1]})
    kwargs = defect_layer_kwargs(table, 0.012, "movie defects")
    kwargs["metadata"]["atomdefect"].update(
        material="MoS2", n_frames=3,
        frames=[{"frame": k, "column_fwhm_nm": w} for k, w in ((0, 0.10), (1, 0.22), (2, None))])
    viewer.add_points(defect_points_data(table), **kwargs)
    stats = StatsWidget(viewer)
    stats.layer_combo.setCurrentText("movie defects")
    labels = [stats.frame_table.verticalHeaderItem(r).text()
              for r in range(stats.frame_table.rowCount())]
    assert labels == ["0", "1 (blurred)", "2"]
    assert "Frames marked blurred" in stats.frame_note.text()
