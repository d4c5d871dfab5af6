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

Two atoms in one column do not simply add. Frozen-phonon multislice of modified columns
(abTEM, all four hosts, 60 and 80 kV, two detectors; ``benchmarks/bench_column_contrast.py``,
``docs/physics.md``) shows the two chalcogen atoms, 3.2–3.3 Å apart along the beam, scattering
partly in phase at the detector's inner angle: a column of atoms with weights ``w1``, ``w2``
gives ``w1 + w2 + 2 k c sqrt(w1 w2)``, with ``c ≈ exp(-φ1 / s)``, ``φ1 = π θ1² Δz / λ``
(:data:`COHERENCE_PHASE_SCALE`: S columns ``s`` = 0.57 from four MoS2 runs at a converged 0.04 Å
potential sampling, Se columns 0.66 from four MoSe2 runs). So the second host atom adds *more*
than the first with phonons: ``second_atom_factor = 1 + 2c`` is 1.05–1.2 at 80–200 mrad and
1.45–1.65 at 60–160 mrad for S columns. With the atoms at rest (a static potential, no thermal
motion) the cross term falls on a line in φ1 instead and turns negative at HAADF angles
(:func:`static_coherence`: the second S adds only 0.8 of the first at 80 kV, 80–200 mrad).
:func:`random_column_physics` mixes the two regimes with a random thermal damping.

* **light substituent** (O in S, S in Se): ``light_ratio`` is the excess of the column (one host
  atom + the light atom) over one host atom, in host atoms: ``r + 2 k c sqrt(r)`` with ``r`` its
  single-atom ratio and ``k`` from the same inner-angle phase (:func:`light_coherence`: a light
  atom keeps less coherence with the host at HAADF angles — measured k = 0.1–0.65 at 80–200 mrad,
  ≈ 1 at 60–160 mrad, ≈ 1 at rest — so the column stays 0.58–0.67 of a host column at every
  detector, static or not).
  Measured: O in S 0.28–0.35 of an S atom at 80–200 mrad, 0.58–0.68 at 60–160 mrad (about 13 %
  of the S₂ column); S in Se 0.29–0.36 and 0.53–0.61.
* **heavy substituent** (Se in S, Te in Se) and host atoms: ``k = 1``; a column of two different
  atoms is ``w1 + w2 + 2 c sqrt(w1 w2)`` on average over the two orders.
* **the other of S and Se** (Se in a sulfide, S in a selenide) keeps the cross term of its own
  pair: a column holding one or two of them reads ``c = (c_host + c_partner) / 2``, each from
  its own measured curve at the same phase (:func:`partner_chalcogen`; twelfth session, static
  runs of all four hosts at 60–200 kV). With the host's ``c`` alone, Se2 in a sulfide read up
  to a sixth too dim at high angles, where S pairs interfere destructively and Se pairs
  hardly at all.
* **which side the substituent is on** matters at HAADF angles (:func:`order_asymmetry`, from the
  same static and frozen-phonon runs): a heavy substituent on the exit side adds about 10 % more
  than the mean excess and on the entrance side 10 % less (Se in S2 at 80 kV, 80–200 mrad: 3.86
  vs 3.08 S atoms at rest, 4.68 vs 3.73 with phonons); a light one on the entrance side adds
  more (S in Se2: 0.25 vs 0.06 Se atoms at rest; O in S2: 0.14 vs 0.07). At 60–160 mrad both
  orders give nearly the same column. So a singly substituted column has two levels, not one.

The ranges are module constants so that new measurements change one line.
"""

from __future__ import annotations

import numpy as np

from .columns import supported_substituents
from .materials import ATOMIC_NUMBER, Material

#: Phase scale of the coherent cross term with frozen phonons, ``c = exp(-φ1 / scale)``, per host
#: chalcogen (multislice fit). S: four MoS2 runs at 60 and 80 kV, 60–160 and 80–200 mrad, at a
#: converged potential sampling of 0.04 Å (eleventh session; 0.69 from runs at 0.065 Å, whose
#: high angles were under-resolved). Se: four MoSe2 runs, the same microscopes, 0.04 Å (twelfth
#: session: 0.651–0.669 run by run; 0.69 before).
COHERENCE_PHASE_SCALE: dict[str, float] = {"S": 0.57, "Se": 0.66}
#: Uniform jitter on ``c`` (the fit's measured/fit spread, and phonon correlations it ignores).
COHERENCE_JITTER: tuple[float, float] = (0.8, 1.25)
#: Separation along the beam of the two chalcogen atoms of a column (Å), by host chalcogen.
CHALCOGEN_SEPARATION_A: dict[str, float] = {"S": 3.17, "Se": 3.30}
#: Static-potential cross term per host chalcogen, as measured: ``(φ1, c)`` from static
#: multislice (``bench_column_contrast.py --static``, docs/physics.md); interpolated between the
#: points (runs less than 0.04 rad apart averaged). S: MoS2 at 60, 80 and 100 kV (eleventh
#: session) and WS2 at 60–200 kV (twelfth), inner angles 50–120 mrad, at a converged potential
#: sampling (0.04 Å; 0.025 Å at 200 kV; the earlier points, at 0.065 Å, under-resolved high
#: angles: c -0.18 instead of -0.10 at 80 kV, 80–200 mrad). Se: MoSe2 and WSe2 at 60–200 kV,
#: the same way (twelfth session; the two hosts agree to 0.003).
STATIC_COHERENCE_POINTS: dict[str, tuple[tuple[float, float], ...]] = {
    "S": ((0.731, 0.328), (0.853, 0.221), (0.969, 0.181), (1.301, -0.015), (1.416, -0.044),
          (1.515, -0.096), (1.642, -0.129), (1.710, -0.176), (1.921, -0.231), (2.027, -0.234),
          (2.159, -0.295), (2.368, -0.282), (2.517, -0.290), (2.665, -0.244), (2.919, -0.185),
          (3.410, -0.029), (3.838, 0.096), (3.933, 0.055)),
    "Se": ((0.767, 0.322), (0.894, 0.251), (1.017, 0.233), (1.364, 0.095), (1.488, 0.029),
           (1.589, 0.016), (1.726, 0.001), (1.793, -0.075), (2.016, -0.102), (2.131, -0.081),
           (2.269, -0.144), (2.483, -0.082), (2.646, -0.103), (2.801, -0.031), (3.068, 0.086),
           (3.575, 0.266), (4.033, 0.346), (4.134, 0.342)),
}
#: Beyond the last measured phase the cross term relaxes to 0 over this many radians.
STATIC_COHERENCE_DECAY = 3.0
#: Additive jitter on the static cross term: the line's residuals (±0.04), and below them what
#: whole multislice images show beyond the point-probe runs at rest at φ1 1.5–2 (sixteenth
#: session, docs/physics.md: a single chalcogen atom there reads 0.02–0.08 of its column higher
#: than the simulator put it, as if c were 0.03–0.12 lower; at φ1 < 0.9 and with phonons they agree).
STATIC_COHERENCE_JITTER: tuple[float, float] = (-0.12, 0.04)
#: Thermal decorrelation of the two atoms of a column: 0 static, 1 room-temperature phonons.
THERMAL_DAMPING: tuple[float, float] = (0.0, 1.0)
#: Floor of ``c`` (``second_atom_factor`` >= 0.4) and of a light substituent's excess (times its
#: single-atom ratio): at rest at high angles an O beside an S adds nothing or takes a little
#: away (-0.07 to +0.02 S atoms at φ1 1.9-2.7 in the converged runs; the cross-term formula
#: gives -0.04 to +0.02 there, the floor of 0 before gave 0-0.02).
MIN_COHERENCE = -0.3
MIN_LIGHT_RATIO = -0.5
#: Multislice over screened-model single-atom ratio, metal over chalcogen, per material and
#: voltage (docs/physics.md; :func:`metal_factor_range` interpolates in kV, constant beyond the
#: ends). MoS2: 0.83–0.90 over eight static runs at 60–100 kV and 60–240 mrad at a converged
#: 0.04 Å potential sampling (eleventh session; 0.94–0.99 at 0.065 Å), widened by a few per cent
#: either side. The others over twenty static runs each at 60, 80, 100 and 200 kV, 50–260 mrad
#: (twelfth session), widened by ~0.02: MoSe2 0.91–0.93 at 60 kV to 0.94–0.99 at 200 kV, WS2
#: 0.56–0.69 to 0.72–0.79, WSe2 0.66–0.71 to 0.79–0.85. W was 0.79–0.86 at 0.065 Å: the
#: simulator had W columns a quarter too bright.
METAL_MODEL_FACTOR: dict[str, dict[float, tuple[float, float]]] = {
    "MoS2": {60.0: (0.80, 0.96)},
    "MoSe2": {60.0: (0.88, 0.95), 100.0: (0.90, 0.97), 200.0: (0.92, 1.01)},
    "WS2": {60.0: (0.54, 0.71), 100.0: (0.63, 0.73), 200.0: (0.70, 0.81)},
    "WSe2": {60.0: (0.64, 0.73), 100.0: (0.71, 0.79), 200.0: (0.77, 0.87)},
}
#: The same for a substituent over the host chalcogen: what the single-atom model needs to give
#: the measured column with a substituent (Se in S2, Te in Se2, O in S2: 0.94–1.08 at rest at a
#: converged 0.04 Å sampling, twelfth session; Te 0.86–0.94 with phonons), and for S in a
#: selenide, whose excess over one Se
#: the model leaves 0.03–0.05 Se atoms short at every detector
#: (:data:`LIGHT_SUBSTITUENT_MODEL_FACTOR`).
SUBSTITUENT_MODEL_FACTOR: tuple[float, float] = (0.86, 1.05)
LIGHT_SUBSTITUENT_MODEL_FACTOR: dict[str, tuple[float, float]] = {"S": (1.0, 1.15)}
#: Light substituent's coherence ``k = exp(-((φ1 - onset) / width)²)`` (1 below the onset):
#: least squares over the ten multislice runs with a light atom (docs/physics.md), measured
#: k 0.1–1.0, fit within ±0.2.
LIGHT_COHERENCE_ONSET = 0.9
LIGHT_COHERENCE_WIDTH = 0.5
#: Uniform additive jitter on ``k`` (the fit's spread), clipped to ``LIGHT_COHERENCE_RANGE``.
LIGHT_COHERENCE_JITTER: tuple[float, float] = (-0.2, 0.2)
LIGHT_COHERENCE_RANGE: tuple[float, float] = (0.05, 1.2)

#: Order asymmetry of a singly substituted column, growing linearly with the inner-angle phase
#: beyond the onset and levelling off (docs/physics.md): heavy substituent ``a`` (relative to its
#: mean excess), light substituent ``d`` (host atoms), per host chalcogen. Least squares over the
#: converged static runs of WS2 and MoSe2 (WSe2 agrees) at 60–200 kV and 50–260 mrad (φ1 0.74–4.1,
#: docs/data/column_contrast_converged_static.json, sixteenth session): Se in S2 rises to 0.27–0.32
#: of its excess at φ1 2.4–3.0, Te in Se2 to 0.22–0.24, O in S2 to ±0.12–0.17 S atoms, S in Se2 to
#: ±0.2–0.3 Se atoms (rms 0.013–0.03; the earlier caps of 0.11 and 0.04 / 0.1 came from runs that
#: stopped at φ1 1.6 and were 3–5 times further off).
ORDER_ASYMMETRY_ONSET = 0.8
HEAVY_ORDER_SLOPE: dict[str, float] = {"S": 0.14, "Se": 0.105}
HEAVY_ORDER_MAX: dict[str, float] = {"S": 0.25, "Se": 0.2}
LIGHT_ORDER_SLOPE: dict[str, float] = {"S": 0.07, "Se": 0.11}
LIGHT_ORDER_MAX: dict[str, float] = {"S": 0.15, "Se": 0.25}

#: Accelerating voltages (kV) the simulated microscopes are drawn at (:func:`random_voltage`):
#: the usual settings of aberration-corrected STEMs for 2D materials, and the range between.
#: Until the twentieth session 120 kV and every voltage between the common ones were missing
#: (a multislice MoSe2 alloy at 120 kV, at rest, was read a rung off: docs/benchmarks.md).
COMMON_VOLTAGES_KV: tuple[float, ...] = (60.0, 80.0, 100.0, 120.0, 200.0, 300.0)
VOLTAGE_RANGE_KV: tuple[float, float] = (60.0, 300.0)
#: The voltages every simulated microscope drew until the twentieth session; the held-out images
#: of the benchmarks and tests still draw them (``random_column_physics(all_voltages=False)``),
#: so that the same seed gives the same image from session to session.
HELD_OUT_VOLTAGES_KV: tuple[float, ...] = (60.0, 80.0, 100.0, 200.0, 300.0)

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


def coherence(kv: float, inner_mrad: float, material: Material,
              chalcogen: str | None = None) -> float:
    """Cross-term coefficient ``c`` of two host chalcogen atoms of a column with frozen phonons
    (no jitter); with ``chalcogen``, of two atoms of that chalcogen at the host's separation."""
    scale = COHERENCE_PHASE_SCALE[chalcogen or material.chalcogen]
    return float(np.exp(-inner_phase(kv, inner_mrad, material) / scale))


def _metal_twin(material: Material) -> Material | None:
    """The host of the other metal with the same chalcogen (MoS2 -> WS2), if the package has it."""
    from .materials import MATERIALS, METAL_PARTNER

    other = METAL_PARTNER.get(material.metal)
    return None if other is None else MATERIALS.get(other + material.name[len(material.metal):])


def metal_factor_range(material: Material, kv: float) -> tuple[float, float]:
    """Range of the metal's multislice/model factor at ``kv`` (:data:`METAL_MODEL_FACTOR`,
    linear in kV between the measured voltages, constant beyond them)."""
    table = METAL_MODEL_FACTOR[material.name]
    volts = np.array(sorted(table))
    lo = float(np.interp(kv, volts, [table[v][0] for v in volts]))
    hi = float(np.interp(kv, volts, [table[v][1] for v in volts]))
    return lo, hi


def partner_chalcogen(material: Material) -> str | None:
    """The other of S and Se when the material supports it as a substituent (Se in a sulfide,
    S in a selenide), else None."""
    partner = {"S": "Se", "Se": "S"}.get(material.chalcogen)
    return partner if partner in supported_substituents(material) else None


def inner_phase(kv: float, inner_mrad: float, material: Material) -> float:
    """Phase ``φ1 = π θ1² Δz / λ`` between the two chalcogen atoms of a column at the inner angle."""
    return float(np.pi * (inner_mrad * 1e-3) ** 2 * CHALCOGEN_SEPARATION_A[material.chalcogen]
                 / wavelength_A(kv))


def light_coherence(phi1: float) -> float:
    """Coherence ``k`` of a light substituent with its host atom at inner-angle phase ``phi1``
    (no jitter): 1 up to :data:`LIGHT_COHERENCE_ONSET`, then a Gaussian fall-off."""
    x = max(phi1 - LIGHT_COHERENCE_ONSET, 0.0) / LIGHT_COHERENCE_WIDTH
    return float(np.exp(-x * x))


def static_coherence(phi1: float, chalcogen: str = "S") -> float:
    """Cross term ``c`` of two host chalcogen atoms *at rest* (static potential, no thermal motion).

    Static multislice (``bench_column_contrast.py --static``, 60–200 kV, detectors 50–240 mrad,
    docs/physics.md) at :data:`STATIC_COHERENCE_POINTS`, interpolated. For S columns ``c`` falls
    from 0.33 at φ1 = 0.74 through -0.1 at φ1 ≈ 1.5 to -0.29 at 2.2–2.5 (a single S then reads
    0.55–0.7 of its column) and comes back to +0.1 at 3.8; Se columns fall from 0.32 to about
    0 at 1.7 and -0.14 at 2.3, and rise again to +0.34 at 4.1. Beyond the last point the
    interference averages out over the detector: ``c`` relaxes to 0 over
    :data:`STATIC_COHERENCE_DECAY` radians.
    """
    points = np.array(STATIC_COHERENCE_POINTS[chalcogen])
    last_phase, last = points[-1]
    if phi1 <= last_phase:
        return float(np.interp(phi1, points[:, 0], points[:, 1]))
    return float(last * np.exp(-(phi1 - last_phase) / STATIC_COHERENCE_DECAY))


def order_asymmetry(phi1: float, chalcogen: str = "S", thermal_damping: float = 0.0
                    ) -> tuple[float, float]:
    """How much the side of a single substituent changes its column, at inner-angle phase ``phi1``.

    Returns
    -------
    heavy : float
        A heavy substituent adds ``(1 + heavy)`` times its mean excess on the exit side and
        ``(1 - heavy)`` times on the entrance side.
    light : float
        A light substituent adds ``light`` host atoms more than its mean on the entrance side and
        as much less on the exit side (halved with room-temperature phonons for a selenide, as
        measured).
    """
    x = max(phi1 - ORDER_ASYMMETRY_ONSET, 0.0)
    heavy = min(HEAVY_ORDER_SLOPE[chalcogen] * x, HEAVY_ORDER_MAX[chalcogen])
    light = min(LIGHT_ORDER_SLOPE[chalcogen] * x, LIGHT_ORDER_MAX[chalcogen])
    if chalcogen == "Se":
        light *= 1.0 - 0.5 * thermal_damping
    return float(heavy), float(light)


def random_voltage(rng: np.random.Generator) -> float:
    """An accelerating voltage in kV for one simulated microscope.

    Half the draws take one of :data:`COMMON_VOLTAGES_KV` (the settings microscopes are aligned
    at), the other half any voltage log-uniformly in :data:`VOLTAGE_RANGE_KV`, so that every
    combination of the voltage-dependent physics (the single-atom cross-sections, the metal's
    multislice factor, the inner-angle phase) between the common settings is seen too.
    """
    if rng.random() < 0.5:
        return float(rng.choice(COMMON_VOLTAGES_KV))
    lo, hi = VOLTAGE_RANGE_KV
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_column_physics(material: Material, rng: np.random.Generator, *,
                          all_voltages: bool = False) -> dict:
    """Randomised, physically grounded column-weight parameters for one simulated microscope.

    A random voltage (:func:`random_voltage`) and detector give single-atom cross-sections
    (:func:`element_weights`; the metal's scaled by the multislice/model ratio measured for it,
    :data:`METAL_MODEL_FACTOR`, the substituents' by :data:`SUBSTITUENT_MODEL_FACTOR`) and the
    inner-angle phase φ1. How coherently the two atoms of a column add depends on φ1 *and* on how
    much thermal motion decorrelates them, which no single model fixes (a static potential, common
    in simulations, has none; room-temperature frozen phonons damp it): a random
    ``thermal_damping`` in 0..1 mixes :func:`static_coherence` (0) and :func:`coherence` (1,
    frozen phonons), for the host cross term ``c`` and for the light substituent's ``k`` (1 at
    rest, :func:`light_coherence` with phonons).

    ``all_voltages`` draws the voltage with :func:`random_voltage` (the training range: the
    training and calibration images, fine-tuning's microscopes, the fit check's ranges);
    without it one of :data:`HELD_OUT_VOLTAGES_KV`, as every microscope did until the twentieth
    session (the held-out images of the benchmarks and tests, which stay the same from session
    to session, and the Z-contrast ladder's microscopes).

    Returns
    -------
    dict
        Keyword arguments for :class:`~..simulate.image.MicroscopeParams`: ``element_weights``,
        ``light_ratio`` (the light substituent's excess in a host column over one host atom,
        ``r + 2kc√r``), ``second_atom_factor`` (``1 + 2c``), ``partner_cross_term`` (``c`` of a
        pair of the other of S and Se, or ``None``), ``heavy_order_asymmetry`` and
        ``light_order_asymmetry`` (:func:`order_asymmetry`, no extra random draw), plus the
        ``detector`` drawn and the ``thermal_damping``.
    """
    kv = random_voltage(rng) if all_voltages else float(rng.choice(HELD_OUT_VOLTAGES_KV))
    inner = float(rng.uniform(50, 100))
    outer = float(rng.uniform(max(150.0, 2 * inner), 260))
    metal_factor = float(rng.uniform(*metal_factor_range(material, kv)))
    substituent_factors = {el: float(rng.uniform(*_substituent_factor_range(material, el)))
                           for el in supported_substituents(material)}
    damping = float(rng.uniform(*THERMAL_DAMPING))
    phonon_jitter = float(rng.uniform(*COHERENCE_JITTER))
    static_jitter = float(rng.uniform(*STATIC_COHERENCE_JITTER))
    light_jitter = float(rng.uniform(*LIGHT_COHERENCE_JITTER))
    return column_physics(material, kv, inner, outer, thermal_damping=damping,
                          metal_factor=metal_factor, substituent_factors=substituent_factors,
                          phonon_jitter=phonon_jitter, static_jitter=static_jitter,
                          light_jitter=light_jitter)


def _substituent_factor_range(material: Material, element: str) -> tuple[float, float]:
    """Range of the multislice/model factor of a substituent (:data:`SUBSTITUENT_MODEL_FACTOR`,
    :data:`LIGHT_SUBSTITUENT_MODEL_FACTOR`)."""
    if element == material.light_substituent:
        return LIGHT_SUBSTITUENT_MODEL_FACTOR.get(element, SUBSTITUENT_MODEL_FACTOR)
    return SUBSTITUENT_MODEL_FACTOR


def column_physics(material: Material, kv: float, inner_mrad: float, outer_mrad: float, *,
                   thermal_damping: float = 0.0, metal_factor: float | None = None,
                   substituent_factors: dict[str, float] | None = None,
                   phonon_jitter: float = 1.0, static_jitter: float = 0.0,
                   light_jitter: float = 0.0) -> dict:
    """Column-weight parameters of one microscope (voltage, detector, thermal motion).

    :func:`random_column_physics` draws the arguments; called directly, the multislice/model
    factors default to the middle of their ranges and the jitters to none, which gives the
    simulator's best estimate at a given microscope (tests compare it with multislice).

    Parameters
    ----------
    material : Material
        The host.
    kv, inner_mrad, outer_mrad : float
        Voltage and annular detector.
    thermal_damping : float
        0 for atoms at rest (static potential), 1 for room-temperature frozen phonons.
    metal_factor : float, optional
        Multislice over single-atom model for the metal (:data:`METAL_MODEL_FACTOR`).
    substituent_factors : dict, optional
        The same per substituent element.
    phonon_jitter, static_jitter, light_jitter : float
        Factor on the phonon cross term, additive jitter on the static one and on the light
        substituent's coherence ``k``.

    Returns
    -------
    dict
        Keyword arguments for :class:`~..simulate.image.MicroscopeParams` (see
        :func:`random_column_physics`), plus ``detector`` and ``thermal_damping``.
    """
    weights = element_weights(material, kv, inner_mrad, outer_mrad)
    lo, hi = metal_factor_range(material, kv)
    factor = float(np.mean((lo, hi))) if metal_factor is None else metal_factor
    weights[material.metal] *= factor
    # The other metal of a Mo/W alloy, at the same place in its own host's multislice/model
    # range (W columns are dimmer against the model than Mo ones: W/Mo 1.6-1.8 at 60 kV,
    # 2.4-2.6 at 200 kV, against 2.4-2.9 for single atoms).
    twin = _metal_twin(material)
    if twin is not None:
        place = float(np.clip((factor - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.5
        lo2, hi2 = metal_factor_range(twin, kv)
        weights[twin.metal] = (element_weights(twin, kv, inner_mrad, outer_mrad)[twin.metal]
                               * (lo2 + place * (hi2 - lo2)))
    for el in supported_substituents(material):
        weights[el] *= (substituent_factors or {}).get(
            el, float(np.mean(_substituent_factor_range(material, el))))
    light = material.light_substituent
    single = weights[light] / weights[material.chalcogen]
    phi1 = inner_phase(kv, inner_mrad, material)
    damping = thermal_damping

    def cross_term(chalcogen: str) -> float:
        phonon = coherence(kv, inner_mrad, material, chalcogen) * phonon_jitter
        static = static_coherence(phi1, chalcogen) + static_jitter
        return max(damping * phonon + (1 - damping) * static, MIN_COHERENCE)

    c = cross_term(material.chalcogen)
    # The other of S and Se: its own pair's cross term at this microscope (same jitters); a
    # column holding it reads the mean of the host's and its own (column_weight).
    partner = partner_chalcogen(material)
    c_partner = None if partner is None else cross_term(partner)
    k = damping * light_coherence(phi1) + (1 - damping) * 1.0 + light_jitter
    k = float(np.clip(k, *LIGHT_COHERENCE_RANGE))
    c_light = 0.5 * (c + c_partner) if light == partner and c_partner is not None else c
    light_ratio = max(single + 2.0 * k * c_light * np.sqrt(single), MIN_LIGHT_RATIO * single)
    heavy_asym, light_asym = order_asymmetry(phi1, material.chalcogen, damping)
    return {
        "element_weights": weights,
        "light_ratio": float(light_ratio),
        "second_atom_factor": 1.0 + 2.0 * c,
        "partner_cross_term": None if c_partner is None else float(c_partner),
        "heavy_order_asymmetry": heavy_asym,
        # Not capped at the mean excess: on the exit side the light substituent takes signal
        # away at high angles (converged runs: O in S2 down to -0.18 S atoms, S in Se2 to -0.11
        # Se atoms, while the mean excess is near 0).
        "light_order_asymmetry": light_asym,
        "detector": {"kv": kv, "inner_mrad": inner_mrad, "outer_mrad": outer_mrad},
        "thermal_damping": damping,
    }
