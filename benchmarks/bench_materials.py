"""Per-material, per-class precision/recall/F1 of the bundled detectors on held-out simulated images.

Usage:
    python benchmarks/bench_materials.py                       # all four hosts, 12 images each
    python benchmarks/bench_materials.py --material WS2 --n-images 24 --size 384 --json ws2.json

For each host material (MoS2, WS2, MoSe2, WSe2) ``N`` simulated images of the project's own
simulator are analysed with the material's default model (:func:`default_model_name`) and every
substituent that model was trained for. The images use seeds 960 000 + k: disjoint from training
(random seeds of the pipeline), the calibration (700 000+), ``bench_accuracy.py`` (900 000+) and
``tests/test_accuracy.py`` (950 000+). Microscopes, doses (1e5–2e6 e/Å²) and pixel sizes
(0.010–0.016 nm) are drawn at random per image; the substituent content cycles through three
kinds of image when the simulator can place substituents (``simulate_image(substituents=...)``):

* ``mixed``  — every substituent the host supports, default defect fractions;
* ``single`` — one substituent (drawn at random), default fractions;
* ``alloy``  — a partly converted layer: the heavier (or, for selenides, the lighter)
  substituent in many columns (``D_X`` 15 %, ``D2_X2`` 20 %).

A material whose default model is another material's (its bundled model is not there yet) is
reported as skipped, with the reason. Scores pool true positives, false positives and false
negatives over the images (matching radius 0.08 nm, :mod:`core.detect.evaluate`); merged groups
``V_X|D_X`` of a vacancy and its light substituent are listed too. The JSON also holds the
figures pooled over only the images that pass the model-fit check (``per_class_fitting``) and,
per image, its kind, counts and fit messages. ``--image-substituents`` analyses each image with
the substituents it was made with (and, without ``--model``, the model ``atomdefect detect``
takes for them), as a user who names them does.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

HOSTS = ("MoS2", "WS2", "MoSe2", "WSe2")
SEED = 960_000
RADIUS_NM = 0.08
KINDS = ("mixed", "single", "alloy")
#: Defect fractions per generic kind of the ``alloy`` images.
ALLOY_FRACTIONS = {"V_X": 0.03, "V_X2": 0.01, "D_X": 0.15, "D2_X2": 0.20, "V_M": 0.005}
#: The substituent that converts each host chalcogen in ``alloy`` images.
ALLOY_SUBSTITUENT = {"S": "Se", "Se": "S"}
#: Vacancy fractions (per generic kind) of the ``--random-alloys`` images, beside the alloy.
RANDOM_ALLOY_BASE = {"V_X": 0.04, "V_X2": 0.01, "V_M": 0.01}


@dataclass
class HeldOut:
    """One held-out simulated image with its truth."""

    material: str
    seed: int
    kind: str
    substituents: tuple[str, ...] | None
    image: np.ndarray
    pixel_size_nm: float
    dose: float
    truth: pd.DataFrame
    sites: pd.DataFrame


def simulator_places_substituents() -> bool:
    """Whether ``simulate_image`` takes ``substituents`` (the column-composition simulator)."""
    from napari_atomdefect.core.simulate.image import simulate_image

    return "substituents" in inspect.signature(simulate_image).parameters


def _random_alloy_plan(material: str, k: int, rng: np.random.Generator) -> tuple[str, dict]:
    """A random alloy (``--random-alloys``): the image's alloying substituent in turn (Se in a
    sulfide; S, then Te in a selenide), its atoms substituted independently at a per-atom
    fraction drawn as for training (:func:`~napari_atomdefect.core.simulate.image.alloy_fractions`),
    plus :data:`RANDOM_ALLOY_BASE` vacancies; every supported substituent is looked for."""
    from napari_atomdefect.core.materials.columns import (
        DOUBLE_SUBSTITUTION,
        supported_substituents,
    )
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.simulate.image import alloy_fractions

    mat = get_material(material)
    subs = supported_substituents(mat)
    alloying = [d for d in subs if d in DOUBLE_SUBSTITUTION]
    fractions = alloy_fractions(mat, (alloying[k % len(alloying)],), rng, RANDOM_ALLOY_BASE,
                                probability=1.0)
    return "random-alloy", {"substituents": ",".join(subs), "defect_fractions": fractions}


def _image_plan(material: str, k: int, rng: np.random.Generator,
                random_alloys: bool = False) -> tuple[str, dict]:
    """Kind of image ``k`` and the extra keyword arguments of ``simulate_image``."""
    if random_alloys:
        return _random_alloy_plan(material, k, rng)
    from napari_atomdefect.core.materials.columns import supported_substituents
    from napari_atomdefect.core.materials.materials import get_material

    if not simulator_places_substituents():
        return "legacy", {}
    kind = KINDS[k % len(KINDS)]
    subs = supported_substituents(material)
    if kind == "mixed":
        return kind, {"substituents": ",".join(subs)}
    if kind == "single":
        return kind, {"substituents": str(subs[int(rng.integers(len(subs)))])}
    conv = ALLOY_SUBSTITUENT[get_material(material).chalcogen]
    return kind, {"substituents": conv, "defect_fractions": dict(ALLOY_FRACTIONS)}


def heldout_image(material: str, k: int, size: int = 320, seed: int = SEED,
                  random_alloys: bool = False, all_voltages: bool = False) -> HeldOut:
    """Held-out image ``k`` of ``material`` (same arguments, same image).

    Parameters
    ----------
    material : str
        Host material.
    k : int
        Index of the image; its seed is ``seed + k``.
    size : int
        Image side in pixels.
    seed : int
        First seed.
    random_alloys : bool
        A random binomial alloy (:func:`_random_alloy_plan`) instead of the mixed / single /
        alloy plan.
    all_voltages : bool
        Microscopes at any voltage of the training range (60–300 kV) instead of the five the
        held-out images have always had (the same seed then gives another image).

    Returns
    -------
    HeldOut
    """
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    rng = np.random.default_rng(seed + k)
    dose = float(10 ** rng.uniform(5.0, np.log10(2e6)))
    px = float(rng.uniform(0.010, 0.016))
    params = MicroscopeParams.random(rng, material, all_voltages=all_voltages,
                                     dose_e_per_A2=dose)
    kind, extra = _image_plan(material, k, rng, random_alloys)
    sim = simulate_image(material, size, px, params=params, seed=seed + k, **extra)
    truth = sim.sites[~sim.sites["class"].isin(["metal", "chalcogen"])].reset_index(drop=True)
    subs = tuple(s for s in extra.get("substituents", "").split(",") if s) if extra else None
    return HeldOut(material, seed + k, kind, subs, sim.image, px, dose, truth, sim.sites)


def material_model(material: str, model: str | None = None,
                   substituents: tuple[str, ...] | None = None):
    """The material's default model for every substituent it supports (the held-out images hold
    them all) and ``None``, or ``None`` and why it is not there yet. ``model``: another model
    (a name or folder, e.g. a candidate from ``atomdefect train-detector``) instead;
    ``substituents``: the default model ``atomdefect detect`` takes for those instead."""
    from napari_atomdefect.core.materials.columns import supported_substituents
    from napari_atomdefect.core.models.registry import (
        default_model_name,
        model_material,
        resolve_model,
    )

    subs = supported_substituents(material) if substituents is None else substituents
    info = resolve_model(model or default_model_name(material, subs), material)
    if model_material(info) != material:
        return None, (f"no bundled model for {material} yet (the default would be {info.name}, "
                      f"trained for {model_material(info)})")
    return info, None


def analyse(item: HeldOut, info, substituents: tuple[str, ...] | None = None) -> dict:
    """Run the detector on one held-out image with every substituent of the model.

    Returns the ``iter_detect`` result dict (``defects``, ``sites``, ``lattice``, ``levels``...)
    plus ``warnings`` (the sentences warned while it ran).
    """
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.models.registry import model_substituents
    from napari_atomdefect.core.progress import run_to_end

    subs = model_substituents(info) if substituents is None else substituents
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_to_end(iter_detect(item.image, item.pixel_size_nm, item.material, info,
                                        "cpu", substituents=",".join(subs)))
    assert result is not None
    result["warnings"] = [str(w.message) for w in caught]
    return result


def chalcogen_intensities(image: np.ndarray, result: dict) -> pd.DataFrame:
    """Normalised intensity of every chalcogen column of an analysed image, with its class.

    The image is smoothed as the detector reads column levels
    (:func:`~napari_atomdefect.core.cells.normalize.site_smoothed`) and sampled at each chalcogen
    site; 0 is the background (hollow sites) and 1 the median chalcogen column of this image.

    Parameters
    ----------
    image : ndarray
        The analysed 2-D frame.
    result : dict
        The final item of ``iter_detect`` on it (``sites``, ``lattice``, ``levels``).

    Returns
    -------
    DataFrame
        ``y_px, x_px, class, intensity``; pristine columns have class ``"chalcogen"``.
    """
    from napari_atomdefect.core.cells.normalize import site_smoothed
    from napari_atomdefect.core.sampling import sample_bilinear

    arr = np.asarray(image, np.float32)
    smoothed = site_smoothed(arr, result["lattice"])
    sites = result["sites"]
    chalc = sites[sites["sublattice"] == "chalcogen"]
    h, w = arr.shape
    inside = chalc[(chalc.y_px >= 1) & (chalc.y_px <= h - 2) & (chalc.x_px >= 1)
                   & (chalc.x_px <= w - 2)]
    levels = result["levels"]
    raw = sample_bilinear(smoothed, inside.y_px.to_numpy(float), inside.x_px.to_numpy(float))
    scale = max(levels.chalcogen - levels.background, 1e-12)
    return pd.DataFrame({"y_px": inside.y_px.to_numpy(), "x_px": inside.x_px.to_numpy(),
                         "class": inside["class"].astype(str).to_numpy(),
                         "intensity": (raw - levels.background) / scale})


def pooled_scores(per_image: list[pd.DataFrame]) -> pd.DataFrame:
    """Sum ``tp, fp, fn, n_true, n_pred`` over images and recompute precision, recall and F1."""
    if not per_image:
        return pd.DataFrame(columns=["tp", "fp", "fn", "n_true", "n_pred", "precision", "recall",
                                     "f1"])
    order: list[str] = []
    for table in per_image:
        order += [c for c in table.index if c not in order]
    cols = ["tp", "fp", "fn", "n_true", "n_pred"]
    total = sum(t[cols].reindex(order, fill_value=0) for t in per_image)
    total = total.astype(int)
    tp, fp, fn = (total[c].astype(float) for c in ("tp", "fp", "fn"))
    total["precision"] = (tp / (tp + fp)).where(tp + fp > 0)
    total["recall"] = (tp / (tp + fn)).where(tp + fn > 0)
    total["f1"] = (2 * tp / (2 * tp + fp + fn)).where(2 * tp + fp + fn > 0)
    return total


def score_image(item: HeldOut, result: dict) -> pd.DataFrame:
    """Per-class scores of one image over the run's classes and every class of its truth."""
    from napari_atomdefect.core.detect.evaluate import score, scored_classes

    pred = result["defects"]
    classes = scored_classes(np.asarray(result["classes"]), pred["class"].to_numpy(),
                             item.truth["class"].to_numpy())
    return score(pred, item.truth, RADIUS_NM / item.pixel_size_nm, classes=classes)


def bench_material(material: str, n_images: int, size: int, seed: int = SEED,
                   model: str | None = None, random_alloys: bool = False,
                   image_substituents: bool = False, all_voltages: bool = False) -> dict:
    """Held-out figures of one material's default model, or of ``model`` (a dict ready for
    JSON)."""
    from napari_atomdefect.core.models.registry import model_classes, model_substituents

    info, why = material_model(material, model)
    if info is None:
        return {"material": material, "skipped": why}
    tables, images = [], []
    t0 = time.time()
    for k in range(n_images):
        item = heldout_image(material, k, size, seed, random_alloys, all_voltages)
        own = tuple(item.substituents) if image_substituents and item.substituents else None
        result = analyse(item, material_model(material, model, own)[0] if own else info, own)
        table = score_image(item, result)
        tables.append(table)
        images.append({"seed": item.seed, "kind": item.kind,
                       "substituents": list(item.substituents or ()),
                       "pixel_size_nm": round(item.pixel_size_nm, 5), "dose": round(item.dose),
                       "n_true": int(len(item.truth)), "n_pred": int(len(result["defects"])),
                       "fit_messages": list(result.get("fit_messages", []))})
    pooled = pooled_scores(tables)
    fitting = pooled_scores([t for t, im in zip(tables, images, strict=True)
                             if not im["fit_messages"]])
    card = info.card
    return {"material": material, "model": info.name, "model_material": card.get("material"),
            "classes": list(model_classes(info)), "substituents": list(model_substituents(info)),
            "command": card.get("command"), "n_images": n_images, "size_px": size,
            "seeds": [seed, seed + n_images - 1], "radius_nm": RADIUS_NM,
            "random_alloys": random_alloys, "image_substituents": image_substituents,
            "all_voltages": all_voltages,
            "simulator_substituents": simulator_places_substituents(),
            "elapsed_s": round(time.time() - t0, 1), "images": images,
            "per_class": {name: _json_row(row) for name, row in pooled.iterrows()},
            "per_class_fitting": {name: _json_row(row) for name, row in fitting.iterrows()}}


def _json_row(row: pd.Series) -> dict:
    """Counts as int, rates rounded (``None`` when undefined)."""
    out = {}
    for key, value in row.items():
        if key in ("precision", "recall", "f1"):
            out[key] = None if pd.isna(value) else round(float(value), 4)
        else:
            out[key] = int(value)
    return out


def format_table(entry: dict) -> str:
    """The per-class figures of one material as aligned text."""
    if "skipped" in entry:
        return f"{entry['material']}: skipped, {entry['skipped']}"
    lines = [f"{entry['material']} — model {entry['model']}, {entry['n_images']} images of "
             f"{entry['size_px']} px, substituents {', '.join(entry['substituents']) or 'none'}",
             f"  {'class':<14}{'n_true':>7}{'n_pred':>7}{'prec':>7}{'recall':>7}{'F1':>7}"]

    def fmt(v) -> str:
        return "    —" if v is None else f"{v:.3f}"

    for name, row in entry["per_class"].items():
        lines.append(f"  {name:<14}{row['n_true']:>7}{row['n_pred']:>7}{fmt(row['precision']):>7}"
                     f"{fmt(row['recall']):>7}{fmt(row['f1']):>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=12)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--material", nargs="+", default=list(HOSTS), choices=HOSTS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--model", help="score this model (name or folder) instead of the default; "
                    "with one --material")
    ap.add_argument("--random-alloys", action="store_true",
                    help="random binomial alloys (one alloying substituent per image, in turn) "
                         "instead of the mixed / single / alloy images")
    ap.add_argument("--image-substituents", action="store_true",
                    help="analyse each image with the substituents it was made with and the "
                         "model `atomdefect detect --substituents` takes for them (without "
                         "--model), as a user who names them, instead of every substituent")
    ap.add_argument("--all-voltages", action="store_true",
                    help="microscopes at any voltage of the training range (60-300 kV) instead "
                         "of the held-out images' five (other images for the same seeds)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.model and len(args.material) != 1:
        ap.error("--model needs exactly one --material")
    out = []
    for material in args.material:
        entry = bench_material(material, args.n_images, args.size, args.seed, args.model,
                               args.random_alloys, args.image_substituents, args.all_voltages)
        out.append(entry)
        print(format_table(entry), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"materials": out}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
