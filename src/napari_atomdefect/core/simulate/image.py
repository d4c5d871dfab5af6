"""Fast incoherent HAADF-STEM simulator for 2H-TMD monolayers with labelled point defects.

The model is the incoherent imaging approximation: the image is a sum over atomic columns of a
column weight times the probe intensity (a narrow Gaussian core plus a broad tail, which also absorbs
the effective source size), seen through a distorted scan, on a smooth background, with Poisson shot
noise at a given dose and Gaussian read noise.

Column weights follow what a column holds (:class:`~..materials.columns.ColumnClass` ``atoms``)
and single-atom weights ``w(Z)`` (``Z**n`` by default, or HAADF cross-sections). Two atoms in a
column add coherently, as frozen-phonon multislice shows (docs/physics.md):
``w1 + w2 + 2c sqrt(w1 w2)`` with ``c = (second_atom_factor - 1) / 2``; a light substituent (O in
S, S in Se) beside a host atom adds ``light_ratio`` host atoms (its own weakened cross term
included; see :mod:`..materials.physics`).

Coordinates are ``(row, col)`` pixels with pixel centres at integers, as in numpy arrays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ..materials.columns import (
    ColumnClass,
    antisite_class,
    column_classes,
    lookup_class,
    parse_substituents,
    supported_substituents,
)
from ..materials.materials import ATOMIC_NUMBER, METAL_PARTNER, Material, get_material

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

#: Default fraction of sites carrying a defect of each generic kind (of chalcogen sites, or of
#: metal sites for ``V_M``); per substituent for ``D_X`` / ``D2_X2``. MoS2 with O keeps V_S 0.04,
#: V_S2 0.015, O_S 0.03, V_Mo 0.01.
DEFAULT_KIND_FRACTIONS: dict[str, float] = {"V_X": 0.04, "V_X2": 0.015, "D_X": 0.03,
                                            "D2_X2": 0.01, "V_M": 0.01}


def defect_fractions_for(classes: tuple[ColumnClass, ...],
                         fractions: dict[str, float] | None = None) -> dict[str, float]:
    """Fraction of sites per class name.

    Parameters
    ----------
    classes : tuple of ColumnClass
        The classes to simulate.
    fractions : dict, optional
        Keys are class names (``"O_S"``) or generic kinds (``"D_X"``, applied to every class of
        that kind); a class named by neither gets 0. ``None`` uses :data:`DEFAULT_KIND_FRACTIONS`.
    """
    fractions = DEFAULT_KIND_FRACTIONS if fractions is None else fractions
    return {c.name: float(fractions.get(c.name, fractions.get(c.kind, 0.0))) for c in classes}


@dataclass
class MicroscopeParams:
    """Imaging conditions of the simulated microscope.

    Attributes
    ----------
    probe_fwhm_nm : float
        FWHM of the probe core, effective source size included.
    tail_fraction, tail_fwhm_nm : float
        Fraction of the probe intensity in a broad Gaussian tail, and its FWHM.
    z_exponent : float
        ``n`` in the column weight ``Z**n`` (1.6–2.0 at HAADF angles), used for elements that
        ``element_weights`` does not list.
    element_weights : dict or None
        Weight per element symbol (e.g. from :func:`~.physics.element_weights`, HAADF
        cross-sections of a given voltage and detector); a Mo-weight column is ``42**1.7``.
    light_ratio : float or None
        Signal the material's light substituent (O in sulfides, S in selenides) adds to a host
        chalcogen column beside one host atom, relative to one host atom (cross term included).
        ``None`` treats it as any second atom (the coherent sum below).
    second_atom_factor : float
        What the second host atom of a column adds relative to the first: ``1 + 2c`` with ``c``
        the coherent cross term of the two atoms (multislice: 1.2–1.3 at 80–200 mrad, 1.6–1.7
        at 60–160 mrad; 1 is incoherent). Two atoms ``w1``, ``w2`` give
        ``w1 + w2 + 2c sqrt(w1 w2)``.
    partner_cross_term : float or None
        Cross term ``c`` of a pair of the other of S and Se (Se in a sulfide, S in a selenide)
        at this microscope; a column holding one or two of them reads ``(c_host + c_partner)/2``
        (multislice, docs/physics.md). ``None``: the host's ``c``.
    metal_cross_section_A2 : float
        Effective HAADF cross-section (Å²) of a column of molybdenum weight: the fraction of the
        probe's electrons that reach the detector is this times the probe intensity per Å² at the
        column. Sets the electron counts together with the dose.
    heavy_order_asymmetry : float
        A heavy substituent beside a host atom adds ``1 + a`` times its mean excess when it is
        on the exit side, ``1 - a`` on the entrance side (:func:`~.physics.order_asymmetry`).
    light_order_asymmetry : float
        A light substituent adds this many host atoms more on the entrance side, less on the
        exit side.
    row_jitter_nm : float
        Standard deviation of the random horizontal shift of each scan line.
    drift_nm : float
        Amplitude of the smooth, slowly varying drift along the slow-scan axis (x and y).
    shear : float
        Horizontal shift per row (dimensionless); makes the lattice oblique.
    y_stretch : float
        Relative stretch of the slow-scan (row) axis.
    background : float
        Amplitude of the smooth background relative to the mean column signal.
    contamination : float
        Standard deviation of a patchy background (amorphous carbon or hydrocarbon
        contamination, a support film) relative to the mean column signal; it varies over
        ``contamination_length_nm`` (a Gaussian random field, shifted to be non-negative).
    contamination_length_nm : float
        Correlation length (Gaussian width) of the contamination.
    column_scatter : float
        Standard deviation of a random column-to-column variation of the signal, relative to a
        pristine chalcogen column's weight, added to every column alike (adsorbates, local tilt
        and ripple, channelling that differs from column to column; the multislice images of a
        static MoS2 lattice we measured carry about 0.055). Independent from column to column.
    line_noise : float
        Standard deviation of a random offset added to each scan line, relative to the peak of
        a Mo-weight column (horizontal streaks of real scans).
    dose_e_per_A2 : float or None
        Electron dose in e/Å². ``None`` gives the noise-free expected image.
    read_noise_e : float
        Gaussian read-out noise in electrons per pixel.
    """

    probe_fwhm_nm: float = 0.09
    tail_fraction: float = 0.15
    tail_fwhm_nm: float = 0.4
    z_exponent: float = 1.7
    element_weights: dict | None = None
    light_ratio: float | None = None
    second_atom_factor: float = 1.25
    heavy_order_asymmetry: float = 0.0
    light_order_asymmetry: float = 0.0
    partner_cross_term: float | None = None
    metal_cross_section_A2: float = 0.012
    row_jitter_nm: float = 0.004
    drift_nm: float = 0.015
    shear: float = 0.0
    y_stretch: float = 0.0
    background: float = 0.05
    contamination: float = 0.0
    contamination_length_nm: float = 0.8
    column_scatter: float = 0.0
    line_noise: float = 0.0
    dose_e_per_A2: float | None = 1e5
    read_noise_e: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator, material: str | Material = "MoS2", *,
               all_voltages: bool = False, **fixed: Any) -> MicroscopeParams:
        """Draw plausible aberration-corrected HAADF conditions at random (keywords fix values).

        Column weights come from single-atom HAADF cross-sections for a random voltage and
        detector, with the uncertain column coherence randomised (see :mod:`.physics`);
        ``all_voltages``: any voltage of the training range, else one of the held-out sets'
        (:func:`~..materials.physics.random_column_physics`).
        """
        from ..materials.physics import random_column_physics

        phys = random_column_physics(get_material(material), rng, all_voltages=all_voltages)
        values = dict(
            probe_fwhm_nm=rng.uniform(0.07, 0.12),
            tail_fraction=rng.uniform(0.05, 0.3),
            tail_fwhm_nm=rng.uniform(0.25, 0.6),
            z_exponent=rng.uniform(1.6, 2.0),
            element_weights=phys["element_weights"],
            light_ratio=phys["light_ratio"],
            second_atom_factor=phys["second_atom_factor"],
            partner_cross_term=phys["partner_cross_term"],
            heavy_order_asymmetry=phys["heavy_order_asymmetry"],
            light_order_asymmetry=phys["light_order_asymmetry"],
            metal_cross_section_A2=rng.uniform(0.006, 0.025),
            row_jitter_nm=rng.uniform(0.0, 0.012),
            drift_nm=rng.uniform(0.0, 0.04),
            shear=rng.uniform(-0.04, 0.04),
            y_stretch=rng.uniform(-0.04, 0.04),
            background=rng.uniform(0.0, 0.2),
            line_noise=rng.choice([0.0, rng.uniform(0.0, 0.04)]),
            dose_e_per_A2=10 ** rng.uniform(4.0, 6.0),
            read_noise_e=rng.uniform(0.0, 2.0),
        )
        # Drawn last, so that the draws above stay those of earlier versions for a seed.
        values.update(
            contamination=0.0 if rng.random() < 0.3 else rng.uniform(0.0, 0.12),
            contamination_length_nm=float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))),
            column_scatter=rng.uniform(0.0, 0.08),
        )
        values.update(fixed)
        return cls(**values)


@dataclass
class SimulatedImage:
    """Result of :func:`simulate_image`.

    Attributes
    ----------
    image : ndarray of float32
        Noisy image in detected electrons per pixel (equal to ``clean`` when the dose is ``None``).
    clean : ndarray of float32
        Expected electrons per pixel, without noise.
    pixel_size_nm : float
        Pixel size.
    sites : DataFrame
        Every column site in the field of view: ``y_px, x_px, sublattice ('metal'|'chalcogen'),
        class ('metal'|'chalcogen' for pristine, or a defect class), i, j`` (lattice indices).
    defects : DataFrame
        The defective sites only: ``y_px, x_px, class``.
    classes : tuple of str
        Defect classes this image could hold (channel order of
        :func:`~..materials.columns.class_names`).
    substituents : tuple of str
        Substituents simulated.
    a1_px, a2_px : ndarray
        Primitive lattice vectors ``(row, col)`` in pixels before scan distortion.
    material : Material
    params : MicroscopeParams
    rotation_deg : float
    seed : int or None
    """

    image: np.ndarray
    clean: np.ndarray
    pixel_size_nm: float
    sites: pd.DataFrame
    defects: pd.DataFrame
    a1_px: np.ndarray
    a2_px: np.ndarray
    material: Material
    params: MicroscopeParams
    rotation_deg: float
    seed: int | None = None
    extra: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    substituents: tuple[str, ...] = ()

    def metadata(self) -> dict:
        """JSON-serialisable description of the simulation."""
        return {
            "material": self.material.name,
            "pixel_size_nm": self.pixel_size_nm,
            "shape": list(self.image.shape),
            "rotation_deg": self.rotation_deg,
            "seed": self.seed,
            "a1_px": [float(v) for v in self.a1_px],
            "a2_px": [float(v) for v in self.a2_px],
            "params": asdict(self.params),
            "classes": list(self.classes),
            "substituents": list(self.substituents),
            "defect_counts": self.defects["class"].value_counts().to_dict(),
            **({"metal_atoms": self.sites["metal_atom"][self.sites.sublattice == "metal"]
                .value_counts().to_dict()} if "metal_atom" in self.sites else {}),
        }


def element_weight(symbol: str, params: MicroscopeParams, material: Material) -> float:
    """Single-atom HAADF weight of ``symbol`` (from ``element_weights``, else ``Z**n``)."""
    if params.element_weights and symbol in params.element_weights:
        return float(params.element_weights[symbol])
    return float(ATOMIC_NUMBER[symbol] ** params.z_exponent)


def column_atoms(cls: str, sublattice: str, material: Material) -> tuple[str | None, ...]:
    """What a column of class ``cls`` (``'metal'``/``'chalcogen'`` = pristine) holds, top first.

    Raises
    ------
    ValueError
        If ``cls`` is not a class of ``material`` on that sublattice.
    """
    if cls == sublattice == "metal":
        return (material.metal,)
    if cls == sublattice == "chalcogen":
        return (material.chalcogen, material.chalcogen)
    for c in column_classes(material) + (antisite_class(material),):
        if c.name == cls and c.site == sublattice:
            return c.atoms
    raise ValueError(f"{cls!r} is not a {sublattice} class of {material.name}.")


def _light_in_host(top: str | None, bottom: str | None, params: MicroscopeParams,
                   material: Material) -> bool:
    """Whether the column is one host atom and one light substituent with a set ``light_ratio``."""
    return (params.light_ratio is not None
            and {top, bottom} == {material.chalcogen, material.light_substituent})


def column_weight(cls: str, sublattice: str, params: MicroscopeParams, material: Material,
                  rng: np.random.Generator | None = None, side: float | None = None) -> float:
    """Weight of one column of a given class (``'metal'``/``'chalcogen'`` = pristine).

    Two atoms of weights ``w1``, ``w2`` give ``w1 + w2 + 2 c sqrt(w1 w2)`` with
    ``c = (second_atom_factor - 1) / 2`` (the coherent cross term measured by multislice,
    :mod:`..materials.physics`), so a host column is ``w (1 + second_atom_factor)``. A light
    substituent beside a host atom adds ``light_ratio`` host atoms to the host atom's weight.
    For a singly substituted column the top atom is drawn at random when ``rng`` is given (the
    sum does not depend on it on average; with ``rng`` the side changes the column by the
    params' order asymmetries, and without it the mean of the two orders is returned). ``top``
    is the beam's entrance side. ``side`` chooses the order instead: ``+1`` the substituent on
    the exit side, ``-1`` on the entrance side.
    """
    atoms = column_atoms(cls, sublattice, material)
    if sublattice == "metal":
        return sum(element_weight(a, params, material) for a in atoms if a is not None)
    top, bottom = atoms
    mixed = top is not None and bottom is not None and top != bottom
    sign = 0.0  # +1: the substituent on the exit side, -1: entrance, 0: the mean of both
    if mixed and (side is not None or rng is not None):
        swap = side < 0 if side is not None else rng.random() < 0.5
        if swap:  # listed as (host, substituent): swapped, the substituent is on top
            top, bottom = bottom, top
        sign = 1.0 if bottom != material.chalcogen else -1.0
    w_x = element_weight(material.chalcogen, params, material)
    if _light_in_host(top, bottom, params, material):
        return float(w_x * (1.0 + params.light_ratio - sign * params.light_order_asymmetry))
    present = [element_weight(a, params, material) for a in (top, bottom) if a is not None]
    if len(present) < 2:
        return float(sum(present))
    # Coherent cross term of the two atoms (docs/physics.md): X2 = w (1 + s), c = (s - 1) / 2.
    c = (params.second_atom_factor - 1.0) / 2.0
    partner_present = bool(({top, bottom} - {material.chalcogen}) & {"S", "Se"})
    if params.partner_cross_term is not None and partner_present:
        c = 0.5 * (c + params.partner_cross_term)
    w1, w2 = present
    if mixed and material.chalcogen in (top, bottom):  # one substituent beside one host atom
        w_d = w2 if top == material.chalcogen else w1
        excess = w_d + 2.0 * c * np.sqrt(w_x * w_d)
        return float(w_x + excess * (1.0 + sign * params.heavy_order_asymmetry))
    return float(w1 + w2 + 2.0 * c * np.sqrt(w1 * w2))


def lone_substituent_weight(symbol: str, params: MicroscopeParams, material: Material) -> float:
    """Weight of a chalcogen column left with one substituent atom ``symbol`` (its host atom
    lost): no class of ``material`` (the columns that lost one atom are classes only when the
    host atom is left, :mod:`..materials.columns`), but a level a layer of mixed columns shows
    where its vacancies took the host atom. The atom's own weight, consistent with the mixed
    column's: ``D_X = w_x + w_d + 2 c sqrt(w_x w_d)``, solved for ``w_d`` (a light substituent is
    known only by what it adds beside a host atom, ``light_ratio``)."""
    if not (params.light_ratio is not None and symbol == material.light_substituent):
        return element_weight(symbol, params, material)
    w_x = element_weight(material.chalcogen, params, material)
    c = (params.second_atom_factor - 1.0) / 2.0
    if params.partner_cross_term is not None and {symbol, material.chalcogen} == {"S", "Se"}:
        c = 0.5 * (c + params.partner_cross_term)
    excess = w_x * params.light_ratio  # = w_d + 2 c sqrt(w_x w_d)
    root = -c * np.sqrt(w_x) + np.sqrt(max(c * c * w_x + excess, 0.0))
    return float(max(root, 0.0) ** 2)


def lattice_vectors_px(material: Material, pixel_size_nm: float, rotation_deg: float) -> tuple:
    """Primitive vectors ``(row, col)`` in pixels of the hexagonal lattice, 60 degrees apart."""
    a = material.a_nm / pixel_size_nm
    t = np.deg2rad(rotation_deg)
    a1 = a * np.array([np.sin(t), np.cos(t)])
    a2 = a * np.array([np.sin(t + np.pi / 3), np.cos(t + np.pi / 3)])
    return a1, a2


def _lattice_sites(shape: tuple[int, int], a1: np.ndarray, a2: np.ndarray, origin: np.ndarray,
                   margin: float):
    """Integer indices and positions of all metal sites whose cell may touch the padded field."""
    h, w = shape
    corners = np.array([[-margin, -margin], [-margin, w + margin], [h + margin, -margin],
                        [h + margin, w + margin]], float) - origin
    basis = np.stack([a1, a2], axis=1)
    frac = np.linalg.solve(basis, corners.T).T
    lo = np.floor(frac.min(axis=0)) - 1
    hi = np.ceil(frac.max(axis=0)) + 1
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], axis=1)
    pos = origin + ij @ np.stack([a1, a2])
    inside = ((pos[:, 0] > -margin) & (pos[:, 0] < h + margin)
              & (pos[:, 1] > -margin) & (pos[:, 1] < w + margin))
    return ij[inside].astype(int), pos[inside]


def _smooth_noise_1d(n: int, corr: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-amplitude smooth random curve of length ``n`` with correlation ``corr``."""
    x = ndimage.gaussian_filter1d(rng.standard_normal(n + 1), max(corr, 1.0), mode="wrap")[:n]
    return x / (np.abs(x).max() + 1e-12)


def _scan_distortion(h: int, px_nm: float, params: MicroscopeParams, rng: np.random.Generator):
    """Per-row shifts ``(dy, dx)`` in pixels: image(r, c) samples the specimen at (r+dy, c+dx)."""
    rows = np.arange(h, dtype=float)
    drift_px = params.drift_nm / px_nm
    corr = h / 4.0
    dy = drift_px * _smooth_noise_1d(h, corr, rng) + params.y_stretch * (rows - h / 2)
    dx = (drift_px * _smooth_noise_1d(h, corr, rng) + params.shear * (rows - h / 2)
          + rng.standard_normal(h) * params.row_jitter_nm / px_nm)
    return dy, dx


def _distorted_positions(q: np.ndarray, dy: np.ndarray, dx: np.ndarray, sigma_px: float):
    """Where specimen points ``q`` appear in the distorted image (probe-weighted centroid)."""
    h = dy.size
    rows = np.arange(h, dtype=float)
    p_r = q[:, 0].copy()
    for _ in range(20):  # solve p_r + dy(p_r) = q_r (dy is smooth, |dy'| << 1)
        p_r = q[:, 0] - np.interp(p_r, rows, dy)
    # Horizontal shift: average dx over the rows the column covers, weighted by the probe profile.
    off = np.arange(-int(3 * sigma_px) - 1, int(3 * sigma_px) + 2)
    rr = np.round(p_r)[:, None] + off[None, :]
    wgt = np.exp(-0.5 * ((rr - p_r[:, None]) / sigma_px) ** 2)
    wgt *= (rr >= 0) & (rr < h)
    dx_rows = dx[np.clip(rr, 0, h - 1).astype(int)]
    dx_mean = (wgt * dx_rows).sum(1) / np.maximum(wgt.sum(1), 1e-12)
    missing = wgt.sum(1) < 1e-6
    dx_mean[missing] = np.interp(p_r[missing], rows, dx)
    return np.stack([p_r, q[:, 1] - dx_mean], axis=1)


def _render_columns(shape: tuple[int, int], q: np.ndarray, weights: np.ndarray, dy: np.ndarray,
                    dx: np.ndarray, sigma_px: float) -> np.ndarray:
    """Sum of unit-integral Gaussians of width ``sigma_px`` at specimen positions ``q``, warped.

    The output is rendered on a canvas padded by the patch radius so that no bounds checks are
    needed, then cropped.
    """
    h, w = shape
    keep = weights > 0
    q, weights = q[keep], weights[keep]
    rad = int(np.ceil(4.5 * sigma_px))
    pad = 2 * rad  # centres up to rad outside the image still light its edge
    hp, wp = h + 2 * pad, w + 2 * pad
    out = np.zeros(hp * wp, dtype=np.float64)
    if q.size == 0:
        return out.reshape(hp, wp)[pad:-pad, pad:-pad]
    off = np.arange(-rad, rad + 1)
    p = _distorted_positions(q, dy, dx, sigma_px)
    centre = np.round(p).astype(int)
    vis = ((centre[:, 0] >= -rad) & (centre[:, 0] < h + rad)
           & (centre[:, 1] >= -rad) & (centre[:, 1] < w + rad))
    q, weights, centre = q[vis], weights[vis], centre[vis]
    dy_pad = np.pad(dy, pad, mode="edge").astype(np.float32)
    dx_pad = np.pad(dx, pad, mode="edge").astype(np.float32)
    norm = 1.0 / (2 * np.pi * sigma_px**2)
    inv2s2 = np.float32(0.5 / sigma_px**2)
    chunk = max(1, 2_000_000 // (off.size**2))
    for s in range(0, len(q), chunk):
        qc = q[s:s + chunk].astype(np.float32)
        wc = (weights[s:s + chunk] * norm).astype(np.float32)
        r_pad = centre[s:s + chunk, 0][:, None] + off[None, :] + pad   # (n, P)
        c_pad = centre[s:s + chunk, 1][:, None] + off[None, :] + pad   # (n, P)
        yr = (r_pad - pad).astype(np.float32) + dy_pad[r_pad] - qc[:, :1]
        gy = wc[:, None] * np.exp(-inv2s2 * yr * yr)
        # The x profile depends on the row through that scan line's horizontal shift.
        xc = ((c_pad - pad).astype(np.float32)[:, None, :] + dx_pad[r_pad][:, :, None]
              - qc[:, None, 1:2])
        vals = gy[:, :, None] * np.exp(-inv2s2 * xc * xc)
        flat = r_pad[:, :, None] * wp + c_pad[:, None, :]
        out += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=hp * wp)
    return out.reshape(hp, wp)[pad:-pad, pad:-pad]


def _smooth_background(shape: tuple[int, int], rng: np.random.Generator, n_waves: int = 4) -> np.ndarray:
    """Smooth random field in [0, 1]: a few long-wavelength plane waves (separable, fast)."""
    h, w = shape
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(n_waves):
        fy, fx = rng.uniform(-1.5, 1.5, 2) / np.array([h, w])
        phase = rng.uniform(0, 2 * np.pi)
        ay = 2 * np.pi * fy * rows + phase
        ax = 2 * np.pi * fx * cols
        field += rng.uniform(0.5, 1.0) * (np.cos(ay) * np.cos(ax) - np.sin(ay) * np.sin(ax))
    return (field - field.min()) / (np.ptp(field) + 1e-12)


def _contamination(shape: tuple[int, int], length_px: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Patchy background: white noise blurred to ``length_px``, unit standard deviation, its
    minimum at 0 (contamination only adds signal)."""
    field = _gaussian_blur_fft(rng.standard_normal(shape).astype(np.float32), max(length_px, 1.0))
    field = (field - field.mean()) / (field.std() + 1e-12)
    return (field - field.min()).astype(np.float32)


def _gaussian_blur_fft(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur through the FFT (periodic edges; for broad kernels much faster)."""
    from scipy import fft

    h, w = image.shape
    ky = fft.fftfreq(h)[:, None]
    kx = fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * np.pi**2 * sigma**2 * (ky**2 + kx**2)).astype(np.float32)
    spec = fft.rfft2(image.astype(np.float32), workers=-1)
    return fft.irfft2(spec * kernel, s=(h, w), workers=-1)


def _choose_defects(n_metal: int, n_chalc: int, classes: tuple[ColumnClass, ...],
                    fractions: dict[str, float], rng: np.random.Generator):
    """Class per metal and chalcogen site, defects drawn without replacement (channel order)."""
    metal = np.array(["metal"] * n_metal, dtype=object)
    chalc = np.array(["chalcogen"] * n_chalc, dtype=object)
    order = rng.permutation(n_chalc)
    start = 0
    for c in classes:
        if c.site != "chalcogen":
            continue
        k = int(rng.binomial(n_chalc, min(max(fractions.get(c.name, 0.0), 0.0), 1.0)))
        k = min(k, n_chalc - start)
        chalc[order[start:start + k]] = c.name
        start += k
    for c in classes:
        if c.site != "metal":
            continue
        k = int(rng.binomial(n_metal, min(max(fractions.get(c.name, 0.0), 0.0), 1.0)))
        metal[rng.permutation(n_metal)[:k]] = c.name
    return metal, chalc


#: Share of training and calibration images that are random alloys (one substituent with a
#: doubly substituted class, at a per-atom fraction drawn from ``ALLOY_FRACTION_RANGE``).
#: Detection normalises the chalcogen level to the image's median column, which in an alloy is
#: not the host column: models must see such images to read the composition from the metal
#: contrast, and their calibration must not learn that substitutions are rare.
ALLOY_PROBABILITY = 0.35
ALLOY_FRACTION_RANGE = (0.1, 1.0)
#: Per-atom fraction range of an alloying substituent that is not the host's S/Se partner (Te
#: in a selenide): past half, the layer is a telluride, which is analysed as no selenide (its
#: lattice constant is 7 % larger) and whose median column the ladder reading does not consider
#: (:func:`~..materials.columns.median_classes`).
OTHER_ALLOY_FRACTION_RANGE = (0.1, 0.5)
#: Share of the alloy images (training and calibration) that are *partly converted* layers
#: rather than random alloys: the singly and doubly substituted columns in independent
#: proportions (each drawn from :data:`PARTIAL_COLUMN_RANGE`, doubly substituted Te columns from
#: :data:`PARTIAL_OTHER_DOUBLE_RANGE`). A conversion that replaces both atoms of a column at once
#: (or one side first) leaves many more (or fewer) doubly substituted columns than atoms
#: substituted independently would: a held-out WSe2 image with 61 % Se2, 15 % S + Se and 20 % S2
#: columns had its pristine columns called `S_Se` by detectors that had seen only binomial alloys
#: (its lower ladder quantile sits on the S2 rung, which in a binomial alloy means half the
#: columns mixed).
PARTIAL_CONVERSION_SHARE = 0.4
PARTIAL_COLUMN_RANGE = (0.03, 0.4)
PARTIAL_OTHER_DOUBLE_RANGE = (0.0, 0.15)
#: Singly substituted share of a partly converted layer by the host's S/Se partner: up to a
#: Janus layer (S-W-Se, nearly every column S + Se; eighteenth session: with at most 0.4 in
#: training, a longer training round read Janus layers' S + Se columns as Se2). Its doubly
#: substituted share is drawn from :data:`PARTIAL_COLUMN_RANGE` and capped so that the two
#: leave at least :data:`PARTIAL_MIN_HOST` of the columns to the host and other classes.
PARTIAL_PARTNER_SINGLE_RANGE = (0.03, 0.95)
PARTIAL_MIN_HOST = 0.03


def alloy_fractions(material: Material, substituents: tuple[str, ...],
                    rng: np.random.Generator, base: dict[str, float],
                    probability: float = ALLOY_PROBABILITY,
                    partial_share: float = 0.0) -> dict[str, float]:
    """Defect fractions of one image: ``base`` (per kind or class), or with ``probability`` an
    alloy of one substituent ``D``.

    The alloy is random — per-atom fraction ``c`` (:data:`ALLOY_FRACTION_RANGE` for the other of
    S and Se, :data:`OTHER_ALLOY_FRACTION_RANGE` for Te), columns ``D_X`` ``2c(1-c)`` and
    ``D2_X2`` ``c²`` (binomial, atoms independent) — or, with ``partial_share`` of the alloy
    images, a partly converted layer whose ``D_X`` and ``D2_X2`` fractions are drawn
    independently (:data:`PARTIAL_PARTNER_SINGLE_RANGE` up to a Janus layer for the S/Se
    partner, :data:`PARTIAL_COLUMN_RANGE`; the default 0 draws nothing more, so that images of
    the benchmarks' seeds stay the same)."""
    from ..materials.columns import DOUBLE_SUBSTITUTION

    fractions: dict[str, float] = dict(base)
    alloying = [d for d in substituents if d in DOUBLE_SUBSTITUTION]
    if alloying and rng.random() < probability:
        d = alloying[int(rng.integers(len(alloying)))]
        x = material.chalcogen
        partner = "Se" if x == "S" else "S"
        if partial_share > 0 and rng.random() < partial_share:
            if d == partner:
                single = float(rng.uniform(*PARTIAL_PARTNER_SINGLE_RANGE))
                double = float(rng.uniform(*PARTIAL_COLUMN_RANGE))
                double = min(double, max(1.0 - PARTIAL_MIN_HOST - single, 0.0))
            else:
                single = float(rng.uniform(*PARTIAL_COLUMN_RANGE))
                double = float(rng.uniform(*PARTIAL_OTHER_DOUBLE_RANGE))
            fractions[f"{d}_{x}"] = single
            fractions[f"{d}2_{x}2"] = double
            return fractions
        c = float(rng.uniform(*(ALLOY_FRACTION_RANGE if d == partner
                                else OTHER_ALLOY_FRACTION_RANGE)))
        fractions[f"{d}_{x}"] = 2 * c * (1 - c)
        fractions[f"{d}2_{x}2"] = c * c
    return fractions


def random_alloy_fractions(material: str | Material, substituent: str, share: float,
                           substituents: str | list[str] | tuple[str, ...] | None = None,
                           base: dict[str, float] | None = None) -> dict[str, float]:
    """Defect fractions of a random alloy: a ``share`` of the host's chalcogen atoms replaced by
    ``substituent``, each independently, in a layer that also holds ``base``'s point defects
    (default :data:`DEFAULT_KIND_FRACTIONS`; ``substituents``: the others simulated). A column
    holds a point defect or its two atoms, the latter binomial: ``D_X`` ``2c(1-c)(1-v)``,
    ``D2_X2`` ``c²(1-v)`` and the host ``(1-c)²(1-v)``, ``v`` the share of the other chalcogen
    defects (the vacancies come out of every composition; taken from the host columns alone, a
    70 % Se layer held a third of its random share of S2 columns)."""
    mat = get_material(material)
    x = mat.chalcogen
    base = dict(DEFAULT_KIND_FRACTIONS if base is None else base)
    subs = tuple(dict.fromkeys((*simulated_substituents(mat, substituents), substituent)))
    own = (f"{substituent}_{x}", f"{substituent}2_{x}2")
    others = defect_fractions_for(column_classes(mat, subs), base)
    v = sum(f for name, f in others.items()
            if name not in own and (c := lookup_class(name)) is not None and c.site == "chalcogen")
    keep = max(1.0 - v, 0.0)
    return {**base, own[0]: 2 * share * (1 - share) * keep, own[1]: share * share * keep}


def simulated_substituents(material: str | Material,
                           substituents: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Substituents to simulate: ``None`` is the material's defaults (as detection), ``"all"``
    every one it supports; else as :func:`~..materials.columns.parse_substituents` reads them
    (``"Se,O"``, a list, ``""``)."""
    mat = get_material(material)
    if isinstance(substituents, str) and substituents.strip().lower() == "all":
        return supported_substituents(mat)
    return parse_substituents(substituents, mat)


def column_scatter_weight(params: MicroscopeParams, material: Material) -> float:
    """Standard deviation of the column-to-column scatter in column-weight units:
    ``params.column_scatter`` of a pristine chalcogen column's weight."""
    return float(params.column_scatter * column_weight("chalcogen", "chalcogen", params, material))


def detector_noise(clean: np.ndarray, params: MicroscopeParams,
                   rng: np.random.Generator) -> np.ndarray:
    """Counting noise of the detector on an expected image in electrons: Poisson plus Gaussian
    read-out noise (``params.dose_e_per_A2`` ``None``: the expected image itself, a copy)."""
    if params.dose_e_per_A2 is None:
        return np.asarray(clean, np.float32).copy()
    image = rng.poisson(np.maximum(clean, 0)).astype(np.float32)
    if params.read_noise_e > 0:
        image += rng.normal(0, params.read_noise_e, clean.shape).astype(np.float32)
    return image


def detected_signal(shape: tuple[int, int], q: np.ndarray, weights: np.ndarray, dy: np.ndarray,
                    dx: np.ndarray, sigma: float, pixel_size_nm: float,
                    params: MicroscopeParams) -> np.ndarray:
    """Fraction of the beam reaching the detector in each pixel, before background and noise.

    Columns of the given weights at lattice positions ``q`` (scan-distorted by ``dy, dx``) are
    blurred by the probe (Gaussian core of width ``sigma`` px plus the probe tails) and scaled by the
    metal column's cross-section. Used for single images and for every frame of a movie.
    """
    core = _render_columns(shape, q, weights, dy, dx, sigma)
    if params.tail_fraction > 0:
        tail_sigma = params.tail_fwhm_nm * FWHM_TO_SIGMA / pixel_size_nm
        extra = np.sqrt(max(tail_sigma**2 - sigma**2, 1e-6))
        core = (1 - params.tail_fraction) * core + params.tail_fraction * _gaussian_blur_fft(
            core, extra)
    # core is in columns' weight per pixel; probe intensity per Å² is that over the pixel area.
    px_area_A2 = (pixel_size_nm * 10) ** 2
    mo_weight = 42**1.7 if params.element_weights else ATOMIC_NUMBER["Mo"] ** params.z_exponent
    return core * (params.metal_cross_section_A2 / mo_weight / px_area_A2)


def simulate_image(
    material: str | Material = "MoS2",
    shape: tuple[int, int] | int = 512,
    pixel_size_nm: float = 0.012,
    params: MicroscopeParams | None = None,
    rotation_deg: float | None = None,
    defect_fractions: dict[str, float] | None = None,
    seed: int | None = None,
    dose_e_per_A2: float | None | str = "params",
    substituents: str | list[str] | tuple[str, ...] | None = None,
    metal_alloy: float = 0.0,
    antisites: float = 0.0,
) -> SimulatedImage:
    """Simulate a HAADF-STEM image of a 2H-TMD monolayer with point defects.

    Parameters
    ----------
    material : str or Material
        Preset name (``MoS2``, ``WS2``, ``MoSe2``, ``WSe2``).
    shape : int or (int, int)
        Image size in pixels.
    pixel_size_nm : float
        Pixel size in nm (typical 0.005–0.025).
    params : MicroscopeParams, optional
        Imaging conditions; defaults to :class:`MicroscopeParams()`.
    rotation_deg : float, optional
        In-plane lattice rotation; random when ``None``.
    defect_fractions : dict, optional
        Fraction of sites per defect class name or generic kind (``"V_X"``, ``"D_X"``, ...);
        classes named by neither get none. Default :data:`DEFAULT_KIND_FRACTIONS`.
    seed : int, optional
        Random seed; the same seed gives the same image.
    dose_e_per_A2 : float or None, optional
        Overrides ``params.dose_e_per_A2`` when given (``None`` = noise-free).
    substituents : str or list of str, optional
        Substituents whose classes may occur (``"Se,O"``); ``None`` = the material's defaults
        (those detection uses), ``"all"`` = every substituent it supports, ``""`` = vacancies
        only.
    metal_alloy : float, optional
        Share of the metal sites that hold the other metal of a Mo/W alloy (its single-atom
        weight from the params' ``element_weights`` — the microscope's, multislice-corrected —
        or ``Z ** z_exponent``), labelled with its
        ``D_M`` class (``W_Mo``); the sites table then has a ``metal_atom`` column too.
    antisites : float, optional
        Share of the pristine chalcogen columns that hold one atom of the host metal instead
        (a metal antisite, labelled ``M_X2``: ``Mo_S2``), weighted as one metal atom.

    Returns
    -------
    SimulatedImage

    Raises
    ------
    SubstituentError
        For a substituent the material does not support.
    """
    mat = get_material(material)
    subs = simulated_substituents(mat, substituents)
    classes = column_classes(mat, subs)
    rng = np.random.default_rng(seed)
    params = params or MicroscopeParams()
    if dose_e_per_A2 != "params":
        params = replace(params, dose_e_per_A2=dose_e_per_A2)  # type: ignore[arg-type]
    if isinstance(shape, int):
        shape = (shape, shape)
    h, w = shape
    if rotation_deg is None:
        rotation_deg = float(rng.uniform(0, 60))
    fractions = defect_fractions_for(classes, defect_fractions)

    a1, a2 = lattice_vectors_px(mat, pixel_size_nm, rotation_deg)
    sigma = params.probe_fwhm_nm * FWHM_TO_SIGMA / pixel_size_nm
    dy, dx = _scan_distortion(h, pixel_size_nm, params, rng)
    margin = 5 * sigma + np.abs(dy).max() + np.abs(dx).max() + 2
    origin = np.array([h, w], float) / 2 + rng.uniform(0, 1, 2) @ np.stack([a1, a2])
    ij, metal_q = _lattice_sites(shape, a1, a2, origin, margin)
    chalc_q = metal_q + (a1 + a2) / 3.0
    metal_cls, chalc_cls = _choose_defects(len(metal_q), len(chalc_q), classes, fractions, rng)

    w_metal = np.array([column_weight(c, "metal", params, mat) for c in metal_cls])
    other_metal = np.zeros(len(metal_q), bool)
    if metal_alloy > 0:
        other = METAL_PARTNER[mat.metal]
        other_metal = (rng.uniform(size=len(metal_q)) < metal_alloy) & (metal_cls == "metal")
        w_metal[other_metal] *= element_weight(other, params, mat) / element_weight(
            mat.metal, params, mat)
        metal_cls = np.where(other_metal, f"{other}_{mat.metal}", metal_cls).astype(object)
    if antisites > 0:
        swap = (rng.uniform(size=len(chalc_q)) < antisites) & (chalc_cls == "chalcogen")
        chalc_cls = np.where(swap, antisite_class(mat).name, chalc_cls).astype(object)
    w_chalc = np.array([column_weight(c, "chalcogen", params, mat, rng) for c in chalc_cls])
    q = np.concatenate([metal_q, chalc_q])
    weights = np.concatenate([w_metal, w_chalc])
    if params.column_scatter > 0:
        weights = np.maximum(weights + rng.normal(0, column_scatter_weight(params, mat),
                                                  len(weights)), 0.0)

    signal = detected_signal(shape, q, weights, dy, dx, sigma, pixel_size_nm, params)
    px_area_A2 = (pixel_size_nm * 10) ** 2
    mean_signal = signal.mean()
    if params.background > 0:
        bg = _smooth_background(shape, rng)
        signal = signal + params.background * mean_signal * (0.5 + bg)
    if params.contamination > 0:
        field = _contamination(shape, params.contamination_length_nm / pixel_size_nm, rng)
        signal = signal + params.contamination * mean_signal * field
    dose = params.dose_e_per_A2
    scale = (dose if dose is not None else 1e5) * px_area_A2
    clean = (signal * scale).astype(np.float32)
    line_offsets = None
    if params.line_noise > 0:
        mo_peak = scale * params.metal_cross_section_A2 / px_area_A2 / (2 * np.pi * sigma**2)
        line_offsets = rng.normal(0, params.line_noise * mo_peak, (h, 1)).astype(np.float32)
    image = detector_noise(clean, params, rng)
    if dose is not None and line_offsets is not None:
        image += line_offsets

    p = _distorted_positions(q, dy, dx, sigma)
    n_m = len(metal_q)
    sites = pd.DataFrame({
        "y_px": p[:, 0], "x_px": p[:, 1],
        "sublattice": ["metal"] * n_m + ["chalcogen"] * len(chalc_q),
        "class": np.concatenate([metal_cls, chalc_cls]).astype(str),
        "i": np.concatenate([ij[:, 0], ij[:, 0]]), "j": np.concatenate([ij[:, 1], ij[:, 1]]),
    })
    inside = (sites.y_px >= -0.5) & (sites.y_px <= h - 0.5) & (sites.x_px >= -0.5) & (
        sites.x_px <= w - 0.5)
    if metal_alloy > 0:
        sites["metal_atom"] = np.where(np.concatenate([other_metal, np.zeros(len(chalc_q), bool)]),
                                       METAL_PARTNER[mat.metal], "")
        sites.loc[sites.sublattice.eq("metal") & sites.metal_atom.eq(""), "metal_atom"] = mat.metal
    sites = sites[inside].reset_index(drop=True)
    defects = sites[~sites["class"].isin(["metal", "chalcogen"])][["y_px", "x_px", "class"]]
    return SimulatedImage(
        image=image, clean=clean, pixel_size_nm=pixel_size_nm, sites=sites,
        defects=defects.reset_index(drop=True), a1_px=a1, a2_px=a2, material=mat, params=params,
        rotation_deg=float(rotation_deg), seed=seed,
        classes=tuple(c.name for c in classes), substituents=subs,
    )
