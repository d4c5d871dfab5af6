"""Columns along the edge of a real scan read dimmer (fly-back, a rolling-ball background
subtraction): ``core/cells/edge_gain.py`` brings them to the field's gain and leaves the interior
and an edge without that artefact alone."""

from __future__ import annotations

import numpy as np

from napari_atomdefect.core.cells.edge_gain import EDGE_GAIN_BAND_A, correct_edge_gain
from napari_atomdefect.core.cells.normalize import prepare_image
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.sampling import sample_bilinear
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

PX = 0.012


def _metal_by_depth(image: np.ndarray, lattice, background: float) -> tuple[float, float]:
    """Median metal-column amplitude within half a lattice constant of the left edge, and
    inside the field (beyond two lattice constants of every edge)."""
    m = lattice.metal_sites_px
    v = sample_bilinear(image, m[:, 0], m[:, 1]) - background
    h, w = image.shape
    depth = np.minimum(np.minimum(m[:, 0], h - 1 - m[:, 0]), np.minimum(m[:, 1], w - 1 - m[:, 1]))
    left = (m[:, 1] < 0.5 * lattice.a_px) & (depth > 0.1 * lattice.a_px)
    inside = depth > 2 * lattice.a_px
    return float(np.median(v[left])), float(np.median(v[inside]))


def test_a_dim_left_edge_is_brought_to_the_field_and_the_interior_is_left_alone():
    sim = simulate_image("WS2", 448, PX, params=MicroscopeParams(dose_e_per_A2=None), seed=2)
    lattice = find_lattice(sim.image, "WS2", pixel_size_nm=PX)
    clean = prepare_image(sim.image, lattice)
    background = clean.levels.background
    # the first columns of every scan row at 70 % (fly-back), fading in over one cell
    x = np.arange(sim.image.shape[1])
    ramp = np.clip(0.7 + 0.3 * x / lattice.a_px, 0.7, 1.0).astype(np.float32)
    dimmed = (background + (sim.image - background) * ramp[None, :]).astype(np.float32)
    raw_edge, raw_inside = _metal_by_depth(dimmed, lattice, background)
    flat, smoothed = correct_edge_gain(dimmed, dimmed, lattice)
    edge, inside = _metal_by_depth(flat, lattice, background)
    assert raw_edge / raw_inside < 0.85
    assert abs(edge / inside - 1) < 0.05, (raw_edge / raw_inside, edge / inside)
    np.testing.assert_array_equal(flat, smoothed)
    # beyond the band nothing changes
    band = int(np.ceil(EDGE_GAIN_BAND_A * lattice.a_px))
    np.testing.assert_array_equal(flat[band:-band, band:-band], dimmed[band:-band, band:-band])


def test_a_field_without_edge_artefact_keeps_its_levels(monkeypatch):
    from napari_atomdefect.core.cells import normalize

    sim = simulate_image("MoS2", 384, PX, params=MicroscopeParams(dose_e_per_A2=2e6), seed=4)
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=PX)
    corrected = prepare_image(sim.image, lattice)
    monkeypatch.setattr(normalize, "CORRECT_EDGE_GAIN", False)
    plain = prepare_image(sim.image, lattice)
    rel = np.abs(corrected.flat - plain.flat) / (plain.levels.metal - plain.levels.background)
    assert np.percentile(rel, 99) < 0.03, np.percentile(rel, 99)
