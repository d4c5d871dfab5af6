"""Unit-cell training data: simulated cells with per-pixel labels, and unlabelled real cells.

Simulated images are tiled exactly as real ones are at detection time (the lattice is *detected*,
not taken from the simulator), so the models learn on the geometry they will meet. Labels are the
simulator's: every column site that falls in a tile is painted as a small disc of its class.
Class indices point into :func:`~..materials.columns.segment_classes` of the cell set's defect
classes (a model's class list: by default every class of the material, all supported
substituents).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..cells.ladder import MIN_HOST_COLUMNS, read_image_ladder, to_host_units
from ..cells.normalize import PreparedImage, image_context, prepare_image, site_values
from ..cells.tiles import CellTiles, TileSpec, iter_cell_tiles, own_site_positions
from ..errors import AtomDefectError
from ..lattice.lattice import find_lattice
from ..materials.columns import (
    LEGACY_CLASSES,
    class_names,
    lookup_class,
    segment_classes,
    substituents_of,
    supported_substituents,
)
from ..materials.materials import Material, get_material
from ..simulate.image import (
    PARTIAL_CONVERSION_SHARE,
    MicroscopeParams,
    SimulatedImage,
    alloy_fractions,
    simulate_image,
)


def class_index(classes: tuple[str, ...]) -> dict[str, int]:
    """Index of every per-pixel class (pristine first) for a model's defect ``classes``."""
    return {c: i for i, c in enumerate(segment_classes(classes))}


def class_index_of(name: str, classes: tuple[str, ...]) -> int | None:
    """Index of class ``name`` among a model's per-pixel classes, or of its equivalent there.

    A name the model lacks maps to the model's class of the same kind and substituent (a
    legacy MoS2 model's ``V_Mo`` stands for ``V_W`` on a WS2 image, its ``V_S2`` for ``V_Se2``
    on a selenide); ``None`` when there is none.
    """
    index = class_index(classes)
    if name in index:
        return index[name]
    c = lookup_class(name)
    if c is None:
        return None
    for other in classes:
        o = lookup_class(other)
        if o is not None and o.kind == c.kind and o.substituent == c.substituent:
            return index[other]
    return None


#: Indices of the legacy MoS2 classes (models whose card lists no classes).
CLASS_INDEX = class_index(LEGACY_CLASSES)
#: Disc radius of a labelled site, in lattice constants.
LABEL_RADIUS_A = 0.13
#: Where a host-unit detector's training cells take their image's host level from: the
#: ladder's reading, as detection does (default), or the image's true host columns.
HOST_LEVEL_SOURCES = ("ladder", "truth")


@dataclass
class CellSet:
    """Tiles with optional labels.

    Attributes
    ----------
    tiles : ndarray
        ``(N, S, S)`` float32 normalised tiles.
    labels : ndarray or None
        ``(N, S, S)`` uint8 class maps (index into ``segment_classes(classes)``).
    own_sites : ndarray
        ``(N, 2, 2)`` tile coordinates of the cell's own metal and chalcogen sites.
    own_classes : ndarray or None
        ``(N, 2)`` class indices of the own sites (from the simulator).
    classes : tuple of str
        Defect classes the indices refer to (channel order of the model).
    context : ndarray or None
        ``(N, k)`` float32 image-level context of each tile's image
        (:func:`~..cells.normalize.image_context`).
    host_level : ndarray or None
        ``(N,)`` float32 level of a host chalcogen column of each tile's image in its chalcogen
        units (:func:`~..cells.ladder.read_image_ladder`), for detectors that read tiles in host
        units (:meth:`in_host_units`).
    true_host_level : ndarray or None
        ``(N,)`` float32 the same level measured at the image's true host columns (simulated
        images: :func:`true_host_level`; NaN where unknown).
    """

    tiles: np.ndarray
    labels: np.ndarray | None
    own_sites: np.ndarray
    own_classes: np.ndarray | None = None
    classes: tuple[str, ...] = LEGACY_CLASSES
    context: np.ndarray | None = None
    host_level: np.ndarray | None = None
    true_host_level: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tiles)

    def in_host_units(self, source: str = HOST_LEVEL_SOURCES[0]) -> CellSet:
        """The same cells with tiles and context in host units
        (:func:`~..cells.ladder.to_host_units`), against the ladder's reading of each image's
        host level (``source="ladder"``) or its true host columns (``"truth"``, the ladder's
        reading where the image has too few of them)."""
        if source not in HOST_LEVEL_SOURCES:
            raise ValueError(f"source must be one of {', '.join(HOST_LEVEL_SOURCES)}")
        if self.host_level is None:
            raise ValueError("These cells carry no host-column level.")
        level = self.host_level
        if source == "truth" and self.true_host_level is not None:
            level = np.where(np.isfinite(self.true_host_level), self.true_host_level, level)
        tiles, context = to_host_units(self.tiles, self.context, level)
        ones = np.ones_like(self.host_level)
        return replace(self, tiles=tiles, context=context, host_level=ones,
                       true_host_level=None if self.true_host_level is None else ones)

    @staticmethod
    def concatenate(parts: list[CellSet]) -> CellSet:
        parts = [p for p in parts if len(p)]
        labelled = all(p.labels is not None for p in parts)
        classes = {p.classes for p in parts}
        if labelled and len(classes) > 1:
            raise ValueError("Cell sets with different class lists cannot be concatenated.")
        return CellSet(
            tiles=np.concatenate([p.tiles for p in parts]),
            labels=np.concatenate([p.labels for p in parts]) if labelled else None,
            own_sites=np.concatenate([p.own_sites for p in parts]),
            own_classes=np.concatenate([p.own_classes for p in parts]) if labelled else None,
            classes=parts[0].classes if parts else LEGACY_CLASSES,
            context=np.concatenate([p.context for p in parts])
            if parts and all(p.context is not None for p in parts) else None,
            host_level=np.concatenate([p.host_level for p in parts])
            if parts and all(p.host_level is not None for p in parts) else None,
            true_host_level=np.concatenate([
                np.full(len(p), np.nan, np.float32) if p.true_host_level is None
                else p.true_host_level for p in parts])
            if any(p.true_host_level is not None for p in parts) else None,
        )

    def subset(self, keep: np.ndarray) -> CellSet:
        """The cells selected by ``keep`` (boolean mask or indices)."""
        return CellSet(self.tiles[keep], None if self.labels is None else self.labels[keep],
                       self.own_sites[keep],
                       None if self.own_classes is None else self.own_classes[keep],
                       self.classes, None if self.context is None else self.context[keep],
                       None if self.host_level is None else self.host_level[keep],
                       None if self.true_host_level is None else self.true_host_level[keep])


def label_maps(batch: CellTiles, site_pos: np.ndarray, site_cls: np.ndarray) -> np.ndarray:
    """Paint every site (image coordinates, class indices) that falls into each tile."""
    from scipy.spatial import cKDTree

    spec = batch.spec
    s = spec.size_px
    px_per_a = s / spec.extent_a
    radius = LABEL_RADIUS_A * px_per_a
    tree = cKDTree(site_pos)
    centre_tile = np.full((len(batch), 2), (s - 1) / 2)
    centres = batch.to_image(centre_tile)
    reach = np.abs(batch.affine[:, :, :2]).sum(axis=2).max() * (s / 2 + radius + 1)
    labels = np.zeros((len(batch), s, s), np.uint8)
    rr, cc = np.mgrid[0:s, 0:s]
    for k, near in enumerate(tree.query_ball_point(centres, reach)):
        if not near:
            continue
        pts = batch.to_tile(site_pos[near], k)
        keep = (pts > -radius - 1).all(1) & (pts < s + radius).all(1)
        for (r, c), cls in zip(pts[keep], site_cls[near][keep], strict=True):
            r0, r1 = max(0, int(r - radius)), min(s, int(r + radius) + 2)
            c0, c1 = max(0, int(c - radius)), min(s, int(c + radius) + 2)
            if r0 >= r1 or c0 >= c1:
                continue
            disc = (rr[r0:r1, c0:c1] - r) ** 2 + (cc[r0:r1, c0:c1] - c) ** 2 <= radius**2
            labels[k, r0:r1, c0:c1][disc] = cls
    return labels


def crop_cells(cells: CellSet, spec_from: TileSpec, spec_to: TileSpec) -> CellSet:
    """Central crop of tiles made with ``spec_from`` to the smaller ``spec_to`` (same sampling)."""
    if abs(spec_from.step_a - spec_to.step_a) > 1e-9:
        raise ValueError("Both tile specs must have the same pixel size in lattice constants.")
    off = (spec_from.size_px - spec_to.size_px) // 2
    if off * 2 != spec_from.size_px - spec_to.size_px or off < 0:
        raise ValueError("The crop must be central and smaller.")
    sl = slice(off, off + spec_to.size_px)
    return CellSet(tiles=np.ascontiguousarray(cells.tiles[:, sl, sl]),
                   labels=None if cells.labels is None else
                   np.ascontiguousarray(cells.labels[:, sl, sl]),
                   own_sites=cells.own_sites - off, own_classes=cells.own_classes,
                   classes=cells.classes, context=cells.context, host_level=cells.host_level,
                   true_host_level=cells.true_host_level)


def _site_classes(sim: SimulatedImage, classes: tuple[str, ...]) -> np.ndarray:
    index = {c: class_index_of(c, classes) for c in set(sim.sites["class"])}
    unknown = sorted(c for c, k in index.items() if k is None)
    if unknown:
        raise ValueError(f"The simulated image holds classes {', '.join(unknown)} that the class "
                         f"list {', '.join(classes)} lacks.")
    return np.array([index[c] for c in sim.sites["class"]], np.uint8)


def true_host_level(sim: SimulatedImage, prepared: PreparedImage,
                    min_columns: int = MIN_HOST_COLUMNS) -> float:
    """Level of the host chalcogen columns of a simulated image in its chalcogen units: the
    median of its true host columns as the prepared image shows them (NaN with fewer than
    ``min_columns`` of them, e.g. a nearly converted alloy)."""
    host = sim.sites[sim.sites["class"] == "chalcogen"]
    if len(host) < min_columns:
        return float("nan")
    lv = prepared.levels
    values = site_values(prepared.smoothed, host[["y_px", "x_px"]].to_numpy(float))
    return float(np.median((values - lv.background) / max(lv.chalcogen - lv.background, 1e-12)))


def cells_from_simulation(sim: SimulatedImage, spec: TileSpec = TileSpec(),
                          image: np.ndarray | None = None,
                          min_inside: float = 1.0,
                          classes: tuple[str, ...] | None = None) -> CellSet:
    """Detect the lattice of a simulated image, tile it, normalise, and label every tile.

    Parameters
    ----------
    image : ndarray, optional
        The image to tile (default ``sim.image``; e.g. ``sim.clean`` for noise-free cells). The
        lattice is always detected on ``sim.image``.
    classes : tuple of str, optional
        Defect classes the labels index (default: every class of the material).
    """
    classes = class_names(sim.material) if classes is None else tuple(classes)
    lattice = find_lattice(sim.image, sim.material, pixel_size_nm=sim.pixel_size_nm)
    img = sim.image if image is None else image
    prepared = prepare_image(sim.image, lattice)
    levels = prepared.levels
    norm = prepared.normalise(img)
    context = image_context(levels)
    host = read_image_ladder(prepared, lattice, sim.material,
                             tuple(d for d in substituents_of(classes) if d in sim.substituents)
                             ).host_level
    true_host = true_host_level(sim, prepared)
    pos = sim.sites[["y_px", "x_px"]].to_numpy(float)
    cls = _site_classes(sim, classes)
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    is_metal = (sim.sites["sublattice"] == "metal").to_numpy()
    parts = []
    for batch in iter_cell_tiles(norm, lattice, spec):
        keep = batch.inside >= min_inside
        if not keep.any():
            continue
        batch = batch.subset(keep)
        own = own_site_positions(batch, lattice)
        own_img = np.stack([batch.to_image(own[:, 0]), batch.to_image(own[:, 1])], axis=1)
        d, idx = tree.query(own_img.reshape(-1, 2))
        # The own sites must land on true sites of their own sublattice: in a Se-rich MoS2 alloy
        # the chalcogen columns outshine the metal and the lattice search swaps the two.
        right_kind = (is_metal[idx].reshape(-1, 2) == np.array([True, False])).reshape(-1)
        own_cls = np.where((d < 0.25 * lattice.a_px) & right_kind, cls[idx], 255).reshape(-1, 2)
        good = (own_cls != 255).all(1)
        if not good.any():
            continue
        batch = batch.subset(good)
        parts.append(CellSet(tiles=batch.tiles, labels=label_maps(batch, pos, cls),
                             own_sites=own[good], own_classes=own_cls[good].astype(np.uint8),
                             classes=classes, context=np.tile(context, (len(batch), 1)),
                             host_level=np.full(len(batch), host, np.float32),
                             true_host_level=np.full(len(batch), true_host, np.float32)))
    if not parts:
        s = spec.size_px
        return CellSet(np.zeros((0, s, s), np.float32), np.zeros((0, s, s), np.uint8),
                       np.zeros((0, 2, 2)), np.zeros((0, 2), np.uint8), classes,
                       np.zeros((0, len(context)), np.float32), np.zeros(0, np.float32))
    return CellSet.concatenate(parts)


#: Defect fractions per generic kind for training: richer than nature, so that every class is
#: well represented (``D_X``/``D2_X2`` per substituent; the rarest classes are raised most).
TRAINING_KIND_FRACTIONS = {"V_X": 0.08, "V_X2": 0.04, "D_X": 0.07, "D2_X2": 0.04, "V_M": 0.04}
def training_fractions(material: Material, substituents: tuple[str, ...],
                       rng: np.random.Generator) -> dict[str, float]:
    """Defect fractions of one training image: :data:`TRAINING_KIND_FRACTIONS`, or a random alloy
    (:func:`~..simulate.image.alloy_fractions`)."""
    return alloy_fractions(material, substituents, rng, TRAINING_KIND_FRACTIONS,
                           partial_share=PARTIAL_CONVERSION_SHARE)


def iter_simulated_cell_sets(
    n_images: int,
    seed: int,
    material: str | Material = "MoS2",
    spec: TileSpec = TileSpec(),
    image_px: int = 320,
    pixel_size_nm: tuple[float, float] = (0.008, 0.02),
    ideal: bool = False,
    params_override: dict | None = None,
    classes: tuple[str, ...] | None = None,
) -> Iterator[tuple[CellSet, SimulatedImage]]:
    """Yield labelled cells of ``n_images`` simulated images with random microscopes.

    Parameters
    ----------
    ideal : bool
        Domain A of the noise-transfer stage: random probe, contrast and dose, but no scan
        distortion and no background; otherwise every randomised effect is on.
    params_override : dict, optional
        Fixed :class:`MicroscopeParams` values (e.g. a measured noise level).
    classes : tuple of str, optional
        The model's defect classes (default every class of the material); only their
        substituents are simulated.
    """
    rng = np.random.default_rng(seed)
    mat = get_material(material)
    classes = class_names(mat) if classes is None else tuple(classes)
    subs = tuple(d for d in substituents_of(classes) if d in supported_substituents(mat))
    for _ in range(n_images):
        fixed = dict(params_override or {})
        if ideal:
            fixed.update(row_jitter_nm=0.0, drift_nm=0.0, shear=0.0, y_stretch=0.0,
                         background=0.0)
        params = MicroscopeParams.random(rng, mat, all_voltages=True, **fixed)
        px = float(np.exp(rng.uniform(*np.log(pixel_size_nm))))
        sim = simulate_image(mat, image_px, px, params=params,
                             defect_fractions=training_fractions(mat, subs, rng),
                             seed=int(rng.integers(2**31)), substituents=subs)
        try:
            yield cells_from_simulation(sim, spec, classes=classes), sim
        except AtomDefectError:
            continue  # e.g. a very low dose at a tiny field of view: no lattice to tile


def real_cells(image: np.ndarray, material: str = "MoS2", pixel_size_nm: float | None = None,
               spec: TileSpec = TileSpec(), min_inside: float = 1.0,
               classes: tuple[str, ...] | None = None) -> CellSet:
    """Unlabelled, normalised unit cells of a real image (domain B of the noise transfer, which
    works in chalcogen units: no host level). ``pixel_size_nm`` is the file's: the calibration
    policy replaces it by the lattice's when they disagree (the Nion files are 8–12 % off)."""
    classes = class_names(material) if classes is None else tuple(classes)
    lattice = find_lattice(image, material, pixel_size_nm=pixel_size_nm,
                           calibration="file" if pixel_size_nm else "none")
    prepared = prepare_image(image, lattice)
    levels = prepared.levels
    norm = prepared.normalised
    context = image_context(levels)
    parts = []
    for batch in iter_cell_tiles(norm, lattice, spec):
        keep = batch.inside >= min_inside
        if keep.any():
            b = batch.subset(keep)
            parts.append(CellSet(b.tiles, None, own_site_positions(b, lattice), classes=classes,
                                 context=np.tile(context, (len(b), 1))))
    if not parts:
        s = spec.size_px
        return CellSet(np.zeros((0, s, s), np.float32), None, np.zeros((0, 2, 2)),
                       classes=classes)
    return CellSet.concatenate(parts)
