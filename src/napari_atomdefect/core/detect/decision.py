"""The class decision at each site: calibrated probabilities and the user's operating point.

Two steps follow the network's temperature-scaled site probabilities ``p``:

1. **Calibration** (from the model card's ``detector.calibration`` section; identity without one):
   diagonal Dirichlet calibration, ``q = softmax(scale * log p + bias)`` per sublattice, fitted on
   held-out simulated sites (see :mod:`.confidence`). ``q`` is what the table reports.
2. **Operating point**: one value ``t_c`` in (0, 1) per defect class; a site takes the class with
   the largest ``log q_c - logit(t_c)`` (``t = 0.5`` for pristine columns). Against a single
   alternative, class ``c`` is called exactly when ``q_c >= t_c``; ``t_c = 0.5`` for every class
   (neutral, the default) is the plain most-probable class. A higher ``t_c`` asks for more evidence
   before calling ``c`` (precision), a lower one calls it sooner (recall).

The same code runs for bundled and fine-tuned models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..errors import AtomDefectError
from ..materials.materials import CHALCOGEN_DEFECTS, DEFECT_CLASSES, METAL_DEFECTS

#: Classes of the metal and the chalcogen site, in the order of the probability columns.
METAL_CLASSES: tuple[str, ...] = ("metal",) + METAL_DEFECTS
CHALCOGEN_CLASSES: tuple[str, ...] = ("chalcogen",) + CHALCOGEN_DEFECTS
#: Name of the calibration method stored in model cards.
CALIBRATION_METHOD = "diagonal-dirichlet"
#: The neutral operating point of a class (plain most-probable class).
NEUTRAL = 0.5
_EPS = 1e-7


class OperatingPointError(AtomDefectError):
    """An operating point the user gave cannot be used."""


def neutral_operating_point() -> dict[str, float]:
    """The default operating point: ``0.5`` for every defect class."""
    return {c: NEUTRAL for c in DEFECT_CLASSES}


def parse_operating_point(value: str | Mapping[str, float] | None) -> dict[str, float]:
    """An operating point from ``"V_S=0.6,O_S=0.4"`` or a mapping; unnamed classes stay neutral.

    Parameters
    ----------
    value : str, mapping or None
        ``CLASS=VALUE`` pairs separated by commas, or ``{class: value}``; ``None`` or ``""`` is
        neutral. Values lie strictly between 0 and 1.

    Returns
    -------
    dict
        A value for every defect class (``V_S, V_S2, O_S, V_Mo``).

    Raises
    ------
    OperatingPointError
        If a class is unknown, a value is not a number strictly between 0 and 1, or the text is
        not ``CLASS=VALUE`` pairs.
    """
    out = neutral_operating_point()
    if not value:
        return out
    if isinstance(value, str):
        pairs: list[tuple[str, object]] = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            name, sep, number = part.partition("=")
            if not sep:
                raise OperatingPointError(
                    f"The operating point {value!r} is not CLASS=VALUE pairs separated by commas "
                    "(e.g. V_S=0.6,O_S=0.4).")
            pairs.append((name.strip(), number.strip()))
    else:
        pairs = [(str(k), v) for k, v in value.items()]
    for cls, raw in pairs:
        if cls not in DEFECT_CLASSES:
            raise OperatingPointError(f"{cls!r} is not a defect class for the operating point "
                                      f"(use {', '.join(DEFECT_CLASSES)}).")
        try:
            t = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            t = float("nan")
        if not 0.0 < t < 1.0:
            raise OperatingPointError(f"The operating point of {cls} must be a number strictly "
                                      f"between 0 and 1, not {raw!r}.")
        out[cls] = t
    return out


def format_operating_point(op: Mapping[str, float]) -> str:
    """``"V_S=0.6,V_S2=0.5,O_S=0.4,V_Mo=0.5"`` (the form :func:`parse_operating_point` reads)."""
    return ",".join(f"{c}={op[c]:g}" for c in DEFECT_CLASSES)


def is_neutral(op: Mapping[str, float]) -> bool:
    """Whether ``op`` is the plain most-probable-class decision."""
    return all(abs(op.get(c, NEUTRAL) - NEUTRAL) < 1e-12 for c in DEFECT_CLASSES)


def calibrate(p: np.ndarray, params: Mapping | None) -> np.ndarray:
    """Calibrated probabilities ``softmax(scale * log p + bias)`` of one sublattice.

    Parameters
    ----------
    p : ndarray
        ``(N, K)`` probabilities (rows sum to 1).
    params : mapping or None
        ``{"scale": [K], "bias": [K]}``; ``None`` is the identity.

    Returns
    -------
    ndarray
        ``(N, K)`` calibrated probabilities.
    """
    p = np.asarray(p, np.float64)
    if params is None or len(p) == 0:
        return p
    z = np.log(np.clip(p, _EPS, 1.0)) * np.asarray(params["scale"], np.float64) \
        + np.asarray(params["bias"], np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def card_calibration(detector_card: Mapping) -> dict | None:
    """The calibration section of a card's detector, ``None`` (identity) without a usable one.

    Raises
    ------
    AtomDefectError
        If the section names a method this version does not know or has parameters of the wrong
        length (the model comes from another version).
    """
    cal = detector_card.get("calibration")
    if not cal:
        return None
    if cal.get("method") != CALIBRATION_METHOD:
        raise AtomDefectError(f"The model card's calibration method {cal.get('method')!r} is "
                              "unknown to this version of napari-atomdefect.")
    for part, classes in (("metal", METAL_CLASSES), ("chalcogen", CHALCOGEN_CLASSES)):
        par = cal.get(part) or {}
        if len(par.get("scale", ())) != len(classes) or len(par.get("bias", ())) != len(classes):
            raise AtomDefectError(f"The model card's calibration of the {part} site does not have "
                                  f"{len(classes)} scales and biases.")
    return cal


def decide(q: np.ndarray, classes: tuple[str, ...],
           op: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Class index and its calibrated probability for each site under operating point ``op``.

    Parameters
    ----------
    q : ndarray
        ``(N, K)`` calibrated probabilities of the classes ``classes`` (pristine first).
    classes : tuple of str
        Class names of the columns.
    op : mapping
        Operating point per defect class (missing classes are neutral).

    Returns
    -------
    index : ndarray of int
        ``(N,)`` column of the chosen class.
    confidence : ndarray
        ``(N,)`` its calibrated probability.
    """
    q = np.asarray(q, np.float64)
    t = np.array([op.get(c, NEUTRAL) for c in classes], np.float64)
    t[0] = NEUTRAL  # the pristine column
    score = np.log(np.clip(q, 1e-300, 1.0)) - np.log(t / (1 - t))
    idx = score.argmax(axis=1) if len(q) else np.zeros(0, int)
    return idx, q[np.arange(len(q)), idx]


def site_decisions(p_metal: np.ndarray, p_chalcogen: np.ndarray, calibration: Mapping | None,
                   op: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Calibrate both sublattices and decide; what detection stores per site.

    Returns
    -------
    dict
        ``q_metal (N, 2)``, ``q_chalcogen (N, 4)``, ``metal_class``, ``metal_conf``,
        ``chalcogen_class``, ``chalcogen_conf`` (class names and calibrated probabilities).
    """
    qm = calibrate(p_metal, calibration and calibration["metal"])
    qx = calibrate(p_chalcogen, calibration and calibration["chalcogen"])
    im, cm = decide(qm, METAL_CLASSES, op)
    ix, cx = decide(qx, CHALCOGEN_CLASSES, op)
    return {"q_metal": qm, "q_chalcogen": qx,
            "metal_class": np.asarray(METAL_CLASSES, object)[im], "metal_conf": cm,
            "chalcogen_class": np.asarray(CHALCOGEN_CLASSES, object)[ix], "chalcogen_conf": cx}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: bin-weighted mean of ``|accuracy - mean confidence|`` over equal-width bins.

    Parameters
    ----------
    confidence : ndarray
        Reported probability of the called class per site.
    correct : ndarray of bool
        Whether the call was right.
    bins : int
        Number of equal-width confidence bins on [0, 1].

    Returns
    -------
    float
        The ECE (``nan`` without sites).
    """
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, float)
    if len(confidence) == 0:
        return math.nan
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)


__all__ = ["CALIBRATION_METHOD", "CHALCOGEN_CLASSES", "METAL_CLASSES", "NEUTRAL",
           "OperatingPointError", "calibrate", "card_calibration", "decide",
           "expected_calibration_error", "format_operating_point", "is_neutral",
           "neutral_operating_point", "parse_operating_point", "site_decisions"]
