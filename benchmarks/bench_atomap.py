"""The detector beside the classical atomap pipeline (``atomap_baseline.py``): F1 and time.

Each image folder holds ``image.npy``, ``meta.json`` (``pixel_size_A``) and ``labels.csv``
(``x_px, y_px, class``: the dev-set layout, as ``make_multislice_set.py`` writes it). Run the
baseline first in its own venv (see ``atomap_baseline.py``), then, with the package's venv::

    python benchmarks/bench_atomap.py --atomap PRED_DIR --set NAME DIR [DIR ...] \\
        [--set NAME DIR ...] [--repeat 3]
    python benchmarks/bench_atomap.py --make-1024 OUT_DIR   # a 1024² simulated MoS2 folder

The detector runs in-process on each image (one warm-up call, then the median of ``--repeat``
timed calls, model loaded); both pipelines' calls are scored with the package's scorer
(0.08 nm), pooled per set, and the wall times per image are printed side by side with the
baseline's ``times.json``. Run the two on the same machine back to back, quiet or loaded alike.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ["V_S", "O_S", "V_S2", "V_Mo", "V_S|O_S"]
RADIUS_NM = 0.08


def make_1024(out: Path, seed: int = 7) -> None:
    """A 1024² simulated MoS2 image at 0.0125 nm/px in the dev-set layout."""
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 1024, 0.0125, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "image.npy", sim.image.astype(np.float32))
    (out / "meta.json").write_text(json.dumps({"pixel_size_A": 0.125, "seed": seed}))
    sim.defects[["x_px", "y_px", "class"]].to_csv(out / "labels.csv", index=False)


def run_detector(dirs: list[Path], repeat: int) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """The detector's calls and median wall time per image folder."""
    from napari_atomdefect.core.detect.detect import detect

    calls, times = {}, {}
    warnings.simplefilter("ignore")  # (the images' notes: not what this script measures)
    for d in dirs:
        img = np.load(d / "image.npy").astype(np.float32)
        px_nm = json.loads((d / "meta.json").read_text())["pixel_size_A"] / 10
        detect(img, pixel_size_nm=px_nm, material="MoS2", device="cpu")  # warm-up
        walls = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            calls[d.name] = detect(img, pixel_size_nm=px_nm, material="MoS2", device="cpu")
            walls.append(time.perf_counter() - t0)
        times[d.name] = float(np.median(walls))
    return calls, times


def pooled_f1(calls: dict[str, pd.DataFrame], dirs: list[Path]) -> pd.Series:
    """Per-class F1 over the images of a set (matches summed over the images)."""
    from napari_atomdefect.core.detect.evaluate import score

    total = None
    for d in dirs:
        px_nm = json.loads((d / "meta.json").read_text())["pixel_size_A"] / 10
        s = score(calls[d.name], pd.read_csv(d / "labels.csv"), RADIUS_NM / px_nm,
                  classes=["V_S", "V_S2", "O_S", "V_Mo"])
        s = s[["tp", "fp", "fn"]].reindex(CLASSES).fillna(0)
        total = s if total is None else total + s
    return 2 * total.tp / (2 * total.tp + total.fp + total.fn).clip(lower=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atomap", type=Path, help="the baseline's output folder")
    parser.add_argument("--set", nargs="+", action="append", default=[], metavar="NAME DIR",
                        help="a set's name and its image folders (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--make-1024", type=Path, help="write a 1024² simulated image folder")
    args = parser.parse_args()
    if args.make_1024:
        make_1024(args.make_1024)
        print(f"wrote {args.make_1024}")
        return
    if args.atomap is None or not args.set:
        parser.error("--atomap and at least one --set are needed")
    baseline_times = json.loads((args.atomap / "times.json").read_text())
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'set':20s} {'pipeline':8s} " + " ".join(f"{c:>8s}" for c in CLASSES)
          + f" {'s/image':>9s}")
    for name, *folders in args.set:
        dirs = [Path(f) for f in folders]
        ours, ours_t = run_detector(dirs, args.repeat)
        base = {d.name: pd.read_csv(args.atomap / f"{d.name}.csv") for d in dirs}
        base_t = float(np.mean([baseline_times[d.name]["wall"] for d in dirs]))
        mean_t = float(np.mean(list(ours_t.values())))
        for label, calls, t in (("atomap", base, base_t), ("detector", ours, mean_t)):
            f1 = pooled_f1(calls, dirs)
            print(f"{name:20s} {label:8s} " + " ".join(f"{f1[c]:8.3f}" for c in CLASSES)
                  + f" {t:9.3f}")
        print(f"{name:20s} {'ratio':8s} {'':>{9 * len(CLASSES) - 1}s} {base_t / mean_t:8.0f}×")


if __name__ == "__main__":
    main()
