"""Local background from the hollow sites (``core/cells/background.py``): it removes a patchy
contamination background and leaves a clean lattice's levels alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from napari_atomdefect.core.cells.background import flatten_background, local_background
from napari_atomdefect.core.cells.normalize import intensity_levels, prepare_image, site_smoothed
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.sampling import sample_bilinear
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

PX = 0.012


def _chalcogen_levels(smoothed, levels, sites):
    ch = sites[sites["class"] == "chalcogen"]
    v = sample_bilinear(smoothed, ch.y_px.to_numpy(), ch.x_px.to_numpy())
    return (v - levels.background) / (levels.chalcogen - levels.background)


@pytest.mark.parametrize("length_nm", [0.4, 1.0, 2.5])
def test_flattening_removes_patchy_contamination(length_nm):
    params = MicroscopeParams(contamination=0.1, contamination_length_nm=length_nm,
                              dose_e_per_A2=None)
    sim = simulate_image("MoS2", 384, PX, params=params, seed=3)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=PX)
    smoothed = site_smoothed(sim.image, lattice)
    raw = _chalcogen_levels(smoothed, intensity_levels(sim.image, lattice, smoothed), sim.sites)
    prepared = prepare_image(sim.image, lattice)
    flat = _chalcogen_levels(prepared.smoothed, prepared.levels, sim.sites)
    # Pristine chalcogen columns of a noise-free image: one level, up to the contamination.
    assert raw.std() > 0.045
    assert flat.std() < 0.5 * raw.std()
    assert flat.std() < 0.03

    # The map follows the true contamination (same image without it).
    bare = simulate_image("MoS2", 384, PX, params=replace(params, contamination=0.0), seed=3)
    true_bg = sim.clean - bare.clean
    inner = (slice(40, -40), slice(40, -40))
    found = local_background(smoothed, lattice)
    r = np.corrcoef(found[inner].ravel(), true_bg[inner].ravel())[0, 1]
    assert r > 0.8


def test_flattening_leaves_a_clean_lattice_with_defects_alone():
    fractions = {"V_S": 0.08, "V_S2": 0.04, "O_S": 0.06, "V_Mo": 0.04}
    sim = simulate_image("MoS2", 384, PX, params=MicroscopeParams(background=0.0,
                                                                 dose_e_per_A2=None),
                         defect_fractions=fractions, seed=5)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=PX)
    smoothed = site_smoothed(sim.image, lattice)
    levels = intensity_levels(sim.image, lattice, smoothed)
    _, _, offset = flatten_background(sim.image, lattice, smoothed)
    assert offset is not None
    scale = levels.chalcogen - levels.background
    # Vacancies take the tails of their neighbours away from a few hollows: the robust map
    # must not turn that into a background (at most 2 % of a chalcogen column anywhere).
    assert np.abs(offset).max() < 0.02 * scale


def test_too_few_hollow_sites_leave_the_image_unchanged():
    sim = simulate_image("MoS2", 384, PX, params=MicroscopeParams(dose_e_per_A2=None), seed=1)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=PX)
    small = replace(lattice, chalcogen_sites_px=lattice.chalcogen_sites_px[:5])
    smoothed = site_smoothed(sim.image, small)
    flat, flat_smoothed, offset = flatten_background(sim.image, small, smoothed)
    assert offset is None
    np.testing.assert_array_equal(flat, sim.image)
    np.testing.assert_array_equal(flat_smoothed, smoothed)


def test_clean_and_noisy_images_are_prepared_alike():
    params = MicroscopeParams(contamination=0.08, contamination_length_nm=0.8, dose_e_per_A2=3e5)
    sim = simulate_image("MoS2", 256, PX, params=params, seed=7)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=PX)
    prepared = prepare_image(sim.image, lattice)
    # The noise-free image of the same field is flattened with the noisy image's map.
    clean = prepared.normalise(sim.clean)
    np.testing.assert_allclose(clean, (sim.clean - prepared.offset - prepared.levels.background)
                               / (prepared.levels.chalcogen - prepared.levels.background),
                               rtol=1e-5, atol=1e-5)
    assert abs(float(np.mean(prepared.normalised - clean))) < 0.05
