"""Column-composition classes in the simulator: intensities ordered as physics says, names."""

import json

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.materials.columns import SubstituentError, class_names
from napari_atomdefect.core.materials.materials import get_material
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
from napari_atomdefect.core.simulate.movie import simulate_movie

#: Expected order of noise-free chalcogen-column intensities (darkest first), per host.
ORDER = {
    "S": ["V_S2", "V_S", "O_S", "chalcogen", "Se_S", "Se2_S2"],
    "Se": ["V_Se2", "S2_Se2", "V_Se", "S_Se", "chalcogen", "Te_Se", "Te2_Se2"],
}
CLEAN = dict(dose_e_per_A2=None, tail_fraction=0.0, background=0.0, row_jitter_nm=0.0,
             drift_nm=0.0, shear=0.0, y_stretch=0.0, line_noise=0.0, probe_fwhm_nm=0.07,
             contamination=0.0, column_scatter=0.0)


def _disc_sum(image: np.ndarray, y: float, x: float, radius: float) -> float:
    """Signal within ``radius`` px of (y, x): a column's weight, whatever its sub-pixel offset."""
    r0, c0 = int(round(y)), int(round(x))
    k = int(radius) + 1
    rr, cc = np.mgrid[r0 - k:r0 + k + 1, c0 - k:c0 + k + 1]
    disc = (rr - y) ** 2 + (cc - x) ** 2 <= radius**2
    return float(image[rr[disc], cc[disc]].sum())


def _column_means(material: str, seed: int) -> tuple[pd.Series, MicroscopeParams]:
    """Mean noise-free signal per class within 7 px (2.8 probe sigmas) of each site."""
    params = MicroscopeParams.random(np.random.default_rng(seed), material, **CLEAN)
    kinds = {"V_X": 0.07, "V_X2": 0.07, "D_X": 0.07, "D2_X2": 0.07, "V_M": 0.05}
    sim = simulate_image(material, 448, 0.012, params=params, seed=seed, defect_fractions=kinds,
                         substituents="all")
    s = sim.sites
    inner = s.y_px.between(10, 437) & s.x_px.between(10, 437)
    s = s[inner]
    v = [_disc_sum(sim.clean, y, x, 7.0) for y, x in s[["y_px", "x_px"]].to_numpy()]
    return pd.Series(v, index=s["class"].to_numpy()).groupby(level=0).mean(), params


@pytest.mark.parametrize("material", ["MoS2", "WS2", "MoSe2", "WSe2"])
@pytest.mark.parametrize("seed", [11, 12])
def test_column_intensities_ordered_by_physics(material, seed):
    mat = get_material(material)
    mean, params = _column_means(material, seed)
    order = ORDER[mat.chalcogen]
    assert set(order) - {"chalcogen"} <= set(mean.index)
    values = [mean[c] for c in order]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), dict(zip(order, values,
                                                                               strict=True))
    assert mean["metal"] > 2 * mean[f"V_{mat.metal}"]
    # The light substituent adds light_ratio host atoms (one host atom = V_X - V_X2).
    light = "O_S" if mat.chalcogen == "S" else "S_Se"
    host = f"V_{mat.chalcogen}"
    one_atom = mean[host] - mean[f"{host}2"]
    excess = (mean[light] - mean[host]) / one_atom
    # (on average over the columns: each is brighter or dimmer by the order asymmetry)
    assert excess == pytest.approx(params.light_ratio, abs=0.01 + params.light_order_asymmetry)
    if mat.chalcogen == "S":
        assert 0.2 <= excess <= 1.0  # multislice: O adds 0.28-0.68 S atoms (docs/physics.md)
    # A heavy substituent is not weakened: Se_S adds more than a second S atom.
    heavy = "Se_S" if mat.chalcogen == "S" else "Te_Se"
    assert mean[heavy] - mean[host] > 1.5 * (mean["chalcogen"] - mean[host])


def test_truth_names_follow_substituents():
    sim = simulate_image("WS2", 256, 0.012, seed=4, substituents="O",
                         defect_fractions={"V_X": 0.05, "D_X": 0.1, "D2_X2": 0.1, "V_M": 0.05})
    assert sim.classes == class_names("WS2", ["O"]) == ("V_S", "V_S2", "O_S", "V_W")
    assert sim.substituents == ("O",)
    found = set(sim.defects["class"])
    assert {"V_S", "O_S", "V_W"} <= found and not found & {"Se_S", "Se2_S2", "V_Mo"}
    both = simulate_image("WSe2", 256, 0.012, seed=4, substituents="all",
                          defect_fractions={"D_X": 0.08, "D2_X2": 0.08})
    assert both.classes == ("V_Se", "V_Se2", "S_Se", "S2_Se2", "Te_Se", "Te2_Se2", "V_W")
    assert set(both.defects["class"]) == {"S_Se", "S2_Se2", "Te_Se", "Te2_Se2"}
    default = simulate_image("WSe2", 128, 0.012, seed=4)
    assert default.substituents == ("S",)
    none = simulate_image("MoS2", 128, 0.012, seed=1, substituents="none")
    assert none.classes == ("V_S", "V_S2", "V_Mo")


def test_default_fractions_keep_mos2_and_cover_kinds():
    sim = simulate_image("MoSe2", 1024, 0.012, seed=7, dose_e_per_A2=None, substituents="all")
    n_x = (sim.sites.sublattice == "chalcogen").sum()
    counts = sim.defects["class"].value_counts()
    assert counts["V_Se"] / n_x == pytest.approx(0.04, abs=0.012)
    assert counts["S_Se"] / n_x == pytest.approx(0.03, abs=0.01)
    assert counts["Te2_Se2"] / n_x == pytest.approx(0.01, abs=0.006)
    legacy = simulate_image("MoS2", 1024, 0.012, seed=7, dose_e_per_A2=None, substituents="O")
    c = legacy.defects["class"].value_counts()
    n_x = (legacy.sites.sublattice == "chalcogen").sum()
    assert c["O_S"] / n_x == pytest.approx(0.03, abs=0.01) and "Se_S" not in c


def test_unsupported_substituent_is_one_sentence():
    with pytest.raises(SubstituentError, match="not a substituent this package models in MoSe2"):
        simulate_image("MoSe2", 64, 0.012, substituents="O")


def test_cli_simulate_substituents(tmp_path, capsys):
    assert main(["simulate", "--material", "WS2", "--size", "256", "--substituents", "Se",
                 "--seed", "3", "--out", str(tmp_path / "a")]) == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["classes"] == ["V_S", "V_S2", "Se_S", "Se2_S2", "V_W"]
    assert meta["substituents"] == ["Se"]
    table = pd.read_csv(tmp_path / "a" / "defects.csv")
    assert set(table["class"]) <= set(meta["classes"]) and "O_S" not in set(table["class"])
    assert main(["simulate", "--material", "WSe2", "--substituents", "O",
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "'O' is not a substituent this package models in WSe2" in err
    assert "Traceback" not in err and not (tmp_path / "b").exists()


def test_movie_uses_the_hosts_vacancy_names():
    movie = simulate_movie("WSe2", 256, n_frames=5, seed=0)
    assert set(movie.truth["class"]) == {"V_Se", "V_Se2"}


def test_training_alloys_include_partly_converted_layers():
    """Training and calibration images hold random alloys (binomial column proportions) and
    partly converted layers (singly and doubly substituted columns in independent proportions);
    without ``partial_share`` the draw is the random alloy's alone, as the benchmarks' seeds
    expect."""
    from napari_atomdefect.core.simulate.image import (
        PARTIAL_COLUMN_RANGE,
        PARTIAL_PARTNER_SINGLE_RANGE,
        alloy_fractions,
    )
    from napari_atomdefect.core.train.datasets import training_fractions

    wse2 = get_material("WSe2")
    binomial = partial = janus = 0
    for k in range(400):
        f = training_fractions(wse2, ("S", "Te"), np.random.default_rng(k))
        pairs = [(d, f[f"{d}_Se"], f[f"{d}2_Se2"]) for d in ("S", "Te")
                 if f.get(f"{d}2_Se2", 0.04) != 0.04 or f.get(f"{d}_Se", 0.07) != 0.07]
        for d, single, double in pairs:
            c = np.sqrt(double)
            if np.isclose(single, 2 * c * (1 - c)):
                binomial += 1
            else:  # the S/Se partner up to a Janus layer, the host column always left
                lo, hi = PARTIAL_PARTNER_SINGLE_RANGE if d == "S" else PARTIAL_COLUMN_RANGE
                assert lo <= single <= hi and single + double <= 0.97 + 1e-9
                partial += 1
                janus += d == "S" and single > 0.8
    assert 0.25 < (binomial + partial) / 400 < 0.45 and 0.25 < partial / (binomial + partial) < 0.55
    assert janus >= 3  # Janus-like layers (nearly every column S + Se) are among them
    for k in range(50):
        f = alloy_fractions(wse2, ("S",), np.random.default_rng(k), {}, probability=1.0)
        c = np.sqrt(f["S2_Se2"])
        assert f["S_Se"] == pytest.approx(2 * c * (1 - c))


def test_a_random_alloys_vacancies_come_out_of_every_composition():
    """``random_alloy_fractions``: the columns that hold two atoms are binomial in the share
    (host (1-c)², D_X 2c(1-c), D2_X2 c²), the point defects a share v of every composition (taken
    from the host alone, a 70 % Se layer held a third of a random alloy's S2 columns)."""
    from napari_atomdefect.core.simulate.image import DEFAULT_KIND_FRACTIONS, random_alloy_fractions

    c = 0.7
    f = random_alloy_fractions("WS2", "Se", c, "O,Se")
    v = DEFAULT_KIND_FRACTIONS["V_X"] + DEFAULT_KIND_FRACTIONS["V_X2"] + DEFAULT_KIND_FRACTIONS["D_X"]
    assert f["Se_S"] == pytest.approx(2 * c * (1 - c) * (1 - v))
    assert f["Se2_S2"] == pytest.approx(c * c * (1 - v))
    host = 1 - v - f["Se_S"] - f["Se2_S2"]
    assert host == pytest.approx((1 - c) ** 2 * (1 - v))
