"""Training pipelines behind ``atomdefect train-noise`` and ``atomdefect train-detector``.

Stage 1 (noise transfer, U-GAT-IT): domain A are *ideal* simulated cells (random probe, contrast
and dose, no scan artefacts); domain B are realistic cells, either

- ``cells``: unlabelled cells tiled from real images of the same material (a user's own data), or
- ``noise``: simulated cells of the target material degraded like the given real images (their
  measured noise, line noise and scan jitter; see :mod:`.noise_model`) — how the bundled MoS2 model
  gets a realistic domain from WS2 images without learning WS2's contrast.

Stage 2 (detector, U-Net): simulated cells translated A -> B by the stage-1 generator, with the
simulator's labels, mixed with directly simulated cells that have every randomised effect on. A
detector learns the classes of every substituent its host supports
(:func:`~..materials.columns.class_names`); its card lists them (``detector.classes``,
``detector.substituents``) and its U-Net has ``3 + len(classes)`` output channels.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..cells.tiles import TileSpec
from ..errors import AtomDefectError
from ..io.image import read_image
from ..lattice.lattice import find_lattice
from ..materials.columns import class_names, supported_substituents
from ..materials.materials import Material, get_material
from ..progress import relay
from .datasets import HOST_LEVEL_SOURCES, CellSet, iter_simulated_cell_sets, real_cells

if TYPE_CHECKING:
    from ..models.registry import ModelInfo
    from ..models.unet import UNet

#: Detector tiles: 1.5 lattice constants at the same sampling as the 2-constant noise tiles.
DETECTOR_TILE = TileSpec(size_px=24, extent_a=1.5)
DETECTOR_WIDTH = 16


def software_versions() -> dict:
    import numpy
    import torch

    from ... import __version__

    return {"napari_atomdefect": __version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def new_card(name: str, material: str) -> dict:
    return {"name": name, "material": material, "format": 1,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "software": software_versions(), "command": " ".join(sys.argv)}


def image_files(paths: list[str]) -> list[Path]:
    """Expand folders into the image files they hold."""
    from ..io.image import SUPPORTED_EXTENSIONS

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in SUPPORTED_EXTENSIONS)
        else:
            out.append(p)
    if not out:
        raise AtomDefectError(f"No image files found in {', '.join(paths)}.")
    return out


def _simulate_image_cells(job: tuple) -> list[CellSet]:
    """The cells of one simulated image (module level: worker processes run it)."""
    image_seed, material, spec, ideal, override, classes, px = job
    return [cells for cells, _ in iter_simulated_cell_sets(1, image_seed, material, spec,
                                                           ideal=ideal, params_override=override,
                                                           classes=classes, **px)]


def iter_simulated_cells(n_images: int, seed: int, material: str, spec: TileSpec, ideal: bool,
                         overrides: dict | Callable[[np.random.Generator], dict] | None = None,
                         pixel_size_nm: float | None = None, span: tuple[float, float] = (0.0, 1.0),
                         what: str = "Simulating cells",
                         classes: tuple[str, ...] | None = None,
                         workers: int = 1) -> Generator[dict, None, CellSet]:
    """Labelled simulated cells from ``n_images`` random microscopes, with one progress item per
    image (``fraction`` moving through ``span``); returns the :class:`CellSet`.

    ``overrides`` fixes simulator parameters (a dict, or a function ``rng -> dict`` drawn per
    image); ``pixel_size_nm`` fixes the pixel size (default: random, 0.008–0.02 nm);
    ``classes`` are the model's defect classes (default every class of the material).
    ``workers`` > 1 simulates the images in that many processes (the same cells, in the same
    order: each image has its own seed; a machine with many cores — a lent GPU's — trains from
    data made that much faster).
    """
    rng = np.random.default_rng(seed + 7)
    px: dict[str, Any] = {} if pixel_size_nm is None else {"pixel_size_nm": (pixel_size_nm, pixel_size_nm)}
    jobs = [(seed * 100_003 + k, material, spec, ideal,
             overrides(rng) if callable(overrides) else overrides, classes, px)
            for k in range(n_images)]
    lo, hi = span
    parts: list[CellSet] = []
    pool = None
    if workers > 1 and n_images > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: the parent may hold torch's threads, which a forked child must not inherit
        pool = ProcessPoolExecutor(min(workers, n_images),
                                   mp_context=multiprocessing.get_context("spawn"))
    try:
        results = pool.map(_simulate_image_cells, jobs) if pool else map(_simulate_image_cells,
                                                                          jobs)
        for k, cells in enumerate(results):
            parts += cells
            yield {"stage": "data", "fraction": lo + (hi - lo) * (k + 1) / max(n_images, 1),
                   "message": f"{what}: image {k + 1}/{n_images}"}
    finally:  # a cancelled run leaves no simulation behind
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not parts:
        raise AtomDefectError("No simulated image could be tiled; check the material.")
    return CellSet.concatenate(parts)


def simulated_cells(n_images: int, seed: int, material: str, spec: TileSpec, ideal: bool,
                    overrides: dict | Callable[[np.random.Generator], dict] | None = None,
                    pixel_size_nm: float | None = None,
                    classes: tuple[str, ...] | None = None, workers: int = 1) -> CellSet:
    """:func:`iter_simulated_cells` without the progress items."""
    items = iter_simulated_cells(n_images, seed, material, spec, ideal, overrides, pixel_size_nm,
                                 classes=classes, workers=workers)
    try:
        while True:
            next(items)
    except StopIteration as stop:
        return stop.value


class SimulatorContrast(Protocol):
    """What training needs of a fitted contrast (e.g. :class:`..finetune.calibrate.ContrastFit`)."""

    def simulator_params(self, material: Material, rng: np.random.Generator) -> dict:
        """Simulator keywords (probe, column weights) drawn around the fit."""
        ...


def realistic_overrides_from(measurements: list[dict], material: str,
                             contrast: SimulatorContrast | None = None, pixel_size_nm: float = 0.012,
                             snr_steps: int = 1) -> Callable[[np.random.Generator], dict]:
    """A function ``rng -> simulator parameters`` imitating one of the measured acquisitions.

    A random microscope is drawn (with the probe and column contrast of ``contrast``, a
    :class:`~..finetune.calibrate.ContrastFit`, when given) and given the measured scan jitter. Its dose is
    found by simulating it and measuring its SNR the same way as the real image's, then scaling
    the dose by ``(target / measured) ** 2``, ``snr_steps`` times. Part of the measured noise does
    not shrink with dose (scan jitter, column-shape mismatch), so a single ``SNR ∝ sqrt(dose)``
    step (the bundled model's training, kept for reproducibility) makes the images up to ~20 %
    noisier than the real one; two steps match it within a few percent. The target SNR is the
    real one ±25 %; the line noise is scaled to reproduce the real image's streaks.
    """
    from ..simulate.image import MicroscopeParams, simulate_image
    from .noise_model import acquisition_overrides, measure_acquisition

    mat = get_material(material)
    ref_line = 0.02

    def draw(rng: np.random.Generator) -> dict:
        meas = measurements[int(rng.integers(len(measurements)))]
        ov = acquisition_overrides(meas, rng, mat.a_nm)
        ov["row_jitter_nm"] = min(ov["row_jitter_nm"], 0.05 * mat.a_nm)
        fixed = {} if contrast is None else contrast.simulator_params(mat, rng)
        base = MicroscopeParams.random(np.random.default_rng(int(rng.integers(2**31))), mat,
                                       all_voltages=True, row_jitter_nm=ov["row_jitter_nm"],
                                       line_noise=ref_line, **fixed)
        size = int(np.clip(14 * mat.a_nm / pixel_size_nm, 192, 512))
        seed = int(rng.integers(2**31))
        target = meas["snr"] * rng.uniform(0.8, 1.25)
        dose = 1e5
        for _ in range(max(1, snr_steps)):
            params = MicroscopeParams(**{**base.__dict__, "dose_e_per_A2": dose})
            sim = simulate_image(mat, size, pixel_size_nm, params=params, seed=seed,
                                 substituents="all")
            ref = measure_acquisition(sim.image, find_lattice(sim.image, mat))
            step = float(np.clip((target / max(ref["snr"], 1e-6)) ** 2, 0.05, 20))
            dose = float(np.clip(dose * step, 3e3, 1e7))
        line = ref_line * ov["line_noise"] / max(ref["line_noise"], 1e-6)
        return {**base.__dict__, "dose_e_per_A2": dose, "line_noise": float(min(line, 0.2))}

    return draw


def domain_b_cells(real: list[str], mode: str, material: str, real_material: str | None,
                   n_images: int, seed: int, spec: TileSpec) -> tuple[CellSet, dict]:
    """Realistic cells for stage 1 and a description of where they came from."""
    from .noise_model import measure_acquisition

    files = image_files(real)
    real_mat = real_material or material
    if mode == "cells":
        parts, used = [], []
        for f in files:
            img = read_image(f)
            frames = img.data if img.is_stack else img.data[None]
            for frame in frames:
                parts.append(real_cells(frame, real_mat, img.pixel_size_nm, spec))
            used.append(f.name)
        cells = CellSet.concatenate(parts)
        return cells, {"mode": "cells", "images": used, "n_cells": len(cells)}
    measurements, used = [], []
    for f in files:
        img = read_image(f)
        frame = img.data[0] if img.is_stack else img.data
        lat = find_lattice(frame, real_mat)
        measurements.append(measure_acquisition(frame, lat))
        used.append(f.name)
    cells = simulated_cells(n_images, seed + 1, material, spec, ideal=False,
                            overrides=realistic_overrides_from(measurements, material))
    return cells, {"mode": "noise", "images": used, "measured": measurements,
                   "n_cells": len(cells), "n_simulated_images": n_images}


def run_train_noise(material: str, real: list[str], mode: str, real_material: str | None,
                    n_images: int, steps: int, batch_size: int, seed: int, device: str,
                    init_model: ModelInfo | None = None,
                    max_cells: int = 20_000) -> Iterator[dict]:
    """Build both domains and train stage 1; yields progress, then ``{"done", "model", "card"}``."""
    import torch

    from ..device import select_device
    from ..models.readout import translate
    from .loops import label_preservation, train_noise

    spec = TileSpec()
    dev, dev_text = select_device(device)
    yield {"stage": "data", "message": "simulating domain A (ideal cells)"}
    cells_a = simulated_cells(n_images, seed, material, spec, ideal=True)
    yield {"stage": "data", "message": f"domain A: {len(cells_a)} cells; building domain B"}
    cells_b, b_info = domain_b_cells(real, mode, material, real_material, n_images, seed, spec)
    rng = np.random.default_rng(seed)
    if len(cells_b) > max_cells:
        cells_b = cells_b.subset(rng.choice(len(cells_b), max_cells, replace=False))
    yield {"stage": "data", "message": f"domain B: {len(cells_b)} cells ({b_info['mode']})"}
    model = None
    if init_model is not None:
        from ..models.registry import base_ugatit

        model = base_ugatit(init_model)
    result = yield from relay(train_noise(cells_a.tiles, cells_b.tiles, steps=steps,
                                          batch_size=batch_size, seed=seed, device=dev,
                                          model=model))
    model = result["model"]
    held = CellSet.concatenate([c for c, _ in iter_simulated_cell_sets(
        4, seed + 999, material, spec, ideal=True)])
    after = translate(model.gen_ab, held.tiles, torch.device("cpu"))
    card = {"architecture": model.gen_ab.config, "model_config": model.config, "tile": spec.__dict__,
            "device": dev_text,
            "training": {"steps": steps, "batch_size": batch_size, "seed": seed,
                         "elapsed_s": round(result["elapsed_s"], 1),
                         "domain_a": {"kind": "ideal simulated cells", "n_images": n_images,
                                      "n_cells": len(cells_a), "material": material},
                         "domain_b": b_info},
            "metrics": {"label_preservation": label_preservation(held, after)}}
    yield {"stage": "noise", "done": True, "model": model, "card": card}


def run_train_detector(material: str, noise_model_info: ModelInfo | None, n_images: int,
                       val_images: int,
                       steps: int, batch_size: int, seed: int, device: str,
                       translated_fraction: float = 0.5,
                       init_net: UNet | None = None,
                       init_classes: tuple[str, ...] | None = None,
                       host_units: bool = False,
                       labelled: list[str] | None = None,
                       labelled_doses: int = 3,
                       host_level_from: str = "ladder", workers: int = 1,
                       incoherent_share: float = 0.0) -> Iterator[dict]:
    """Generate stage-2 data (translated + direct simulated cells) and train the U-Net.

    ``labelled``: folders of labelled images of another simulator (multislice), whose cells
    join the training data, each image read at ``labelled_doses`` noise realisations
    (:mod:`.labelled_images`).

    ``workers``: processes that simulate the training images (:func:`iter_simulated_cells`).

    ``incoherent_share``: the share of the training and validation images whose microscope
    follows the incoherent Z-contrast rule (each atom ``Z**n``, no cross term:
    :func:`~..simulate.microscopes.incoherent_params`) instead of the multislice-grounded
    random microscope: the textbook limit of annular dark field at high angles, and the physics
    of simple simulators, whose metal/chalcogen contrast reaches past the others (a W/Se2
    contrast of 2.1–2.4). 0 draws nothing (the images of a seed stay those of earlier models).

    ``host_units``: the detector reads tiles in host units, a host chalcogen column 1 whatever
    the composition (:mod:`..cells.ladder`; the card says ``"unit": "host"``); otherwise in
    chalcogen units, the median column 1. ``host_level_from``: where the training and
    validation cells take their image's host level (:data:`.datasets.HOST_LEVEL_SOURCES`: the
    ladder's reading, as detection does, or the simulated image's true host columns).

    The detector learns every class of ``material`` (all supported substituents). ``init_net``
    (with its defect classes ``init_classes``, default the same) starts the training; when its
    class list differs (another host, a legacy model) its last layer is remade for the new
    classes (:func:`~..models.unet.transfer_head`) and every other layer is kept.
    """
    from ..cells.ladder import HOST_UNITS
    from ..cells.normalize import CONTEXT_NAMES
    from ..device import select_device
    from ..models.readout import translate
    from ..models.registry import load_noise_generators
    from ..models.unet import add_context_inputs, transfer_head
    from ..simulate.microscopes import incoherent_share_overrides
    from .datasets import crop_cells
    from .loops import train_detector

    classes = class_names(material)
    substituents = supported_substituents(material)
    if init_net is not None:
        init_net = transfer_head(init_net, tuple(init_classes or classes), classes, seed)
        init_net = add_context_inputs(init_net, len(CONTEXT_NAMES))

    # Cells are made (and translated) at the noise model's tile size, then cropped to the
    # detector's smaller tile: same sampling, less overlap between tiles, faster detection.
    spec = TileSpec(**noise_model_info.card["noise"]["tile"]) if noise_model_info else TileSpec()
    det_spec = DETECTOR_TILE
    dev, dev_text = select_device(device)
    n_trans = int(round(n_images * translated_fraction)) if noise_model_info else 0
    mix = incoherent_share_overrides(incoherent_share)
    parts = []
    if n_trans:
        gen_ab, _ = load_noise_generators(noise_model_info, dev)
        yield {"stage": "data", "message": f"simulating {n_trans} images for translation"}
        ideal = simulated_cells(n_trans, seed, material, spec, ideal=True, overrides=mix,
                                classes=classes, workers=workers)
        ideal.tiles = translate(gen_ab, ideal.tiles, dev)
        parts.append(ideal)
    yield {"stage": "data", "message": f"simulating {n_images - n_trans} realistic images"}
    parts.append(simulated_cells(n_images - n_trans, seed + 1, material, spec, ideal=False,
                                 overrides=mix, classes=classes, workers=workers))
    train = crop_cells(CellSet.concatenate(parts), spec, det_spec)
    n_labelled = n_labelled_folders = 0
    if labelled:
        from .labelled_images import labelled_cells

        extra = None
        for item in labelled_cells(labelled, classes, det_spec, labelled_doses, seed + 3):
            if item.get("done"):
                extra, n_labelled_folders = item["cells"], item["n_folders"]
            else:
                yield item
        if extra is not None:
            n_labelled = len(extra)
            train = CellSet.concatenate([train, extra])
    val = crop_cells(simulated_cells(val_images, seed + 2, material, spec, ideal=False,
                                     overrides=mix, classes=classes, workers=workers),
                     spec, det_spec)
    if host_level_from not in HOST_LEVEL_SOURCES:
        raise AtomDefectError(f"The host level comes from one of "
                              f"{', '.join(HOST_LEVEL_SOURCES)}, not {host_level_from!r}.")
    if host_units:
        train, val = train.in_host_units(host_level_from), val.in_host_units(host_level_from)
    yield {"stage": "data", "message": f"{len(train)} training cells, {len(val)} validation cells"}
    result = yield from relay(train_detector(train, val, steps=steps, batch_size=batch_size,
                                             seed=seed, device=dev, net=init_net,
                                             width=DETECTOR_WIDTH))
    net = result["net"]
    card = {"architecture": net.config, "tile": det_spec.__dict__,
            "classes": list(classes), "substituents": list(substituents),
            "context": list(CONTEXT_NAMES),
            "unit": HOST_UNITS if host_units else "chalcogen",
            "temperature": result["temperature"],
            "device": dev_text,
            "training": {"steps": steps, "batch_size": batch_size, "seed": seed,
                         "elapsed_s": round(result["elapsed_s"], 1), "n_images": n_images,
                         "translated_images": n_trans, "n_cells": len(train),
                         "init_classes": list(init_classes) if init_classes else None,
                         "labelled_images": n_labelled_folders,
                         "labelled_cells": n_labelled,
                         "labelled_doses": labelled_doses if labelled else None,
                         "host_level_from": host_level_from if host_units else None,
                         "incoherent_share": incoherent_share,
                         "noise_model": noise_model_info.name if noise_model_info else None},
            "metrics": {"validation_site_f1": result["metrics"],
                        "validation": f"{len(val)} cells of {val_images} held-out simulated images"}}
    yield {"stage": "detector", "done": True, "net": net, "card": card}
