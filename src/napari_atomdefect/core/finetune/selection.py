"""Fine-tuning, which cells: the user's selection of unit cells, checked, and their previews."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cells.tiles import TileSpec
from ..errors import AtomDefectError
from ..lattice.lattice import Lattice

#: Fewest selected cells for a meaningful fine-tuning run.
MIN_CELLS = 20


def select_cells(lattice: Lattice, points_px: np.ndarray | None = None,
                 polygons: list[np.ndarray] | None = None, select_all: bool = False) -> np.ndarray:
    """Indices (rows of ``lattice.metal_index``) of the cells picked by clicks or regions.

    Parameters
    ----------
    points_px : ndarray, optional
        Clicked positions ``(row, col)``; each picks the cell whose centre is nearest (within one
        lattice constant).
    polygons : list of ndarray, optional
        Regions (vertices ``(row, col)``); every cell whose centre lies inside is picked.
    select_all : bool
        Every cell of the image.
    """
    from scipy.spatial import cKDTree
    from skimage.measure import points_in_poly

    centres = lattice.metal_sites_px + (lattice.a1_px + lattice.a2_px) / 3
    if select_all:
        return np.arange(len(centres))
    chosen: set[int] = set()
    if points_px is not None and len(points_px):
        d, k = cKDTree(centres).query(np.asarray(points_px, float).reshape(-1, 2))
        chosen |= {int(i) for i, dist in zip(k, d, strict=True) if dist < lattice.a_px}
    for poly in polygons or []:
        inside = points_in_poly(centres[:, ::-1], np.asarray(poly, float)[:, ::-1])
        chosen |= set(np.nonzero(inside)[0].tolist())
    return np.array(sorted(chosen), int)


def corrections_in_cells(lattice: Lattice, cell_ids: np.ndarray,
                         corrections: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``corrections`` (a defect table, ``y_px``/``x_px``) that lie on the selected
    cells' own sites: within a quarter lattice constant of a cell's metal site or of its
    chalcogen column (at the cell's centre). What the user reviewed is what the selected cells
    hold; calls elsewhere in the image were not looked at."""
    from scipy.spatial import cKDTree

    ids = np.asarray(cell_ids, int)
    if len(corrections) == 0 or len(ids) == 0:
        return corrections.iloc[:0]
    metal = lattice.metal_sites_px[ids]
    own = np.concatenate([metal, metal + (lattice.a1_px + lattice.a2_px) / 3])
    dist, _ = cKDTree(own).query(corrections[["y_px", "x_px"]].to_numpy(float))
    return corrections[dist < 0.25 * lattice.a_px]


def unreviewed_note(lattice: Lattice, cell_ids: np.ndarray, corrections: pd.DataFrame) -> str:
    """A warning when the detections the run learns from hold no correction by hand on the
    selected cells: unless every call there was right, the run then learns the base detector's
    own calls, and its check on held-out cells compares the detector with itself."""
    on_cells = corrections_in_cells(lattice, cell_ids, corrections)
    if "source" in on_cells and (on_cells["source"].astype(str) == "manual").any():
        return ""
    return (f"None of the {len(cell_ids)} selected cells holds a call added or changed by hand "
            "(a deleted call leaves no mark in the table): unless you reviewed them and every "
            "call was right, or only deleted wrong ones, the run learns the detections as they "
            "are. Review (and correct) the selected cells first.")


def check_selection(lattice: Lattice, cell_ids: np.ndarray) -> None:
    """Raise a clear error for empty, out-of-range or too small selections."""
    if len(cell_ids) == 0:
        raise AtomDefectError("No cells are selected: click on cells, draw a region over them, "
                              "or choose all cells of the image.")
    if np.any(cell_ids < 0) or np.any(cell_ids >= lattice.n_cells):
        raise AtomDefectError("Some selected cells are outside the image's lattice.")
    if len(cell_ids) < MIN_CELLS:
        raise AtomDefectError(
            f"Only {len(cell_ids)} cell{' is' if len(cell_ids) == 1 else 's are'} selected; "
            f"at least {MIN_CELLS} are needed for the "
            "noise-transfer network to learn your microscope's noise (50 or more work better).")


def preview_tiles(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                  spec: TileSpec = TileSpec()) -> np.ndarray:
    """Raw (not normalised) tiles ``(N, S, S)`` of the given cells only — cheap enough to run on
    every click, unlike tiling the whole image."""
    from ..cells.tiles import bin_image, cell_affines, sample_tiles, tile_binning

    ids = np.asarray(cell_ids, int)
    s = spec.size_px
    if len(ids) == 0:
        return np.zeros((0, s, s), np.float32)
    binning = tile_binning(lattice.a_px, spec)  # as detection reads them
    return sample_tiles(bin_image(image, binning), cell_affines(lattice, spec)[ids], spec,
                        binning)[0]
