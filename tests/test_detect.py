"""Detection with the bundled model: accuracy on simulated images with known defects, API, CLI,
errors, and the safety of model files."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect import detect
from napari_atomdefect.cli import main
from napari_atomdefect.core.detect.evaluate import score
from napari_atomdefect.core.device import select_device
from napari_atomdefect.core.errors import AtomDefectError, UnknownMaterialError
from napari_atomdefect.core.io.table import DEFECT_COLUMNS
from napari_atomdefect.core.models.registry import (
    DEFAULT_MODEL,
    ModelError,
    list_models,
    load_detector,
    resolve_model,
    write_model,
)
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image


@pytest.fixture(scope="module")
def sims():
    out = []
    for seed in range(3):
        params = MicroscopeParams.random(np.random.default_rng(100 + seed), "MoS2",
                                         dose_e_per_A2=2e5)
        out.append(simulate_image("MoS2", 384, 0.012, params=params, seed=200 + seed,
                                  defect_fractions={"V_S": 0.05, "V_S2": 0.03, "O_S": 0.05,
                                                    "V_Mo": 0.03}))
    return out


def test_bundled_model_is_there():
    info = resolve_model()
    assert info.bundled and info.name == DEFAULT_MODEL
    card = info.card
    for key in ("command", "software", "noise", "detector"):
        assert key in card
    assert card["detector"]["temperature"] > 0
    assert "label_preservation" in card["noise"]["metrics"]
    sizes = sum(f.stat().st_size for f in info.path.iterdir())
    assert sizes < 20e6


def test_detect_finds_known_defects(sims):
    tables = []
    for sim in sims:
        pred = detect(sim.image, pixel_size_nm=0.012, material="MoS2")
        assert list(pred.columns) == DEFECT_COLUMNS
        assert set(pred["source"]) <= {"model"}
        np.testing.assert_allclose(pred.y_nm, pred.y_px * 0.012)
        tables.append(score(pred, sim.defects, radius_px=0.08 / 0.012)[["tp", "fp", "fn"]])
    tot = sum(tables)
    f1 = 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn)
    assert f1["V_S2"] > 0.85 and f1["V_Mo"] > 0.85
    assert f1["V_S|O_S"] > 0.85


def test_every_column_in_the_field_is_classified(sims):
    """Border columns count too: a defect half a cell from the edge is still a defect."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.progress import run_to_end

    from .conftest import nearest_distances

    for sim in sims:
        sites = run_to_end(iter_detect(sim.image, 0.012))["sites"]
        truth = sim.sites[["y_px", "x_px"]].to_numpy()
        # Columns whose centre is within a pixel of the edge may be placed just outside by the
        # lattice's distortion model; every other column must be found.
        inside = ((truth >= 1) & (truth <= np.array(sim.image.shape) - 2)).all(1)
        found = nearest_distances(truth[inside], sites[["y_px", "x_px"]].to_numpy()) < 0.08 / 0.012
        assert found.mean() > 0.98
        # No invented columns: a site with no true column near it is one whose column centre lies
        # just beyond the border (the truth lists columns inside the field only).
        xy = sites[["y_px", "x_px"]].to_numpy()
        unmatched = xy[nearest_distances(xy, truth) >= 0.08 / 0.012]
        border = np.minimum(unmatched, np.array(sim.image.shape) - 1 - unmatched).min(1)
        assert len(unmatched) <= 6 and (border < 1.0).all(), unmatched


def test_confidences_are_calibrated_not_all_one(sims):
    pred = detect(sims[0].image, pixel_size_nm=0.012)
    single = pred[pred["class"].isin(["V_S", "O_S"])]
    assert len(single) > 3
    # A call's confidence is how often such calls are right: a model that decides on its own
    # probabilities may make a call it trusts less than one in four (docs/models.md).
    assert single.confidence.between(0.0, 1.0).all() and (single.confidence > 0.25).mean() > 0.8
    assert single.confidence.mean() < 0.97  # V_S vs O_S is genuinely uncertain


def test_uncertain_cells_are_read_a_second_time_mirrored(sims, monkeypatch):
    """Only tiles with an uncertain own site get the mirrored second view; every other site
    keeps its single reading, and every defect call comes from a site that was read twice."""
    import napari_atomdefect.core.detect.detect as det
    from napari_atomdefect.core.progress import run_to_end

    sim = sims[0]
    calls = []
    real = det.mirrored_tiles
    # every cell read by the detector (plain cells' sample mean would move with the sample's
    # second views: tests/test_plain_cells.py)
    monkeypatch.setenv("ATOMDEFECT_PLAIN_CELLS", "0")

    def counting(source, batch, sites, binning=1):
        calls.append(len(batch))
        return real(source, batch, sites, binning)

    monkeypatch.setattr(det, "mirrored_tiles", counting)
    two = run_to_end(det.iter_detect(sim.image, 0.012, calibration="user"))["sites"]
    n_reread = sum(calls)
    monkeypatch.setattr(det, "SECOND_VIEW_BELOW", 0.0)
    calls.clear()
    one = run_to_end(det.iter_detect(sim.image, 0.012, calibration="user"))["sites"]
    assert not calls  # never below 0: no second view
    assert len(one) == len(two) and 0 < n_reread < 0.3 * len(one)
    p = [c for c in one.columns if c.startswith("p_")]
    changed = ~np.isclose(one[p].to_numpy(), two[p].to_numpy(), atol=1e-6, equal_nan=True).all(1)
    assert 0 < changed.sum() <= 2 * n_reread  # a tile's metal and chalcogen row
    # Sites called defects are the uncertain ones: nearly all of them were read twice.
    defects = two["class"].isin(["V_S", "O_S"]).to_numpy()
    assert changed[defects].mean() > 0.8


def test_no_duplicates(sims):
    pred = detect(sims[1].image, pixel_size_nm=0.012)
    xy = pred[["y_px", "x_px"]].to_numpy()
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert d.min() > 5  # sites are >= a/sqrt(3) = 15 px apart


def test_model_loaded_once():
    import torch

    info = resolve_model()
    a = load_detector(info, torch.device("cpu"))
    b = load_detector(info, torch.device("cpu"))
    assert a is b


def test_device_selection():
    dev, text = select_device("auto")
    assert dev.type in ("cpu", "cuda", "mps") and text
    with pytest.raises(ValueError, match="Unknown device"):
        select_device("tpu")


def test_cancelled_detection_leaves_the_thread_able_to_train(sims):
    """A consumer that stops ``iter_detect`` midway (Cancel) must not leave its thread in
    inference mode: a training step on the same thread afterwards still gets gradients."""
    import torch

    from napari_atomdefect.core.detect.detect import iter_detect

    gen = iter_detect(sims[0].image, 0.012, batch_size=64)
    items = []
    for item in gen:
        items.append(item)
        if item.get("step") == "detect":
            break  # suspended at the first progress item of the classification loop
    assert items[-1]["fraction"] < 1.0  # stopped midway, not at the end
    assert not torch.is_inference_mode_enabled()
    layer = torch.nn.Linear(3, 1)
    loss = layer(torch.ones(2, 3)).sum()
    loss.backward()
    assert layer.weight.grad is not None and float(layer.weight.grad.abs().sum()) == 6.0
    gen.close()
    assert not torch.is_inference_mode_enabled()


def test_detect_warns_when_the_calibration_is_replaced(sims):
    """The caller learns (as a warning) that the file's pixel size was replaced by the lattice
    calibration; the same sentence is attached to the result."""
    from napari_atomdefect.core.lattice.lattice import CalibrationWarning

    with pytest.warns(CalibrationWarning, match="disagrees with the MoS2 lattice"):
        pred = detect(sims[0].image, pixel_size_nm=0.02, calibration="file")
    assert pred.attrs["calibration"] == "lattice"
    assert pred.attrs["pixel_size_nm"] == pytest.approx(0.012, rel=0.03)
    assert any("disagrees" in m for m in pred.attrs["messages"])


def test_errors(sims, tmp_path):
    with pytest.raises(UnknownMaterialError):
        detect(sims[0].image, 0.012, material="GaN")
    with pytest.raises(ModelError, match="No model called"):
        detect(sims[0].image, 0.012, model="does-not-exist")
    # A corrupt weights file gives a clear error.
    info = resolve_model()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text(json.dumps(info.card))
    (bad / "detector.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="corrupt"):
        detect(sims[0].image, 0.012, model=str(bad))


def test_pickle_in_model_file_is_never_executed(tmp_path, sims):
    info = resolve_model()
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "card.json").write_text(json.dumps(info.card))
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (evil / "detector.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelError):
        detect(sims[0].image, 0.012, model=str(evil))
    assert not marker.exists()


def test_user_models_never_overwrite_bundled(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    info = resolve_model()
    with pytest.raises(ModelError, match="never overwritten"):
        write_model(info.path, info.card)
    write_model(tmp_path / "models" / "mine", {**info.card, "name": "mine"})
    names = [(m.name, m.bundled) for m in list_models()]
    assert (DEFAULT_MODEL, True) in names and ("mine", False) in names


def test_cli_detect_and_evaluate(tmp_path, sims, capsys):
    from napari_atomdefect.core.io.image import write_tiff
    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    sim = sims[2]
    write_tiff(tmp_path / "img.tif", sim.image, 0.012)
    write_csv_atomic(defects_table(sim.defects, 0.012), tmp_path / "truth.csv")
    assert main(["detect", str(tmp_path / "img.tif"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns) == DEFECT_COLUMNS + ["material", "substituents", "overlaps",
                                                   "pixel_size_nm", "pixel_size_source",
                                                   "image"] \
        and len(pred) > 5 and set(pred["image"]) == {"img"}
    assert set(pred["material"]) == {"MoS2"} and set(pred["substituents"]) == {"O"}
    # the pixel size the nm columns follow, and where it came from (the TIFF says 0.012)
    assert set(pred["pixel_size_source"]) == {"file"}
    np.testing.assert_allclose(pred["pixel_size_nm"], 0.012, rtol=1e-6)
    # to six figures, not the coordinates' four decimals (a trial: 0.0083 for 0.00826)
    assert open(tmp_path / "pred.csv").readline().strip().endswith("pixel_size_source,image")
    np.testing.assert_allclose(pred["x_nm"], pred["x_px"] * pred["pixel_size_nm"], atol=1e-3)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "truth.csv"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["V_S2"]["f1"] > 0.7


def test_detect_takes_a_read_image_with_its_file_calibration(tmp_path):
    """``detect(read_image(path))`` uses the file's pixel size under the file policy: a wrong
    file value yields to the lattice, as in the CLI and the widget."""
    import warnings

    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.io.image import read_image, write_tiff
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 256, 0.012, seed=4)
    write_tiff(tmp_path / "wrong.tif", sim.image, 0.012 * 1.16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = detect(read_image(tmp_path / "wrong.tif"), material="MoS2")
    assert table.attrs["calibration"] == "lattice"
    assert abs(table.attrs["pixel_size_nm"] / 0.012 - 1) < 0.02


def test_context_planes_reach_the_detector(sims, tmp_path):
    """A detector taking the image's context gets it: with its context weights at zero it calls
    exactly what the tile-only detector calls, and with them set the calls change."""
    import copy

    import torch

    from napari_atomdefect.core.materials.columns import segment_classes
    from napari_atomdefect.core.models.unet import UNet, add_context_inputs

    card = copy.deepcopy(resolve_model("mos2-default").card)
    card["detector"].pop("calibration", None)
    torch.manual_seed(0)
    net = UNet(n_classes=len(segment_classes(tuple(card["detector"]["classes"]))), width=8).eval()
    card["detector"]["architecture"] = net.config
    write_model(tmp_path / "plain", card, detector=net, noise=None)
    ctx_net = add_context_inputs(copy.deepcopy(net), 1)
    card["detector"]["architecture"] = ctx_net.config
    write_model(tmp_path / "ctx0", card, detector=ctx_net, noise=None)
    image = sims[0].image
    plain = detect(image, sims[0].pixel_size_nm, model=str(tmp_path / "plain"))
    zero = detect(image, sims[0].pixel_size_nm, model=str(tmp_path / "ctx0"))
    assert len(plain)
    pd.testing.assert_frame_equal(plain[["y_px", "x_px", "class"]], zero[["y_px", "x_px", "class"]])
    with torch.no_grad():  # a strong context weight on the first layer: the output moves
        ctx_net.enc1[0].weight[:, 1] = 3.0 * ctx_net.enc1[0].weight[:, 0].abs().mean()
    write_model(tmp_path / "ctx1", card, detector=ctx_net, noise=None)
    moved = detect(image, sims[0].pixel_size_nm, model=str(tmp_path / "ctx1"))
    assert len(moved) != len(plain) or not np.allclose(moved.confidence, plain.confidence)


def test_high_magnification_keeps_the_dose():
    """At 0.005 nm/px (a lattice constant of 63 px, finer than every training image) the tiles
    average the pixels they span instead of reading one in ten. Three such images at 2e5 e/A2:
    bilinear sampling alone gave V_S 0.75, O_S 0.46, V_S|O_S 0.81, V_S2 0.94; block averaging
    0.91 / 0.85 / 0.975 / 1.0 (at 5e5: 0.93 / 0.90 -> 0.97 / 0.97)."""
    import warnings

    tot = None
    for seed in range(3):
        sim = simulate_image("MoS2", 1100, 0.005, MicroscopeParams(dose_e_per_A2=2e5), seed=seed,
                             defect_fractions={"V_S": 0.05, "V_S2": 0.02, "O_S": 0.05,
                                               "V_Mo": 0.02}, substituents="O")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = detect(sim.image, pixel_size_nm=0.005, material="MoS2", substituents=["O"])
        s = score(found, sim.defects, 0.08 / 0.005)[["tp", "fp", "fn"]]
        tot = s if tot is None else tot + s
    f1 = 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn)
    assert f1["V_S"] >= 0.85 and f1["O_S"] >= 0.75 and f1["V_S|O_S"] >= 0.94, f1
    assert f1["V_S2"] >= 0.97 and f1["V_Mo"] >= 0.97, f1


def test_detect_says_its_warnings_at_the_callers_line():
    """Trial, twenty-first session: ``detect``'s notes pointed at the package's generator
    (``progress.py``), not at the user's call; they are said at the caller's line now, each
    once, through the caller's filters."""
    import warnings

    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 256, 0.012, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detect(sim.image, 0.0139)
    assert caught and all(w.filename == __file__ for w in caught)
    assert any("disagrees with the MoS2 lattice" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            detect(sim.image, 0.0139)


def test_detect_refuses_an_unknown_calibration():
    from napari_atomdefect.core.simulate.image import simulate_image

    image = simulate_image("MoS2", 128, 0.012, seed=1).image
    with pytest.raises(AtomDefectError, match="calibration must be"):
        detect(image, 0.012, calibration="foo")
    # "none" (no pixel size known: what the Detect dock passes for an uncalibrated image) is fine
    from napari_atomdefect.core.lattice.lattice import find_lattice

    image = simulate_image("MoS2", 256, 0.012, seed=1).image
    lattice = find_lattice(image, "MoS2", None, calibration="none")
    assert lattice.calibration == "lattice"
    assert lattice.pixel_size_nm == pytest.approx(0.012, rel=0.02)


def test_detect_says_when_an_arrays_pixels_are_not_finite():
    """Trial, twenty-first session: a file's reader notes NaN pixels, an array passed to
    ``detect`` said nothing."""
    import warnings

    from napari_atomdefect.core.simulate.image import simulate_image

    image = simulate_image("MoS2", 256, 0.012, seed=1).image.astype(np.float64)
    image[10, 10:40] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(image, 0.012)
    said = [str(w.message) for w in caught if "NaN or infinite" in str(w.message)]
    assert said == ["30 pixels of the image are NaN or infinite; read as the image's median."]
    assert caught[0].filename == __file__ and len(table) > 0
