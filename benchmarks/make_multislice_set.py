"""Make labelled multislice (abTEM) HAADF images of any of the four hosts, alloys included.

Issues #13/#14: the detectors are trained on the project's fast simulator; this script makes
images of an *independent* simulator — PRISM multislice with Lobato potentials, atoms at rest or
frozen phonons — to measure them on (``benchmarks/bench_multislice.py``), for every material and
substituent, not only the MoS2 of ``../shared/data/devset``. Nothing here is used for training.

Each image folder has the dev-set layout (``../shared/data/README.md``):

- ``image.npy`` (float32, detected electrons per pixel: Poisson and Gaussian read noise),
  ``image_clean.npy`` (the expected image);
- ``labels.csv`` — ``x_px, y_px, class`` of every defect and substituted column in the field of
  view (classes named as the package names them: ``V_S``, ``V_S2``, ``Se_S``, ``Se2_S2``,
  ``V_W``, ``S_Se``, ``Te2_Se2``, …; pixel centres at integers);
- ``columns.csv`` — every column with its class (``Mo``/``W``, ``S2``/``Se2`` or a defect class);
- ``meta.json`` — ``pixel_size_A``, ``material``, ``substituents`` and every parameter.

What is drawn (per image, from ``--seed``): which columns hold a defect or a substituent
(``--defect-fraction`` of the chalcogen sites for vacancies and the light substituent, ``--metal-
vacancies`` of the metal sites, and an alloy with a per-atom substituent fraction ``--alloy``), the
lattice rotation, the scan jitter and drift. Columns that are not classes of the package (one
substituent beside a vacancy, two light atoms) are not made.

The specimen is an orthogonal supercell, periodic, so the whole scanned field is the image; it is
scanned at about the Nyquist step, Fourier-interpolated, blurred by the effective source, and
resampled onto the output pixels with the lattice rotated and the scan distorted (per-row jitter,
smooth drift of the rows), then a smooth background and noise are added.

Usage (abTEM in its own venv, see ``bench_column_contrast.py``)::

    OMP_NUM_THREADS=2 /work/abtem-venv/bin/python benchmarks/make_multislice_set.py \\
        --material WS2 --substituents Se --alloy 0.3 --seed 1 --out /tmp/ms/ws2_se_1
    OMP_NUM_THREADS=2 /work/abtem-venv/bin/python benchmarks/make_multislice_set.py \\
        --plan materials --size-nm 3.5 --out /tmp/ms/materials
    # about 1 min per 3 nm image on two CPU cores (static potential, PRISM f = 3); frozen
    # phonons cost one run per configuration
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from bench_column_contrast import PRESETS, SIGMAS, lattice_sites  # noqa: E402

#: Light substituent of each host chalcogen.
LIGHT = {"S": "O", "Se": "S"}


def class_name(host: str, atoms: tuple[str | None, str | None]) -> str:
    """The package's name for a chalcogen column holding ``atoms`` (entrance, exit)."""
    present = [x for x in atoms if x is not None]
    subs = [x for x in present if x != host]
    if len(present) == 2 and not subs:
        return f"{host}2"
    if len(present) == 1 and not subs:
        return f"V_{host}"
    if not present:
        return f"V_{host}2"
    if len(subs) == 1 and len(present) == 2:
        return f"{subs[0]}_{host}"
    if len(subs) == 2 and subs[0] == subs[1]:
        return f"{subs[0]}2_{host}2"
    raise ValueError(f"column {atoms} is not a class")


def draw_columns(n_chalc: int, host: str, substituents: list[str], alloy: float,
                 defect_fraction: float, rng: np.random.Generator,
                 janus: bool = False) -> list[tuple]:
    """What every chalcogen column holds, ``(entrance atom, exit atom)``; ``None`` = missing.

    An alloy first: each atom independently becomes the alloying element — the first chosen
    substituent other than O, which the package never pairs — with probability ``alloy``
    (``janus``: only the entrance layer's atoms, as in a layer converted from one side). Then
    ``defect_fraction`` of the columns that are still pristine get a defect: one atom missing
    (half), both missing (a sixth), one light substituent (a third, when it is chosen).
    """
    alloy_el = next((d for d in substituents if d != "O"), None)
    cols: list[tuple] = []
    for _ in range(n_chalc):
        pair = (host, host)
        if alloy_el is not None and alloy > 0:
            pair = tuple(alloy_el if (layer == 0 or not janus) and rng.random() < alloy else host
                         for layer in range(2))
        cols.append(pair)
    pristine = [i for i, c in enumerate(cols) if c == (host, host)]
    n_def = int(round(defect_fraction * len(pristine)))
    light_ok = LIGHT[host] in substituents
    kinds = ["V_X", "V_X2"] + (["D_light"] if light_ok else [])
    weights = np.array([0.5, 1 / 6] + ([1 / 3] if light_ok else []))
    for i in rng.choice(pristine, size=min(n_def, len(pristine)), replace=False):
        kind = rng.choice(kinds, p=weights / weights.sum())
        side = int(rng.integers(2))
        pair = [host, host]
        if kind == "V_X":
            pair[side] = None
        elif kind == "V_X2":
            pair = [None, None]
        else:
            pair[side] = LIGHT[host]
        cols[i] = tuple(pair)
    return cols


def build_atoms(material: str, nx: int, ny: int, columns: list[tuple], metal_vacant: set[int]):
    """ASE atoms of the supercell with the given chalcogen columns and metal vacancies."""
    from ase import Atoms

    p = PRESETS[material]
    metal, chalc, _, cell = lattice_sites(p, nx, ny)
    z0 = 2.0 + p.dz / 2
    symbols, positions = [], []
    for i, (x, y) in enumerate(metal):
        if i not in metal_vacant:
            symbols.append(p.metal)
            positions.append((x, y, z0))
    for (x, y), (top, bottom) in zip(chalc, columns, strict=True):
        for el, z in ((top, z0 - p.dz / 2), (bottom, z0 + p.dz / 2)):
            if el is not None:
                symbols.append(el)
                positions.append((x, y, z))
    return Atoms(symbols, positions=positions, cell=(cell[0], cell[1], 2 * z0), pbc=True)


def multislice(atoms, kv: float, convergence: float, detector: tuple[float, float],
               configs: int, scan_step: float, pot_sampling: float, prism_f: int,
               seed: int) -> np.ndarray:
    """HAADF signal (fraction of the beam) on a periodic scan grid, rows = y, columns = x."""
    import abtem
    import dask

    dask.config.set(scheduler="synchronous")
    cell = (float(atoms.cell[0, 0]), float(atoms.cell[1, 1]))
    specimen = atoms
    if configs > 0:
        sig = {el: SIGMAS[el] for el in set(atoms.get_chemical_symbols())}
        specimen = abtem.FrozenPhonons(atoms, num_configs=configs, sigmas=sig, seed=seed)
    unit = 16 * prism_f  # FFT-friendly, and divisible by the PRISM interpolation
    gpts = tuple(int(math.ceil(c / pot_sampling / unit) * unit) for c in cell)
    pot = abtem.Potential(specimen, gpts=gpts, slice_thickness=1.0, parametrization="lobato",
                          projection="infinite")
    smatrix = abtem.SMatrix(semiangle_cutoff=convergence, energy=kv * 1e3, potential=pot,
                            interpolation=prism_f)
    n = [max(8, int(math.ceil(c / scan_step))) for c in cell]
    scan = abtem.GridScan(start=(0, 0), end=cell, gpts=n, endpoint=False)
    det = abtem.AnnularDetector(inner=detector[0], outer=detector[1])
    meas = smatrix.scan(scan=scan, detectors=[det], lazy=False)
    meas = meas[0] if isinstance(meas, list) else meas
    return np.asarray(meas.array, np.float64).T  # abTEM is (x, y)


def fourier_upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Periodic band-limited interpolation by an integer factor (zero-padded spectrum)."""
    h, w = image.shape
    spec = np.fft.fftshift(np.fft.fft2(image))
    big = np.zeros((h * factor, w * factor), complex)
    r0, c0 = (h * factor - h) // 2, (w * factor - w) // 2
    big[r0:r0 + h, c0:c0 + w] = spec
    return np.real(np.fft.ifft2(np.fft.ifftshift(big))) * factor**2


def gaussian_blur_periodic(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of a periodic image through its spectrum."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    kernel = np.exp(-2 * np.pi**2 * sigma_px**2 * (ky**2 + kx**2))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * kernel))


def smooth_1d(n: int, corr: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve of unit standard deviation over ``n`` samples."""
    from scipy.ndimage import gaussian_filter1d

    v = gaussian_filter1d(rng.standard_normal(n + 200), corr, mode="wrap")[100:-100]
    return v / (v.std() + 1e-12)


def render(fine: np.ndarray, fine_step: float, pixel: float, fov: float, rotation_deg: float,
           jitter: float, drift: float, rng: np.random.Generator):
    """Resample the periodic fine image onto ``fov``-wide output pixels, lattice rotated and scan
    distorted. Returns the image and the map from specimen (x, y) Å to output (x_px, y_px)."""
    from scipy.ndimage import map_coordinates

    n = int(round(fov / pixel))
    th = math.radians(rotation_deg)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    dx = jitter * rng.standard_normal(n) + drift * smooth_1d(n, n / 4, rng)
    dy = drift * smooth_1d(n, n / 4, rng)
    rows, cols = np.mgrid[0:n, 0:n].astype(float)
    # Output pixel (r, c) of scan line r sees the lab point (c*px + dx_r, r*px + dy_r).
    lab = np.stack([cols * pixel + dx[:, None], rows * pixel + dy[:, None]], -1)
    spec = lab @ rot.T  # lab -> specimen (x, y)
    out = map_coordinates(fine, [spec[..., 1] / fine_step, spec[..., 0] / fine_step], order=3,
                          mode="grid-wrap")

    def to_pixels(xy: np.ndarray, cell: tuple) -> np.ndarray:
        """Every periodic image of specimen points ``xy`` (Å) that falls in the field, as
        ``(x_px, y_px, index)``."""
        found = []
        span = int(math.ceil(fov * 1.5 / min(cell))) + 1
        for i in range(-span, span + 1):
            for j in range(-span, span + 1):
                q = xy + np.array([i * cell[0], j * cell[1]])
                labq = q @ rot  # specimen -> lab (rot is orthogonal)
                r = labq[:, 1] / pixel
                rr = np.clip(np.round(r).astype(int), 0, n - 1)
                x = (labq[:, 0] - dx[rr]) / pixel
                y = (labq[:, 1] - dy[rr]) / pixel
                ok = (x >= -0.5) & (x <= n - 0.5) & (y >= -0.5) & (y <= n - 0.5)
                found.append(np.stack([x[ok], y[ok], np.nonzero(ok)[0]], 1))
        return np.concatenate(found)

    return out, to_pixels


def make_image(args: argparse.Namespace, out: Path) -> dict:
    """One labelled image into ``out``; returns its metadata."""
    import pandas as pd

    rng = np.random.default_rng(args.seed)
    p = PRESETS[args.material]
    subs = [s for s in args.substituents.split(",") if s]
    nx = int(math.ceil(args.size_nm * 10 / p.a))
    ny = int(math.ceil(args.size_nm * 10 / (p.a * math.sqrt(3))))
    metal, chalc, _, cell = lattice_sites(p, nx, ny)
    columns = draw_columns(len(chalc), p.chalcogen, subs, args.alloy, args.defect_fraction, rng,
                           janus=args.janus)
    n_vm = int(round(args.metal_vacancies * len(metal)))
    metal_vacant = set(rng.choice(len(metal), size=n_vm, replace=False).tolist())
    atoms = build_atoms(args.material, nx, ny, columns, metal_vacant)

    t0 = time.time()
    inner, outer = (float(v) for v in args.detector.split("-"))
    signal = multislice(atoms, args.kv, args.convergence, (inner, outer), args.configs,
                        args.scan_step, args.pot_sampling, args.prism_f, args.seed)
    t_ms = time.time() - t0
    step = cell[0] / signal.shape[1]
    factor = max(1, int(math.ceil(step / 0.05)))
    fine = fourier_upsample(signal, factor)
    fine_step = step / factor
    fine = gaussian_blur_periodic(fine, args.source_fwhm / 2.3548 / fine_step)
    rotation = float(rng.uniform(0, 60)) if args.rotation is None else args.rotation
    fov = min(cell) if args.fov_nm is None else args.fov_nm * 10
    img, to_pixels = render(fine, fine_step, args.pixel, fov, rotation, args.jitter, args.drift,
                            rng)
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] / n
    bg = sum(rng.uniform(0.5, 1) * np.cos(2 * np.pi * (rng.uniform(-1, 1) * yy
                                                        + rng.uniform(-1, 1) * xx)
                                          + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    bg = (bg - bg.min()) / (np.ptp(bg) + 1e-12)
    img = img + args.background * img.mean() * bg
    clean = (np.maximum(img, 0) * args.dose * args.pixel**2).astype(np.float32)
    noisy = rng.poisson(clean).astype(np.float32) + rng.normal(0, args.read_noise, clean.shape
                                                                ).astype(np.float32)

    names = [class_name(p.chalcogen, c) for c in columns]
    rows = []
    for x, y, k in to_pixels(chalc, cell):
        rows.append((x, y, names[int(k)]))
    for x, y, k in to_pixels(metal, cell):
        rows.append((x, y, f"V_{p.metal}" if int(k) in metal_vacant else p.metal))
    cols = pd.DataFrame(rows, columns=["x_px", "y_px", "class"])
    pristine = {p.metal, f"{p.chalcogen}2"}
    labels = cols[~cols["class"].isin(pristine)]

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "image.npy", noisy)
    np.save(out / "image_clean.npy", clean)
    cols.to_csv(out / "columns.csv", index=False, float_format="%.3f")
    labels.to_csv(out / "labels.csv", index=False, float_format="%.3f")
    import abtem

    meta = {
        "pixel_size_A": args.pixel, "material": args.material, "substituents": subs,
        "shape": list(img.shape), "rotation_deg": rotation, "cell_A": list(cell),
        "class_counts": labels["class"].value_counts().to_dict(),
        "multislice_s": round(t_ms, 1), "scan_step_A": step,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "versions": {"abtem": abtem.__version__, "numpy": np.__version__},
        "units": "image.npy detected electrons per pixel (Poisson + read noise); "
                 "image_clean.npy expected electrons per pixel",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    for dose in args.extra_doses or []:  # the same specimen and microscope at other doses
        other = out.parent / f"{out.name}_dose{dose:.0e}".replace("+0", "").replace("+", "")
        other.mkdir(parents=True, exist_ok=True)
        clean_d = (clean * (dose / args.dose)).astype(np.float32)
        noisy_d = rng.poisson(clean_d).astype(np.float32) + rng.normal(
            0, args.read_noise, clean.shape).astype(np.float32)
        np.save(other / "image.npy", noisy_d)
        np.save(other / "image_clean.npy", clean_d)
        cols.to_csv(other / "columns.csv", index=False, float_format="%.3f")
        labels.to_csv(other / "labels.csv", index=False, float_format="%.3f")
        (other / "meta.json").write_text(json.dumps(
            {**meta, "args": {**meta["args"], "dose": dose}}, indent=2))
    return meta


#: Named sets of images (``--plan NAME``): per image, its folder name and the options that
#: differ from the defaults. ``materials``: the four hosts, each with its light substituent as a
#: point defect and an alloy, at microscopes that differ from image to image (voltage, detector,
#: convergence, source size, atoms at rest or frozen phonons, dose, pixel size).
PLANS: dict[str, list[tuple[str, dict]]] = {
    "materials": [
        ("mos2_o_80kv", dict(material="MoS2", substituents="O", kv=80, detector="80-200",
                             source_fwhm=0.7, dose=5e5, pixel=0.14, seed=11)),
        ("mos2_se_60kv", dict(material="MoS2", substituents="O,Se", alloy=0.12, kv=60,
                              detector="70-200", source_fwhm=0.9, dose=1e6, pixel=0.16,
                              convergence=32, seed=12)),
        ("ws2_o_100kv", dict(material="WS2", substituents="O", kv=100, detector="90-240",
                             source_fwhm=0.8, dose=3e5, pixel=0.13, convergence=28, seed=21)),
        ("ws2_se_80kv_phonons", dict(material="WS2", substituents="O,Se", alloy=0.3, kv=80,
                                     detector="60-160", configs=2, source_fwhm=0.8, dose=1e6,
                                     pixel=0.15, seed=22)),
        ("wse2_s_80kv", dict(material="WSe2", substituents="S", alloy=0.25, kv=80,
                             detector="80-200", source_fwhm=0.8, dose=1e6, pixel=0.15, seed=31)),
        ("wse2_te_60kv", dict(material="WSe2", substituents="Te,S", alloy=0.15, kv=60,
                              detector="60-160", source_fwhm=0.7, dose=5e5, pixel=0.17,
                              seed=32)),
        ("mose2_s_100kv", dict(material="MoSe2", substituents="S", alloy=0.2, kv=100,
                               detector="80-220", source_fwhm=0.9, dose=2e6, pixel=0.13,
                               seed=41)),
        ("mose2_te_80kv_phonons", dict(material="MoSe2", substituents="Te,S", alloy=0.1, kv=80,
                                       detector="70-200", configs=2, source_fwhm=0.8, dose=1e6,
                                       pixel=0.15, seed=42)),
    ],
    # MoS2 with its light substituent only (issue #14's classes) at microscopes unlike the dev
    # set's, each also at a low and a high dose; stronger smooth backgrounds on some.
    "mos2": [
        ("mos2_60kv_60-160", dict(material="MoS2", substituents="O", kv=60, detector="60-160",
                                  source_fwhm=0.9, dose=1e6, extra_doses=[1e5], pixel=0.16,
                                  convergence=30, defect_fraction=0.12, seed=51)),
        ("mos2_80kv_90-220", dict(material="MoS2", substituents="O", kv=80, detector="90-220",
                                  source_fwhm=0.6, dose=5e5, extra_doses=[2e6], pixel=0.12,
                                  convergence=27, background=0.2, defect_fraction=0.12,
                                  seed=52)),
        ("mos2_100kv_75-200", dict(material="MoS2", substituents="O", kv=100, detector="75-200",
                                   source_fwhm=1.0, dose=3e5, extra_doses=[1.5e6], pixel=0.18,
                                   convergence=32, background=0.3, defect_fraction=0.12,
                                   seed=53)),
        ("mos2_80kv_70-180_phonons", dict(material="MoS2", substituents="O", kv=80,
                                          detector="70-180", configs=2, source_fwhm=0.8,
                                          dose=1e6, extra_doses=[2e5], pixel=0.14,
                                          defect_fraction=0.12, seed=54)),
    ],
}


def _random_microscope(rng: np.random.Generator) -> dict:
    """A random microscope and scan: voltage, detector, convergence, source size, atoms at rest
    or frozen phonons, pixel size, dose, background, scan distortion."""
    inner = float(rng.uniform(50, 100))
    return dict(kv=float(rng.choice([60, 80, 100, 120])),
                # (an outer angle beyond ~200 mrad needs a finer potential grid)
                detector=f"{inner:.0f}-{rng.uniform(max(150, 1.8 * inner), 200):.0f}",
                convergence=float(rng.uniform(24, 35)),
                configs=int(rng.random() < 0.35) * 2,
                source_fwhm=float(rng.uniform(0.5, 1.1)),
                pixel=float(rng.uniform(0.10, 0.19)),
                dose=float(np.exp(rng.uniform(np.log(1e5), np.log(2e6)))),
                background=float(rng.uniform(0.0, 0.3)),
                jitter=float(rng.uniform(0.02, 0.08)), drift=float(rng.uniform(0.05, 0.25)))


def random_microscopes(n: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` MoS2 images (O and vacancies) of random microscopes (:func:`_random_microscope`),
    drawn from ``seed``, with random defect fractions (``--random-microscopes``: training
    data)."""
    rng = np.random.default_rng(seed)
    jobs = []
    for k in range(n):
        opts = dict(material="MoS2", substituents="O", **_random_microscope(rng),
                    defect_fraction=float(rng.uniform(0.08, 0.16)),
                    metal_vacancies=float(rng.uniform(0.005, 0.03)),
                    seed=int(seed * 1000 + k))
        jobs.append((f"ms_{seed}_{k:03d}", opts))
    return jobs


#: Substituent choices of ``--random-materials`` per host chalcogen (the alloying one first).
RANDOM_SUBSTITUENTS = {"S": ("Se,O", "O", "Se"), "Se": ("S", "Te,S", "Te")}


def random_materials(n: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` images of random hosts, substituents and alloys at random microscopes, drawn from
    ``seed`` (``--random-materials``: issue #13's labelled alloys of an independent simulator).
    Per image: the host (MoS2, WS2, MoSe2, WSe2), its substituents, a per-atom alloy fraction
    (0-0.6; a third of the alloys converted from one side only, Janus-like, at up to 0.96 in
    that layer) and a microscope (:func:`_random_microscope`)."""
    rng = np.random.default_rng(seed)
    jobs = []
    for k in range(n):
        material = str(rng.choice(["MoS2", "WS2", "MoSe2", "WSe2"]))
        subs = str(rng.choice(RANDOM_SUBSTITUENTS[PRESETS[material].chalcogen]))
        alloying = subs.split(",")[0] != "O"
        janus = alloying and bool(rng.random() < 1 / 3)
        alloy = float(rng.uniform(0.0, 0.6)) * (1.6 if janus else 1.0) if alloying else 0.0
        opts = dict(material=material, substituents=subs, alloy=alloy, janus=janus,
                    **_random_microscope(rng),
                    defect_fraction=float(rng.uniform(0.06, 0.14)),
                    metal_vacancies=float(rng.uniform(0.005, 0.03)),
                    seed=int(seed * 1000 + k))
        jobs.append((f"mat_{seed}_{k:03d}_{material.lower()}_{subs.replace(',', '')}"
                     + ("_janus" if janus else ""), opts))
    return jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--material", choices=list(PRESETS), default="MoS2")
    ap.add_argument("--substituents", default="",
                    help="comma-separated: O, Se for sulfides; S, Te for selenides")
    ap.add_argument("--alloy", type=float, default=0.0,
                    help="per-atom fraction of the alloying substituent (the first chosen "
                         "other than O)")
    ap.add_argument("--defect-fraction", type=float, default=0.08,
                    help="fraction of the still pristine chalcogen columns with a defect")
    ap.add_argument("--metal-vacancies", type=float, default=0.01)
    ap.add_argument("--kv", type=float, default=80.0)
    ap.add_argument("--convergence", type=float, default=30.0, help="mrad")
    ap.add_argument("--detector", default="80-200", help="inner-outer, mrad")
    ap.add_argument("--configs", type=int, default=0,
                    help="frozen-phonon configurations (0: atoms at rest)")
    ap.add_argument("--source-fwhm", type=float, default=0.8, help="effective source, Å")
    ap.add_argument("--pixel", type=float, default=0.15, help="output pixel size, Å")
    ap.add_argument("--size-nm", type=float, default=4.0, help="supercell edge, nm")
    ap.add_argument("--fov-nm", type=float, default=None,
                    help="field of view (default: the supercell's shorter edge)")
    ap.add_argument("--rotation", type=float, default=None, help="degrees (default random)")
    ap.add_argument("--jitter", type=float, default=0.05, help="per-row jitter, Å")
    ap.add_argument("--drift", type=float, default=0.15, help="smooth row drift, Å")
    ap.add_argument("--background", type=float, default=0.05, help="of the mean signal")
    ap.add_argument("--dose", type=float, default=1e6, help="e/Å²")
    ap.add_argument("--read-noise", type=float, default=1.0, help="electrons")
    ap.add_argument("--extra-doses", type=float, nargs="*", default=None,
                    help="also write the same image at these doses (e/Å²) into sibling "
                         "folders NAME_doseXeY")
    ap.add_argument("--scan-step", type=float, default=0.25, help="multislice scan step, Å")
    ap.add_argument("--pot-sampling", type=float, default=0.05, help="Å")
    ap.add_argument("--prism-f", type=int, default=3, help="PRISM interpolation factor")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan", choices=list(PLANS),
                    help="make a named set of images into subfolders of --out (the options "
                         "above that the plan does not set keep their values)")
    ap.add_argument("--janus", action="store_true",
                    help="the alloy in the entrance layer only (a layer converted from one side)")
    ap.add_argument("--random-materials", type=int, default=0, metavar="N",
                    help="make N images of random hosts, substituents, alloys and microscopes "
                         "(random_materials; --seed draws them) into subfolders of --out")
    ap.add_argument("--random-microscopes", type=int, default=0, metavar="N",
                    help="make N MoS2 images of random microscopes (drawn from --seed) into "
                         "subfolders of --out")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    jobs = [(args.out, {})] if args.plan is None else [
        (args.out / name, opts) for name, opts in PLANS[args.plan]]
    if args.random_microscopes:
        jobs = [(args.out / name, opts)
                for name, opts in random_microscopes(args.random_microscopes, args.seed)]
    if args.random_materials:
        jobs = [(args.out / name, opts)
                for name, opts in random_materials(args.random_materials, args.seed)]
    for out, opts in jobs:
        if (out / "meta.json").exists():
            print(f"{out}: exists, skipped")
            continue
        try:
            meta = make_image(argparse.Namespace(**{**vars(args), **opts}), out)
        except RuntimeError as err:  # (abTEM: a detector beyond the simulated angles)
            print(f"{out}: skipped, {err}", flush=True)
            continue
        print(f"{out}: {meta['material']} {meta['substituents']} {meta['shape']} px, "
              f"{meta['class_counts']}, multislice {meta['multislice_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
