"""Fit the per-class calibration of a detector's site probabilities and write it into its card.

The calibration is fitted on held-out simulated MoS2-family images (random microscopes, doses
1e5–2e6 e/Å², pixel sizes 0.010–0.016 nm) whose seeds start at ``CALIBRATION_SEED`` (700 000),
disjoint from training (random seeds drawn by the pipeline) and from the accuracy benchmark
(900 000+) and the regression test (950 000+). Each detected site is matched to the true column
within 0.08 nm. The method (:data:`.decision.CALIBRATION_METHOD`): per sublattice, one scale and one
bias per class on the log-probabilities, fitted by minimum negative log-likelihood (diagonal
Dirichlet calibration). Detection applies it through :func:`.decision.site_decisions`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import AtomDefectError
from ..materials.columns import LEGACY_CLASSES, site_choices
from .decision import (
    CALIBRATION_METHOD,
    DECISION_BASES,
    calibrate,
    call_confidence,
    expected_calibration_error,
)

CALIBRATION_SEED = 700_000
RADIUS_NM = 0.08
_L2 = 1e-3  # pull towards the identity, so that a class with few sites keeps scale 1, bias 0
_EPS_P = 1e-7


def simulated_validation(n_images: int, seed: int = CALIBRATION_SEED, size: int = 256,
                         material: str = "MoS2",
                         substituents: tuple[str, ...] | None = None) -> Iterator:
    """Held-out simulated images ``(SimulatedImage, pixel_size_nm)`` for calibration.

    ``substituents=None``: the material's defaults at natural defect fractions. Given (the
    model's substituents), every one of them occurs, and a share of the images are random alloys
    (:func:`~..simulate.image.alloy_fractions`), as in training: a calibration fitted on
    images where substitutions are rare would teach the model that they are.
    """
    from ..materials.materials import get_material
    from ..simulate.image import (
        DEFAULT_KIND_FRACTIONS,
        PARTIAL_CONVERSION_SHARE,
        MicroscopeParams,
        alloy_fractions,
        simulate_image,
    )

    mat = get_material(material)
    for k in range(n_images):
        rng = np.random.default_rng(seed + k)
        dose = float(10 ** rng.uniform(5.0, np.log10(2e6)))
        px = float(rng.uniform(0.010, 0.016))
        params = MicroscopeParams.random(rng, material, all_voltages=True, dose_e_per_A2=dose)
        if substituents is None:
            yield simulate_image(material, size, px, params=params, seed=seed + k), px
            continue
        fractions = alloy_fractions(mat, tuple(substituents), rng, DEFAULT_KIND_FRACTIONS,
                                    partial_share=PARTIAL_CONVERSION_SHARE)
        yield simulate_image(material, size, px, params=params, seed=seed + k,
                             substituents=list(substituents), defect_fractions=fractions), px


def labelled_sites(sites: pd.DataFrame, truth: pd.DataFrame, radius_px: float) -> pd.DataFrame:
    """Detected sites with the true class of the nearest true column (sites without one dropped)."""
    from scipy.spatial import cKDTree

    if sites.empty or truth.empty:
        return sites.assign(truth=pd.Series(dtype=object)).iloc[:0]
    dist, k = cKDTree(truth[["y_px", "x_px"]].to_numpy()).query(sites[["y_px", "x_px"]].to_numpy())
    k = np.minimum(k, len(truth) - 1)
    out = sites.assign(truth=truth["class"].to_numpy()[k])
    keep = dist <= radius_px
    if "sublattice" in sites and "sublattice" in truth:
        # A site labelled from a column of the other sublattice says nothing about calibration
        # (a Se-rich MoS2 alloy outshines its metal and the lattice search swaps the two).
        keep &= sites["sublattice"].to_numpy() == truth["sublattice"].to_numpy()[k]
    return out[keep].reset_index(drop=True)


def _fit_one(p: np.ndarray, y: np.ndarray) -> dict:
    """Scale and bias per class minimising the NLL of ``softmax(scale log p + bias)``."""
    from scipy.optimize import minimize

    k = p.shape[1]
    logp = np.log(np.clip(p, 1e-7, 1.0))
    onehot = np.eye(k)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[:k], theta[k:]
        z = logp * a + b
        z = z - z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1, keepdims=True))
        q = np.exp(z - lse)
        n = len(y)
        nll = -(onehot * (z - lse)).sum() / n
        g = (q - onehot) / n
        reg = _L2 * (((a - 1) ** 2).sum() + (b ** 2).sum())
        grad = np.concatenate([(g * logp).sum(0) + 2 * _L2 * (a - 1), g.sum(0) + 2 * _L2 * b])
        return nll + reg, grad

    theta0 = np.concatenate([np.ones(k), np.zeros(k)])
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B")
    theta = res.x if np.isfinite(res.fun) else theta0
    return {"scale": [round(float(v), 6) for v in theta[:k]],
            "bias": [round(float(v), 6) for v in theta[k:]]}


def _probabilities(sites: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    return sites[[f"p_{c}" for c in classes]].to_numpy(float)


def _fit_call_confidence(p: np.ndarray, y: np.ndarray, min_calls: int = 10) -> dict:
    """Per class, a logistic ``sigmoid(a logit(p_c) + b)`` for whether a call of class ``c``
    (the most probable class of ``p``) is right; identity (``a = 1, b = 0``) for classes with
    fewer than ``min_calls`` calls."""
    from scipy.optimize import minimize

    idx = p.argmax(1)
    k = p.shape[1]
    scale, bias = np.ones(k), np.zeros(k)
    for c in range(k):
        sel = idx == c
        if sel.sum() < min_calls:
            continue
        pc = np.clip(p[sel, c], _EPS_P, 1 - _EPS_P)
        x, t = np.log(pc / (1 - pc)), (y[sel] == c).astype(float)

        def loss(theta: np.ndarray, x: np.ndarray = x, t: np.ndarray = t) -> tuple:
            z = theta[0] * x + theta[1]
            prob = 1.0 / (1.0 + np.exp(-z))
            nll = np.mean(np.logaddexp(0.0, z) - t * z)
            reg = _L2 * ((theta[0] - 1) ** 2 + theta[1] ** 2)
            g = prob - t
            return nll + reg, np.array([np.mean(g * x) + 2 * _L2 * (theta[0] - 1),
                                        np.mean(g) + 2 * _L2 * theta[1]])

        res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        if np.isfinite(res.fun):
            scale[c], bias[c] = res.x
    return {"call_scale": [round(float(v), 6) for v in scale],
            "call_bias": [round(float(v), 6) for v in bias]}


def fit_calibration(sites: pd.DataFrame, classes: tuple[str, ...] = LEGACY_CLASSES,
                    decide_on: str = "calibrated") -> dict:
    """Fit the calibration on labelled sites (uncalibrated probabilities, ``truth`` column).

    Parameters
    ----------
    sites : DataFrame
        Per-site table with a ``p_<class>`` column for every site choice of ``classes``.
    classes : tuple of str
        The model's defect classes, in channel order (default: the legacy MoS2 classes).
    decide_on : str
        ``"model"`` also fits the confidence of calls decided on the network's probabilities
        (per class ``call_scale``, ``call_bias``; see :func:`.decision.call_confidence`).

    Returns
    -------
    dict
        ``{"method", "decision", "metal": {"scale", "bias"[, "call_scale", "call_bias"]},
        "chalcogen": {...}}``.
    """
    out: dict = {"method": CALIBRATION_METHOD, "decision": decide_on}
    for part, choices in zip(("metal", "chalcogen"), site_choices(classes), strict=True):
        s = sites[(sites.sublattice == part) & sites.truth.isin(choices)]
        if len(s) < 20:
            raise AtomDefectError(f"Too few {part} sites ({len(s)}) to fit the calibration; "
                                  "use more images.")
        y = s.truth.map({c: i for i, c in enumerate(choices)}).to_numpy(int)
        p = _probabilities(s, choices)
        out[part] = _fit_one(p, y)
        if decide_on == "model":
            out[part].update(_fit_call_confidence(p, y))
    return out


def calibration_errors(sites: pd.DataFrame, calibration: dict | None,
                       classes: tuple[str, ...] = LEGACY_CLASSES) -> dict[str, float]:
    """ECE (10 bins) of the most-probable-class calls: all sites, chalcogen sites, defect calls.

    ``classes`` are the model's defect classes (default: the legacy MoS2 classes). With a
    calibration that decides on the model's probabilities (``"decision": "model"``) the class is
    the most probable one of those, and its call confidence (:func:`.decision.call_confidence`)
    the confidence.
    """
    conf, correct, chalc, called = [], [], [], []
    on_model = bool(calibration) and calibration.get("decision") == "model"
    for part, choices in zip(("metal", "chalcogen"), site_choices(classes), strict=True):
        s = sites[sites.sublattice == part]
        p = _probabilities(s, choices)
        q = calibrate(p, calibration and calibration[part])
        idx = (p if on_model else q).argmax(1) if len(q) else np.zeros(0, int)
        cls = np.asarray(choices, object)[idx]
        conf.append(call_confidence(p, idx, calibration[part]) if on_model
                    else q[np.arange(len(q)), idx])
        correct.append(cls == s.truth.to_numpy())
        chalc.append(np.full(len(s), part == "chalcogen"))
        called.append(idx > 0)
    conf_a, correct_a, chalc_a, called_a = map(np.concatenate, (conf, correct, chalc, called))
    return {"all_sites": round(expected_calibration_error(conf_a, correct_a), 4),
            "chalcogen_sites": round(expected_calibration_error(conf_a[chalc_a],
                                                                correct_a[chalc_a]), 4),
            "defect_calls": round(expected_calibration_error(conf_a[called_a],
                                                             correct_a[called_a]), 4),
            "n_sites": int(len(conf_a)), "n_defect_calls": int(called_a.sum())}


def iter_collect_sites(model: str | os.PathLike | None, n_images: int, seed: int,
                       size: int = 256, device: str = "auto") -> Iterator[dict]:
    """Detect without calibration on held-out simulated images; yields progress, then
    ``{"done": True, "sites": DataFrame, "info": ModelInfo, "classes": tuple}`` (sites labelled
    with ``truth``; every class of the model, all its substituents on)."""
    from ..models.registry import model_classes, model_substituents, resolve_model
    from ..progress import run_to_end
    from .detect import iter_detect

    info = resolve_model(model)
    if "detector" not in info.card:
        raise AtomDefectError(f"Model {info.name} has no detector (stage 2) to calibrate.")
    material = info.card.get("material") or "MoS2"
    det = {k: v for k, v in info.card["detector"].items() if k != "calibration"}
    raw = replace(info, card={**info.card, "detector": det})
    parts = []
    subs = tuple(model_substituents(info))
    for k, (sim, px) in enumerate(simulated_validation(n_images, seed, size, material, subs)):
        yield {"step": "calibrate", "fraction": k / n_images,
               "message": f"Held-out simulated image {k + 1}/{n_images}"}
        result = run_to_end(iter_detect(sim.image, px, material, raw, device, "user",
                                        substituents=list(subs)))
        parts.append(labelled_sites(result["sites"], sim.sites, RADIUS_NM / px).assign(image=k))
    yield {"done": True, "sites": pd.concat(parts, ignore_index=True), "info": info,
           "material": material, "classes": model_classes(info)}


def held_out_errors(sites: pd.DataFrame, classes: tuple[str, ...], decide_on: str,
                    n_images: int, n_folds: int = 3) -> tuple[dict, dict]:
    """ECE of the calls without and with a calibration, each third of the images scored with a
    calibration fitted on the others (:func:`calibration_errors`), averaged over the thirds.

    Returns
    -------
    before, after : dict
        As :func:`calibration_errors` (means; ``n_sites``, ``n_defect_calls`` summed), plus
        ``folds``: the defect-call ECE of each third.
    """
    fold = np.minimum(sites.image.to_numpy() * n_folds // max(n_images, 1), n_folds - 1)
    if n_images < n_folds:  # too few images to split: the last one held out
        fold = np.where(sites.image.to_numpy() == n_images - 1, n_folds - 1, -1)
    rows: dict[str, list[dict]] = {"before": [], "after": []}
    for k in np.unique(fold[fold >= 0]):
        test = fold == k
        held = fit_calibration(sites[~test], classes, decide_on)
        rows["before"].append(calibration_errors(sites[test], None, classes))
        rows["after"].append(calibration_errors(sites[test], held, classes))

    def mean(items: list[dict]) -> dict:
        out: dict = {key: round(float(np.mean([it[key] for it in items])), 4)
                     for key in ("all_sites", "chalcogen_sites", "defect_calls")}
        out.update({key: int(sum(it[key] for it in items))
                    for key in ("n_sites", "n_defect_calls")})
        out["folds"] = [it["defect_calls"] for it in items]
        return out

    return mean(rows["before"]), mean(rows["after"])


def iter_calibrate_model(model: str | os.PathLike | None, n_images: int = 300,
                         seed: int = CALIBRATION_SEED, size: int = 256, device: str = "auto",
                         write: bool = True, decide_on: str = "model") -> Iterator[dict]:
    """Fit the calibration of ``model`` and (``write``) store it as ``detector.calibration``.

    ``decide_on``: ``"model"`` (the default, as every bundled card: classes decided on the
    network's own probabilities, with per-class call confidences fitted on the held-out calls;
    see :mod:`.decision`) or ``"calibrated"`` (decided on the calibrated probabilities).

    Yields progress dicts, then ``{"done": True, "calibration": dict, "path": Path | None}``.
    The same ``n_images``, ``seed`` and ``size`` give the same calibration.

    Raises
    ------
    AtomDefectError
        If the model has no detector, too few sites were found, or its card cannot be written
        (a bundled card needs ``ATOMDEFECT_WRITE_BUNDLED=1``).
    """
    from ..models.registry import provenance, write_detector_entry

    if decide_on not in DECISION_BASES:  # before the long part
        raise AtomDefectError(f"Decide on one of {', '.join(DECISION_BASES)}, not {decide_on!r}.")
    if write:  # a card that cannot be written is refused before the long part, not after
        from ..models.registry import card_write_refusal, resolve_model

        refusal = card_write_refusal(resolve_model(model))
        if refusal:
            raise AtomDefectError(refusal)
    result: dict = {}
    for item in iter_collect_sites(model, n_images, seed, size, device):
        if item.get("done"):
            result = item
        else:
            yield item
    sites, info, classes = result["sites"], result["info"], result["classes"]
    # ECE reported per third of the images with a calibration fitted on the other two, averaged
    # over the three (one third's figure swings by ±0.02 with which images it holds); the
    # stored calibration is then fitted on all of them.
    before, after = held_out_errors(sites, classes, decide_on, n_images)
    cal = fit_calibration(sites, classes, decide_on)
    metal, chalcogen = site_choices(classes)
    n_def = int((~sites.truth.isin(["metal", "chalcogen"])).sum())
    cal.update({
        "input": "log of the temperature-scaled site probabilities; q = softmax(scale * log p + "
                 f"bias) per sublattice (classes {', '.join(metal)} | {', '.join(chalcogen)})",
        "validation": (f"{len(sites)} sites ({n_def} defects) of {n_images} held-out simulated "
                       f"{result['material']} images of {size} px, seeds {seed}–{seed + n_images - 1}"
                       ", random microscopes, doses 1e5–2e6 e/Å², pixel sizes 0.010–0.016 nm"),
        "ece_before": before,
        "ece_after": after,
        "ece_evaluation": (f"mean over {len(after['folds'])} thirds of the images, each scored "
                           "with a calibration fitted on the other two (10 equal-width bins)"),
        **provenance(info, f"atomdefect calibrate-model {info.name} --n-images {n_images} "
                           f"--seed {seed} --size {size} --decide-on {decide_on}"),
    })
    path = write_detector_entry(info, "calibration", cal) if write else None
    yield {"done": True, "calibration": cal, "path": path}


__all__ = ["CALIBRATION_SEED", "calibration_errors", "fit_calibration", "held_out_errors",
           "iter_calibrate_model",
           "iter_collect_sites", "labelled_sites", "simulated_validation"]
