"""Training cells: normalisation, label maps and own-site classes agree with the simulator."""

import numpy as np

from napari_atomdefect.core.cells.normalize import intensity_levels
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.materials.columns import class_names, segment_classes
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
from napari_atomdefect.core.train.datasets import cells_from_simulation


def test_levels_and_labels():
    sim = simulate_image("MoS2", 320, 0.012, params=MicroscopeParams(dose_e_per_A2=1e6), seed=2,
                         defect_fractions={"V_S": 0.1, "V_S2": 0.05, "O_S": 0.05, "V_Mo": 0.05})
    lat = find_lattice(sim.image, "MoS2")
    lv = intensity_levels(sim.image, lat)
    assert lv.metal > lv.chalcogen > lv.background
    cells = cells_from_simulation(sim)
    assert len(cells) > 100 and cells.labels.shape == cells.tiles.shape
    # The label map carries the own classes at the own site positions.
    for j in (0, 1):
        rc = np.round(cells.own_sites[:, j]).astype(int)
        at = cells.labels[np.arange(len(cells)), rc[:, 0], rc[:, 1]]
        assert np.mean(at == cells.own_classes[:, j]) > 0.98
    # Normalised intensities: pristine chalcogen ~1, V_S2 ~0, metal brighter than chalcogen.
    rc = np.round(cells.own_sites[:, 1]).astype(int)
    val = cells.tiles[np.arange(len(cells)), rc[:, 0], rc[:, 1]]
    k = {c: segment_classes(class_names("MoS2")).index(c) for c in ("chalcogen", "V_S", "V_S2")}
    mean = {c: val[cells.own_classes[:, 1] == i].mean() for c, i in k.items()}
    # (peak pixels are a little above the smoothed levels used for normalisation)
    assert 0.8 < mean["chalcogen"] < 1.6 and mean["V_S2"] < 0.3
    assert mean["V_S2"] < mean["V_S"] < mean["chalcogen"]
