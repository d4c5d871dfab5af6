"""The plugin inside a real (headless, Xvfb) napari viewer: reader and sample data."""

import warnings

import numpy as np
import pytest

from napari_atomdefect._reader import get_reader
from napari_atomdefect.core.io.image import write_tiff

pytestmark = pytest.mark.viewer


def test_open_tif_through_plugin(make_napari_viewer, tmp_path):
    data = np.random.default_rng(0).random((96, 128)).astype(np.float32)
    path = tmp_path / "stem.tif"
    write_tiff(path, data, 0.0125)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-atomdefect")
    assert len(layers) == 1
    layer = viewer.layers["stem"]
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    np.testing.assert_allclose(layer.scale, [0.0125, 0.0125])
    meta = layer.metadata["atomdefect"]
    assert meta["calibration"] == "file" and meta["pixel_size_nm"] == pytest.approx(0.0125)


def test_open_nion_ndata(make_napari_viewer, tmp_path):
    """A Nion Swift .ndata opens as a layer that carries the file's calibration."""
    from tests.test_io_formats import write_ndata

    data = np.random.default_rng(2).random((96, 128)).astype(np.float32)
    cal = [{"offset": 0.0, "scale": 0.0117, "units": "nm"}] * 2
    write_ndata(tmp_path / "nion scan.ndata", data, {"dimensional_calibrations": cal})
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "nion scan.ndata"), plugin="napari-atomdefect")
    layer = viewer.layers["nion scan"]
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    np.testing.assert_allclose(layer.scale, [0.0117, 0.0117])
    assert layer.metadata["atomdefect"]["calibration"] == "file"


def test_stack_opens_as_stack(make_napari_viewer, tmp_path):
    np.save(tmp_path / "st.npy", np.random.default_rng(1).random((3, 64, 64)).astype(np.float32))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "st.npy"), plugin="napari-atomdefect")
    layer = viewer.layers["st"]
    assert layer.data.shape == (3, 64, 64) and layer.metadata["atomdefect"]["pixel_size_nm"] is None
    assert viewer.dims.axis_labels[0] == "frame"  # (the slider read "-3": a trial)


def test_corrupt_file_gives_clear_error(make_napari_viewer, tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="could not be read"):
        viewer.open(str(bad), plugin="napari-atomdefect")
    assert len(viewer.layers) == 0


def test_reader_declines_other_files():
    assert get_reader("notes.txt") is None
    assert get_reader(["a.tif", "b.tif"]) is None
    assert callable(get_reader("a.dm4"))


def test_sample_data_with_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-atomdefect", "mos2")
    image = viewer.layers["MoS2 sample (simulated)"]
    truth = viewer.layers["ground truth (sample)"]
    np.testing.assert_allclose(image.scale, [0.012, 0.012])
    np.testing.assert_allclose(truth.scale, image.scale)
    assert len(truth.data) > 10
    assert set(truth.features["class"]) <= {"V_S", "V_S2", "O_S", "V_Mo"}
    assert list(truth.features.columns) == ["class", "confidence", "source"]
    assert truth.data.min() >= -0.5 and truth.data.max() <= 511.5
    # Colour by class, fixed per class (V_S orange, V_S2 red, O_S cyan, V_Mo green).
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_atomdefect.core.io.class_style import class_color

    for cls, colour in zip(truth.features["class"], truth.border_color, strict=True):
        np.testing.assert_allclose(colour, transform_color(class_color(cls))[0], atol=1e-3)
    # Thin circles (transparent inside) larger than a call's marker (0.4 a), smaller than the
    # column spacing: the call is seen inside its truth's circle.
    np.testing.assert_array_equal(truth.face_color[:, 3], 0.0)
    a_px = 0.316 / 0.012
    assert 0.6 * a_px < truth.size.mean() < 0.8 * a_px
    assert np.all(np.asarray(truth.border_width) < 0.1)


@pytest.mark.parametrize("image_scale, csv_px", [(1.0, 0.0117), (0.00781, 0.00881)])
def test_reopened_csv_sits_on_the_image_it_came_from(make_napari_viewer, tmp_path, image_scale,
                                                      csv_px):
    """A defect CSV opened over its image lands on the same columns, whether the image is
    uncalibrated (scale 1) or its scale differs from the CSV's (lattice) pixel size."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    viewer = make_napari_viewer()
    units = ("nm", "nm") if image_scale != 1.0 else ("pixel", "pixel")
    image = viewer.add_image(np.zeros((300, 300), np.float32), scale=(image_scale, image_scale),
                             units=units)
    truth = pd.DataFrame({"y_px": [20.0, 150.0, 280.0], "x_px": [30.0, 160.0, 250.0],
                          "class": ["V_S", "O_S", "V_Mo"]})
    write_csv_atomic(defects_table(truth, csv_px), tmp_path / "found.csv")
    [layer] = viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    np.testing.assert_allclose(layer.scale, image.scale)
    assert [str(u) for u in layer.units] == [str(u) for u in image.units]
    world = np.array([layer.data_to_world(p) for p in layer.data])
    expected = np.array([image.data_to_world(p) for p in truth[["y_px", "x_px"]].to_numpy()])
    np.testing.assert_allclose(world, expected, atol=1e-6)
    assert layer.metadata["atomdefect"]["pixel_size_nm"] == pytest.approx(csv_px, rel=1e-3)


def test_reopened_csv_statistics_have_densities(make_napari_viewer, tmp_path):
    """A CSV holds no site counts: reopened over its calibrated image, Statistics gives densities
    from the image area (per nm² exact, per cell estimated from the host's unit cell)."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic
    from napari_atomdefect.core.materials.materials import MATERIALS
    from napari_atomdefect.widgets.stats import StatsWidget

    viewer = make_napari_viewer()
    px = 0.01
    viewer.add_image(np.zeros((400, 500), np.float32), scale=(px, px), units=("nm", "nm"))
    truth = pd.DataFrame({"y_px": [20.0, 150.0, 280.0, 300.0], "x_px": [30.0, 160.0, 250.0, 90.0],
                          "class": ["V_S", "V_S", "Se_S", "V_W"]})  # WS2 names
    write_csv_atomic(defects_table(truth, px), tmp_path / "found.csv")
    [layer] = viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    stats = StatsWidget(viewer).statistics()
    area = 400 * 500 * px * px
    assert stats.loc["V_S", "per_nm2"] == pytest.approx(2 / area)
    cells = area / (np.sqrt(3) / 2 * MATERIALS["WS2"].a_nm ** 2)
    assert stats.loc["V_W", "per_cell"] == pytest.approx(1 / cells, rel=0.01)
    assert layer.metadata["atomdefect"]["sites_from"] == "image area"


def test_reopened_csv_densities_use_the_tables_calibration_and_alloy(make_napari_viewer,
                                                                     tmp_path):
    """The image opens at its file's pixel size while the table was made with the lattice's
    (0.00899 against 0.00781 nm/px on a real image): the densities are the table's — the image's
    area at the table's pixel size, the cells of the alloy the table counts (Vegard's law) —
    so reopening gives what the detection said (it had given 36 % more)."""
    import pandas as pd

    from napari_atomdefect.core.detect.alloy_calibration import vegard_lattice_constant
    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic
    from napari_atomdefect.widgets.stats import StatsWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((512, 512), np.float32), scale=(0.00781, 0.00781),
                     units=("nm", "nm"))
    rng = np.random.default_rng(0)
    classes = ["Se_S"] * 100 + ["Se2_S2"] * 40 + ["V_S"] * 10
    truth = pd.DataFrame({"y_px": rng.uniform(0, 511, 150), "x_px": rng.uniform(0, 511, 150),
                          "class": classes})
    write_csv_atomic(defects_table(truth, 0.00899), tmp_path / "alloy.csv")
    viewer.open(str(tmp_path / "alloy.csv"), plugin="napari-atomdefect")
    stats = StatsWidget(viewer).statistics()
    area = (512 * 0.00899) ** 2
    assert stats.loc["V_S", "per_nm2"] == pytest.approx(10 / area, rel=1e-4)
    host_cells = area / (np.sqrt(3) / 2 * 0.3153 ** 2)  # 246, of which 100 + 2 x 40 Se atoms
    a_nm = vegard_lattice_constant("WS2", 180 / (2 * host_cells))  # 37 % Se: 0.3200 nm
    assert 0.3195 < a_nm < 0.3205
    cells = area / (np.sqrt(3) / 2 * a_nm ** 2)
    assert stats.loc["V_S", "per_cell"] == pytest.approx(10 / cells, rel=0.01)


def test_a_table_opened_before_its_uncalibrated_image_lands_on_its_columns(make_napari_viewer,
                                                                          tmp_path):
    """The CSV of an uncalibrated image (nm from the lattice) opened first is drawn in nm; the
    image opened next is in pixels: the table's layer takes the image's frame, so each marker is
    on its pixel (it was 0.011 of the way there). A table that does not fit the grid stays."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    image = np.random.default_rng(2).random((200, 240)).astype(np.float32)
    np.save(tmp_path / "uncal.npy", image)
    defects = {"y_px": [10.0, 150.5], "x_px": [20.0, 230.0], "class": ["V_S", "V_Mo"],
               "confidence": [0.9, 0.8]}
    write_csv_atomic(defects_table(pd.DataFrame(defects), 0.011, source="model"),
                     tmp_path / "uncal.csv")
    write_csv_atomic(defects_table(pd.DataFrame({**defects, "x_px": [20.0, 900.0]}), 0.011,
                                   source="model"), tmp_path / "other.csv")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "uncal.csv"), plugin="napari-atomdefect")
    viewer.open(str(tmp_path / "other.csv"), plugin="napari-atomdefect")
    points, other = viewer.layers["uncal"], viewer.layers["other"]
    np.testing.assert_allclose(points.scale, [0.011, 0.011])
    viewer.open(str(tmp_path / "uncal.npy"), plugin="napari-atomdefect")
    img = viewer.layers["uncal [1]"] if "uncal [1]" in viewer.layers else viewer.layers[-1]
    np.testing.assert_allclose(points.scale, img.scale)
    assert tuple(map(str, points.units)) == tuple(map(str, img.units))
    world = points.data_to_world(points.data[1])
    np.testing.assert_allclose(img.world_to_data(world), [150.5, 230.0])
    np.testing.assert_allclose(other.scale, [0.011, 0.011])  # does not fit: left as it was


def test_a_table_opened_before_its_image_is_told_of_another_calibration(make_napari_viewer,
                                                                         tmp_path):
    """Trial, twenty-eighth session: a CSV measured at the lattice's 0.0090 nm/px, opened before
    its image (0.0078 nm/px in the file), was moved onto the image's pixel grid without a word of
    the 13 % between the table's nm columns and the scale bar (opened after its image, it is
    said). It is said now, and the layer then belongs to that image: its area for Statistics."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    write_tiff(tmp_path / "scan.tif", np.zeros((274, 300), np.float32), 0.0078)
    table = pd.DataFrame({"y_px": [20.0, 200.0], "x_px": [30.0, 160.0], "class": ["V_S", "O_S"],
                          "confidence": [0.9, 1.0], "source": ["model", "model"]})
    write_csv_atomic(defects_table(table, 0.0090, source="model"), tmp_path / "found.csv")
    write_csv_atomic(defects_table(table, 0.0090), tmp_path / "truth.csv")  # (a reference)
    viewer = make_napari_viewer()
    [points] = viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    [truth] = viewer.open(str(tmp_path / "truth.csv"), plugin="napari-atomdefect")
    assert "image" not in points.metadata["atomdefect"]
    with pytest.warns(UserWarning, match=r"found was measured at 0\.00900 nm/px; scan is shown at "
                                         r"0\.00780 nm/px \(-13%\)"):
        [image] = viewer.open(str(tmp_path / "scan.tif"), plugin="napari-atomdefect")
    np.testing.assert_allclose(points.scale, image.scale)
    np.testing.assert_allclose(truth.scale, image.scale)  # ground truth lands on it too
    meta = points.metadata["atomdefect"]
    assert meta["image"] == "scan"
    assert meta["area_nm2"] == pytest.approx(274 * 300 * 0.0090 ** 2)  # the table's calibration
    write_tiff(tmp_path / "same.tif", np.zeros((274, 300), np.float32), 0.0090)
    write_csv_atomic(defects_table(table, 0.0090, source="model"), tmp_path / "again.csv")
    viewer.open(str(tmp_path / "again.csv"), plugin="napari-atomdefect")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same calibration: nothing to say
        viewer.open(str(tmp_path / "same.tif"), plugin="napari-atomdefect")


def test_a_layer_saved_through_the_file_menu_opens_again_on_its_image(make_napari_viewer,
                                                                        tmp_path):
    """Trial, twenty-ninth session: the File menu's save of a detections layer with a .csv name
    goes to napari's own points writer by default; that file now opens again on its image, the
    classes and sources kept."""
    import pandas as pd

    from napari_atomdefect._layers import defect_layer_kwargs, defect_points_data
    from napari_atomdefect.core.io.table import defects_table

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 320), np.float32), scale=(0.01, 0.01), units=("nm", "nm"),
                     name="scan")
    table = defects_table(pd.DataFrame({"y_px": [10.0, 200.5], "x_px": [20.0, 250.0],
                                        "class": ["V_S", "O_S"]}), 0.01, np.array([0.9, 0.7]),
                          source="model")
    found = viewer.add_points(defect_points_data(table), **defect_layer_kwargs(table, 0.01, "found"))
    viewer.layers.selection = {found}
    viewer.layers.save(str(tmp_path / "menu.csv"), selected=True)  # napari's own writer
    assert "axis-0" in (tmp_path / "menu.csv").read_text().splitlines()[0]
    [again] = viewer.open(str(tmp_path / "menu.csv"), plugin="napari-atomdefect")
    np.testing.assert_allclose(again.data, found.data)
    np.testing.assert_allclose(again.scale, found.scale)
    assert list(again.features["class"]) == ["V_S", "O_S"]
    np.testing.assert_allclose(again.features["confidence"], [0.9, 0.7])
    assert again.metadata["atomdefect"]["kind"] == "detections"


def test_review_and_statistics_stay_on_the_detections_when_a_reference_opens(
        make_napari_viewer, tmp_path):
    """Opening ground-truth labels next to detections leaves Review and Statistics on the
    detections (editing or counting the truth by accident is not what opening it asks for);
    the reference layer is listed to choose."""
    import pandas as pd

    from napari_atomdefect.widgets.review import ReviewWidget
    from napari_atomdefect.widgets.stats import StatsWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((200, 200), np.float32), scale=(0.01, 0.01), units=("nm", "nm"))
    rows = pd.DataFrame({"x_px": [20.0, 150.0], "y_px": [30.0, 160.0], "class": ["V_S", "O_S"]})
    rows.assign(confidence=[0.9, 0.7]).to_csv(tmp_path / "found.csv", index=False)
    rows.to_csv(tmp_path / "labels.csv", index=False)
    review, stats = ReviewWidget(viewer), StatsWidget(viewer)
    viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    assert review.layer_combo.currentText() == stats.layer_combo.currentText() == "found"
    [labels] = viewer.open(str(tmp_path / "labels.csv"), plugin="napari-atomdefect")
    assert review.layer_combo.currentText() == stats.layer_combo.currentText() == "found"
    assert review.layer_combo.findText("labels (reference)") >= 0
    # labels without a source column are the truth, not hand-made calls ("manual" was shown)
    assert set(labels.features["source"].astype(str)) == {"truth"}


def test_statistics_opened_after_a_reference_start_on_the_detections(make_napari_viewer,
                                                                      tmp_path):
    """New-user trial, twenty-sixth session: Statistics (and Review) opened *after* the
    detections and a reference table started on the reference, the last layer listed — a user
    may read the truth's counts as the detector's. Opened late they start on the newest
    detection layer; the reference stays listed."""
    import pandas as pd

    from napari_atomdefect.widgets.review import ReviewWidget
    from napari_atomdefect.widgets.stats import StatsWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((200, 200), np.float32), scale=(0.01, 0.01), units=("nm", "nm"))
    rows = pd.DataFrame({"x_px": [20.0, 150.0], "y_px": [30.0, 160.0], "class": ["V_S", "O_S"]})
    rows.assign(confidence=[0.9, 0.7]).to_csv(tmp_path / "found.csv", index=False)
    rows.to_csv(tmp_path / "labels.csv", index=False)
    viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    viewer.open(str(tmp_path / "labels.csv"), plugin="napari-atomdefect")
    review, stats = ReviewWidget(viewer), StatsWidget(viewer)
    assert review.layer_combo.currentText() == stats.layer_combo.currentText() == "found"
    assert stats.layer_combo.findText("labels (reference)") >= 0


def test_fine_tune_follows_the_material_of_a_table_reopened_on_the_image(make_napari_viewer,
                                                                         tmp_path):
    """New-user trial, twenty-sixth session: with a WS2 detection table reopened over its image
    the Fine-tune dock stayed on MoS2 and mos2-default; it takes the material the table names
    (whether the dock was opened before or after the table); so does the Detect dock."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, with_run_columns, write_csv_atomic
    from napari_atomdefect.widgets.detect import DetectWidget
    from napari_atomdefect.widgets.finetune import FinetuneWidget

    table = pd.DataFrame({"y_px": [20.0, 150.0], "x_px": [30.0, 160.0], "class": ["V_S", "V_W"],
                          "confidence": [0.9, 0.8]})
    table = with_run_columns(defects_table(table, 0.0078), "WS2", ("O",))
    write_csv_atomic(table, tmp_path / "found.csv")

    def dock_over_table(dock_class, dock_first: bool):
        """A dock opened before or after the table, which is opened over its image."""
        viewer = make_napari_viewer()
        viewer.add_image(np.zeros((300, 300), np.float32), scale=(0.0078, 0.0078),
                         units=("nm", "nm"), name="scan")
        dock = dock_class(viewer) if dock_first else None
        viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
        return dock or dock_class(viewer)

    for dock_first in (True, False):
        dock = dock_over_table(FinetuneWidget, dock_first)
        assert dock.material.currentText() == "WS2", dock_first
        assert dock.base_model.currentText() == "ws2-default", dock_first
    # The Detect dock too (a trial, forty-third session: it stayed on MoS2, and Run all would
    # have analysed the WS2 image as MoS2), with the table's substituents ticked.
    table = with_run_columns(defects_table(pd.DataFrame(
        {"y_px": [20.0, 150.0], "x_px": [30.0, 160.0], "class": ["Se_S", "V_W"],
         "confidence": [0.9, 0.8]}), 0.0078), "WS2", ("Se",))
    write_csv_atomic(table, tmp_path / "found.csv")
    for dock_first in (True, False):
        detect = dock_over_table(DetectWidget, dock_first)
        assert detect.material.currentText() == "WS2", dock_first
        assert detect.model.currentText() == "ws2-default", dock_first
        assert detect.run_substituents() == ("Se",), dock_first


def test_a_reopened_csv_follows_its_image_calibration_and_keeps_its_classes(make_napari_viewer,
                                                                           tmp_path):
    """Trial, twenty-first session: a CSV reopened over its image stayed at the file's scale
    when a detection then calibrated the image from the lattice (its markers drifted off the
    columns), and a WS2 table without `V_W` calls reopened without `V_W` (one of `V_S`/`O_S`
    only: with the legacy MoS2 `V_Mo`). The table names its run; the layer follows the image."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, with_run_columns, write_csv_atomic
    from napari_atomdefect.widgets.detect import apply_calibration

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((300, 300), np.float32), scale=(0.0078, 0.0078),
                             units=("nm", "nm"), name="scan")
    truth = pd.DataFrame({"y_px": [20.0, 150.0], "x_px": [30.0, 160.0], "class": ["V_S", "O_S"]})
    write_csv_atomic(with_run_columns(defects_table(truth, 0.0087), "WS2", ("O", "Se"),
                                      overlaps=[["V_S", "O_S"]]), tmp_path / "ws2.csv")
    [layer] = viewer.open(str(tmp_path / "ws2.csv"), plugin="napari-atomdefect")
    meta = layer.metadata["atomdefect"]
    assert meta["image"] == "scan" and meta["material"] == "WS2"
    assert meta["class_overlaps"] == [["V_S", "O_S"]]  # (Statistics' mark kept; a trial)
    assert {"V_W", "O_S", "Se_S", "Se2_S2"} <= set(meta["classes"]) and "V_Mo" not in \
        meta["classes"]
    image.metadata = {"atomdefect": {"calibration": "lattice", "pixel_size_nm": 0.0087}}
    apply_calibration(viewer, image, 0.0087)
    np.testing.assert_allclose(layer.scale, image.scale)
    world = np.array([layer.data_to_world(p) for p in layer.data])
    expected = np.array([image.data_to_world(p) for p in truth[["y_px", "x_px"]].to_numpy()])
    np.testing.assert_allclose(world, expected, atol=1e-9)
    # exported again, the table still names its run
    from napari_atomdefect._writer import write_points_csv
    from napari_atomdefect.widgets.review import layer_meta

    [again] = write_points_csv(str(tmp_path / "again.csv"), layer.data, layer_meta(layer))
    written = pd.read_csv(again)
    assert set(written["material"]) == {"WS2"} and set(written["substituents"]) == {"O,Se"}
    assert set(written["overlaps"]) == {"V_S|O_S"}
    # and the pixel size its nm follow, with its source: the image's calibration it follows now
    assert set(written["pixel_size_source"]) == {"lattice"}
    np.testing.assert_allclose(written["pixel_size_nm"], 0.0087)
    # A later run's own calibration (an alloy's Vegard law: by the composition its reading
    # gives) moves the drawing, not the table: exported again, the same nm (a trial's table
    # came out in the last run's pixel size).
    apply_calibration(viewer, image, 0.0088, tables=False)
    np.testing.assert_allclose(layer.scale, image.scale)
    [third] = write_points_csv(str(tmp_path / "third.csv"), layer.data, layer_meta(layer))
    pd.testing.assert_frame_equal(pd.read_csv(third), written)
    # ... and the Review dock's export says so (the cursor's nm and the table's differ)
    from napari_atomdefect.widgets.review import ReviewWidget

    review = ReviewWidget(viewer)
    review.layer_combo.setCurrentText(layer.name)
    review.export_csv(str(tmp_path / "fourth.csv"))
    assert review.info.text().endswith("Its nm columns use its run's pixel size, 0.00870 nm/px; "
                                       "the image is drawn at 0.00880 nm/px now (a later run's "
                                       "calibration).")


def test_a_table_measured_at_another_calibration_says_so_and_a_point_past_the_edge_is_kept(
        make_napari_viewer, tmp_path):
    """Trial, twenty-second session: a CSV measured at the lattice's 0.0090 nm/px reopened over
    its image at the file's 0.0078 drew right but said nothing of the 13 % between the scale bar
    and the table; and one hand-added point 0.7 px past the last row made the table lose its
    image (drawn at the nm scale, every marker in a corner)."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((274, 300), np.float32), scale=(0.0078, 0.0078),
                             units=("nm", "nm"), name="scan")
    table = pd.DataFrame({"y_px": [20.0, 274.2], "x_px": [30.0, 160.0], "class": ["V_S", "O_S"],
                          "confidence": [0.9, 1.0], "source": ["model", "manual"]})
    write_csv_atomic(defects_table(table, 0.0090), tmp_path / "found.csv")
    with pytest.warns(UserWarning, match=r"measured at 0\.00900 nm/px; scan is shown at 0\.00780"):
        [layer] = viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    assert layer.metadata["atomdefect"]["image"] == "scan"
    np.testing.assert_allclose(layer.scale, image.scale)


def test_the_simulators_truth_opens_as_a_reference(make_napari_viewer, tmp_path):
    """`atomdefect simulate`'s defects.csv (confidence 1, source simulation) is ground truth: it
    opens as a reference layer like labels without confidences, not as detections."""
    from napari_atomdefect.cli import main

    assert main(["simulate", "--size", "256", "--out", str(tmp_path / "sim")]) == 0
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "sim" / "defects.csv"), plugin="napari-atomdefect")
    assert layer.metadata["atomdefect"]["kind"] == "reference"
    assert layer.name.endswith("(reference)")


def test_a_reopened_csv_goes_to_the_image_shown_at_its_pixel_size(make_napari_viewer, tmp_path):
    """With several same-sized images open and a points layer selected, a table lands on the
    image shown at its own pixel size (a trial's table of one real image was drawn on the last
    one opened, 6 % off its columns, unsaid); with nothing to tell them apart it is said which
    image it was drawn on."""
    import warnings

    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    viewer = make_napari_viewer()
    first = viewer.add_image(np.zeros((300, 300), np.float32), name="img19",
                             scale=(0.00873, 0.00873), units=("nm", "nm"))
    viewer.add_image(np.zeros((300, 300), np.float32), name="img14",
                     scale=(0.00826, 0.00826), units=("nm", "nm"))
    viewer.add_points(np.array([[5.0, 5.0]]), name="other points")  # the selected layer
    table = pd.DataFrame({"y_px": [20.0, 150.0], "x_px": [30.0, 160.0], "class": ["V_S", "O_S"],
                          "confidence": [0.9, 0.8], "source": "model"})
    write_csv_atomic(defects_table(table, 0.008725), tmp_path / "found19.csv")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        [layer] = viewer.open(str(tmp_path / "found19.csv"), plugin="napari-atomdefect")
    assert layer.metadata["atomdefect"]["image"] == "img19"
    np.testing.assert_allclose(layer.scale, first.scale)
    assert not [w for w in said if "could belong to" in str(w.message)]
    write_csv_atomic(defects_table(table, 0.0100), tmp_path / "found_other.csv")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        [layer] = viewer.open(str(tmp_path / "found_other.csv"), plugin="napari-atomdefect")
    assert any("could belong to 2 open images" in str(w.message) and "img14" in str(w.message)
               for w in said)


def test_a_table_naming_its_image_goes_onto_it_and_keeps_its_calibration_source(
        make_napari_viewer, tmp_path):
    """Trial (forty-first session): a table reopened among images of one size went onto
    another one, between its columns — the table names its image now (``image``: the file's
    name, as the CLI and the layer write it), and it is drawn on that image whichever is
    selected; saved again it says where its own pixel size came from (it had said the
    image's)."""
    import warnings

    import pandas as pd

    from napari_atomdefect._writer import write_points_csv
    from napari_atomdefect.core.io.table import (
        defects_table,
        read_defects_csv,
        with_run_columns,
        write_csv_atomic,
    )

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((300, 300), np.float32), name="scan10",
                     scale=(0.00781, 0.00781), units=("nm", "nm"),
                     metadata={"atomdefect": {"calibration": "file"}})
    viewer.add_image(np.zeros((300, 300), np.float32), name="scan14",
                     scale=(0.00781, 0.00781), units=("nm", "nm"),
                     metadata={"atomdefect": {"calibration": "file"}})
    table = defects_table(pd.DataFrame({"y_px": [20.0], "x_px": [30.0], "class": ["V_S"],
                                        "confidence": [0.9], "source": "model"}), 0.00859)
    write_csv_atomic(with_run_columns(table, "WS2", ["Se"], 0.00859, "lattice", image="scan10"),
                     tmp_path / "calls.csv")
    assert read_defects_csv(tmp_path / "calls.csv").attrs["image"] == "scan10"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        [layer] = viewer.open(str(tmp_path / "calls.csv"), plugin="napari-atomdefect")
    assert layer.metadata["atomdefect"]["image"] == "scan10"  # (scan14 was the last, selected)
    assert not [w for w in said if "could belong to" in str(w.message)]
    write_points_csv(str(tmp_path / "again.csv"), layer.data, {
        "features": layer.features, "scale": layer.scale, "units": layer.units,
        "metadata": layer.metadata})
    again = pd.read_csv(tmp_path / "again.csv")
    assert again["pixel_size_source"].iloc[0] == "lattice"
    assert again["pixel_size_nm"].iloc[0] == pytest.approx(0.00859)
    assert again["image"].iloc[0] == "scan10"


def test_a_table_opened_over_an_uncalibrated_image_says_how_to_take_its_pixel_size(
        make_napari_viewer, tmp_path):
    """README trial, thirty-third session: a CLI table (0.012 nm/px from the lattice) opened
    over the uncalibrated .npy it was made from left the image in pixels, without a hint."""
    import pandas as pd

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    np.save(tmp_path / "raw.npy", np.zeros((200, 220), np.float32))
    table = pd.DataFrame({"y_px": [20.0, 150.0], "x_px": [30.0, 160.0], "class": ["V_S", "O_S"],
                          "confidence": [0.9, 1.0], "source": ["model", "model"]})
    write_csv_atomic(defects_table(table, 0.012, source="model"), tmp_path / "found.csv")
    viewer = make_napari_viewer()
    [image] = viewer.open(str(tmp_path / "raw.npy"), plugin="napari-atomdefect")
    with pytest.warns(UserWarning, match=r"found\.csv was measured at 0\.01200 nm/px; raw has no pixel "
                                         r"size and is drawn in pixels.*type 0\.01200"):
        [points] = viewer.open(str(tmp_path / "found.csv"), plugin="napari-atomdefect")
    np.testing.assert_allclose(points.scale, image.scale)  # on its columns, in pixels


def test_a_table_saved_after_its_image_was_renamed_reopens_on_it(make_napari_viewer, tmp_path):
    """Trial (forty-first session): an image renamed, its calls saved — the table named the new
    name, which no image opened again had, and went onto another image unsaid. It names the
    image's file now; a table naming an image that is not open says so."""
    import warnings

    import pandas as pd
    import tifffile

    from napari_atomdefect._layers import defect_layer_kwargs, defect_points_data
    from napari_atomdefect._writer import write_points_csv
    from napari_atomdefect.widgets._common import image_file_name

    for name in ("scan10", "scan14"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((120, 120), np.float32))
    viewer = make_napari_viewer()
    [image] = viewer.open(str(tmp_path / "scan10.tif"), plugin="napari-atomdefect")
    table = pd.DataFrame({"y_px": [20.0], "x_px": [30.0], "class": ["V_S"],
                          "confidence": [0.9], "source": "model"})
    kwargs = defect_layer_kwargs(table, None, "scan10 defects")
    kwargs["metadata"]["atomdefect"].update(image=image.name, image_file=image_file_name(image))
    layer = viewer.add_points(defect_points_data(table), **kwargs)
    viewer.window.add_plugin_dock_widget("napari-atomdefect", "Review and correct")
    image.name = "R10 renamed"
    assert layer.metadata["atomdefect"]["image"] == "R10 renamed"
    write_points_csv(str(tmp_path / "a.csv"), layer.data, {
        "features": layer.features, "scale": layer.scale, "units": layer.units,
        "metadata": layer.metadata})
    assert set(pd.read_csv(tmp_path / "a.csv")["image"]) == {"scan10"}

    fresh = make_napari_viewer()
    for name in ("scan10", "scan14"):
        fresh.open(str(tmp_path / f"{name}.tif"), plugin="napari-atomdefect")
    [reopened] = fresh.open(str(tmp_path / "a.csv"), plugin="napari-atomdefect")
    assert reopened.metadata["atomdefect"]["image"] == "scan10"
    fresh.layers.remove("scan10")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        fresh.open(str(tmp_path / "a.csv"), plugin="napari-atomdefect")
    assert any("names its image scan10, which is not open: it is drawn on scan14"
               in str(w.message) for w in said)
