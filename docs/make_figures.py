"""Regenerate the figures of docs/foundation.md.

Usage: python docs/make_figures.py [--shared ../shared/data]

The real-image figure needs the development data folder (a real WS2/WSSe image); the others are
made from the built-in simulator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.io import imsave

from napari_atomdefect.core.cells.tiles import tile_cells
from napari_atomdefect.core.io.image import read_image
from napari_atomdefect.core.io.preview import overlay, to_display
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

OUT = Path(__file__).resolve().parent / "images"


def crop_markers(markers: dict, r0: int, c0: int, size: int) -> dict:
    out = {}
    for k, pts in markers.items():
        p = np.asarray(pts, float) - [r0, c0]
        out[k] = p[(p >= -2).all(1) & (p < size + 2).all(1)]
    return out


def real_figure(shared: Path) -> None:
    files = sorted((shared / "real").glob("Partially_converted*.tif"))
    if not files:
        print("no real images found; skipped")
        return
    img = read_image(files[-1])
    lat = find_lattice(img.data, "WS2", pixel_size_nm=img.pixel_size_nm, calibration="file")
    r0, c0, size = 200, 200, 320
    crop = img.data[r0:r0 + size, c0:c0 + size]
    marks = crop_markers({"metal": lat.metal_sites_px, "chalcogen": lat.chalcogen_sites_px},
                         r0, c0, size)
    imsave(OUT / "lattice_real_ws2.png", overlay(crop, marks, radius=5, zoom=2),
           check_contrast=False)
    print("real:", lat.to_dict(sites=False))


def simulated_figures() -> None:
    sim = simulate_image("MoS2", 512, 0.012, seed=0)
    imsave(OUT / "sample_mos2.png", overlay(sim.image, {
        c: sim.defects[sim.defects["class"] == c][["y_px", "x_px"]].to_numpy()
        for c in ("V_S", "V_S2", "O_S", "V_Mo")}, radius=6, zoom=1), check_contrast=False)
    params = MicroscopeParams(shear=0.03, y_stretch=0.02, drift_nm=0.03, dose_e_per_A2=3e5)
    sim = simulate_image("MoS2", 512, 0.012, params=params, seed=1, rotation_deg=21)
    lat = find_lattice(sim.image, "MoS2")
    tiles = tile_cells(sim.image, lat, min_inside=1.0)
    s = tiles.spec.size_px
    side = 8
    mont = np.ones((side * (s + 2), side * (s + 2)), np.float32)
    for k in range(side * side):
        r, c = divmod(k, side)
        mont[r * (s + 2):r * (s + 2) + s, c * (s + 2):c * (s + 2) + s] = to_display(tiles.tiles[k])
    mont = np.kron(mont, np.ones((2, 2)))
    mean = np.kron(to_display(tiles.tiles.mean(0)), np.ones((8, 8)))
    imsave(OUT / "cells_montage.png", (mont * 255).astype(np.uint8), check_contrast=False)
    imsave(OUT / "cells_mean.png", (mean * 255).astype(np.uint8), check_contrast=False)
    imsave(OUT / "lattice_simulated_distorted.png",
           overlay(sim.image[:256, :256], crop_markers(
               {"metal": lat.metal_sites_px, "chalcogen": lat.chalcogen_sites_px}, 0, 0, 256),
               radius=5, zoom=2), check_contrast=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    simulated_figures()
    real_figure(args.shared)


if __name__ == "__main__":
    main()
