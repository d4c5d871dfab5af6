"""Defect classes an image cannot tell apart (:mod:`napari_atomdefect.core.detect.overlap`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_atomdefect.core.detect.overlap import (
    MIN_UNCERTAIN,
    class_overlaps,
    overlap_message,
)

CHALCOGEN = ("chalcogen", "V_Se", "V_Se2", "S_Se", "S2_Se2")


def site_table(rows: list[tuple[str, dict[str, float]]], n_metal: int = 5) -> pd.DataFrame:
    """A site table: ``n_metal`` pristine metal sites, then one chalcogen site per row (its
    class and the probabilities given; the other chalcogen classes share what is left)."""
    records = [{"sublattice": "metal", "class": "metal", "p_metal": 0.99, "p_V_W": 0.01,
                **{f"p_{c}": np.nan for c in CHALCOGEN}} for _ in range(n_metal)]
    for cls, probs in rows:
        rest = [c for c in CHALCOGEN if c not in probs]
        left = (1.0 - sum(probs.values())) / len(rest)
        records.append({"sublattice": "chalcogen", "class": cls, "p_metal": np.nan,
                        "p_V_W": np.nan, **{f"p_{c}": probs.get(c, left) for c in CHALCOGEN}})
    return pd.DataFrame(records)


def test_a_pair_whose_calls_are_often_nearly_as_likely_the_other_is_reported():
    # 12 V_Se calls at 0.6 / 0.38 against S_Se, 30 firm S_Se calls, 100 pristine columns.
    rows = ([("V_Se", {"V_Se": 0.6, "S_Se": 0.38})] * 12 + [("S_Se", {"S_Se": 0.97})] * 30
            + [("chalcogen", {"chalcogen": 0.99})] * 100)
    overlaps = class_overlaps(site_table(rows))
    assert len(overlaps) == 1
    o = overlaps[0]
    assert o.classes == ("V_Se", "S_Se")
    assert o.uncertain == (12, 0) and o.called == (12, 30) and o.n_union == 42
    message = overlap_message(class_overlaps(site_table(rows)))
    assert message.startswith("V_Se and S_Se overlap in this image: 12 of 12 V_Se")
    # what is sure, in the words of the columns (a trial: "their sum is not" [uncertain] added
    # an alloy atom to a vacancy)
    assert ("so their 42 columns each hold one Se atom — that is sure; whether the other site "
            "holds S or is empty is not;") in message
    from napari_atomdefect.core.detect.overlap import one_atom_pair, sum_sentence

    assert one_atom_pair("O_S", "V_S") == ("S", "O") and one_atom_pair("Se_S", "V_S") == (
        "S", "Se")
    assert one_atom_pair("V_S", "V_S2") is None and one_atom_pair("Se_S", "Se2_S2") is None
    assert one_atom_pair("V_Se", "Se_S") is None  # (two hosts: no column in common)
    assert sum_sentence("Se_S", "Se2_S2", 7) == ("their split is uncertain while their sum (7) "
                                                 "is not")


def test_firm_calls_and_pristine_runners_up_are_not_reported():
    # Every defect call's runner-up is the pristine column or far below the call.
    rows = ([("V_Se", {"V_Se": 0.55, "chalcogen": 0.44})] * 20
            + [("S_Se", {"S_Se": 0.8, "V_Se": 0.15})] * 20
            + [("chalcogen", {"chalcogen": 0.6, "V_Se": 0.39})] * 50)
    assert class_overlaps(site_table(rows)) == []
    assert overlap_message(class_overlaps(site_table(rows))) is None


def test_a_few_uncertain_calls_or_a_small_share_are_not_reported():
    few = [("V_Se", {"V_Se": 0.55, "S_Se": 0.44})] * (MIN_UNCERTAIN - 1)
    assert class_overlaps(site_table(few)) == []
    # 10 uncertain among 100 calls of each class: a tenth, not an overlap of the classes.
    share = ([("V_Se", {"V_Se": 0.55, "S_Se": 0.44})] * 5 + [("V_Se", {"V_Se": 0.97})] * 95
             + [("S_Se", {"S_Se": 0.55, "V_Se": 0.44})] * 5 + [("S_Se", {"S_Se": 0.97})] * 95)
    assert class_overlaps(site_table(share)) == []


def test_the_metal_sublattice_never_competes_with_the_chalcogen_classes():
    table = site_table([("V_Se", {"V_Se": 0.6, "S_Se": 0.38})] * 12)
    table.loc[table.sublattice == "metal", "class"] = "V_W"
    table.loc[table.sublattice == "metal", ["p_metal", "p_V_W"]] = [0.45, 0.55]
    overlaps = class_overlaps(table)
    assert [o.classes for o in overlaps] == [("V_Se", "S_Se")]


def test_an_empty_table_has_no_overlap():
    assert class_overlaps(site_table([], n_metal=0)) == []


def test_a_handful_of_substitutions_beside_many_vacancies_suggest_leaving_the_substituent_out():
    """A trial's MoSe2 + Te image analysed with S and Te: 18 of its 20 V_Se were nearly as
    likely S_Se (2 S_Se calls in all) and the sentence advised fine-tuning; with so few calls
    of the substitution it also says the layer may hold no S, and what to do then."""
    from napari_atomdefect.core.detect.overlap import ClassOverlap

    said = ClassOverlap(("V_Se", "S_Se"), (18, 1), (20, 2)).message()
    assert said.endswith("With only 2 S_Se calls the layer may hold no S: if so, leave S out "
                         "of the substituents and the V_Se calls stand on their own.")
    many = ClassOverlap(("S_Se", "V_Se"), (13, 6), (61, 9)).message()
    assert "may hold no" not in many
    assert "may hold no O: if so, leave O out" in ClassOverlap(("V_S", "O_S"), (10, 2),
                                                                (30, 2)).message()
    assert "may hold no" not in ClassOverlap(("V_S", "O_S"), (10, 6), (30, 6)).message()
    # None called at all (an independent simulator's WSe2 + S image): "no", not "only 0".
    none = ClassOverlap(("V_Se", "S2_Se2"), (17, 0), (17, 0)).message()
    assert none.endswith("With no S2_Se2 call the layer may hold no S: if so, leave S out of "
                         "the substituents and the V_Se calls stand on their own.")
    assert "17 of 17 V_Se calls are" in none and "0 S2_Se2" not in none


def test_a_fine_tuned_models_overlap_does_not_ask_to_fine_tune_as_if_new():
    """Trial, twenty-ninth session: detecting with the model just fine-tuned still ended with
    "correcting a few of them and fine-tuning on those cells splits them for your microscope"."""
    from napari_atomdefect.core.detect.overlap import ClassOverlap

    pair = ClassOverlap(("V_Se", "S_Se"), (10, 12), (20, 25))
    assert "fine-tuning on those cells splits them" in pair.message()
    tuned = pair.message(fine_tuned=True)
    assert "this model is fine-tuned already: correct more of them (both classes)" in tuned
    assert "splits them for your microscope" not in tuned
