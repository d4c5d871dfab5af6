"""Fit the simulator's probe and column contrast to one real image (for fine-tuning).

A fine-tuning run learns the user's microscope best from simulated training cells that already look
like it. The detector sees normalised tiles (background 0, pristine chalcogen column 1), so what must
match are the *normalised levels* the detector reads:

- ``metal``: a metal column (set by the metal/chalcogen column-weight ratio),
- ``bridge``: the midpoint between a metal and a chalcogen column (set by the probe width, with the
  measured scan jitter),
- ``V_S``, ``O_S``, …: the columns of each chalcogen defect class of the material — known only
  where the user has corrected detections. They set what the fixed-Z rule cannot: the second
  chalcogen atom's contribution (``second_atom_factor``, from the ``V_X`` class: ``V_S``,
  ``V_Se``) and the light substituent's (``light_ratio``, from its ``D_X`` class: ``O_S`` in
  sulfides, ``S_Se`` in selenides), the information that separates ``V_X`` from that class.
  Levels of the other classes (``Se_S``, ``Te2_Se2`` ...) are reported, not fitted.

The levels are measured on the image (smoothed and normalised exactly as the lattice's intensity
levels are) and on a noise-free simulation with the same pixel size and scan jitter, and the
simulator's parameters are solved for (least squares) so that both agree. Measuring both with the
same estimator makes the fit insensitive to how the estimator is biased by blur or neighbours.
Without corrections the two chalcogen parameters stay randomised over their physical range.

A handful of corrected sites measures a class level only roughly: at low dose the mean of ten
``V_S`` sites is uncertain by a few percent of a chalcogen column, which is a large part of what
separates ``V_S`` from ``O_S``. The standard errors of the measured levels are therefore carried
through the fit (its Jacobian) to the two chalcogen parameters and combined with their physical
prior (:func:`.physics.random_column_physics`, the range the bundled model was trained on): the
training images draw these parameters from that posterior, so that a few unlucky sites shift the
simulated microscope only as far as they are evidence for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from ..cells.background import hollow_sites_px
from ..cells.normalize import prepare_image, smoothed_for_sites
from ..lattice.lattice import Lattice
from ..lattice.sites import within_field
from ..materials.columns import (
    METAL_SUBSTITUENTS,
    column_classes,
    lookup_class,
    substituents_of,
)
from ..materials.materials import ATOMIC_NUMBER, Material, get_material
from ..sampling import sample_bilinear

#: Fewest corrected sites of a class for its level to be fitted.
MIN_CLASS_SITES = 3
#: Defect fractions per generic kind of the noise-free reference simulation (enough sites of
#: each class; MoS2: V_S 0.15, V_S2 0.03, O_S 0.15, V_Mo 0.02).
_REFERENCE_FRACTIONS = {"V_X": 0.15, "V_X2": 0.03, "D_X": 0.15, "D2_X2": 0.05, "V_M": 0.02}


def fitted_classes(material: Material | str) -> dict[str, str]:
    """The class whose corrected sites fit each chalcogen parameter (``V_S`` and ``O_S`` in
    MoS2, ``V_Se`` and ``S_Se`` in WSe2)."""
    mat = get_material(material)
    return {"second_atom_factor": f"V_{mat.chalcogen}",
            "light_ratio": f"{mat.light_substituent}_{mat.chalcogen}"}


def chalcogen_class_names(material: Material | str) -> list[str]:
    """The material's defect classes on chalcogen sites (every supported substituent)."""
    return [c.name for c in column_classes(material) if c.site == "chalcogen"]


def _substituent_weights(material: Material, w_chalcogen: float, exponent: float = 1.7) -> dict:
    """Single-atom weights of the supported substituents, scaled with the host chalcogen's."""
    from ..materials.columns import supported_substituents

    zx = ATOMIC_NUMBER[material.chalcogen]
    return {d: w_chalcogen * (ATOMIC_NUMBER[d] / zx) ** exponent
            for d in supported_substituents(material)}
#: Probe tail of the fit and of the training images made from it (a broad tail mostly lifts the
#: background, which normalisation removes; the core width carries what the detector sees).
REFERENCE_TAIL = {"tail_fraction": 0.15, "tail_fwhm_nm": 0.4}
#: Parameter bounds of the fit.
_BOUNDS = {"probe_fwhm_a": (0.12, 0.8), "metal_to_chalcogen": (0.8, 12.0),
           "second_atom_factor": (0.4, 2.4), "light_ratio": (0.0, 1.2)}
#: The chalcogen parameters fitted from corrected sites (with a physical prior).
CHALCOGEN_PARAMETERS = ("second_atom_factor", "light_ratio")
#: The prior's standard deviation is that of the training range times this: weakly informative,
#: so that a microscope outside the bundled model's range can still be fitted given the evidence.
PRIOR_WIDENING = 2.0


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
        Fitted from corrected ``V_X`` / light-substituent ``D_X`` sites (:func:`fitted_classes`);
        ``None`` where too few were given.
    jitter_nm : float
        The scan jitter simulated with the fit.
    measured, simulated : dict
        The levels on the image and on the fitted simulation.
    n_sites : dict
        Corrected sites used per class.
    posterior : dict
        ``{parameter: [mean, sd]}`` of the fitted chalcogen parameters once the fit's uncertainty
        (from the standard errors of the measured levels) is combined with the physical prior;
        training images draw them from it (with ``posterior_correlation`` between the two).
    """

    probe_fwhm_nm: float
    metal_to_chalcogen: float
    second_atom_factor: float | None = None
    light_ratio: float | None = None
    jitter_nm: float = 0.0
    measured: dict = field(default_factory=dict)
    simulated: dict = field(default_factory=dict)
    n_sites: dict = field(default_factory=dict)
    posterior: dict = field(default_factory=dict)
    posterior_correlation: float = 0.0
    fitted_from: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        def r(v: object) -> object:
            if isinstance(v, float):
                return round(v, 4)
            return {k: r(x) for k, x in v.items()} if isinstance(v, dict) else v
        return {k: r(v) for k, v in asdict(self).items()}

    def simulator_params(self, material: Material | str, rng: np.random.Generator,
                         spread: float = 0.05) -> dict:
        """:class:`~..simulate.image.MicroscopeParams` values for one training image (``spread``: ±)."""
        from ..materials.physics import MIN_COHERENCE, random_column_physics

        mat = get_material(material)
        phys = random_column_physics(mat, rng, all_voltages=True)
        drawn = self._draw_chalcogen(rng, spread * 0.5)
        s = drawn.get("second_atom_factor", phys["second_atom_factor"])
        light = drawn.get("light_ratio", phys["light_ratio"])
        ratio = self.metal_to_chalcogen * rng.uniform(1 - spread, 1 + spread)
        weights = dict(phys["element_weights"])
        partner = phys["partner_cross_term"]
        if partner is not None:  # the drawn microscope's partner offset, carried onto the fit
            partner = max((s - 1.0) / 2.0 + partner - (phys["second_atom_factor"] - 1.0) / 2.0,
                          MIN_COHERENCE)
        scale = weights[mat.metal] / (ratio * (1 + s)) / weights[mat.chalcogen]
        metals = {mat.metal, *METAL_SUBSTITUENTS.get(mat.metal, ())}
        for el in weights:  # the substituents keep their weight relative to the host
            if el not in metals:  # (the other metal of a Mo/W alloy: relative to the metal)
                weights[el] *= scale
        return {"probe_fwhm_nm": self.probe_fwhm_nm * rng.uniform(1 - spread, 1 + spread),
                "tail_fraction": REFERENCE_TAIL["tail_fraction"] * rng.uniform(0.7, 1.3),
                "tail_fwhm_nm": REFERENCE_TAIL["tail_fwhm_nm"] * rng.uniform(0.8, 1.2),
                "element_weights": weights, "second_atom_factor": s, "light_ratio": light,
                "partner_cross_term": partner}

    def _draw_chalcogen(self, rng: np.random.Generator, jitter: float) -> dict:
        """The fitted chalcogen parameters for one training image, drawn from the posterior
        (or around the point fit, for a fit made without one), within the fit's bounds."""
        names = [n for n in CHALCOGEN_PARAMETERS if getattr(self, n) is not None]
        if not names:
            return {}
        mean = np.array([self.posterior.get(n, (getattr(self, n), 0.0))[0] for n in names])
        sd = np.array([self.posterior.get(n, (0.0, 0.0))[1] for n in names])
        corr = np.eye(len(names))
        if len(names) == 2:
            corr[0, 1] = corr[1, 0] = self.posterior_correlation
        cov = corr * np.outer(sd, sd) + np.eye(len(names)) * jitter**2
        value = rng.multivariate_normal(mean, cov)
        return {n: float(np.clip(v, *_BOUNDS[n])) for n, v in zip(names, value, strict=True)}


@lru_cache(maxsize=8)
def chalcogen_prior(material: str) -> dict[str, tuple[float, float]]:
    """Prior mean and standard deviation of the chalcogen parameters: those of the physical range
    that :func:`.physics.random_column_physics` draws from (the bundled model's training range),
    the deviation widened by :data:`PRIOR_WIDENING`."""
    from ..materials.physics import random_column_physics

    rng = np.random.default_rng(0)
    draws = [random_column_physics(get_material(material), rng, all_voltages=True)
             for _ in range(400)]
    return {n: (float(np.mean([d[n] for d in draws])),
                PRIOR_WIDENING * float(np.std([d[n] for d in draws])))
            for n in CHALCOGEN_PARAMETERS}


def chalcogen_posterior(names: list[str], fitted: np.ndarray, jacobian: np.ndarray,
                        level_errors: np.ndarray, prior: dict) -> tuple[dict, float]:
    """Combine the fitted chalcogen parameters with their physical prior (Gaussian).

    Parameters
    ----------
    names : list of str
        All fitted parameters, in the order of ``fitted`` and of the Jacobian's columns.
    fitted : ndarray
        The least-squares solution.
    jacobian : ndarray
        d(simulated level) / d(parameter) at the solution; one row per fitted level.
    level_errors : ndarray
        Standard errors of the measured levels (same rows).
    prior : dict
        ``{parameter: (mean, sd)}`` (:func:`chalcogen_prior`).

    Returns
    -------
    posterior : dict
        ``{parameter: [mean, sd]}`` for the chalcogen parameters among ``names``.
    correlation : float
        Their posterior correlation (0 with fewer than two).
    """
    idx = [k for k, n in enumerate(names) if n in CHALCOGEN_PARAMETERS]
    if not idx:
        return {}, 0.0
    # Precision of the fit (Fisher information of the levels) plus the prior's; the other
    # parameters get a flat prior. A level that does not depend on a parameter leaves that
    # parameter at its prior.
    jac = np.asarray(jacobian, float)
    fisher = jac.T @ np.diag(1.0 / np.asarray(level_errors, float) ** 2) @ jac
    prior_mean = np.zeros(len(names))
    prior_prec = np.full(len(names), 1e-9)
    for k in idx:
        prior_mean[k], prior_prec[k] = prior[names[k]][0], 1.0 / prior[names[k]][1] ** 2
    post_cov = np.linalg.inv(fisher + np.diag(prior_prec))
    post_mean = post_cov @ (fisher @ np.asarray(fitted, float) + prior_prec * prior_mean)
    sd = np.sqrt(np.diag(post_cov))
    corr = float(post_cov[idx[0], idx[1]] / (sd[idx[0]] * sd[idx[1]])) if len(idx) == 2 else 0.0
    return ({names[k]: [round(float(post_mean[k]), 4), round(float(sd[k]), 4)] for k in idx},
            round(corr, 3))


def _levels(smoothed: np.ndarray, metal: np.ndarray, chalc: np.ndarray, hollow: np.ndarray,
            a_px: float, classes: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Normalised levels at metal, bridge and class sites of an image smoothed as
    :mod:`.normalize` smooths it, and their standard errors (from the spread of the sites'
    values)."""
    from scipy.spatial import cKDTree

    h, w = smoothed.shape

    def at(points: np.ndarray, median: bool = True) -> tuple[float, float]:
        pts = points[within_field(points, (h, w))]
        if len(pts) == 0:
            return float("nan"), float("nan")
        v = sample_bilinear(smoothed, pts[:, 0], pts[:, 1])
        se = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("inf")
        # The median of a normal sample is sqrt(pi/2) times less precise than its mean.
        return (float(np.median(v)), 1.2533 * se) if median else (float(np.mean(v)), se)

    (bg, _), (x, _) = at(hollow), at(chalc)
    scale = max(x - bg, 1e-12)
    d, k = cKDTree(metal).query(chalc, 3)
    near = d < 0.75 * a_px
    bridge = ((chalc[:, None, :] + metal[k]) / 2)[near]
    raw = {"metal": at(metal), "bridge": at(bridge)}
    for cls, pts in classes.items():
        raw[cls] = at(pts, median=False)
    return ({c: (v - bg) / scale for c, (v, _) in raw.items()},
            {c: e / scale for c, (_, e) in raw.items()})


def implied_substituents(corrections: pd.DataFrame | None) -> tuple[str, ...]:
    """The substituents whose classes the corrected defects hold (``Se`` for ``Se_S`` calls)."""
    if corrections is None or not len(corrections):
        return ()
    return tuple(sorted(substituents_of(set(corrections["class"].astype(str)))))


def measure_levels(image: np.ndarray, lattice: Lattice,
                   corrections: pd.DataFrame | None = None,
                   substituents: tuple[str, ...] | None = None) -> tuple[dict, dict, dict]:
    """Normalised levels of a real image (its local background flattened, as detection reads
    it), their standard errors, and the number of corrected sites per class.

    The levels are in host units — a host chalcogen column is 1, as in the simulation they are
    compared with — by the image's Z-contrast ladder read with ``substituents`` (default: those
    of the corrected classes, :func:`implied_substituents`): in an alloy whose median column
    holds a substituent (a real WS2 + Se image: S + Se) the median-column units had put the
    fitted metal/chalcogen contrast at half the host's (2.9 where W / S2 is 5.8)."""
    from scipy.spatial import cKDTree

    from ..cells.ladder import read_image_ladder

    chalc = lattice.chalcogen_sites_px
    classes: dict[str, np.ndarray] = {}
    if corrections is not None and len(corrections):
        d, k = cKDTree(chalc).query(corrections[["y_px", "x_px"]].to_numpy(float))
        for cls in chalcogen_class_names(lattice.material):
            sel = (corrections["class"].astype(str).to_numpy() == cls) & (d < 0.25 * lattice.a_px)
            if sel.sum() >= MIN_CLASS_SITES:
                classes[cls] = chalc[np.unique(k[sel])]
    # Read as detection reads it: local background flattened at the hollow sites.
    prepared = prepare_image(image, lattice)
    levels, errors = _levels(prepared.smoothed, lattice.metal_sites_px, chalc,
                             hollow_sites_px(lattice), lattice.a_px, classes)
    subs = implied_substituents(corrections) if substituents is None else tuple(substituents)
    host = (read_image_ladder(prepared, lattice, lattice.material, subs).host_level
            if subs else 1.0)
    if host > 0 and host != 1.0:
        levels = {c: v / host for c, v in levels.items()}
        errors = {c: e / host for c, e in errors.items()}
    return levels, errors, {c: int(len(p)) for c, p in classes.items()}


def _simulated_levels(material: Material, pixel_size_nm: float, jitter_nm: float, params: dict,
                      classes: list[str], seed: int) -> dict:
    """The same levels on a noise-free simulation (true column positions).

    The simulation holds the light substituent's classes and those of every substituent among
    ``classes``.
    """
    from ..simulate.image import MicroscopeParams, simulate_image

    a_px = material.a_nm / pixel_size_nm
    size = int(np.clip(13 * a_px, 128, 384))
    p = MicroscopeParams(**{**params, "dose_e_per_A2": None, "row_jitter_nm": jitter_nm,
                            "drift_nm": 0.0, "shear": 0.0, "y_stretch": 0.0, "background": 0.0,
                            "line_noise": 0.0})
    wanted = {material.light_substituent} | {
        c.substituent for c in map(lookup_class, classes) if c is not None and c.substituent}
    subs = [d for d in (material.light_substituent, *sorted(wanted)) if d in wanted]
    sim = simulate_image(material, size, pixel_size_nm, params=p, seed=seed,
                         defect_fractions=_REFERENCE_FRACTIONS, rotation_deg=17.0,
                         substituents=list(dict.fromkeys(subs)))
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
    return _levels(smoothed_for_sites(sim.image, a_px), metal, chalc, hollow, a_px, cls_pts)[0]


def fit_contrast(image: np.ndarray, lattice: Lattice, corrections: pd.DataFrame | None = None,
                 jitter_nm: float = 0.0, seed: int = 0,
                 substituents: tuple[str, ...] | None = None) -> ContrastFit:
    """Fit the probe width and column weights to the image's normalised levels.

    Parameters
    ----------
    image : ndarray
        The raw image.
    lattice : Lattice
        Its lattice (column positions).
    corrections : DataFrame, optional
        Checked defects (``y_px, x_px, class``); classes with at least :data:`MIN_CLASS_SITES`
        sites fit ``second_atom_factor`` (``V_S``, ``V_Se``) and ``light_ratio`` (``O_S``,
        ``S_Se``; see :func:`fitted_classes`).
    jitter_nm : float
        Measured line-to-line scan jitter (RMS, nm), simulated alongside the probe (at most
        0.05 lattice constants: larger measurements are distortion, not jitter).
    seed : int
        Seed of the reference simulation.
    substituents : tuple of str, optional
        The run's substituents, for reading the image's host level (:func:`measure_levels`;
        default: those of the corrected classes).
    """
    from scipy.optimize import least_squares

    mat = lattice.material
    jitter_nm = float(min(jitter_nm, 0.05 * mat.a_nm))
    measured, errors, n_sites = measure_levels(image, lattice, corrections, substituents)
    names = ["probe_fwhm_a", "metal_to_chalcogen"]
    targets = ["bridge", "metal"]
    fitted_from = fitted_classes(mat)
    for name in CHALCOGEN_PARAMETERS:
        if fitted_from[name] in n_sites:
            names.append(name)
            targets.append(fitted_from[name])
    targets += [c for c in n_sites if c not in targets]
    start = {"probe_fwhm_a": 0.3, "metal_to_chalcogen": max(measured["metal"], 1.0),
             "second_atom_factor": 1.3, "light_ratio": 0.35}

    def params_of(theta: np.ndarray) -> dict:
        v = dict(zip(names, theta, strict=True))
        s = v.get("second_atom_factor", 1.3)
        w_metal = 42.0**1.7
        w_x = w_metal / (v["metal_to_chalcogen"] * (1 + s))
        return {"probe_fwhm_nm": v["probe_fwhm_a"] * mat.a_nm, **REFERENCE_TAIL,
                "second_atom_factor": s,
                "light_ratio": v.get("light_ratio", 0.35),
                "element_weights": {mat.metal: w_metal, mat.chalcogen: w_x,
                                    **_substituent_weights(mat, w_x)}}

    def simulated(theta: np.ndarray) -> dict:
        return _simulated_levels(mat, lattice.pixel_size_nm, jitter_nm, params_of(theta),
                                 [c for c in n_sites], seed)

    def residual(theta: np.ndarray) -> np.ndarray:
        sim = simulated(theta)
        return np.array([sim[t] - measured[t] for t in targets[:len(names)]])

    lo = [_BOUNDS[n][0] for n in names]
    hi = [_BOUNDS[n][1] for n in names]
    x0 = np.clip([start[n] for n in names], lo, hi)
    sol = least_squares(residual, x0, bounds=(lo, hi), diff_step=0.02, max_nfev=40)
    best = dict(zip(names, sol.x, strict=True))
    fitted_targets = targets[:len(names)]
    posterior, correlation = chalcogen_posterior(
        names, sol.x, sol.jac, np.array([errors[t] for t in fitted_targets]),
        chalcogen_prior(mat.name))
    return ContrastFit(
        probe_fwhm_nm=float(best["probe_fwhm_a"] * mat.a_nm),
        metal_to_chalcogen=float(best["metal_to_chalcogen"]),
        second_atom_factor=float(best["second_atom_factor"]) if "second_atom_factor" in best
        else None,
        light_ratio=float(best["light_ratio"]) if "light_ratio" in best else None,
        jitter_nm=jitter_nm, measured=measured, simulated=simulated(sol.x), n_sites=n_sites,
        posterior=posterior, posterior_correlation=correlation,
        fitted_from={n: fitted_from[n] for n in CHALCOGEN_PARAMETERS if n in best})


__all__ = ["ContrastFit", "chalcogen_posterior", "chalcogen_prior", "fit_contrast",
           "implied_substituents", "measure_levels"]
