"""Defect calls at the edge of the field carry a lower confidence (core/detect/edge.py)."""

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.core.detect.edge import (
    EDGE_BAND_A,
    EDGE_LOGIT_SCALE,
    EDGE_LOGIT_SHIFT,
    edge_adjusted,
    edge_confidence,
    edge_distance_a,
)


def test_edge_distance_in_lattice_constants():
    pts = np.array([[0.0, 50.0], [50.0, 99.0], [50.0, 50.0]])
    np.testing.assert_allclose(edge_distance_a(pts, (100, 100), 25.0), [0.02, 0.02, 1.98])


def test_only_defect_calls_in_the_band_are_lowered():
    a_px, shape = 30.0, (300, 300)
    near = EDGE_BAND_A * a_px / 2  # inside the band
    sites = pd.DataFrame({"y_px": [near, near, 150.0, 150.0], "x_px": [100.0, 120.0, 150.0, near + 20],
                          "class": ["V_S", "chalcogen", "V_S", "O_S"],
                          "confidence": [0.8, 0.95, 0.8, 0.7]})
    out = edge_adjusted(sites, shape, a_px)
    logit = EDGE_LOGIT_SCALE * np.log(0.8 / 0.2) + EDGE_LOGIT_SHIFT
    assert out["confidence"].iloc[0] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert out["confidence"].iloc[0] < 0.8
    assert list(out["confidence"].iloc[1:]) == [0.95, 0.8, 0.7]  # pristine, inside, inside
    assert list(sites["confidence"]) == [0.8, 0.95, 0.8, 0.7]  # the input is not changed
    assert list(out["class"]) == list(sites["class"])  # the calls themselves stay


def test_detection_lowers_the_confidence_of_calls_at_the_edge_only(monkeypatch):
    import napari_atomdefect.core.detect.edge as edge
    from napari_atomdefect import detect
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 320, 0.012, seed=7, defect_fractions={"V_S": 0.08, "V_S2": 0.04})
    found = detect(sim.image, pixel_size_nm=0.012)
    monkeypatch.setattr(edge, "EDGE_LOGIT_SHIFT", 0.0)
    monkeypatch.setattr(edge, "EDGE_LOGIT_SCALE", 1.0)
    plain = detect(sim.image, pixel_size_nm=0.012)
    assert list(found["class"]) == list(plain["class"])  # the calls stay
    a_px = 0.316 / 0.012
    e = edge_distance_a(found[["y_px", "x_px"]].to_numpy(), sim.image.shape, a_px)
    near = e < EDGE_BAND_A
    assert near.any() and (~near).sum() > 10
    np.testing.assert_allclose(found["confidence"][~near], plain["confidence"][~near])
    p = np.clip(plain["confidence"][near].to_numpy(), 1e-6, 1 - 1e-6)
    want = 1 / (1 + np.exp(-(EDGE_LOGIT_SCALE * np.log(p / (1 - p)) + EDGE_LOGIT_SHIFT)))
    np.testing.assert_allclose(found["confidence"][near], want, rtol=1e-6)
    assert (found["confidence"][near] < plain["confidence"][near]).all()


def test_the_surest_edge_calls_come_down_the_most():
    """On held-out images the surest calls at the edge were the most overconfident: a call read
    at 0.999 is not left at 0.99+, and no call's confidence is raised (even a weak one)."""
    raw = np.array([0.05, 0.3, 0.6, 0.9, 0.99, 0.999])
    out = edge_confidence(raw)
    assert (out <= raw).all()
    assert out[-1] < 0.99 and out[-2] < 0.9
    z_in, z_out = np.log(raw / (1 - raw)), np.log(out / (1 - out))
    assert (np.diff(z_in - z_out)[2:] > 0).all()  # the log-odds lowered more, the surer the call
    assert np.all(np.diff(out) > 0)  # the order of the calls kept


def _grid_sites(shape=(512, 512), a_px=36.0, seed=0, rate=0.03):
    """A site table on a square grid of ``a_px``/2 spacing, vacancy calls at ``rate``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(5, shape[0] - 5, a_px / 2), np.arange(5, shape[1] - 5, a_px / 2),
                         indexing="ij")
    n = yy.size
    cls = np.where(rng.random(n) < rate, "V_S", "chalcogen").astype(object)
    return pd.DataFrame({"y_px": yy.ravel(), "x_px": xx.ravel(), "class": cls})


def test_vacancy_calls_crowded_along_one_edge_are_said():
    """Trial, twenty-ninth session: real image 12 (512², WS2 + Se) had 16 of its 27 vacancy
    calls in the top fifth of the field — the scan's first lines — and nothing said so. A band
    along one edge with several times the rest's rate of vacancy calls is named; calls spread
    evenly (any of twenty fields at 3 %) are not."""
    from napari_atomdefect.core.detect.edge import crowded_edge_message

    for seed in range(20):
        assert crowded_edge_message(_grid_sites(seed=seed), (512, 512), 36.0) is None
    sites = _grid_sites(seed=1)
    top = (sites.y_px < 100).to_numpy()
    sites.loc[np.flatnonzero(top)[::4], "class"] = "V_S2"
    text = crowded_edge_message(sites, (512, 512), 36.0)
    assert text is not None and "along the top edge (rows 0–108" in text, text
    left = _grid_sites(seed=2)
    left.loc[np.flatnonzero((left.x_px < 80).to_numpy())[::3], "class"] = "V_W"
    assert "along the left edge (columns 0–108" in crowded_edge_message(left, (512, 512), 36.0)
    sites.loc[:, "class"] = "chalcogen"
    assert crowded_edge_message(sites, (512, 512), 36.0) is None
