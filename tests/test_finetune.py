"""Fine-tuning on a simulated microscope unlike the bundled one: it must help, and be safe."""

import json

import numpy as np
import pytest

from napari_atomdefect.core.errors import AtomDefectError
from napari_atomdefect.core.finetune import (
    MIN_CELLS,
    FinetuneSettings,
    check_selection,
    iter_finetune,
    select_cells,
)
from napari_atomdefect.core.lattice import find_lattice
from napari_atomdefect.core.registry import list_models, resolve_model
from napari_atomdefect.core.scenarios import pooled_f1, shifted_image


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    train = shifted_image(1)
    lattice = find_lattice(train.image, "MoS2", pixel_size_nm=0.012)
    cells = select_cells(lattice, select_all=True)
    corrections = train.defects  # what a user's corrected detections would be
    settings = FinetuneSettings(noise_steps=30, detector_steps=300, n_sim_images=6)
    items = list(iter_finetune(train.image, lattice, cells, None, "shifted", settings,
                               corrections=corrections, device="cpu", source="shifted_1",
                               out_dir=out))
    return items, out / "shifted"


def test_finetune_improves_f1_on_held_out_images(tuned):
    items, path = tuned
    assert items[-1]["done"] and path.is_dir()
    held_out = [shifted_image(seed) for seed in (11, 12, 13)]
    classes = ["V_S", "V_S2", "O_S", "V_Mo"]
    before = pooled_f1(None, held_out)
    after = pooled_f1(str(path), held_out)
    gain = after[classes].mean() - before[classes].mean()  # mean per-class F1
    assert gain > 0.025, (before.to_dict(), after.to_dict())
    assert after["V_S|O_S"] >= before["V_S|O_S"] - 0.02, (before.to_dict(), after.to_dict())


def test_card_and_progress(tuned):
    items, path = tuned
    card = json.loads((path / "card.json").read_text())
    ft = card["fine_tuning"]
    assert ft["cells_used"] > 100 and ft["source_image"] == "shifted_1"
    assert ft["corrections_used"] > 100 and card["base_model"] == "mos2-default"
    assert "validation_site_f1" in card["detector"]["metrics"]
    # The simulator was fitted to the image, the chalcogen physics from the corrected sites.
    contrast = ft["calibration"]["contrast"]
    assert contrast["probe_fwhm_nm"] == pytest.approx(0.12, rel=0.25)
    assert contrast["second_atom_factor"] is not None and contrast["light_ratio"] is not None
    assert any("Simulator fitted to your image" in i.get("message", "") for i in items)
    assert {"noise", "detector", "software"} <= set(card)
    stages = {i["stage"] for i in items}
    assert {"noise", "detector", "done"} <= stages
    fractions = [i["fraction"] for i in items if "fraction" in i]
    assert fractions == sorted(fractions)
    assert any("samples" in i for i in items)  # generated cells shown while training


def test_cancel_leaves_models_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path))
    before = [(m.name, m.path) for m in list_models()]
    sim = shifted_image(3)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    gen = iter_finetune(sim.image, lattice, select_cells(lattice, select_all=True), None, "x",
                        FinetuneSettings(noise_steps=200, detector_steps=50, n_sim_images=2))
    for item in gen:
        if item.get("stage") == "noise":
            break
    gen.close()  # what Cancel does
    assert [(m.name, m.path) for m in list_models()] == before
    assert list(tmp_path.iterdir()) == []
    assert resolve_model().bundled


def test_selection_rules():
    sim = shifted_image(4)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    with pytest.raises(AtomDefectError, match="No cells"):
        check_selection(lattice, np.array([], int))
    with pytest.raises(AtomDefectError, match=f"at least {MIN_CELLS}"):
        check_selection(lattice, np.arange(5))
    with pytest.raises(AtomDefectError, match="outside"):
        check_selection(lattice, np.array([10**6] * 30))
    clicks = lattice.metal_sites_px[:3] + 2.0
    assert len(select_cells(lattice, points_px=clicks)) == 3
    square = np.array([[0, 0], [0, 200], [200, 200], [200, 0]], float)
    inside = select_cells(lattice, polygons=[square])
    centres = lattice.metal_sites_px[inside] + (lattice.a1_px + lattice.a2_px) / 3
    assert len(inside) > 20 and (centres >= 0).all() and (centres <= 200).all()
    assert len(select_cells(lattice, select_all=True)) == lattice.n_cells
