"""Vegard's law for the lattice calibration of S/Se alloys (core/detect/alloy_calibration.py)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.core.detect.alloy_calibration import (
    partner_material,
    partner_share,
    vegard_calibration,
)
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image


@pytest.fixture(scope="module")
def ws2_lattice():
    sim = simulate_image("WS2", 256, 0.012, MicroscopeParams(dose_e_per_A2=5e5), seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_lattice(sim.image, "WS2")  # calibrated from the WS2 lattice constant


def _sites(n_chalcogen: int, classes: dict[str, int]) -> pd.DataFrame:
    cls = [c for c, n in classes.items() for _ in range(n)]
    cls += ["chalcogen"] * (n_chalcogen - len(cls))
    return pd.DataFrame({"sublattice": ["chalcogen"] * n_chalcogen + ["metal"] * 5,
                         "class": cls + ["metal"] * 5})


def test_partners_and_shares():
    assert partner_material("WS2").name == "WSe2" and partner_material("MoSe2").name == "MoS2"
    sites = _sites(100, {"Se_S": 40, "Se2_S2": 30, "V_S": 5})
    assert partner_share(sites, "WS2") == pytest.approx((40 + 60) / 200)
    assert partner_share(sites, "MoSe2") == 0.0  # no S_Se / S2_Se2 in this table


def test_a_lattice_calibrated_alloy_follows_vegard(ws2_lattice):
    """Half the chalcogen atoms Se: a = the mean of WS2's and WSe2's, the pixel size with it and
    the message says so; pixel sizes from the file or typed by the user stay."""
    lat = ws2_lattice
    assert lat.calibration == "lattice"
    sites = _sites(100, {"Se_S": 50, "Se2_S2": 25})  # (50 + 50) / 200 = half
    out = vegard_calibration(lat, sites)
    a = (0.3153 + 0.3282) / 2
    assert out.pixel_size_nm == pytest.approx(a / lat.a_px, rel=1e-6)
    assert out.pixel_size_nm / lat.pixel_size_nm == pytest.approx(a / 0.3153, rel=1e-6)
    assert any("Vegard's law for 50% Se" in m for m in out.messages)
    assert not any(m.startswith("Pixel size calibrated from the WS2") for m in out.messages)
    assert vegard_calibration(out, sites) is out  # once only
    for source in ("file", "user"):
        given = dataclasses.replace(lat, calibration=source, pixel_size_nm=0.0123)
        assert vegard_calibration(given, sites) is given
    assert vegard_calibration(lat, _sites(100, {"Se_S": 1})) is lat  # 0.5 % Se: no change


def test_detect_reports_vegard_for_an_uncalibrated_alloy(tmp_path, capsys):
    """An uncalibrated WS2 + Se image on the command line: the nm coordinates use the alloy's
    lattice constant, and the user is told."""
    from napari_atomdefect.cli import main

    c = 0.5
    sim = simulate_image("WS2", 320, 0.012, MicroscopeParams(dose_e_per_A2=5e5), seed=3,
                         defect_fractions={"Se_S": 2 * c * (1 - c), "Se2_S2": c * c,
                                           "V_S": 0.03}, substituents="Se")
    np.save(tmp_path / "alloy.npy", sim.image)
    out = tmp_path / "d.csv"
    assert main(["detect", str(tmp_path / "alloy.npy"), "--material", "WS2", "--substituents",
                 "Se", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Vegard's law" in err
    table = pd.read_csv(out)
    ratio = float(np.median(table.x_nm / table.x_px))
    assert 0.3153 / 0.012 * ratio == pytest.approx(0.3153 + 0.5 * 0.0129, rel=0.01)
