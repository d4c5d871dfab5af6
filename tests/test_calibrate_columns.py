"""Fitting the simulator on a selenide: V_Se and S_Se fit the chalcogen physics."""

import numpy as np
import pytest

from napari_atomdefect.core.finetune.calibrate import fit_contrast, fitted_classes
from napari_atomdefect.core.finetune.simulator import describe_calibration
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

TRUE = dict(probe_fwhm_nm=0.1, tail_fraction=0.1, tail_fwhm_nm=0.5, second_atom_factor=0.8,
            light_ratio=0.3, dose_e_per_A2=3e5, row_jitter_nm=0.0, background=0.05)


def test_fitted_classes_per_host():
    assert fitted_classes("WS2") == {"second_atom_factor": "V_S", "light_ratio": "O_S"}
    assert fitted_classes("MoSe2") == {"second_atom_factor": "V_Se", "light_ratio": "S_Se"}


def test_selenide_corrections_fit_the_chalcogen_physics():
    sim = simulate_image("WSe2", 384, 0.012, params=MicroscopeParams(**TRUE), seed=5,
                         substituents="all",
                         defect_fractions={"V_Se": 0.08, "S_Se": 0.08, "Te_Se": 0.04,
                                           "V_W": 0.02})
    lattice = find_lattice(sim.image, "WSe2", pixel_size_nm=0.012)
    fit = fit_contrast(sim.image, lattice, corrections=sim.defects)
    assert fit.n_sites["V_Se"] >= 10 and fit.n_sites["S_Se"] >= 10 and fit.n_sites["Te_Se"] >= 5
    assert fit.fitted_from == {"second_atom_factor": "V_Se", "light_ratio": "S_Se"}
    assert fit.second_atom_factor == pytest.approx(0.8, abs=0.12)
    assert fit.light_ratio == pytest.approx(0.3, abs=0.1)
    for level in ("V_Se", "S_Se", "Te_Se"):  # Te_Se is not fitted but simulated alike
        assert abs(fit.simulated[level] - fit.measured[level]) < 0.05, level
    assert fit.measured["Te_Se"] > 1.0 > fit.measured["S_Se"] > fit.measured["V_Se"]
    text = describe_calibration({"contrast": fit.to_dict()})
    assert f"from {fit.n_sites['V_Se']} V_Se" in text and f"from {fit.n_sites['S_Se']} S_Se" in text
    params = fit.simulator_params("WSe2", np.random.default_rng(0))
    w = params["element_weights"]
    assert w["Te"] / w["Se"] > 1.5 and w["S"] / w["Se"] < 0.5  # substituents scaled with host


def test_partner_cross_term_follows_the_fitted_host_term():
    """A column holding the other of S and Se reads the mean of the host's and its own cross
    term; a fine-tuning draw keeps the drawn microscope's offset between the two and moves it
    with the fitted host term (not a random microscope's partner term beside a fitted host)."""
    from dataclasses import replace

    from napari_atomdefect.core.finetune.calibrate import ContrastFit
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.materials.physics import random_column_physics

    sim = simulate_image("WSe2", 256, 0.012, params=MicroscopeParams(**TRUE), seed=5,
                         substituents="S", defect_fractions={"V_Se": 0.08, "S_Se": 0.08})
    fit = fit_contrast(sim.image, find_lattice(sim.image, "WSe2", pixel_size_nm=0.012),
                       corrections=sim.defects)
    assert isinstance(fit, ContrastFit)
    for s_fit in (0.6, 1.4):
        point = replace(fit, second_atom_factor=s_fit, posterior={})
        for seed in range(5):
            params = point.simulator_params("WSe2", np.random.default_rng(seed), spread=0.0)
            phys = random_column_physics(get_material("WSe2"), np.random.default_rng(seed),
                                         all_voltages=True)  # fine-tuning's range
            offset = phys["partner_cross_term"] - (phys["second_atom_factor"] - 1) / 2
            c_host = (params["second_atom_factor"] - 1) / 2
            assert params["second_atom_factor"] == pytest.approx(s_fit)
            assert params["partner_cross_term"] == pytest.approx(max(c_host + offset, -0.3))


def test_an_alloys_contrast_is_fitted_against_its_host_column():
    """Trial, twenty-second session: on a real WS2 + Se image whose median column is S + Se,
    fine-tuning fitted the metal/chalcogen contrast against that median column (2.9 where W
    over S2 is ~6): the levels are now read in host units, by the image's Z-contrast ladder
    with the substituents of the corrected calls. An alloy and a pristine layer of one
    microscope fit the same contrast."""
    params = MicroscopeParams(**TRUE)
    pristine = simulate_image("WS2", 320, 0.012, params=params, seed=6,
                              defect_fractions={"V_S": 0.06, "V_W": 0.02})
    c = 0.5
    alloy = simulate_image("WS2", 320, 0.012, params=params, seed=6, substituents="Se",
                           defect_fractions={"V_S": 0.04, "Se_S": 2 * c * (1 - c),
                                             "Se2_S2": c * c, "V_W": 0.02})
    fits = [fit_contrast(sim.image, find_lattice(sim.image, "WS2", pixel_size_nm=0.012),
                         corrections=sim.defects) for sim in (pristine, alloy)]
    assert fits[1].metal_to_chalcogen == pytest.approx(fits[0].metal_to_chalcogen, rel=0.15)
    assert fits[1].measured["Se2_S2"] > fits[1].measured["Se_S"] > 1.0 > fits[1].measured["V_S"]
