"""Layer data for napari: detections, lattice sites and the unit-cell grid (no Qt here)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd

from .core.io.class_style import class_color, class_symbol
from .core.io.table import GRAIN_COLUMN
from .core.materials.columns import (
    ALL_CLASS_NAMES,
    LEGACY_CLASSES,
    class_names,
    lookup_class,
    material_of_classes,
)

SOURCES = ("model", "manual")
#: Border width of the defect markers, relative to their size (0.18 filled a star's middle and
#: hid the very column it marks when zoomed in).
MARKER_BORDER = 0.12


def image_frame(image_layer, ndim: int = 2) -> dict:
    """``scale``, ``translate`` and ``units`` of the last ``ndim`` axes of an image layer, so that
    a layer holding data in the image's pixel coordinates is drawn on top of it.

    Parameters
    ----------
    image_layer : napari.layers.Image
        Any object with ``scale``, ``translate`` and ``units`` sequences.
    ndim : int
        2 for ``(row, col)`` data; 3 for ``(frame, row, col)`` data of a movie (the frame axis
        then keeps the image's own scale, translate and unit).

    Returns
    -------
    dict
    """
    return {"scale": tuple(float(v) for v in image_layer.scale[-ndim:]),
            "translate": tuple(float(v) for v in image_layer.translate[-ndim:]),
            "units": tuple(str(u) for u in image_layer.units[-ndim:])}


def _frame_or_nm(px: float | None, frame: dict | None, movie: bool = False) -> dict:
    # (a movie's slider says "frame", as over the reader's movie: a table opened alone read "-3")
    labels = {"axis_labels": MOVIE_AXES} if movie else {}
    if frame is not None:
        return {**frame, **labels}
    lead = 1 if movie else 0  # a movie's frame axis: one frame per step, as the reader's image
    return {"scale": (1.0,) * lead + (px or 1.0, px or 1.0),
            "units": ("pixel",) * lead + (("nm", "nm") if px else ("pixel", "pixel")), **labels}


#: Axis names of a movie's layers (the reader's movie has the same).
MOVIE_AXES = ("frame", "y", "x")


def is_movie_table(table: pd.DataFrame) -> bool:
    """Whether a defect table belongs to a movie (it has a ``frame`` column)."""
    return "frame" in table.columns


def defect_points_data(table: pd.DataFrame) -> np.ndarray:
    """Points-layer data of a defect table: ``(row, col)``, or ``(frame, row, col)`` for a
    movie; a writable array of its own (pandas' ``to_numpy`` gives a read-only view, and napari
    moves a dragged point in place: every drag of a detection failed)."""
    cols = (["frame"] if is_movie_table(table) else []) + ["y_px", "x_px"]
    return np.array(table[cols].to_numpy(float).reshape(-1, len(cols)), copy=True)


def table_classes(table: pd.DataFrame) -> tuple[str, ...]:
    """The defect classes a layer of ``table`` offers, in channel order.

    ``table.attrs["classes"]`` (the classes the detection run could produce) when present;
    otherwise, for a table read back from a CSV, the classes its names imply: the four legacy
    MoS2 classes when every name is one of them, else the classes of the one host material the
    names belong to with the substituents seen (vacancies always), else the known names present.
    Names no material knows (kept from a user's CSV) come last, sorted.

    Parameters
    ----------
    table : DataFrame
        Defects with a ``class`` column.

    Returns
    -------
    tuple of str
    """
    present = list(dict.fromkeys(table["class"].astype(str))) if "class" in table else []
    given = table.attrs.get("classes")
    if given:
        classes = [str(c) for c in given]
    else:
        known = [c for c in present if lookup_class(c) is not None]
        if set(known) <= set(LEGACY_CLASSES):
            classes = list(LEGACY_CLASSES)
        else:
            mat = material_of_classes(known)
            subs = {lookup_class(c).substituent for c in known} - {None}
            classes = (list(class_names(mat, subs)) if mat is not None
                       else [c for c in ALL_CLASS_NAMES if c in known])
    extra = sorted(c for c in present if c not in classes)
    return tuple(classes + extra)


def defect_features(table: pd.DataFrame, classes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Points-layer features of a defect table: categorical class (categories ``classes``,
    default :func:`table_classes`) and source, confidence, and for a movie the integer
    ``track_id`` (-1: no track), for a field of several grains the ``grain``."""
    classes = table_classes(table) if classes is None else classes
    features = pd.DataFrame({
        "class": pd.Categorical(table["class"].astype(str), categories=list(classes)),
        "confidence": table["confidence"].astype(float).to_numpy(),
        "source": pd.Categorical(table["source"].astype(str),
                                 categories=sorted(set(SOURCES) | set(table["source"].astype(str)))),
    })
    if is_movie_table(table):
        tracks = table["track_id"] if "track_id" in table.columns else pd.Series(-1, table.index)
        features["track_id"] = tracks.astype(int).to_numpy()
    if GRAIN_COLUMN in table.columns:  # a field of several grains
        features[GRAIN_COLUMN] = table[GRAIN_COLUMN].fillna(-1).astype(int).to_numpy()
    return features


#: Metadata key of a detections layer: its points' positions when it was made (a run's calls, or
#: a table opened), which tells the calls deleted by hand since (:func:`calls_gone`).
CALLED_AT = "called_at"


def calls_gone(layer) -> np.ndarray:
    """The points a detections layer was made with that are no longer where they were (deleted
    by hand, or dragged away), as rows of its data; none for a layer made without the record."""
    at = layer.metadata.get("atomdefect", {}).get(CALLED_AT)
    now = np.asarray(layer.data, float)
    if at is None or not len(at):
        return np.empty((0, now.shape[1] if now.ndim == 2 else 2))
    at = np.asarray(at, float)
    if not len(now) or now.shape[1] != at.shape[1]:
        return at
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(now).query(at)
    return at[dist > 1e-6]


def defect_layer_kwargs(table: pd.DataFrame, pixel_size_nm: float | None, name: str,
                        a_px: float | None = None, frame: dict | None = None) -> dict:
    """Keyword arguments of a Points layer showing ``table``.

    Markers are hollow: a border in the class colour and a transparent face, so that the column
    under a marker stays visible. Colours and symbols come from :mod:`.core.io.class_style`; the
    class categories (:func:`table_classes`) are kept in ``metadata["atomdefect"]["classes"]``
    for the widgets (class box, keys, legend, statistics).

    Parameters
    ----------
    table : DataFrame
        Defects with ``y_px``, ``x_px``, ``class``, ``confidence``, ``source`` (and for a movie
        ``frame`` and ``track_id``: the layer is then 3-D, see :func:`defect_points_data`).
    pixel_size_nm : float or None
        The calibration of the coordinates (kept in the metadata for nm exports).
    name : str
        Layer name.
    a_px : float, optional
        Lattice constant in pixels (sets the marker size).
    frame : dict, optional
        ``scale``/``translate``/``units`` of the image layer (see :func:`image_frame`); without
        it the layer is scaled by ``pixel_size_nm`` in nm.

    Returns
    -------
    dict
    """
    size = 0.4 * a_px if a_px else 10.0  # data pixels: smaller than the column spacing
    movie = is_movie_table(table)
    classes = table_classes(table)
    defaults = {"class": classes[0] if classes else "V_S", "confidence": 1.0, "source": "manual"}
    if GRAIN_COLUMN in table.columns:
        defaults[GRAIN_COLUMN] = -1  # a point added by hand
    return {
        "name": name,
        **_frame_or_nm(pixel_size_nm, frame, movie),
        "features": defect_features(table, classes),
        "feature_defaults": {**defaults, "track_id": -1} if movie else defaults,
        "face_color": "transparent",
        "border_color": "class",
        "border_color_cycle": {c: class_color(c) for c in classes},
        "symbol": [class_symbol(c) for c in table["class"].astype(str)] or "disc",
        "border_width": MARKER_BORDER,
        "size": size,
        "opacity": 1.0,
        "metadata": {"atomdefect": {"kind": "detections", "pixel_size_nm": pixel_size_nm,
                                    "a_px": a_px, "classes": list(classes),
                                    CALLED_AT: defect_points_data(table)}},
    }


#: Size of a reference circle over the size of a detection marker, and its border (relative to
#: its size): a thin circle around the call's symbol, not over it.
REFERENCE_SIZE = 1.8
REFERENCE_BORDER = 0.05


def reference_layer_kwargs(kwargs: dict, name: str | None = None) -> dict:
    """:func:`defect_layer_kwargs` restyled for a *reference* table — ground-truth labels, or an
    annotation without the detector's ``confidence`` column: thin class-coloured circles
    :data:`REFERENCE_SIZE` times a detection marker's size instead of class symbols
    (``metadata["atomdefect"]["kind"]`` ``"reference"``), so that opened with the detections of
    the same image each call's symbol is seen inside its reference's circle, whichever layer is
    on top (filled rings of the markers' size had covered the calls). ``name``: the layer's
    (default: ``"<name> (reference)"``)."""
    meta = {**kwargs["metadata"]["atomdefect"], "kind": "reference"}
    return {**kwargs, "name": name or f"{kwargs['name']} (reference)", "symbol": "disc",
            "size": REFERENCE_SIZE * np.asarray(kwargs["size"], float),
            "border_width": REFERENCE_BORDER, "opacity": 1.0,
            "metadata": {**kwargs["metadata"], "atomdefect": meta}}


def _grains(lattice) -> list:
    """A lattice, or the lattices of several grains, as a list (the first holds the calibration)."""
    return list(lattice) if isinstance(lattice, (list, tuple)) else [lattice]


#: Outline colours of the lattice-sites layer, per sublattice.
SITE_COLORS = {"metal": "#f0f0f0", "chalcogen": "#8a8a8a"}


def site_layer_kwargs(lattice, name: str, frame: dict | None = None) -> tuple[np.ndarray, dict]:
    """Points data and kwargs of the (light) lattice-sites layer (``lattice``: one, or the
    lattices of several grains — a ``grain`` feature then says which; ``frame``: see
    :func:`defect_layer_kwargs`)."""
    grains = _grains(lattice)
    first = grains[0]
    px = first.pixel_size_nm
    data = np.concatenate([np.concatenate([la.metal_sites_px, la.chalcogen_sites_px])
                           for la in grains])
    sub = [s for la in grains for s in ["metal"] * len(la.metal_sites_px)
           + ["chalcogen"] * len(la.chalcogen_sites_px)]
    features = pd.DataFrame({"sublattice": pd.Categorical(sub, ["metal", "chalcogen"])})
    if len(grains) > 1:
        features["grain"] = np.concatenate([
            np.full(len(la.metal_sites_px) + len(la.chalcogen_sites_px), k)
            for k, la in enumerate(grains)])
    return data, {
        "name": name, **_frame_or_nm(px, frame),
        "features": features,
        "face_color": "transparent", "border_color": "sublattice",
        # neutral greys (white metal, grey chalcogen) that no class colour uses: red and cyan
        # rings read as V_X2 squares and O diamonds beside them (a user trial, eighteenth
        # session); one thin outline, faint: the sites show where the lattice put them without
        # hiding the columns they mark or competing with the defect markers drawn over them
        "border_color_cycle": {"metal": SITE_COLORS["metal"],
                               "chalcogen": SITE_COLORS["chalcogen"]},
        "border_width": 0.1, "size": 0.28 * first.a_px, "opacity": 0.45, "symbol": "disc",
        "metadata": {"atomdefect": {"kind": "lattice_sites"}},
    }


def grid_layer_data(lattice, name: str = "unit cells",
                    frame: dict | None = None) -> tuple[np.ndarray, dict]:
    """The unit-cell grid for a Vectors layer called ``name`` (``frame``: see
    :func:`defect_layer_kwargs`): from every metal site (every grain's on its own lattice) its
    cell's two edges along ``a1`` and ``a2``, drawn as lines — ``(N, 2, 2)`` data, each row a
    site and an edge. (A Shapes layer of one parallelogram per cell took 0.3 s to add for 800
    cells, the dock frozen meanwhile, while hidden; these lines take 0.06 s.)"""
    grains = _grains(lattice)
    px = grains[0].pixel_size_nm
    # Local vectors would follow distortion exactly; the global ones keep the grid readable.
    edges = [np.stack([p, edge]) for la in grains for p in la.metal_sites_px
             for edge in (la.a1_px, la.a2_px)]
    data = np.array(edges, float).reshape(-1, 2, 2)
    return data, {"name": name, **_frame_or_nm(px, frame), "vector_style": "line",
                  "length": 1.0, "edge_color": "#ffd700", "edge_width": 0.5, "opacity": 0.4,
                  "visible": False, "metadata": {"atomdefect": {"kind": "cell_grid"}}}


def track_layer_kwargs(name: str, frame: dict | None = None, pixel_size_nm: float | None = None,
                       image: str | None = None, points_kwargs: dict | None = None) -> dict:
    """Keyword arguments of the Tracks layer of a movie's defects (data from
    :func:`~.core.detect.movie.track_layer_data`; ``frame`` from :func:`image_frame` with
    ``ndim=3``). ``points_kwargs``: those of the detections layer whose tracks it draws — both
    layers' metadata get the same :data:`TRACK_KEY` (names change: napari renames a layer
    whose name is taken)."""
    key = uuid.uuid4().hex
    if points_kwargs is not None:
        points_kwargs["metadata"]["atomdefect"][TRACK_KEY] = key
    return {"name": name, **_frame_or_nm(pixel_size_nm, frame, movie=True), "tail_length": 5,
            "tail_width": 3, "colormap": "turbo", "blending": "translucent",
            "metadata": {"atomdefect": {"kind": "tracks", "image": image, TRACK_KEY: key}}}


#: Metadata key that pairs a movie's detections layer with its Tracks layer.
TRACK_KEY = "track_key"


def layer_classes(layer) -> tuple[str, ...]:
    """The defect classes of a detections layer: ``metadata["atomdefect"]["classes"]``, then any
    further categories of its ``class`` feature (a class added by hand); for a layer made
    without that metadata, its categories (or the legacy classes)."""
    meta = list((layer.metadata or {}).get("atomdefect", {}).get("classes") or [])
    feature = layer.features["class"] if "class" in layer.features else pd.Series([], dtype=str)
    cats = (list(feature.cat.categories.astype(str)) if hasattr(feature, "cat")
            else list(dict.fromkeys(feature.astype(str))))
    names = meta + [c for c in cats if c not in meta]
    return tuple(names) if names else LEGACY_CLASSES
