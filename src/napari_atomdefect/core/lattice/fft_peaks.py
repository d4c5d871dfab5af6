"""Find the reciprocal basis of a hexagonal lattice from the power spectrum.

The image's power spectrum is divided by its radial median (which removes the smooth fall-off and
the rings of amorphous material), peaks are found, and every hexagon of spots is listed: three peak
directions of similar length 60 degrees apart. Of the hexagons of comparable strength the one of
lowest frequency is the first-order set (higher orders can be as strong in sharp images).

Candidate spots are the peaks of highest ratio and, besides them, those of highest power. Without
noise (simulations, very high doses) the ring background has no floor and falls by orders of
magnitude towards high frequencies, so faint high-frequency features there (scan-line streaks from
row jitter, high orders) reach ratios far above the first-order spots, which would then be missed;
the first orders always remain among the most powerful peaks. For the same reason a hexagon of
lower frequency that indexes the chosen one and carries at least 5 % of its power replaces it
(the chosen one was a higher order whose ratio dwarfed the first order's).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft

from ..errors import NoLatticeError
from .filters import maximum_box, uniform_box

#: Minimum peak-to-background ratio (disc-averaged) for a spot to count as a lattice reflection.
MIN_SPOT_RATIO = 5.0
#: Spots taken as candidates, by ratio and (again) by power.
MAX_CANDIDATES = 40
#: Longest side used for the spectrum search (larger images are cropped at the centre).
SEARCH_SIZE = 1024


@dataclass
class ReciprocalBasis:
    """Two reciprocal vectors ``(row, col)`` in cycles per pixel, and their spot strengths."""

    g1: np.ndarray
    g2: np.ndarray
    strength: float


@lru_cache(maxsize=4)
def _frequency_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The centred spectrum's row and column frequencies, their radius and its ring index
    (read-only; the same for every image of a shape: 14 ms at 1024²)."""
    ky = (np.arange(h) - h // 2) / h
    kx = (np.arange(w) - w // 2) / w
    kr = np.hypot(ky[:, None], kx[None, :])
    nbins = int(min(h, w) // 2)
    idx = np.minimum((kr / 0.5 * nbins).astype(int), nbins + 1)
    for a in (ky, kx, kr, idx):
        a.setflags(write=False)
    return ky, kx, kr, idx


@lru_cache(maxsize=4)
def _ring_counts(h: int, w: int) -> np.ndarray:
    """Pixels per ring of :func:`_frequency_grid` (read-only, cached with it)."""
    counts = np.bincount(_frequency_grid(h, w)[3].ravel(), minlength=int(min(h, w) // 2) + 2)
    counts.setflags(write=False)
    return counts


@lru_cache(maxsize=4)
def _hann_window(h: int, w: int) -> np.ndarray:
    """The separable Hann window of an ``h`` x ``w`` image, float32 (read-only, cached)."""
    win = np.hanning(h)[:, None].astype(np.float32) * np.hanning(w)[None, :].astype(np.float32)
    win.setflags(write=False)
    return win


def _max_outside_centre(spec: np.ndarray, kr: np.ndarray, radius: float) -> float:
    """``spec[kr > radius].max()`` without copying the ring: the few bins of the centre disc
    are set aside, the maximum taken over the whole spectrum, and the disc put back."""
    h, w = spec.shape
    r = int(np.ceil(radius * max(h, w))) + 1
    r0, r1 = max(h // 2 - r, 0), min(h // 2 + r + 1, h)
    c0, c1 = max(w // 2 - r, 0), min(w // 2 + r + 1, w)
    centre = kr[r0:r1, c0:c1] <= radius
    kept = spec[r0:r1, c0:c1][centre]
    spec[r0:r1, c0:c1][centre] = -np.inf
    try:
        return float(spec.max())
    finally:
        spec[r0:r1, c0:c1][centre] = kept


def _power_ratio(image: np.ndarray):
    """Centred, disc-averaged power spectrum over its radial median, the power spectrum itself,
    and the frequency grid."""
    h, w = image.shape
    img = image - image.mean()
    f = fft.fftshift(fft.fft2((img * _hann_window(h, w)).astype(np.float32, copy=False),
                              workers=-1))
    spec = uniform_box(f.real**2 + f.imag**2, 3)
    del f
    ky, kx, kr, idx = _frequency_grid(h, w)
    nbins = int(min(h, w) // 2)
    # Ring background: geometric mean of the power per ring (robust to the few spot pixels, and
    # O(N) unlike a median); x1.25 brings it to about the median of exponential noise.
    counts = _ring_counts(h, w)
    log_sum = np.bincount(idx.ravel(), weights=np.log(spec.ravel() + np.float32(1e-30)),
                          minlength=nbins + 2)
    med = 1.25 * np.exp(log_sum / np.maximum(counts, 1))
    # Noise-free images have next to no power at high frequency: without a floor, round-off
    # ripples there would look like spots.
    band_max = _max_outside_centre(spec, kr, 3.0 / min(h, w))
    med = np.maximum(med, 1e-6 * band_max)
    ratio = spec / med.astype(np.float32)[idx]
    return ratio, spec, ky, kx, kr


def _climb(power: np.ndarray, r: int, c: int, max_steps: int = 3) -> tuple[int, int]:
    """Move ``(r, c)`` uphill to a local maximum of ``power`` (at most ``max_steps`` bins)."""
    h, w = power.shape
    for _ in range(max_steps):
        r0, r1, c0, c1 = max(0, r - 1), min(h, r + 2), max(0, c - 1), min(w, c + 2)
        i, j = np.unravel_index(np.argmax(power[r0:r1, c0:c1]), (r1 - r0, c1 - c0))
        if (r0 + i, c0 + j) == (r, c):
            break
        r, c = int(r0 + i), int(c0 + j)
    return r, c


def _refine_peak(ratio: np.ndarray, r: int, c: int) -> tuple[float, float]:
    """Sub-bin peak position by parabolic interpolation of the log ratio."""
    h, w = ratio.shape
    if not (0 < r < h - 1 and 0 < c < w - 1):
        return float(r), float(c)
    lg = np.log(np.maximum(ratio[r - 1:r + 2, c - 1:c + 2], 1e-30))
    dr = 0.5 * (lg[0, 1] - lg[2, 1]) / (lg[0, 1] - 2 * lg[1, 1] + lg[2, 1] - 1e-12)
    dc = 0.5 * (lg[1, 0] - lg[1, 2]) / (lg[1, 0] - 2 * lg[1, 1] + lg[1, 2] - 1e-12)
    # (min/max, not np.clip: a tenth of the time on scalars, the same values, NaN kept)
    return r + float(min(max(dr, -0.5), 0.5)), c + float(min(max(dc, -0.5), 0.5))


def _ratio_at(ratio: np.ndarray, ky: np.ndarray, kx: np.ndarray, g: np.ndarray,
              tol_bins: float = 2.0) -> float:
    """Largest ratio within ``tol_bins`` of the frequency ``g`` (and of ``-g``)."""
    h, w = ratio.shape
    best = 0.0
    for s in (1, -1):
        r = s * g[0] * h + h // 2
        c = s * g[1] * w + w // 2
        r0, r1 = int(max(0, np.floor(r - tol_bins))), int(min(h, np.ceil(r + tol_bins) + 1))
        c0, c1 = int(max(0, np.floor(c - tol_bins))), int(min(w, np.ceil(c + tol_bins) + 1))
        if r0 < r1 and c0 < c1:
            best = max(best, float(ratio[r0:r1, c0:c1].max()))
    return best


#: A hexagon of spots within this relative distance of the expected first-order frequency (a
#: given pixel size) is taken for the first order (file calibrations can be ~10 % off; the
#: wrong orders lie √3 or 2 times farther).
EXPECTED_FREQUENCY_TOLERANCE = 0.2


def find_reciprocal_basis(image: np.ndarray, min_period_px: float = 3.0,
                          expected_g: float | None = None) -> ReciprocalBasis:
    """Find two first-order reciprocal vectors of a hexagonal lattice, 120 degrees apart.

    Parameters
    ----------
    image : ndarray
        2-D float image.
    min_period_px : float
        Shortest lattice-plane spacing considered, in pixels.
    expected_g : float, optional
        The first-order spots' frequency (cycles per pixel) a known pixel size implies. The
        strongest hexagon within :data:`EXPECTED_FREQUENCY_TOLERANCE` of it is taken, unless
        it is a higher order of a lower-frequency hexagon (a pixel size twice too large); on a
        small or noisy field the first-order spots are broad and a higher order can otherwise
        win. Without a hexagon there, the search is the same as without a pixel size.

    Returns
    -------
    ReciprocalBasis
        ``g1`` and ``g2`` with ``g1 . g2 < 0`` (so that the real-space basis is 60 degrees apart).

    Raises
    ------
    NoLatticeError
        When no hexagonal set of strong spots exists (amorphous, noise-only or non-periodic input).
    """
    ratio, power, ky, kx = _search_spectrum(image)
    triplets = hexagonal_triplets(ratio, ky, kx, min_period_px, power=power)
    blind = _blind_choice(triplets)
    if expected_g and abs(blind[1] / expected_g - 1.0) > EXPECTED_FREQUENCY_TOLERANCE:
        near = [t for t in triplets
                if abs(t[1] / expected_g - 1.0) <= EXPECTED_FREQUENCY_TOLERANCE]
        if near:
            best = max(near, key=lambda t: t[0])
            if _primitive_of(best, triplets) is None:
                return ReciprocalBasis(g1=best[2], g2=best[3], strength=float(best[0]))
        elif abs(blind[1] / (np.sqrt(3) * expected_g) - 1.0) <= EXPECTED_FREQUENCY_TOLERANCE:
            # the first-order spots too faint to be found, but present where expected?
            finer = finer_hexagon(ReciprocalBasis(g1=blind[2], g2=blind[3],
                                                  strength=float(blind[0])))
            if _stand_out(ratio, ky, kx, finer):
                return finer
    chosen = blind
    primitive = _primitive_of(chosen, triplets)
    if primitive is not None:
        return ReciprocalBasis(g1=primitive[5], g2=primitive[6], strength=float(primitive[0]))
    return ReciprocalBasis(g1=chosen[2], g2=chosen[3], strength=float(chosen[0]))


#: Hexagons whose frequencies lie within this factor of each other are one order of the
#: lattice (the orders lie √3 or 2 times apart).
SAME_ORDER_FACTOR = 1.15
#: Within one order, the hexagons at least this share of its strongest's strength stand for it
#: (the same spots located a little differently); weaker ones are side lobes.
SAME_ORDER_STRENGTH = 0.5


def _blind_choice(triplets: list) -> tuple:
    """Among hexagons of comparable strength, the lowest-frequency one: the primitive set
    (higher orders can be as strong, e.g. in noise-free or very sharp images). Hexagons of one
    order (:data:`SAME_ORDER_FACTOR`) are compared by strength first: the side lobes that an
    edge in the field (a hole, vacuum beside the crystal) puts around every spot make weaker
    hexagons a little nearer the origin, which must not win as a "lower order"."""
    strongest = max(t[0] for t in triplets)
    orders: list[list[tuple]] = []
    for t in sorted(triplets, key=lambda t: -t[0]):
        group = next((g for g in orders
                      if max(t[1], g[0][1]) / min(t[1], g[0][1]) <= SAME_ORDER_FACTOR), None)
        if group is None:
            orders.append([t])
        else:
            group.append(t)
    choices = [min((t for t in g if t[0] >= SAME_ORDER_STRENGTH * g[0][0]), key=lambda t: t[1])
               for g in orders if g[0][0] >= 0.05 * strongest]
    return min(choices, key=lambda t: t[1])


#: Least geometric mean, over a hexagon's three spots, of their ratio to the ring background
#: for spots predicted elsewhere to count as present (broad first-order spots of a field five
#: unit cells across: 4–6; where no periodicity is, about 2).
PREDICTED_SPOT_RATIO = 3.5


def finer_hexagon(basis: ReciprocalBasis) -> ReciprocalBasis:
    """The hexagon of which ``basis`` would be the second order: √3 nearer the origin, turned
    by 30°, each of its spots a third of the way between two of ``basis``'s."""
    g1, g2 = basis.g1, basis.g2
    return ReciprocalBasis(g1=(2 * g1 + g2) / 3, g2=-(g1 + 2 * g2) / 3, strength=basis.strength)


def _stand_out(ratio: np.ndarray, ky: np.ndarray, kx: np.ndarray,
               basis: ReciprocalBasis) -> bool:
    values = [_ratio_at(ratio, ky, kx, np.asarray(g, float))
              for g in (basis.g1, basis.g2, basis.g1 + basis.g2)]
    return float(np.exp(np.mean(np.log(np.maximum(values, 1e-12))))) > PREDICTED_SPOT_RATIO


def spots_stand_out(image: np.ndarray, basis: ReciprocalBasis) -> bool:
    """Whether the predicted spots of ``basis`` (``g1``, ``g2`` and ``g1 + g2``) stand out of
    the image's spectrum (geometric mean of their ratios to the ring background above
    :data:`PREDICTED_SPOT_RATIO`)."""
    ratio, _, ky, kx, _ = _power_ratio(np.asarray(image, np.float32))
    return _stand_out(ratio, ky, kx, basis)


def _indexes(basis: tuple, g: np.ndarray, tol: float = 0.2) -> bool:
    """Whether ``g`` is an integer combination of the reciprocal vectors ``basis`` (within ``tol``)."""
    coef = np.linalg.solve(np.column_stack(basis), g)
    return bool(np.all(np.abs(coef - np.round(coef)) < tol))


def _primitive_of(chosen: tuple, triplets: list) -> tuple | None:
    """The lowest-frequency hexagon of which ``chosen`` is a higher order and which has at least
    5 % of its power; ``None`` if there is none.

    Without noise the ring background falls by orders of magnitude towards high frequencies, so the
    ratios of high orders dwarf the first order's; by power and by indexing (``chosen``'s vectors
    are integer combinations of its own, spots located on the power) the first order is still told
    from a chance hexagon of faint spots.
    """
    lower = [t for t in triplets if t[1] < 0.9 * chosen[1] and t[4] >= 0.05 * chosen[4]
             and _indexes((t[5], t[6]), chosen[5]) and _indexes((t[5], t[6]), chosen[6])]
    return min(lower, key=lambda t: t[1]) if lower else None


def _search_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratio and power spectra of the image (its centre when large), and the frequency grid."""
    h, w = image.shape
    if max(h, w) > SEARCH_SIZE:
        r0, c0 = max(0, (h - SEARCH_SIZE) // 2), max(0, (w - SEARCH_SIZE) // 2)
        image = image[r0:r0 + SEARCH_SIZE, c0:c0 + SEARCH_SIZE]
    ratio, power, ky, kx, _ = _power_ratio(image)
    return ratio, power, ky, kx


def hexagonal_triplets(ratio: np.ndarray, ky: np.ndarray, kx: np.ndarray,
                       min_period_px: float = 3.0, power: np.ndarray | None = None) -> list:
    """All sets of three strong spots 60 degrees apart with similar lengths.

    Parameters
    ----------
    ratio : ndarray
        Centred power spectrum over its ring background.
    ky, kx : ndarray
        Frequencies (cycles per pixel) of the rows and columns of ``ratio``.
    min_period_px : float
        Shortest lattice-plane spacing considered, in pixels.
    power : ndarray, optional
        The centred power spectrum itself: the most powerful spots are candidates too, besides
        those of highest ratio.

    Returns
    -------
    list of tuple
        ``(weakest ratio, mean |g|, g1, g2, weakest power, q1, q2)`` with ``g1`` and ``g2`` 120
        degrees apart, and ``q1``, ``q2`` the same spots located on the power rather than the
        ratio (the power is the ratio when ``power`` is not given).

    Raises
    ------
    NoLatticeError
        If there is none.
    """
    h, w = ratio.shape
    grid = _frequency_grid(h, w)
    kr = grid[2] if ky is grid[0] and kx is grid[1] else np.hypot(ky[:, None], kx[None, :])
    k_min = 3.0 / min(h, w)          # at least ~3 periods across the field
    k_max = 1.0 / min_period_px
    band = (kr > k_min) & (kr < k_max) & (ky[:, None] >= 0)
    # (the 5 x 5 maxima are looked for around the band only: the box of rows and columns it
    # spans, two pixels wider, holds every window of its pixels — a quarter of the spectrum)
    rows, cols = np.flatnonzero(band.any(1)), np.flatnonzero(band.any(0))
    if rows.size == 0:
        raise NoLatticeError(_no_lattice_message("no periodic spots stand out in the spectrum",
                                                 (h, w)))
    r0, r1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, h)
    c0, c1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, w)
    part = ratio[r0:r1, c0:c1]
    maxima = np.zeros_like(band)
    maxima[r0:r1, c0:c1] = part == maximum_box(part, 5)
    maxima &= band & (ratio > MIN_SPOT_RATIO)
    rr, cc = np.nonzero(maxima)
    if rr.size < 2:
        raise NoLatticeError(_no_lattice_message("no periodic spots stand out in the spectrum",
                                                 (h, w)))
    strength = ratio[rr, cc]
    order = np.argsort(strength)[::-1][:MAX_CANDIDATES]
    if power is None:
        power = ratio
    else:
        # Also the most powerful spots: in noise-free or very clean images the ring background
        # falls steeply with frequency, so the highest ratios belong to faint high-frequency
        # features (scan-line streaks, high orders) and the strong low orders rank low by ratio.
        by_power = np.argsort(power[rr, cc])[::-1][:MAX_CANDIDATES]
        order = np.concatenate([order, by_power[~np.isin(by_power, order)]])
    peaks = []
    for i in order:
        pr, pc = _refine_peak(ratio, rr[i], cc[i])
        # Also where the power itself peaks: when a few spots fill much of a low-frequency ring,
        # its background steps from ring to ring and shifts the ratio's maximum by a bin or more.
        qr, qc = _refine_peak(power, *_climb(power, int(rr[i]), int(cc[i])))
        peaks.append((np.array([(pr - h // 2) / h, (pc - w // 2) / w]), float(strength[i]),
                      float(power[rr[i], cc[i]]), np.array([(qr - h // 2) / h, (qc - w // 2) / w])))

    triplets = []
    # Pairs of spots (each with the second one's sign flipped too) of similar lengths 120 +- ~13
    # degrees apart, in the order of the nested loops over them (the first of equals wins).
    g = np.array([p[0] for p in peaks]).reshape(-1, 2)
    length = np.linalg.norm(g, axis=1)
    first, second = np.triu_indices(len(peaks), k=1)
    first, second = np.repeat(first, 2), np.repeat(second, 2)
    sign = np.tile([1.0, -1.0], len(first) // 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = length[first] / length[second]
        cosang = sign * np.einsum("ij,ij->i", g[first], g[second]) / (length[first] * length[second])
    pairs = np.flatnonzero((rel > 0.8) & (rel < 1.25) & (cosang > -0.69) & (cosang < -0.31))
    for k in pairs:
        (gi, si, pi, qi), (gj, sj, pj, qj) = peaks[first[k]], peaks[second[k]]
        gj_s, qj_s = sign[k] * gj, sign[k] * qj
        li, lj = float(length[first[k]]), float(length[second[k]])
        g3 = gi + gj_s  # third first-order direction
        tol = max(2.0, 0.06 * li * h)
        s3 = _ratio_at(ratio, ky, kx, g3, tol_bins=tol)
        if s3 < MIN_SPOT_RATIO:
            continue
        p3 = _ratio_at(power, ky, kx, g3, tol_bins=tol)
        triplets.append((min(si, sj, s3), 0.5 * (li + lj), gi, gj_s, min(pi, pj, p3), qi, qj_s))
    if not triplets:
        raise NoLatticeError(_no_lattice_message("the spectrum has no hexagonal set of spots",
                                                 (h, w)))
    return triplets


#: Fields narrower than this (pixels) are named as a possible reason when no lattice is found.
SMALL_FIELD_PX = 128


def _no_lattice_message(reason: str, shape: tuple[int, int] | None = None) -> str:
    small = (f" A field of {shape[0]} × {shape[1]} px may also hold too few unit cells for "
             "their spots to stand out: analyse a larger field."
             if shape is not None and min(shape) < SMALL_FIELD_PX else "")
    return (f"No crystal lattice found: {reason}. The image may be amorphous, out of focus, too "
            f"noisy, or not an atomic-resolution image of a 2D crystal.{small}")
