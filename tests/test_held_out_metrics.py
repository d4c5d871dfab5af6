"""Held-out figures of a model as it ships (``atomdefect model-metrics``, card ``detector.held_out``)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.detect.held_out import call_scores, iter_held_out_metrics
from napari_atomdefect.core.models.registry import resolve_model
from napari_atomdefect.core.progress import run_to_end


def test_call_scores_count_a_wrong_class_against_both():
    sites = pd.DataFrame({
        "class": ["V_S", "V_S", "O_S", "chalcogen", "O_S", "V_Mo"],
        "truth": ["V_S", "O_S", "O_S", "V_S", "chalcogen", "V_Mo"]})
    s = call_scores(sites, ("V_S", "O_S", "V_Mo"))
    # V_S: 1 right, 1 false (an O_S), 1 missed (called pristine)
    assert s["V_S"] == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "support": 2}
    # O_S: 1 right, 1 false (a pristine column), 1 missed (called V_S)
    assert s["O_S"] == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "support": 2}
    assert s["V_Mo"]["f1"] == 1.0 and s["V_Mo"]["support"] == 1


def test_model_metrics_score_the_shipped_detection_and_write_a_user_card(tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("ATOMDEFECT_WRITE_BUNDLED", raising=False)
    bundled_card = (resolve_model().path / "card.json").read_text()
    # A bundled card is refused before any image is simulated.
    assert main(["model-metrics", "mos2-default", "--n-images", "2", "--write"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (resolve_model().path / "card.json").read_text() == bundled_card
    folder = tmp_path / "models" / "mine"
    shutil.copytree(resolve_model().path, folder)
    card = json.loads((folder / "card.json").read_text())
    card["name"] = "mine"
    (folder / "card.json").write_text(json.dumps(card))
    result = run_to_end(iter_held_out_metrics("mine", n_images=2, size=256, device="cpu",
                                              write=True, substituents=("O",)))
    held = json.loads((folder / "card.json").read_text())["detector"]["held_out"]
    assert held == json.loads(json.dumps(result["held_out"]))
    # Only the classes of the substituents asked for (Se hands MoS2 to mos2-alloy).
    assert list(held["site_scores"]) == ["V_S", "V_S2", "O_S", "V_Mo"]
    assert held["command"] == ("atomdefect model-metrics mine --n-images 2 --seed 800000 "
                               "--size 256 --substituents O --write")
    assert "seeds 800000–800001" in held["validation"] and "with O" in held["validation"]
    scores = held["site_scores"]
    assert sum(v["support"] for v in scores.values()) > 5  # the images hold defects
    # Two vacant columns are seen on any simulated microscope, whatever the dose.
    assert scores["V_S2"]["support"] == 0 or scores["V_S2"]["f1"] >= 0.8
    assert 0 <= scores["O_S"]["f1"] <= 1 and card["detector"]["calibration"] == json.loads(
        (folder / "card.json").read_text())["detector"]["calibration"]  # nothing else changed
    # The CLI prints the same figures without writing.
    assert main(["model-metrics", str(folder), "--n-images", "2", "--substituents", "O"]) == 0
    out = capsys.readouterr().out
    assert f"V_S  F1 {scores['V_S']['f1']:.3f}" in out and "not written" in out


def test_model_metrics_refuse_a_substituent_the_model_does_not_know():
    from napari_atomdefect.core.errors import AtomDefectError

    with pytest.raises(AtomDefectError, match="'Te' is not a substituent"):
        run_to_end(iter_held_out_metrics("mos2-default", n_images=1, substituents=("Te",)))
