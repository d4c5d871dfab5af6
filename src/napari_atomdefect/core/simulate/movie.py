"""Simulated in-situ movies: one lattice drifting from frame to frame, with sulphur vacancies that
appear, hop to neighbouring chalcogen sites and change class, and their true tracks.

Frames are rendered with the pieces of :mod:`.simulate` (lattice, column weights, probe, scan
distortion, dose); every frame has its own noise and scan distortion. What belongs to the specimen
stays with it from frame to frame: the column-to-column scatter of each column
(``params.column_scatter``) and the patchy contamination (``params.contamination``), which drifts
with the lattice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..materials.materials import Material, get_material
from .image import (
    FWHM_TO_SIGMA,
    MicroscopeParams,
    _contamination,
    _lattice_sites,
    _scan_distortion,
    column_scatter_weight,
    column_weight,
    detected_signal,
    detector_noise,
    lattice_vectors_px,
)

#: Chalcogen sites one lattice constant away from chalcogen site (i, j), as index offsets.
_NEIGHBOURS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, -1], [-1, 1]])


@dataclass
class SimulatedMovie:
    """Result of :func:`simulate_movie`.

    Attributes
    ----------
    frames : ndarray of float32
        ``(frames, rows, cols)`` noisy images.
    pixel_size_nm : float
    truth : DataFrame
        The true defects: ``frame, y_px, x_px, class, track_id, i, j`` (image pixels of that
        frame; ``i, j`` the cell of the chalcogen site).
    drift_px : ndarray
        ``(frames, 2)`` shift of the specimen in each frame relative to frame 0.
    a1_px, a2_px : ndarray
    material : Material
    dose_e_per_A2_per_frame : float or None
    """

    frames: np.ndarray
    pixel_size_nm: float
    truth: pd.DataFrame
    drift_px: np.ndarray
    a1_px: np.ndarray
    a2_px: np.ndarray
    material: Material
    dose_e_per_A2_per_frame: float | None


def _vacancy_histories(n_frames: int, n_vacancies: int, candidates: np.ndarray, hop: float,
                       rng: np.random.Generator,
                       names: tuple[str, str] = ("V_S", "V_S2")) -> list[list[tuple]]:
    """Per frame, the list of ``(track, i, j, class)`` of the vacancies present.

    Vacancy ``k`` appears at a random frame (the first half of them in frame 0), hops with
    probability ``hop`` per frame to a free neighbouring chalcogen site, and the first one turns
    into a ``V_S2`` at its site in the middle of the movie.
    """
    allowed = {tuple(c) for c in candidates.tolist()}
    start = rng.permutation(len(candidates))
    sites: dict[int, tuple] = {}
    chosen: list[tuple] = []
    for idx in start:
        ij = tuple(candidates[idx].tolist())
        # At least three cells apart: tracks do not collide.
        if all(max(abs(ij[0] - o[0]), abs(ij[1] - o[1]), abs(ij[0] + ij[1] - o[0] - o[1])) >= 3
               for o in chosen):
            chosen.append(ij)
        if len(chosen) == n_vacancies:
            break
    appear = [0 if k < (len(chosen) + 1) // 2 else int(rng.integers(1, max(n_frames - 1, 2)))
              for k in range(len(chosen))]
    frames: list[list[tuple]] = []
    for f in range(n_frames):
        present = []
        for k, home in enumerate(chosen):
            if f < appear[k]:
                continue
            ij = sites.get(k, home)
            if f > appear[k] and rng.random() < hop:
                options = [tuple(np.add(ij, d).tolist()) for d in _NEIGHBOURS]
                taken = set(sites.values())
                options = [o for o in options if o in allowed and o not in taken]
                if options:
                    ij = options[int(rng.integers(len(options)))]
            sites[k] = ij
            cls = names[1] if k == 0 and f >= n_frames // 2 else names[0]
            present.append((k, ij[0], ij[1], cls))
        frames.append(present)
    return frames


def simulate_movie(material: str | Material = "MoS2", shape: int | tuple[int, int] = 256,
                   n_frames: int = 5, pixel_size_nm: float = 0.012,
                   drift_px_per_frame: tuple[float, float] = (1.5, -1.0),
                   n_vacancies: int = 4, hop_probability: float = 0.5,
                   params: MicroscopeParams | None = None, rotation_deg: float | None = None,
                   seed: int | None = 0) -> SimulatedMovie:
    """Simulate an in-situ movie with moving sulphur vacancies and their true tracks.

    Parameters
    ----------
    material : str or Material
    shape : int or (int, int)
        Frame size in pixels.
    n_frames : int
    pixel_size_nm : float
    drift_px_per_frame : (float, float)
        Specimen shift ``(row, col)`` per frame in pixels (plus a little random jitter).
    n_vacancies : int
        Vacancy tracks (half present from frame 0, the others appear later); one becomes a
        ``V_S2`` half-way.
    hop_probability : float
        Chance per frame that a vacancy hops to a neighbouring chalcogen site.
    params : MicroscopeParams, optional
        Imaging conditions (default: :class:`~.simulate.MicroscopeParams` without slow scan
        drift); ``dose_e_per_A2`` is the dose of one frame.
    rotation_deg : float, optional
        Lattice rotation (random when ``None``).
    seed : int, optional

    Returns
    -------
    SimulatedMovie
    """
    mat = get_material(material)
    rng = np.random.default_rng(seed)
    params = params or MicroscopeParams(drift_nm=0.0)
    h, w = (shape, shape) if isinstance(shape, int) else tuple(shape)
    if rotation_deg is None:
        rotation_deg = float(rng.uniform(0, 60))
    a1, a2 = lattice_vectors_px(mat, pixel_size_nm, rotation_deg)
    sigma = params.probe_fwhm_nm * FWHM_TO_SIGMA / pixel_size_nm
    origin0 = np.array([h, w], float) / 2 + rng.uniform(0, 1, 2) @ np.stack([a1, a2])
    steps = np.asarray(drift_px_per_frame, float) + rng.normal(0, 0.2, (n_frames, 2))
    steps[0] = 0.0
    drift = np.cumsum(steps, axis=0)
    # Vacancy sites: chalcogen sites at least two lattice constants inside every frame.
    a = float(np.hypot(*a1))
    ij0, metal0 = _lattice_sites((h, w), a1, a2, origin0, 0)
    chalc0 = metal0 + (a1 + a2) / 3
    lo = 2 * a + np.abs(drift).max(axis=0)
    inner = ((chalc0[:, 0] > lo[0]) & (chalc0[:, 0] < h - lo[0]) & (chalc0[:, 1] > lo[1])
             & (chalc0[:, 1] < w - lo[1]))
    vacancies = (f"V_{mat.chalcogen}", f"V_{mat.chalcogen}2")  # kinds V_X and V_X2
    histories = _vacancy_histories(n_frames, n_vacancies, ij0[inner], hop_probability, rng,
                                   vacancies)
    scatter_sd = column_scatter_weight(params, mat)
    scatter: dict[tuple[str, int, int], float] = {}  # a column's own offset, kept across frames

    def column_scatter(sublattice: str, ij: np.ndarray) -> np.ndarray:
        if scatter_sd <= 0:
            return np.zeros(len(ij))
        for key in ((sublattice, int(i), int(j)) for i, j in ij):
            if key not in scatter:
                scatter[key] = float(rng.normal(0, scatter_sd))
        return np.array([scatter[(sublattice, int(i), int(j))] for i, j in ij])

    reach = np.ceil(np.abs(drift).max(axis=0)).astype(int) + 1
    contamination = None
    if params.contamination > 0:  # one field on the specimen, cropped where each frame sees it
        contamination = _contamination((h + 2 * reach[0], w + 2 * reach[1]),
                                       params.contamination_length_nm / pixel_size_nm, rng)
    frames, rows = [], []
    for f in range(n_frames):
        origin = origin0 + drift[f]
        dy, dx = _scan_distortion(h, pixel_size_nm, params, rng)
        margin = 5 * sigma + np.abs(dy).max() + np.abs(dx).max() + 2
        # Same cell indices in every frame: index (i, j) is at origin + i a1 + j a2.
        ij, metal_q = _lattice_sites((h, w), a1, a2, origin, margin)
        chalc_q = metal_q + (a1 + a2) / 3
        where = {tuple(c): k for k, c in enumerate(ij.tolist())}
        chalc_cls = np.array(["chalcogen"] * len(chalc_q), dtype=object)
        for track, i, j, cls in histories[f]:
            k = where[(i, j)]
            chalc_cls[k] = cls
            rows.append((f, chalc_q[k, 0], chalc_q[k, 1], cls, track, i, j))
        w_metal = np.full(len(metal_q), column_weight("metal", "metal", params, mat))
        w_chalc = np.array([column_weight(c, "chalcogen", params, mat, rng) for c in chalc_cls])
        w_metal = np.maximum(w_metal + column_scatter("metal", ij), 0.0)
        w_chalc = np.maximum(w_chalc + column_scatter("chalcogen", ij), 0.0)
        patch = None
        if contamination is not None:
            r0, c0 = reach - np.rint(drift[f]).astype(int)
            patch = contamination[r0:r0 + h, c0:c0 + w]
        frames.append(_render(np.concatenate([metal_q, chalc_q]),
                              np.concatenate([w_metal, w_chalc]), (h, w), dy, dx, sigma,
                              pixel_size_nm, params, rng, patch))
    truth = pd.DataFrame(rows, columns=["frame", "y_px", "x_px", "class", "track_id", "i", "j"])
    return SimulatedMovie(frames=np.stack(frames).astype(np.float32), pixel_size_nm=pixel_size_nm,
                          truth=truth, drift_px=drift, a1_px=a1, a2_px=a2, material=mat,
                          dose_e_per_A2_per_frame=params.dose_e_per_A2)


def _render(q: np.ndarray, weights: np.ndarray, shape: tuple[int, int], dy: np.ndarray,
            dx: np.ndarray, sigma: float, pixel_size_nm: float, params: MicroscopeParams,
            rng: np.random.Generator, contamination: np.ndarray | None = None) -> np.ndarray:
    """One noisy frame in electrons per pixel (as :func:`~.image.simulate_image` renders);
    ``contamination`` is the frame's view of the specimen's contamination field."""
    signal = detected_signal(shape, q, weights, dy, dx, sigma, pixel_size_nm, params)
    px_area_A2 = (pixel_size_nm * 10) ** 2
    mean_signal = signal.mean()
    signal = signal + params.background * mean_signal
    if contamination is not None:
        signal = signal + params.contamination * mean_signal * contamination
    dose = params.dose_e_per_A2
    clean = (signal * (dose if dose is not None else 1e5) * px_area_A2).astype(np.float32)
    return detector_noise(clean, params, rng)


__all__ = ["SimulatedMovie", "simulate_movie"]
