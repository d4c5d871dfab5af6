"""Review, statistics and export widgets on a detections layer, in a real (Xvfb) viewer."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect._layers import defect_layer_kwargs
from napari_atomdefect.core.export import read_defects_csv
from napari_atomdefect.widgets.review import ReviewWidget
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


def test_add_delete_reclassify_keep_features_consistent(viewer_and_layer):
    viewer, layer = viewer_and_layer
    review = ReviewWidget(viewer)
    assert review.layer() is layer
    review.add_defect([100.0, 120.0], cls="V_Mo")
    assert len(layer.data) == 13 and len(layer.features) == 13
    new = layer.features.iloc[-1]
    assert (new["class"], new["source"], new["confidence"]) == ("V_Mo", "manual", 1.0)
    layer.selected_data = {0, 1}
    review.class_combo.setCurrentText("O_S")
    review.set_selected_class()
    assert list(layer.features["class"].iloc[:2]) == ["O_S", "O_S"]
    assert list(layer.features["source"].iloc[:2].astype(str)) == ["manual", "manual"]
    layer.selected_data = {2}
    review.delete_selected()
    assert len(layer.data) == 12 == len(layer.features)
    # Colours follow the class after every edit.
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_atomdefect._layers import CLASS_COLORS

    for cls, colour in zip(layer.features["class"], layer.face_color, strict=True):
        np.testing.assert_allclose(colour, transform_color(CLASS_COLORS[cls])[0], atol=1e-3)


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


def test_defect_statistics_without_sites():
    s = defect_statistics(pd.Series(["V_S", "V_Mo"]), None, None, None)
    assert s.loc["V_S", "count"] == 1 and np.isnan(s.loc["V_S", "per_site"])
