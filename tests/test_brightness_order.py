"""Which of two equally uniform sublattices is the metal (``lattice/brightness_order.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_atomdefect.core.lattice.brightness_order import (
    brightness_order,
    deficient_columns,
    ratio_log10_odds,
)
from napari_atomdefect.core.materials.materials import get_material


def _columns(level: float, n: int, rng: np.random.Generator, missing: int = 0,
             left: float = 0.78) -> np.ndarray:
    """``n`` uniform column peaks at ``level`` (2 % noise), ``missing`` of them down to ``left``
    of it (a column that lost one atom)."""
    peaks = level * (1 + 0.02 * rng.standard_normal(n))
    peaks[:missing] = left * level * (1 + 0.02 * rng.standard_normal(missing))
    return peaks


def test_deficient_columns_counts_only_columns_well_below_the_median():
    rng = np.random.default_rng(0)
    assert deficient_columns(_columns(1.0, 500, rng)) == 0
    assert deficient_columns(_columns(1.0, 500, rng, missing=9)) == 9
    assert deficient_columns(np.array([np.nan, 1.0, 1.0, 0.1])) == 1


def test_ratio_odds_follow_the_physics_of_each_host():
    mose2, ws2 = get_material("MoSe2"), get_material("WS2")
    # MoSe2's Se2 columns outshine its Mo ones (0.48-0.86): at 0.6 the order stands...
    assert ratio_log10_odds(0.6, mose2, ("S",)) < -1
    # ... while at 0.95 the Mo columns over S + Se ones of a Janus layer fit about as well.
    assert abs(ratio_log10_odds(0.95, mose2, ("S",))) < 2
    # Without S (or Se) chosen no chalcogen column can be dimmer than the metal.
    assert ratio_log10_odds(0.95, mose2, ()) < ratio_log10_odds(0.95, mose2, ("S",)) - 1
    # WS2's W columns 6 times its S2 ones: nothing else fits.
    assert ratio_log10_odds(6.0, ws2, ("Se",)) < -10


def test_a_janus_layer_read_the_other_way_round_by_its_vacancies():
    """An independent simulator's Janus MoSe2 + S layer (one whole side S): its Mo columns 1.19
    times the S + Se ones, both sublattices uniform; the 8 columns that lost an atom lie on the
    dimmer one, which MoSe2's order had taken for the Mo (every Mo column read as a Se2 one)."""
    rng = np.random.default_rng(1)
    mose2 = get_material("MoSe2")
    dimmer = _columns(1.0, 500, rng, missing=8)   # the S + Se columns
    brighter = _columns(1.19, 500, rng)           # the Mo columns
    order = brightness_order(dimmer, brighter, mose2, "S")
    assert order is not None and order.exchange and order.deficient == (8, 0)
    # Without the vacancies the image fits both readings: MoSe2's order stands, said.
    order = brightness_order(_columns(1.0, 500, rng), brighter, mose2, "S")
    assert order is not None and not order.exchange and order.undecided
    # A pristine MoSe2 layer's Se2 columns (the vacancies on them): nothing to exchange.
    order = brightness_order(_columns(0.7, 500, rng), _columns(1.0, 500, rng, missing=12),
                             mose2, "S")
    assert order is None or (not order.exchange and not order.undecided)


@pytest.mark.parametrize("material, ratio", [("WS2", 6.0), ("WSe2", 2.0), ("MoS2", 2.7)])
def test_hosts_whose_ratio_settles_the_order_are_not_questioned(material, ratio):
    rng = np.random.default_rng(2)
    metal = _columns(ratio, 400, rng, missing=10)  # even with deficient columns on the metal
    assert brightness_order(metal, _columns(1.0, 400, rng), get_material(material), None) is None


def test_janus_mose2_layer_is_read_with_its_mo_columns_the_brighter():
    """Detection of a simulated Janus MoSe2 + S layer whose Mo columns are about as bright as
    its S + Se ones: the columns that lost atoms tell the chalcogen sublattice, the S_Se columns
    are called, and the exchange against MoSe2's usual order is said."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    sim = simulate_image("MoSe2", 384, 0.012, MicroscopeParams(dose_e_per_A2=5e5), seed=3,
                         defect_fractions={"S_Se": 0.95, "V_Se": 0.03, "V_Se2": 0.01},
                         substituents="S")
    found = detect(sim.image, 0.012, "MoSe2", substituents=["S"])
    truth = sim.defects["class"].value_counts()
    called = found["class"].value_counts()
    assert called.get("S_Se", 0) >= 0.95 * truth["S_Se"]
    assert called.get("V_Mo", 0) == 0
    assert abs(called.get("V_Se", 0) - truth["V_Se"]) <= 2
    assert any("against MoSe2's usual order" in m for m in found.attrs["messages"])


def test_an_undecided_order_is_a_warning_beside_the_result():
    """A Janus MoSe2 + S layer with no column that lost an atom: its Mo and S + Se columns as
    bright (our simulator: 1.02 times), nothing tells the sublattices apart. The host's order
    stands, and the user is warned, before the long part and beside the result, how to take
    the other; no Mo/W alloy is suggested for two uniform sublattices."""
    import warnings

    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.image_fit import ModelFitWarning
    from napari_atomdefect.core.lattice.brightness_order import ORDER_UNDECIDED_NOTE
    from napari_atomdefect.core.lattice.metal_rungs import METAL_ALLOY_NOTE
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    sim = simulate_image("MoSe2", 384, 0.012, MicroscopeParams(dose_e_per_A2=5e5), seed=1,
                         defect_fractions={"S_Se": 0.95, "V_Se": 0.03, "V_Se2": 0.01},
                         substituents="S")
    assert "V_Se" not in set(sim.defects["class"])  # (this draw has no single vacancy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = detect(sim.image, 0.012, "MoSe2", substituents=["S"])
    said = [str(w.message) for w in caught if issubclass(w.category, ModelFitWarning)
            and ORDER_UNDECIDED_NOTE in str(w.message)]
    assert len(said) == 1 and "analyse the layer as MoS2 with Se" in said[0]
    assert said[0] in found.attrs["fit_messages"]
    assert not any(METAL_ALLOY_NOTE in m for m in found.attrs["messages"])


def test_the_exchange_sentence_names_what_decided_it():
    """The columns that miss atoms where they decided, else the brightness ratio (an exchange
    by the ratio alone, no column missing an atom, had been said as "0 against 0")."""
    from napari_atomdefect.core.lattice.brightness_order import BrightnessOrder, order_note

    mose2 = get_material("MoSe2")
    by_vacancies = order_note(BrightnessOrder(True, 4.7, -0.1, (8, 0), 0.84), mose2,
                                          False)
    assert "the dimmer one holds the columns that miss atoms (8 against 0), so it is taken for " \
           "the chalcogen and the brighter for the Mo" in by_vacancies
    by_ratio = order_note(BrightnessOrder(True, 2.5, 2.5, (0, 0), 0.95), mose2,
                                      False)
    assert "brightness ratio fits the Mo as the brighter one far better, so the dimmer one is " \
           "taken for the chalcogen" in by_ratio and "against" in by_ratio


def test_a_low_contrast_wse2_with_te_chosen_is_not_questioned():
    """Held-out image 10 of ``benchmarks/bench_materials.py`` (WSe2 at W/Se2 1.34, few
    vacancies), S and Te chosen: its brightness fits a Janus WSeTe layer read the other way
    round as well, but such layers are rare — only the S/Se partner's Janus layers (MoSSe,
    WSSe) put the order in question (it had been, for this image)."""
    from napari_atomdefect.core.lattice.brightness_order import ORDER_NOTE
    from napari_atomdefect.core.lattice.lattice import find_lattice

    from .scenarios import bench_materials

    item = bench_materials().heldout_image("WSe2", 10, 320)
    lattice = find_lattice(item.image, "WSe2", item.pixel_size_nm, substituents=("S", "Te"))
    assert not any(m.startswith(ORDER_NOTE) for m in lattice.messages)
