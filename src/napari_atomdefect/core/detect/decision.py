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

A calibration section may say ``"decision": "model"``: the class is then decided on the
network's own (temperature-scaled) probabilities under the operating point, and its confidence is
the probability that such a call is right, fitted per called class on held-out calls
(:func:`call_confidence`); the probability columns stay the Dirichlet-calibrated ones. The
Dirichlet fit's class biases carry the simulated training mix of defects; on microscopes outside
the training range (multislice images of other microscopes, low signal) they turn uncertain
defects into pristine columns, so for such a model the calibration says how far to trust a call
without deciding it (``atomdefect calibrate-model --decide-on model``; docs/benchmarks.md).

The same code runs for bundled and fine-tuned models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from ..errors import AtomDefectError
from ..materials.columns import LEGACY_CLASSES, lookup_class, site_choices
from ..materials.materials import ATOMIC_NUMBER

#: Classes of the metal and the chalcogen site of a legacy MoS2 model (V_S, V_S2, O_S, V_Mo), in
#: the order of the probability columns; :func:`~..materials.columns.site_choices` gives them for
#: any model's classes.
METAL_CLASSES, CHALCOGEN_CLASSES = site_choices(LEGACY_CLASSES)
#: Name of the calibration method stored in model cards.
CALIBRATION_METHOD = "diagonal-dirichlet"
#: The neutral operating point of a class (plain most-probable class).
NEUTRAL = 0.5
#: What a calibration's ``decision`` may say: decide on the calibrated probabilities (default)
#: or on the network's own, reporting fitted call confidences (:func:`call_confidence`).
DECISION_BASES = ("calibrated", "model")
_EPS = 1e-7


class OperatingPointError(AtomDefectError):
    """An operating point the user gave cannot be used."""


class RunClasses(NamedTuple):
    """What a detection run can call, from the model's card and the user's choices.

    Attributes
    ----------
    classes : tuple of str
        The run's defect classes: the model's classes of the chosen substituents, channel order.
    substituents : tuple of str
        The chosen substituents (canonical order).
    model_classes : tuple of str
        All defect classes of the model (its output channels after the pristine ones).
    material : str
        The material the class names follow (the model's).
    message : str or None
        Why the class names follow another material than the one chosen, if they do.
    metal_substituents : tuple of str
        The other metal of a Mo/W alloy when the user chose it (``("W",)`` for a Mo host): its
        class (``W_Mo``) ends ``classes``; it comes from the metal columns' levels, not the model.
    antisites : tuple of str
        The host metal when the user chose its antisites (``("Mo",)`` for MoS2): their class
        (``Mo_S2``) ends ``classes``; it comes from the chalcogen columns' levels
        (:mod:`.antisites`), not the model.
    """

    classes: tuple[str, ...]
    substituents: tuple[str, ...]
    model_classes: tuple[str, ...]
    material: str
    message: str | None = None
    metal_substituents: tuple[str, ...] = ()
    antisites: tuple[str, ...] = ()

    @property
    def detector_classes(self) -> tuple[str, ...]:
        """``classes`` the detector calls (all but the metal substituent's and the antisite's)."""
        return tuple(c for c in self.classes if c in self.model_classes)

    @property
    def all_substituents(self) -> tuple[str, ...]:
        """The chalcogen substituents, the other metal, then the host metal (antisites): what
        the user chose."""
        return self.substituents + self.metal_substituents + self.antisites


def run_classes(card: Mapping, material: str,
                substituents: str | Iterable[str] | None = None) -> RunClasses:
    """The classes a run of the model with ``card`` produces for ``material`` and ``substituents``.

    Parameters
    ----------
    card : mapping
        The model card.
    material : str
        The material the user chose.
    substituents : str, iterable of str or None
        ``None``: the material's defaults that the model knows; ``"Se,O"`` or a list.

    Returns
    -------
    RunClasses

    Raises
    ------
    SubstituentError
        If a substituent is unknown for the material or the model was not trained for it.
    """
    from ..materials.columns import (
        SubstituentError,
        antisite_chosen,
        antisite_class,
        lookup_class,
        metal_substituent_classes,
        metal_substituents,
        parse_substituents,
    )
    from ..materials.materials import get_material
    from ..models.registry import model_classes, model_material, model_substituents

    chosen = get_material(material)
    model_mat = get_material(model_material(card))
    try:
        subs = parse_substituents(substituents, model_mat, available=model_substituents(card))
    except SubstituentError as err:
        if model_mat.name == chosen.name:
            raise
        from ..models.registry import default_model_name

        raise SubstituentError(
            f"The chosen model was trained for {model_mat.name} (substituents "
            f"{', '.join(model_substituents(card)) or 'none'}), not {chosen.name}: choose a "
            f"{chosen.name} model (e.g. {default_model_name(chosen.name)}) to look for "
            f"{substituents if isinstance(substituents, str) else ', '.join(substituents or [])}"
            f" in {chosen.name}.") from err
    all_classes = model_classes(card)
    keep = []
    for name in all_classes:
        c = lookup_class(name)
        if c is None or c.substituent is None or c.substituent in subs:
            keep.append(name)
    message = None
    if model_mat.name != chosen.name:
        message = (f"The model was trained for {model_mat.name}, not {chosen.name}: its classes "
                   f"are named for {model_mat.name} ({', '.join(keep)}).")
    # The other metal of a Mo/W alloy, named for the chosen host (the metal columns say it).
    metals = metal_substituents(substituents, chosen)
    keep += [c.name for c in metal_substituent_classes(chosen, metals)]
    # The host metal's antisites, named for the chosen host (the chalcogen columns' levels say it).
    antisites = (chosen.metal,) if antisite_chosen(substituents, chosen) else ()
    keep += [antisite_class(chosen).name for _ in antisites]
    return RunClasses(tuple(keep), subs, all_classes, model_mat.name, message, metals, antisites)


def check_run(material: str, model: str | None = None,
              substituents: str | Sequence[str] | None = None) -> tuple[str, RunClasses]:
    """Check a run's options before any image is read: the material, the model (it must have a
    detector) and the substituents; returns the material's name and the run's classes.

    Raises
    ------
    AtomDefectError
        For an unknown material or model, a model without a detector, or a substituent the
        material or the model does not know (one sentence each).
    """
    from ..materials.materials import get_material
    from ..models.registry import resolve_model

    mat = get_material(material)
    info = resolve_model(model, mat.name, substituents)
    if "detector" not in info.card:
        raise AtomDefectError(f"Model {info.name} has no detector (stage 2).")
    return mat.name, run_classes(info.card, mat.name, substituents)


def neutral_operating_point(classes: Iterable[str] = LEGACY_CLASSES) -> dict[str, float]:
    """The default operating point: ``0.5`` for every defect class of ``classes``."""
    return {c: NEUTRAL for c in classes}


def parse_operating_point(value: str | Mapping[str, float] | None,
                          classes: Iterable[str] | None = LEGACY_CLASSES) -> dict[str, float]:
    """An operating point from ``"V_S=0.6,O_S=0.4"`` or a mapping; unnamed classes stay neutral.

    Parameters
    ----------
    value : str, mapping or None
        ``CLASS=VALUE`` pairs separated by commas, or ``{class: value}``; ``None`` or ``""`` is
        neutral. Values lie strictly between 0 and 1.
    classes : iterable of str or None
        The defect classes of the run (default: the legacy MoS2 classes). ``None`` checks the
        text and the values only (any class name) and returns the named classes only, for a
        value checked against a run's classes later.

    Returns
    -------
    dict
        A value for every class of ``classes``, in their order (``classes=None``: the named ones).

    Raises
    ------
    OperatingPointError
        If a class is unknown, a value is not a number strictly between 0 and 1, or the text is
        not ``CLASS=VALUE`` pairs.
    """
    any_class = classes is None
    classes = () if classes is None else tuple(classes)
    out = neutral_operating_point(classes)
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
        if cls not in classes and not any_class:
            raise OperatingPointError(f"{cls!r} is not a defect class for the operating point "
                                      f"(use {', '.join(classes)}).")
        try:
            t = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            t = float("nan")
        if not 0.0 < t < 1.0:
            raise OperatingPointError(f"The operating point of {cls} must be a number strictly "
                                      f"between 0 and 1, not {raw!r}.")
        out[cls] = t
    return out


def format_operating_point(op: Mapping[str, float], classes: Iterable[str] | None = None) -> str:
    """``"V_S=0.6,V_S2=0.5,O_S=0.4,V_Mo=0.5"`` (the form :func:`parse_operating_point` reads).

    ``classes`` (default: the keys of ``op``) gives the classes and their order; a class missing
    from ``op`` is neutral.
    """
    names = tuple(op) if classes is None else tuple(classes)
    return ",".join(f"{c}={op.get(c, NEUTRAL):g}" for c in names)


def is_neutral(op: Mapping[str, float]) -> bool:
    """Whether ``op`` is the plain most-probable-class decision."""
    return all(abs(v - NEUTRAL) < 1e-12 for v in op.values())


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


def card_calibration(detector_card: Mapping, classes: Iterable[str] | None = None) -> dict | None:
    """The calibration section of a card's detector, ``None`` (identity) without a usable one.

    ``classes`` are the model's defect classes (default: the card's ``classes``, else the legacy
    MoS2 classes); the calibration has one scale and bias per site choice of them.

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
    if cal.get("decision", "calibrated") not in DECISION_BASES:
        raise AtomDefectError(f"The model card's calibration decides on {cal.get('decision')!r}, "
                              f"not one of {', '.join(DECISION_BASES)}.")
    if classes is None:
        classes = detector_card.get("classes") or LEGACY_CLASSES
    for part, choices in zip(("metal", "chalcogen"), site_choices(classes), strict=True):
        par = cal.get(part) or {}
        if len(par.get("scale", ())) != len(choices) or len(par.get("bias", ())) != len(choices):
            raise AtomDefectError(f"The model card's calibration of the {part} site does not have "
                                  f"{len(choices)} scales and biases.")
    return cal


def call_confidence(p: np.ndarray, idx: np.ndarray, params: Mapping | None) -> np.ndarray:
    """Confidence of the calls ``idx`` decided on the network's probabilities ``p``:
    ``sigmoid(call_scale[c] * logit(p_c) + call_bias[c])`` for the called class ``c``, fitted on
    held-out calls of each class (:func:`~.confidence.fit_calibration` with
    ``decide_on="model"``); ``p_c`` itself without those parameters.

    Parameters
    ----------
    p : ndarray
        ``(N, K)`` temperature-scaled probabilities.
    idx : ndarray of int
        ``(N,)`` called class per site (a column of ``p``).
    params : mapping or None
        One sublattice's calibration section (``call_scale``, ``call_bias`` per class).
    """
    p = np.asarray(p, np.float64)
    pc = np.clip(p[np.arange(len(p)), idx], _EPS, 1 - _EPS)
    if not params or "call_scale" not in params:
        return pc
    a = np.asarray(params["call_scale"], np.float64)[idx]
    b = np.asarray(params["call_bias"], np.float64)[idx]
    return 1.0 / (1.0 + np.exp(-(a * np.log(pc / (1 - pc)) + b)))


#: Exponent of the atomic number in the HAADF signal of an atom, used only to order the
#: classes of one sublattice by the signal of what their column holds (:func:`column_signals`).
ORDER_EXPONENT = 1.7


def column_signals(choices: Sequence[str]) -> np.ndarray | None:
    """Rough HAADF signal of each site choice's column (pristine first: two host atoms), from
    what the class's column holds (``Z**1.7`` summed): the order of the classes along the
    Z-contrast ladder (``V_S2 < V_S < O_S < chalcogen < Se_S < Se2_S2``). ``None`` when the
    host atom cannot be told from the choices' names."""
    host = None
    for name in choices[1:]:
        c = lookup_class(name)
        if c is not None and c.kind == "V_X":
            host = next(a for a in c.atoms if a)
    if host is None:
        return None
    out = []
    for name in choices:
        c = lookup_class(name)
        atoms = c.atoms if c is not None else (host, host)
        out.append(sum(ATOMIC_NUMBER[a] ** ORDER_EXPONENT for a in atoms if a))
    return np.array(out, np.float64)


def restrict(q: np.ndarray, choices: tuple[str, ...], keep: Iterable[str]) -> np.ndarray:
    """Probabilities over ``keep`` only: the probability of each excluded class (a substitution
    by an element the user left out) goes to the run's classes on either side of it on the
    Z-contrast ladder (:func:`column_signals`), in proportion to their own probabilities.

    A column the model sees as ``Se_S`` when Se was left out is a host column as far as this
    run can tell (nothing brighter is left): spreading that probability over all the rest would
    make a bright Se column a double vacancy. A column it sees as ``O_S`` when O was left out
    lies between a single S and an S2 column: it is the more probable of ``V_S`` and pristine
    (all of it to pristine, as before the twenty-third session, lost the single vacancies the
    model was torn between ``V_S`` and ``O_S`` on).

    Parameters
    ----------
    q : ndarray
        ``(N, K)`` probabilities of ``choices`` (pristine first).
    choices : tuple of str
        Class names of the columns of ``q``.
    keep : iterable of str
        Classes the run can produce (a subsequence of ``choices`` holding the pristine class).

    Returns
    -------
    ndarray
        ``(N, len(keep))`` probabilities of ``keep``, in the order of ``choices``; rows sum to 1.
    """
    keep = set(keep)
    cols = [i for i, c in enumerate(choices) if c in keep]
    q = np.asarray(q, np.float64)
    if len(cols) == len(choices):
        return q
    out = q[:, cols].copy()
    signal = column_signals(tuple(choices))
    for j in (j for j in range(len(choices)) if j not in cols):
        if signal is None:
            out[:, 0] += q[:, j]
            continue
        below = [k for k, i in enumerate(cols) if signal[i] < signal[j]]
        above = [k for k, i in enumerate(cols) if signal[i] > signal[j]]
        lo = max(below, key=lambda k: signal[cols[k]]) if below else None
        hi = min(above, key=lambda k: signal[cols[k]]) if above else None
        if lo is None or hi is None:
            out[:, 0 if lo is None and hi is None else (lo if hi is None else hi)] += q[:, j]
            continue
        p_lo, p_hi = q[:, cols[lo]], q[:, cols[hi]]
        share = np.where(p_lo + p_hi > 0, p_lo / np.maximum(p_lo + p_hi, 1e-300), 0.5)
        out[:, lo] += q[:, j] * share
        out[:, hi] += q[:, j] * (1 - share)
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-300)


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


def _run_params(params: Mapping, choices: tuple[str, ...], keep: tuple[str, ...]) -> dict:
    """A sublattice's per-class call parameters restricted to the run's classes ``keep``."""
    cols = [i for i, c in enumerate(choices) if c in set(keep)]
    out = dict(params)
    for key in ("call_scale", "call_bias"):
        if key in params:
            out[key] = [params[key][i] for i in cols]
    return out


def site_decisions(p_metal: np.ndarray, p_chalcogen: np.ndarray, calibration: Mapping | None,
                   op: Mapping[str, float], classes: Iterable[str] = LEGACY_CLASSES,
                   run_classes: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Calibrate both sublattices, drop the classes the run leaves out, and decide.

    Parameters
    ----------
    p_metal, p_chalcogen : ndarray
        Temperature-scaled probabilities over the site choices of ``classes`` (pristine first).
    calibration : mapping or None
        The card's calibration (per site choice of ``classes``).
    op : mapping
        Operating point per defect class.
    classes : iterable of str
        The model's defect classes, in channel order.
    run_classes : iterable of str, optional
        The classes this run can produce (the model's classes of the chosen substituents); the
        others get probability 0 after calibration and the rest is renormalised. Default: all.

    Returns
    -------
    dict
        ``q_metal``, ``q_chalcogen`` (calibrated probabilities over the run's site choices),
        ``metal_choices``, ``chalcogen_choices`` (their class names), ``metal_class``,
        ``metal_conf``, ``chalcogen_class``, ``chalcogen_conf``.
    """
    classes = tuple(classes)
    run = classes if run_classes is None else tuple(run_classes)
    m_all, x_all = site_choices(classes)
    m_run, x_run = site_choices(run)
    qm = restrict(calibrate(p_metal, calibration and calibration["metal"]), m_all, m_run)
    qx = restrict(calibrate(p_chalcogen, calibration and calibration["chalcogen"]), x_all, x_run)
    if calibration and calibration.get("decision") == "model":
        pm, px = restrict(p_metal, m_all, m_run), restrict(p_chalcogen, x_all, x_run)
        im, ix = decide(pm, m_run, op)[0], decide(px, x_run, op)[0]
        cm = call_confidence(pm, im, _run_params(calibration["metal"], m_all, m_run))
        cx = call_confidence(px, ix, _run_params(calibration["chalcogen"], x_all, x_run))
    else:
        im, cm = decide(qm, m_run, op)
        ix, cx = decide(qx, x_run, op)
    return {"q_metal": qm, "q_chalcogen": qx, "metal_choices": m_run, "chalcogen_choices": x_run,
            "metal_class": np.asarray(m_run, object)[im], "metal_conf": cm,
            "chalcogen_class": np.asarray(x_run, object)[ix], "chalcogen_conf": cx}


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


__all__ = ["CALIBRATION_METHOD", "DECISION_BASES", "RunClasses", "CHALCOGEN_CLASSES",
           "call_confidence",
           "METAL_CLASSES", "NEUTRAL",
           "OperatingPointError", "calibrate", "card_calibration", "decide",
           "expected_calibration_error", "format_operating_point", "is_neutral",
           "neutral_operating_point", "parse_operating_point", "restrict", "run_classes",
           "site_decisions"]
