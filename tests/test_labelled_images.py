"""Training cells from labelled images of another simulator (core/train/labelled_images.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.errors import AtomDefectError
from napari_atomdefect.core.materials.columns import class_names
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
from napari_atomdefect.core.train.datasets import class_index
from napari_atomdefect.core.train.labelled_images import (
    cells_from_labelled_folder,
    labelled_image_folders,
)
from napari_atomdefect.core.train.pipeline import DETECTOR_TILE


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """A labelled image in the dev-set layout (noise-free image, labels, meta), made with the
    project's simulator standing in for another one."""
    sim = simulate_image("MoS2", 256, 0.012, params=MicroscopeParams(dose_e_per_A2=5e5),
                         seed=5, defect_fractions={"V_S": 0.06, "O_S": 0.04, "V_S2": 0.02,
                                                   "V_Mo": 0.02})
    folder = tmp_path_factory.mktemp("set") / "img_0"
    folder.mkdir()
    np.save(folder / "image_clean.npy", sim.clean)
    sim.defects[["x_px", "y_px", "class"]].to_csv(folder / "labels.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"pixel_size_A": 0.12, "material": "MoS2",
                                                  "args": {"dose": 5e5, "read_noise": 1.0}}))
    return sim, folder


def test_folders_are_found_below_a_path(labelled_folder, tmp_path):
    _, folder = labelled_folder
    assert labelled_image_folders([folder.parent]) == [folder]
    assert labelled_image_folders([folder]) == [folder]
    with pytest.raises(AtomDefectError, match="No labelled image folder"):
        labelled_image_folders([tmp_path])


def test_cells_carry_the_labels_at_every_dose(labelled_folder):
    """Every unit cell, once per noise realisation; its own sites take the labels' classes
    (pristine elsewhere), so the defect counts are the labelled ones (cells in the lattice)."""
    sim, folder = labelled_folder
    classes = class_names("MoS2")
    cells = cells_from_labelled_folder(folder, classes, DETECTOR_TILE, n_doses=2, seed=1)
    assert cells is not None and cells.tiles.shape[1:] == (DETECTOR_TILE.size_px,) * 2
    index = class_index(classes)
    own = cells.own_classes
    per_dose = len(cells) // 2
    assert per_dose > 0.8 * (sim.sites.sublattice == "metal").sum()
    for name in ("V_S", "O_S", "V_Mo"):
        labelled = int((sim.defects["class"] == name).sum())
        found = int((own == index[name]).sum()) / 2
        assert 0.7 * labelled <= found <= labelled, (name, found, labelled)
    # two different noise realisations of the same cells
    first, second = cells.tiles[:per_dose], cells.tiles[per_dose:2 * per_dose]
    assert first.shape == second.shape and not np.allclose(first, second)


def test_train_detector_takes_labelled_images(labelled_folder, tmp_path):
    _, folder = labelled_folder
    out = tmp_path / "with-labelled"
    assert main(["train-detector", "--material", "MoS2", "--n-images", "1", "--val-images",
                 "1", "--steps", "2", "--batch-size", "8", "--threads", "1",
                 "--translated-fraction", "0", "--labelled", str(folder.parent),
                 "--labelled-doses", "1", "--out", str(out)]) == 0
    training = json.loads((out / "card.json").read_text())["detector"]["training"]
    assert training["labelled_images"] == 1 and training["labelled_cells"] > 100
    assert training["labelled_doses"] == 1
