"""Unit-cell tiling: cut an image into tiles along the locally refined lattice, and map back.

Every tile shows one unit cell in the same *ideal* frame: an undistorted hexagonal lattice with the
cell's metal column at ideal coordinates ``(0, 0)``, its chalcogen column at ``(A1 + A2) / 3``, with
``A1 = (0, 1)`` and ``A2 = (-sqrt(3)/2, 1/2)`` in units of the lattice constant (``(row, col)``,
rows pointing down). A local affine map, built from the cell's measured metal position and the
local lattice vectors, takes the ideal frame to the image: rotation, scale, shear and drift of the
real lattice are undone, so every tile has the same size and orientation in the lattice frame.

The tile is centred between the metal and the chalcogen of its cell and spans ``extent_a`` lattice
constants, which includes the first neighbours of both columns.

An image sampled much more finely than the tiles (more than :data:`MAX_IMAGE_PX_PER_TILE_PX`
image pixels per tile pixel: high magnification) is first averaged over blocks of pixels
(:func:`tile_binning`), as a coarser acquisition at the same dose would have recorded it:
bilinear sampling alone would read one pixel in several and throw the others' counts away (at
0.005 nm/px, about nine in ten).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..lattice.lattice import Lattice
from ..lattice.sites import neighbour_mean
from ..sampling import sample_bilinear_many
from .lookup import CellLookup

#: Most image pixels per tile pixel read without averaging (a lattice constant of 32 px over the
#: 16 tile pixels: 0.0099 nm/px for MoS2). Finer images read one pixel in four or more; averaged
#: first they gain (0.008 nm/px, random microscopes: WS2 `V_S` 0.82 -> 0.91, WSe2 `V_Se2`
#: 0.96 -> 1.0; one microscope at 2e5 e/A2: MoS2 `O_S` 0.84 -> 0.96), coarser ones lose a little
#: (0.012 nm/px binned by 2: `V_S`/`O_S` 0.97/0.98 -> 0.96/0.97).
MAX_IMAGE_PX_PER_TILE_PX = 2.0

#: Ideal lattice vectors (row, col) in units of the lattice constant.
IDEAL_A1 = np.array([0.0, 1.0])
IDEAL_A2 = np.array([-np.sqrt(3) / 2, 0.5])
IDEAL_BASIS = np.stack([IDEAL_A1, IDEAL_A2], axis=1)  # columns
#: Ideal positions of the cell's own columns.
IDEAL_METAL = np.zeros(2)
IDEAL_CHALCOGEN = (IDEAL_A1 + IDEAL_A2) / 3
IDEAL_CENTRE = (IDEAL_METAL + IDEAL_CHALCOGEN) / 2


@dataclass(frozen=True)
class TileSpec:
    """Geometry of a unit-cell tile.

    Attributes
    ----------
    size_px : int
        Tile side in pixels.
    extent_a : float
        Tile side in lattice constants.
    """

    size_px: int = 32
    extent_a: float = 2.0

    @property
    def step_a(self) -> float:
        """Tile pixel size in lattice constants."""
        return self.extent_a / self.size_px

    def ideal_to_tile(self, ideal: np.ndarray) -> np.ndarray:
        """Ideal-frame coordinates (units of ``a``) to tile pixel coordinates."""
        return (np.asarray(ideal, float) - IDEAL_CENTRE) / self.step_a + (self.size_px - 1) / 2

    def tile_to_ideal(self, tile_pts: np.ndarray) -> np.ndarray:
        """Tile pixel coordinates to ideal-frame coordinates (units of ``a``)."""
        return (np.asarray(tile_pts, float) - (self.size_px - 1) / 2) * self.step_a + IDEAL_CENTRE

    @property
    def metal_px(self) -> np.ndarray:
        """Where the cell's metal column sits in the tile."""
        return self.ideal_to_tile(IDEAL_METAL)

    @property
    def chalcogen_px(self) -> np.ndarray:
        """Where the cell's chalcogen column sits in the tile."""
        return self.ideal_to_tile(IDEAL_CHALCOGEN)


@dataclass
class CellTiles:
    """A batch of unit-cell tiles.

    Attributes
    ----------
    tiles : ndarray
        ``(N, S, S)`` float32 resampled image values.
    index : ndarray
        ``(N, 2)`` cell indices ``(i, j)`` (the metal site of each cell).
    affine : ndarray
        ``(N, 2, 3)`` maps tile pixel ``(row, col, 1)`` to image pixel ``(row, col)``.
    inside : ndarray
        ``(N,)`` fraction of each tile that lies inside the image.
    spec : TileSpec
    has_metal : ndarray
        ``(N,)`` whether the cell's metal site is in the field of view; ``False`` for border cells
        that are tiled only for their chalcogen site (see :func:`iter_cell_tiles`).
    """

    tiles: np.ndarray
    index: np.ndarray
    affine: np.ndarray
    inside: np.ndarray
    spec: TileSpec
    has_metal: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.has_metal is None:
            self.has_metal = np.ones(len(self.tiles), bool)

    def __len__(self) -> int:
        return len(self.tiles)

    def __repr__(self) -> str:  # (the default printed every tile)
        return (f"CellTiles({len(self)} tiles of {self.spec.size_px}×{self.spec.size_px} px, "
                f"{int(np.sum(self.has_metal))} with their metal site)")

    @classmethod
    def concatenate(cls, parts: list[CellTiles]) -> CellTiles:
        """One batch made of several (all with the same spec)."""
        return cls(np.concatenate([p.tiles for p in parts]), np.concatenate([p.index for p in parts]),
                   np.concatenate([p.affine for p in parts]), np.concatenate([p.inside for p in parts]),
                   parts[0].spec, np.concatenate([p.has_metal for p in parts]))

    def subset(self, keep: np.ndarray) -> CellTiles:
        """The tiles selected by a boolean mask or index array."""
        return CellTiles(self.tiles[keep], self.index[keep], self.affine[keep], self.inside[keep],
                         self.spec, self.has_metal[keep])

    def to_image(self, tile_points: np.ndarray, which: np.ndarray | int | None = None) -> np.ndarray:
        """Map tile pixel coordinates to image pixel coordinates.

        Parameters
        ----------
        tile_points : ndarray
            ``(N, 2)`` points, one per tile (``which=None``), or ``(M, 2)`` with ``which`` giving
            the tile of each point (an int applies one tile to all points).
        which : ndarray or int, optional
            Tile numbers.
        """
        pts = np.atleast_2d(np.asarray(tile_points, float))
        aff = self.affine if which is None else self.affine[np.asarray(which)]
        aff = np.broadcast_to(aff, (len(pts), 2, 3)) if aff.ndim == 3 else aff[None]
        return np.einsum("nij,nj->ni", aff[..., :2], pts) + aff[..., 2]

    def to_tile(self, image_points: np.ndarray, which: np.ndarray | int | None = None) -> np.ndarray:
        """Map image pixel coordinates into tile pixel coordinates (inverse of :meth:`to_image`)."""
        pts = np.atleast_2d(np.asarray(image_points, float))
        aff = self.affine if which is None else self.affine[np.asarray(which)]
        aff = np.broadcast_to(aff, (len(pts), 2, 3)) if aff.ndim == 3 else aff[None]
        inv = np.linalg.inv(aff[..., :2])
        return np.einsum("nij,nj->ni", inv, pts - aff[..., 2])


def local_bases(lattice: Lattice) -> np.ndarray:
    """Local lattice vectors ``(N, 2, 2)`` (rows ``a1``, ``a2``) at every metal site.

    Central differences of neighbouring metal sites (one-sided at the border, the global vectors
    where a cell has no neighbour), smoothed over the 3 x 3 neighbouring cells.
    """
    idx = lattice.metal_index
    pos = lattice.metal_sites_px
    n = len(idx)
    if n == 0:
        return np.zeros((0, 2, 2))
    lookup = CellLookup(idx)
    out = np.empty((n, 2, 2))
    for d, (step, glob) in enumerate((((1, 0), lattice.a1_px), ((0, 1), lattice.a2_px))):
        fwd = lookup.rows(idx + np.array(step))
        bwd = lookup.rows(idx - np.array(step))
        vec = np.tile(glob, (n, 1)).astype(float)
        both = (fwd >= 0) & (bwd >= 0)
        vec[both] = (pos[fwd[both]] - pos[bwd[both]]) / 2
        only_f = (fwd >= 0) & (bwd < 0)
        vec[only_f] = pos[fwd[only_f]] - pos[only_f]
        only_b = (bwd >= 0) & (fwd < 0)
        vec[only_b] = pos[only_b] - pos[bwd[only_b]]
        smooth = neighbour_mean(vec, idx, np.ones(n, bool), size=3, exclude_self=False)
        out[:, d] = np.where(np.isnan(smooth), vec, smooth)
    return out


def _affines(bases: np.ndarray, origins: np.ndarray, spec: TileSpec) -> np.ndarray:
    """Tile-to-image affines of cells with local vectors ``bases`` and metal positions ``origins``."""
    # M maps ideal coordinates to image displacements: M @ IDEAL_BASIS = [a1 a2] (as columns).
    m = np.einsum("nji,jk->nik", bases, np.linalg.inv(IDEAL_BASIS))
    lin = m * spec.step_a
    t0 = spec.tile_to_ideal(np.zeros(2))               # ideal coords of tile pixel (0, 0)
    offset = origins + np.einsum("nij,j->ni", m, t0)
    return np.concatenate([lin, offset[:, :, None]], axis=2)


def cell_affines(lattice: Lattice, spec: TileSpec = TileSpec()) -> np.ndarray:
    """Affine maps ``(N, 2, 3)`` from tile pixels to image pixels for every cell of ``lattice``."""
    return _affines(local_bases(lattice), lattice.metal_sites_px, spec)


#: Index steps to the neighbouring cells, nearest first (a border cell borrows their vectors).
_NEIGHBOUR_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, -1), (-1, 1), (1, 1), (-1, -1))


def border_cells(lattice: Lattice, bases: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                            np.ndarray]:
    """Cells whose chalcogen site is in the field of view but whose metal site is not.

    Along the image border about one chalcogen column in ten belongs to such a cell. Its metal
    position is extrapolated from the chalcogen site with the local lattice vectors of the nearest
    cell in the field, so that the cell can be tiled like any other.

    Returns
    -------
    index : ndarray
        ``(M, 2)`` cell indices.
    origins : ndarray
        ``(M, 2)`` extrapolated metal positions (image pixels, outside the field).
    bases : ndarray
        ``(M, 2, 2)`` local lattice vectors (rows ``a1``, ``a2``).
    """
    bases = local_bases(lattice) if bases is None else bases
    lookup = CellLookup(lattice.metal_index)
    rows = np.flatnonzero(lookup.rows(lattice.chalcogen_index) < 0)
    index = lattice.chalcogen_index[rows].reshape(-1, 2)
    out_bases = np.broadcast_to(np.stack([lattice.a1_px, lattice.a2_px]).astype(float),
                                (len(rows), 2, 2)).copy()
    todo = np.ones(len(rows), bool)  # no neighbour found yet: the nearest step wins
    for step in _NEIGHBOUR_STEPS:
        near = lookup.rows(index + np.array(step))
        hit = todo & (near >= 0)
        out_bases[hit] = bases[near[hit]]
        todo &= ~hit
    origins = lattice.chalcogen_sites_px[rows].reshape(-1, 2) - out_bases.sum(axis=1) / 3
    return index, origins, out_bases


def tile_binning(a_px: float, spec: TileSpec) -> int:
    """Pixels averaged along each axis before tiles are sampled from an image whose lattice
    constant is ``a_px`` pixels: 1 up to :data:`MAX_IMAGE_PX_PER_TILE_PX` image pixels per tile
    pixel, more for finer sampling."""
    step = float(a_px) * spec.step_a
    if not np.isfinite(step) or step <= MAX_IMAGE_PX_PER_TILE_PX:
        return 1
    return int(np.ceil(step / MAX_IMAGE_PX_PER_TILE_PX))


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks (the last incomplete rows and columns are dropped);
    block ``(i, j)`` is centred at pixel ``(factor i + (factor - 1) / 2, ...)``."""
    img = np.asarray(image, np.float32)
    if factor <= 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    return img[:h, :w].reshape(h // factor, factor, w // factor, factor).mean((1, 3))


def sample_tiles(image: np.ndarray, affines: np.ndarray, spec: TileSpec,
                 binning: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tiles sampled from ``image`` through per-cell affine maps.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` image, or its :func:`bin_image` by ``binning``.
    affines : ndarray
        ``(N, 2, 3)`` maps from tile pixels ``(row, col, 1)`` to (unbinned) image pixels.
    spec : TileSpec
        Tile geometry (size).
    binning : int
        The factor ``image`` was binned by (:func:`tile_binning`).

    Returns
    -------
    tiles : ndarray
        ``(N, S, S)`` float32 tiles.
    rows, cols : ndarray
        ``(N, S * S)`` (unbinned) image coordinates of the tile pixels.
    """
    s = spec.size_px
    rr, cc = np.mgrid[0:s, 0:s].astype(np.float32)
    rr, cc = rr.ravel()[None, :], cc.ravel()[None, :]
    aff = np.asarray(affines, np.float32)
    rows = aff[:, 0, 0, None] * rr + aff[:, 0, 1, None] * cc + aff[:, 0, 2, None]
    cols = aff[:, 1, 0, None] * rr + aff[:, 1, 1, None] * cc + aff[:, 1, 2, None]
    if binning == 1:
        vals = sample_bilinear_many(np.asarray(image, np.float32), rows, cols)
    else:
        centre = (binning - 1) / 2
        vals = sample_bilinear_many(np.asarray(image, np.float32), (rows - centre) / binning,
                                    (cols - centre) / binning)
    return vals.reshape(len(aff), s, s).astype(np.float32, copy=False), rows, cols


def iter_cell_tiles(image: np.ndarray, lattice: Lattice, spec: TileSpec = TileSpec(),
                    batch_size: int = 2048, border: bool = False, lazy: bool = False
                    ) -> Iterator[CellTiles]:
    """Yield the unit-cell tiles of ``image`` in batches (bounded memory for large images).

    Parameters
    ----------
    image : ndarray
        The 2-D image the lattice was found in.
    lattice : Lattice
        Output of :func:`~napari_atomdefect.core.lattice.lattice.find_lattice`.
    spec : TileSpec
        Tile geometry.
    batch_size : int
        Tiles per batch.
    border : bool
        Also tile the :func:`border_cells` (after all others, ``has_metal`` False), so that every
        chalcogen site in the field of view is the own site of one tile.
    lazy : bool
        Yield the batches without their tiles (``(N, 0, 0)``, ``inside`` NaN): the caller
        samples those it reads with :func:`with_tiles` (detection reads a sample of an image's
        plain cells only).

    Notes
    -----
    Values are interpolated bilinearly; points outside the image take the nearest edge value and
    ``CellTiles.inside`` tells how much of each tile lies inside.
    """
    img = np.asarray(image, np.float32)
    if img.shape != tuple(lattice.shape):
        raise ValueError(f"Image shape {img.shape} differs from the lattice's {lattice.shape}.")
    bases = local_bases(lattice)
    affines = _affines(bases, lattice.metal_sites_px, spec)
    index = lattice.metal_index
    has_metal = np.ones(len(index), bool)
    if border:
        extra_index, origins, extra_bases = border_cells(lattice, bases)
        affines = np.concatenate([affines, _affines(extra_bases, origins, spec)])
        index = np.concatenate([index, extra_index]).astype(int)
        has_metal = np.concatenate([has_metal, np.zeros(len(extra_index), bool)])
    h, w = img.shape
    binning = tile_binning(lattice.a_px, spec)
    source = bin_image(img, binning)
    for start in range(0, len(affines), batch_size):
        aff = affines[start:start + batch_size]
        if lazy:
            tiles, inside = np.empty((len(aff), 0, 0), np.float32), np.full(len(aff), np.nan)
        else:
            tiles, rows, cols = sample_tiles(source, aff, spec, binning)
            inside = _inside(rows, cols, (h, w))
        yield CellTiles(tiles=tiles,
                        index=index[start:start + batch_size].copy(),
                        affine=aff.copy(), inside=inside, spec=spec,
                        has_metal=has_metal[start:start + batch_size].copy())


def _inside(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Share of each tile's ``(N, S * S)`` pixel coordinates inside an image of ``shape``."""
    h, w = shape
    return ((rows >= -0.5) & (rows <= h - 0.5) & (cols >= -0.5) & (cols <= w - 0.5)).mean(1)


def with_tiles(batch: CellTiles, source: np.ndarray, shape: tuple[int, int],
               binning: int = 1) -> CellTiles:
    """``batch`` with its tiles, sampled now where :func:`iter_cell_tiles` left them out
    (``lazy``); the same values it would have sampled.

    Parameters
    ----------
    batch : CellTiles
        A batch (or a subset of one).
    source : ndarray
        The image, binned by ``binning`` (:func:`bin_image`).
    shape : tuple of int
        The (unbinned) image's shape.
    binning : int
        As :func:`tile_binning` says for the lattice.
    """
    s = batch.spec.size_px
    if batch.tiles.shape[1:] == (s, s):
        return batch
    tiles, rows, cols = sample_tiles(source, batch.affine, batch.spec, binning)
    return CellTiles(tiles, batch.index, batch.affine, _inside(rows, cols, shape), batch.spec,
                     batch.has_metal)


def tile_cells(image: np.ndarray, lattice: Lattice, spec: TileSpec = TileSpec(),
               min_inside: float = 0.0) -> CellTiles:
    """All unit-cell tiles of ``image`` at once (see :func:`iter_cell_tiles`).

    Parameters
    ----------
    image : ndarray
        The 2-D image the lattice was found in (raw values: tiles are resampled, not
        normalised; see :func:`~.normalize.prepare_image` for the detector's reading).
    lattice : Lattice
        From :func:`~..lattice.lattice.find_lattice` on ``image``.
    spec : TileSpec
        Tile geometry (size in pixels, extent in lattice constants).
    min_inside : float
        Drop tiles with a smaller fraction of their area inside the image.

    Returns
    -------
    CellTiles
        ``tiles`` ``(N, S, S)``, each cell's index, affine map to image pixels and share inside.

    Raises
    ------
    AtomDefectError
        When ``lattice`` is not a :class:`~..lattice.lattice.Lattice`.
    """
    from ..errors import AtomDefectError

    if not isinstance(lattice, Lattice):
        raise AtomDefectError("tile_cells needs the image's lattice (find_lattice(image, "
                              f"material, pixel_size_nm)), not {type(lattice).__name__}.")
    batches = list(iter_cell_tiles(image, lattice, spec))
    if not batches:
        s = spec.size_px
        return CellTiles(np.zeros((0, s, s), np.float32), np.zeros((0, 2), int),
                         np.zeros((0, 2, 3)), np.zeros(0), spec)
    out = CellTiles.concatenate(batches)
    if min_inside > 0:
        keep = out.inside >= min_inside
        out = out.subset(keep)
    return out


def mirror_about_sites(spec: TileSpec) -> tuple[np.ndarray, np.ndarray]:
    """The reflection of tile pixels about the line through the ideal metal and chalcogen sites.

    That line is a mirror of the projected monolayer (plane group *p3m1*: every mirror runs
    along a metal–chalcogen bond), so the reflected tile shows the same cell seen from its other
    side, with both own sites in place.

    Returns
    -------
    matrix, centre : ndarray
        ``p -> centre + matrix @ (p - centre)`` (tile pixel coordinates, row/col).
    """
    centre = (spec.metal_px + spec.chalcogen_px) / 2
    d = spec.chalcogen_px - spec.metal_px
    d = d / np.linalg.norm(d)
    return 2 * np.outer(d, d) - np.eye(2), centre


def mirrored_tiles(source: np.ndarray, batch: CellTiles, sites: np.ndarray,
                   binning: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The tiles of ``batch`` mirrored about their metal–chalcogen line (:func:`mirror_about_sites`),
    sampled afresh from the image (not resampled from the tiles, so nothing is blurred twice).

    Parameters
    ----------
    source : ndarray
        The image the tiles were sampled from, binned by ``binning`` (:func:`bin_image`).
    batch : CellTiles
        The tiles (their affine maps are used).
    sites : ndarray
        ``(N, K, 2)`` tile coordinates of the sites read in each tile.
    binning : int
        :func:`tile_binning` of the image.

    Returns
    -------
    tiles : ndarray
        ``(N, S, S)`` mirrored tiles.
    sites : ndarray
        ``(N, K, 2)`` where the same sites are in them.
    """
    matrix, centre = mirror_about_sites(batch.spec)
    tiles, _, _ = sample_tiles(source, mirrored_affines(batch.affine, batch.spec), batch.spec,
                               binning)
    return tiles, centre + (np.asarray(sites, float) - centre) @ matrix.T


def mirrored_affines(affines: np.ndarray, spec: TileSpec) -> np.ndarray:
    """Tile-to-image affines ``(N, 2, 3)`` composed with :func:`mirror_about_sites` (applied
    twice, the identity)."""
    matrix, centre = mirror_about_sites(spec)
    aff = np.asarray(affines, float)
    lin = aff[:, :, :2]
    offset = aff[:, :, 2] + np.einsum("nij,j->ni", lin, centre - matrix @ centre)
    return np.concatenate([lin @ matrix, offset[:, :, None]], axis=2)


def own_site_positions(batch: CellTiles, lattice: Lattice,
                       chalcogen_rows: np.ndarray | None = None) -> np.ndarray:
    """Tile coordinates ``(N, 2, 2)`` of each tile's own metal and chalcogen sites.

    Parameters
    ----------
    batch : CellTiles
        The tiles.
    lattice : Lattice
        The lattice they were cut from.
    chalcogen_rows : ndarray, optional
        Row of each tile's chalcogen site in ``lattice.chalcogen_index`` (``-1``: none), if the
        caller has it already (see :class:`~.lookup.CellLookup`).
    """
    n = len(batch)
    spec = batch.spec
    out = np.empty((n, 2, 2))
    out[:, 0] = spec.metal_px
    rows = (CellLookup(lattice.chalcogen_index).rows(batch.index) if chalcogen_rows is None
            else np.asarray(chalcogen_rows))
    have = rows >= 0
    out[:, 1] = spec.chalcogen_px
    if have.any():
        pts = lattice.chalcogen_sites_px[rows[have]]
        out[have, 1] = batch.to_tile(pts, np.nonzero(have)[0])
    return out
