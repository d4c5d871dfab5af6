"""``atomdefect detect --operating-point`` and ``atomdefect calibrate-model`` (issue #14)."""

import json
import shutil

import pandas as pd
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.models.registry import resolve_model


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--size", "320", "--pixel-size-nm", "0.012", "--dose", "3e5",
                 "--seed", "5", "--out", str(folder)]) == 0
    return folder / "image.tif"


@pytest.mark.parametrize("value, sentence", [
    ("O_S=1.5", "The operating point of O_S must be a number strictly between 0 and 1, not '1.5'"),
    ("O_S:0.4", "The operating point 'O_S:0.4' is not CLASS=VALUE pairs separated by commas"),
])
def test_detect_rejects_bad_operating_point(image, tmp_path, capsys, value, sentence):
    out = tmp_path / "d.csv"
    assert main(["detect", str(image), "--operating-point", value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("atomdefect: argument --operating-point: " + sentence)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_detect_rejects_a_class_the_run_lacks(image, tmp_path, capsys):
    """Class names are checked against the run's classes (here the bundled MoS2 model's), before
    any detection work: one sentence naming the valid ones."""
    out = tmp_path / "d.csv"
    for value in ("Q=0.5", "Se_S=0.5"):
        assert main(["detect", str(image), "--operating-point", value, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        name = value.split("=")[0]
        assert err == (f"atomdefect: '{name}' is not a defect class for the operating point (use "
                       "V_S, V_S2, O_S, V_Mo).\n")
        assert not out.exists()


def test_detect_operating_point_changes_the_calls(image, tmp_path, capsys):
    neutral, strict = tmp_path / "n.csv", tmp_path / "s.csv"
    assert main(["detect", str(image), "--out", str(neutral)]) == 0
    assert "operating point" not in capsys.readouterr().out  # the neutral one goes unsaid
    assert main(["detect", str(image), "--operating-point", "O_S=0.95,V_S=0.05",
                 "--out", str(strict)]) == 0
    assert "operating point V_S=0.05,V_S2=0.5,O_S=0.95,V_Mo=0.5" in capsys.readouterr().out
    a, b = pd.read_csv(neutral), pd.read_csv(strict)
    assert (b["class"] == "O_S").sum() < (a["class"] == "O_S").sum()
    assert (b["class"] == "V_S").sum() > (a["class"] == "V_S").sum()
    # The operating point never moves or removes the vacancies of other classes.
    assert (b["class"] == "V_S2").sum() == (a["class"] == "V_S2").sum()


def test_detect_operating_point_applies_to_all_frames(tmp_path, capsys):
    """The same operating point holds for every frame of a movie."""
    from napari_atomdefect.core.io.image import write_tiff
    from napari_atomdefect.core.io.table import read_defects_csv
    from napari_atomdefect.core.simulate.movie import simulate_movie

    movie = simulate_movie("MoS2", 256, n_frames=2, pixel_size_nm=0.012, seed=0)
    path = tmp_path / "movie.tif"
    write_tiff(path, movie.frames, movie.pixel_size_nm)
    counts = {}
    for op in ("V_S=0.5", "V_S=0.99"):
        out = tmp_path / f"{op}.csv"
        assert main(["detect", str(path), "--all-frames", "--operating-point", op,
                     "--out", str(out)]) == 0
        table = read_defects_csv(out)
        assert sorted(table["frame"].unique()) == [0, 1]
        counts[op] = int((table["class"] == "V_S").sum())
    assert counts["V_S=0.99"] < counts["V_S=0.5"]


def test_calibrate_model_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("ATOMDEFECT_WRITE_BUNDLED", raising=False)
    bundled_card = (resolve_model().path / "card.json").read_text()
    import napari_atomdefect.core.detect.confidence as confidence

    with monkeypatch.context() as m:  # refused before the images are simulated and read
        m.setattr(confidence, "iter_collect_sites", lambda *a, **k: pytest.fail("ran first"))
        assert main(["calibrate-model", "mos2-default", "--n-images", "3"]) == 2
    assert "bundled model and its card is never overwritten" in capsys.readouterr().err
    assert (resolve_model().path / "card.json").read_text() == bundled_card
    folder = tmp_path / "models" / "mine"
    shutil.copytree(resolve_model().path, folder)
    assert main(["calibrate-model", str(folder), "--n-images", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ece after (held-out)" in out and "dry run: nothing written" in out
    assert (folder / "card.json").read_text() == bundled_card
    assert main(["calibrate-model", str(folder), "--n-images", "3", "--seed", "700100"]) == 0
    cal = json.loads((folder / "card.json").read_text())["detector"]["calibration"]
    assert cal["command"] == ("atomdefect calibrate-model mine --n-images 3 --seed 700100 "
                              "--size 256 --decide-on model")  # (the default: as the bundled)
    assert cal["decision"] == "model"
    assert "seeds 700100–700102" in cal["validation"]
    assert main(["calibrate-model", str(folder), "--n-images", "1"]) == 2
    assert capsys.readouterr().err.strip() == "atomdefect: --n-images must be 3 or more, not 1."


def test_an_operating_point_that_flags_everything_is_named_not_the_model(tmp_path, capsys):
    """A very low operating point flags nearly every column: the sentence names the operating
    point the user set, not a model that "does not fit this image"."""
    from napari_atomdefect.core.detect.image_fit import flagged_fraction_message

    said = flagged_fraction_message(90, 100, "V_S=1e-06,V_S2=0.5")
    assert "operating point V_S=1e-06" in said and "does not fit" not in said
    assert "does not fit this image" in flagged_fraction_message(90, 100)
    assert flagged_fraction_message(10, 100, "V_S=0.1") is None
