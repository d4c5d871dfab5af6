"""Scoring detections against ground truth: one-to-one matching within a radius, per-class P/R/F1.

A detection matched to a true defect of another class counts as a false positive of its own class
and a false negative of the true class ("against both classes"). ``V_S`` and ``O_S`` are also scored
together as single-chalcogen defects (``V_S|O_S``), which HAADF separates far more reliably.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..materials.materials import DEFECT_CLASSES

MERGED = {"V_S|O_S": ("V_S", "O_S")}


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


def score(pred: pd.DataFrame, truth: pd.DataFrame, radius_px: float) -> pd.DataFrame:
    """Per-class precision, recall and F1 (plus the merged single-chalcogen class).

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
    groups = {c: (c,) for c in DEFECT_CLASSES} | MERGED
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
