"""Detection with column-composition classes and a choice of substituents (issue #13).

The tests build small WS2 U-Nets whose output is their final-layer bias alone (head weights zero):
at every site the logits are known, which fixes the probabilities the detection must report and
the class it must call. Chalcogen sites of the main test model are biased towards ``Se_S`` (then
``O_S``, then pristine), those of a second one towards ``O_S`` (then ``Se_S``): the choice of
substituents decides the class. A substitution the user leaves out goes to the classes either side
of it on the Z-contrast ladder: Se's to the pristine class, O's to V_S and pristine
(:func:`~napari_atomdefect.core.detect.decision.restrict`).

Such a model calls every chalcogen column of a pristine image substituted, which the Z-contrast
ladder reads as the host: the step that returns a uniform layer's columns to the host when the
two disagree (:func:`~napari_atomdefect.core.detect.median_rung.keep_median_rung`,
``tests/test_median_rung.py``) is left out here (``detector_calls_stand``), so that the
probabilities reach the table as the model gave them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.detect.decision import (
    OperatingPointError,
    calibrate,
    run_classes,
    site_decisions,
)
from napari_atomdefect.core.detect.detect import detect, iter_detect, probability_columns
from napari_atomdefect.core.detect.image_fit import ModelFitWarning
from napari_atomdefect.core.io.image import write_tiff
from napari_atomdefect.core.materials.columns import (
    LEGACY_CLASSES,
    SubstituentError,
    class_names,
    segment_classes,
)
from napari_atomdefect.core.models.registry import (
    default_model_name,
    model_classes,
    model_material,
    model_substituents,
    resolve_model,
    write_model,
)
from napari_atomdefect.core.progress import run_to_end
from napari_atomdefect.core.simulate.image import simulate_image

WS2_CLASSES = class_names("WS2")  # V_S, V_S2, O_S, Se_S, Se2_S2, V_W
#: Logit of every U-Net channel (background, metal, chalcogen, then WS2_CLASSES).
BIAS = {"background": 0.0, "metal": 3.0, "chalcogen": 1.0, "V_S": 0.0, "V_S2": 0.0,
        "O_S": 2.0, "Se_S": 4.0, "Se2_S2": 0.0, "V_W": 0.0}
#: The second model: O_S first, then Se_S.
BIAS_O = {**BIAS, "O_S": 4.0, "Se_S": 2.0}
#: The biased models' calls, not the ladder's reading of the median rung (module docstring).
pytestmark = pytest.mark.usefixtures("detector_calls_stand")

CHALCOGEN_CHOICES = ("chalcogen", "V_S", "V_S2", "O_S", "Se_S", "Se2_S2")


def _softmax(names: tuple[str, ...], bias: dict = BIAS) -> dict[str, float]:
    z = {n: math.exp(bias[n]) for n in names}
    total = sum(z.values())
    return {n: v / total for n, v in z.items()}


def _restricted(keep: tuple[str, ...], bias: dict = BIAS) -> dict[str, float]:
    """Chalcogen-site probabilities of a run over ``keep`` (pristine first): the softmax over all
    the model's chalcogen choices; an excluded Se class's share goes to the pristine class
    (nothing brighter is kept), an excluded O_S's to V_S and pristine, the classes either side
    of it on the Z-contrast ladder, in proportion to their own probabilities."""
    p = _softmax(CHALCOGEN_CHOICES, bias)
    out = {n: p[n] for n in keep}
    for n, v in p.items():
        if n in keep:
            continue
        if n == "O_S":
            out["V_S"] += v * p["V_S"] / (p["V_S"] + p["chalcogen"])
            out["chalcogen"] += v * p["chalcogen"] / (p["V_S"] + p["chalcogen"])
        else:
            out["chalcogen"] += v
    return out


def _ws2_card(calibration: dict | None = None) -> dict:
    det = {"architecture": {"in_channels": 1, "n_classes": len(segment_classes(WS2_CLASSES)),
                            "width": 4},
           "tile": {"size_px": 24, "extent_a": 1.5}, "temperature": 1.0,
           "classes": list(WS2_CLASSES), "substituents": ["O", "Se"]}
    if calibration:
        det["calibration"] = calibration
    return {"name": "ws2-test", "material": "WS2", "detector": det}


def _save_ws2_model(folder, calibration: dict | None = None, bias: dict = BIAS):
    import torch

    from napari_atomdefect.core.models.registry import build_detector

    card = _ws2_card(calibration)
    net = build_detector(card)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([bias[c] for c in segment_classes(WS2_CLASSES)]))
    return write_model(folder, card, detector=net.eval())


#: Classes and substituents of the bundled MoS2 model (retrained for column classes, #13).
MOS2_CLASSES = ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_Mo")


def _save_legacy_model(folder):
    """A MoS2 model as written before the column classes: its card names no material, classes or
    substituents, so it is read as the four legacy classes trained for O alone."""
    import torch

    from napari_atomdefect.core.models.registry import build_detector

    card = {"name": folder.name,
            "detector": {"architecture": {"in_channels": 1,
                                          "n_classes": len(segment_classes(LEGACY_CLASSES)),
                                          "width": 4},
                         "tile": {"size_px": 24, "extent_a": 1.5}, "temperature": 1.0}}
    net = build_detector(card)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    return write_model(folder, card, detector=net.eval())


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def ws2_model(models_dir):
    return _save_ws2_model(models_dir / "ws2-test")


@pytest.fixture(scope="module")
def ws2_o_model(tmp_path_factory):
    return _save_ws2_model(tmp_path_factory.mktemp("models_o") / "ws2-o", bias=BIAS_O)


@pytest.fixture(scope="module")
def legacy_model(models_dir):
    return _save_legacy_model(models_dir / "mos2-legacy")


@pytest.fixture(scope="module")
def ws2_image():
    return simulate_image("WS2", 192, 0.012, seed=3, dose_e_per_A2=3e5)


def _run(image, model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)  # every column flagged: implausible
        return run_to_end(iter_detect(image, 0.012, "WS2", model, "cpu", **kw))


def test_registry_reads_classes_and_substituents(ws2_model, legacy_model):
    info = resolve_model(ws2_model)
    assert model_classes(info) == WS2_CLASSES
    assert model_substituents(info) == ("O", "Se")
    bundled = resolve_model("mos2-default")
    assert model_classes(bundled) == MOS2_CLASSES and model_substituents(bundled) == ("O", "Se")
    # A card without classes or substituents is a legacy MoS2 model: four classes, O only.
    legacy = resolve_model(legacy_model)
    assert model_classes(legacy) == LEGACY_CLASSES and model_substituents(legacy) == ("O",)
    assert model_material(legacy) == "MoS2"
    # Each material has its bundled model; no material gives the MoS2 one.
    for material in ("MoS2", "WS2", "WSe2", "MoSe2"):
        assert default_model_name(material) == f"{material.lower()}-default"
    assert default_model_name() == "mos2-default"
    # MoS2 with an alloying substituent has its own bundled detector (host units); O alone and
    # the other hosts keep theirs.
    assert default_model_name("MoS2", ("O", "Se")) == "mos2-alloy"
    assert default_model_name("MoS2", "Se") == "mos2-alloy"
    # spelt as a user types it ("se", "SE"), as --substituents reads it: the same model
    assert default_model_name("MoS2", "se") == default_model_name("MoS2", ["SE"]) == "mos2-alloy"
    assert default_model_name("MoS2", ("O",)) == "mos2-default"
    assert default_model_name("WS2", ("Se",)) == "ws2-default"
    alloy = resolve_model(None, "MoS2", ("Se",))
    assert alloy.name == "mos2-alloy" and alloy.bundled
    assert model_classes(alloy) == MOS2_CLASSES and alloy.card["detector"]["unit"] == "host"
    # A card with classes but no substituent list: the substituents of its D_X classes.
    assert model_substituents({"detector": {"classes": ["V_Se", "Te_Se", "V_W"]}}) == ("Te",)


def test_substituents_choose_the_classes(ws2_model, ws2_o_model, ws2_image):
    se = _run(ws2_image.image, ws2_model, substituents="Se")
    o = _run(ws2_image.image, ws2_model, substituents=["O"])
    o_model = _run(ws2_image.image, ws2_o_model, substituents=["O"])
    default = _run(ws2_image.image, ws2_model)  # WS2 defaults: O
    t_se, t_o = se["defects"], o["defects"]
    assert t_se.attrs["classes"] == ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
    assert t_se.attrs["substituents"] == ("Se",)
    assert t_o.attrs["classes"] == ("V_S", "V_S2", "O_S", "V_W")
    assert default["defects"].attrs["substituents"] == ("O",)
    assert default["defects"].attrs["classes"] == ("V_S", "V_S2", "O_S", "V_W")
    n_chalcogen = t_se.attrs["n_chalcogen_sites"]
    assert n_chalcogen > 50
    # Every chalcogen column is called the winning class of the run, metal columns stay pristine.
    assert t_se["class"].value_counts().to_dict() == {"Se_S": n_chalcogen}
    assert o_model["defects"]["class"].value_counts().to_dict() == {"O_S": n_chalcogen}
    # Se left out: the model's Se columns are host columns for this run, not O_S nor vacancies.
    assert t_o.empty and default["defects"].empty
    assert set(o["sites"]["class"]) == {"metal", "chalcogen"}
    # Probabilities: the biases' softmax over the run's choices, the others' share pristine.
    sites = se["sites"]
    assert set(probability_columns(t_se.attrs["classes"])) <= set(sites.columns)
    assert "p_O_S" not in sites.columns
    assert "p_Se_S" not in o["sites"].columns
    ch = sites[sites.sublattice == "chalcogen"]
    want = _restricted(("chalcogen", "V_S", "V_S2", "Se_S", "Se2_S2"))
    assert sum(want.values()) == pytest.approx(1.0)
    for name, p in want.items():
        np.testing.assert_allclose(ch[f"p_{name}"], p, rtol=1e-4)
    # (a call on a column the field's edge cuts says so in a lower confidence: detect/edge.py)
    from napari_atomdefect.core.detect.edge import EDGE_BAND_A, edge_confidence, edge_distance_a

    at_edge = edge_distance_a(ch[["y_px", "x_px"]].to_numpy(), ws2_image.image.shape,
                              se["lattice"].a_px) < EDGE_BAND_A
    np.testing.assert_allclose(ch.confidence[~at_edge], want["Se_S"], rtol=1e-4)
    np.testing.assert_allclose(ch.confidence[at_edge], edge_confidence(want["Se_S"]), rtol=1e-4)
    assert (ch.confidence[at_edge] < want["Se_S"]).all()
    ch_o = o["sites"][o["sites"].sublattice == "chalcogen"]
    want_o = _restricted(("chalcogen", "V_S", "V_S2", "O_S"))
    for name, p in want_o.items():
        np.testing.assert_allclose(ch_o[f"p_{name}"], p, rtol=1e-4)
    np.testing.assert_allclose(ch_o.confidence, want_o["chalcogen"], rtol=1e-4)
    ch_om = o_model["sites"][o_model["sites"].sublattice == "chalcogen"]
    np.testing.assert_allclose(ch_om["p_O_S"],
                               _restricted(("chalcogen", "V_S", "V_S2", "O_S"), BIAS_O)["O_S"],
                               rtol=1e-4)
    metal = sites[sites.sublattice == "metal"]
    assert set(metal["class"]) == {"metal"}
    np.testing.assert_allclose(metal["p_V_W"], _softmax(("metal", "V_W"))["V_W"], rtol=1e-4)


def test_vacancies_only_and_calibration_before_masking(tmp_path, ws2_image):
    """``substituents="none"`` leaves vacancies only; the card's calibration (over all the
    model's classes) is applied before the unchosen classes are masked."""
    run = _run(ws2_image.image, _save_ws2_model(tmp_path / "a"), substituents="none")
    assert run["defects"].attrs["classes"] == ("V_S", "V_S2", "V_W")
    assert run["defects"].empty  # pristine (1.0) beats V_S, V_S2 (0.0) once Se_S, O_S are gone
    # A calibration bias of +5 on V_S2 (chalcogen choice 2): V_S2 then wins without substituents
    # (e^5 against e^1 + e^2 + e^4 + e^0 of pristine and the excluded substitutions).
    cal = {"method": "diagonal-dirichlet",
           "metal": {"scale": [1, 1], "bias": [0, 0]},
           "chalcogen": {"scale": [1] * 6, "bias": [0, 0, 5, 0, 0, 0]}}
    run = _run(ws2_image.image, _save_ws2_model(tmp_path / "b", cal), substituents="none")
    n = run["defects"].attrs["n_chalcogen_sites"]
    assert run["defects"]["class"].value_counts().to_dict() == {"V_S2": n}
    assert run["defects"].attrs["calibrated"] is True


def test_site_decisions_mask_after_calibration():
    p = np.array([[0.05, 0.05, 0.05, 0.5, 0.3, 0.05]])  # chalcogen, V_S, V_S2, O_S, Se_S, Se2_S2
    cal = {"metal": {"scale": [1, 1], "bias": [0, 0]},
           "chalcogen": {"scale": [1] * 6, "bias": [0, 0, 0, 0, 1, 0]}}
    d = site_decisions(np.array([[0.9, 0.1]]), p, cal, {}, WS2_CLASSES,
                       ("V_S", "V_S2", "O_S", "V_W"))
    q = calibrate(p, cal["chalcogen"])[0]
    # The excluded Se_S, Se2_S2 go to the pristine class after calibration: the calibrated Se_S
    # share (0.52) makes the column a host column; masking first would have called O_S (0.5).
    want = np.array([q[0] + q[4] + q[5], q[1], q[2], q[3]])
    np.testing.assert_allclose(d["q_chalcogen"][0], want / want.sum())
    np.testing.assert_allclose(d["q_chalcogen"][0].sum(), 1.0)
    assert d["chalcogen_choices"] == ("chalcogen", "V_S", "V_S2", "O_S")
    assert d["chalcogen_class"][0] == "chalcogen"
    np.testing.assert_allclose(d["chalcogen_conf"][0], want[0] / want.sum())
    d0 = site_decisions(np.array([[0.9, 0.1]]), p, None, {}, WS2_CLASSES,
                        ("V_S", "V_S2", "O_S", "V_W"))
    assert d0["chalcogen_class"][0] == "O_S"  # uncalibrated: 0.5 against 0.4 pristine


def test_bad_substituents_and_operating_points(ws2_model, legacy_model):
    with pytest.raises(SubstituentError, match=r"^'Te' is not a substituent this package models "
                                               r"in WS2 \(choose from O, Se, Mo, or W for its "
                                               r"antisites\)\.$"):
        run_classes(resolve_model(ws2_model).card, "WS2", "Te")
    with pytest.raises(SubstituentError, match=r"^The chosen model was not trained for Se in MoS2 "
                                               r"\(it knows O\); choose a model trained with Se "
                                               r"or leave it out\.$"):
        run_classes(resolve_model(legacy_model).card, "MoS2", "Se")
    # The bundled MoS2 model knows Se.
    assert run_classes(resolve_model("mos2-default").card, "MoS2", "Se").classes == \
        ("V_S", "V_S2", "Se_S", "Se2_S2", "V_Mo")
    image = np.zeros((64, 64), np.float32)
    with pytest.raises(OperatingPointError, match=r"'Se_S' is not a defect class for the operating "
                                                  r"point \(use V_S, V_S2, O_S, V_W\)\."):
        next(iter_detect(image, 0.012, "WS2", ws2_model, "cpu", operating_point="Se_S=0.6",
                         substituents="O"))


def test_other_material_keeps_the_models_class_names(ws2_image):
    """The MoS2 model on a WS2 image: classes named for MoS2, and a warning says so."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(ws2_image.image, 0.012, "WS2", model="mos2-default", device="cpu")
    # The MoS2 model's default substituents (O): its Se classes are left out.
    run = ("V_S", "V_S2", "O_S", "V_Mo")
    assert table.attrs["model"] == "mos2-default" and table.attrs["classes"] == run
    said = [str(w.message) for w in caught if "classes are named for MoS2" in str(w.message)]
    assert said == ["The model was trained for MoS2, not WS2: its classes are named for MoS2 "
                    "(V_S, V_S2, O_S, V_Mo)."]
    assert said[0] in table.attrs["messages"]
    assert set(table["class"]) <= set(run)
    # A WS2 image without a model named gets the bundled WS2 model, classes named for WS2.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        own = detect(ws2_image.image, 0.012, "WS2", device="cpu")
    assert own.attrs["model"] == "ws2-default"
    assert own.attrs["classes"] == ("V_S", "V_S2", "O_S", "V_W")
    assert not any("classes are named for" in m for m in own.attrs["messages"])


@pytest.fixture(scope="module")
def ws2_tif(tmp_path_factory, ws2_image):
    path = tmp_path_factory.mktemp("img") / "ws2.tif"
    write_tiff(path, ws2_image.image, 0.012)
    return path


def test_cli_detect_substituents(ws2_model, ws2_o_model, legacy_model, ws2_tif, tmp_path,
                                capsys):
    for subs, model, want in (("O", ws2_o_model, "O_S"), ("Se", ws2_model, "Se_S")):
        out = tmp_path / f"{subs}.csv"
        assert main(["detect", str(ws2_tif), "--material", "WS2", "--model", str(model),
                     "--substituents", subs, "--device", "cpu", "--out", str(out)]) == 0
        table = pd.read_csv(out)
        assert len(table) > 50 and set(table["class"]) == {want}
        assert f"substituents {subs} -> " in capsys.readouterr().out
    out = tmp_path / "bad.csv"
    assert main(["detect", str(ws2_tif), "--material", "WS2", "--model", str(ws2_model),
                 "--substituents", "Te", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("atomdefect: 'Te' is not a substituent this package models in WS2 (choose "
                   "from O, Se, Mo, or W for its antisites).\n")
    assert not out.exists()
    assert main(["detect", str(ws2_tif), "--material", "WS2", "--model", str(legacy_model),
                 "--substituents", "Se", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # Se is modelled in WS2, but this model is a MoS2 one without Se: the sentence names the
    # model to choose.
    assert err == ("atomdefect: The chosen model was trained for MoS2 (substituents O), not WS2: "
                   "choose a WS2 model (e.g. ws2-default) to look for Se in WS2.\n")
    assert not out.exists()


def test_cli_models_lists_material_and_classes(ws2_model, legacy_model, monkeypatch, capsys):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(ws2_model.parent))
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ("mos2-default (bundled, MoS2): classes V_S, V_S2, O_S, Se_S, Se2_S2, V_Mo; "
            "substituents O, Se (the default for MoS2)") in lines
    assert ("mos2-alloy (bundled, MoS2): classes V_S, V_S2, O_S, Se_S, Se2_S2, V_Mo; "
            "substituents O, Se (the default for MoS2 when an alloying substituent is chosen)"
            ) in lines
    assert "mos2-legacy (user, MoS2): classes V_S, V_S2, O_S, V_Mo; substituents O" in lines
    assert ("ws2-test (user, WS2): classes V_S, V_S2, O_S, Se_S, Se2_S2, V_W; substituents O, Se"
            in lines)


def test_batch_summary_has_the_runs_classes(ws2_model, ws2_tif, tmp_path):
    from napari_atomdefect.core.detect.batch import batch, summary_columns

    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        summary = batch([str(ws2_tif)], out, material="WS2", model=str(ws2_model), device="cpu",
                        workers=1, processes=False, substituents="Se")
    classes = ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
    assert list(summary.columns) == summary_columns(classes)
    assert "n_O_S" not in summary.columns
    row = summary.iloc[0]
    # Se was chosen: its substitutions are the alloy's composition, counted per class only.
    assert row.status == "ok" and row.n_Se_S > 50 and row.n_defects == 0 and row.n_V_W == 0
    assert row.per_cell_Se_S == pytest.approx(row.n_Se_S / row.n_cells, rel=1e-5)
    assert set(pd.read_csv(out / row.csv)["class"]) == {"Se_S"}
    with pytest.raises(SubstituentError, match="'Te' is not a substituent"):
        batch([str(ws2_tif)], tmp_path / "out2", material="WS2", model=str(ws2_model),
              processes=False, substituents="Te")
    assert not (tmp_path / "out2").exists()  # stopped before any work


def test_evaluate_scores_every_class_and_merges_light_substituents():
    from napari_atomdefect.core.detect.evaluate import score

    truth = pd.DataFrame({"y_px": [10.0, 30, 50, 70], "x_px": [10.0, 30, 50, 70],
                          "class": ["V_Se", "S_Se", "Te_Se", "V_W"]})
    pred = pd.DataFrame({"y_px": [10.0, 30, 50, 90], "x_px": [10.0, 30, 50, 90],
                         "class": ["S_Se", "S_Se", "Te_Se", "V_Se2"]})
    s = score(pred, truth, radius_px=2)
    assert list(s.index) == ["V_Se", "V_Se2", "S_Se", "Te_Se", "V_W", "V_Se|S_Se"]
    assert s.loc["Te_Se", ["tp", "fp", "fn"]].tolist() == [1, 0, 0]
    assert s.loc["S_Se", ["tp", "fp", "fn"]].tolist() == [1, 1, 0]
    assert s.loc["V_Se", ["tp", "fp", "fn"]].tolist() == [0, 0, 1]
    assert s.loc["V_Se|S_Se", ["tp", "fp", "fn"]].tolist() == [2, 0, 0]
    assert s.loc["V_Se2", ["fp", "n_pred"]].tolist() == [1, 1]
    legacy = score(pred.assign(**{"class": ["V_S", "O_S", "V_S", "V_Mo"]}),
                   truth.assign(**{"class": ["O_S", "O_S", "V_S", "V_Mo"]}), radius_px=2)
    assert list(legacy.index) == ["V_S", "V_S2", "O_S", "V_Mo", "V_S|O_S"]
    assert legacy.loc["V_S|O_S", "tp"] == 3


def test_movie_counts_follow_the_runs_classes(ws2_model, ws2_image):
    from napari_atomdefect.core.detect.movie import counts_per_frame, iter_detect_frames, link_tracks

    stack = np.stack([ws2_image.image, ws2_image.image])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        result = run_to_end(iter_detect_frames(stack, 0.012, "WS2", ws2_model, "cpu",
                                               substituents="Se"))
    table = result["defects"]
    assert result["classes"] == table.attrs["classes"] == ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
    counts = counts_per_frame(table)
    assert list(counts.columns) == list(table.attrs["classes"])
    n = table.attrs["frames"][0]["n_chalcogen_sites"]
    assert counts["Se_S"].tolist() == [n, n] and counts.drop(columns="Se_S").sum().sum() == 0
    linked = link_tracks(table)
    assert linked.groupby("track_id").size().eq(2).all()  # every Se_S column kept its track


def test_card_classes_must_match_the_channels(tmp_path):
    """A card whose class list does not fit its U-Net's channels stops before any work."""
    from napari_atomdefect.core.models.registry import ModelError

    folder = _save_ws2_model(tmp_path / "m")
    info = resolve_model(folder)
    card = {**info.card, "detector": {**info.card["detector"], "classes": list(LEGACY_CLASSES)}}
    bad = info.__class__(info.name, info.path, False, card)
    with pytest.raises(ModelError, match=r"^The detector of model m has 9 output channels, but "
                                         r"its card lists 4 defect classes \(7 channels\)"):
        next(iter_detect(np.zeros((64, 64), np.float32), 0.012, "MoS2", bad, "cpu"))


def test_calibration_fit_over_the_models_classes():
    """The per-class calibration is fitted and checked over a WS2 model's site choices."""
    from napari_atomdefect.core.detect.confidence import calibration_errors, fit_calibration
    from napari_atomdefect.core.detect.decision import card_calibration
    from napari_atomdefect.core.materials.columns import site_choices

    rng = np.random.default_rng(0)
    metal, chalcogen = site_choices(WS2_CLASSES)
    rows = []
    for part, choices in (("metal", metal), ("chalcogen", chalcogen)):
        truth = rng.integers(0, len(choices), 400)
        logits = rng.normal(0, 1, (400, len(choices)))
        logits[np.arange(400), truth] += 1.5  # informative, over-confident after scaling by 3
        p = np.exp(3 * logits)
        p /= p.sum(1, keepdims=True)
        other = metal if part == "chalcogen" else chalcogen
        frame = pd.DataFrame({f"p_{c}": p[:, i] for i, c in enumerate(choices)})
        for c in other:
            frame[f"p_{c}"] = np.nan
        rows.append(frame.assign(sublattice=part, truth=np.asarray(choices)[truth]))
    sites = pd.concat(rows, ignore_index=True)
    cal = fit_calibration(sites, WS2_CLASSES)
    assert len(cal["metal"]["scale"]) == 2 and len(cal["chalcogen"]["bias"]) == 6
    assert all(0 < a < 1 for a in cal["chalcogen"]["scale"])  # over-confidence is tempered
    assert card_calibration({"classes": list(WS2_CLASSES), "calibration": cal}) == cal
    before = calibration_errors(sites, None, WS2_CLASSES)
    after = calibration_errors(sites, cal, WS2_CLASSES)
    assert before["n_sites"] == after["n_sites"] == 800
    assert after["all_sites"] < before["all_sites"] / 2
    from napari_atomdefect.core.errors import AtomDefectError

    with pytest.raises(AtomDefectError, match="of the chalcogen site does not have 4 scales and "
                                              "biases"):
        card_calibration({"classes": ["V_S", "V_S2", "O_S", "V_W"], "calibration": cal})


def test_substituent_of_the_chosen_material_with_a_model_of_another():
    """S is modelled in WSe2; with a MoS2 model the sentence says which model to choose."""
    from napari_atomdefect.core.detect.decision import run_classes
    from napari_atomdefect.core.materials.columns import SubstituentError
    from napari_atomdefect.core.models.registry import resolve_model

    with pytest.raises(SubstituentError, match="trained for MoS2.*choose a WSe2 model"):
        run_classes(resolve_model("mos2-default").card, "WSe2", "S")
