"""Matching detections to truth and per-class scores on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.detect.evaluate import corrections_needed, score
from napari_atomdefect.core.io.table import pixel_size_from_table


def table(rows):
    return pd.DataFrame(rows, columns=["y_px", "x_px", "class"])


def test_perfect_and_missing():
    truth = table([(10, 10, "V_S"), (50, 50, "V_S2"), (90, 90, "V_Mo")])
    pred = table([(10.5, 9.5, "V_S"), (50, 51, "V_S2")])
    s = score(pred, truth, radius_px=3)
    assert s.loc["V_S", "f1"] == 1 and s.loc["V_S2", "f1"] == 1
    assert s.loc["V_Mo", "fn"] == 1 and s.loc["V_Mo", "recall"] == 0
    assert s.loc["V_Mo", "f1"] == 0


def test_wrong_class_counts_against_both():
    truth = table([(10, 10, "V_S"), (30, 30, "O_S")])
    pred = table([(10, 10, "O_S"), (30, 30, "O_S")])
    s = score(pred, truth, radius_px=2)
    assert (s.loc["O_S", "tp"], s.loc["O_S", "fp"], s.loc["O_S", "fn"]) == (1, 1, 0)
    assert (s.loc["V_S", "tp"], s.loc["V_S", "fp"], s.loc["V_S", "fn"]) == (0, 0, 1)
    assert s.loc["O_S", "precision"] == 0.5
    # Merged single-chalcogen class: both are right.
    assert s.loc["V_S|O_S", "f1"] == 1.0


def test_radius_and_one_to_one():
    truth = table([(10, 10, "V_S")])
    pred = table([(10, 12.5, "V_S"), (10, 10.5, "V_S")])
    s = score(pred, truth, radius_px=3)
    assert (s.loc["V_S", "tp"], s.loc["V_S", "fp"]) == (1, 1)  # only one may match
    s = score(table([(10, 14, "V_S")]), truth, radius_px=3)
    assert (s.loc["V_S", "tp"], s.loc["V_S", "fp"], s.loc["V_S", "fn"]) == (0, 1, 1)


def test_corrections_needed_counts_each_edit_once():
    truth = table([(10, 10, "V_S"), (30, 30, "O_S"), (60, 60, "V_Mo")])
    pred = table([(10, 10, "V_S"), (30, 30, "V_S"), (80, 80, "O_S")])
    # (30, 30) needs one reclassification, (60, 60) an addition, (80, 80) a deletion.
    assert corrections_needed(pred, truth, radius_px=2) == {
        "add": 1, "delete": 1, "reclassify": 1, "total": 3, "n_true": 3}
    assert corrections_needed(truth, truth, radius_px=2)["total"] == 0


def test_pixel_size_from_table():
    t = pd.DataFrame({"y_px": [10, 20], "x_px": [5, 40], "y_nm": [0.12, 0.24],
                      "x_nm": [0.06, 0.48], "class": ["V_S", "V_S"]})
    assert pixel_size_from_table(t) == pytest.approx(0.012)
    assert pixel_size_from_table(table([(1, 1, "V_S")])) is None


def test_cli_evaluate_with_devset_style_truth(tmp_path, capsys):
    pred = pd.DataFrame({"y_px": [10.0, 40.0], "x_px": [20.0, 60.0], "y_nm": [0.15, 0.6],
                         "x_nm": [0.3, 0.9], "class": ["V_S", "V_Mo"], "confidence": [0.9, 0.8],
                         "source": ["model", "model"]})
    pred.to_csv(tmp_path / "pred.csv", index=False)
    pd.DataFrame({"x_px": [20.3, 100], "y_px": [10.2, 100], "class": ["V_S", "O_S"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    assert main(["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "labels.csv"),
                 "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["V_S"]["f1"] == 1.0 and out["V_Mo"]["fp"] == 1 and out["O_S"]["fn"] == 1
    assert main(["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "labels.csv")]) == 0
    # V_Mo at (40, 60) is deleted, O_S at (100, 100) added.
    assert "corrections needed to reach the truth: 2 (add 1, delete 1, reclassify 0)" in \
        capsys.readouterr().out
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert main(["evaluate", str(tmp_path / "bad.csv"), str(tmp_path / "labels.csv")]) == 2
    capsys.readouterr()
    # A radius that reaches the neighbouring columns is scored, and said in one line.
    assert main(["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "labels.csv"),
                 "--radius-nm", "0.5"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reaches the neighbouring columns" in err[0]


def test_one_reader_for_defect_tables(tmp_path):
    from napari_atomdefect.core.detect import evaluate
    from napari_atomdefect.core.io import table as export

    assert not hasattr(evaluate, "read_table") and not hasattr(evaluate, "pixel_size_of")
    path = tmp_path / "labels.csv"  # dev-set layout: x before y, no nm columns
    path.write_text("x_px,y_px,class\n33.5,183.25,V_S2\n24.0,121.0,V_S\n")
    t = export.read_defects_csv(path)
    assert list(t.columns) == export.DEFECT_COLUMNS
    assert t.y_px.tolist() == [183.25, 121.0] and t.x_px.tolist() == [33.5, 24.0]
    assert t["class"].tolist() == ["V_S2", "V_S"] and t.confidence.tolist() == [1.0, 1.0]
    assert export.pixel_size_from_table(t) is None


def test_cli_evaluate_says_when_the_tables_are_of_two_images(tmp_path, capsys):
    """Calls of another image score 0 everywhere: one sentence says the tables may not belong
    together (a trial got all-zero scores and no hint); tables of one image say nothing."""
    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    rng = np.random.default_rng(3)
    truth = pd.DataFrame({"y_px": rng.uniform(0, 500, 30), "x_px": rng.uniform(0, 500, 30),
                          "class": "V_S"})
    same = truth.assign(confidence=0.9, source="model")
    other = same.assign(y_px=rng.uniform(0, 500, 30), x_px=rng.uniform(0, 500, 30))
    write_csv_atomic(defects_table(truth, 0.012), tmp_path / "truth.csv")
    for name, table in (("same", same), ("other", other)):
        write_csv_atomic(defects_table(table, 0.012), tmp_path / f"{name}.csv")
        assert main(["evaluate", str(tmp_path / f"{name}.csv"), str(tmp_path / "truth.csv")]) == 0
        err = capsys.readouterr().err
        assert ("are the two tables of the same image" in err) == (name == "other")


def test_a_tables_material_names_its_metal_vacancy():
    """Second new-user trial: a WS2 movie's table of V_S and V_S2 calls was scored with a V_Mo
    row (the legacy MoS2 classes); the material the table names gives its metal."""
    import pandas as pd

    rows = pd.DataFrame({"y_px": [10.0, 40.0], "x_px": [10.0, 40.0], "class": ["V_S", "V_S2"]})
    table = score(rows.assign(material="WS2"), rows, 2.0)
    assert "V_W" in table.index and "V_Mo" not in table.index
    assert "V_Mo" in score(rows, rows, 2.0).index  # no material named: MoS2's classes
