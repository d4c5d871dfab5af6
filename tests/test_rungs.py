"""The heavy substituent's two rungs and the vacancy rung below the light substituent's split by
the image's own column levels (:mod:`napari_atomdefect.core.detect.rungs`), and the probability
of a substituent the user left out shared by its neighbours on the ladder
(:func:`~napari_atomdefect.core.detect.decision.restrict`)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomdefect.core.detect.decision import column_signals, restrict
from napari_atomdefect.core.detect.rungs import (
    VACANCY_MAX_SHARE,
    rung_ratio_range,
    split_heavy_rungs,
    split_vacancy_rung,
    vacancy_ratio_range,
)

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


def _columns(levels: np.ndarray, called: np.ndarray, n_host: int,
             pair: tuple[str, str] = ("Se_S", "Se2_S2")) -> tuple[dict, np.ndarray]:
    """Columns as the decision gives them: ``n_host`` host columns, then ``called`` (one of the
    heavy ``pair``, singly then doubly substituted) at ``levels``."""
    lo, hi = pair
    cls = np.array(["chalcogen"] * n_host + list(called), object)
    p_hi = np.where(cls == hi, 0.7, np.where(cls == lo, 0.2, 0.0))
    p_lo = np.where(cls == lo, 0.8, np.where(cls == hi, 0.3, 0.0))
    cols = {"class": cls, "confidence": np.maximum(p_hi, p_lo),
            "p_chalcogen": np.where(cls == "chalcogen", 1.0, 0.0), f"p_{lo}": p_lo,
            f"p_{hi}": p_hi}
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


def test_near_equal_rungs_are_split_when_the_ladder_says_doubly_substituted_columns_are_common():
    """Past half substitution a random alloy's two rungs hold near-equal counts, as the two
    orders of a singly substituted column would: kept as called unless the ladder says the
    doubly substituted columns are about as many (an independent simulator's WS2 + 64 % Se, its
    rungs 8 spreads apart, had 120 of 224 Se2_S2 called Se_S)."""
    rng = np.random.default_rng(3)
    single, double = 2.35 + 0.06 * rng.standard_normal(270), 3.7 + 0.08 * rng.standard_normal(220)
    called = np.array(["Se_S"] * 270 + ["Se2_S2"] * 100 + ["Se_S"] * 120)
    cols, levels = _columns(np.concatenate([single, double]), called, n_host=70)
    assert split_heavy_rungs(cols, levels, "WS2", ("Se",))[1] == {}
    out, moved = split_heavy_rungs(cols, levels, "WS2", ("Se",), doubly_common=True)
    assert moved == {"Se2_S2": 120}
    assert (out["class"][70:340] == "Se_S").all() and (out["class"][340:] == "Se2_S2").all()


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


def _selenide_columns(levels: np.ndarray, called: np.ndarray, n_host: int,
                      s2: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    s2 = np.zeros(0) if s2 is None else s2
    cls = np.array(["chalcogen"] * n_host + list(called) + ["S2_Se2"] * len(s2), object)
    p_s = np.where(cls == "S_Se", 0.85, np.where(cls == "V_Se", 0.25, 0.0))
    p_v = np.where(cls == "V_Se", 0.7, np.where(cls == "S_Se", 0.1, 0.0))
    cols = {"class": cls, "confidence": np.maximum(p_s, p_v),
            "p_chalcogen": np.where(cls == "chalcogen", 1.0, 0.05), "p_V_Se": p_v, "p_S_Se": p_s}
    return cols, np.concatenate([np.ones(n_host), levels, s2])


def test_a_small_cluster_below_an_alloys_light_substituent_is_its_vacancies():
    """An independent simulator's MoSe2 + 47 % S alloy (incoherent columns): single Se at 0.50
    of Se2, S + Se at 0.64, 7 spreads apart — every V_Se had been called S_Se (the likelier
    class in the alloy). Its S_Se columns called V_Se in the low tail (a WSe2 + S image) come
    back as well."""
    rng = np.random.default_rng(2)
    vac, sub = 0.50 + 0.02 * rng.standard_normal(40), 0.64 + 0.02 * rng.standard_normal(600)
    called = np.array(["S_Se"] * 40 + ["S_Se"] * 570 + ["V_Se"] * 30)
    cols, levels = _selenide_columns(np.concatenate([vac, sub]), called, n_host=300)
    out, moved = split_vacancy_rung(cols, levels, "MoSe2", ("S",))
    assert moved == {"V_Se": 40, "S_Se": 30}
    assert (out["class"][300:340] == "V_Se").all() and (out["class"][340:] == "S_Se").all()
    np.testing.assert_allclose(out["p_V_Se"] + out["p_S_Se"], cols["p_V_Se"] + cols["p_S_Se"])
    assert (out["confidence"][300:340] > 0.5).all()
    assert split_vacancy_rung(cols, levels, "MoSe2", ("Te",))[1] == {}  # S not looked for


def test_a_few_vacancies_far_below_the_light_substituent_are_a_cluster():
    """An independent simulator's WSe2 + 34 % S alloy: its S + Se columns in two orders (0.61
    and 0.63 of Se2), the lower order's 21 called V_Se, beside 4 true single Se at 0.505 —
    too few for a cluster of five, so every call had stood. Far below (six spreads or more), a
    few columns are the vacancies: the lower order goes back to S_Se."""
    rng = np.random.default_rng(5)
    vac = 0.505 + 0.014 * rng.standard_normal(4)
    lower, upper = 0.609 + 0.014 * rng.standard_normal(60), 0.628 + 0.016 * rng.standard_normal(80)
    called = np.array(["V_Se"] * 4 + ["V_Se"] * 21 + ["S_Se"] * 39 + ["S_Se"] * 80)
    cols, levels = _selenide_columns(np.concatenate([vac, lower, upper]), called, n_host=245)
    out, moved = split_vacancy_rung(cols, levels, "WSe2", ("S",))
    new = out["class"][245:]
    assert (new[:4] == "V_Se").all() and (new[4:] == "S_Se").all()
    assert moved == {"S_Se": 21}
    # The same 4 columns within a few spreads of the S + Se ones: the calls stand.
    near = np.concatenate([0.58 + 0.014 * rng.standard_normal(4), lower, upper])
    cols, levels = _selenide_columns(near, called, n_host=245)
    assert split_vacancy_rung(cols, levels, "WSe2", ("S",))[1] == {}


def test_past_the_trained_contrast_a_closer_vacancy_cluster_is_split():
    """An independent simulator's WSe2 + 28 % S alloy at a W/Se2 contrast of 2.44 (the WSe2
    model: 0.9–2.1): its 6 single-Se columns at 0.58 of the median column, 2.8 spreads below
    its 116 S + Se ones at 0.69 (two orders in one cluster), and 41 of those called V_Se — the
    detector's boundary extrapolated. Past the trained contrast the image's clusters decide;
    within it, clusters that close keep the detector's calls. (A marginal case: of five draws
    of these levels, two fit a lower cluster 2.5 spreads or more below — this one does.)"""
    rng = np.random.default_rng(15)
    vac = 0.584 + 0.021 * rng.standard_normal(6)
    sub = np.sort(0.688 + 0.037 * rng.standard_normal(116))
    called = np.array(["V_Se"] * 6 + ["V_Se"] * 41 + ["S_Se"] * 75)
    cols, levels = _selenide_columns(np.concatenate([vac, sub]), called, n_host=160)
    assert split_vacancy_rung(cols, levels, "WSe2", ("S",))[1] == {}
    out, moved = split_vacancy_rung(cols, levels, "WSe2", ("S",), beyond_training=True)
    new = out["class"][160:]
    assert (new[:6] == "V_Se").sum() >= 5 and (new[6:] == "S_Se").sum() >= 110
    assert moved.get("S_Se", 0) >= 35


def test_columns_at_another_rung_do_not_make_the_vacancy_cluster():
    """A low-dose WSe2 + 26 % S alloy (another simulator): two S2 columns called V_Se sat below
    its 19 single Se columns; the two-cluster fit took them (and four single Se) for the
    vacancies and sent the other single Se to S_Se. Columns nearer the S2_Se2 calls' level
    than the pair's are left out of the fit."""
    rng = np.random.default_rng(4)
    vac, sub = 0.51 + 0.03 * rng.standard_normal(19), 0.645 + 0.03 * rng.standard_normal(245)
    strays = np.array([0.33, 0.325])
    s2 = 0.274 + 0.03 * rng.standard_normal(52)
    called = np.array(["V_Se"] * 19 + ["S_Se"] * 245 + ["V_Se"] * 2)
    cols, levels = _selenide_columns(np.concatenate([vac, sub, strays]), called, 330, s2)
    out, moved = split_vacancy_rung(cols, levels, "WSe2", ("S",))
    new = out["class"][330:330 + 266]
    assert (new[:19] == "V_Se").sum() >= 17 and (new[19:264] == "S_Se").sum() >= 240
    assert (new[264:] == "V_Se").all()  # left as the detector called them


def test_vacancy_clusters_that_may_be_two_orders_or_overlap_keep_the_detectors_calls():
    """Two clusters of similar size (the light substituent on the entrance or the exit side, as
    far apart at high angles as a vacancy is), a lower cluster holding most columns, clusters
    that overlap (a low dose), a ratio the physics does not give (S2 below S + Se), or too few
    columns: no
    change."""
    rng = np.random.default_rng(3)
    orders = np.concatenate([0.55 + 0.015 * rng.standard_normal(300),
                             0.68 + 0.015 * rng.standard_normal(300)])
    n_low = int(0.4 * 400)
    majority = np.concatenate([0.50 + 0.02 * rng.standard_normal(n_low),
                               0.64 + 0.02 * rng.standard_normal(400 - n_low)])
    blurred = np.concatenate([0.50 + 0.08 * rng.standard_normal(40),
                              0.64 + 0.08 * rng.standard_normal(600)])
    _, hi = vacancy_ratio_range("MoSe2", "S")
    far = np.concatenate([0.30 + 0.01 * rng.standard_normal(40),
                          0.30 * hi * 1.05 + 0.01 * rng.standard_normal(600)])
    few = np.concatenate([0.50 + 0.01 * rng.standard_normal(4), 0.64 + 0.01 * rng.standard_normal(14)])
    assert n_low / 400 > VACANCY_MAX_SHARE
    for levels in (orders, majority, blurred, far, few):
        cols, lv = _selenide_columns(levels, np.array(["S_Se"] * len(levels)), 300)
        out, moved = split_vacancy_rung(cols, lv, "MoSe2", ("S",))
        assert moved == {} and (out["class"] == cols["class"]).all()


def test_single_vacancies_alone_are_not_split_into_vacancies_and_the_light_substituent():
    """A frame of an independent simulator's MoS2 movie (no O in it): 21 columns called V_S, a
    tight cluster with five stragglers below. The two-cluster fit found the stragglers 'clearly
    below' the rest and sent the rest to O_S (16 calls at a confidence of 0.99); the upper
    cluster must be mostly the detector's light-substituent calls."""
    rng = np.random.default_rng(6)
    levels = np.concatenate([0.487 + 0.004 * rng.standard_normal(16),
                             0.455 + 0.004 * rng.standard_normal(5)])
    n_host = 300
    cls = np.array(["chalcogen"] * n_host + ["V_S"] * 21, object)
    p_v = np.where(cls == "V_S", 0.85, 0.0)
    p_o = np.where(cls == "V_S", 0.13, 0.0)
    cols = {"class": cls, "confidence": np.where(cls == "V_S", 0.85, 1.0),
            "p_chalcogen": np.where(cls == "chalcogen", 1.0, 0.02), "p_V_S": p_v, "p_O_S": p_o}
    lv = np.concatenate([np.ones(n_host), levels])
    out, moved = split_vacancy_rung(cols, lv, "MoS2", ("O",))
    assert moved == {} and (out["class"] == cls).all()


def test_an_incoherent_selenide_alloy_keeps_its_single_vacancies():
    """End to end on an image of incoherent Z^1.8 columns (another simulator's physics: no cross
    term, S adds 0.26 of an Se atom): MoSe2 with 45 % of its columns S + Se. Before the vacancy
    rung was split by the image's clusters 6 of 36 V_Se over three such images were found."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    n = 1.8
    weights = {"Mo": 42**n, "Se": 34**n, "S": 16**n, "Te": 52**n}
    tp = fp = fn = 0
    for seed in (0, 2):
        params = MicroscopeParams(element_weights=weights, z_exponent=n, light_ratio=(16 / 34)**n,
                                  second_atom_factor=1.0, partner_cross_term=0.0,
                                  probe_fwhm_nm=0.1, column_scatter=0.0, dose_e_per_A2=3e5)
        sim = simulate_image("MoSe2", 384, 0.0125, params, seed=seed, substituents="S",
                             defect_fractions={"S_Se": 0.45, "S2_Se2": 0.2, "V_Se": 0.05,
                                               "V_Se2": 0.01, "V_Mo": 0.01})
        found = detect(sim.image, pixel_size_nm=0.0125, material="MoSe2", substituents=["S"])
        s = score(found, sim.defects, 0.08 / 0.0125, classes=["V_Se", "S_Se"])
        tp, fp, fn = tp + s.loc["V_Se", "tp"], fp + s.loc["V_Se", "fp"], fn + s.loc["V_Se", "fn"]
        assert s.loc["S_Se", "f1"] >= 0.95
    assert 2 * tp / (2 * tp + fp + fn) >= 0.9, (tp, fp, fn)


def test_the_vacancy_split_follows_the_operating_point():
    """A column moved between V_Se and S_Se is called as the operating point prefers: raising
    V_Se's threshold (precision) leaves fewer V_Se calls, lowering it more, and the neutral
    point calls the likelier of the two clusters."""
    rng = np.random.default_rng(5)
    vac, sub = 0.50 + 0.03 * rng.standard_normal(60), 0.64 + 0.03 * rng.standard_normal(600)
    cols, levels = _selenide_columns(np.concatenate([vac, sub]), np.array(["S_Se"] * 660), 300)
    counts = {}
    for t in (0.2, 0.5, 0.8, 0.97):
        out, _ = split_vacancy_rung(cols, levels, "MoSe2", ("S",), {"V_Se": t, "S_Se": 0.5})
        counts[t] = int((out["class"] == "V_Se").sum())
    assert counts[0.2] > counts[0.5] > counts[0.8] > counts[0.97] > 0, counts
    assert abs(counts[0.5] - 60) <= 8


def test_the_boundary_between_vacancies_and_the_light_substituent_follows_the_image():
    """A large MoS2 field (our simulator's 1024², 137 single columns): V_S at 0.44, O_S at 0.65
    of the host column, the detector's boundary at 0.60 — the O_S between 0.55 and 0.60 were
    called V_S. Two clusters of any size that the calls follow move the boundary; clusters the
    calls do not follow (the light substituent's two orders at high angles) do not."""
    from napari_atomdefect.core.detect.rungs import BOUNDARY_AGREEMENT

    rng = np.random.default_rng(11)
    v = 0.44 + 0.035 * rng.standard_normal(85)
    o = 0.65 + 0.035 * rng.standard_normal(52)
    levels = np.concatenate([v, o])
    called = np.where(levels < 0.60, "V_S", "O_S")
    n_host = 600
    cls = np.array(["chalcogen"] * n_host + list(called), object)
    p_o = np.where(cls == "O_S", 0.8, np.where(cls == "V_S", 0.2, 0.0))
    p_v = np.where(cls == "V_S", 0.8, np.where(cls == "O_S", 0.2, 0.0))
    cols = {"class": cls, "confidence": np.maximum(p_o, p_v),
            "p_chalcogen": np.where(cls == "chalcogen", 1.0, 0.0), "p_V_S": p_v, "p_O_S": p_o}
    lv = np.concatenate([np.ones(n_host), levels])
    truth = np.array(["V_S"] * 85 + ["O_S"] * 52)
    before = (called != truth).sum()
    assert (called == "V_S").mean() > 0.5 and ((called == "O_S") == (truth == "O_S")).mean() \
        >= BOUNDARY_AGREEMENT
    out, moved = split_vacancy_rung(cols, lv, "MoS2", ("O",))
    after = (out["class"][n_host:] != truth).sum()
    assert moved.get("O_S", 0) >= 3 and after < before / 2
    np.testing.assert_allclose(out["p_V_S"] + out["p_O_S"], cols["p_V_S"] + cols["p_O_S"])
    # the same clusters, but the calls do not follow them (half of each called the other):
    # the detector's calls stand
    mixed = np.where(rng.random(len(levels)) < 0.5, "V_S", "O_S")
    cls2 = np.array(["chalcogen"] * n_host + list(mixed), object)
    cols2 = {**cols, "class": cls2}
    out2, moved2 = split_vacancy_rung(cols2, lv, "MoS2", ("O",))
    assert moved2 == {} and (out2["class"] == cls2).all()


def test_a_se_rich_layer_whose_median_column_is_se2_splits_near_equal_halves():
    """A fresh image of an independent simulator, WS2 + 75 % Se: its Se2 (195) and S + Se (140)
    columns 1.6 times apart, half the Se2 ones called Se_S. Near-equal counts looked like the
    two orders of S + Se and were left; the ladder read the median column as Se2, which two
    orders of S + Se would not give, and the halves are split."""
    rng = np.random.default_rng(2)
    single, double = 2.3 + 0.05 * rng.standard_normal(140), 3.7 + 0.06 * rng.standard_normal(195)
    called = np.array(["Se_S"] * 140 + ["Se_S"] * 99 + ["Se2_S2"] * 96)
    cols, levels = _columns(np.concatenate([single, double]), called, n_host=22)
    assert split_heavy_rungs(cols, levels, "WS2", ("Se",))[1] == {}
    out, moved = split_heavy_rungs(cols, levels, "WS2", ("Se",), doubly_common=True)
    assert moved == {"Se2_S2": 99}
    assert (out["class"][22:162] == "Se_S").all() and (out["class"][162:] == "Se2_S2").all()


def test_the_boundary_between_the_heavy_rungs_follows_the_image():
    """Set K (thirty-third session): an independent simulator's MoSe2 + Te at 8e4 e/Å², its
    Te2_Se2 columns at 1.96 of an Se2 column and its Te_Se at 1.44 — two clusters too close for
    a clear split at that dose — had 18 of 42 Te2_Se2 called Te_Se, each brighter than any
    Te_Se: the detector's rungs sat higher (2.07). The calls already follow the two clusters
    on most columns, so the boundary moves to the image's."""
    rng = np.random.default_rng(5)
    single = 1.44 + 0.09 * rng.standard_normal(300)
    double = 1.96 + 0.08 * rng.standard_normal(42)
    levels = np.concatenate([single, double])
    called = np.where(levels > 1.92, "Te2_Se2", "Te_Se")
    n_host = 650
    cols, lv = _columns(levels, called, n_host, ("Te_Se", "Te2_Se2"))
    truth = np.array(["Te_Se"] * 300 + ["Te2_Se2"] * 42)
    before = int((called != truth).sum())
    out, moved = split_heavy_rungs(cols, lv, "MoSe2", ("Te",))
    after = int((out["class"][n_host:] != truth).sum())
    assert before >= 15 and after <= before / 3 and moved.get("Te2_Se2", 0) >= 10
    np.testing.assert_allclose(out["p_Te_Se"] + out["p_Te2_Se2"], cols["p_Te_Se"] + cols["p_Te2_Se2"])
    # calls that do not follow the clusters (half of each called the other) stand
    mixed = np.where(rng.random(len(levels)) < 0.5, "Te_Se", "Te2_Se2")
    cols2 = {**cols, "class": np.array(["chalcogen"] * n_host + list(mixed), object)}
    out2, moved2 = split_heavy_rungs(cols2, lv, "MoSe2", ("Te",))
    assert moved2 == {} and (out2["class"] == cols2["class"]).all()


def test_a_layer_converted_past_half_reads_its_two_heavy_rungs_end_to_end():
    """WS2 with 70 % of its S replaced by Se at random (our simulator, 5e5 e/Å²): its Se2 and
    S + Se columns are near-equal in number and far apart in level; the ladder reads the Se2
    columns as common and the host columns are a random alloy's, so the split follows the image
    (88 of 202 Se2_S2 had been called Se_S, F1 0.72)."""
    import warnings

    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.simulate.image import random_alloy_fractions, simulate_image

    sim = simulate_image("WS2", 512, 0.012, seed=7, dose_e_per_A2=5e5, substituents="Se",
                         defect_fractions=random_alloy_fractions("WS2", "Se", 0.7, "Se"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calls = detect(sim.image, 0.012, "WS2", device="cpu", substituents="Se")
    f1 = score(calls, sim.defects, 0.08 / 0.012)["f1"]
    assert f1["Se2_S2"] >= 0.95 and f1["Se_S"] >= 0.95, f1.to_dict()


def _reference_two_clusters(z, start, common):
    """The two-Gaussian EM of one start as written before the starts ran side by side."""
    from napari_atomdefect.core.detect.rungs import EM_ITERATIONS

    m, w = np.array(sorted(start), float), np.array([0.5, 0.5])
    s = np.full(2, max(float(np.std(z)) / 2, 1e-3))
    post, loglik = np.full(len(z), 0.5), -np.inf
    for _ in range(EM_ITERATIONS):
        d = np.exp(-0.5 * ((z[:, None] - m[None, :]) / s[None, :]) ** 2) * w[None, :] / s[None, :]
        total = d.sum(1) + 1e-300
        loglik = float(np.log(total).sum())
        r = d / total[:, None]
        n = r.sum(0)
        if (n < 1e-9).any():
            break
        w = n / len(z)
        m = (r * z[:, None]).sum(0) / n
        sq = (r * (z[:, None] - m[None, :]) ** 2).sum(0)
        s = np.maximum(np.sqrt(np.full(2, sq.sum() / len(z)) if common
                               else sq / np.maximum(n, 1e-9)), 1e-3)
        post = r[:, 1]
    if m[1] < m[0]:
        m, w, s, post = m[::-1], w[::-1], s[::-1], 1 - post
    return loglik, m, w, s, post


@pytest.mark.parametrize("common", [True, False])
def test_the_starts_run_side_by_side_fit_as_each_alone(common):
    """The EMs of several starts run as one array computation give each start's own fit to
    the bit (also where one start's cluster empties and it stops early)."""
    from napari_atomdefect.core.detect.rungs import _two_clusters_from

    rng = np.random.default_rng(5)
    for trial in range(40):
        n = int(rng.integers(8, 300))
        z = np.concatenate([rng.normal(0, 0.05, n),
                            rng.normal(rng.uniform(0.05, 0.5), 0.05, int(rng.integers(1, 40)))])
        if trial % 5 == 0:
            z = np.round(z, 1)     # ties: a cluster can empty
        starts = [tuple(np.quantile(z, q)) for q in ([0.05, 0.5], [0.1, 0.6], [0.2, 0.8])]
        starts.append((float(z.max()) + 5.0, float(z.max()) + 6.0))   # far off: stops early
        for got, start in zip(_two_clusters_from(z, starts, common), starts, strict=True):
            want = _reference_two_clusters(z, start, common)
            assert got[0] == want[0]
            for a, b in zip(got[1:], want[1:], strict=True):
                np.testing.assert_array_equal(a, b)
