"""Training for column-composition classes: the detector's classes, channels, card and --init."""

import inspect
import json

import numpy as np
import pytest
import torch

from napari_atomdefect.cli import main
from napari_atomdefect.core.materials.columns import LEGACY_CLASSES, class_names
from napari_atomdefect.core.models.registry import base_detector, resolve_model
from napari_atomdefect.core.models.unet import UNet, transfer_head
from napari_atomdefect.core.train.datasets import CellSet, iter_simulated_cell_sets
from napari_atomdefect.core.train.loops import site_predictions, site_scores
from napari_atomdefect.core.train.pipeline import DETECTOR_TILE

TINY = ["--n-images", "2", "--val-images", "1", "--steps", "3", "--batch-size", "8",
        "--threads", "1", "--translated-fraction", "0"]
WSE2 = ("V_Se", "V_Se2", "S_Se", "S2_Se2", "Te_Se", "Te2_Se2", "V_W")


@pytest.fixture(scope="module")
def wse2_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "wse2-tiny"
    assert main(["train-detector", "--material", "wse2", *TINY, "--out", str(out)]) == 0
    return out


def test_wse2_detector_card_and_channels(wse2_model):
    card = json.loads((wse2_model / "card.json").read_text())
    assert card["material"] == "WSe2"
    det = card["detector"]
    assert tuple(det["classes"]) == WSE2 == class_names("WSe2")
    assert det["substituents"] == ["S", "Te"]
    assert det["architecture"]["n_classes"] == 10
    assert set(det["metrics"]["validation_site_f1"]) == set(WSE2)
    net = base_detector(resolve_model(wse2_model))
    assert net.head.out_channels == 10
    # The loaded detector reads every WSe2 class at the sites of fresh WSe2 cells.
    cells = next(iter_simulated_cell_sets(1, seed=5, material="WSe2", spec=DETECTOR_TILE))[0]
    assert cells.classes == WSE2
    classes, p_metal, p_chalcogen = site_predictions(net, cells, torch.device("cpu"))
    assert p_metal.shape == (len(cells), 2) and p_chalcogen.shape == (len(cells), 7)
    np.testing.assert_allclose(p_chalcogen.sum(1), 1.0, rtol=1e-5)
    assert set(np.unique(classes[:, 1])) <= set(range(2, 9))  # chalcogen choices only


def test_wse2_detector_detects(wse2_model):
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.simulate.image import simulate_image

    if "substituents" not in inspect.signature(detect).parameters:
        pytest.skip("detect() predates the column-class API of issue #13 (detect branch)")
    sim = simulate_image("WSe2", 256, 0.012, seed=3, substituents="all")
    table = detect(sim.image, material="WSe2", pixel_size_nm=0.012, model=str(wse2_model),
                   substituents="S,Te")
    assert table.attrs["classes"] == WSE2
    assert set(table["class"]) <= set(WSE2)


def test_only_a_fine_tuned_detector_is_called_fine_tuned(wse2_model, tmp_path):
    """A model trained with train-detector is not fine-tuned: the overlap sentence must not tell
    its user "this model is fine-tuned already"; one whose card says it was fine-tuned is."""
    import shutil

    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.progress import run_to_end
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("WSe2", 192, 0.012, seed=3, substituents="all")

    def tuned(model) -> bool:
        return run_to_end(iter_detect(sim.image, 0.012, "WSe2", str(model), "cpu", "user",
                                      substituents="S,Te"))["fine_tuned"]

    assert tuned(wse2_model) is False
    finetuned = tmp_path / "wse2-finetuned"
    shutil.copytree(wse2_model, finetuned)
    card = json.loads((finetuned / "card.json").read_text())
    card["detector"]["training"] = {"fine_tuned_from": "wse2-default", "kept_base_detector": False}
    (finetuned / "card.json").write_text(json.dumps(card))
    assert tuned(finetuned) is True


def test_init_from_another_class_list(wse2_model, tmp_path):
    """WS2 starts from the WSe2 detector: shared layers kept, the last layer remade."""
    out = tmp_path / "ws2-from-wse2"
    assert main(["train-detector", "--material", "WS2", *TINY, "--steps", "1",
                 "--init", str(wse2_model), "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())["detector"]
    assert tuple(card["classes"]) == class_names("WS2")
    assert card["architecture"]["n_classes"] == 3 + len(class_names("WS2"))
    assert tuple(card["training"]["init_classes"]) == WSE2
    net = base_detector(resolve_model(out))
    assert net.head.out_channels == 9


def test_transfer_head_keeps_shared_layers():
    torch.manual_seed(0)
    old = UNet(n_classes=3 + len(LEGACY_CLASSES), width=8)
    enc = old.enc1[0].weight.detach().clone()
    head_w = old.head.weight.detach().clone()
    new_classes = class_names("WS2")  # V_S, V_S2, O_S, Se_S, Se2_S2, V_W
    net = transfer_head(old, LEGACY_CLASSES, new_classes)
    assert net.head.out_channels == 9 and net.config["n_classes"] == 9
    assert torch.equal(net.enc1[0].weight, enc)
    w = net.head.weight.detach()
    # background, metal, chalcogen, V_S, V_S2, O_S by name; V_W from V_Mo (same kind).
    for new_k, old_k in ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (8, 6)):
        assert torch.equal(w[new_k], head_w[old_k])
    assert not torch.equal(w[6], head_w[5]) and not torch.equal(w[7], head_w[5])
    assert net(torch.zeros(2, 1, 24, 24)).shape == (2, 9, 24, 24)
    assert transfer_head(net, new_classes, new_classes) is net


def test_legacy_class_list_cells_and_scores():
    """Fine-tuning a legacy MoS2 model: cells of its four classes only (no Se simulated)."""
    cells = next(iter_simulated_cell_sets(1, seed=2, material="MoS2", spec=DETECTOR_TILE,
                                          classes=LEGACY_CLASSES))[0]
    assert cells.classes == LEGACY_CLASSES
    assert cells.own_classes.max() <= 6 and cells.labels.max() <= 6
    net = UNet(n_classes=7, width=8)
    scores = site_scores(net, cells, torch.device("cpu"))
    assert tuple(scores) == LEGACY_CLASSES
    with pytest.raises(ValueError, match="different class lists"):
        other = next(iter_simulated_cell_sets(1, seed=2, material="WSe2", spec=DETECTOR_TILE))[0]
        CellSet.concatenate([cells, other])


def test_train_noise_runs_for_a_selenide(tmp_path):
    """Stage 1 for WSe2: its label preservation is reported with the host's class names."""
    from napari_atomdefect.core.io.image import write_tiff
    from napari_atomdefect.core.simulate.image import simulate_image

    real = simulate_image("WSe2", 256, 0.012, seed=9)
    write_tiff(tmp_path / "real.tif", real.image, 0.012)
    out = tmp_path / "wse2-noise"
    assert main(["train-noise", "--material", "WSe2", "--real", str(tmp_path / "real.tif"),
                 "--real-mode", "cells", "--n-images", "1", "--steps", "2", "--batch-size", "4",
                 "--threads", "1", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["material"] == "WSe2"
    kept = card["noise"]["metrics"]["label_preservation"]
    assert {"metal", "chalcogen", "V_Se"} <= set(kept) <= {"metal", "chalcogen", *WSE2}
    # models.md's recipe: the detector trained into the folder of its own stage 1 keeps it
    # (a docs trial found noise.safetensors deleted and fine-tuning failing on it)
    assert main(["train-detector", "--material", "WSe2", *TINY, "--noise", str(out),
                 "--out", str(out)]) == 0
    assert (out / "noise.safetensors").exists() and (out / "detector.safetensors").exists()
    info = resolve_model(str(out))
    assert "noise" in info.card and "detector" in info.card


def test_host_unit_detector_reads_tiles_against_the_host_column(tmp_path, monkeypatch):
    """A detector trained with --host-units says so in its card, and detection hands it tiles
    divided by the image's host level: on a Te-rich WSe2 alloy (median column Se + Te) a host
    Se2 column reads 1, not about 0.65."""
    import shutil

    import napari_atomdefect.core.models.site_forward as site_forward
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    out = tmp_path / "wse2-host"
    assert main(["train-detector", "--material", "WSe2", *TINY, "--host-units",
                 "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["detector"]["unit"] == "host"
    plain = tmp_path / "wse2-plain"
    shutil.copytree(out, plain)
    card["detector"]["unit"] = "chalcogen"
    (plain / "card.json").write_text(json.dumps(card))

    seen: list[np.ndarray] = []
    forward = site_forward.tile_site_probabilities

    def spy(net, tiles, *args, **kwargs):
        seen.append(np.array(tiles))
        return forward(net, tiles, *args, **kwargs)

    monkeypatch.setattr(site_forward, "tile_site_probabilities", spy)
    params = MicroscopeParams.random(np.random.default_rng(5), "WSe2", dose_e_per_A2=5e5)
    c = 0.55
    sim = simulate_image("WSe2", 256, 0.014, params=params, seed=3, substituents="Te",
                         defect_fractions={"Te_Se": 2 * c * (1 - c), "Te2_Se2": c * c})
    host = detect(sim.image, 0.014, "WSe2", model=str(out), substituents="Te")
    n_host = len(seen)
    detect(sim.image, 0.014, "WSe2", model=str(plain), substituents="Te")
    ladder = host.attrs["ladder"]
    assert ladder["median_class"] == "Te_Se"
    assert 0.5 < ladder["host_level"] < 0.75
    in_host, in_chalcogen = np.concatenate(seen[:n_host]), np.concatenate(seen[n_host:])
    np.testing.assert_allclose(in_host * ladder["host_level"], in_chalcogen, rtol=1e-3,
                               atol=1e-4)


def test_training_cells_carry_the_true_host_level():
    """Cells of a simulated Te-rich WSe2 alloy (median column Se + Te) carry the level of the
    image's true Se2 columns beside the ladder's reading; ``in_host_units("truth")`` divides by
    the true one, falling back on the ladder's where an image has too few host columns."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
    from napari_atomdefect.core.train.datasets import cells_from_simulation

    params = MicroscopeParams.random(np.random.default_rng(5), "WSe2", dose_e_per_A2=5e5)
    c = 0.4
    sim = simulate_image("WSe2", 256, 0.014, params=params, seed=3, substituents="Te",
                         defect_fractions={"Te_Se": 2 * c * (1 - c), "Te2_Se2": c * c})
    cells = cells_from_simulation(sim, DETECTOR_TILE)
    true = float(cells.true_host_level[0])
    assert 0.5 < true < 0.75  # a host Se2 column is dimmer than the median Se + Te
    assert abs(np.log(true / float(cells.host_level[0]))) < 0.08  # the ladder reads it too
    truth = cells.in_host_units("truth")
    np.testing.assert_allclose(truth.tiles * true, cells.tiles, rtol=1e-4, atol=1e-5)
    unknown = CellSet.concatenate([cells.subset(np.arange(3))])
    unknown.true_host_level = np.full(3, np.nan, np.float32)
    np.testing.assert_allclose(unknown.in_host_units("truth").tiles,
                               unknown.in_host_units("ladder").tiles)
    with pytest.raises(ValueError, match="source must be one of"):
        cells.in_host_units("median")


def test_train_detector_records_where_the_host_level_came_from(tmp_path):
    out = tmp_path / "wse2-truth"
    assert main(["train-detector", "--material", "WSe2", *TINY, "--host-units",
                 "--host-level", "truth", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["detector"]["training"]["host_level_from"] == "truth"


def test_incoherent_share_draws_textbook_microscopes():
    """A share of the training microscopes follows the incoherent Z-contrast rule: each atom
    Z**n, no cross term — a WSe2 column of W outshines Se2 past the multislice microscopes."""
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.simulate.image import MicroscopeParams, column_weight
    from napari_atomdefect.core.simulate.microscopes import (
        ZN_EXPONENTS,
        incoherent_params,
        incoherent_share_overrides,
    )

    assert incoherent_share_overrides(0.0) is None  # no draw: a seed's images stay the same
    draw = incoherent_share_overrides(0.25)
    rng = np.random.default_rng(0)
    draws = [draw(rng) for _ in range(2000)]
    made = [d for d in draws if d]
    assert 0.22 < len(made) / len(draws) < 0.28
    assert all(ZN_EXPONENTS[0] <= d["z_exponent"] <= ZN_EXPONENTS[1] for d in made)
    assert {d["second_atom_factor"] for d in made} == {1.0}

    wse2 = get_material("WSe2")
    params = MicroscopeParams(**incoherent_params(2.0))
    metal = column_weight("metal", "metal", params, wse2)
    host = column_weight("chalcogen", "chalcogen", params, wse2)
    single = column_weight("V_Se", "chalcogen", params, wse2)
    light = column_weight("S_Se", "chalcogen", params, wse2)
    assert metal / host == pytest.approx(74**2 / (2 * 34**2), rel=1e-6)
    assert single / host == pytest.approx(0.5, rel=1e-6)
    assert light / host == pytest.approx(0.5 + 0.5 * (16 / 34) ** 2, rel=1e-6)


def test_train_detector_records_its_incoherent_share(tmp_path):
    out = tmp_path / "wse2-zn"
    assert main(["train-detector", "--material", "WSe2", *TINY, "--incoherent-share", "0.5",
                 "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["detector"]["training"]["incoherent_share"] == 0.5
    assert main(["train-detector", "--material", "WSe2", *TINY, "--incoherent-share", "1.5",
                 "--out", str(tmp_path / "refused")]) == 2
