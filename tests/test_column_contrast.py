"""Tests of benchmarks/bench_column_contrast.py (geometry, read-out, model); abTEM parts skip."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_column_contrast.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_column_contrast", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_lattice_sites_are_a_2h_honeycomb(bench):
    p = bench.PRESETS["MoS2"]
    metal, chalc, hollow, cell = bench.lattice_sites(p, 7, 4)
    assert len(metal) == len(chalc) == len(hollow) == 56
    assert cell == pytest.approx((7 * 3.16, 4 * 3.16 * math.sqrt(3)))
    d_mx = bench.periodic_dist(chalc, metal, cell)
    # every chalcogen column has exactly three metal neighbours at a/sqrt(3)
    assert np.all((np.abs(d_mx - 3.16 / math.sqrt(3)) < 1e-6).sum(axis=1) == 3)
    assert bench.periodic_dist(chalc, chalc, cell)[0][1:].min() == pytest.approx(3.16)
    assert bench.periodic_dist(hollow, np.vstack([metal, chalc]), cell).min() == pytest.approx(
        3.16 / math.sqrt(3))


def test_modified_columns_are_isolated(bench):
    p = bench.PRESETS["WSe2"]
    metal, chalc, _, cell = bench.lattice_sites(p, 7, 4)
    dmin = p.a * math.sqrt(3) - 0.05
    cidx, midx = bench.place_defects(metal, chalc, cell, 9, dmin)
    assert len(set(cidx)) == 9
    d = bench.periodic_dist(chalc[cidx], chalc[cidx], cell)
    assert d[~np.eye(9, dtype=bool)].min() >= dmin
    assert bench.periodic_dist(metal[[midx]], chalc[cidx], cell).min() >= 2 * p.a / math.sqrt(3)
    with pytest.raises(ValueError, match="too small"):
        bench.place_defects(metal, chalc, cell, 40, dmin)


def _synthetic_integrals(bench, p, s=0.8, light=0.1, heavy=2.0, metal=3.0, tail=0.07):
    """Integrals of a made-up linear model: X1 = 1, a neighbour tail ``tail`` on every site."""
    d_light, d_heavy = p.dopants
    integ = {"X/-": 1 + tail, "-/X": 1 + tail, "-/-": tail, "V_M": tail}
    for d, w in ((d_light, light), (d_heavy, heavy)):
        integ[f"X/{d}"] = integ[f"{d}/X"] = 1 + w + tail
        integ[f"{d}/{d}"] = w * (1 + s) + tail
    for k in range(3):
        integ[f"X2#{k}"] = 1 + s + tail
        integ[f"M#{k}"] = metal + tail
    return integ


def test_ratios_recover_the_model_with_site_baseline(bench):
    p = bench.PRESETS["MoS2"]
    r = bench.ratios(p, _synthetic_integrals(bench, p), baseline="site")
    assert r["s"] == pytest.approx(0.8)
    assert r["O: excess"] == pytest.approx(0.1)
    assert r["Se: excess Se/X"] == pytest.approx(2.0)
    assert r["O2/X2"] == pytest.approx(0.1)
    assert r["M/X2"] == pytest.approx(3.0 / 1.8)
    # the hollow-only baseline keeps the neighbours' tails and is biased
    h = bench.ratios(p, _synthetic_integrals(bench, p), baseline="hollow")
    assert h["s"] == pytest.approx((1.8 - 1.0) / 1.07)


def test_probe_positions_cover_each_column(bench):
    p = bench.PRESETS["MoS2"]
    _, chalc, _, cell = bench.lattice_sites(p, 7, 4)
    cols = {"a": tuple(chalc[0]), "b": tuple(chalc[5])}
    pos, index = bench.probe_positions(p, cols, cell, 0.6, 0.2)
    start, n, bg_start, n_bg = index["b"]
    assert n == 29 and n_bg == 15  # disc of 29 points, three hollow discs of 5
    assert bench.periodic_dist(pos[start:start + n], chalc[[5]], cell).max() <= 0.6 + 1e-9
    assert np.all((pos >= 0) & (pos < np.asarray(cell)))  # wrapped into the cell
    signal = np.zeros(len(pos))
    signal[start:start + n] = 2.0
    signal[bg_start:bg_start + n_bg] = 0.5
    assert bench.integrate(signal, index)["b"] == pytest.approx(29 * 1.5)


def test_model_single_atom_matches_package(bench):
    from napari_atomdefect.core.materials.physics import haadf_cross_section

    p = bench.PRESETS["MoS2"]
    m = bench.model_single_atom(p, 80.0, 80.0, 200.0)
    ratio = haadf_cross_section(8, 80.0, 80.0, 200.0) / haadf_cross_section(16, 80.0, 80.0, 200.0)
    assert m["O: excess"] == pytest.approx(ratio)
    assert 0.2 < m["O: excess"] < 0.35
    assert m["M/X2"] == pytest.approx(
        haadf_cross_section(42, 80.0, 80.0, 200.0) / (2 * haadf_cross_section(16, 80.0, 80.0, 200.0)))


def test_cell_composition_with_ase(bench):
    pytest.importorskip("ase")
    atoms, cols = bench.build_cell(bench.PRESETS["MoS2"])
    sym = atoms.get_chemical_symbols()
    # 56 metal sites less the vacancy; 56 chalcogen columns of two S, of which the nine modified
    # ones keep six S atoms (X/-, -/X, X/O, O/X, X/Se, Se/X)
    assert sym.count("Mo") == 55
    assert sym.count("O") == 4 and sym.count("Se") == 4
    assert sym.count("S") == 2 * 56 - 2 * 9 + 6
    z = atoms.positions[:, 2]
    assert np.ptp(z[np.array(sym) != "Mo"]) == pytest.approx(3.17)
    assert set(cols) >= {"X/-", "-/X", "-/-", "X/O", "O/X", "O/O", "X/Se", "Se/X", "Se/Se", "V_M"}


def test_ratio_fit_inverts_the_simulators_substituent_formula(bench):
    """Columns made with column_weight's O_S rule (exit: w_x + s*w_o, entrance: w_o + s*w_x)."""
    p = bench.PRESETS["MoS2"]
    s, light = 0.75, 0.12
    integ = _synthetic_integrals(bench, p, s=s, light=light, tail=0.0)
    integ["X/O"] = 1 + s * light
    integ["O/X"] = light + s
    r = bench.ratios(p, integ)
    assert r["O: ratio fit"] == pytest.approx(light)
    assert r["O: excess X/O"] == pytest.approx(s * light)
