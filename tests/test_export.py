"""Defect CSV: schema, atomic writes, exact round trips through the npe2 writer and reader."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_atomdefect._reader import get_reader
from napari_atomdefect._writer import write_points_csv
from napari_atomdefect.core.io.table import (
    DEFECT_COLUMNS,
    defects_table,
    read_defects_csv,
    table_from_points,
    with_run_columns,
    write_csv_atomic,
)
from napari_atomdefect.core.materials.columns import LEGACY_CLASSES as DEFECT_CLASSES

coords = arrays(np.float64, st.tuples(st.integers(0, 30), st.just(2)),
                elements=st.floats(-5, 5000, allow_nan=False, width=64))


@settings(max_examples=40, deadline=None)
@given(data=coords, px=st.floats(0.001, 0.1), seed=st.integers(0, 1000))
def test_writer_reader_round_trip_exact(tmp_path_factory, data, px, seed):
    rng = np.random.default_rng(seed)
    n = len(data)
    features = pd.DataFrame({
        "class": pd.Categorical(rng.choice(DEFECT_CLASSES, n), categories=list(DEFECT_CLASSES)),
        "confidence": rng.random(n),
        "source": pd.Categorical(rng.choice(["model", "manual"], n)),
    })
    path = tmp_path_factory.mktemp("rt") / "defects.csv"
    meta = {"features": features, "scale": (px, px), "units": ("nm", "nm"), "metadata": {}}
    written = write_points_csv(str(path), data, meta)
    assert written == [str(path)]
    reader = get_reader(str(path))
    assert reader is not None
    [(data2, kwargs, kind)] = reader(str(path))
    assert kind == "points"
    np.testing.assert_array_equal(data2, data)
    f2 = kwargs["features"]
    assert list(f2["class"].astype(str)) == list(features["class"].astype(str))
    np.testing.assert_array_equal(f2["confidence"].to_numpy(), features["confidence"].to_numpy())
    assert list(f2["source"].astype(str)) == list(features["source"].astype(str))
    if (np.abs(data) > 1).any():  # the scale is implied by nm / px
        assert kwargs["scale"][0] == pytest.approx(px, rel=1e-9)


def test_schema_and_units(tmp_path):
    table = table_from_points(np.array([[10.0, 20.0]]),
                              pd.DataFrame({"class": ["V_Mo"], "confidence": [0.7],
                                            "source": ["manual"]}), 0.01)
    assert list(table.columns) == DEFECT_COLUMNS
    assert table.y_nm[0] == pytest.approx(0.1) and table.x_nm[0] == pytest.approx(0.2)
    write_csv_atomic(table, tmp_path / "t.csv", float_format=None)
    assert read_defects_csv(tmp_path / "t.csv").equals(table)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    good = table_from_points(np.zeros((2, 2)), pd.DataFrame(), 0.01)
    write_csv_atomic(good, path)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        write_csv_atomic(good, path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary left behind


def test_other_csv_is_not_claimed(tmp_path):
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert get_reader(str(tmp_path / "other.csv")) is None


def test_a_layer_saved_by_naparis_points_writer_reads_back(tmp_path):
    """Trial, twenty-ninth session: File > Save Selected Layer(s) offers napari's own points
    writer first; its CSV (``index, axis-0, axis-1`` and the features) was refused by the
    reader and by ``atomdefect evaluate``. Its pixel coordinates and classes read back (a movie's
    ``axis-0`` is its frame); other CSVs with axis columns but no class are not claimed."""
    (tmp_path / "still.csv").write_text("index,axis-0,axis-1,class,confidence,source,track_id\n"
                                        "0,10.0,20.5,V_S,0.9,model,-1\n1,200.0,30.0,O_S,0.6,manual,-1\n")
    assert get_reader(str(tmp_path / "still.csv")) is not None
    table = read_defects_csv(tmp_path / "still.csv")
    np.testing.assert_allclose(table[["y_px", "x_px"]], [[10.0, 20.5], [200.0, 30.0]])
    assert list(table["class"]) == ["V_S", "O_S"] and list(table["source"]) == ["model", "manual"]
    np.testing.assert_allclose(table["confidence"], [0.9, 0.6])
    assert table[["y_nm", "x_nm"]].isna().all().all()
    (tmp_path / "movie.csv").write_text("index,axis-0,axis-1,axis-2,class,confidence,track_id\n"
                                        "0,3.0,10.0,20.0,V_S,0.9,4\n1,4.0,11.0,21.0,V_S,0.8,4\n")
    movie = read_defects_csv(tmp_path / "movie.csv")
    assert list(movie["frame"]) == [3, 4] and list(movie["track_id"]) == [4, 4]
    np.testing.assert_allclose(movie[["y_px", "x_px"]], [[10.0, 20.0], [11.0, 21.0]])
    (tmp_path / "shapes.csv").write_text("index,axis-0,axis-1\n0,1.0,2.0\n")
    assert get_reader(str(tmp_path / "shapes.csv")) is None


def test_pixel_size_from_table_uses_coordinates_away_from_zero():
    from napari_atomdefect.core.io.table import pixel_size_from_table

    t = pd.DataFrame({"y_px": [0.001, 10.0, 20.0], "x_px": [0.5, 40.0, 5.0],
                      "y_nm": [9.0, 0.12, np.nan], "x_nm": [9.0, 0.48, 0.06]})
    assert pixel_size_from_table(t) == pytest.approx(0.012)
    assert pixel_size_from_table(t.drop(columns="y_nm")) is None
    assert pixel_size_from_table(t.assign(y_nm=np.nan, x_nm=np.nan)) is None


def test_a_row_without_class_is_refused_with_its_row_number(tmp_path):
    import pytest

    from napari_atomdefect.core.errors import TableError
    from napari_atomdefect.core.io.table import read_defects_csv

    path = tmp_path / "short.csv"
    path.write_text("y_px,x_px,y_nm,x_nm,class\n1,2,0.1,0.2,V_S\n3,4,0.3\n")
    with pytest.raises(TableError, match="row 3 has no class"):
        read_defects_csv(path)


@pytest.mark.parametrize("classes, a_nm", [(["V_S", "Se_S", "V_W"], 0.3153),
                                           (["V_Se", "S_Se"], 0.3286)])
def test_reopened_csv_markers_as_large_as_a_detections(tmp_path, classes, a_nm):
    """A reopened table draws its markers 0.4 lattice constants wide, as detection does, where
    its classes (sulfide or selenide) and nm columns give the lattice constant in pixels."""
    from napari_atomdefect.core.materials.columns import lattice_constant_of_classes

    px = 0.0087
    table = table_from_points(np.array([[10.0 * (k + 1), 20.0] for k in range(len(classes))]),
                              pd.DataFrame({"class": classes, "confidence": 0.9,
                                            "source": "model"}), px)
    path = tmp_path / "d.csv"
    write_csv_atomic(table, path)
    [(_, kwargs, _)] = get_reader(str(path))(str(path))
    assert lattice_constant_of_classes(classes) == pytest.approx(a_nm, rel=0.003)
    assert np.asarray(kwargs["size"]).mean() == pytest.approx(0.4 * a_nm / px, rel=0.01)
    # classes of both families name no one lattice constant
    assert lattice_constant_of_classes(["V_S", "V_Se"]) is None


def test_a_table_names_its_run_and_reopens_with_the_runs_classes(tmp_path):
    """``material`` and ``substituents`` columns: a reopened table offers the run's classes (a
    metal vacancy nobody called, O when O was looked for), not those its names imply."""
    from napari_atomdefect._layers import table_classes

    truth = pd.DataFrame({"y_px": [20.0, 150.0], "x_px": [30.0, 160.0], "class": ["V_S", "O_S"]})
    plain = defects_table(truth, 0.01)
    write_csv_atomic(plain, tmp_path / "plain.csv")
    assert "V_Mo" in table_classes(read_defects_csv(tmp_path / "plain.csv"))  # implied: MoS2
    write_csv_atomic(with_run_columns(plain, "WS2", ("O",)), tmp_path / "ws2.csv")
    back = read_defects_csv(tmp_path / "ws2.csv")
    assert list(back.columns[:7]) == ["y_px", "x_px", "y_nm", "x_nm", "class", "confidence",
                                      "source"]
    assert back.attrs["material"] == "WS2" and back.attrs["substituents"] == ("O",)
    assert table_classes(back) == ("V_S", "V_S2", "O_S", "V_W")
    se = pd.DataFrame({"y_px": [5.0], "x_px": [6.0], "class": ["Se_S"]})
    write_csv_atomic(with_run_columns(defects_table(se, 0.01), "WS2", "Se"), tmp_path / "se.csv")
    assert "V_W" in table_classes(read_defects_csv(tmp_path / "se.csv"))
    # a material this plugin does not know: said, and the classes the names imply
    bad = with_run_columns(plain, "NbSe2", ())
    write_csv_atomic(bad, tmp_path / "bad.csv")
    with pytest.warns(UserWarning, match="not understood"):
        other = read_defects_csv(tmp_path / "bad.csv")
    assert "material" not in other.attrs and "V_Mo" in table_classes(other)


def test_detection_tables_carry_their_run():
    """``with_run_columns`` takes the run from a detection table's attrs; a table without them
    is left as it is."""
    table = defects_table(pd.DataFrame({"y_px": [1.0], "x_px": [2.0], "class": ["V_Se"]}), 0.01)
    assert with_run_columns(table) is table
    table.attrs.update(model_material="WSe2", substituents=("S", "Te"))
    out = with_run_columns(table)
    assert list(out["material"]) == ["WSe2"] and list(out["substituents"]) == ["S,Te"]


def test_a_replaced_table_is_kept_and_nothing_is_replaced_when_it_cannot_be(tmp_path):
    """Saving over a different table keeps it as NAME.previous.csv; when that copy cannot be
    made (here a folder stands in its place), the file is left as it was and nothing is staged
    beside it — a save never loses the table it would replace."""
    from napari_atomdefect.core.io.table import write_keeping_previous

    path = tmp_path / "t.csv"
    old = pd.DataFrame({"y_px": [1.0], "x_px": [2.0], "class": ["V_S"], "confidence": [1.0],
                        "source": ["manual"]})
    new = old.assign(source="model", confidence=0.8)
    assert write_keeping_previous(old, path) is None  # nothing there before
    before = path.read_bytes()
    assert write_keeping_previous(old, path) is None  # the same table: nothing kept
    kept = write_keeping_previous(new, path)
    assert kept == tmp_path / "t.previous.csv" and kept.read_bytes() == before
    assert pd.read_csv(path)["source"].tolist() == ["model"]
    kept.unlink()
    kept.mkdir()  # the copy cannot be made
    current = path.read_bytes()
    with pytest.raises(OSError):
        write_keeping_previous(old, path)
    assert path.read_bytes() == current
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.previous.csv"]


def test_a_backup_holding_corrections_is_never_overwritten(tmp_path):
    """A trial saved a corrected table, then two uncorrected runs over it: the second save
    replaced the only copy of the corrections (NAME.previous.csv). A backup holding
    corrections by hand now moves to NAME.previous-2.csv, and the user is told."""
    from napari_atomdefect.core.io.table import write_keeping_previous

    path = tmp_path / "t.csv"
    corrected = pd.DataFrame({"y_px": [1.0, 3.0], "x_px": [2.0, 4.0], "class": ["V_S", "O_S"],
                              "confidence": [1.0, 0.9], "source": ["manual", "model"]})
    first_run = corrected.assign(source="model", confidence=0.8)
    second_run = first_run.assign(confidence=0.7)
    write_keeping_previous(corrected, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the first backup takes no other one's place)
        assert write_keeping_previous(first_run, path) == tmp_path / "t.previous.csv"
    with pytest.warns(UserWarning, match=r"t.previous.csv held 1 defects corrected by hand; "
                                         r"it is kept as t.previous-2.csv"):
        write_keeping_previous(second_run, path)
    assert pd.read_csv(tmp_path / "t.previous-2.csv")["source"].tolist() == ["manual", "model"]
    assert pd.read_csv(tmp_path / "t.previous.csv")["confidence"].tolist() == [0.8, 0.8]
    assert pd.read_csv(path)["confidence"].tolist() == [0.7, 0.7]
    # a further save keeps the uncorrected backup's place for the table it replaces
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_keeping_previous(first_run, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.previous-2.csv",
                                                          "t.previous.csv"]


def test_the_pixel_size_column_keeps_six_figures(tmp_path):
    """A trial: the CLI's CSV wrote pixel_size_nm 0.0083 for 0.00826 (the coordinates' four
    decimals): 0.5 % off, 2 % at 0.003 nm/px."""
    from napari_atomdefect.core.io.table import write_csv_atomic

    table = pd.DataFrame({"y_px": [1.0], "x_px": [2.0], "pixel_size_nm": [0.0082634]})
    write_csv_atomic(table, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["pixel_size_nm"].iloc[0] == 0.0082634 and back["x_px"].iloc[0] == 2.0


def test_a_written_table_has_the_permissions_of_any_file_the_user_makes(tmp_path):
    """The CSV is written through a temporary file (mkstemp: 0600) and renamed: it gets the
    user's umask, as a file they make would (a table on a group's disk was its author's only)."""
    import os
    import stat

    old_umask = os.umask(0o022)
    try:
        write_csv_atomic(pd.DataFrame({"y_px": [1.0], "x_px": [2.0], "class": ["V_S"]}),
                         tmp_path / "calls.csv")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "calls.csv").stat().st_mode) == 0o644


def test_an_overlapping_pair_is_written_in_the_order_of_the_class_lists():
    """One pair reads alike in every row of a table or summary (a trial's batch summary held
    V_S|O_S and O_S|V_S)."""
    from napari_atomdefect.core.io.table import overlaps_text

    assert overlaps_text([("O_S", "V_S"), ("S_Se", "V_Se")]) == "V_S|O_S;V_Se|S_Se"
    assert overlaps_text([("V_S", "O_S")]) == "V_S|O_S"


def test_file_save_over_a_more_corrected_table_warns(tmp_path, monkeypatch):
    """File → Save (napari's writer) over a table holding more corrections by hand says so, as
    the Review dock's export does (it said nothing; the README promised the warning)."""
    import napari.utils.notifications as notifications

    said: list[str] = []
    monkeypatch.setattr(notifications, "show_warning", said.append)
    data = np.array([[10.0, 12.0], [20.0, 22.0]])

    def meta(sources):
        return {"features": pd.DataFrame({"class": ["V_S", "O_S"], "confidence": [1.0, 0.9],
                                          "source": sources}), "scale": (0.01, 0.01),
                "units": ("nm", "nm"), "metadata": {}}

    path = str(tmp_path / "d.csv")
    write_points_csv(path, data, meta(["manual", "manual"]))
    write_points_csv(path, data, meta(["model", "manual"]))
    assert said == ["d.csv held 2 defects corrected by hand, this layer 1: the table it "
                    "replaced is kept as d.previous.csv."]
    write_points_csv(path, data, meta(["manual", "manual"]))  # (more corrections: nothing said)
    assert len(said) == 1


def test_a_table_saved_again_as_its_corrections_grow_leaves_no_trail(tmp_path):
    """Saving one layer over and over as more calls are corrected keeps one backup (the trial
    feared a previous-N file per save), and a corrected backup the new table outdoes is not
    kept twice."""
    from napari_atomdefect.core.io.table import write_keeping_previous

    path = tmp_path / "t.csv"
    table = pd.DataFrame({"y_px": [1.0, 3.0, 5.0], "x_px": [2.0, 4.0, 6.0],
                          "class": ["V_S", "O_S", "V_S"], "confidence": [0.9, 0.8, 0.7],
                          "source": ["model", "model", "model"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(4):
            write_keeping_previous(table.assign(source=["manual"] * k + ["model"] * (3 - k)),
                                   path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.previous.csv"]
