"""Metal antisites (the host metal in a chalcogen column, ``Mo_S2``): read from the levels.

A probe of the thirty-first session put Mo atoms at S2 sites of simulated MoS2: every one was
called pristine, and nothing was said. They are now a class the user chooses (the host metal
among the substituents), read from the chalcogen columns' levels, and said when not chosen.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_atomdefect.core.detect.antisites import antisite_probability
from napari_atomdefect.core.detect.decision import run_classes
from napari_atomdefect.core.detect.detect import detect
from napari_atomdefect.core.materials.columns import (
    antisite_chosen,
    class_names,
    lookup_class,
    parse_substituents,
)
from napari_atomdefect.core.models.registry import resolve_model
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image


def test_the_antisite_class_is_named_per_host_and_chosen_by_the_host_metal():
    assert class_names("MoS2", ("O", "Mo")) == ("V_S", "V_S2", "O_S", "V_Mo", "Mo_S2")
    assert class_names("WSe2", ("S", "Mo", "W"))[-2:] == ("Mo_W", "W_Se2")
    assert parse_substituents("O,Mo", "MoS2") == ("O",)
    assert antisite_chosen("o, mo", "MoS2") and not antisite_chosen("O,W", "MoS2")
    assert not antisite_chosen(None, "MoS2")
    c = lookup_class("W_S2")
    assert (c.kind, c.site, c.atoms, c.substituent) == ("M_X2", "chalcogen", (None, "W"), "W")
    run = run_classes(resolve_model("mos2-default").card, "MoS2", "O,Mo")
    assert run.classes == ("V_S", "V_S2", "O_S", "V_Mo", "Mo_S2")
    assert run.detector_classes == ("V_S", "V_S2", "O_S", "V_Mo")
    assert run.all_substituents == ("O", "Mo")


def test_antisite_probability_separates_metal_level_columns_from_the_host():
    rng = np.random.default_rng(0)
    host = rng.normal(1.0, 0.05, 500)
    vacancies = rng.normal(0.5, 0.05, 60)             # below the host: never antisites
    antisites = rng.normal(2.8, 0.1, 4)
    p, reason = antisite_probability(np.concatenate([host, vacancies, antisites]), 2.8, 1.0, 0.04)
    assert reason is None
    assert (p[-4:] > 0.99).all() and (p[:-4] == 0).all()
    # The metal hardly outshines the host column (MoSe2): no column can be told.
    assert antisite_probability(np.concatenate([host, antisites]), 1.2, 1.0, 0.04)[1] == "contrast"
    # Host columns as noisy as the gap to the metal: none either.
    noisy = rng.normal(1.0, 0.4, 500)
    assert antisite_probability(np.concatenate([noisy, antisites]), 2.8, 1.0, 0.04)[1] == "noise"
    # A fifth of the columns at the metal's level is an alloy (an unchosen Se), not antisites.
    many = rng.normal(2.8, 0.1, 120)
    p, reason = antisite_probability(np.concatenate([host, many]), 2.8, 1.0, 0.04)
    assert reason == "alloy" and not p.any()


@pytest.fixture(scope="module")
def antisite_image():
    params = MicroscopeParams.random(np.random.default_rng(100), "MoS2")
    return simulate_image("MoS2", 384, 0.012, params=params, seed=0, antisites=0.015,
                          dose_e_per_A2=5e5)


def _detect(sim, substituents):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(sim.image, pixel_size_nm=sim.pixel_size_nm, material="MoS2",
                       device="cpu", substituents=substituents)
    return table, [str(w.message) for w in caught]


def test_chosen_antisites_are_called_where_they_are(antisite_image):
    sim = antisite_image
    truth = sim.defects[sim.defects["class"] == "Mo_S2"][["y_px", "x_px"]].to_numpy()
    assert len(truth) >= 3
    table, _ = _detect(sim, "O,Mo")
    called = table[table["class"] == "Mo_S2"][["y_px", "x_px"]].to_numpy()
    assert len(called) == len(truth)
    radius = 0.08 / sim.pixel_size_nm
    assert (cKDTree(called).query(truth)[0] < radius).all()
    assert (table[table["class"] == "Mo_S2"].confidence > 0.9).all()
    # The other classes are read as before.
    before, _ = _detect(sim, "O")
    assert (table[table["class"] != "Mo_S2"]["class"].value_counts().to_dict()
            == before["class"].value_counts().to_dict())
    # The detections layer's name says what was chosen: "Mo" alone would read as a Mo/W alloy.
    from napari_atomdefect.widgets.detect import _run_label

    assert _run_label("mos2-default", table) == "mos2-default, O+Mo antisites"
    assert _run_label("mos2-default", before) == "mos2-default, O"


def test_unchosen_antisites_are_said_and_not_called(antisite_image):
    table, messages = _detect(antisite_image, "O")
    assert "Mo_S2" not in set(table["class"])
    said = [m for m in messages if "antisite" in m]
    n = int((antisite_image.defects["class"] == "Mo_S2").sum())
    assert said == [f"{n} S2 columns are as bright as a Mo column: a Mo atom in each (an "
                    "antisite) — or Se, where the layer holds some; choose Mo among the "
                    "substituents (its antisites) to mark them as Mo_S2."]
    assert said[0] in table.attrs["messages"]


def test_antisites_are_not_read_beside_the_heavier_substituent(antisite_image):
    table, messages = _detect(antisite_image, "O,Se,Mo")
    assert "Mo_S2" not in set(table["class"])
    assert ("Mo antisites (Mo_S2) are not marked beside Se: an S2 column holding Se can read as "
            "bright as one holding a Mo atom.") in messages


def test_no_antisite_is_said_or_called_in_a_layer_without_one():
    params = MicroscopeParams.random(np.random.default_rng(101), "MoS2")
    sim = simulate_image("MoS2", 384, 0.012, params=params, seed=1, dose_e_per_A2=5e5)
    for subs in ("O", "O,Mo"):
        table, messages = _detect(sim, subs)
        assert "Mo_S2" not in set(table["class"])
        assert not [m for m in messages if "antisite" in m]


def test_statistics_count_an_antisite_as_both_atoms_of_its_column():
    """The Statistics dock failed on the new kind (a user's first run with it ticked)."""
    import pandas as pd

    from napari_atomdefect.widgets.stats import defect_statistics

    stats = defect_statistics(pd.Series(["Mo_S2", "Mo_S2", "V_S"]), 100, 100, 10.0,
                              ("V_S", "V_S2", "O_S", "V_Mo", "Mo_S2"))
    assert stats.loc["Mo_S2", "count"] == 2
    assert stats.loc["Mo_S2", "per_site"] == pytest.approx(4 / 200)  # both atoms of 2 of 100
    assert stats.loc["V_S", "per_site"] == pytest.approx(1 / 200)
