"""Reference simulated scenarios shared by the tests and the benchmarks.

``SHIFTED_MICROSCOPE`` is a microscope outside the bundled model's training range in noise, blur and
distortion: a broad probe with a strong, broad tail (0.35 of the intensity at 0.7 nm FWHM), strong
scan jitter and a high background. Its column physics is ordinary (a ``V_S`` column is ~0.51 and an
``O_S`` column ~0.62 of a pristine chalcogen column), so a model adapted to it *can* tell the classes
apart — a scenario whose classes no classifier can separate would not measure fine-tuning.

Two more microscopes keep the benchmark from judging the defaults on one case only:
``sharp_noisy`` (fine probe, low dose, strong line noise and jitter, a brighter oxygen) and
``blur_clean`` (broad probe with a tail, high dose, little noise).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from napari_atomdefect.core.simulate.image import MicroscopeParams, SimulatedImage, simulate_image

SHIFTED_MICROSCOPE = dict(probe_fwhm_nm=0.12, tail_fraction=0.35, tail_fwhm_nm=0.7, line_noise=0.03,
                          dose_e_per_A2=1e5, row_jitter_nm=0.01, second_atom_factor=0.95,
                          light_ratio=0.25, background=0.25)
#: All reference microscopes by name (simulator parameters).
SCENARIOS = {
    "shifted": SHIFTED_MICROSCOPE,
    "sharp_noisy": dict(probe_fwhm_nm=0.075, tail_fraction=0.1, tail_fwhm_nm=0.4, line_noise=0.05,
                        dose_e_per_A2=3e4, row_jitter_nm=0.015, second_atom_factor=0.85,
                        light_ratio=0.4, background=0.1),
    "blur_clean": dict(probe_fwhm_nm=0.10, tail_fraction=0.2, tail_fwhm_nm=0.5, line_noise=0.01,
                       dose_e_per_A2=5e5, row_jitter_nm=0.005, second_atom_factor=0.9,
                       light_ratio=0.3, background=0.15),
}
#: Defect fractions of the scenario's images.
SHIFTED_FRACTIONS = {"V_S": 0.06, "V_S2": 0.03, "O_S": 0.05, "V_Mo": 0.03}
SHIFTED_PIXEL_SIZE_NM = 0.012


def shifted_image(seed: int, size: int = 384, scenario: str = "shifted") -> SimulatedImage:
    """One image of a reference microscope (default :data:`SHIFTED_MICROSCOPE`; MoS2, 0.012 nm
    pixels)."""
    return simulate_image("MoS2", size, SHIFTED_PIXEL_SIZE_NM,
                          params=MicroscopeParams(**SCENARIOS[scenario]), seed=seed,
                          defect_fractions=SHIFTED_FRACTIONS)


def pooled_scores(model, sims: list[SimulatedImage],
                  radius_nm: float = 0.08) -> tuple[pd.Series, dict]:
    """Per-class F1 of ``model`` over several simulated images (counts pooled before the ratio),
    and the corrections a user would need to make (:func:`.evaluate.corrections_needed`, summed).
    """
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import corrections_needed, score

    tot, edits = None, {}
    for sim in sims:
        found = detect(sim.image, sim.pixel_size_nm, model=model)
        radius = radius_nm / sim.pixel_size_nm
        s = score(found, sim.defects, radius)
        tot = s[["tp", "fp", "fn"]] if tot is None else tot + s[["tp", "fp", "fn"]]
        for k, v in corrections_needed(found, sim.defects, radius).items():
            edits[k] = edits.get(k, 0) + v
    return 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn), edits


def pooled_f1(model, sims: list[SimulatedImage], radius_nm: float = 0.08) -> pd.Series:
    """Per-class F1 of ``model`` over several simulated images (counts pooled before the ratio)."""
    return pooled_scores(model, sims, radius_nm)[0]


def holey_image(seed: int = 3, size: int = 768, pixel_size_nm: float = 0.012,
                hole: tuple[float, float, float] = (250.0, 250.0, 110.0),
                amorphous: tuple[float, float, float] = (560.0, 520.0, 120.0),
                dose_e_per_A2: float = 5e5) -> tuple[SimulatedImage, np.ndarray]:
    """A simulated MoS2 image with a hole (vacuum: the columns gone, the background left) and a
    patch of amorphous material (the crystal's signal nearly gone under random blobs), each
    ``(row, col, radius)`` in pixels. Returns the simulation (its labels cover the whole field)
    and the noisy image (float32)."""
    from scipy import ndimage

    sim = simulate_image("MoS2", size, pixel_size_nm, MicroscopeParams(dose_e_per_A2=dose_e_per_A2),
                         seed=seed, rotation_deg=17.0)
    rng = np.random.default_rng(seed)
    clean = sim.clean.astype(np.float64)
    yy, xx = np.mgrid[:size, :size]
    bg = float(np.percentile(clean, 2))
    in_hole = (yy - hole[0]) ** 2 + (xx - hole[1]) ** 2 < hole[2] ** 2
    in_amorphous = (yy - amorphous[0]) ** 2 + (xx - amorphous[1]) ** 2 < amorphous[2] ** 2
    blobs = np.zeros_like(clean)
    pts = rng.integers(0, size, (int(0.01 * size * size), 2))
    blobs[pts[:, 0], pts[:, 1]] = 1.0
    blobs = ndimage.gaussian_filter(blobs, 3.0)
    blobs *= 0.5 * (np.percentile(clean, 99) - bg) / max(blobs[in_amorphous].max(), 1e-12)
    clean = np.where(in_hole, 0.3 * bg, clean)
    clean = np.where(in_amorphous, 0.15 * clean + bg + blobs, clean)
    return sim, rng.poisson(np.maximum(clean, 0.0)).astype(np.float32)


def bicrystal_image(seed: int = 1, size: int = 512, pixel_size_nm: float = 0.012,
                    rotations_deg: tuple[float, float] = (5.0, 23.0), boundary_col: int = 256,
                    dose_e_per_A2: float = 5e5) -> tuple[SimulatedImage, SimulatedImage, np.ndarray]:
    """Two MoS2 grains at different orientations meeting along a vertical boundary at column
    ``boundary_col``: the left grain from the first simulation, the right from the second (the
    same microscope). Returns both simulations and the image (float32)."""
    params = MicroscopeParams.random(np.random.default_rng(seed), "MoS2",
                                     dose_e_per_A2=dose_e_per_A2)
    left = simulate_image("MoS2", size, pixel_size_nm, params=params, seed=seed,
                          rotation_deg=rotations_deg[0])
    right = simulate_image("MoS2", size, pixel_size_nm, params=params, seed=seed + 1,
                           rotation_deg=rotations_deg[1])
    image = left.image.astype(np.float32).copy()
    image[:, boundary_col:] = right.image[:, boundary_col:]
    return left, right, image


def bench_materials():
    """The ``benchmarks/bench_materials.py`` module (one source of the held-out images of every
    host), loaded once."""
    if "bench_materials" in sys.modules:
        return sys.modules["bench_materials"]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_materials.py"
    spec = importlib.util.spec_from_file_location("bench_materials", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_materials"] = module
    spec.loader.exec_module(module)
    return module
