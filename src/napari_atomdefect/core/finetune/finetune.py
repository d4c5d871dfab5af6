"""Fine-tuning both stages on a few real unit cells of the user's own microscope.

0. The simulator is fitted to the user's image (:mod:`.calibrate`): probe width and metal/chalcogen
   contrast from the lattice, and — from the user's corrected ``V_S`` and ``O_S`` sites, when
   given — the second chalcogen atom's and the light substituent's contribution; the noise, scan
   streaks and jitter are measured as well (:mod:`.noise_model`). Every simulated cell below is
   drawn around these values — the two chalcogen parameters from their posterior, as wide as the
   corrected sites leave them uncertain.
1. Stage 1 (U-GAT-IT) is fine-tuned from the base model's generators, with the user's selected real
   cells as domain B and ideal simulated cells as domain A.
2. New training cells are generated: simulated cells translated by the fine-tuned generator (with
   the simulator's labels), directly simulated realistic cells of the fitted microscope, plus —
   optionally — the selected real cells labelled by the user's corrected detections (every other
   site of those cells counts as pristine).
3. Stage 2 (U-Net) is fine-tuned from the base detector on them.
4. Base and fine-tuned detector are compared on all the evidence (:func:`fine_tuning_verdict`):
   with corrections, a fifth of the selected labelled cells is held out of training and both are
   scored there; both are also scored on held-out images of the fitted simulator. When the
   fine-tuned detector loses — lower on enough held-out defect sites
   (:data:`MIN_VALIDATION_DEFECTS`), or clearly lower (:data:`CLEAR_LOSS`) on fewer sites or on
   the simulated images — the base detector is kept in the new model. The outcome is recorded in
   the card (``fine_tuning.outcome``) and reported as a sentence.

Every step yields progress at least every few seconds, so that a consumer can show it and stop
(close the generator) promptly.

Nothing is written until the end, and then atomically (temporary folder, then rename): closing the
generator (Cancel) or an error leaves every existing model as it was.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..cells.normalize import intensity_levels, normalise
from ..cells.tiles import CellTiles, TileSpec, iter_cell_tiles, own_site_positions
from ..errors import AtomDefectError
from ..lattice.lattice import Lattice
from ..train.datasets import CLASS_INDEX, CellSet, crop_cells, label_maps

#: Fewest selected cells for a meaningful fine-tuning run.
MIN_CELLS = 20
#: Share of the selected, labelled cells held out to compare base and fine-tuned detector.
REAL_VALIDATION_FRACTION = 0.2
#: Fewest defect sites among the held-out real cells for any drop there to count as a loss.
MIN_VALIDATION_DEFECTS = 8
#: A drop of the mean F1 at least this large counts as a loss even on fewer held-out defect sites,
#: or on the held-out simulated images of the fitted microscope.
CLEAR_LOSS = 0.25


@dataclass
class FinetuneSettings:
    """Settings of a fine-tuning run (the defaults finish in a few minutes on two CPU cores).

    ``anchor_images``: images of random microscopes added to the stage-2 data;
    ``keep_better_detector``: keep the base detector when the fine-tuned one loses
    (:func:`fine_tuning_verdict`); ``detector_layers``: which U-Net parts are fine-tuned
    (:data:`~.train.TRAINABLE_PARTS`).
    """

    noise_steps: int = 150
    detector_steps: int = 400
    noise_lr: float = 5e-5
    detector_lr: float = 1e-3
    noise_batch_size: int = 8
    detector_batch_size: int = 32
    n_sim_images: int = 12
    anchor_images: int = 4
    seed: int = 0
    use_corrections: bool = True
    real_label_weight: int = 8
    keep_better_detector: bool = True
    detector_layers: str = "all"


def select_cells(lattice: Lattice, points_px: np.ndarray | None = None,
                 polygons: list[np.ndarray] | None = None, select_all: bool = False) -> np.ndarray:
    """Indices (rows of ``lattice.metal_index``) of the cells picked by clicks or regions.

    Parameters
    ----------
    points_px : ndarray, optional
        Clicked positions ``(row, col)``; each picks the cell whose centre is nearest (within one
        lattice constant).
    polygons : list of ndarray, optional
        Regions (vertices ``(row, col)``); every cell whose centre lies inside is picked.
    select_all : bool
        Every cell of the image.
    """
    from scipy.spatial import cKDTree
    from skimage.measure import points_in_poly

    centres = lattice.metal_sites_px + (lattice.a1_px + lattice.a2_px) / 3
    if select_all:
        return np.arange(len(centres))
    chosen: set[int] = set()
    if points_px is not None and len(points_px):
        d, k = cKDTree(centres).query(np.asarray(points_px, float).reshape(-1, 2))
        chosen |= {int(i) for i, dist in zip(k, d, strict=True) if dist < lattice.a_px}
    for poly in polygons or []:
        inside = points_in_poly(centres[:, ::-1], np.asarray(poly, float)[:, ::-1])
        chosen |= set(np.nonzero(inside)[0].tolist())
    return np.array(sorted(chosen), int)


def check_selection(lattice: Lattice, cell_ids: np.ndarray) -> None:
    """Raise a clear error for empty, out-of-range or too small selections."""
    if len(cell_ids) == 0:
        raise AtomDefectError("No cells are selected: click on cells, draw a region over them, "
                              "or choose all cells of the image.")
    if np.any(cell_ids < 0) or np.any(cell_ids >= lattice.n_cells):
        raise AtomDefectError("Some selected cells are outside the image's lattice.")
    if len(cell_ids) < MIN_CELLS:
        raise AtomDefectError(
            f"Only {len(cell_ids)} cells are selected; at least {MIN_CELLS} are needed for the "
            "noise-transfer network to learn your microscope's noise (50 or more work better).")


def real_cell_tiles(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                    spec: TileSpec) -> tuple[CellTiles, np.ndarray]:
    """Normalised tiles of the selected cells (and the normalised image)."""
    norm = normalise(image, intensity_levels(image, lattice))
    want = set(np.asarray(cell_ids).tolist())
    parts, start = [], 0
    for batch in iter_cell_tiles(norm, lattice, spec):
        sel = np.array([start + k in want for k in range(len(batch))], bool)
        start += len(batch)
        if sel.any():
            parts.append(batch.subset(sel))
    return CellTiles.concatenate(parts), norm


def labelled_real_cells(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                        corrections: pd.DataFrame, spec: TileSpec) -> CellSet:
    """The selected real cells, labelled by the user's corrected detections.

    Every site of the lattice is pristine unless a detection (any source) lies within a quarter
    lattice constant of it, in which case it takes that detection's class.
    """
    from scipy.spatial import cKDTree

    sites = np.concatenate([lattice.metal_sites_px, lattice.chalcogen_sites_px])
    cls = np.concatenate([np.full(len(lattice.metal_sites_px), CLASS_INDEX["metal"]),
                          np.full(len(lattice.chalcogen_sites_px), CLASS_INDEX["chalcogen"])])
    if len(corrections):
        d, k = cKDTree(sites).query(corrections[["y_px", "x_px"]].to_numpy(float))
        for j, (dist, site) in enumerate(zip(d, k, strict=True)):
            name = str(corrections["class"].iloc[j])
            if dist < 0.25 * lattice.a_px and name in CLASS_INDEX:
                cls[site] = CLASS_INDEX[name]
    tiles, _ = real_cell_tiles(image, lattice, cell_ids, spec)
    own = own_site_positions(tiles, lattice)
    n_metal = len(lattice.metal_sites_px)
    own_img = np.stack([tiles.to_image(own[:, 0]), tiles.to_image(own[:, 1])], axis=1)
    dist, idx = cKDTree(sites).query(own_img.reshape(-1, 2))
    dist, idx = dist.reshape(-1, 2), idx.reshape(-1, 2)
    # Keep cells whose own sites are found where they should be, on the right sublattice.
    good = (dist < 0.25 * lattice.a_px).all(1) & (idx[:, 0] < n_metal) & (idx[:, 1] >= n_metal)
    return CellSet(tiles=tiles.tiles[good],
                   labels=label_maps(tiles, sites, cls.astype(np.uint8))[good],
                   own_sites=own[good], own_classes=cls[idx[good]].astype(np.uint8))


def split_for_validation(cell_ids: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the selected cells into training and held-out validation cells (a fifth; none when
    fewer than 10 would be held out)."""
    rng = np.random.default_rng(seed + 11)
    order = rng.permutation(np.asarray(cell_ids))
    n_val = int(len(order) * REAL_VALIDATION_FRACTION)
    if n_val < 10:
        return np.sort(order), order[:0]
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def compare_on_real_cells(before: dict, after: dict, cells: CellSet) -> dict:
    """Base and fine-tuned per-class F1 on held-out real cells, with the mean over the classes
    that occur there and whether there are enough defect sites for the comparison to decide."""
    def sites_of(c: str) -> np.ndarray:
        return cells.own_classes[:, 0 if c == "V_Mo" else 1] == CLASS_INDEX[c]

    present = [c for c in ("V_S", "V_S2", "O_S", "V_Mo") if sites_of(c).any()]
    n_defects = int(sum(sites_of(c).sum() for c in present))

    def mean(scores: dict) -> float:
        return float(np.mean([scores[c] for c in present])) if present else float("nan")

    return {"n_cells": len(cells), "n_defect_sites": n_defects, "classes": present,
            "f1_before": before, "f1_after": after, "mean_f1_before": mean(before),
            "mean_f1_after": mean(after), "decisive": n_defects >= MIN_VALIDATION_DEFECTS}


def describe_real_validation(scores: dict, kept_base: bool) -> str:
    """One line for the user: base vs fine-tuned detector on their held-out cells."""
    text = (f"On {scores['n_cells']} of your cells held out of training "
            f"({scores['n_defect_sites']} defect sites): mean F1 "
            f"{scores['mean_f1_before']:.2f} before, {scores['mean_f1_after']:.2f} after.")
    if kept_base:
        return text + " The fine-tuned detector is not better: the base detector is kept."
    if not scores["decisive"]:
        return text + (f" Fewer than {MIN_VALIDATION_DEFECTS} defect sites: only a clear drop "
                       "would count; select more corrected cells for a firmer check.")
    return text


def _mean_f1(scores: dict) -> float:
    return float(np.mean([scores[c] for c in ("V_S", "V_S2", "O_S", "V_Mo")]))


def fine_tuning_verdict(real: dict | None, sim_before: dict, sim_after: dict) -> dict:
    """Whether the fine-tuned detector lost against the base detector, and why.

    Parameters
    ----------
    real : dict or None
        :func:`compare_on_real_cells` of the held-out user cells (``None`` without corrections).
    sim_before, sim_after : dict
        Per-class F1 of the base and fine-tuned detector on held-out simulated images of the
        fitted microscope.

    Returns
    -------
    dict
        ``lost`` (bool), ``reasons`` (sentence fragments), ``sim_mean_f1_before/after`` and
        ``real_mean_f1_before/after`` (``None`` without held-out defect sites).

    Notes
    -----
    With at least :data:`MIN_VALIDATION_DEFECTS` held-out defect sites the user's cells decide
    alone: any drop there is a loss. Otherwise a drop of :data:`CLEAR_LOSS` or more, on the few
    held-out sites or on the simulated images, is a loss.
    """
    sim_b, sim_a = _mean_f1(sim_before), _mean_f1(sim_after)
    has_real = real is not None and bool(real.get("classes"))
    real_b = real["mean_f1_before"] if has_real else None
    real_a = real["mean_f1_after"] if has_real else None
    reasons = []
    if has_real and real["decisive"]:
        if real_a < real_b:
            reasons.append(f"it scores lower on your {real['n_defect_sites']} held-out defect "
                           f"sites (mean F1 {real_b:.2f} → {real_a:.2f})")
    else:
        if has_real and real_a <= real_b - CLEAR_LOSS:
            reasons.append(f"it scores clearly lower on your {real['n_defect_sites']} held-out "
                           f"defect sites (mean F1 {real_b:.2f} → {real_a:.2f})")
        if sim_a <= sim_b - CLEAR_LOSS:
            reasons.append("it scores clearly lower on held-out simulated images of your "
                           f"microscope (mean F1 {sim_b:.2f} → {sim_a:.2f})")
    return {"lost": bool(reasons), "reasons": reasons, "sim_mean_f1_before": sim_b,
            "sim_mean_f1_after": sim_a, "real_mean_f1_before": real_b,
            "real_mean_f1_after": real_a}


def describe_outcome(verdict: dict, kept_base: bool, base_name: str) -> str:
    """One sentence for the user: which detector the new model carries, and why."""
    why = "; ".join(verdict["reasons"])
    if kept_base:
        return (f"Fine-tuning did not help the detector ({why}): the base detector of "
                f"{base_name} is kept in this model.")
    if verdict["lost"]:
        return (f"Warning: the fine-tuned detector looks worse ({why}); it was saved because "
                "keeping the base detector is switched off.")
    evidence = (f"simulated images of your microscope: mean F1 "
                f"{verdict['sim_mean_f1_before']:.2f} → {verdict['sim_mean_f1_after']:.2f}")
    if verdict["real_mean_f1_before"] is not None:
        evidence = (f"your held-out cells: mean F1 {verdict['real_mean_f1_before']:.2f} → "
                    f"{verdict['real_mean_f1_after']:.2f}; " + evidence)
    return f"The fine-tuned detector is kept ({evidence})."


def calibrated_simulator(image: np.ndarray, lattice: Lattice, corrections: pd.DataFrame | None,
                         seed: int = 0):
    """Simulator parameters fitted to the user's image: ``(draw(rng) -> params, description)``.

    The probe and column contrast come from :func:`.calibrate.fit_contrast` (with the corrected
    defects, when given), the dose, scan-line noise and jitter from
    :func:`.noise_model.measure_acquisition`.
    """
    from ..train.noise_model import measure_acquisition
    from ..train.pipeline import realistic_overrides_from
    from .calibrate import fit_contrast

    measured = measure_acquisition(image, lattice)
    fit = fit_contrast(image, lattice, corrections,
                       jitter_nm=measured["jitter_a"] * lattice.material.a_nm, seed=seed)
    draw = realistic_overrides_from([measured], lattice.material.name, contrast=fit,
                                    pixel_size_nm=lattice.pixel_size_nm, snr_steps=2)
    return draw, {"contrast": fit.to_dict(),
                  "acquisition": {k: round(float(v), 4) for k, v in measured.items()}}


def describe_calibration(calibration: dict) -> str:
    """One line for the user: what the simulator was fitted to."""
    c = calibration["contrast"]
    parts = [f"probe {c['probe_fwhm_nm']:.3f} nm", f"metal/chalcogen {c['metal_to_chalcogen']:.2f}"]
    post = c.get("posterior") or {}
    for name, label, cls in (("second_atom_factor", "second chalcogen atom", "V_S"),
                             ("light_ratio", "light substituent", "O_S")):
        if c.get(name) is None:
            continue
        mean, sd = post.get(name, (c[name], 0.0))
        parts.append(f"{label} {mean:.2f} ± {sd:.2f} (from {c['n_sites'][cls]} {cls})")
    return "Simulator fitted to your image: " + ", ".join(parts) + "."


def _in_background(fn: Callable[[], Any], fraction: float, message: str,
                   every_s: float = 1.0) -> Generator[dict, None, Any]:
    """Run ``fn()`` in a helper thread, yielding progress every ``every_s`` seconds meanwhile (so
    that a consumer can show it, or stop waiting); returns ``fn``'s result or raises its error.

    A consumer that stops waiting leaves the helper thread to finish on its own; its result is
    dropped.
    """
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:  # re-raised in the generator's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="atomdefect-finetune-step", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    while True:
        thread.join(every_s)
        if not thread.is_alive():
            break
        yield {"stage": "data", "fraction": fraction,
               "message": f"{message} ({time.perf_counter() - t0:.0f} s)"}
    if "error" in box:
        raise box["error"]
    return box["result"]


def _step(fraction: float, message: str, **extra) -> dict:
    return {"stage": "data", "fraction": fraction, "message": message, **extra}


#: Progress fractions of the parts of a run (start, end).
_SPANS = {"fit": (0.0, 0.03), "domain_a": (0.03, 0.12), "noise": (0.12, 0.5),
          "fresh": (0.5, 0.58), "direct": (0.59, 0.63), "anchor": (0.63, 0.66),
          "held": (0.66, 0.69), "detector": (0.72, 0.96)}


def iter_finetune(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray, base_model,
                  name: str, settings: FinetuneSettings = FinetuneSettings(),
                  corrections: pd.DataFrame | None = None, device: str = "auto",
                  source: str = "", out_dir=None) -> Iterator[dict]:
    """Fine-tune both stages; yields progress and finally ``{"done", "path", "card"}``.

    Progress comes at least every few seconds (per simulated image, every few training steps),
    so closing the generator stops the run promptly; nothing is written before the end.
    ``out_dir`` defaults to the user models folder; the model is written there as ``name``.
    The final item also holds ``outcome`` (a sentence: which detector was kept, and why) and
    ``kept_base_detector``.
    """
    from torch import nn

    from ..device import select_device
    from ..models.readout import translate
    from ..models.registry import base_detector, base_ugatit, resolve_model, user_models_dir, write_model
    from ..train.loops import label_preservation, site_scores, train_detector, train_noise
    from ..train.pipeline import DETECTOR_TILE, iter_simulated_cells, new_card

    t_start = time.perf_counter()
    check_selection(lattice, np.asarray(cell_ids))
    info = resolve_model(base_model)
    if "noise" not in info.card or "detector" not in info.card:
        raise AtomDefectError(f"Model {info.name} lacks a stage; fine-tune from a full model.")
    dev, dev_text = select_device(device)
    material = lattice.material.name
    noise_spec = TileSpec(**info.card["noise"]["tile"])
    det_spec = TileSpec(**info.card["detector"].get("tile", asdict(DETECTOR_TILE)))
    s = settings
    px = lattice.pixel_size_nm

    def sims(n, seed, ideal, part, what, overrides=None, pixel_size=None):
        return iter_simulated_cells(n, seed, material, noise_spec, ideal, overrides, pixel_size,
                                     _SPANS[part], what)

    yield _step(0.01, "Fitting the simulator to your image…")
    use_corr = corrections if s.use_corrections and corrections is not None else None
    draw, calibration = yield from _in_background(
        lambda: calibrated_simulator(image, lattice, use_corr, s.seed), 0.02,
        "Fitting the simulator to your image…")
    yield _step(_SPANS["fit"][1], f"{describe_calibration(calibration)} Cutting your cells and "
                "simulating domain A…", calibration=calibration)
    real, _ = real_cell_tiles(image, lattice, cell_ids, noise_spec)
    ideal = yield from sims(s.n_sim_images, s.seed, True, "domain_a",
                            "Simulating domain A (ideal cells)", draw, px)

    model = base_ugatit(info)
    lo, hi = _SPANS["noise"]
    report = 3  # steps between progress items: a few seconds at most on two CPU cores
    for item in train_noise(ideal.tiles, real.tiles, steps=s.noise_steps,
                            batch_size=s.noise_batch_size, lr=s.noise_lr, seed=s.seed,
                            device=dev, model=model, report_every=report,
                            sample_every=max(2 * report, s.noise_steps // 5 // report * report)):
        if item.get("done"):
            model = item["model"]
        else:
            item["fraction"] = lo + (hi - lo) * item["step"] / item["steps"]
            item["message"] = (f"Stage 1 (noise transfer) step {item['step']}/{item['steps']}: "
                               f"cycle {item['cycle']:.3f}, adversarial {item['g_adv']:.2f}")
            yield item

    fresh = yield from sims(s.n_sim_images, s.seed + 1, True, "fresh",
                            "Simulating cells to translate with the fine-tuned noise transfer",
                            draw, px)
    translated = translate(model.gen_ab.to(dev), fresh.tiles, dev)
    kept = label_preservation(fresh, translated)
    fresh.tiles = translated
    yield _step(_SPANS["fresh"][1] + 0.005, f"Translated {len(fresh)} simulated cells.")
    direct = yield from sims(max(1, s.n_sim_images // 2), s.seed + 3, False, "direct",
                             "Simulating realistic cells of your microscope", draw, px)
    parts = [fresh, direct]
    if s.anchor_images:
        # Images of random microscopes, as in the base model's training: they keep the detector
        # from drifting far when the fit to one image is off (few cells, few corrected sites).
        parts.append((yield from sims(s.anchor_images, s.seed + 5, False, "anchor",
                                      "Simulating anchor images of random microscopes")))
    train = crop_cells(CellSet.concatenate(parts), noise_spec, det_spec)
    held = yield from sims(max(2, s.n_sim_images // 4), s.seed + 2, False, "held",
                           "Simulating held-out validation images", draw, px)
    val = crop_cells(held, noise_spec, det_spec)
    n_real_labelled, real_val = 0, None
    if s.use_corrections and corrections is not None:
        train_ids, val_ids = split_for_validation(np.asarray(cell_ids), s.seed)
        labelled = labelled_real_cells(image, lattice, train_ids, corrections, det_spec)
        n_real_labelled = len(labelled)
        train = CellSet.concatenate([train] + [labelled] * max(1, s.real_label_weight))
        yield _step(0.7, f"Labelled {n_real_labelled} of your cells from your corrections.")
        if len(val_ids):
            real_val = labelled_real_cells(image, lattice, val_ids, corrections, det_spec)

    base_net = base_detector(info).eval()
    before = site_scores(base_net, val, dev)
    real_before = site_scores(base_net, real_val, dev) if real_val is not None else None
    yield _step(_SPANS["detector"][0], "Scored the base detector; fine-tuning it…")
    net = copy.deepcopy(base_net)  # trained in place; the base stays for the comparison
    result = None
    lo, hi = _SPANS["detector"]
    for item in train_detector(train, val, steps=s.detector_steps,
                               batch_size=s.detector_batch_size, lr=s.detector_lr, seed=s.seed,
                               device=dev, net=net, report_every=report,
                               trainable=s.detector_layers):
        if item.get("done"):
            result = item
        else:
            item["fraction"] = lo + (hi - lo) * item["step"] / item["steps"]
            item["message"] = (f"Stage 2 (detector) step {item['step']}/{item['steps']}: "
                               f"loss {item['loss']:.3f}")
            yield item

    detector, temperature = result["net"], result["temperature"]
    real_scores = None
    if real_val is not None:
        real_after = site_scores(detector, real_val, dev)
        real_scores = compare_on_real_cells(real_before, real_after, real_val)
    verdict = fine_tuning_verdict(real_scores, before, result["metrics"])
    kept_base = s.keep_better_detector and verdict["lost"]
    outcome = describe_outcome(verdict, kept_base, info.name)
    if real_scores is not None:
        yield {"stage": "detector", "fraction": 0.97, "real_validation": real_scores,
               "message": describe_real_validation(real_scores, kept_base)}
    yield {"stage": "detector", "fraction": 0.98, "outcome": outcome, "message": outcome}
    if kept_base:
        detector = base_net.cpu()
        temperature = float(info.card["detector"].get("temperature", 1.0))

    card = new_card(name, material)
    card["base_model"] = info.name
    card["fine_tuning"] = {
        "source_image": source, "cells_used": int(len(cell_ids)),
        "cell_indices": np.asarray(lattice.metal_index[np.asarray(cell_ids)]).tolist(),
        "corrections_used": n_real_labelled, "settings": asdict(s), "device": dev_text,
        "calibration": calibration,
        "outcome": {**verdict, "kept_base_detector": kept_base, "message": outcome},
        "elapsed_s": round(time.perf_counter() - t_start, 1)}
    card["noise"] = {**info.card["noise"], "model_config": model.config,
                     "architecture": model.gen_ab.config,
                     "metrics": {"label_preservation": kept},
                     "training": {"fine_tuned_from": info.name, "steps": s.noise_steps,
                                  "domain_b": {"mode": "cells", "n_cells": len(real),
                                               "images": [source]}}}
    card["detector"] = {**info.card["detector"], "temperature": temperature,
                        "metrics": {"validation_site_f1": result["metrics"],
                                    "validation_site_f1_before": before,
                                    "validation": f"{len(val)} cells of held-out images of the "
                                                  "fitted simulator",
                                    "real_validation": real_scores},
                        "training": {"fine_tuned_from": info.name, "steps": s.detector_steps,
                                     "n_cells": len(train),
                                     "kept_base_detector": kept_base}}
    folder = (out_dir or user_models_dir()) / name
    write_model(folder, card, detector=detector,
                noise=nn.ModuleDict({"gen_ab": model.gen_ab.cpu(), "gen_ba": model.gen_ba.cpu()}))
    yield {"stage": "done", "done": True, "fraction": 1.0, "path": folder, "card": card,
           "outcome": outcome, "kept_base_detector": kept_base,
           "message": f"Saved model {name} ({card['fine_tuning']['elapsed_s']:.0f} s)."}


def preview_tiles(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                  spec: TileSpec = TileSpec()) -> np.ndarray:
    """Raw (not normalised) tiles ``(N, S, S)`` of the given cells only — cheap enough to run on
    every click, unlike tiling the whole image."""
    from ..cells.tiles import cell_affines, sample_tiles

    ids = np.asarray(cell_ids, int)
    s = spec.size_px
    if len(ids) == 0:
        return np.zeros((0, s, s), np.float32)
    return sample_tiles(image, cell_affines(lattice, spec)[ids], spec)[0]
