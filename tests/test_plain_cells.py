"""Plain cells (both own columns on the host's levels) read by the detector in a sample.

The detector would call them all pristine; a regular sample of them confirms it batch by batch,
the others take the sample's probabilities. The calls must not change: the same defects, the
same classes and confidences, with or without the sampling.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_atomdefect.core.detect import plain_cells as plain
from napari_atomdefect.core.materials.materials import get_material
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image


def test_the_band_is_the_narrower_of_the_noise_and_the_nearest_defect_rung():
    rng = np.random.default_rng(0)
    rel, sd = plain.relative_levels(rng.normal(50.0, 1.0, 2000))
    assert sd == pytest.approx(0.02, rel=0.1)
    inside = plain.in_band(rel, sd, "chalcogen")
    assert 0.97 < inside.mean() < 1.0                 # 2.5 noise widths
    # A noisy image: the band stops at 0.10 of the host level (O beside an S reads 0.77 at most).
    rel, sd = plain.relative_levels(rng.normal(50.0, 10.0, 2000))
    inside = plain.in_band(rel, sd, "chalcogen")
    assert np.abs(rel[inside] - 1).max() <= 0.10 and inside.mean() < 0.45
    assert not plain.in_band(np.array([0.77, np.nan, 0.0]), 0.02, "chalcogen").any()


def test_above_the_host_the_band_stops_at_a_defect_rung_only_where_one_is_brighter():
    rel = np.array([0.85, 0.92, 1.08, 1.15, 1.19, 1.25])
    # noise 0.08 of the level: 2.5 widths reach 0.20, the nearest lighter rung caps them at 0.10
    np.testing.assert_array_equal(plain.in_band(rel, 0.08, "chalcogen"),
                                  [False, True, True, False, False, False])
    np.testing.assert_array_equal(plain.in_band(rel, 0.08, "chalcogen", brighter=False),
                                  [False, True, True, True, True, False])
    # a quiet image: the noise is the band on both sides
    assert not plain.in_band(np.array([1.06]), 0.02, "chalcogen", brighter=False).any()


def test_brighter_classes_are_heavier_elements_on_the_sublattice():
    mos2, ws2, wse2 = (get_material(m) for m in ("MoS2", "WS2", "WSe2"))
    assert plain.brighter_classes(("V_S", "V_S2", "O_S", "V_Mo"), mos2) == {
        "metal": False, "chalcogen": False}
    assert plain.brighter_classes(("O_S", "Se_S"), mos2) == {"metal": False, "chalcogen": True}
    assert plain.brighter_classes(("V_Mo", "W_Mo"), mos2) == {"metal": True, "chalcogen": False}
    assert plain.brighter_classes(("Mo_S2",), mos2)["chalcogen"]            # an antisite
    assert plain.brighter_classes(("Mo_W", "V_S"), ws2) == {"metal": False, "chalcogen": False}
    assert plain.brighter_classes(("S_Se", "S2_Se2"), wse2)["chalcogen"] is False
    assert plain.brighter_classes(("S_Se", "Te_Se"), wse2)["chalcogen"] is True


def test_plain_tiles_need_both_own_sites_and_a_sample_is_read():
    metal_ok = np.array([True, True, False, True])
    chalc_ok = np.array([True, False, True, True])
    tiles = plain.plain_cells(metal_ok, chalc_ok, np.array([0, 1, 2, 3, -1]),
                              np.array([0, 1, 2, 3, 3]), np.array([True, True, True, False, True]))
    np.testing.assert_array_equal(tiles, [True, False, False, False, False])
    many = np.ones(1000, bool)
    picked = plain.sample(many)
    assert picked.sum() == 1000 // plain.SAMPLE_EVERY
    few = np.zeros(1000, bool)
    few[:20] = True
    np.testing.assert_array_equal(plain.sample(few), few)   # too few to skip any


def test_a_sample_confirms_only_when_every_cell_is_pristine():
    p = np.tile([[0.99, 0.01]], (40, 1))
    assert plain.confirmed(p, p)
    unsure = p.copy()
    unsure[:3] = [0.85, 0.15]                                 # a few below 0.9: still pristine
    assert plain.confirmed(unsure, p)
    called = p.copy()
    called[5] = [0.3, 0.7]                                    # one called a defect: read them all
    assert not plain.confirmed(p, called)
    assert not plain.confirmed(np.zeros((0, 2)), np.zeros((0, 2)))


@pytest.fixture(scope="module")
def mos2():
    params = MicroscopeParams.random(np.random.default_rng(5), "MoS2", dose_e_per_A2=5e5)
    return simulate_image("MoS2", 512, 0.012, params=params, seed=5)


def _detect(sim, monkeypatch, mode: str):
    from napari_atomdefect.core.detect.detect import detect

    monkeypatch.setenv(plain.ENV_SWITCH, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return detect(sim.image, pixel_size_nm=0.012, material="MoS2", device="cpu")


def _count_skipped(monkeypatch) -> list[int]:
    """How many plain cells each batch skipped (filled as detection runs)."""
    import napari_atomdefect.core.detect.detect as detect_module

    skipped: list[int] = []
    original = detect_module._with_plain_cells

    def counting(read, batch, own, skip, is_plain):
        skipped.append(int(skip.sum()))
        return original(read, batch, own, skip, is_plain)

    monkeypatch.setattr(detect_module, "_with_plain_cells", counting)
    return skipped


def test_sampling_plain_cells_leaves_every_call_as_it_was(mos2, monkeypatch):
    skipped = _count_skipped(monkeypatch)
    sampled = _detect(mos2, monkeypatch, "1")
    assert sum(skipped) > 0.3 * sampled.attrs["n_cells"]
    every = _detect(mos2, monkeypatch, "0")
    assert len(sampled) == len(every) >= 10
    cols = ["y_px", "x_px", "class"]
    assert sampled[cols].reset_index(drop=True).equals(every[cols].reset_index(drop=True))
    np.testing.assert_allclose(sampled["confidence"], every["confidence"], atol=1e-6)


def test_an_unconfirmed_sample_reads_every_cell(mos2, monkeypatch):
    monkeypatch.setattr(plain, "confirmed", lambda *_: False)
    unconfirmed = _detect(mos2, monkeypatch, "1")
    every = _detect(mos2, monkeypatch, "0")
    cols = ["y_px", "x_px", "class", "confidence"]
    assert unconfirmed[cols].reset_index(drop=True).equals(every[cols].reset_index(drop=True))


def test_a_lowered_operating_point_reads_every_cell(mos2, monkeypatch):
    """Trial: at an operating point of 0.15 the faint calls on plain columns (0.05–0.09) were
    lost in the sample's mean; below neutral every cell is read."""
    import napari_atomdefect.core.detect.detect as detect_module

    called = []

    def sampled(*args):
        called.append(1)
        raise AssertionError("plain cells were sampled below a neutral operating point")

    monkeypatch.setattr(detect_module, "_with_plain_cells", sampled)
    monkeypatch.setenv(plain.ENV_SWITCH, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detect_module.detect(mos2.image, pixel_size_nm=0.012, material="MoS2", device="cpu",
                             operating_point="O_S=0.3")
    assert not called


def test_a_lowered_antisite_operating_point_still_samples_plain_cells(mos2, monkeypatch):
    """The antisite is read from the chalcogen levels, not by the detector: lowering its
    operating point asks nothing of the detector's plain cells."""
    import napari_atomdefect.core.detect.detect as detect_module

    skipped = _count_skipped(monkeypatch)
    monkeypatch.setenv(plain.ENV_SWITCH, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detect_module.detect(mos2.image, pixel_size_nm=0.012, material="MoS2", device="cpu",
                             substituents="O,Mo", operating_point="Mo_S2=0.3")
    assert sum(skipped) > 0
