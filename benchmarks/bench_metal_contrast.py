"""Metal over host-chalcogen column contrast of noise-free multislice images against the
simulator's best estimate for the same microscope (issues #13, #14).

Usage:
    python benchmarks/bench_metal_contrast.py ../shared/data/devset /work/ms/random_materials

For every image folder in the dev-set layout (``image_clean.npy``, ``columns.csv``,
``meta.json`` with the microscope in ``args``: ``kv`` or ``energy``, ``detector`` or
``haadf_inner``/``haadf_outer``, ``configs`` or ``frozen_phonons``) the lattice is found on the
noise-free image, the image is prepared as detection prepares it (hollow-site background
flattened, :func:`napari_atomdefect.core.cells.normalize.prepare_image`) and the median level of
the true metal columns and of the true pristine host-chalcogen columns are read where the
detector reads them (the same smoothing as the image context,
:func:`~napari_atomdefect.core.cells.normalize.image_context`). Printed per image: that ratio, the
simulator's ratio of column weights at the image's voltage and detector (at rest or with
phonons, the multislice/model factors at the middle of their ranges:
:func:`~napari_atomdefect.core.materials.physics.column_physics`), their quotient, and the same
for a single host atom (``V_X`` over the host column) where the image has such columns; then the
quotient's spread per host. A quotient above 1 means the images read the metal brighter than
the simulator's best estimate: the range :data:`~napari_atomdefect.core.materials.physics.
IMAGE_METAL_EXCESS` rests on these figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))


def microscope(meta: dict) -> tuple[float, float, float, float]:
    """``(kV, inner mrad, outer mrad, thermal damping)`` of a generator's ``meta.json``."""
    a = meta.get("args", {})
    kv = float(a["kv"]) if "kv" in a else float(a["energy"]) / 1000.0
    if "detector" in a:
        inner, outer = (float(v) for v in str(a["detector"]).split("-"))
    else:
        inner, outer = float(a["haadf_inner"]), float(a["haadf_outer"])
    phonons = int(a.get("configs", a.get("frozen_phonons", 0)) or 0)
    return kv, inner, outer, 1.0 if phonons > 0 else 0.0


def measure(folder: Path) -> dict:
    """The measured and simulated contrasts of one image folder."""
    from napari_atomdefect.core.cells.normalize import prepare_image, site_values
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.materials.materials import get_material
    from napari_atomdefect.core.materials.physics import column_physics
    from napari_atomdefect.core.simulate.image import MicroscopeParams, column_weight

    meta = json.loads((folder / "meta.json").read_text())
    mat = get_material(meta.get("material", "MoS2"))
    image = np.load(folder / "image_clean.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fit notes of a noise-free image are not the point here
        lattice = find_lattice(image, mat.name, meta["pixel_size_A"] / 10, calibration="file")
    prepared = prepare_image(image, lattice)
    columns = pd.read_csv(folder / "columns.csv")
    bg = prepared.levels.background

    def level(cls: str) -> float:
        pts = columns.loc[columns["class"] == cls, ["y_px", "x_px"]].to_numpy(float)
        if len(pts) == 0:
            return float("nan")
        return float(np.median(site_values(prepared.smoothed, pts, 2.0))) - bg

    host = level(f"{mat.chalcogen}2")
    kv, inner, outer, damping = microscope(meta)
    phys = column_physics(mat, kv, inner, outer, thermal_damping=damping)
    params = MicroscopeParams(**{k: v for k, v in phys.items()
                                 if k not in ("detector", "thermal_damping")})
    host_weight = column_weight("chalcogen", "chalcogen", params, mat)
    measured = level(mat.metal) / host
    simulated = column_weight("metal", "metal", params, mat) / host_weight
    single = f"V_{mat.chalcogen}"
    return {"image": folder.name, "host": mat.name, "kV": round(kv, 1),
            "detector": f"{inner:.0f}-{outer:.0f}", "at_rest": damping == 0.0,
            "metal_measured": round(measured, 3), "metal_simulated": round(simulated, 3),
            "metal_quotient": round(measured / simulated, 3),
            "single_measured": round(level(single) / host, 3),
            "single_simulated": round(column_weight(single, "chalcogen", params, mat)
                                      / host_weight, 3)}


def image_folders(paths: list[Path]) -> list[Path]:
    """Every folder holding ``meta.json`` and ``image_clean.npy`` among or under ``paths``."""
    out = []
    for p in paths:
        cands = [p] if (p / "meta.json").exists() else sorted(q for q in p.iterdir() if q.is_dir())
        out += [q for q in cands if (q / "meta.json").exists() and (q / "image_clean.npy").exists()]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    rows = pd.DataFrame([measure(f) for f in image_folders(args.folders)])
    if rows.empty:
        print("no image folders found")
        return 1
    pd.set_option("display.width", 200)
    print(rows.to_string(index=False))
    print("\nmetal quotient (measured / simulated) per host:")
    print(rows.groupby("host")["metal_quotient"].describe()[["count", "min", "50%", "max"]]
          .to_string())
    if args.json:
        args.json.write_text(rows.to_json(orient="records", indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
