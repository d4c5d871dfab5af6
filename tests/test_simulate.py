"""The HAADF simulator: determinism, labels, physics of column intensities, dose scaling."""

import numpy as np
import pytest

from napari_atomdefect.core.errors import UnknownMaterialError
from napari_atomdefect.core.materials.columns import class_names
from napari_atomdefect.core.materials.materials import MATERIALS, get_material
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image


def test_same_seed_same_image():
    a = simulate_image("MoS2", 128, 0.012, seed=5)
    b = simulate_image("MoS2", 128, 0.012, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.defects.equals(b.defects)


def test_sites_and_defect_labels_consistent(sim_mos2):
    sites = sim_mos2.sites
    h, w = sim_mos2.image.shape
    assert sites.y_px.between(-0.5, h - 0.5).all() and sites.x_px.between(-0.5, w - 0.5).all()
    # Honeycomb: as many chalcogen as metal sites (up to the border), about a = 0.316 nm apart.
    n_m = (sites.sublattice == "metal").sum()
    n_x = (sites.sublattice == "chalcogen").sum()
    assert abs(n_m - n_x) < 0.05 * n_m
    area_nm2 = h * w * 0.012**2
    cell_nm2 = 0.316**2 * np.sqrt(3) / 2
    assert n_m == pytest.approx(area_nm2 / cell_nm2, rel=0.05)
    assert set(sim_mos2.defects["class"]) <= set(class_names("MoS2"))
    assert len(sim_mos2.defects) == (~sites["class"].isin(["metal", "chalcogen"])).sum()
    metal_classes = set(sites[sites.sublattice == "metal"]["class"])
    assert metal_classes <= {"metal", "V_Mo"}


def test_column_intensities_follow_labels():
    params = MicroscopeParams(dose_e_per_A2=None, tail_fraction=0.0, background=0.0,
                              row_jitter_nm=0.0, drift_nm=0.0, light_ratio=0.15)
    sim = simulate_image("MoS2", 384, 0.012, params=params, seed=1,
                         defect_fractions={"V_S": 0.1, "V_S2": 0.05, "O_S": 0.1, "V_Mo": 0.05})
    s = sim.sites
    rr = np.clip(np.round(s.y_px).astype(int), 0, 383)
    cc = np.clip(np.round(s.x_px).astype(int), 0, 383)
    s = s.assign(v=sim.clean[rr, cc])
    mean = s.groupby("class").v.mean()
    # Mo (Z=42) > S2 (2 x Z=16) > S+O > S > empty sites (only the neighbours' tails)
    assert mean["metal"] > mean["chalcogen"] > mean["O_S"] > mean["V_S"] > mean["V_S2"]
    assert mean["V_Mo"] < 0.1 * mean["metal"]
    ratio = mean["metal"] / mean["chalcogen"]
    expected = 42**1.7 / (16**1.7 * (1 + params.second_atom_factor))
    assert ratio == pytest.approx(expected, rel=0.1)


def test_peaks_at_labelled_positions():
    params = MicroscopeParams(dose_e_per_A2=None, background=0.0)
    sim = simulate_image("WS2", 256, 0.01, params=params, seed=2, defect_fractions={})
    s = sim.sites[(sim.sites.sublattice == "metal") & sim.sites.y_px.between(5, 250)
                  & sim.sites.x_px.between(5, 250)]
    img = sim.clean
    for y, x in s[["y_px", "x_px"]].to_numpy()[:20]:
        r, c = int(round(y)), int(round(x))
        patch = img[r - 2:r + 3, c - 2:c + 3]
        pr, pc = np.unravel_index(patch.argmax(), patch.shape)
        assert abs(pr - 2) <= 1 and abs(pc - 2) <= 1


def test_dose_sets_counts():
    lo = simulate_image("MoS2", 256, 0.012, dose_e_per_A2=1e4, seed=0)
    hi = simulate_image("MoS2", 256, 0.012, dose_e_per_A2=1e6, seed=0)
    assert hi.clean.mean() == pytest.approx(100 * lo.clean.mean(), rel=1e-3)
    # Poisson: the noisy image's variance around the clean one equals its mean (plus read noise).
    resid = lo.image - lo.clean
    assert resid.var() == pytest.approx(lo.clean.mean() + 1.0, rel=0.1)


@pytest.mark.parametrize("name", list(MATERIALS))
def test_all_presets_simulate(name):
    sim = simulate_image(name, 128, 0.012, seed=0)
    assert sim.image.shape == (128, 128) and np.isfinite(sim.image).all()
    assert sim.material == get_material(name)


def test_unknown_material():
    with pytest.raises(UnknownMaterialError, match="Known materials"):
        simulate_image("GaN", 64, 0.012)


def test_column_scatter_varies_columns_by_the_set_amount():
    """``column_scatter`` adds an independent variation to every column, in units of a pristine
    chalcogen column."""
    from napari_atomdefect.core.cells.normalize import prepare_image
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.sampling import sample_bilinear
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    spreads = {}
    for scatter in (0.0, 0.05):
        params = MicroscopeParams(column_scatter=scatter, background=0.0, tail_fraction=0.0,
                                  dose_e_per_A2=None)
        sim = simulate_image("MoS2", 384, 0.012, params=params, seed=11, defect_fractions={})
        lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
        prep = prepare_image(sim.image, lattice)
        lv = prep.levels
        ch = sim.sites[sim.sites["class"] == "chalcogen"]
        v = (sample_bilinear(prep.smoothed, ch.y_px.to_numpy(), ch.x_px.to_numpy())
             - lv.background) / (lv.chalcogen - lv.background)
        spreads[scatter] = (float(v.std()),)
    assert spreads[0.0][0] < 0.02  # scan jitter and drift only
    expected = 0.05  # in chalcogen-column units, as the levels are read
    added = np.sqrt(spreads[0.05][0] ** 2 - spreads[0.0][0] ** 2)
    assert 0.7 * expected < added < 1.3 * expected
