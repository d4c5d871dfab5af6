"""Scoring detections against ground truth: one-to-one matching within a radius, per-class P/R/F1.

A detection matched to a true defect of another class counts as a false positive of its own class
and a false negative of the true class ("against both classes"). Every class that the truth or the
predictions hold is scored. A vacancy and a light substituent of one chalcogen (``V_S`` and
``O_S`` in MoS2, ``V_Se`` and ``S_Se`` in selenides) are also scored together (``V_S|O_S``), which
HAADF separates far more reliably than the two apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..materials.columns import ALL_CLASS_NAMES, class_site, lookup_class

#: The merged group of MoS2 (kept for callers that name it).
MERGED = {"V_S|O_S": ("V_S", "O_S")}
#: Substituents lighter than the host chalcogen they replace (their ``D_X`` looks like ``V_X``).
LIGHT_SUBSTITUENTS = {"S": ("O",), "Se": ("S", "O")}


def merged_groups(classes: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``{"V_X|D_X": ("V_X", "D_X")}`` for each light substituent ``D`` among ``classes``."""
    out: dict[str, tuple[str, ...]] = {}
    for name in classes:
        c = lookup_class(name)
        if c is None or c.kind != "D_X":
            continue
        host = c.atoms[0]
        if c.substituent in LIGHT_SUBSTITUENTS.get(str(host), ()):
            out[f"V_{host}|{name}"] = (f"V_{host}", name)
    return out


def scored_classes(*class_columns: np.ndarray) -> list[str]:
    """The classes present in any of ``class_columns``: known chalcogen-site classes, then metal
    vacancies (each in package order), then unknown names sorted."""
    seen = set().union(*(set(map(str, c)) for c in class_columns)) if class_columns else set()
    known = sorted((c for c in ALL_CLASS_NAMES if c in seen),
                   key=lambda c: (class_site(c) == "metal", ALL_CLASS_NAMES.index(c)))
    return known + sorted(seen - set(ALL_CLASS_NAMES))


def match(pred: np.ndarray, truth: np.ndarray, radius_px: float) -> list[tuple[int, int]]:
    """Optimal one-to-one pairs ``(i_pred, j_truth)`` closer than ``radius_px``."""
    if len(pred) == 0 or len(truth) == 0:
        return []
    tree = cKDTree(truth)
    pairs = tree.query_ball_point(pred, radius_px)
    cost = np.full((len(pred), len(truth)), 1e6)
    for i, js in enumerate(pairs):
        for j in js:
            cost[i, j] = np.hypot(*(pred[i] - truth[j]))
    rows, cols = linear_sum_assignment(cost)
    return [(i, j) for i, j in zip(rows, cols, strict=True) if cost[i, j] <= radius_px]


def _metal_of(*tables: pd.DataFrame) -> str | None:
    """The metal of the material a defect table names (its ``material`` column), if any."""
    from ..materials.materials import MATERIALS

    for table in tables:
        if "material" in table.columns and len(table):
            name = str(table["material"].iloc[0])
            if name in MATERIALS:
                return MATERIALS[name].metal
    return None


def score(pred: pd.DataFrame, truth: pd.DataFrame, radius_px: float,
          classes: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per-class precision, recall and F1 (plus the merged vacancy|light-substituent groups).

    Parameters
    ----------
    pred, truth : DataFrame
        Defects with ``y_px``, ``x_px``, ``class``.
    radius_px : float
        Matching radius.
    classes : list of str, optional
        Classes to score, in order; default: every class the truth or the predictions hold
        (:func:`scored_classes`), or all legacy MoS2 classes when they hold none other (with the
        metal vacancy of the material a table names in its ``material`` column).

    Returns
    -------
    DataFrame
        Index: class; columns ``tp, fp, fn, precision, recall, f1, n_true, n_pred``.
    """
    p_xy = pred[["y_px", "x_px"]].to_numpy(float)
    t_xy = truth[["y_px", "x_px"]].to_numpy(float)
    p_cls = pred["class"].astype(str).to_numpy()
    t_cls = truth["class"].astype(str).to_numpy()
    pairs = match(p_xy, t_xy, radius_px)
    matched_p = {i for i, _ in pairs}
    matched_t = {j for _, j in pairs}
    rows = {}
    if classes is None:
        from ..materials.columns import LEGACY_CLASSES

        found = scored_classes(p_cls, t_cls)
        classes = list(LEGACY_CLASSES) if set(found) <= set(LEGACY_CLASSES) else found
        metal = _metal_of(pred, truth)
        if metal and metal != "Mo":  # (a WS2 table of V_S/V_S2 calls: its metal is W)
            classes = [f"V_{metal}" if c == "V_Mo" else c for c in classes]
    groups = {c: (c,) for c in classes} | merged_groups(list(classes))
    for name, members in groups.items():
        def in_group(c: np.ndarray, members: tuple[str, ...] = members) -> np.ndarray:
            return np.isin(c, members)

        tp = sum(1 for i, j in pairs if in_group(p_cls[i]) and in_group(t_cls[j]))
        fp_wrong = sum(1 for i, j in pairs if in_group(p_cls[i]) and not in_group(t_cls[j]))
        fn_wrong = sum(1 for i, j in pairs if in_group(t_cls[j]) and not in_group(p_cls[i]))
        fp = fp_wrong + sum(1 for i in range(len(p_cls)) if i not in matched_p and in_group(p_cls[i]))
        fn = fn_wrong + sum(1 for j in range(len(t_cls)) if j not in matched_t and in_group(t_cls[j]))
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
        rows[name] = {"tp": tp, "fp": fp, "fn": fn, "precision": prec, "recall": rec, "f1": f1,
                      "n_true": int(in_group(t_cls).sum()), "n_pred": int(in_group(p_cls).sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def corrections_needed(pred: pd.DataFrame, truth: pd.DataFrame, radius_px: float) -> dict:
    """The edits that would turn ``pred`` into ``truth``: what a user reviewing the detections
    has to do by hand.

    Returns
    -------
    dict
        ``add`` (true defects with no detection), ``delete`` (detections with no true defect),
        ``reclassify`` (matched, wrong class), ``total``, and ``n_true``.
    """
    p_cls = pred["class"].astype(str).to_numpy()
    t_cls = truth["class"].astype(str).to_numpy()
    pairs = match(pred[["y_px", "x_px"]].to_numpy(float), truth[["y_px", "x_px"]].to_numpy(float),
                  radius_px)
    reclassify = sum(1 for i, j in pairs if p_cls[i] != t_cls[j])
    add, delete = len(t_cls) - len(pairs), len(p_cls) - len(pairs)
    return {"add": add, "delete": delete, "reclassify": reclassify,
            "total": add + delete + reclassify, "n_true": len(t_cls)}


def located_share(pred: pd.DataFrame, truth: pd.DataFrame, radius_px: float) -> float:
    """Share of the calls of ``pred`` within ``radius_px`` of a defect of ``truth``, whatever the
    classes (near 0: the two tables are not of one image, or not at one pixel size)."""
    if len(pred) == 0 or len(truth) == 0:
        return float("nan")
    d, _ = cKDTree(truth[["y_px", "x_px"]].to_numpy(float)).query(
        pred[["y_px", "x_px"]].to_numpy(float))
    return float(np.mean(d <= radius_px))
