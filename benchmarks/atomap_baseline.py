"""Classical atomap pipeline for point defects in HAADF-STEM images of monolayer 2H-MoS2.

The reference pipeline an expert would build with atomap (no learning, nothing tuned per image
or to ground truth); its only inputs are the image, the pixel size and the material (MoS2,
a = 3.16 A, chalcogen S, light substituent O):

1. **Columns.** ``atomap.get_atom_positions`` finds all column peaks on a lightly smoothed copy;
   a two-component Gaussian mixture on the peak intensities separates the bright Mo peaks from
   the S2 peaks.
2. **Lattice.** The Mo nearest-neighbour vectors give the hexagonal lattice vectors; an affine
   lattice (origin, a1, a2) is fitted by least squares to the indexed Mo peaks (grown outwards
   from the centre), and a smooth local displacement field (median residual of the neighbouring
   Mo peaks) corrects scan distortion. Every Mo site, every chalcogen site (``(a1+a2)/3`` or
   ``2(a1+a2)/3``, whichever is brighter) and every empty hollow site of the field of view is
   predicted, so vacant columns (V_Mo, V_S2) are sites like the others.
3. **Refinement.** Every Mo column is refined with atomap (centre of mass, then 2-D Gaussian);
   the fitted Mo Gaussians (``Sublattice.get_model_image``, plus round median Gaussians for the
   border and just-outside columns) are subtracted, and every chalcogen column is refined on
   that difference image. A column whose fitting disc is cut by the border is not refined, and
   one whose fit ran more than 0.35 A off its site (a vacancy) keeps the predicted site.
4. **Intensity.** Each column's intensity is the amplitude of a Gaussian of fixed shape (the
   median fitted width of its sublattice) at the refined position, by least squares on the
   image (Mo) or the Mo-subtracted image (chalcogen), less the local background: the median of
   the same measurement at the empty hollow sites within two lattice constants.
5. **Classification.** Per image, a Gaussian mixture on the Z-contrast ladder of the chalcogen
   intensities (EM): a three-rung mixture (empty / single atom / S2) finds the single-atom
   rung, whose lower and upper quartiles start the V_S and O_S rungs of a four-rung mixture
   with free ordered means and a shot-noise variance model; each site takes its most probable
   rung (:func:`ladder_mixture`). A metal site below half the median Mo intensity is V_Mo.

The baseline of the side-by-side in docs/benchmarks.md (issue "Scale": the detector against
an expert atomap pipeline). It needs atomap, which this package does not depend on: run it in a
venv of its own (``python -m venv atomap-venv && atomap-venv/bin/pip install atomap
scikit-learn pandas``; atomap 0.4.2 with hyperspy 2.5.0 were measured), and score it beside
the detector with ``benchmarks/bench_atomap.py`` (the package's venv). Usage::

    atomap-venv/bin/python benchmarks/atomap_baseline.py IMAGE_DIR [IMAGE_DIR ...] --out DIR

Each ``IMAGE_DIR`` holds ``image.npy`` and ``meta.json`` (``pixel_size_A``); the defects go to
``DIR/<folder name>.csv`` (``x_px, y_px, class``, ``intensity``) and the wall and CPU time
per image (and the 1-min load average after it) to ``DIR/times.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial import cKDTree
from sklearn.mixture import GaussianMixture

warnings.filterwarnings("ignore", module="hyperspy")
import atomap.api as am  # noqa: E402
import hyperspy.api as hs  # noqa: E402

hs.set_log_level("ERROR")
# atomap warns about negative pixels (read noise, the Mo-subtracted image); its Gaussian fit
# subtracts the local minimum and clips at zero, so they are harmless here
logging.getLogger("atomap").setLevel(logging.ERROR)

#: Lattice constant of 2H-MoS2 (A).
A_MOS2 = 3.16
#: Largest move of a refined column from its predicted site before the site is kept (A).
MAX_REFINE_SHIFT_A = 0.35


# --------------------------------------------------------------------------------------------
# 1. Column finding
# --------------------------------------------------------------------------------------------
def find_mo_peaks(image: np.ndarray, d_ms: float, px_A: float) -> np.ndarray:
    """Find the Mo column peaks.

    Parameters
    ----------
    image : ndarray
        Raw image.
    d_ms : float
        Projected Mo-S2 distance in pixels (``a / sqrt(3)``).
    px_A : float
        Pixel size in A.

    Returns
    -------
    ndarray, shape (n, 2)
        Mo peak positions ``(x, y)``.
    """
    smooth = gaussian_filter(image.astype(float), 0.3 / px_A)
    signal = hs.signals.Signal2D(smooth)
    # separation: just under the Mo-S2 distance along either axis, so that every column peaks
    peaks = am.get_atom_positions(signal, separation=max(1, int(0.6 * d_ms)),
                                  subtract_background=True, threshold_rel=0.05)
    peaks = np.asarray(peaks, float)
    inten = map_coordinates(smooth - gaussian_filter(smooth, 3 * d_ms),
                            [peaks[:, 1], peaks[:, 0]], order=1)
    gmm = GaussianMixture(2, random_state=0).fit(inten[:, None])
    bright = np.argmax(gmm.means_.ravel())
    is_mo = gmm.predict(inten[:, None]) == bright
    return peaks[is_mo]


# --------------------------------------------------------------------------------------------
# 2. Lattice
# --------------------------------------------------------------------------------------------
def lattice_vectors(mo: np.ndarray, a_px: float) -> np.ndarray:
    """Estimate the two hexagonal lattice vectors (60 degrees apart) from Mo neighbours.

    Parameters
    ----------
    mo : ndarray, shape (n, 2)
        Mo peaks ``(x, y)``.
    a_px : float
        Expected lattice constant in pixels.

    Returns
    -------
    ndarray, shape (2, 2)
        Rows ``a1``, ``a2``.
    """
    tree = cKDTree(mo)
    pairs = tree.query_pairs(1.3 * a_px, output_type="ndarray")
    vec = mo[pairs[:, 1]] - mo[pairs[:, 0]]
    length = np.hypot(*vec.T)
    near = (length > 0.75 * a_px) & (length < 1.25 * a_px)
    vec, length = vec[near], length[near]
    ang6 = 6 * np.arctan2(vec[:, 1], vec[:, 0])
    theta = np.arctan2(np.sin(ang6).mean(), np.cos(ang6).mean()) / 6
    a = np.median(length)
    return a * np.array([[np.cos(theta), np.sin(theta)],
                         [np.cos(theta + np.pi / 3), np.sin(theta + np.pi / 3)]])


def fit_lattice(mo: np.ndarray, vecs: np.ndarray, shape: tuple[int, int], a_px: float):
    """Index the Mo peaks and fit an affine lattice, growing outwards from the image centre.

    Parameters
    ----------
    mo : ndarray, shape (n, 2)
        Mo peaks ``(x, y)``.
    vecs : ndarray, shape (2, 2)
        Initial lattice vectors (rows).
    shape : tuple of int
        Image shape ``(h, w)``.
    a_px : float
        Lattice constant in pixels.

    Returns
    -------
    origin : ndarray, shape (2,)
    vecs : ndarray, shape (2, 2)
        Fitted lattice vectors (rows).
    ij : ndarray of int, shape (n, 2)
        Lattice indices of the peaks.
    inlier : ndarray of bool
        Peaks that sit on their site (residual below 0.3 a).
    """
    centre = np.array([shape[1], shape[0]], float) / 2
    origin = mo[np.argmin(np.hypot(*(mo - centre).T))].copy()
    dist = np.hypot(*(mo - origin).T)
    for radius in (4, 8, 16, 32, 64, np.inf):
        use = dist <= radius * a_px
        frac = (mo - origin) @ np.linalg.inv(vecs)
        ij = np.rint(frac).astype(int)
        for _ in range(3):
            resid = mo - origin - ij @ vecs
            ok = use & (np.hypot(*resid.T) < 0.3 * a_px)
            if ok.sum() < 4:
                break
            design = np.c_[np.ones(ok.sum()), ij[ok]]
            coef, *_ = np.linalg.lstsq(design, mo[ok], rcond=None)
            new_origin, vecs = coef[0], coef[1:]
            ij = np.rint((mo - new_origin) @ np.linalg.inv(vecs)).astype(int)
            origin = new_origin
        if radius * a_px > np.hypot(*shape):
            break
    resid = mo - origin - ij @ vecs
    inlier = np.hypot(*resid.T) < 0.3 * a_px
    return origin, vecs, ij, inlier


def displacement_field(points: np.ndarray, resid: np.ndarray, radius: float):
    """Local median residual of ``points`` within ``radius``: a smooth scan-distortion field.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
        Positions where the residual was measured.
    resid : ndarray, shape (n, 2)
        Measured minus lattice position.
    radius : float
        Neighbourhood radius (px).

    Returns
    -------
    callable
        ``f(xy) -> correction`` (same shape as ``xy``).
    """
    tree = cKDTree(points)

    def field(xy: np.ndarray) -> np.ndarray:
        out = np.zeros_like(xy)
        for k, nb in enumerate(tree.query_ball_point(xy, radius)):
            if len(nb) == 0:
                nb = [tree.query(xy[k])[1]]
            out[k] = np.median(resid[nb], axis=0)
        return out

    return field


def predict_sites(origin, vecs, shape, offset, margin=-0.5):
    """All lattice sites ``origin + offset + i*a1 + j*a2`` inside the field of view.

    Parameters
    ----------
    origin : ndarray, shape (2,)
    vecs : ndarray, shape (2, 2)
    shape : tuple of int
        Image shape ``(h, w)``.
    offset : ndarray, shape (2,)
        Offset of the sublattice from the Mo sites.
    margin : float
        Sites up to ``-margin`` px outside the pixel centres count (default -0.5: the sites
        whose centre lies on a pixel of the image).

    Returns
    -------
    ndarray, shape (n, 2)
        Site positions ``(x, y)`` with ``margin <= x < w - 1 - margin`` and the same for y.
    """
    h, w = shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float) - origin - offset
    frac = corners @ np.linalg.inv(vecs)
    lo, hi = np.floor(frac.min(0)) - 1, np.ceil(frac.max(0)) + 1
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ij = np.c_[ii.ravel(), jj.ravel()]
    xy = origin + offset + ij @ vecs
    keep = ((xy[:, 0] >= margin) & (xy[:, 0] < w - 1 - margin)
            & (xy[:, 1] >= margin) & (xy[:, 1] < h - 1 - margin))
    return xy[keep]


# --------------------------------------------------------------------------------------------
# 3. Refinement
# --------------------------------------------------------------------------------------------
def refine(image: np.ndarray, sites: np.ndarray, mask_radius: float, max_shift: float):
    """Refine every column of one sublattice with atomap (centre of mass, then 2-D Gaussian).

    A column whose fitting disc is cut by the image border is not refined (a fit to a truncated
    column runs inwards) and keeps its predicted site, as does a column whose fit ran away.

    Parameters
    ----------
    image : ndarray
        Image to refine on.
    sites : ndarray, shape (n, 2)
        Predicted sites ``(x, y)``.
    mask_radius : float
        Fitting mask radius (px).
    max_shift : float
        A column that moved further than this from its site keeps the predicted site; columns
        closer than ``mask_radius + max_shift + 1`` to the border are not refined.

    Returns
    -------
    xy : ndarray, shape (n, 2)
        Refined positions.
    sublattice : atomap.Sublattice
        The refined sublattice (Gaussian parameters per column).
    fitted : ndarray of bool, shape (n,)
        Columns whose 2-D Gaussian fit succeeded and stayed on its site.
    inner : ndarray of bool, shape (n,)
        Columns far enough from the border to be refined.
    """
    h, w = image.shape
    sub = am.Sublattice(sites.copy(), image=image.astype(float))
    sub.find_nearest_neighbors()
    edge = mask_radius + max_shift + 1  # the fitting disc stays inside even after a shift
    inner = ((sites[:, 0] >= edge) & (sites[:, 0] <= w - 1 - edge)
             & (sites[:, 1] >= edge) & (sites[:, 1] <= h - 1 - edge))
    for atom, ok in zip(sub.atom_list, inner, strict=True):
        atom.refine_position = bool(ok)
    sub.refine_atom_positions_using_center_of_mass(mask_radius=mask_radius,
                                                   show_progressbar=False)
    for atom, (x, y) in zip(sub.atom_list, sites, strict=True):  # a centre of mass that ran off restarts
        if not np.hypot(atom.pixel_x - x, atom.pixel_y - y) <= max_shift:
            atom.pixel_x, atom.pixel_y = x, y
    sub.refine_atom_positions_using_2d_gaussian(mask_radius=mask_radius,
                                                show_progressbar=False)
    xy = np.c_[sub.x_position, sub.y_position]
    moved = ~(np.hypot(*(xy - sites).T) <= max_shift)  # NaN (failed fit) counts as moved
    xy[moved] = sites[moved]
    fitted = inner & ~moved & np.array([a._gaussian_fitted and a.amplitude_gaussian > 0
                                        for a in sub.atom_list])
    sig = np.sqrt(np.abs(np.asarray(sub.sigma_x) * np.asarray(sub.sigma_y)))
    if fitted.any():  # a width far from the sublattice's is a failed fit too
        s_med = np.median(sig[fitted])
        fitted &= (sig > 0.5 * s_med) & (sig < 2 * s_med)
    return xy, sub, fitted, inner


def model_image(shape, sub, fitted, border_xy):
    """Image of a sublattice's Gaussians (to subtract it).

    The columns fitted by atomap use their own Gaussians (``Sublattice.get_model_image``);
    ``border_xy`` -- the columns at the border, which are not fitted, and those just outside
    the image whose tails reach into it -- a round Gaussian of the median fitted height and
    width. An inner column whose fit failed (a vacancy, mostly) adds nothing.

    Parameters
    ----------
    shape : tuple of int
    sub : atomap.Sublattice
    fitted : ndarray of bool
    border_xy : ndarray, shape (m, 2)

    Returns
    -------
    ndarray
    """
    volume = np.asarray(sub.atom_amplitude_gaussian2d, float)  # HyperSpy's A: the volume
    sig = np.sqrt(np.abs(np.asarray(sub.sigma_x) * np.asarray(sub.sigma_y)))
    height = np.median(volume[fitted] / (2 * np.pi * sig[fitted] ** 2))
    s_med = np.median(sig[fitted])
    for atom, ok in zip(sub.atom_list, fitted, strict=True):
        if not ok:
            atom.amplitude_gaussian = 0.0
    out = sub.get_model_image(show_progressbar=False).data
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    r = int(np.ceil(5 * s_med))
    for x, y in border_xy:
        x0, y0 = int(round(x)), int(round(y))
        sl = (slice(max(y0 - r, 0), max(y0 + r + 1, 0)), slice(max(x0 - r, 0), max(x0 + r + 1, 0)))
        out[sl] += height * np.exp(-((xx[sl] - x) ** 2 + (yy[sl] - y) ** 2) / (2 * s_med ** 2))
    return out


# --------------------------------------------------------------------------------------------
# 4. Intensity
# --------------------------------------------------------------------------------------------
def gaussian_amplitude(image: np.ndarray, xy: np.ndarray, sigma: float, radius: float):
    """Least-squares amplitude of a Gaussian of fixed width at each position (no background).

    Parameters
    ----------
    image : ndarray
    xy : ndarray, shape (n, 2)
        Centres ``(x, y)``.
    sigma : float
        Gaussian width (px).
    radius : float
        Only pixels within this radius count (px); pixels outside the image are left out.

    Returns
    -------
    ndarray, shape (n,)
        ``sum(w * I) / sum(w**2)`` over the disc, ``w`` the unit-height Gaussian.
    """
    h, w = image.shape
    r = int(np.ceil(radius)) + 1
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    out = np.empty(len(xy))
    for k, (x, y) in enumerate(xy):
        cx, cy = int(round(x)), int(round(y))
        yy, xx = cy + dy, cx + dx
        ddx, ddy = xx - x, yy - y
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w) & (ddx ** 2 + ddy ** 2 <= radius ** 2)
        wgt = np.exp(-(ddx[inside] ** 2 + ddy[inside] ** 2) / (2 * sigma ** 2))
        out[k] = (wgt * image[yy[inside], xx[inside]]).sum() / (wgt ** 2).sum()
    return out


def local_background(xy: np.ndarray, hollow_xy: np.ndarray, hollow_amp: np.ndarray,
                     radius: float) -> np.ndarray:
    """Median hollow-site measurement within ``radius`` of each position.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
    hollow_xy : ndarray, shape (m, 2)
    hollow_amp : ndarray, shape (m,)
    radius : float

    Returns
    -------
    ndarray, shape (n,)
    """
    tree = cKDTree(hollow_xy)
    out = np.empty(len(xy))
    for k, nb in enumerate(tree.query_ball_point(xy, radius)):
        if len(nb) < 3:
            nb = tree.query(xy[k], k=min(6, len(hollow_xy)))[1]
        out[k] = np.median(hollow_amp[nb])
    return out


def sublattice_sigma(sub, fitted: np.ndarray) -> float:
    """Median fitted Gaussian width (geometric mean of the two axes) of the fitted columns (px)."""
    s = np.sqrt(np.abs(np.asarray(sub.sigma_x) * np.asarray(sub.sigma_y)))
    return float(np.median(s[fitted]))


# --------------------------------------------------------------------------------------------
# 5. Classification
# --------------------------------------------------------------------------------------------
def _em(x, mu, pi, var_model, n_iter=300, floor=1e-6):
    """EM for a 1-D Gaussian mixture with free means and a variance model (returned in order).

    Parameters
    ----------
    x : ndarray, shape (n,)
    mu, pi : ndarray, shape (k,)
        Initial means (ascending) and weights.
    var_model : {"free", "shot"}
        ``free``: one variance per component; ``shot``: ``v0 + v1 * mu_k / mu_max`` shared by
        all components (shot noise grows with the column's intensity).
    n_iter : int
    floor : float
        Smallest variance.

    Returns
    -------
    r : ndarray, shape (n, k)
        Responsibilities.
    mu, sd, pi : ndarray, shape (k,)
    """
    k = len(mu)
    med = np.median(x)
    var = np.full(k, (1.4826 * np.median(np.abs(x - med))) ** 2)
    for _ in range(n_iter):
        logp = np.log(pi) - 0.5 * np.log(2 * np.pi * var) - 0.5 * (x[:, None] - mu) ** 2 / var
        logp -= logp.max(1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(1, keepdims=True)
        nk = r.sum(0) + 1e-12
        mu = (r * x[:, None]).sum(0) / nk
        s2 = (r * (x[:, None] - mu) ** 2).sum(0) / nk
        if var_model == "free":
            var = np.maximum(s2, floor)
        else:  # weighted least squares of s2 on [1, mu / mu_top]
            u = mu / mu.max()
            D = np.c_[np.ones(k), u] * np.sqrt(nk)[:, None]
            v0, v1 = np.linalg.lstsq(D, s2 * np.sqrt(nk), rcond=None)[0]
            var = np.maximum(max(v0, floor) + max(v1, 0.0) * u, floor)
        pi = (nk + 1.0) / (nk.sum() + k)
    order = np.argsort(mu)
    return r[:, order], mu[order], np.sqrt(var[order]), pi[order]


def ladder_mixture(x: np.ndarray):
    """Per-image Gaussian mixture on the Z-contrast ladder of the chalcogen intensities.

    Rungs: empty (V_S2), one S (V_S), S + O (O_S), pristine S2. A three-rung mixture (empty,
    single, pristine; means start at ``0, m/2, m`` with ``m`` the median, i.e. the pristine
    intensity, and are then free) finds the single-atom rung, which in multislice images is not
    at half the S2 rung (channelling and the detector range move it); its sites' lower and upper
    quartiles start the V_S and O_S rungs (O adds a little to the remaining S) of a four-rung
    mixture with free ordered means and a shot-noise variance model ``v0 + v1 * mu / mu_S2``,
    fitted by EM. Each site takes its most probable rung; where the V_S and O_S rungs merge (means
    closer than half a standard deviation) the whole single-atom rung is V_S.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Background-subtracted chalcogen intensities.

    Returns
    -------
    labels : ndarray of str, shape (n,)
        ``V_S2``, ``V_S``, ``O_S`` or ``S2`` per site.
    params : dict
        ``means, sds, weights`` of the four rungs.
    """
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med))
    floor = 0.05 * mad ** 2
    r3, mu3, sd3, pi3 = _em(x, np.array([0.0, 0.5 * med, med]), np.array([0.03, 0.07, 0.9]),
                            "free", floor=floor)
    single = x[np.argmax(r3, 1) == 1]
    if len(single) >= 4:
        lo, hi = np.percentile(single, [25, 75])
    else:
        lo, hi = mu3[1] - sd3[1] / 2, mu3[1] + sd3[1] / 2
    mu0 = np.array([mu3[0], lo, hi, mu3[2]])
    pi0 = np.array([pi3[0], pi3[1] / 2, pi3[1] / 2, pi3[2]])
    r, mu, sd, pi = _em(x, mu0, pi0, "shot", floor=floor)
    labels = np.array(["V_S2", "V_S", "O_S", "S2"], dtype=object)[np.argmax(r, 1)]
    if mu[2] - mu[1] < 0.5 * max(sd[1], sd[2]):
        # the two single-atom rungs merged: no brighter O population is resolved, and a
        # missing S (the common defect) is the reading of a lone single-atom rung
        labels[labels == "O_S"] = "V_S"
    return labels, dict(means=mu, sds=sd, weights=pi)


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------
def analyse(image: np.ndarray, pixel_size_A: float, a_A: float = A_MOS2,
            verbose: bool = False, return_sites: bool = False):
    """Find and classify the point defects of one MoS2 image.

    Parameters
    ----------
    image : ndarray
        HAADF image (rows = y).
    pixel_size_A : float
        Pixel size (A).
    a_A : float
        Lattice constant (A).
    verbose : bool
        Print the fitted ladder.
    return_sites : bool
        Also return every site (``x_px, y_px, sublattice, class, intensity``).

    Returns
    -------
    defects : DataFrame
        ``x_px, y_px, class, intensity`` of every defect.
    sites : DataFrame
        Only with ``return_sites``.
    """
    image = np.asarray(image, float)
    a_px = a_A / pixel_size_A
    d_ms = a_px / np.sqrt(3)
    max_shift = MAX_REFINE_SHIFT_A / pixel_size_A
    mask_r = 0.5 * d_ms

    # 1-2. columns and lattice
    mo_peaks = find_mo_peaks(image, d_ms, pixel_size_A)
    vecs = lattice_vectors(mo_peaks, a_px)
    origin, vecs, ij, inlier = fit_lattice(mo_peaks, vecs, image.shape, a_px)
    resid = mo_peaks - origin - ij @ vecs
    field = displacement_field(mo_peaks[inlier], resid[inlier], 1.5 * a_px)
    t = (vecs[0] + vecs[1]) / 3
    smooth = gaussian_filter(image, 0.3 / pixel_size_A)
    mo0 = predict_sites(origin, vecs, image.shape, np.zeros(2))
    probe = [map_coordinates(smooth, [(mo0 + k * t)[:, 1], (mo0 + k * t)[:, 0]], order=1).mean()
             for k in (1, 2)]
    t_chalc, t_hollow = (t, 2 * t) if probe[0] > probe[1] else (2 * t, t)
    sites = {}
    h, w = image.shape
    for name, off in (("Mo", np.zeros(2)), ("S2", t_chalc), ("hollow", t_hollow)):
        xy = predict_sites(origin, vecs, image.shape, off, margin=-3)
        xy = xy + field(xy)
        sites[name] = xy[(xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5)
                         & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)]

    # 3. refinement: Mo on the image, chalcogen on the image less the Mo Gaussians
    mo_xy, mo_sub, mo_fit, mo_inner = refine(image, sites["Mo"], mask_r, max_shift)
    outside = predict_sites(origin, vecs, image.shape, np.zeros(2), margin=-1.5 * d_ms)
    outside = outside + field(outside)
    outside = outside[cKDTree(sites["Mo"]).query(outside)[0] > 1]
    no_mo = image - model_image(image.shape, mo_sub, mo_fit, np.r_[mo_xy[~mo_inner], outside])
    s_xy, s_sub, s_fit, _ = refine(np.maximum(no_mo, 0), sites["S2"], mask_r, max_shift)

    # 4. intensities, background from the hollow sites
    bg_r = 2 * a_px
    sig_mo, sig_s = sublattice_sigma(mo_sub, mo_fit), sublattice_sigma(s_sub, s_fit)
    amp_mo = gaussian_amplitude(image, mo_xy, sig_mo, mask_r)
    amp_mo -= local_background(mo_xy, sites["hollow"],
                               gaussian_amplitude(image, sites["hollow"], sig_mo, mask_r), bg_r)
    amp_s = gaussian_amplitude(no_mo, s_xy, sig_s, mask_r)
    amp_s -= local_background(s_xy, sites["hollow"],
                              gaussian_amplitude(no_mo, sites["hollow"], sig_s, mask_r), bg_r)

    # 5. classification
    cls, params = ladder_mixture(amp_s)
    if verbose:
        m = params["means"][-1]
        print(f"   sites Mo={len(mo_xy)} S2={len(s_xy)} hollow={len(sites['hollow'])} "
              f"sigma Mo={sig_mo:.2f} S={sig_s:.2f} px; rungs/S2 "
              f"{np.round(params['means'] / m, 3).tolist()} sd {np.round(params['sds'] / m, 3).tolist()}"
              f" w {np.round(params['weights'], 3).tolist()}")
    # a V_S2 sits where no column is: report its predicted site, the others their refined column
    rows = []
    for i in np.flatnonzero(cls != "S2"):
        x, y = sites["S2"][i] if cls[i] == "V_S2" else s_xy[i]
        rows.append((x, y, cls[i], amp_s[i]))
    mo_thresh = 0.5 * np.median(amp_mo)
    rows += [(*sites["Mo"][i], "V_Mo", amp_mo[i]) for i in np.flatnonzero(amp_mo < mo_thresh)]
    defects = pd.DataFrame(rows, columns=["x_px", "y_px", "class", "intensity"])
    if not return_sites:
        return defects
    all_sites = pd.concat([
        pd.DataFrame(dict(x_px=mo_xy[:, 0], y_px=mo_xy[:, 1], sublattice="Mo",
                          **{"class": np.where(amp_mo < mo_thresh, "V_Mo", "Mo")},
                          intensity=amp_mo)),
        pd.DataFrame(dict(x_px=s_xy[:, 0], y_px=s_xy[:, 1], sublattice="S2",
                          **{"class": cls}, intensity=amp_s))],
        ignore_index=True)
    return defects, all_sites


def main(argv: list[str] | None = None) -> None:
    """Command line: analyse each image folder, write ``<out>/<folder>.csv`` and the times."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", help="folders with image.npy and meta.json")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times_path = out / "times.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    for d in map(Path, args.dirs):
        image = np.load(d / "image.npy")
        px_A = float(json.loads((d / "meta.json").read_text())["pixel_size_A"])
        t0, c0 = time.perf_counter(), time.process_time()
        df = analyse(image, px_A, verbose=args.verbose)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        df.to_csv(out / f"{d.name}.csv", index=False, float_format="%.3f")
        times[d.name] = dict(wall=dt, cpu=dc, load1=os.getloadavg()[0])
        counts = df["class"].value_counts().to_dict()
        print(f"{d.name:36s} {image.shape[0]}x{image.shape[1]}  {dt:7.2f} s wall  {dc:7.2f} s cpu"
              f"  (load {os.getloadavg()[0]:.1f})  {counts}", flush=True)
    times_path.write_text(json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
