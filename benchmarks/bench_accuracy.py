"""Per-class F1 of the detector next to the near-ideal observer on the same images, and how well its
confidences are calibrated.

Usage:
    python benchmarks/bench_accuracy.py --devset ../shared/data/devset \\
        --ideal-observer ../shared/tools/ideal_observer.py
    python benchmarks/bench_accuracy.py --simulated 12 --ideal-observer ../shared/tools/ideal_observer.py

``--simulated N`` writes N held-out images of the project's own simulator (random microscopes, doses
1e5–2e6 e/Å², pixel sizes 0.010–0.016 nm, seeds never used in training) in the dev-set layout
(``image.npy``, ``image_clean.npy``, ``columns.csv``, ``labels.csv``, ``meta.json``), so that the
external ideal observer (``ideal_observer.py``, given by path, never copied here) can score the same
images. Without ``--ideal-observer`` only the detector's figures are printed.

Printed per class: the detector's pooled precision, recall and F1 (matching radius 0.08 nm), the ideal
observer's F1 and the gap, and the template observer's F1 (the same script's second observer: it
knows the noise-free mean patch of each class in these images but not the site's own patch, so a
column-to-column variation of the noise-free image that nothing around the site predicts is
noise to it as to any real method; see ``bench_column_scatter.py``); then the expected calibration
error (ECE, 10 bins) of the detector's site confidences against the true content of every column,
before (temperature only) and after the card's per-class calibration, also per called class;
finally precision and recall of V_S and O_S at a few operating points (the decision of
``core/detect/decision.py`` applied to the same sites).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("V_S", "V_S2", "O_S", "V_Mo")
RADIUS_NM = 0.08


def write_simulated_set(folder: Path, n: int, seed: int = 900_000, size: int = 256) -> None:
    """``n`` held-out simulated MoS2 images in the dev-set layout."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    for k in range(n):
        rng = np.random.default_rng(seed + k)
        dose = float(10 ** rng.uniform(5.0, np.log10(2e6)))
        px = float(rng.uniform(0.010, 0.016))
        params = MicroscopeParams.random(rng, "MoS2", dose_e_per_A2=dose)
        sim = simulate_image("MoS2", size, px, params=params, seed=seed + k)
        d = folder / f"sim_{k:03d}"
        d.mkdir(parents=True)
        np.save(d / "image.npy", sim.image.astype(np.float32))
        np.save(d / "image_clean.npy", sim.clean.astype(np.float32))
        cls = sim.sites["class"].replace({"metal": "Mo", "chalcogen": "S2"})
        pd.DataFrame({"x_px": sim.sites.x_px, "y_px": sim.sites.y_px, "class": cls}).to_csv(
            d / "columns.csv", index=False, float_format="%.3f")
        defects = sim.sites[~sim.sites["class"].isin(["metal", "chalcogen"])]
        defects[["x_px", "y_px", "class"]].to_csv(d / "labels.csv", index=False,
                                                  float_format="%.3f")
        (d / "meta.json").write_text(json.dumps({"pixel_size_A": px * 10, "dose": dose,
                                                 "seed": seed + k}))


OPERATING_POINTS = ({}, {"O_S": 0.3}, {"O_S": 0.4}, {"O_S": 0.45}, {"O_S": 0.55}, {"O_S": 0.6},
                    {"O_S": 0.7}, {"V_S": 0.4}, {"V_S": 0.6})


def site_truth(sites: pd.DataFrame, columns: pd.DataFrame, radius_px: float) -> np.ndarray:
    """True class of each detected site (nearest true column within ``radius_px``; else None)."""
    from scipy.spatial import cKDTree

    truth_cls = columns["class"].replace({"Mo": "metal", "S2": "chalcogen"}).to_numpy()
    dist, k = cKDTree(columns[["y_px", "x_px"]].to_numpy()).query(
        sites[["y_px", "x_px"]].to_numpy())
    return np.where(dist <= radius_px, truth_cls[np.minimum(k, len(truth_cls) - 1)], None)


def _decided(sites: pd.DataFrame, calibration: dict | None, op: dict,
             classes: tuple[str, ...], run: tuple[str, ...]) -> pd.DataFrame:
    """``sites`` (uncalibrated probabilities over all the model's ``classes``) with ``class`` and
    ``confidence`` as detection of the ``run`` classes would set them with ``calibration`` and
    operating point ``op``."""
    from napari_atomdefect.core.detect.decision import parse_operating_point, site_decisions
    from napari_atomdefect.core.materials.columns import site_choices

    out = sites.copy()
    metal_ch, chalcogen_ch = site_choices(classes)
    for part, choices in (("metal", metal_ch), ("chalcogen", chalcogen_ch)):
        m = (out.sublattice == part).to_numpy()
        p = out.loc[m, [f"p_{c}" for c in choices]].to_numpy(float)
        d = site_decisions(p if part == "metal" else np.zeros((0, len(metal_ch))),
                           p if part == "chalcogen" else np.zeros((0, len(chalcogen_ch))),
                           calibration, parse_operating_point(op), classes=classes,
                           run_classes=run)
        out.loc[m, "class"] = d[f"{part}_class"]
        out.loc[m, "confidence"] = d[f"{part}_conf"]
    return out


def _ece(sites: pd.DataFrame) -> dict:
    from napari_atomdefect.core.detect.decision import expected_calibration_error as ece

    conf, correct = sites.confidence.to_numpy(float), (sites["class"] == sites.truth).to_numpy()
    chalc = (sites.sublattice == "chalcogen").to_numpy()
    called = (~sites["class"].isin(["metal", "chalcogen"])).to_numpy()
    out = {"all sites": ece(conf, correct), "chalcogen sites": ece(conf[chalc], correct[chalc]),
           "defect calls": ece(conf[called], correct[called])}
    for c in CLASSES:
        m = (sites["class"] == c).to_numpy()
        out[f"{c} calls"] = ece(conf[m], correct[m])
    return out


def detector_scores(folder: Path, model: str | None) -> tuple[dict, dict, float]:
    """Pooled per-class tp/fp/fn (``V_S|O_S``: either class counts) per operating point, ECE of
    the site confidences before and after calibration (all sites, chalcogen sites, sites called
    defects, per called class) and seconds per image."""
    from dataclasses import replace

    from napari_atomdefect.core.detect.decision import card_calibration, run_classes
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.models.registry import model_classes, model_substituents, resolve_model
    from napari_atomdefect.core.progress import run_to_end

    info = resolve_model(model, "MoS2")
    calibration = card_calibration(info.card["detector"])
    classes = tuple(model_classes(info))
    run = tuple(run_classes(info.card, "MoS2", None).classes)  # the default substituents (O)
    det = {k: v for k, v in info.card["detector"].items() if k != "calibration"}
    raw = replace(info, card={**info.card, "detector": det})
    totals = {json.dumps(op): {c: {"tp": 0, "fp": 0, "fn": 0} for c in CLASSES + ("V_S|O_S",)}
              for op in OPERATING_POINTS}
    labelled, seconds = {"before": [], "after": []}, []
    for d in sorted(p for p in folder.iterdir() if (p / "image.npy").exists()):
        meta = json.loads((d / "meta.json").read_text())
        px_nm = meta["pixel_size_A"] / 10
        t0 = time.perf_counter()
        result = run_to_end(iter_detect(np.load(d / "image.npy"), px_nm, "MoS2", raw, "auto",
                                        "file", substituents=list(model_substituents(info))))
        seconds.append(time.perf_counter() - t0)
        truth = pd.read_csv(d / "labels.csv")
        sites = result["sites"].assign(truth=site_truth(result["sites"],
                                                        pd.read_csv(d / "columns.csv"),
                                                        RADIUS_NM / px_nm))
        labelled["before"].append(sites[sites.truth.notna()])
        for op in OPERATING_POINTS:
            decided = _decided(sites, calibration, op, classes, run)
            if not op:
                labelled["after"].append(decided[decided.truth.notna()])
            pred = decided[~decided["class"].isin(["metal", "chalcogen"])]
            s = score(pred, truth, RADIUS_NM / px_nm)
            for c, t in totals[json.dumps(op)].items():
                if c in s.index:
                    for key in ("tp", "fp", "fn"):
                        t[key] += int(s.loc[c, key])
    ece = {k: _ece(pd.concat(v, ignore_index=True)) for k, v in labelled.items()}
    return totals, ece, float(np.mean(seconds))


def _pr(t: dict) -> tuple[float, float]:
    return t["tp"] / max(t["tp"] + t["fp"], 1), t["tp"] / max(t["tp"] + t["fn"], 1)


def observer_f1(script: Path, folder: Path) -> dict[str, dict[str, float]]:
    """Run the external observers on ``folder``: per-class F1 of the ``ideal`` observer (knows
    the site's own noise-free patch) and of the ``template`` observer (knows the noise-free mean
    patch of every class in these very images, not the site's own)."""
    out = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True,
                         text=True, check=True).stdout
    found = {}
    for key in ("ideal", "template"):
        line = next((x for x in out.splitlines() if x.startswith(f"{key} observer")), "")
        found[key] = {c: float(v) for c, v in re.findall(r"(\w+)=([0-9.]+)", line)}
    return found


def f1(t: dict) -> float:
    return 2 * t["tp"] / max(2 * t["tp"] + t["fp"] + t["fn"], 1)


def report(name: str, folder: Path, model: str | None, observer: Path | None) -> None:
    all_totals, ece, sec = detector_scores(folder, model)
    totals = all_totals[json.dumps({})]
    observers = observer_f1(observer, folder) if observer else {"ideal": {}, "template": {}}
    ideal, template = observers["ideal"], observers["template"]
    print(f"\n{name}: {len(list(folder.glob('*/image.npy')))} images, {sec:.2f} s per image")
    print(f"{'class':8s} {'n_true':>6s} {'P':>6s} {'R':>6s} {'F1':>6s} {'ideal':>6s} {'gap':>6s}"
          f" {'templ.':>6s}")
    for c, t in totals.items():
        n_true = t["tp"] + t["fn"]
        p, r = _pr(t)
        i, tp = ideal.get(c), template.get(c)
        tail = f" {i:6.3f} {i - f1(t):6.3f}" if i is not None else ""
        tail += f" {tp:6.3f}" if tp is not None else ""
        print(f"{c:8s} {n_true:6d} {p:6.3f} {r:6.3f} {f1(t):6.3f}{tail}")
    for when, e in ece.items():
        print(f"ECE of site confidences {when} calibration: "
              + ", ".join(f"{k} {v:.3f}" for k, v in e.items()))
    print("\noperating point          V_S P  V_S R  O_S P  O_S R  V_S|O_S F1")
    for op in OPERATING_POINTS:
        t = all_totals[json.dumps(op)]
        label = ",".join(f"{k}={v}" for k, v in op.items()) or "neutral (0.5)"
        (vp, vr), (op_, or_) = _pr(t["V_S"]), _pr(t["O_S"])
        print(f"{label:24s} {vp:6.3f} {vr:6.3f} {op_:6.3f} {or_:6.3f} {f1(t['V_S|O_S']):8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", type=Path, help="a folder of abTEM images in the dev-set layout")
    ap.add_argument("--simulated", type=int, default=0, help="held-out images of our simulator")
    ap.add_argument("--ideal-observer", type=Path, help="path to ideal_observer.py (not copied)")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    if args.devset:
        report(f"dev set {args.devset}", args.devset, args.model, args.ideal_observer)
    if args.simulated:
        with tempfile.TemporaryDirectory() as tmp:
            write_simulated_set(Path(tmp), args.simulated)
            report("held-out simulated MoS2 (doses 1e5–2e6 e/Å²)", Path(tmp), args.model,
                   args.ideal_observer)


if __name__ == "__main__":
    main()
