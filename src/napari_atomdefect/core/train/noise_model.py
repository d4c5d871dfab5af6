"""Measure how a real microscope degrades an image, to carry it onto simulated cells.

The bundled MoS2 model has no real MoS2 image to learn from: the real images at hand are WS2/WSSe,
whose metal/chalcogen contrast must not leak into a MoS2 model. So the realistic domain of the
noise-transfer stage is built from *simulated MoS2* degraded the way the real images are: this
module measures, on real images, what does not depend on the material —

- ``snr``: metal-column contrast over the pixel noise (sets an equivalent dose),
- ``line_noise``: excess scan-line-to-line offset (horizontal streaks), relative to the metal contrast,
- ``jitter_a``: random horizontal displacement of the columns from line to line, in lattice
  constants (fast-scan jitter),
- ``fast_scan_correlation``: correlation of the noise between neighbouring pixels along a line,

and :func:`acquisition_overrides` turns them into simulator parameters.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..cells.normalize import intensity_levels
from ..lattice.lattice import Lattice
from ..lattice.mean_cell import fold_onto_cell
from ..lattice.sites import neighbour_mean
from ..robust import robust_sd


def lattice_model_image(image: np.ndarray, lattice: Lattice, bins: int = 32) -> np.ndarray:
    """The image predicted by its own mean unit cell (every cell replaced by the average cell)."""
    h, w = image.shape
    rr, cc = np.mgrid[0:h, 0:w]
    pts = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(float)
    cell, _, flat = fold_onto_cell(np.asarray(image, float).ravel(), lattice.fractional(pts), bins)
    return cell.ravel()[flat].reshape(h, w)


def measure_acquisition(image: np.ndarray, lattice: Lattice) -> dict:
    """Noise and scan-distortion figures of one real image (see the module docstring)."""
    img = np.asarray(image, np.float32)
    levels = intensity_levels(img, lattice)
    contrast = max(levels.metal - levels.background, 1e-12)
    resid = img - lattice_model_image(img, lattice)
    # Pixel noise: robust spread of the residual with the line offsets removed.
    row_means = np.median(resid, axis=1, keepdims=True)
    pix = resid - row_means
    sigma = robust_sd(pix)
    w = img.shape[1]
    excess = max(float(np.var(resid.mean(axis=1))) - sigma**2 / w, 0.0)
    # Correlation of neighbouring pixels along the fast-scan direction.
    hp = pix - ndimage.uniform_filter1d(pix, 9, axis=1)
    corr = float(np.mean(hp[:, 1:] * hp[:, :-1]) / max(np.mean(hp * hp), 1e-12))
    # Line-to-line jitter: x-scatter of metal sites about their neighbours' mean, minus the
    # measurement floor seen in y.
    ok = lattice.metal_refined
    nbr = neighbour_mean(lattice.metal_sites_px, lattice.metal_index, ok, size=3)
    d = lattice.metal_sites_px - nbr
    d = d[ok & np.isfinite(d).all(1)]
    jitter_px = float(np.sqrt(max(np.var(d[:, 1]) - np.var(d[:, 0]), 0.0))) if len(d) > 10 else 0.0
    return {
        "snr": float(contrast / max(sigma, 1e-12)),
        "line_noise": float(np.sqrt(excess) / contrast),
        "jitter_a": jitter_px / lattice.a_px,
        "fast_scan_correlation": corr,
        "pixel_size_nm": lattice.pixel_size_nm,
        "a_px": lattice.a_px,
    }


def acquisition_overrides(measured: dict, rng: np.random.Generator, a_nm: float) -> dict:
    """Scan-line noise and jitter of one measured acquisition, with ±30 % spread.

    ``line_noise`` is in the units of :func:`measure_acquisition`; the training pipeline converts
    it (and the SNR, into a dose) by measuring a simulation the same way.
    """
    spread = rng.uniform(0.7, 1.3, 2)
    return {
        "line_noise": float(measured["line_noise"] * spread[0]),
        "row_jitter_nm": float(measured["jitter_a"] * a_nm * spread[1]),
    }
