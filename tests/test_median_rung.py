"""The ladder's reading of the median rung over the detector's calls (detect/median_rung.py)."""

from __future__ import annotations

import numpy as np

from napari_atomdefect.core.cells.ladder import LadderReading
from napari_atomdefect.core.detect.median_rung import keep_median_rung


def _columns(n_host_level: int, n_low: int, called: str = "S_Se", n_host: int = 10):
    """``n_host_level`` columns on the host rung called ``called`` (p 0.9), ``n_low`` single-Se
    columns at 0.5 called ``V_Se``, and ``n_host`` called host."""
    cls = np.array([called] * n_host_level + ["V_Se"] * n_low + ["chalcogen"] * n_host, object)
    n = len(cls)
    p = {"p_chalcogen": np.full(n, 0.1), f"p_{called}": np.full(n, 0.0), "p_V_Se": np.zeros(n)}
    p[f"p_{called}"][:n_host_level] = 0.9
    p["p_V_Se"][n_host_level:n_host_level + n_low] = 0.9
    p["p_chalcogen"][n_host_level + n_low:] = 0.9
    levels = np.concatenate([np.random.default_rng(0).normal(1.0, 0.02, n_host_level),
                             np.full(n_low, 0.5), np.full(n_host, 1.0)])
    return {"class": cls, "confidence": np.full(n, 0.9), **p}, levels


def _reading(median="chalcogen", posterior=1.0, ordered=False):
    post = {"chalcogen": posterior, "S_Se": 1 - posterior}
    return LadderReading(median_class=median, host_level=1.0, posterior=post, sigma=0.02,
                         ordered=ordered, host_levels={"chalcogen": 1.0, "S_Se": 1.66})


def test_columns_on_the_host_rung_return_to_the_host():
    """A pristine WSe2 image of another simulator at a contrast past training (W/Se2 2.31): the
    ladder reads the host at 1.00, the detector called 243 of 260 Se2 columns S_Se."""
    cols, levels = _columns(240, 15)
    out, moved = keep_median_rung(cols, levels, _reading())
    assert moved[0] == "S_Se" and moved[1] >= 0.98 * 240  # all within three spreads
    back = out["class"][:240] == "chalcogen"
    assert back.sum() == moved[1]
    assert (np.abs(levels[:240][~back] - 1.0) > 0.06).all()
    assert (out["class"][240:255] == "V_Se").all()  # off the rung: kept
    np.testing.assert_allclose(out["p_chalcogen"][:240][back], 1.0)
    np.testing.assert_allclose(out["confidence"][:240][back], 1.0)
    assert (cols["class"][:240] == "S_Se").all()  # the input is not changed


def test_the_detector_stands_when_the_ladder_reads_otherwise_or_is_unsure():
    cols, levels = _columns(240, 15)
    for reading in (_reading(median="S_Se", posterior=0.0), _reading(posterior=0.8),
                    _reading(median="S_Se", posterior=0.0, ordered=True)):
        out, moved = keep_median_rung(cols, levels, reading)
        assert moved is None and (out["class"] == cols["class"]).all()


def test_a_minority_of_substituted_columns_is_left_alone():
    """An alloy's S + Se columns (a third of them) are the detector's to call."""
    cols, levels = _columns(100, 15, n_host=120)
    out, moved = keep_median_rung(cols, levels, _reading())
    assert moved is None and (out["class"] == cols["class"]).all()


def test_the_user_is_told_what_was_overruled():
    from napari_atomdefect.core.detect.median_rung import median_rung_message

    assert median_rung_message(None, _reading(), 2.31) is None
    text = median_rung_message(("S_Se", 242), _reading(), 2.31)
    assert text.startswith("242 chalcogen columns the detector called S_Se")
    assert "(probability 1.00)" in text and "(2.31)" in text


def test_single_vacancy_calls_as_bright_as_the_host_return_to_the_host():
    """An independent simulator's WSe2 + 47 % Te alloy (median column Te_Se, the host rung at
    0.64 of it): 63 of its 154 Se2 columns called V_Se at the host rung's level."""
    from napari_atomdefect.core.detect.median_rung import host_rung_message, keep_host_rung

    rng = np.random.default_rng(1)
    n_on, n_true, n_te = 60, 10, 150
    cls = np.array(["V_Se"] * (n_on + n_true) + ["Te_Se"] * n_te, object)
    n = len(cls)
    p = {"p_chalcogen": np.full(n, 0.05), "p_V_Se": np.zeros(n), "p_Te_Se": np.zeros(n)}
    p["p_V_Se"][:n_on + n_true] = 0.57
    p["p_chalcogen"][:n_on] = 0.43
    p["p_Te_Se"][n_on + n_true:] = 0.95
    host = 0.64  # in chalcogen units (the median column, Te_Se, is 1)
    levels = np.concatenate([host * rng.normal(1.0, 0.02, n_on), np.full(n_true, 0.47 * host),
                             np.full(n_te, 1.0)])
    cols = {"class": cls, "confidence": np.full(n, 0.57), **p}
    reading = LadderReading(median_class="Te_Se", host_level=host,
                            posterior={"chalcogen": 0.0, "Te_Se": 1.0}, sigma=0.02)
    out, moved = keep_host_rung(cols, levels, reading, "V_Se")
    assert moved == ("V_Se", n_on)
    assert (out["class"][:n_on] == "chalcogen").all()
    assert (out["class"][n_on:n_on + n_true] == "V_Se").all()  # one atom's level: kept
    np.testing.assert_allclose(out["p_chalcogen"][:n_on] + out["p_V_Se"][:n_on], 1.0)
    assert "brighter than one atom can be" in host_rung_message(moved)
    # a few stray calls, or an unsure ladder: the detector stands
    few = {k: np.array(v, copy=True) for k, v in cols.items()}
    few["class"][4:n_on] = "Te_Se"
    assert keep_host_rung(few, levels, reading, "V_Se")[1] is None
    unsure = LadderReading(median_class="Te_Se", host_level=host,
                           posterior={"chalcogen": 0.3, "Te_Se": 0.7}, sigma=0.02)
    assert keep_host_rung(cols, levels, unsure, "V_Se")[1] is None


def test_light_substituent_calls_as_bright_as_the_host_return_to_the_host():
    """Trial, twenty-ninth session: the same WSe2 + 47 % Te alloy analysed with S and Te had its
    Se2 columns called S_Se (one Se beside an S: 0.55–0.75 of a host column at every
    microscope), which also kept the Te2_Se2 columns from their split (the host count was
    wrong): such calls on the host rung are called host too, said as two atoms' column."""
    from napari_atomdefect.core.detect.median_rung import host_rung_message, keep_host_rung

    rng = np.random.default_rng(2)
    n_on, n_te = 40, 120
    cls = np.array(["S_Se"] * n_on + ["Te_Se"] * n_te, object)
    n = len(cls)
    p = {"p_chalcogen": np.full(n, 0.05), "p_S_Se": np.zeros(n), "p_Te_Se": np.zeros(n)}
    p["p_S_Se"][:n_on], p["p_chalcogen"][:n_on] = 0.6, 0.4
    p["p_Te_Se"][n_on:] = 0.95
    host = 0.64
    levels = np.concatenate([host * rng.normal(1.0, 0.02, n_on), np.full(n_te, 1.0)])
    cols = {"class": cls, "confidence": np.full(n, 0.6), **p}
    reading = LadderReading(median_class="Te_Se", host_level=host,
                            posterior={"chalcogen": 0.0, "Te_Se": 1.0}, sigma=0.02)
    out, moved = keep_host_rung(cols, levels, reading, "S_Se")
    assert moved == ("S_Se", n_on) and (out["class"][:n_on] == "chalcogen").all()
    assert "brighter than one Se atom beside one S can be" in host_rung_message(moved)
    # S + Se columns where the physics puts them (0.64 of the host) keep their call
    low = {k: np.array(v, copy=True) for k, v in cols.items()}
    assert keep_host_rung(low, np.concatenate([np.full(n_on, 0.64 * host), np.full(n_te, 1.0)]),
                          reading, "S_Se")[1] is None
