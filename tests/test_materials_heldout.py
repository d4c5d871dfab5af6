"""Per-material accuracy floors of the bundled default models on held-out simulated images.

Per host material, the first ``N_IMAGES`` held-out images of ``benchmarks/bench_materials.py``
(seeds 960 000+, disjoint from training, calibration and the other accuracy checks; mixed,
single-substituent and alloy-like substituent content) are analysed two ways (``PROTOCOLS``):
``"named"``, each image with the substituents it was made with and the model ``atomdefect
detect --substituents`` takes for them (a user who names what the sample holds, and how the
command is judged); ``"every"``, every image with every substituent of the material and its
default model for them all. Pooled per-class F1 (matching radius 0.08 nm) must reach the
floors: the measured figures (``MEASURED``) minus about 0.1, rounded down to 0.05.

A material whose bundled model is not there yet is skipped with the reason; so is a model whose
class list is not the one the floors were measured for (the floors must be measured again: run
this file as a script, ``python tests/test_materials_heldout.py``, which prints the figures and
the floors they suggest). A class with fewer than ``MIN_TRUE`` true sites in these images is not
asserted (its F1 would rest on a handful of sites).

The WS2-image-analysed-as-MoS2 mismatch message is tested in ``tests/test_image_fit.py``
(``test_ws2_image_analysed_as_mos2_says_so_and_proposes_ws2``,
``test_detect_warns_and_records_when_the_model_does_not_fit``) and is not repeated here.
"""

from __future__ import annotations

import math
from functools import cache

import pytest

from .scenarios import bench_materials

N_IMAGES = 6
SIZE = 320
MIN_TRUE = 15
#: The two ways the images are analysed (see the module docstring).
PROTOCOLS = ("named", "every")

#: Per material: the model's class list when the floors below were measured (both protocols); a
#: model with other classes skips the test until its floors are measured.
MEASURED_CLASSES: dict[str, tuple[str, ...]] = {
    "MoS2": ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_Mo"),
    "WS2": ("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_W"),
    "MoSe2": ("V_Se", "V_Se2", "S_Se", "S2_Se2", "Te_Se", "Te2_Se2", "V_Mo"),
    "WSe2": ("V_Se", "V_Se2", "S_Se", "S2_Se2", "Te_Se", "Te2_Se2", "V_W"),
}
#: Per protocol and material: the pooled F1 measured then.
MEASURED: dict[str, dict[str, dict[str, float]]] = {
    # Twentieth session (2026-12-04): both protocols measured with the bundled models of the
    # session's end (mose2-default round 20; training microscopes at every voltage, held-out
    # images at the five they always had). MoSe2 "every" went V_Se 0.768 -> 0.724, Te_Se 0.667
    # -> 0.643 with round 20, which reads multislice S alloys far better (docs/benchmarks.md);
    # WS2 "every" O_S 0.51 -> 0.64 is the round-19 average of the eighteenth session (not
    # re-measured then). Earlier notes: the held-out images carry patchy contamination and
    # column-to-column scatter (fourth session), the multislice-measured column physics of the
    # twelfth and the side asymmetry of the sixteenth session; with every substituent MoS2 is
    # read by mos2-alloy (host units); a WSe2 + S image, k = 11 of the second seed range and not
    # among these six, is read as a WSeTe layer when Te is chosen.
    "named": {
        "MoS2": {"V_S": 0.822, "V_S2": 1.0, "O_S": 0.651, "Se_S": 0.934, "Se2_S2": 0.951,
                 "V_Mo": 1.0, "V_S|O_S": 0.972},
        "WS2": {"V_S": 0.889, "V_S2": 1.0, "O_S": 0.667, "Se_S": 0.971, "Se2_S2": 0.972,
                "V_S|O_S": 0.942},
        "MoSe2": {"V_Se": 0.724, "V_Se2": 0.977, "S_Se": 0.819, "S2_Se2": 0.932, "Te_Se": 0.692,
                  "V_Se|S_Se": 0.934},
        "WSe2": {"V_Se": 0.775, "V_Se2": 0.973, "S_Se": 0.832, "S2_Se2": 0.966,
                 "V_Se|S_Se": 0.956},
    },
    "every": {
        "MoS2": {"V_S": 0.845, "V_S2": 1.0, "O_S": 0.667, "Se_S": 0.934, "Se2_S2": 0.951,
                 "V_Mo": 1.0, "V_S|O_S": 0.958},
        "WS2": {"V_S": 0.889, "V_S2": 1.0, "O_S": 0.64, "Se_S": 0.971, "Se2_S2": 0.972,
                "V_S|O_S": 0.931},
        "MoSe2": {"V_Se": 0.724, "V_Se2": 0.977, "S_Se": 0.819, "S2_Se2": 0.932, "Te_Se": 0.643,
                  "V_Se|S_Se": 0.934},
        "WSe2": {"V_Se": 0.775, "V_Se2": 0.973, "S_Se": 0.825, "S2_Se2": 0.966,
                 "V_Se|S_Se": 0.952},
    },
}


def floor_of(f1: float) -> float:
    """The floor asserted for a measured F1: 0.1 below it, rounded down to 0.05, never below 0."""
    return max(0.0, math.floor((f1 - 0.1) * 20 + 1e-9) / 20)


FLOORS = {p: {m: {c: floor_of(v) for c, v in f1.items()} for m, f1 in table.items()}
          for p, table in MEASURED.items()}


bench = bench_materials  # (the held-out images' one source)


@cache
def figures(material: str, protocol: str = "every") -> dict:
    """Pooled held-out figures of ``material``'s default model(s) under ``protocol`` (see the
    module docstring)."""
    return bench().bench_material(material, N_IMAGES, SIZE,
                                  image_substituents=protocol == "named")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("material", ["MoS2", "WS2", "MoSe2", "WSe2"])
def test_heldout_per_class_f1_floors(material, protocol):
    info, why = bench().material_model(material)
    if info is None:
        pytest.skip(why)
    from napari_atomdefect.core.models.registry import model_classes

    classes = model_classes(info)
    if material not in MEASURED[protocol] or MEASURED_CLASSES.get(material) != classes:
        pytest.skip(f"floors for {material} not measured for model {info.name} with classes "
                    f"{', '.join(classes)}; run tests/test_materials_heldout.py as a script")
    result = figures(material, protocol)
    per_class = result["per_class"]
    assert set(classes) <= set(per_class), "every class of the model is scored"
    checked = []
    for name, floor in FLOORS[protocol][material].items():
        row = per_class.get(name)
        if row is None or row["n_true"] < MIN_TRUE:
            continue
        checked.append(name)
        assert row["f1"] is not None and row["f1"] >= floor, (
            f"{material} ({protocol} substituents) {name}: F1 {row['f1']} below {floor} "
            f"(n_true {row['n_true']}, n_pred {row['n_pred']})")
    assert checked, f"no class of {material} has {MIN_TRUE} true sites in the held-out images"


def _print_figures() -> None:
    module = bench()
    for protocol, material in [(p, m) for p in PROTOCOLS for m in module.HOSTS]:
        entry = figures(material, protocol)
        print(f"[{protocol}]")
        print(module.format_table(entry))
        if "skipped" in entry:
            continue
        f1 = {c: r["f1"] for c, r in entry["per_class"].items()
              if r["f1"] is not None and r["n_true"] >= MIN_TRUE
              and (c in entry["classes"] or "|" in c)}  # not classes the model cannot call
        print(f"  MEASURED_CLASSES entry: {material!r}: {tuple(entry['classes'])!r}")
        print(f"  MEASURED[{protocol!r}] entry: {material!r}: "
              f"{ {c: round(v, 3) for c, v in f1.items()} }")
        print(f"  floors: { {c: floor_of(v) for c, v in f1.items()} }")


if __name__ == "__main__":
    _print_figures()
