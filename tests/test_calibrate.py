"""Fitting the simulator to an image: recovers the probe and contrast of a known microscope."""

import numpy as np
import pytest

from napari_atomdefect.core.calibrate import fit_contrast
from napari_atomdefect.core.lattice import find_lattice
from napari_atomdefect.core.materials import get_material
from napari_atomdefect.core.simulate import MicroscopeParams, element_weight, simulate_image

TRUE = dict(probe_fwhm_nm=0.1, tail_fraction=0.1, tail_fwhm_nm=0.5, second_atom_factor=0.8,
            light_ratio=0.15, dose_e_per_A2=3e5, row_jitter_nm=0.0, background=0.05)


@pytest.fixture(scope="module")
def sim():
    return simulate_image("MoS2", 384, 0.012, params=MicroscopeParams(**TRUE), seed=5,
                          defect_fractions={"V_S": 0.08, "V_S2": 0.02, "O_S": 0.08, "V_Mo": 0.02})


def test_fit_recovers_probe_and_contrast(sim):
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    fit = fit_contrast(sim.image, lattice)
    mat = get_material("MoS2")
    p = sim.params
    true_ratio = element_weight("Mo", p, mat) / (element_weight("S", p, mat) * 1.8)
    assert fit.probe_fwhm_nm == pytest.approx(0.1, rel=0.12)
    assert fit.metal_to_chalcogen == pytest.approx(true_ratio, rel=0.1)
    assert fit.second_atom_factor is None and fit.light_ratio is None  # no corrections given
    for level in ("metal", "bridge"):
        assert abs(fit.simulated[level] - fit.measured[level]) < 0.03


def test_corrections_fit_the_chalcogen_physics(sim):
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    fit = fit_contrast(sim.image, lattice, corrections=sim.defects)
    assert fit.n_sites["V_S"] >= 10 and fit.n_sites["O_S"] >= 10
    assert fit.second_atom_factor == pytest.approx(0.8, abs=0.12)
    assert fit.light_ratio == pytest.approx(0.15, abs=0.1)
    for level in ("V_S", "O_S"):  # the fitted simulation reproduces the image's levels
        assert abs(fit.simulated[level] - fit.measured[level]) < 0.03
    rng = np.random.default_rng(0)
    params = fit.simulator_params("MoS2", rng)
    assert abs(params["second_atom_factor"] - fit.second_atom_factor) < 0.1
