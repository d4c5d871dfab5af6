"""Training cells from labelled images of another simulator (multislice) or corrected real images.

The detectors learn from the project's fast simulator; a labelled image of an independent,
physics-grade simulator (abTEM multislice: channelling, the static cross term of the two
chalcogen atoms, the weak signal of O, probe tails — ``benchmarks/make_multislice_set.py``)
teaches what a column looks like there. A folder in the layout of ``../shared/data/devset``
(``image.npy`` and/or ``image_clean.npy``, ``labels.csv`` with ``x_px, y_px, class`` of every
defect, ``meta.json`` with ``pixel_size_A`` and ``material``) gives every unit cell of its image,
each site labelled pristine unless a defect of ``labels.csv`` lies on it.

With the noise-free image at hand, each folder is read at several doses: the expected counts are
scaled to a dose drawn log-uniformly and Poisson (and read) noise is drawn anew, so a few costly
multislice runs give many noise realisations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..cells.ladder import read_image_ladder
from ..cells.normalize import IntensityLevels, PreparedImage, image_context, prepare_image
from ..cells.tiles import CellTiles, TileSpec, iter_cell_tiles, own_site_positions
from ..errors import AtomDefectError
from ..lattice.lattice import Lattice, find_lattice
from ..materials.columns import LEGACY_CLASSES, substituents_of
from .datasets import CellSet, class_index, class_index_of, label_maps

#: Files a labelled image folder holds.
LABELS_FILE = "labels.csv"
META_FILE = "meta.json"
CLEAN_FILE = "image_clean.npy"
NOISY_FILE = "image.npy"
#: Doses (e/Å²) drawn (log-uniformly) when a folder's noise-free image is read anew.
DOSE_RANGE = (1e5, 2e6)


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


def labelled_image_folders(paths: Iterable[str | Path]) -> list[Path]:
    """Every labelled image folder at or below ``paths`` (sorted), i.e. each folder holding
    ``labels.csv``, ``meta.json`` and an image.

    Raises
    ------
    AtomDefectError
        When a path does not exist or none holds a labelled image.
    """
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise AtomDefectError(f"{path} does not exist.")
        metas = ([path / META_FILE] if (path / META_FILE).exists() else
                 [Path(root) / META_FILE for root, _, files in os.walk(path, followlinks=True)
                  if META_FILE in files])  # (linked folders too)
        for meta in metas:
            folder = meta.parent
            if (folder / LABELS_FILE).exists() and ((folder / CLEAN_FILE).exists()
                                                    or (folder / NOISY_FILE).exists()):
                found.add(folder)
    if not found:
        raise AtomDefectError("No labelled image folder (labels.csv, meta.json and image.npy or "
                              f"image_clean.npy) was found in {', '.join(map(str, paths))}.")
    return sorted(found)


def _noisy_versions(folder: Path, meta: dict, n_doses: int,
                    rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The folder's image at ``n_doses`` random doses (from its noise-free image), or its noisy
    image as it is (no noise-free image)."""
    if not (folder / CLEAN_FILE).exists():
        yield np.load(folder / NOISY_FILE).astype(np.float32)
        return
    clean = np.load(folder / CLEAN_FILE).astype(np.float64)
    args = meta.get("args", {})
    dose0 = float(args.get("dose", meta.get("dose", 0)) or 0)
    read = float(args.get("read_noise", 1.0))
    for _ in range(n_doses):
        dose = float(np.exp(rng.uniform(*np.log(DOSE_RANGE))))
        expected = clean * (dose / dose0) if dose0 > 0 else clean
        yield (rng.poisson(np.maximum(expected, 0)) + rng.normal(0, read, clean.shape)
               ).astype(np.float32)


def cells_from_labelled_folder(folder: str | Path, classes: tuple[str, ...], spec: TileSpec,
                               n_doses: int = 3, seed: int = 0) -> CellSet | None:
    """Every unit cell of one labelled image folder, at ``n_doses`` noise realisations.

    Parameters
    ----------
    folder : str or Path
        A labelled image folder (:func:`labelled_image_folders`).
    classes : tuple of str
        The detector's defect classes (labels of other classes count as pristine).
    spec : TileSpec
        The detector's tile geometry.
    n_doses : int
        Noise realisations of a noise-free image (one noisy image is read as it is).
    seed : int
        Seed of the doses and the noise.

    Returns
    -------
    CellSet or None
        ``None`` when no lattice is found in any version of the image.
    """
    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    material = meta.get("material", "MoS2")
    px_nm = float(meta["pixel_size_A"]) / 10
    labels = pd.read_csv(folder / LABELS_FILE)
    rng = np.random.default_rng(seed)
    parts = []
    for image in _noisy_versions(folder, meta, n_doses, rng):
        try:
            lattice = find_lattice(image, material, pixel_size_nm=px_nm, calibration="user")
        except AtomDefectError:
            continue
        cells = labelled_real_cells(image, lattice, np.arange(lattice.n_cells), labels, spec,
                                    classes)
        if len(cells):
            parts.append(cells)
    return CellSet.concatenate(parts) if parts else None


def labelled_cells(paths: Iterable[str | Path], classes: tuple[str, ...], spec: TileSpec,
                   n_doses: int = 3, seed: int = 0) -> Iterator[dict]:
    """Cells of every labelled image folder under ``paths``; yields progress, and last
    ``{"done": True, "cells": CellSet | None, "n_folders": int}``."""
    folders = labelled_image_folders(paths)
    parts = []
    for k, folder in enumerate(folders):
        cells = cells_from_labelled_folder(folder, classes, spec, n_doses, seed + k)
        if cells is not None:
            parts.append(cells)
        yield {"stage": "data", "message": f"labelled image {k + 1}/{len(folders)}: "
                                           f"{folder.name}"}
    yield {"stage": "data", "done": True, "n_folders": len(folders),
           "cells": CellSet.concatenate(parts) if parts else None}


__all__ = ["DOSE_RANGE", "cells_from_labelled_folder", "labelled_cells",
           "labelled_image_folders", "labelled_real_cells", "real_cell_tiles"]
