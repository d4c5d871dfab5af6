"""The model's view: an image translated cell by cell by a noise-transfer generator.

With the real -> simulated generator (``gen_ba``) this shows the image the way the detector's
training domain looks: every unit cell is translated, and each pixel takes the value of the
translated tile of the cell whose centre is nearest (tiles overlap; nearest-centre regions tile
the plane without seams at the columns); a pixel farther than a lattice constant from every cell
(a hole, a grain or region left out) shows the background.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily, inside the functions
    import torch

from collections.abc import Iterator, Sequence

import numpy as np
from scipy.spatial import cKDTree

from ..cells.normalize import prepare_image
from ..cells.tiles import CellTiles, TileSpec, tile_cells
from ..lattice.lattice import Lattice
from ..sampling import sample_bilinear
from .coarse import enlarged, enlargement


def stitch_tiles(tiles: CellTiles, shape: tuple[int, int], chunk: int = 262_144,
                 max_distance: float | None = None, fill: float = 0.0) -> np.ndarray:
    """Image of ``shape`` where each pixel samples the tile whose centre is nearest to it; with
    ``max_distance`` (pixels), pixels farther from every tile centre take ``fill`` (no cell
    there: a hole, a region left out)."""
    s = tiles.spec.size_px
    centres = tiles.to_image(np.full((len(tiles), 2), (s - 1) / 2))
    tree = cKDTree(centres)
    h, w = shape
    out = np.empty(h * w, np.float32)
    inv = np.linalg.inv(tiles.affine[:, :, :2])
    for start in range(0, h * w, chunk):
        idx = np.arange(start, min(start + chunk, h * w))
        pts = np.stack([idx // w, idx % w], axis=1).astype(float)
        dist, k = tree.query(pts)
        local = np.einsum("nij,nj->ni", inv[k], pts - tiles.affine[k, :, 2])
        out[idx] = sample_bilinear(tiles.tiles, local[:, 0], local[:, 1], layer=k)
        if max_distance is not None:
            out[idx[dist > max_distance]] = fill
    return out.reshape(h, w)


def iter_model_view(image: np.ndarray, lattice: Lattice | Sequence[Lattice],
                    generator: torch.nn.Module, device: torch.device,
                    spec: TileSpec = TileSpec(), batch_size: int = 512,
                    enlarge: bool = True) -> Iterator[dict]:
    """Translate every cell with ``generator`` and stitch; yields progress, then the image.

    The result is in the image's own intensity units (the normalisation is undone). ``lattice``
    may be the lattices of several grains (:func:`~..lattice.grains.find_grains`): each grain's
    cells are translated on its own lattice. With ``enlarge`` (the model reads a coarse image
    enlarged, :func:`.coarse.reads_coarse_enlarged`), a coarse grain's cells are cut from the
    image enlarged as detection cuts them, and the view is binned back to the image's pixels.
    """
    from ..lattice.grains import lattice_cover
    from ..models.readout import translate

    lattices = [lattice] if isinstance(lattice, Lattice) else list(lattice)
    composite = None
    for k, grain in enumerate(lattices):
        factor = enlargement(grain.a_px, image.shape) if enlarge else 1
        big, big_grain = enlarged(image, grain, factor) if factor > 1 else (image, grain)
        prepared = prepare_image(big, big_grain)
        levels = prepared.levels
        tiles = tile_cells(prepared.normalised, big_grain, spec)
        out = []
        for start in range(0, len(tiles), batch_size):
            out.append(translate(generator, tiles.tiles[start:start + batch_size], device))
            done = min(1.0, (start + batch_size) / max(len(tiles), 1))
            yield {"fraction": 0.9 * (k + done) / len(lattices),
                   "message": f"Translated {min(start + batch_size, len(tiles))}/{len(tiles)} "
                              "cells" + (f" of grain {k + 1}" if len(lattices) > 1 else "")}
        tiles.tiles = np.concatenate(out) if out else tiles.tiles
        # (no translated cell farther than a lattice constant: the background, e.g. in a hole or
        # outside the region analysed)
        view = stitch_tiles(tiles, big.shape, max_distance=big_grain.a_px)
        scale = levels.chalcogen - levels.background
        view = view * scale + levels.background
        if prepared.offset is not None:  # back on the image's own background
            view = view + prepared.offset
        if factor > 1:  # (the enlargement's pixels binned back to the image's)
            h, w = image.shape
            view = view.reshape(h, factor, w, factor).mean(axis=(1, 3))
        composite = view if composite is None else np.where(
            lattice_cover(grain, image.shape, radius_a=1.0), view, composite)
    yield {"done": True, "image": composite}


__all__ = ["iter_model_view", "stitch_tiles"]
