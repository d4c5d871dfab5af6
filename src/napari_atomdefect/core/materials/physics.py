"""HAADF scattering cross-sections of single atoms (screened Rutherford / Wentzel model).

For an atom of atomic number ``Z`` the elastic differential cross-section at small angles with a
Thomas–Fermi (Wentzel) screened potential is

    dσ/dΩ = (2 γ Z / (a0 k²))² / (θ² + θ0²)²,    θ0 = λ / (2 π a_TF),    a_TF = 0.885 a0 Z^(-1/3)

(Reimer & Kohl, *Transmission Electron Microscopy*, ch. 5). Integrated over an annular detector
``θ1..θ2`` this gives

    σ(Z) ∝ Z² [1 / (θ1² + θ0²) − 1 / (θ2² + θ0²)],

whose effective exponent (σ ∝ Z^n) comes out between 1.6 and 1.9 for typical HAADF detectors, the
range reported experimentally (Krivanek et al., Nature 2010: Z^1.64). Light atoms lose most:
screening matters less for them, so their cross-section is closer to Z² and therefore smaller
relative to heavier atoms than Z^1.7 suggests.

Dynamical effects are not in this single-atom model: in a two-atom chalcogen column the probe
channels along the column, so the second atom adds less than the first (``second_atom_factor``,
0.7–1.0), and a substituent *lighter* than the host inside a host column adds much less than its
single-atom cross-section. These are the uncertain parts that :func:`random_column_physics`
randomises:

* **light substituent** (O in S, S in Se): its signal in a host column, relative to one host atom
  (``light_ratio``, channelling included, not multiplied again by ``second_atom_factor``), is its
  single-atom ratio (O/S ≈ 0.25–0.37, S/Se ≈ 0.22–0.36 over the randomised detectors) times a
  channelling factor drawn log-uniformly from :data:`CHANNELLING_FACTOR`, clipped to
  :data:`LIGHT_RATIO_BOUNDS`. Multislice simulations (issue #14) put an O atom in an S₂ column
  at ~5–15 % of an S atom (``Z**1.7`` would give 31 %): O's ratio covers 0.05–0.25 with its
  median near 0.1. S in Se is less certain (0.5–1.0 of its single-atom ratio).
* **heavy substituent** (Se in S, Te in Se): not weakened; it scatters with its single-atom
  cross-section (Se/S ≈ 3.4, Te/Se ≈ 1.9), as top or second atom of the column.

The ranges are module constants so that measured column contrasts (abTEM) change one line.
"""

from __future__ import annotations

import numpy as np

from .columns import supported_substituents
from .materials import ATOMIC_NUMBER, Material

#: Channelling factor (log-uniform range) on the single-atom ratio of a light substituent inside a
#: host column, keyed by ``(substituent, host chalcogen)``.
CHANNELLING_FACTOR: dict[tuple[str, str], tuple[float, float]] = {
    ("O", "S"): (0.18, 0.75),
    ("S", "Se"): (0.5, 1.0),
}
#: Bounds of the drawn ``light_ratio`` (signal in a host column relative to one host atom).
LIGHT_RATIO_BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("O", "S"): (0.05, 0.25),
    ("S", "Se"): (0.1, 0.4),
}
#: Range (uniform) of the second atom's contribution to a two-atom column, relative to the first.
SECOND_ATOM_FACTOR: tuple[float, float] = (0.7, 1.0)

BOHR_A = 0.529177  # Bohr radius (Å)
ELECTRON_REST_KEV = 510.999


def wavelength_A(kv: float) -> float:
    """Relativistic electron wavelength in Å at ``kv`` kilovolts."""
    e = kv * 1e3
    return 12.2643 / np.sqrt(e * (1 + 0.97845e-6 * e))


def haadf_cross_section(z: int, kv: float = 80.0, inner_mrad: float = 80.0,
                        outer_mrad: float = 200.0) -> float:
    """Relative elastic cross-section of one atom into an annular detector (arbitrary units).

    Parameters
    ----------
    z : int
        Atomic number.
    kv : float
        Accelerating voltage in kV.
    inner_mrad, outer_mrad : float
        Detector inner and outer semi-angles.
    """
    lam = wavelength_A(kv)
    gamma = 1 + kv / ELECTRON_REST_KEV
    a_tf = 0.885 * BOHR_A * z ** (-1.0 / 3.0)
    theta0 = lam / (2 * np.pi * a_tf)  # rad
    t1, t2 = inner_mrad * 1e-3, outer_mrad * 1e-3
    return float((gamma * z) ** 2 * (1 / (t1**2 + theta0**2) - 1 / (t2**2 + theta0**2)))


def effective_exponent(z1: int, z2: int, **kw: float) -> float:
    """Exponent ``n`` with σ(z2)/σ(z1) = (z2/z1)^n for the given detector."""
    return float(np.log(haadf_cross_section(z2, **kw) / haadf_cross_section(z1, **kw))
                 / np.log(z2 / z1))


def element_weights(material: Material, kv: float = 80.0, inner_mrad: float = 80.0,
                    outer_mrad: float = 200.0) -> dict[str, float]:
    """Cross-section weights of the material's elements, normalised to Mo = 42**1.7.

    The elements are the metal, the host chalcogen and every substituent the material supports.

    The normalisation keeps the simulator's intensity scale (``metal_cross_section_A2`` refers to
    a column of molybdenum weight) independent of the detector.
    """
    ref = haadf_cross_section(ATOMIC_NUMBER["Mo"], kv, inner_mrad, outer_mrad)
    scale = 42**1.7 / ref
    out = {}
    for el in (material.metal, material.chalcogen, *supported_substituents(material)):
        out[el] = scale * haadf_cross_section(ATOMIC_NUMBER[el], kv, inner_mrad, outer_mrad)
    return out


def is_light(substituent: str, material: Material) -> bool:
    """Whether ``substituent`` is lighter than the host chalcogen (weakened by channelling)."""
    return ATOMIC_NUMBER[substituent] < ATOMIC_NUMBER[material.chalcogen]


def draw_light_ratio(single_ratio: float, substituent: str, material: Material,
                     rng: np.random.Generator) -> float:
    """Signal of a light substituent in a host column relative to one host atom.

    The single-atom ratio times a log-uniform channelling factor (:data:`CHANNELLING_FACTOR`),
    clipped to :data:`LIGHT_RATIO_BOUNDS`.
    """
    key = (substituent, material.chalcogen)
    lo, hi = CHANNELLING_FACTOR[key]
    factor = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(np.clip(single_ratio * factor, *LIGHT_RATIO_BOUNDS[key]))


def random_column_physics(material: Material, rng: np.random.Generator) -> dict:
    """Randomised, physically grounded column-weight parameters for one simulated microscope.

    Returns keyword arguments for :class:`~..simulate.image.MicroscopeParams`:
    ``element_weights`` (single-atom cross-sections of the metal, the host chalcogen and every
    supported substituent for a random voltage and detector, with a tilt of the effective Z
    exponent by -0.3..+0.05 for model error), ``light_ratio`` (the light substituent's signal in
    a host column relative to one host atom, see :func:`draw_light_ratio`; heavier substituents
    keep their single-atom weight) and ``second_atom_factor`` (:data:`SECOND_ATOM_FACTOR`), plus
    the ``detector`` drawn.
    """
    kv = float(rng.choice([60.0, 80.0, 100.0, 200.0, 300.0]))
    inner = float(rng.uniform(50, 100))
    outer = float(rng.uniform(max(150.0, 2 * inner), 260))
    weights = element_weights(material, kv, inner, outer)
    tilt = rng.uniform(-0.3, 0.05)  # the screened model runs ~0.15 above measured exponents
    zx = ATOMIC_NUMBER[material.chalcogen]
    weights = {el: w * (ATOMIC_NUMBER[el] / zx) ** tilt for el, w in weights.items()}
    light = material.light_substituent
    single = weights[light] / weights[material.chalcogen]
    return {
        "element_weights": weights,
        "light_ratio": draw_light_ratio(single, light, material, rng),
        "second_atom_factor": float(rng.uniform(*SECOND_ATOM_FACTOR)),
        "detector": {"kv": kv, "inner_mrad": inner, "outer_mrad": outer},
    }
