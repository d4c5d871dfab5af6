"""Benchmark detection: per-class F1 and seconds per image on the dev set, speed and memory.

Usage:
    python benchmarks/bench_detect.py --devset ../shared/data/devset [--model NAME] [--radius-nm 0.08]
    python benchmarks/bench_detect.py --simulated 30     # held-out images of random microscopes
    python benchmarks/bench_detect.py --speed            # 1024^2 time and 4096^2 peak memory

The dev set (abTEM multislice MoS2 with labels) is for measuring only: nothing is tuned on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def devset(folder: Path, model: str | None, radius_nm: float) -> None:
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score

    rows, totals = [], []
    for d in sorted(p for p in folder.iterdir() if (p / "image.npy").exists()):
        image = np.load(d / "image.npy")
        meta = json.loads((d / "meta.json").read_text())
        px_nm = meta["pixel_size_A"] / 10
        truth = pd.read_csv(d / "labels.csv")
        t0 = time.perf_counter()
        result = None
        for item in iter_detect(image, px_nm, "MoS2", model, "auto", "file"):
            result = item
        dt = time.perf_counter() - t0
        pred = result["defects"]
        s = score(pred, truth, radius_nm / px_nm)
        totals.append(s[["tp", "fp", "fn"]])
        rows.append((d.name, meta["args"]["dose"], meta["pixel_size_A"], len(truth), len(pred), dt,
                     *[s.loc[c, "f1"] for c in ("V_S", "V_S2", "O_S", "V_Mo", "V_S|O_S")]))
    table = pd.DataFrame(rows, columns=["image", "dose", "px_A", "n_true", "n_pred", "seconds",
                                        "F1 V_S", "F1 V_S2", "F1 O_S", "F1 V_Mo", "F1 V_S|O_S"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    tot = sum(totals)
    f1 = 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn)
    print("\npooled over the dev set (tp, fp, fn summed):")
    print(pd.DataFrame({"tp": tot.tp, "fp": tot.fp, "fn": tot.fn, "F1": f1}).to_string(
        float_format=lambda v: f"{v:.3f}"))
    print(f"mean seconds per image: {table.seconds.mean():.2f}")


def simulated(n_images: int, model: str | None, radius_nm: float) -> None:
    """Held-out images of the project's simulator (random microscopes, seeds never used in
    training): per-class F1 and the fraction of column sites that were classified at all."""
    from scipy.spatial import cKDTree

    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.progress import run_to_end
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    totals, found, n_sites, invented = [], 0, 0, 0
    for k in range(n_images):
        rng = np.random.default_rng(7000 + k)
        px_nm = float(rng.choice([0.012, 0.015]))
        sim = simulate_image("MoS2", 256, px_nm, params=MicroscopeParams.random(rng, "MoS2"),
                             seed=8000 + k, defect_fractions={"V_S": 0.04, "V_S2": 0.02,
                                                              "O_S": 0.03, "V_Mo": 0.02})
        result = run_to_end(iter_detect(sim.image, px_nm, "MoS2", model))
        sites = result["sites"][["y_px", "x_px"]].to_numpy()
        truth = sim.sites[["y_px", "x_px"]].to_numpy()
        found += int((cKDTree(sites).query(truth)[0] < radius_nm / px_nm).sum())
        invented += int((cKDTree(truth).query(sites)[0] >= radius_nm / px_nm).sum())
        n_sites += len(truth)
        totals.append(score(result["defects"], sim.defects, radius_nm / px_nm)[["tp", "fp", "fn"]])
    tot = sum(totals)
    f1 = 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn)
    print(f"{n_images} simulated 256 x 256 images (random microscopes, 0.012/0.015 nm/px):")
    print(pd.DataFrame({"tp": tot.tp, "fp": tot.fp, "fn": tot.fn, "F1": f1}).to_string(
        float_format=lambda v: f"{v:.3f}"))
    print(f"column sites classified: {found}/{n_sites} ({found / n_sites:.1%}); "
          f"sites with no column: {invented}")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    return float("nan")


def speed_child(path: str, model: str | None) -> None:
    from napari_atomdefect.core.detect.detect import detect

    image = np.load(path)
    detect(image[:512, :512], 0.012, "MoS2", model)  # load the model once (not timed)
    times = []
    for _ in range(2 if image.shape[0] <= 1024 else 1):
        t0 = time.perf_counter()
        table = detect(image, 0.012, "MoS2", model)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"size": image.shape[0], "seconds": min(times), "n": len(table),
                      "peak_rss_mb": _peak_rss_mb()}))


def speed(model: str | None) -> None:
    import tempfile

    from napari_atomdefect.core.simulate.image import simulate_image

    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    for size in (1024, 4096):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "image.npy"
            np.save(path, simulate_image("MoS2", size, 0.012, seed=0).image)
            cmd = [sys.executable, __file__, "--speed-child", str(path)]
            if model:
                cmd += ["--model", model]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{size}x{size}: detect {r['seconds']:.2f} s (model loaded), {r['n']} defects, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--radius-nm", type=float, default=0.08)
    parser.add_argument("--simulated", type=int, default=0, metavar="N",
                        help="score N held-out simulated images")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--speed-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed_child:
        speed_child(args.speed_child, args.model)
        return
    if args.devset:
        devset(args.devset, args.model, args.radius_nm)
    if args.simulated:
        simulated(args.simulated, args.model, args.radius_nm)
    if args.speed:
        speed(args.model)
    if not (args.devset or args.speed or args.simulated):
        parser.error("give --devset PATH, --simulated N and/or --speed")


if __name__ == "__main__":
    main()
