"""Fine-tuning both stages on a few real unit cells of the user's own microscope.

0. The simulator is fitted to the user's image (:mod:`.calibrate`): probe width and metal/chalcogen
   contrast from the lattice, and — from the user's corrected ``V_S`` and ``O_S`` sites, when
   given — the second chalcogen atom's and the light substituent's contribution; the noise, scan
   streaks and jitter are measured as well (:mod:`..train.noise_model`). Every simulated cell below is
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
import os
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..cells.tiles import TileSpec
from ..detect.coarse import enlarged, enlargement, to_enlarged
from ..errors import AtomDefectError
from ..lattice.lattice import Lattice
from ..materials.columns import LEGACY_CLASSES
from ..train.datasets import CellSet, crop_cells
from ..train.labelled_images import labelled_real_cells, real_cell_tiles
from .calibrate import implied_substituents
from .selection import check_selection, corrections_in_cells
from .simulator import calibrated_simulator, describe_calibration
from .verdict import (
    compare_on_real_cells,
    describe_outcome,
    describe_real_validation,
    fine_tuning_verdict,
    min_cells_to_hold_out,
    split_for_validation,
)

if TYPE_CHECKING:
    import torch

    from ..cells.tiles import CellTiles
    from ..models.registry import ModelInfo
    from ..models.ugatit import UGATIT
    from ..models.unet import UNet


@dataclass
class FinetuneSettings:
    """Settings of a fine-tuning run (the defaults finish in a few minutes on two CPU cores).

    ``anchor_images``: images of random microscopes added to the stage-2 data;
    ``keep_better_detector``: keep the base detector when the fine-tuned one loses
    (:func:`fine_tuning_verdict`); ``detector_layers``: which U-Net parts are fine-tuned
    (:data:`~..train.loops.TRAINABLE_PARTS`).
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


def _step(fraction: float, message: str, **extra: Any) -> dict:
    return {"stage": "data", "fraction": fraction, "message": message, **extra}


#: Progress fractions of the parts of a run (start, end).
_SPANS = {"fit": (0.0, 0.03), "domain_a": (0.03, 0.12), "noise": (0.12, 0.5),
          "fresh": (0.5, 0.58), "direct": (0.59, 0.63), "anchor": (0.63, 0.66),
          "held": (0.66, 0.69), "detector": (0.72, 0.96)}


#: Training steps between progress items: every step (three had kept a loaded machine's bar
#: still for 100 s, a trial: a step took 30 s with a test suite running beside it).
_REPORT_EVERY = 1


def _relay_steps(items: Iterator[dict], span: tuple[float, float],
                 describe: Callable[[dict], str]) -> Generator[dict, None, dict]:
    """Forward a training loop's progress items, placed in ``span`` of the progress bar and
    described by ``describe``; returns the loop's final ``done`` item."""
    lo, hi = span
    for item in items:
        if item.get("done"):
            return item
        item["fraction"] = lo + (hi - lo) * item["step"] / item["steps"]
        item["message"] = describe(item)
        yield item
    return {}


def _stage1(ideal: CellSet, real: CellTiles, model: UGATIT, s: FinetuneSettings,
            dev: torch.device) -> Generator[dict, None, UGATIT]:
    """Fine-tune the noise transfer (stage 1) from ideal simulated cells to the user's cells."""
    from ..train.loops import train_noise

    report = _REPORT_EVERY
    done = yield from _relay_steps(
        train_noise(ideal.tiles, real.tiles, steps=s.noise_steps, batch_size=s.noise_batch_size,
                    lr=s.noise_lr, seed=s.seed, device=dev, model=model, report_every=report,
                    sample_every=max(2 * report, s.noise_steps // 5 // report * report)),
        _SPANS["noise"],
        lambda item: (f"Stage 1 (noise transfer) step {item['step']}/{item['steps']}: "
                      f"cycle {item['cycle']:.3f}, adversarial {item['g_adv']:.2f}"))
    return done.get("model", model)


def _stage2(train: CellSet, val: CellSet, net: UNet, s: FinetuneSettings,
            dev: torch.device) -> Generator[dict, None, dict]:
    """Fine-tune the detector (stage 2) in place; returns the training loop's ``done`` item."""
    from ..train.loops import train_detector

    return (yield from _relay_steps(
        train_detector(train, val, steps=s.detector_steps, batch_size=s.detector_batch_size,
                       lr=s.detector_lr, seed=s.seed, device=dev, net=net,
                       report_every=_REPORT_EVERY, trainable=s.detector_layers),
        _SPANS["detector"],
        lambda item: f"Stage 2 (detector) step {item['step']}/{item['steps']}: "
                     f"loss {item['loss']:.3f}"))


def _noise_card(info: ModelInfo, model: UGATIT, s: FinetuneSettings, kept: dict, n_real: int,
                source: str) -> dict:
    """The ``noise`` section of the fine-tuned model's card."""
    return {**info.card["noise"], "model_config": model.config,
            "architecture": model.gen_ab.config,
            "metrics": {"label_preservation": kept},
            "training": {"fine_tuned_from": info.name, "steps": s.noise_steps,
                         "domain_b": {"mode": "cells", "n_cells": n_real, "images": [source]}}}


def _detector_card(info: ModelInfo, s: FinetuneSettings, temperature: float, metrics: dict,
                   before: dict, real_scores: dict | None, n_val: int, n_train: int,
                   kept_base: bool) -> dict:
    """The ``detector`` section of the fine-tuned model's card."""
    # The base model's calibration was fitted to the base weights: a retrained detector uses its
    # own temperature only (identity calibration) until ``atomdefect calibrate-model`` refits it.
    base = info.card["detector"] if kept_base else \
        {k: v for k, v in info.card["detector"].items() if k != "calibration"}
    # The figures of the detector the model carries: the base one's when it is kept (the
    # fine-tuned one's are kept beside them, as what was tried).
    return {**base, "temperature": temperature,
            "metrics": {"validation_site_f1": before if kept_base else metrics,
                        "validation_site_f1_before": before,
                        "validation_site_f1_fine_tuned": metrics,
                        "validation": f"{n_val} cells of held-out images of the fitted simulator",
                        "real_validation": real_scores},
            "training": {"fine_tuned_from": info.name, "steps": s.detector_steps,
                         "n_cells": n_train, "kept_base_detector": kept_base}}


def iter_finetune(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                  base_model: str | os.PathLike | None,
                  name: str, settings: FinetuneSettings = FinetuneSettings(),
                  corrections: pd.DataFrame | None = None, device: str = "auto",
                  source: str = "", out_dir: Path | None = None,
                  substituents: tuple[str, ...] | None = None,
                  command: str | None = None) -> Iterator[dict]:
    """Fine-tune both stages; yields progress and finally ``{"done", "path", "card"}``.

    ``substituents``: those the image was analysed for (its detection run's); the simulator's
    contrast is fitted against the host column the image's Z-contrast ladder reads with them
    (default: the substituents of the corrected classes) — an alloy's median column is not the
    host's. ``command``: how the run was made, for the card (default: this process's command
    line; the widget names itself — a card had recorded the script that opened napari).

    Progress comes at least every few seconds (per simulated image, every few training steps),
    so closing the generator stops the run promptly; nothing is written before the end.
    ``out_dir`` defaults to the user models folder; the model is written there as ``name``.
    The final item also holds ``outcome`` (a sentence: which detector was kept, and why) and
    ``kept_base_detector``.
    """
    from torch import nn

    from ..cells.ladder import uses_host_units
    from ..device import select_device
    from ..models.readout import translate
    from ..models.registry import (
        base_detector,
        base_ugatit,
        check_model_name,
        resolve_model,
        user_models_dir,
        write_model,
    )
    from ..train.loops import label_preservation, site_scores
    from ..train.pipeline import DETECTOR_TILE, iter_simulated_cells, new_card

    t_start = time.perf_counter()
    check_model_name(name)
    check_selection(lattice, np.asarray(cell_ids))
    info = resolve_model(base_model)
    # A coarse image (a survey) is read enlarged by detection (:mod:`..detect.coarse`): it is
    # fine-tuned on the same enlargement, so the model learns its cells as it will read them
    # (fine-tuned on the coarse pixels, it had read them as they are, unlike its base model).
    k = enlargement(lattice.a_px, np.shape(image))
    if k > 1:
        image, lattice = enlarged(np.asarray(image, np.float32), lattice, k)
        if corrections is not None:
            corrections = corrections.assign(
                y_px=to_enlarged(corrections["y_px"].to_numpy(float), k),
                x_px=to_enlarged(corrections["x_px"].to_numpy(float), k))
    if "noise" not in info.card or "detector" not in info.card:
        raise AtomDefectError(f"Model {info.name} lacks a stage; fine-tune from a full model.")
    dev, dev_text = select_device(device)
    material = lattice.material.name
    # Cells are labelled with the base model's classes (a legacy card lists none: MoS2's four);
    # a class of this material the model lacks counts as its equivalent there (V_W as V_Mo).
    classes = tuple(info.card["detector"].get("classes") or LEGACY_CLASSES)
    noise_spec = TileSpec(**info.card["noise"]["tile"])
    det_spec = TileSpec(**info.card["detector"].get("tile", asdict(DETECTOR_TILE)))
    s = settings
    px = lattice.pixel_size_nm

    def sims(n: int, seed: int, ideal: bool, part: str, what: str,
             overrides: dict | Callable[[np.random.Generator], dict] | None = None,
             pixel_size: float | None = None) -> Generator[dict, None, CellSet]:
        return iter_simulated_cells(n, seed, material, noise_spec, ideal, overrides, pixel_size,
                                     _SPANS[part], what, classes=classes)

    yield _step(0.01, ("" if k == 1 else
                       f"Enlarged {k}× (a lattice constant spans {lattice.a_px / k:.1f} px), as "
                       "detection reads it. ") + "Fitting the simulator to your image…")
    # The selected cells split once: a fifth held out to check the result, never seen by the
    # fit or the training (the fit had read the held-out cells' corrections too: a trial).
    train_ids, val_ids = split_for_validation(np.asarray(cell_ids), s.seed)
    # (fitted to the calls of the selected training cells, the ones the user reviewed)
    use_corr = (corrections_in_cells(lattice, train_ids, corrections)
                if s.use_corrections and corrections is not None else None)
    # (the image's host column read with the run's substituents, else those the user's calls
    # hold over the whole image: an alloy's median column is not the host's)
    subs = (tuple(substituents) if substituents is not None
            else implied_substituents(corrections) if corrections is not None else None)
    draw, calibration = yield from _in_background(
        lambda: calibrated_simulator(image, lattice, use_corr, s.seed, subs), 0.02,
        "Fitting the simulator to your image…")
    yield _step(_SPANS["fit"][1], f"{describe_calibration(calibration)} Cutting your cells and "
                "simulating domain A…", calibration=calibration)
    real, _ = real_cell_tiles(image, lattice, cell_ids, noise_spec)
    ideal = yield from sims(s.n_sim_images, s.seed, True, "domain_a",
                            "Simulating domain A (ideal cells)", draw, px)

    # (torch is imported lazily: in napari this is often its first use, seconds on a cold disk)
    yield _step(_SPANS["noise"][0] + 0.001,  # (past domain A's last item, rounding and all)
                "Loading the networks and starting stage 1 (noise transfer)…")
    model = yield from _stage1(ideal, real, base_ugatit(info), s, dev)

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
        labelled = labelled_real_cells(image, lattice, train_ids, corrections, det_spec, classes)
        n_real_labelled = len(labelled)
        train = CellSet.concatenate([train] + [labelled] * max(1, s.real_label_weight))
        held_note = (f"{len(val_ids)} held out to check the result" if len(val_ids) else
                     "none held out to check the result on your own cells (that needs at "
                     f"least {min_cells_to_hold_out()} selected cells): it is judged on "
                     "simulated images of your microscope")
        yield _step(0.7, f"Labelled {n_real_labelled} of your cells from your corrections; "
                    f"{held_note}.")
        if len(val_ids):
            real_val = labelled_real_cells(image, lattice, val_ids, corrections, det_spec,
                                           classes)

    if uses_host_units(info.card["detector"]):  # the detector reads tiles in host units
        train, val = train.in_host_units(), val.in_host_units()
        real_val = real_val.in_host_units() if real_val is not None else None
    base_net = base_detector(info).eval()
    before = site_scores(base_net, val, dev)
    real_before = site_scores(base_net, real_val, dev) if real_val is not None else None
    yield _step(_SPANS["detector"][0], "Scored the base detector; fine-tuning it…")
    net = copy.deepcopy(base_net)  # trained in place; the base stays for the comparison
    result = yield from _stage2(train, val, net, s, dev)

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
    if command:
        card["command"] = command
    card["base_model"] = info.name
    card["fine_tuning"] = {
        "source_image": source, "cells_used": int(len(cell_ids)),
        "cell_indices": np.asarray(lattice.metal_index[np.asarray(cell_ids)]).tolist(),
        "corrections_used": n_real_labelled, "settings": asdict(s), "device": dev_text,
        "enlarged": k, "reads_coarse_enlarged": True,
        "calibration": calibration,
        "outcome": {**verdict, "kept_base_detector": kept_base, "message": outcome},
        "elapsed_s": round(time.perf_counter() - t_start, 1)}
    card["noise"] = _noise_card(info, model, s, kept, len(real), source)
    card["detector"] = _detector_card(info, s, temperature, result["metrics"], before, real_scores,
                                      len(val), len(train), kept_base)
    folder = (out_dir or user_models_dir()) / name
    write_model(folder, card, detector=detector,
                noise=nn.ModuleDict({"gen_ab": model.gen_ab.cpu(), "gen_ba": model.gen_ba.cpu()}))
    yield {"stage": "done", "done": True, "fraction": 1.0, "path": folder, "card": card,
           "outcome": outcome, "kept_base_detector": kept_base,
           "message": f"Saved model {name} ({card['fine_tuning']['elapsed_s']:.0f} s)."}
