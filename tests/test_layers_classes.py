"""Class categories, colours and symbols of defect layers for every host material (#13)."""

import numpy as np
import pandas as pd

from napari_atomdefect._layers import defect_layer_kwargs, table_classes
from napari_atomdefect.core.io.class_style import class_color, class_rgb, class_symbol


def _table(classes, attrs_classes=None):
    n = len(classes)
    table = pd.DataFrame({"y_px": [10.0 * k for k in range(n)], "x_px": [5.0] * n,
                          "class": classes, "confidence": [0.9] * n, "source": "model"})
    if attrs_classes is not None:
        table.attrs["classes"] = tuple(attrs_classes)
    return table


def test_classes_from_the_run_attrs_in_channel_order():
    table = _table(["V_W", "Se_S"], ["V_S", "V_S2", "Se_S", "Se2_S2", "V_W"])
    assert table_classes(table) == ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")


def test_classes_of_a_reopened_csv():
    # Legacy MoS2 names: the four legacy classes in their order, even if some are absent.
    assert table_classes(_table(["V_Mo", "V_S"])) == ("V_S", "V_S2", "O_S", "V_Mo")
    # WS2 names: the WS2 classes with the substituents seen (vacancies always).
    assert table_classes(_table(["Se2_S2", "V_W", "V_S"])) == ("V_S", "V_S2", "Se_S",
                                                               "Se2_S2", "V_W")
    # Names of several selenides: the known names present; an unknown name kept, last.
    assert table_classes(_table(["Te_Se", "V_Se", "blob"])) == ("V_Se", "Te_Se", "blob")


def test_layer_kwargs_colour_symbol_and_metadata_per_class():
    table = _table(["Se_S", "Se2_S2", "V_W", "V_S"], ["V_S", "V_S2", "Se_S", "Se2_S2", "V_W"])
    kw = defect_layer_kwargs(table, 0.0125, "ws2")
    assert kw["metadata"]["atomdefect"]["classes"] == ["V_S", "V_S2", "Se_S", "Se2_S2", "V_W"]
    assert list(kw["features"]["class"].cat.categories) == kw["metadata"]["atomdefect"]["classes"]
    assert kw["border_color_cycle"] == {c: class_color(c) for c in
                                        ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")}
    assert kw["border_color_cycle"]["Se_S"] == "#ff4dff" and kw["border_color_cycle"]["V_W"] == "#33ff33"
    # two substituents: a paler tint of the single one's colour (each channel nearer white)
    for one, two in (("Se_S", "Se2_S2"), ("S_Se", "S2_Se2"), ("Te_Se", "Te2_Se2")):
        rgb1, rgb2 = (np.array(class_rgb(c)) for c in (one, two))
        assert (rgb2 >= rgb1).all() and (rgb2 > rgb1).any()
    assert kw["symbol"] == ["diamond", "star", "triangle_up", "disc"]
    assert kw["symbol"] == [class_symbol(c) for c in table["class"]]


def test_lattice_site_outlines_use_no_class_colour():
    """The sites layer lies under the defect markers: its greys must not read as a class."""
    from napari_atomdefect._layers import SITE_COLORS
    from napari_atomdefect.core.io.class_style import hex_rgb
    from napari_atomdefect.core.materials.columns import class_names

    for site in SITE_COLORS.values():  # a grey: no hue of its own
        assert np.ptp(hex_rgb(site)) < 0.05
    for material in ("MoS2", "WS2", "MoSe2", "WSe2"):  # every class has one, pale tints too
        for name in class_names(material):
            assert np.ptp(class_rgb(name)) > 0.25, name


def test_a_lighter_and_a_heavier_substituent_differ_by_shape():
    """New-user trial, twenty-sixth session: O_S and Se_S (WS2 with Se and O, a common choice)
    were both diamonds, told apart by colour only. One substituent lighter than the host
    chalcogen is a downward triangle; a heavier one stays a diamond; every symbol has a glyph
    for the legends."""
    from napari_atomdefect.core.io.class_style import SYMBOL_GLYPHS

    assert class_symbol("O_S") == class_symbol("S_Se") == "triangle_down"
    assert class_symbol("Se_S") == class_symbol("Te_Se") == "diamond"
    assert class_symbol("Se2_S2") == class_symbol("S2_Se2") == "star"
    ws2 = ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_W")
    assert len({class_symbol(c) for c in ws2}) == len(ws2)
    wse2 = ("V_Se", "V_Se2", "S_Se", "Te_Se", "V_W")
    assert len({class_symbol(c) for c in wse2}) == len(wse2)
    assert all(class_symbol(c) in SYMBOL_GLYPHS for c in ws2 + wse2)
