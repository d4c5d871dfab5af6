"""Vacancy calls in a row along one scan line are said (a glitch of the scan dims the columns)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from napari_atomdefect.core.detect.scan_lines import scan_line_message, scan_line_runs


def _lattice_sites(a: float = 30.0, size: int = 900, angle_deg: float = 0.0) -> pd.DataFrame:
    """Chalcogen sites of a hexagonal lattice over a square field (pristine)."""
    t = np.deg2rad(angle_deg)
    a1 = a * np.array([np.sin(t), np.cos(t)])
    a2 = a * np.array([np.sin(t + np.pi / 3), np.cos(t + np.pi / 3)])
    ij = np.mgrid[-60:60, -60:60].reshape(2, -1).T
    pts = ij @ np.stack([a1, a2]) + size / 2
    pts = pts[(pts >= 0).all(1) & (pts < size).all(1)]
    return pd.DataFrame({"y_px": pts[:, 0], "x_px": pts[:, 1], "sublattice": "chalcogen",
                         "class": "chalcogen"})


def test_a_row_of_vacancy_calls_along_a_scan_line_is_found_and_random_ones_are_not():
    rng = np.random.default_rng(0)
    sites = _lattice_sites()
    random = rng.random(len(sites)) < 0.05
    sites.loc[random, "class"] = "V_S"
    assert scan_line_runs(sites, (900, 900), 30.0) == []     # 5 % at random: no row
    # a glitch at row ~450 over x 100-320: every column whose centre lies on it called V_S
    on_line = ((np.abs(sites["y_px"] - 450) < 3) & (sites["x_px"] > 100)
               & (sites["x_px"] < 320)).to_numpy()
    assert on_line.sum() >= 7
    sites.loc[on_line, "class"] = "V_S"
    runs = scan_line_runs(sites, (900, 900), 30.0)
    assert len(runs) == 1
    run = runs[0]
    assert abs(run.y_px - 450) < 3 and run.n_calls >= on_line.sum()
    assert 100 < run.x_px[0] < 140 and 280 < run.x_px[1] < 320
    said = scan_line_message(runs)
    assert said.startswith(f"{run.n_calls} vacancy or light-substituent calls lie in a row along "
                           "a scan line (y ≈ 450 px")
    assert "check those calls" in said
    assert scan_line_message([]) is None


def test_an_alloy_rows_of_light_substituent_calls_by_chance_are_not_a_glitch():
    """Set R (forty-fourth session): a selenide with 24 % S called two columns in five S_Se, and
    ten in a row along one lattice row aligned with the scan were said to be a glitch. The run
    could have started anywhere along its band: counted, chance explains such rows (these
    three random alloys had each been said to hold one)."""
    sites0 = _lattice_sites(a=20.0, size=480)
    for seed in (73, 82, 169):
        sites = sites0.copy()
        sites.loc[np.random.default_rng(seed).random(len(sites)) < 0.42, "class"] = "S_Se"
        assert scan_line_runs(sites, (480, 480), 20.0) == []
    # a real glitch in such an alloy is still found: a whole line of 20 columns dim
    sites = sites0.copy()
    sites.loc[np.random.default_rng(0).random(len(sites)) < 0.42, "class"] = "S_Se"
    row = np.abs(sites["y_px"] - sites["y_px"].iloc[len(sites) // 2]) < 1
    sites.loc[row.to_numpy(), "class"] = "V_Se"
    assert int(row.sum()) >= 20 and len(scan_line_runs(sites, (480, 480), 20.0)) == 1


def test_a_scan_glitch_in_a_simulated_image_is_said():
    """A simulated MoS2 field with a few scan lines whose signal drops over a third of the width
    (the tear a new user found on a real Nion image): the calls there are said."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    params = MicroscopeParams.random(np.random.default_rng(3), "MoS2", dose_e_per_A2=1e6)
    sim = simulate_image("MoS2", 512, 0.012, params=params, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = detect(sim.image, pixel_size_nm=0.012, material="MoS2", device="cpu")
    assert not [m for m in clean.attrs["messages"] if "scan line" in m]
    torn = sim.image.astype(np.float32).copy()
    rows = slice(250, 256)
    torn[rows, :200] = torn[rows, :200].mean(axis=1, keepdims=True) * 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = detect(torn, pixel_size_nm=0.012, material="MoS2", device="cpu")
    said = [m for m in table.attrs["messages"] if "along a scan line" in m]
    assert len(said) == 1 and "y ≈ 25" in said[0]


def _field_with_metals(a: float = 30.0, size: int = 900) -> pd.DataFrame:
    """Chalcogen and metal sites of a lattice whose rows run along the scan (pristine)."""
    chalc = _lattice_sites(a, size)
    metal = chalc.assign(y_px=chalc["y_px"] - a / np.sqrt(3), sublattice="metal",
                         **{"class": "metal"})               # a third of a cell away
    return pd.concat([metal[metal["y_px"] >= 0], chalc], ignore_index=True)


def _image_of(sites: pd.DataFrame, size: int = 900) -> np.ndarray:
    """Gaussian columns at the sites (a metal 3x a chalcogen column, an empty one nothing) and
    a little noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.random.default_rng(1).normal(0.0, 0.02, (size, size))
    height = np.select([sites["class"] == "metal", sites["class"] == "chalcogen"], [3.0, 1.0], 0.0)
    for (y, x), h in zip(sites[["y_px", "x_px"]].to_numpy(), height, strict=True):
        if h > 0:
            r0, r1, c0, c1 = (max(int(y) - 12, 0), min(int(y) + 13, size),
                              max(int(x) - 12, 0), min(int(x) + 13, size))
            image[r0:r1, c0:c1] += h * np.exp(
                -((yy[r0:r1, c0:c1] - y) ** 2 + (xx[r0:r1, c0:c1] - x) ** 2) / (2 * 3.0 ** 2))
    return image


def test_a_line_of_vacancies_whose_metal_columns_read_as_elsewhere_is_no_glitch():
    """An independent simulator's line of six V_S2 2 degrees off the scan direction had been
    said to be a glitch (forty-fifth session): a glitch dims the metal columns it crosses too,
    a line of chalcogen vacancies leaves them as they are."""
    sites = _field_with_metals()
    chalc = (sites["sublattice"] == "chalcogen").to_numpy()
    y_line = np.sort(sites.loc[chalc, "y_px"].unique())[12]
    on_line = chalc & (np.abs(sites["y_px"] - y_line) < 1).to_numpy() & (
        (sites["x_px"] > 100) & (sites["x_px"] < 400)).to_numpy()
    assert on_line.sum() >= 8
    sites.loc[on_line, "class"] = "V_S2"
    emptied = _image_of(sites)                              # the line's columns are empty
    assert len(scan_line_runs(sites, emptied.shape, 30.0)) == 1   # without the image: said
    assert scan_line_runs(sites, emptied.shape, 30.0, emptied) == []
    # a glitch along the same line dims everything it crosses, the metal columns too: said
    torn = emptied.copy()
    rows = slice(int(y_line) - 12, int(y_line) + 13)
    torn[rows, 80:420] *= 0.5
    runs = scan_line_runs(sites, torn.shape, 30.0, torn)
    assert len(runs) == 1 and abs(runs[0].y_px - y_line) < 2
