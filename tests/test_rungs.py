"""The heavy substituent's two rungs split by the image's own column levels
(:mod:`napari_atomdefect.core.detect.rungs`), and the probability of a substituent the user left
out shared by its neighbours on the ladder (:func:`~napari_atomdefect.core.detect.decision.restrict`)."""

from __future__ import annotations

import numpy as np

from napari_atomdefect.core.detect.decision import column_signals, restrict
from napari_atomdefect.core.detect.rungs import rung_ratio_range, split_heavy_rungs

CHOICES = ("chalcogen", "V_S", "V_S2", "O_S", "Se_S", "Se2_S2")


def test_column_signals_follow_the_z_contrast_ladder():
    s = dict(zip(CHOICES, column_signals(CHOICES), strict=True))
    assert s["V_S2"] < s["V_S"] < s["O_S"] < s["chalcogen"] < s["Se_S"] < s["Se2_S2"]
    sel = ("chalcogen", "V_Se", "V_Se2", "S_Se", "S2_Se2", "Te_Se", "Te2_Se2")
    t = dict(zip(sel, column_signals(sel), strict=True))
    assert t["V_Se2"] < t["S2_Se2"] < t["V_Se"] < t["S_Se"] < t["chalcogen"] < t["Te_Se"]


def test_a_left_out_light_substituent_goes_to_its_neighbours_on_the_ladder():
    """O left out: a column torn between V_S and O_S is a V_S (all of O_S to pristine had
    made it pristine); one torn between pristine and O_S stays pristine. Se left out: its
    columns are host columns (nothing brighter is kept)."""
    q = np.array([[0.25, 0.40, 0.0, 0.35, 0.0, 0.0],
                  [0.50, 0.05, 0.0, 0.45, 0.0, 0.0],
                  [0.30, 0.00, 0.0, 0.00, 0.7, 0.0]])
    no_o = restrict(q, CHOICES, ("chalcogen", "V_S", "V_S2", "Se_S", "Se2_S2"))
    np.testing.assert_allclose(no_o.sum(1), 1.0)
    np.testing.assert_allclose(no_o[0, :2], [0.25 + 0.35 * 0.25 / 0.65, 0.40 + 0.35 * 0.40 / 0.65])
    assert no_o[0].argmax() == 1 and no_o[1].argmax() == 0
    no_se = restrict(q, CHOICES, ("chalcogen", "V_S", "V_S2", "O_S"))
    np.testing.assert_allclose(no_se[2], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(no_se[:2], q[:2, :4])


def _columns(levels: np.ndarray, called: np.ndarray, n_host: int) -> tuple[dict, np.ndarray]:
    cls = np.array(["chalcogen"] * n_host + list(called), object)
    p_hi = np.where(cls == "Se2_S2", 0.7, np.where(cls == "Se_S", 0.2, 0.0))
    p_lo = np.where(cls == "Se_S", 0.8, np.where(cls == "Se2_S2", 0.3, 0.0))
    cols = {"class": cls, "confidence": np.maximum(p_hi, p_lo),
            "p_chalcogen": np.where(cls == "chalcogen", 1.0, 0.0), "p_Se_S": p_lo,
            "p_Se2_S2": p_hi}
    return cols, np.concatenate([np.ones(n_host), levels])


def test_two_clear_rungs_of_a_random_alloy_are_split_by_level():
    """An independent simulator's WS2 + Se alloy: its Se2 columns 3.7 host columns bright, a
    cluster of their own, called Se_S by the detector — they become Se2_S2."""
    rng = np.random.default_rng(0)
    single, double = 2.35 + 0.05 * rng.standard_normal(500), 3.7 + 0.06 * rng.standard_normal(210)
    called = np.array(["Se_S"] * 500 + ["Se2_S2"] * 20 + ["Se_S"] * 190)
    cols, levels = _columns(np.concatenate([single, double]), called, n_host=300)
    out, moved = split_heavy_rungs(cols, levels, "WS2", ("Se",))
    assert moved == {"Se2_S2": 190}
    assert (out["class"][300:800] == "Se_S").all() and (out["class"][800:] == "Se2_S2").all()
    np.testing.assert_allclose(out["p_Se_S"] + out["p_Se2_S2"], cols["p_Se_S"] + cols["p_Se2_S2"])
    assert (out["confidence"][810:] > 0.5).all()


def test_rungs_that_overlap_or_a_layer_without_host_columns_keep_the_detectors_calls():
    """Clusters that overlap (a low dose), too few columns, a ratio the physics does not give
    two rungs, or two equal clusters with next to no host column (a singly substituted
    layer's two orders) leave every call as it was."""
    rng = np.random.default_rng(1)
    called = np.array(["Se_S"] * 300 + ["Se2_S2"] * 100)
    blurred = np.concatenate([2.35 + 0.5 * rng.standard_normal(300), 3.7 + 0.5 * rng.standard_normal(100)])
    lo, hi = rung_ratio_range("WS2", "Se")
    close = np.concatenate([2.35 + 0.03 * rng.standard_normal(300),
                            2.35 * (lo * 0.9) + 0.03 * rng.standard_normal(100)])
    orders = np.concatenate([2.0 + 0.04 * rng.standard_normal(200),
                             3.1 + 0.05 * rng.standard_normal(200)])
    for levels, n_host in ((blurred, 300), (close, 300), (orders, 8), (blurred[:15], 300)):
        cols, lv = _columns(levels, np.array(["Se_S"] * len(levels)), n_host)
        out, moved = split_heavy_rungs(cols, lv, "WS2", ("Se",))
        assert moved == {} and (out["class"] == cols["class"]).all()
    cols, lv = _columns(np.concatenate([2.35 + 0.05 * rng.standard_normal(300),
                                        3.7 + 0.05 * rng.standard_normal(100)]), called, 300)
    assert split_heavy_rungs(cols, lv, "WS2", ("O",))[1] == {}  # Se not looked for
    assert split_heavy_rungs(cols, lv, "WS2", ("Se",))[1] == {}  # the detector already agrees
