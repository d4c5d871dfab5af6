"""Fitting the simulator to an image: recovers the probe and contrast of a known microscope."""

import numpy as np
import pytest

from napari_atomdefect.core.finetune.calibrate import chalcogen_posterior, chalcogen_prior, fit_contrast
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.materials.materials import get_material
from napari_atomdefect.core.simulate.image import MicroscopeParams, element_weight, simulate_image

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
    # Hundreds of corrected sites at high dose: the evidence outweighs the prior, the posterior
    # stays at the fit and is narrow; the training images are drawn from it.
    for name in ("second_atom_factor", "light_ratio"):
        mean, sd = fit.posterior[name]
        assert abs(mean - getattr(fit, name)) < 0.05
        assert sd < 0.5 * chalcogen_prior("MoS2")[name][1]
    rng = np.random.default_rng(0)
    draws = [fit.simulator_params("MoS2", rng)["second_atom_factor"] for _ in range(200)]
    assert abs(np.mean(draws) - fit.posterior["second_atom_factor"][0]) < 0.02


def test_posterior_combines_fit_and_prior():
    # One probe parameter and the second-atom factor; the V_S level moves by -0.5 per unit of the
    # factor and is known to 0.05, so the fit alone says 0.6 +- 0.1; a prior of 0.85 +- 0.1
    # gives the precision-weighted mean 0.725 +- 0.1/sqrt(2).
    post, corr = chalcogen_posterior(["probe_fwhm_a", "second_atom_factor"], np.array([0.3, 0.6]),
                                     np.diag([1.0, -0.5]), np.array([0.01, 0.05]),
                                     {"second_atom_factor": (0.85, 0.1)})
    assert list(post) == ["second_atom_factor"] and corr == 0.0
    assert post["second_atom_factor"][0] == pytest.approx(0.725, abs=1e-3)
    assert post["second_atom_factor"][1] == pytest.approx(0.1 / np.sqrt(2), abs=1e-3)


def test_few_noisy_sites_give_a_wide_posterior(sim):
    # The same microscope at a tenth of the dose with a dozen corrected sites per class: the
    # levels are uncertain, so the posterior is wider than with the many clean sites above.
    low = simulate_image("MoS2", 384, 0.012, params=MicroscopeParams(**{**TRUE,
                         "dose_e_per_A2": 3e4}), seed=6,
                         defect_fractions={"V_S": 0.05, "V_S2": 0.0, "O_S": 0.05, "V_Mo": 0.0})
    few = fit_contrast(low.image, find_lattice(low.image, "MoS2", pixel_size_nm=0.012),
                       corrections=low.defects)
    many = fit_contrast(sim.image, find_lattice(sim.image, "MoS2", pixel_size_nm=0.012),
                        corrections=sim.defects)
    for name in ("second_atom_factor", "light_ratio"):
        assert few.posterior[name][1] > 1.5 * many.posterior[name][1]
