"""Fit the simulator's probe and column contrast to one real image (for fine-tuning).

A fine-tuning run learns the user's microscope best from simulated training cells that already look
like it. The detector sees normalised tiles (background 0, pristine chalcogen column 1), so what must
match are the *normalised levels* the detector reads:

- ``metal``: a metal column (set by the metal/chalcogen column-weight ratio),
- ``bridge``: the midpoint between a metal and a chalcogen column (set by the probe width, with the
  measured scan jitter),
- ``V_S``, ``O_S``, …: the columns of each defect class — known only where the user has corrected
  detections. They set what the fixed-Z rule cannot: the second chalcogen atom's contribution
  (``second_atom_factor``) and the light substituent's (``light_ratio``), the information that
  separates ``V_S`` from ``O_S``.

The levels are measured on the image (smoothed and normalised exactly as the lattice's intensity
levels are) and on a noise-free simulation with the same pixel size and scan jitter, and the
simulator's parameters are solved for (least squares) so that both agree. Measuring both with the
same estimator makes the fit insensitive to how the estimator is biased by blur or neighbours.
Without corrections the two chalcogen parameters stay randomised over their physical range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .cells import sample_bilinear
from .lattice import Lattice
from .materials import CHALCOGEN_DEFECTS, Material, get_material
from .sites import box_smooth

#: Fewest corrected sites of a class for its level to be fitted.
MIN_CLASS_SITES = 3
#: Defect fractions of the noise-free reference simulation (enough sites of each class).
_REFERENCE_FRACTIONS = {"V_S": 0.15, "V_S2": 0.03, "O_S": 0.15, "V_Mo": 0.02}
#: Probe tail of the fit and of the training images made from it (a broad tail mostly lifts the
#: background, which normalisation removes; the core width carries what the detector sees).
REFERENCE_TAIL = {"tail_fraction": 0.15, "tail_fwhm_nm": 0.4}
#: Parameter bounds of the fit.
_BOUNDS = {"probe_fwhm_a": (0.12, 0.8), "metal_to_chalcogen": (0.8, 12.0),
           "second_atom_factor": (0.3, 1.0), "light_ratio": (0.0, 0.9)}


@dataclass
class ContrastFit:
    """Simulator parameters fitted to an image's normalised levels.

    Attributes
    ----------
    probe_fwhm_nm : float
        Probe core FWHM (with the reference tail :data:`REFERENCE_TAIL`).
    metal_to_chalcogen : float
        Column-weight ratio of a metal column to a pristine (two-atom) chalcogen column.
    second_atom_factor, light_ratio : float or None
        Fitted from corrected ``V_S`` / ``O_S`` sites; ``None`` where too few were given.
    jitter_nm : float
        The scan jitter simulated with the fit.
    measured, simulated : dict
        The levels on the image and on the fitted simulation.
    n_sites : dict
        Corrected sites used per class.
    """

    probe_fwhm_nm: float
    metal_to_chalcogen: float
    second_atom_factor: float | None = None
    light_ratio: float | None = None
    jitter_nm: float = 0.0
    measured: dict = field(default_factory=dict)
    simulated: dict = field(default_factory=dict)
    n_sites: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        def r(v):
            if isinstance(v, float):
                return round(v, 4)
            return {k: r(x) for k, x in v.items()} if isinstance(v, dict) else v
        return {k: r(v) for k, v in asdict(self).items()}

    def simulator_params(self, material: Material | str, rng: np.random.Generator,
                         spread: float = 0.05) -> dict:
        """:class:`~.simulate.MicroscopeParams` values for one training image (``spread``: ±)."""
        from .physics import random_column_physics

        mat = get_material(material)
        phys = random_column_physics(mat, rng)
        s = (self.second_atom_factor if self.second_atom_factor is not None
             else phys["second_atom_factor"])
        s = float(np.clip(s + rng.normal(0, spread * 0.5), *_BOUNDS["second_atom_factor"]))
        light = (self.light_ratio if self.light_ratio is not None else phys["light_ratio"])
        light = float(np.clip(light + rng.normal(0, spread * 0.5), *_BOUNDS["light_ratio"]))
        ratio = self.metal_to_chalcogen * rng.uniform(1 - spread, 1 + spread)
        weights = dict(phys["element_weights"])
        weights[mat.chalcogen] = weights[mat.metal] / (ratio * (1 + s))
        return {"probe_fwhm_nm": self.probe_fwhm_nm * rng.uniform(1 - spread, 1 + spread),
                "tail_fraction": REFERENCE_TAIL["tail_fraction"] * rng.uniform(0.7, 1.3),
                "tail_fwhm_nm": REFERENCE_TAIL["tail_fwhm_nm"] * rng.uniform(0.8, 1.2),
                "element_weights": weights, "second_atom_factor": s, "light_ratio": light}


def _levels(image: np.ndarray, metal: np.ndarray, chalc: np.ndarray, hollow: np.ndarray,
            a_px: float, classes: dict[str, np.ndarray]) -> dict:
    """Normalised smoothed levels at metal, bridge and class sites (as :mod:`.normalize` does)."""
    from scipy.spatial import cKDTree

    smoothed = box_smooth(np.asarray(image, np.float32), max(0.8, 0.08 * a_px))
    h, w = smoothed.shape

    def at(points, stat=np.median):
        pts = points[(points[:, 0] >= 0) & (points[:, 0] <= h - 1) & (points[:, 1] >= 0)
                     & (points[:, 1] <= w - 1)]
        if len(pts) == 0:
            return float("nan")
        return float(stat(sample_bilinear(smoothed, pts[:, 0], pts[:, 1])))

    bg, x = at(hollow), at(chalc)
    scale = max(x - bg, 1e-12)
    d, k = cKDTree(metal).query(chalc, 3)
    near = d < 0.75 * a_px
    bridge = ((chalc[:, None, :] + metal[k]) / 2)[near]
    out = {"metal": (at(metal) - bg) / scale, "bridge": (at(bridge) - bg) / scale}
    for cls, pts in classes.items():
        out[cls] = (at(pts, np.mean) - bg) / scale
    return out


def measure_levels(image: np.ndarray, lattice: Lattice,
                   corrections: pd.DataFrame | None = None) -> tuple[dict, dict]:
    """Normalised levels of a real image, and the number of corrected sites per class."""
    from scipy.spatial import cKDTree

    chalc = lattice.chalcogen_sites_px
    classes: dict[str, np.ndarray] = {}
    if corrections is not None and len(corrections):
        d, k = cKDTree(chalc).query(corrections[["y_px", "x_px"]].to_numpy(float))
        for cls in CHALCOGEN_DEFECTS:
            sel = (corrections["class"].astype(str).to_numpy() == cls) & (d < 0.25 * lattice.a_px)
            if sel.sum() >= MIN_CLASS_SITES:
                classes[cls] = chalc[np.unique(k[sel])]
    hollow = chalc + (lattice.a1_px + lattice.a2_px) / 3
    levels = _levels(image, lattice.metal_sites_px, chalc, hollow, lattice.a_px, classes)
    return levels, {c: int(len(p)) for c, p in classes.items()}


def _simulated_levels(material: Material, pixel_size_nm: float, jitter_nm: float, params: dict,
                      classes: list[str], seed: int) -> dict:
    """The same levels on a noise-free simulation (true column positions)."""
    from .simulate import MicroscopeParams, simulate_image

    a_px = material.a_nm / pixel_size_nm
    size = int(np.clip(13 * a_px, 128, 384))
    p = MicroscopeParams(**{**params, "dose_e_per_A2": None, "row_jitter_nm": jitter_nm,
                            "drift_nm": 0.0, "shear": 0.0, "y_stretch": 0.0, "background": 0.0,
                            "line_noise": 0.0})
    sim = simulate_image(material, size, pixel_size_nm, params=p, seed=seed,
                         defect_fractions=_REFERENCE_FRACTIONS, rotation_deg=17.0)
    sites = sim.sites
    metal = sites.loc[sites.sublattice == "metal", ["y_px", "x_px"]].to_numpy(float)
    chalc_rows = sites[sites.sublattice == "chalcogen"]
    chalc = chalc_rows[["y_px", "x_px"]].to_numpy(float)
    # The hollow is the third site of the honeycomb cell: the one of metal + (a1+a2)/3 and
    # metal + 2(a1+a2)/3 that is not a chalcogen.
    from scipy.spatial import cKDTree

    tree = cKDTree(chalc)
    cands = [metal + f * (sim.a1_px + sim.a2_px) for f in (1 / 3, 2 / 3)]
    hollow = max(cands, key=lambda c: np.median(tree.query(c)[0]))
    cls_pts = {c: chalc_rows.loc[chalc_rows["class"] == c, ["y_px", "x_px"]].to_numpy(float)
               for c in classes}
    return _levels(sim.image, metal, chalc, hollow, a_px, cls_pts)


def fit_contrast(image: np.ndarray, lattice: Lattice, corrections: pd.DataFrame | None = None,
                 jitter_nm: float = 0.0, seed: int = 0) -> ContrastFit:
    """Fit the probe width and column weights to the image's normalised levels.

    Parameters
    ----------
    image : ndarray
        The raw image.
    lattice : Lattice
        Its lattice (column positions).
    corrections : DataFrame, optional
        Checked defects (``y_px, x_px, class``); classes with at least :data:`MIN_CLASS_SITES`
        sites fit ``second_atom_factor`` (``V_S``) and ``light_ratio`` (``O_S``).
    jitter_nm : float
        Measured line-to-line scan jitter (RMS, nm), simulated alongside the probe (at most
        0.05 lattice constants: larger measurements are distortion, not jitter).
    seed : int
        Seed of the reference simulation.
    """
    from scipy.optimize import least_squares

    mat = lattice.material
    jitter_nm = float(min(jitter_nm, 0.05 * mat.a_nm))
    measured, n_sites = measure_levels(image, lattice, corrections)
    names = ["probe_fwhm_a", "metal_to_chalcogen"]
    targets = ["bridge", "metal"]
    if "V_S" in n_sites:
        names.append("second_atom_factor")
        targets.append("V_S")
    if "O_S" in n_sites:
        names.append("light_ratio")
        targets.append("O_S")
    targets += [c for c in n_sites if c not in targets]
    start = {"probe_fwhm_a": 0.3, "metal_to_chalcogen": max(measured["metal"], 1.0),
             "second_atom_factor": 0.85, "light_ratio": 0.2}

    def params_of(theta) -> dict:
        v = dict(zip(names, theta, strict=True))
        s = v.get("second_atom_factor", 0.85)
        w_metal = 42.0**1.7
        return {"probe_fwhm_nm": v["probe_fwhm_a"] * mat.a_nm, **REFERENCE_TAIL,
                "second_atom_factor": s,
                "light_ratio": v.get("light_ratio", 0.2),
                "element_weights": {mat.metal: w_metal,
                                    mat.chalcogen: w_metal / (v["metal_to_chalcogen"] * (1 + s)),
                                    mat.light_substituent: 1.0}}

    def simulated(theta) -> dict:
        return _simulated_levels(mat, lattice.pixel_size_nm, jitter_nm, params_of(theta),
                                 [c for c in n_sites], seed)

    def residual(theta):
        sim = simulated(theta)
        return np.array([sim[t] - measured[t] for t in targets[:len(names)]])

    lo = [_BOUNDS[n][0] for n in names]
    hi = [_BOUNDS[n][1] for n in names]
    x0 = np.clip([start[n] for n in names], lo, hi)
    sol = least_squares(residual, x0, bounds=(lo, hi), diff_step=0.02, max_nfev=40)
    best = dict(zip(names, sol.x, strict=True))
    return ContrastFit(
        probe_fwhm_nm=float(best["probe_fwhm_a"] * mat.a_nm),
        metal_to_chalcogen=float(best["metal_to_chalcogen"]),
        second_atom_factor=float(best["second_atom_factor"]) if "second_atom_factor" in best
        else None,
        light_ratio=float(best["light_ratio"]) if "light_ratio" in best else None,
        jitter_nm=jitter_nm, measured=measured, simulated=simulated(sol.x), n_sites=n_sites)


__all__ = ["ContrastFit", "fit_contrast", "measure_levels"]
