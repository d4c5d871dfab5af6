"""Fine-tuning, which cells: the user's selection of unit cells, checked, and their tiles and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cells.ladder import read_image_ladder
from ..cells.normalize import IntensityLevels, PreparedImage, image_context, prepare_image
from ..cells.tiles import CellTiles, TileSpec, iter_cell_tiles, own_site_positions
from ..errors import AtomDefectError
from ..lattice.lattice import Lattice
from ..materials.columns import LEGACY_CLASSES, substituents_of
from ..train.datasets import CellSet, class_index, class_index_of, label_maps

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


def check_selection(lattice: Lattice, cell_ids: np.ndarray) -> None:
    """Raise a clear error for empty, out-of-range or too small selections."""
    if len(cell_ids) == 0:
        raise AtomDefectError("No cells are selected: click on cells, draw a region over them, "
                              "or choose all cells of the image.")
    if np.any(cell_ids < 0) or np.any(cell_ids >= lattice.n_cells):
        raise AtomDefectError("Some selected cells are outside the image's lattice.")
    if len(cell_ids) < MIN_CELLS:
        raise AtomDefectError(
            f"Only {len(cell_ids)} cells are selected; at least {MIN_CELLS} are needed for the "
            "noise-transfer network to learn your microscope's noise (50 or more work better).")


def real_cell_tiles(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                    spec: TileSpec, prepared: PreparedImage | None = None
                    ) -> tuple[CellTiles, IntensityLevels]:
    """Normalised tiles of the selected cells, and the image's levels they are normalised with
    (``prepared``: :func:`~..cells.normalize.prepare_image` of the image when the caller has
    it)."""
    prepared = prepare_image(image, lattice) if prepared is None else prepared
    levels = prepared.levels
    norm = prepared.normalised
    want = set(np.asarray(cell_ids).tolist())
    parts, start = [], 0
    for batch in iter_cell_tiles(norm, lattice, spec):
        sel = np.array([start + k in want for k in range(len(batch))], bool)
        start += len(batch)
        if sel.any():
            parts.append(batch.subset(sel))
    return CellTiles.concatenate(parts), levels


def labelled_real_cells(image: np.ndarray, lattice: Lattice, cell_ids: np.ndarray,
                        corrections: pd.DataFrame, spec: TileSpec,
                        classes: tuple[str, ...] = LEGACY_CLASSES) -> CellSet:
    """The selected real cells, labelled by the user's corrected detections.

    Every site of the lattice is pristine unless a detection (any source) lies within a quarter
    lattice constant of it, in which case it takes that detection's class (or the equivalent
    class among the model's ``classes``; detections of classes the model lacks are ignored).
    """
    from scipy.spatial import cKDTree

    classes = tuple(classes)
    index = class_index(classes)
    sites = np.concatenate([lattice.metal_sites_px, lattice.chalcogen_sites_px])
    cls = np.concatenate([np.full(len(lattice.metal_sites_px), index["metal"]),
                          np.full(len(lattice.chalcogen_sites_px), index["chalcogen"])])
    if len(corrections):
        d, k = cKDTree(sites).query(corrections[["y_px", "x_px"]].to_numpy(float))
        for j, (dist, site) in enumerate(zip(d, k, strict=True)):
            target = class_index_of(str(corrections["class"].iloc[j]), classes)
            if dist < 0.25 * lattice.a_px and target is not None:
                cls[site] = target
    prepared = prepare_image(image, lattice)
    tiles, levels = real_cell_tiles(image, lattice, cell_ids, spec, prepared)
    own = own_site_positions(tiles, lattice)
    n_metal = len(lattice.metal_sites_px)
    own_img = np.stack([tiles.to_image(own[:, 0]), tiles.to_image(own[:, 1])], axis=1)
    dist, idx = cKDTree(sites).query(own_img.reshape(-1, 2))
    dist, idx = dist.reshape(-1, 2), idx.reshape(-1, 2)
    # Keep cells whose own sites are found where they should be, on the right sublattice.
    good = (dist < 0.25 * lattice.a_px).all(1) & (idx[:, 0] < n_metal) & (idx[:, 1] >= n_metal)
    context = image_context(levels)
    host = read_image_ladder(prepared, lattice, lattice.material,
                             substituents_of(classes)).host_level
    n = int(good.sum())
    return CellSet(tiles=tiles.tiles[good],
                   labels=label_maps(tiles, sites, cls.astype(np.uint8))[good],
                   own_sites=own[good], own_classes=cls[idx[good]].astype(np.uint8),
                   classes=classes, context=np.tile(context, (n, 1)),
                   host_level=np.full(n, host, np.float32))


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
