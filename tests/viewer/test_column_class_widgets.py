"""Layers and widgets for column-composition classes of any host material (issue #13)."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect._layers import defect_layer_kwargs
from napari_atomdefect.core.io.class_style import SYMBOL_GLYPHS, class_color, class_symbol
from napari_atomdefect.widgets.review import ReviewWidget
from napari_atomdefect.widgets.stats import StatsWidget

pytestmark = pytest.mark.viewer

WS2_CLASSES = ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
WS2_ROWS = ["Se_S"] * 4 + ["Se2_S2"] * 2 + ["V_W"] * 3 + ["V_S"] * 1


def _ws2_table(attrs: bool = True) -> pd.DataFrame:
    n = len(WS2_ROWS)
    table = pd.DataFrame({"y_px": np.linspace(20, 300, n), "x_px": np.linspace(30, 200, n),
                          "class": WS2_ROWS, "confidence": np.linspace(0.5, 0.99, n),
                          "source": "model"})
    if attrs:
        table.attrs["classes"] = WS2_CLASSES
    return table


def _add_ws2_layer(viewer, attrs: bool = True):
    kwargs = defect_layer_kwargs(_ws2_table(attrs), 0.0125, "ws2 defects", a_px=25.3)
    kwargs["metadata"]["atomdefect"].update(n_metal_sites=500, n_chalcogen_sites=500,
                                            area_nm2=40.0)
    return viewer.add_points(_ws2_table()[["y_px", "x_px"]].to_numpy(), **kwargs)


def test_ws2_layer_categories_colours_symbols(make_napari_viewer):
    from napari.utils.colormaps.standardize_color import transform_color

    viewer = make_napari_viewer()
    layer = _add_ws2_layer(viewer)
    assert tuple(layer.features["class"].cat.categories) == WS2_CLASSES
    assert tuple(layer.metadata["atomdefect"]["classes"]) == WS2_CLASSES
    for cls, colour in zip(WS2_ROWS, layer.border_color, strict=True):
        np.testing.assert_allclose(colour, transform_color(class_color(cls))[0], atol=1e-3)
    symbols = [str(getattr(s, "value", s)) for s in layer.symbol]
    assert symbols == [class_symbol(c) for c in WS2_ROWS]
    assert symbols[0] == "diamond" and symbols[4] == "star" and symbols[6] == "triangle_up"


def test_review_offers_the_layer_classes(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = _add_ws2_layer(viewer)
    review = ReviewWidget(viewer)
    assert review.classes() == WS2_CLASSES
    assert "Keys 1–5" in review.keys_label.text()
    entries = review.legend.entries()
    assert [e[2] for e in entries] == [f"{k + 1}: {c}" for k, c in enumerate(WS2_CLASSES)]
    assert [e[1] for e in entries] == [class_color(c) for c in WS2_CLASSES]
    assert [e[0] for e in entries] == [SYMBOL_GLYPHS[class_symbol(c)] for c in WS2_CLASSES]
    # Key 4 is Se2_S2 here (it was V_Mo for MoS2).
    layer.selected_data = {9}
    keys = {str(k): func for k, func in layer.keymap.items()}
    assert {"1", "2", "3", "4", "5"} <= set(keys)
    keys["4"](layer)  # what pressing "4" does
    assert layer.features["class"].iloc[9] == "Se2_S2"
    assert str(getattr(layer.symbol[9], "value", layer.symbol[9])) == "star"
    # A manual point is one of those classes, with its symbol.
    review.add_defect([100.0, 100.0], cls="V_W")
    assert layer.features["class"].iloc[-1] == "V_W"
    assert str(getattr(layer.symbol[-1], "value", layer.symbol[-1])) == "triangle_up"
    assert tuple(layer.features["class"].cat.categories) == WS2_CLASSES


def test_review_switches_classes_with_the_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    ws2 = _add_ws2_layer(viewer)
    table = pd.DataFrame({"y_px": [10.0], "x_px": [10.0], "class": ["V_Mo"],
                          "confidence": [0.9], "source": "model"})
    viewer.add_points(table[["y_px", "x_px"]].to_numpy(),
                      **defect_layer_kwargs(table, 0.012, "mos2 defects"))
    review = ReviewWidget(viewer)
    assert review.classes() == ("V_S", "V_S2", "O_S", "V_Mo")
    review.layer_combo.setCurrentText(ws2.name)
    assert review.classes() == WS2_CLASSES
    assert [e[2] for e in review.legend.entries()][-1] == "5: V_W"


@pytest.mark.parametrize("attrs", [True, False], ids=["detected", "reopened-csv"])
def test_statistics_rows_are_the_layer_classes(make_napari_viewer, attrs):
    viewer = make_napari_viewer()
    layer = _add_ws2_layer(viewer, attrs=attrs)
    stats = StatsWidget(viewer)
    assert stats.row_labels() == list(WS2_CLASSES)
    counts = {c: WS2_ROWS.count(c) for c in WS2_CLASSES}
    assert [stats.table.item(r, 0).text() for r in range(5)] == [str(counts[c])
                                                                 for c in WS2_CLASSES]
    assert stats.chart.values == counts
    s = stats.statistics()
    assert s.loc["V_W", "per_site"] == pytest.approx(3 / 500)
    assert s.loc["Se2_S2", "per_site"] == pytest.approx(2 * 2 / 1000)
    assert s.loc["Se_S", "per_site"] == pytest.approx(4 / 1000)
    assert "Se2_S2 count two" in stats.note.text() and "V_W" in stats.note.text()
    layer.selected_data = {0}
    layer.remove_selected()
    assert stats.table.item(2, 0).text() == "3"  # Se_S, live


def test_statistics_say_which_classes_the_detection_could_not_tell_apart(make_napari_viewer):
    """A pair the detection found overlapping (``class_overlaps`` of the layer) is named under
    the table with the pair's current sum, which follows the user's edits."""
    viewer = make_napari_viewer()
    layer = _add_ws2_layer(viewer)
    layer.metadata["atomdefect"]["class_overlaps"] = [["V_S", "Se_S"]]
    stats = StatsWidget(viewer)
    assert stats.overlap_note.text() == (
        "† V_S and Se_S overlap in this image: their 5 columns each hold one S atom — that is "
        "sure; whether the other site holds Se or is empty is not.")
    # above the table it explains, where a stacked dock shows it (at the end of the note under
    # the table it was out of view: a trial)
    layout = stats.table.parentWidget().layout()
    assert layout.indexOf(stats.overlap_note) + 1 == layout.indexOf(stats.table)
    assert not stats.overlap_note.isHidden() and "overlap" not in stats.note.text()
    # The pair's rows are marked where the figures are, with the reason as a tooltip.
    rows = {stats.table.verticalHeaderItem(r).text(): r for r in range(stats.table.rowCount())}
    marked = {c for c, r in rows.items() if stats.table.item(r, 0).text().endswith(" †")}
    assert marked == {"V_S", "Se_S"}
    assert "Se_S" in stats.table.item(rows["V_S"], 0).toolTip()
    assert "holds one S atom; whether the other site holds Se or is empty" in \
        stats.table.item(rows["V_S"], 0).toolTip()
    layer.selected_data = {0}  # an Se_S
    layer.remove_selected()
    assert "their 4 columns each hold one S atom" in stats.overlap_note.text()
    # A pair with one side never called (every O_S called V_S: a one-sided split) shows that
    # side as 0, not "≈ 0", which read as "about no O_S" (second new-user trial). The mark
    # follows the figure ("≈" before it had read as an estimate of the count).
    layer.metadata["atomdefect"]["class_overlaps"] = [["V_S", "V_W"]]
    layer.selected_data = set(np.flatnonzero(layer.features["class"].astype(str) == "V_W"))
    layer.remove_selected()
    stats.update_stats()
    assert stats.table.item(rows["V_W"], 0).text() == "0"
    assert stats.table.item(rows["V_S"], 0).text().endswith(" †")
    assert "V_S" in stats.table.item(rows["V_W"], 0).toolTip()
    layer.metadata["atomdefect"]["class_overlaps"] = []
    stats.update_stats()
    assert stats.overlap_note.isHidden() and not stats.overlap_note.text()
    assert not any(stats.table.item(r, 0).text().endswith(" †")
                   for r in range(stats.table.rowCount()))


@pytest.mark.parametrize("width", [700, 300], ids=["wide", "narrow-with-scroll-bar"])
def test_statistics_table_is_not_covered_by_the_chart(make_napari_viewer, qtbot, width):
    """The last row of the table is fully visible: not under the bar chart, nor under the
    horizontal scroll bar of a narrow dock."""
    viewer = make_napari_viewer()
    _add_ws2_layer(viewer)
    stats = StatsWidget(viewer)
    stats.resize(width, 900)
    stats.show()
    qtbot.waitExposed(stats)
    table = stats.table
    last = table.rowCount() - 1
    assert stats.row_labels()[last] == "V_W"
    row_bottom = table.verticalHeader().sectionViewportPosition(last) + table.rowHeight(last)
    assert row_bottom <= table.viewport().height()  # inside the visible part of the table
    assert table.verticalScrollBar().maximum() == 0  # nothing to scroll to
    assert table.geometry().bottom() < stats.chart.geometry().top()


def test_per_frame_plot_of_a_movie_with_new_classes(make_napari_viewer):
    viewer = make_napari_viewer()
    table = pd.DataFrame({"frame": [0, 0, 1, 2, 2, 2], "y_px": np.arange(6.0) * 10,
                          "x_px": np.arange(6.0) * 5,
                          "class": ["Se_S", "V_W", "Se_S", "Se2_S2", "Se_S", "V_S"],
                          "confidence": 0.9, "source": "model", "track_id": -1})
    kwargs = defect_layer_kwargs(table, 0.0125, "movie defects", a_px=25.3)
    kwargs["metadata"]["atomdefect"].update(n_frames=3, movie=True)
    viewer.add_points(table[["frame", "y_px", "x_px"]].to_numpy(), **kwargs)
    stats = StatsWidget(viewer)
    counts = stats.per_frame()
    assert list(counts.columns) == ["V_S", "V_S2", "Se_S", "Se2_S2", "V_W"]
    assert counts["Se_S"].tolist() == [1, 1, 1] and counts["V_W"].tolist() == [1, 0, 0]
    assert list(stats.frame_plot.series) == list(counts.columns)
    assert stats.frame_plot.legend_entries() == [(c, class_color(c)) for c in counts.columns]
    # Se2_S2 shares Se_S's colour: its line (and legend line) is dashed.
    from qtpy.QtCore import Qt

    from napari_atomdefect.widgets.stats import _class_pen

    assert _class_pen("Se2_S2").style() == Qt.PenStyle.DashLine
    assert _class_pen("Se_S").style() == Qt.PenStyle.SolidLine
    headers = [stats.frame_table.horizontalHeaderItem(k).text()
               for k in range(stats.frame_table.columnCount())]
    assert headers == list(counts.columns)


def _user_model(root, name, material, classes, substituents):
    import json

    folder = root / name
    folder.mkdir(parents=True)
    card = {"name": name, "material": material,
            "detector": {"classes": list(classes), "substituents": list(substituents)}}
    (folder / "card.json").write_text(json.dumps(card))


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    import json

    from napari_atomdefect.core.materials.columns import class_names

    root = tmp_path / "models"
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(root))
    _user_model(root, "mos2-all", "MoS2", class_names("MoS2"), ("O", "Se"))
    _user_model(root, "wse2-all", "WSe2", class_names("WSe2"), ("S", "Te"))
    _user_model(root, "wse2-s", "WSe2", class_names("WSe2", ("S",)), ("S",))
    # A MoS2 model from before the column classes: no material, classes or substituents.
    (root / "mos2-legacy").mkdir()
    (root / "mos2-legacy" / "card.json").write_text(json.dumps({"name": "mos2-legacy",
                                                                "detector": {}}))
    return root


def _boxes(widget):
    return {d: (box.isEnabled(), box.isChecked()) for d, box in widget.substituent_checks.items()}


def test_substituent_boxes_follow_material_and_model(make_napari_viewer, user_models):
    from napari_atomdefect.widgets.detect import DetectWidget

    viewer = make_napari_viewer()
    widget = DetectWidget(viewer)
    assert widget.material.currentText() == "MoS2"
    assert widget.model.currentData() == "mos2-default"
    # The bundled MoS2 model knows O and Se; the default substituents (O) are checked.
    assert _boxes(widget) == {"O": (True, True), "Se": (True, False), "W": (True, False),
                             "Mo": (True, False)}
    assert widget.run_classes() == ("V_S", "V_S2", "O_S", "V_Mo")
    assert tuple(widget.operating_spins) == ("V_S", "V_S2", "O_S", "V_Mo")
    # A legacy MoS2 model knows O only: Se is offered but disabled.
    widget.model.setCurrentIndex(widget.model.findData("mos2-legacy"))
    assert _boxes(widget) == {"O": (True, True), "Se": (False, False), "W": (True, False),
                             "Mo": (True, False)}
    assert widget.run_classes() == ("V_S", "V_S2", "O_S", "V_Mo")
    assert tuple(widget.operating_spins) == ("V_S", "V_S2", "O_S", "V_Mo")
    # Looking for Se with the bundled default: the MoS2 alloy detector takes over, and gives
    # way again when Se is unticked; a model the user chose stays.
    widget.model.setCurrentIndex(widget.model.findData("mos2-default"))
    widget.substituent_checks["Se"].setChecked(True)
    assert widget.model.currentData() == "mos2-alloy"
    assert tuple(widget.operating_spins) == ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_Mo")
    widget.substituent_checks["Se"].setChecked(False)
    assert widget.model.currentData() == "mos2-default"
    widget.model.setCurrentIndex(widget.model.findData("mos2-all"))
    assert _boxes(widget) == {"O": (True, True), "Se": (True, False), "W": (True, False),
                             "Mo": (True, False)}
    widget.substituent_checks["Se"].setChecked(True)
    assert widget.substituents() == ("O", "Se")
    assert tuple(widget.operating_spins) == ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_Mo")
    assert [e[2] for e in widget.legend.entries()] == list(widget.operating_spins)
    widget.substituent_checks["O"].setChecked(False)
    assert tuple(widget.operating_spins) == ("V_S", "V_S2", "Se_S", "Se2_S2", "V_Mo")

    widget.material.setCurrentText("WSe2")
    assert list(widget.substituent_checks) == ["S", "Te", "Mo", "W"]
    assert widget.model.currentData() == "wse2-default"
    assert _boxes(widget) == {"S": (True, True), "Te": (True, False), "Mo": (True, False),
                             "W": (True, False)}
    assert widget.run_classes() == ("V_Se", "V_Se2", "S_Se", "S2_Se2", "V_W")
    # A WSe2 model trained without Te: Te is offered but disabled.
    widget.model.setCurrentIndex(widget.model.findData("wse2-s"))
    assert _boxes(widget) == {"S": (True, True), "Te": (False, False), "Mo": (True, False),
                             "W": (True, False)}
    assert widget.run_classes() == ("V_Se", "V_Se2", "S_Se", "S2_Se2", "V_W")
    # A model of another material: the boxes are shown, none can be changed (but the other
    # metal's: its columns are called from their brightness, no model needed).
    widget.model.setCurrentIndex(widget.model.findData("mos2-default"))
    assert _boxes(widget) == {"S": (False, True), "Te": (False, False), "Mo": (True, False),
                             "W": (True, False)}
    widget.model.setCurrentIndex(widget.model.findData("wse2-all"))
    assert _boxes(widget) == {"S": (True, True), "Te": (True, False), "Mo": (True, False),
                             "W": (True, False)}
    widget.substituent_checks["Te"].setChecked(True)
    assert widget.run_classes() == ("V_Se", "V_Se2", "S_Se", "S2_Se2", "Te_Se", "Te2_Se2", "V_W")
    widget.material.setCurrentText("MoS2")
    assert list(widget.substituent_checks) == ["O", "Se", "W", "Mo"]


def test_chosen_substituents_reach_the_detection(make_napari_viewer, user_models, qtbot,
                                                 monkeypatch):
    from napari_atomdefect.core.detect import detect as detect_module
    from napari_atomdefect.core.errors import AtomDefectError
    from napari_atomdefect.widgets.detect import DetectWidget
    from tests.viewer.helpers import wait_idle

    calls = []

    def fake_iter_detect(image, pixel_size_nm=None, material="MoS2", model=None,
                         device="auto", calibration="user", lattice=None, batch_size=1024,
                         operating_point=None, substituents=None, region=None):
        calls.append({"material": material, "model": model, "substituents": substituents,
                      "operating_point": operating_point})
        raise AtomDefectError("Stopped by the test.")

    monkeypatch.setattr(detect_module, "iter_detect", fake_iter_detect)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.float32), name="img", scale=(0.0125, 0.0125),
                     units=("nm", "nm"))
    widget = DetectWidget(viewer)
    widget.model.setCurrentIndex(widget.model.findData("mos2-all"))
    widget.substituent_checks["Se"].setChecked(True)
    widget.substituent_checks["O"].setChecked(False)
    widget.operating_group.setChecked(True)
    widget.operating_spins["Se_S"].setValue(0.8)
    widget.detect()
    wait_idle(qtbot, widget, timeout=30_000)
    assert widget.status.text() == "Stopped by the test."
    [call] = calls
    assert call["material"] == "MoS2" and call["model"] == "mos2-all"
    assert list(call["substituents"]) == ["Se"]
    assert call["operating_point"] == {"V_S": 0.5, "V_S2": 0.5, "Se_S": 0.8, "Se2_S2": 0.5,
                                       "V_Mo": 0.5}


def test_a_user_model_that_kept_its_base_detector_says_so_in_the_model_list(
        make_napari_viewer, tmp_path, monkeypatch):
    """A user's trial: a fine-tuned model that had kept the base detector looked like a
    fine-tuned one in Detect's list, and re-detecting with it gave the same calls."""
    from napari_atomdefect.widgets.detect import DetectWidget

    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    _bias_only_ws2_model(tmp_path / "models" / "tuned")
    _bias_only_ws2_model(tmp_path / "models" / "kept", kept_base=True)
    widget = DetectWidget(make_napari_viewer())
    labels = {widget.model.itemData(i): widget.model.itemText(i)
              for i in range(widget.model.count())}
    assert labels["tuned"] == "tuned (user)"
    assert labels["kept"] == "kept (user, base detector kept)"
    widget.model.setCurrentIndex(widget.model.findData("kept"))
    widget.refresh_models()  # the choice survives a refresh
    assert widget.model.currentData() == "kept"


def _bias_only_ws2_model(folder, kept_base: bool = False):
    """A WS2 detector whose output is its final-layer bias (head weights zero): every chalcogen
    column is Se_S when Se is allowed, else O_S; metal columns stay pristine. ``kept_base``:
    its card says a fine-tuning kept its base detector."""
    import torch

    from napari_atomdefect.core.materials.columns import class_names, segment_classes
    from napari_atomdefect.core.models import registry

    classes = class_names("WS2")
    bias = {"background": 0.0, "metal": 3.0, "chalcogen": 1.0, "O_S": 2.0, "Se_S": 4.0}
    card = {"name": folder.name, "material": "WS2",
            "detector": {"architecture": {"in_channels": 1,
                                          "n_classes": len(segment_classes(classes)),
                                          "width": 4},
                         "tile": {"size_px": 24, "extent_a": 1.5}, "temperature": 1.0,
                         "classes": list(classes), "substituents": ["O", "Se"]}}
    if kept_base:
        card["detector"]["training"] = {"fine_tuned_from": "ws2-default",
                                        "kept_base_detector": True}
    net = registry.build_detector(card)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([bias.get(c, 0.0) for c in segment_classes(classes)]))
    return registry.write_model(folder, card, detector=net.eval())


def test_detect_widget_runs_the_chosen_substituents(make_napari_viewer, qtbot, tmp_path,
                                                    monkeypatch, detector_calls_stand):
    """End to end: a WS2 model, Se ticked → Se classes in the layer, the Review box and the
    Statistics rows; O ticked instead → never Se_S: the Se-looking columns are host columns for
    that run (the excluded classes' probability goes to the pristine column), so nothing is
    flagged. (The stand-in model calls every column Se_S, which the ladder reads as the host:
    its calls stand, ``detector_calls_stand``.)"""
    from napari_atomdefect.core.simulate.image import simulate_image
    from napari_atomdefect.widgets.detect import DetectWidget
    from tests.viewer.helpers import layers_of, wait_idle

    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    _bias_only_ws2_model(tmp_path / "models" / "ws2-bias")
    sim = simulate_image("WS2", 192, 0.012, seed=3, dose_e_per_A2=3e5)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="ws2", scale=(0.012, 0.012), units=("nm", "nm"))
    widget = DetectWidget(viewer)
    widget.material.setCurrentText("WS2")
    widget.model.setCurrentIndex(widget.model.findData("ws2-bias"))
    assert _boxes(widget) == {"O": (True, True), "Se": (True, False), "Mo": (True, False),
                              "W": (True, False)}
    widget.substituent_checks["Se"].setChecked(True)
    widget.substituent_checks["O"].setChecked(False)
    assert tuple(widget.operating_spins) == ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
    widget.run_all()
    wait_idle(qtbot, widget)
    [se] = layers_of(viewer, "detections")
    assert tuple(se.metadata["atomdefect"]["classes"]) == ("V_S", "V_S2", "Se_S", "Se2_S2",
                                                           "V_W")
    n_chalcogen = se.metadata["atomdefect"]["n_chalcogen_sites"]
    assert n_chalcogen > 50
    # The ladder reading travels with the layer: a pristine WS2 image, median column a host one.
    ladder = se.metadata["atomdefect"]["ladder"]
    assert ladder["median_class"] == "chalcogen" and abs(ladder["host_level"] - 1) < 0.1
    assert se.features["class"].astype(str).value_counts().to_dict() == {"Se_S": n_chalcogen}
    assert f"Se_S: {n_chalcogen}" in widget.status.text()
    review, stats = ReviewWidget(viewer), StatsWidget(viewer)
    assert review.classes() == ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
    assert stats.row_labels() == list(review.classes())
    assert stats.table.item(2, 0).text() == str(n_chalcogen)

    widget.substituent_checks["Se"].setChecked(False)
    widget.substituent_checks["O"].setChecked(True)
    widget.detect()
    wait_idle(qtbot, widget)
    o = layers_of(viewer, "detections")[-1]
    assert tuple(o.metadata["atomdefect"]["classes"]) == ("V_S", "V_S2", "O_S", "V_W")
    assert len(o.data) == 0  # Se mass (54.6) + pristine (2.7) outweighs O_S (7.4)
    assert review.classes() == ("V_S", "V_S2", "O_S", "V_W")  # followed the new layer


def test_the_w_box_marks_the_w_columns_of_a_mo_w_alloy(make_napari_viewer, qtbot):
    """MoS2 with W ticked: a Mo0.7W0.3S2 layer's W columns become W_Mo markers (× in the W
    colour) beside the chalcogen defects; the dock says the alloy; Statistics counts them."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
    from napari_atomdefect.widgets.detect import DetectWidget
    from tests.viewer.helpers import layers_of, wait_idle

    params = MicroscopeParams.random(np.random.default_rng(31), "MoS2", dose_e_per_A2=4e5)
    sim = simulate_image("MoS2", 256, 0.012, params=params, seed=31, metal_alloy=0.3)
    viewer = make_napari_viewer()
    viewer.add_image(sim.image, name="mows2", scale=(0.012, 0.012), units=("nm", "nm"))
    widget = DetectWidget(viewer)
    widget.substituent_checks["W"].setChecked(True)
    assert widget.run_classes() == ("V_S", "V_S2", "O_S", "V_Mo", "W_Mo")
    widget.run_all()
    wait_idle(qtbot, widget)
    [layer] = layers_of(viewer, "detections")
    classes = layer.features["class"].astype(str)
    n_w = int((sim.sites.metal_atom == "W").sum())
    assert abs(int((classes == "W_Mo").sum()) - n_w) <= max(2, 0.05 * n_w)
    symbols = [str(getattr(s, "value", s)) for s in layer.symbol]
    assert {sym for sym, c in zip(symbols, classes, strict=True) if c == "W_Mo"} == {"x"}
    # the W share is part of the result (the status line), not a warning
    assert "Mo/W alloy: marked W_Mo" in widget.status.text()
    assert "Mo/W" not in widget.fit_label.text()
    stats = StatsWidget(viewer)
    row = stats.row_labels().index("W_Mo")
    assert stats.table.item(row, 0).text() == str(int((classes == "W_Mo").sum()))


def test_substituent_ticks_survive_a_material_round_trip(make_napari_viewer):
    """Ticking Se in WS2, switching to WSe2 and back keeps Se ticked (the trial lost it)."""
    from napari_atomdefect.widgets.detect import DetectWidget

    widget = DetectWidget(make_napari_viewer())
    widget.material.setCurrentText("WS2")
    widget.substituent_checks["Se"].setChecked(True)
    widget.material.setCurrentText("WSe2")
    assert {d: b.isChecked() for d, b in widget.substituent_checks.items()} == {
        "S": True, "Te": False, "Mo": False, "W": False}
    widget.material.setCurrentText("WS2")
    assert {d: b.isChecked() for d, b in widget.substituent_checks.items()} == {
        "O": True, "Se": True, "Mo": False, "W": False}


def test_an_overlapping_pair_with_no_call_left_is_not_named():
    """Trial, twenty-fifth session: with every O_S hidden below a confidence the note still said
    "their sum (0) is not" uncertain."""
    import pandas as pd

    from napari_atomdefect.widgets.stats import _overlap_note

    stats = pd.DataFrame({"count": [0, 0, 4]}, index=["V_S", "O_S", "Se_S"])
    assert _overlap_note([["V_S", "O_S"]], stats) == ""
    stats.loc["V_S", "count"] = 3
    assert "their 3 columns each hold one S atom" in _overlap_note([["V_S", "O_S"]], stats)
    # a pair of other kinds keeps the sum's words
    stats.loc["Se_S", "count"] = 2
    stats.loc["Se2_S2"] = 1
    assert "their split is uncertain while their sum (3) is not" in _overlap_note(
        [["Se_S", "Se2_S2"]], stats)


def test_statistics_without_a_defect_layer_show_no_rows_of_another_material(make_napari_viewer):
    """Opened before any detection, the dock showed MoS2's class rows, empty, to a trial
    analysing WS2; a deleted layer left its figures. Now: no rows and a sentence saying what
    fills the table."""
    viewer = make_napari_viewer()
    stats = StatsWidget(viewer)
    assert stats.table.rowCount() == 0 and stats.note.text().startswith("No defect layer yet")
    assert not stats.chart.isVisibleTo(stats)
    layer = _add_ws2_layer(viewer)
    stats.layer_combo.setCurrentText(layer.name)
    stats.update_stats()
    assert stats.row_labels() == list(WS2_CLASSES) and stats.chart.isVisibleTo(stats)
    viewer.layers.remove(layer)
    stats.update_stats()
    assert stats.table.rowCount() == 0 and stats.note.text().startswith("No defect layer yet")
    assert stats.chart.values == {} and not stats.chart.isVisibleTo(stats)
