"""npe2 reader contribution: STEM image files -> a calibrated Image layer (thin adapter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core.io.image import IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS, TIFF_EXTENSIONS


def get_reader(path: str | list[str]) -> Callable | None:
    """Return :func:`read_stem_layers` if ``path`` is a file type this plugin reads (not a colour
    picture: napari's own reader shows it in colour; a STEM image saved as RGB with equal
    channels is read here, as grey)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    suffix = Path(str(path)).suffix.lower()
    if suffix == ".csv":
        return read_defects_layer if _looks_like_defects(path) else None
    if suffix not in SUPPORTED_EXTENSIONS:
        return None
    if suffix == ".h5":  # HDF5 of other programs is theirs to read
        from .core.io.nion import is_nion_h5

        return read_stem_layers if is_nion_h5(path) else None
    if suffix in (*IMAGE_EXTENSIONS, *TIFF_EXTENSIONS, ".npy"):
        from .core.io.image import is_colour_picture

        if is_colour_picture(path):  # a photograph: napari opens it in colour (a grey one here)
            return None
    return read_stem_layers


def _header(path) -> list[str]:
    """The column names of a CSV file's first line (empty if it cannot be read as text)."""
    try:
        with open(path, encoding="utf-8-sig") as fh:  # Excel's "CSV UTF-8" starts with a BOM
            return [c.strip().strip('"') for c in fh.readline().strip().split(",")]
    except (OSError, UnicodeDecodeError):
        return []


def _looks_like_defects(path) -> bool:
    """A defect table: this plugin's columns, or a detections layer saved by napari's own points
    writer (its pixel coordinates as ``axis-0``, ``axis-1`` beside a ``class`` feature)."""
    from .core.io.table import is_napari_points_layout

    header = _header(path)
    return {"y_px", "x_px", "class"} <= set(header) or is_napari_points_layout(header)


def read_defects_layer(path: str | list[str]) -> list[tuple]:
    """A defect CSV (``atomdefect detect`` or the writer's) back as an identical Points layer
    (3-D, ``(frame, row, col)`` with a ``track_id`` feature, when the table has a ``frame``
    column). A table without a ``confidence`` column — ground-truth labels, an annotation made
    elsewhere — or the simulator's truth (every ``source`` ``simulation``/``truth``) opens as a
    *reference* layer (:func:`~._layers.reference_layer_kwargs`), styled
    apart from detections.

    Raises
    ------
    TableError
        If the table cannot be read, or holds class names that the Points layer cannot show
        (opening it would drop them, and saving the layer would lose them).
    """
    import warnings

    from ._layers import (
        SOURCES,
        defect_layer_kwargs,
        defect_points_data,
        image_frame,
        reference_layer_kwargs,
    )
    from .core.errors import TableError
    from .core.io.table import (
        UnknownClassWarning,
        is_truth_table,
        pixel_size_from_table,
        read_defects_csv,
    )
    from .core.materials.columns import ALL_CLASS_NAMES, lattice_constant_of_classes
    from .widgets._common import given_pixel_size, image_file_name

    if isinstance(path, list):
        path = path[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_defects_csv(path)
    for w in caught:
        if not issubclass(w.category, UnknownClassWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    unknown = sorted(set(table["class"]) - set(ALL_CLASS_NAMES))
    if unknown:
        raise TableError(
            f"{Path(path).name} holds class names that are not defect classes of this plugin "
            f"({', '.join(map(repr, unknown))}); rename them to one of "
            f"{', '.join(ALL_CLASS_NAMES)} (or remove those rows) to open it as a defect layer.")
    px = pixel_size_from_table(table)
    data = defect_points_data(table)
    image = _image_under(data, px, Path(path).name, table.attrs.get("image"))
    frame = image_frame(image, data.shape[1] if data.ndim == 2 else 2) if image is not None else None
    # markers as large as a detection's (0.4 a) where the classes and nm columns give a
    a_nm = lattice_constant_of_classes(table["class"].dropna().unique())
    a_px = a_nm / px if a_nm and px else None
    kwargs = defect_layer_kwargs(table, px, Path(path).stem, frame=frame, a_px=a_px)
    meta = kwargs["metadata"]["atomdefect"]
    if table.attrs.get("material"):  # the run the table names (its classes, kept on export)
        meta.update(material=table.attrs["material"],
                    substituents=list(table.attrs.get("substituents", ())),
                    class_overlaps=list(table.attrs.get("class_overlaps", [])))
    # where the table's pixel size came from (written again on export with that pixel size: a
    # trial's lattice-calibrated table, saved again over its image, said "file"); the image's
    # where the table does not say and the image is read at the table's pixel size
    source = table.attrs.get("calibration")
    if not source and image is not None and px and (shown := given_pixel_size(image)[0]) \
            and abs(shown / px - 1) <= 1e-6:
        source = image.metadata.get("atomdefect", {}).get("calibration")
    if source:
        meta["calibration"] = source
    if image is not None:  # drawn on that image: it follows the image's calibration from now on
        meta["image"] = image.name
        meta["image_file"] = table.attrs.get("image") or image_file_name(image)
        _say_other_calibration(image, px, Path(path).name)
    if image is not None:  # (a movie's table over its 3-D image: every frame's area)
        movie = "frame" in table.columns and image.data.ndim == 3
        if movie or "frame" not in table.columns:
            n_frames = int(image.data.shape[0]) if movie else 1
            for key, value in _sites_from_area(image, table["class"], px, n_frames).items():
                meta.setdefault(key, value)
    _check_classes_kept(kwargs.get("features"), table, Path(path).name)
    if is_truth_table(path):  # labels, an annotation, or the simulator's truth
        kwargs = reference_layer_kwargs(kwargs)
        if "source" not in _header(path):  # (not "manual", which the table never said)
            import pandas as pd

            features = kwargs["features"].copy()
            features["source"] = pd.Categorical(["truth"] * len(features),
                                                categories=sorted({*SOURCES, "truth"}))
            kwargs["features"] = features
    # A movie's table (frame, track_id) becomes a 3-D layer (frame, row, col), with its tracks.
    return [(data, kwargs, "points"), *_tracks_layer(table, kwargs, image, px)]


def _tracks_layer(table: Any, points_kwargs: dict, image: Any, px: float | None) -> list[tuple]:
    """The Tracks layer of a movie's table (its tracks of two frames or more, drawn on the
    movie it sits on, as detection draws them), as a one-element list; empty for a table of
    one image or one without such tracks (a reopened movie table had shown no tracks)."""
    from ._layers import image_frame, is_movie_table, track_layer_kwargs
    from .core.detect.movie import track_layer_data

    if not is_movie_table(table) or "track_id" not in table.columns:
        return []
    tracks = track_layer_data(table)
    if not len(tracks):
        return []
    frame = image_frame(image, 3) if image is not None and image.data.ndim == 3 else None
    kwargs = track_layer_kwargs(f"{points_kwargs['name']} tracks", frame, px,
                                image.name if image is not None else None,
                                points_kwargs=points_kwargs)
    return [(tracks, kwargs, "tracks")]


#: A table's pixel size this far from its image layer's is said when the table opens.
CALIBRATION_SAID = 0.01


def _say_other_calibration(image: Any, px: float | None, name: str) -> None:
    """Warn when the table was measured at another pixel size than its image is shown at (a
    detection calibrated by the lattice, opened again over the file's calibration)."""
    import warnings

    from .widgets._common import given_pixel_size

    sentence = _other_calibration(name, px, image.name, given_pixel_size(image)[0])
    if sentence:
        warnings.warn(sentence, UserWarning, stacklevel=3)


def _other_calibration(name: str, px: float | None, image_name: str, shown: float | None
                       ) -> str | None:
    """The sentence for a table measured at ``px`` nm/px drawn on an image shown at ``shown``
    (``None`` within :data:`CALIBRATION_SAID`): the markers sit on their columns, but the scale
    bar and the table's nm columns differ. An image shown without a pixel size (``shown``
    ``None``: an uncalibrated ``.npy``) is told how to take the table's."""
    if px and not shown:
        return (f"{name} was measured at {px:.5f} nm/px; {image_name} has no pixel size and is "
                "drawn in pixels. The markers sit on their columns; to show both in nm, type "
                f"{px:.5f} as the image's pixel size in the Detect dock (or Calibrate from "
                "lattice).")
    if not (px and shown and abs(shown / px - 1) > CALIBRATION_SAID):
        return None
    return (f"{name} was measured at {px:.5f} nm/px; {image_name} is shown at {shown:.5f} "
            f"nm/px ({shown / px - 1:+.0%}). The markers sit on their columns, but the table's "
            "nm columns and the densities follow the table, the scale bar the image: detect "
            "again to show the image at the lattice's calibration.")


def _check_classes_kept(features: Any, table: Any, name: str) -> None:
    """Refuse a table whose class names the layer's features would not keep (nothing is lost).

    Raises
    ------
    TableError
        Naming the classes the Points layer cannot show.
    """
    from .core.errors import TableError

    if features is None or "class" not in getattr(features, "columns", ()):
        return
    lost = features["class"].isna().to_numpy() & table["class"].notna().to_numpy()
    if lost.any():
        names = sorted(set(table["class"].astype(str)[lost]))
        raise TableError(f"{name} holds classes the defect layer cannot show yet "
                         f"({', '.join(map(repr, names))}); opening it would lose them.")


#: A table's points may lie this share of the image's size past its edge and still be the image's.
HOLD_MARGIN = 0.02


def _image_under(points: Any, pixel_size_nm: float | None = None, name: str = "the table",
                 image: str | None = None) -> Any:
    """The image layer the points belong to in the current viewer: the image the table names
    (``image``: a layer of that name, or opened from a file of that name), else the selected
    image layer, else
    among the images whose pixel grid holds every point those shown at the table's pixel size
    ``pixel_size_nm`` (within :data:`CALIBRATION_SAID`: a detection's lattice calibration tells
    images of one session apart), the last one; ``None`` when there is no viewer or no such image
    (the layer is then scaled by the table's pixel size). When several images could hold it and
    nothing tells which, a warning names the one taken.

    The CSV holds pixel coordinates of the image it was made from, so drawn on that image's own
    scale the markers sit on the columns whatever the calibration of either.
    """
    import numpy as np

    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no Qt, no viewer: the table's own scale is used
        return None
    if viewer is None:
        return None
    from .widgets._common import is_image_layer

    pts = np.asarray(points, float)
    ndim = pts.shape[1] if pts.ndim == 2 else 2

    def holds(layer: Any) -> bool:
        # (a hand-added point may lie a little past the edge: a click beside an edge column)
        shape = np.asarray(layer.data.shape[-ndim:], float)
        margin = np.maximum(HOLD_MARGIN * shape, 2.0)
        margin[:-2] = 0.0  # frames of a movie: none
        return len(pts) == 0 or bool(np.all((pts >= -0.5 - margin)
                                            & (pts <= shape - 0.5 + margin)))

    images = [layer for layer in viewer.layers if is_image_layer(layer)
              and layer.data.ndim >= ndim and holds(layer)]
    if not images:
        return None
    named = [layer for layer in images if image and image in (
        layer.name, Path(str(getattr(layer.source, "path", None) or "")).stem)]
    if named:
        return named[-1]
    chosen = _image_taken(viewer, images, pixel_size_nm, name, quiet=bool(image))
    if image and chosen is not None:
        import warnings

        warnings.warn(f"{name} names its image {image}, which is not open: it is drawn on "
                      f"{chosen.name}. If that is not its image, open {image} and open the "
                      "table again.", UserWarning, stacklevel=3)
    return chosen


def _image_taken(viewer: Any, images: list, pixel_size_nm: float | None, name: str,
                 quiet: bool = False) -> Any:
    """Of the open ``images`` that hold a table's points (none named by it), the one it is
    drawn on: the selected one, else those shown at its pixel size, the last (said when
    several could be, unless ``quiet``: the caller says it)."""
    active = viewer.layers.selection.active
    if active in images:
        return active
    from .widgets._common import given_pixel_size

    if pixel_size_nm:
        same = [layer for layer in images
                if (shown := given_pixel_size(layer)[0])
                and abs(shown / pixel_size_nm - 1) <= CALIBRATION_SAID]
        images = same or images
    if len(images) > 1 and not quiet:
        import warnings

        warnings.warn(
            f"{name} could belong to {len(images)} open images; it is drawn on "
            f"{images[-1].name}. If that is not its image, select the image layer and open "
            "the table again.", UserWarning, stacklevel=4)
    return images[-1]


def _sites_from_area(image: Any, classes: Any, pixel_size_nm: float | None = None,
                     n_frames: int = 1) -> dict:
    """Area and an estimate of the lattice sites of the image a reopened table sits on (the CSV
    holds no site counts): one metal site and one chalcogen column per unit cell of the host the
    class names belong to, its lattice constant by Vegard's law over the partner atoms the table
    counts (as detection calibrates an alloy). The area is the image's at the table's pixel size
    (the calibration the table was made with: the image may be opened at its file's), else at
    the image's scale in nm; empty when neither is known. A movie's table (``n_frames``) counts
    every frame's area and sites, as its detection did."""
    import numpy as np

    from .core.detect.alloy_calibration import alloy_atoms, alloy_lattice_constant
    from .core.lattice.lattice import cell_area_nm2
    from .core.materials.columns import materials_of_classes
    from .core.materials.materials import MATERIALS

    n_pixels = float(np.prod(image.data.shape[-2:]))
    if pixel_size_nm:
        area = n_pixels * float(pixel_size_nm) ** 2
    elif all(str(u) in ("nm", "nanometer") for u in image.units[-2:]):
        area = n_pixels * abs(image.scale[-1] * image.scale[-2])
    else:
        return {}
    calls = [str(c) for c in classes]
    hosts = materials_of_classes(calls) or list(MATERIALS.values())
    n_cells = int(round(area / cell_area_nm2(float(np.mean([m.a_nm for m in hosts])))))
    if n_cells:  # (the hosts that share the names share their chalcogen and its partner)
        atoms = 2 * n_cells * n_frames
        a = float(np.mean([alloy_lattice_constant(m, {d: n / atoms for d, n in
                                                      alloy_atoms(calls, m).items()})
                           for m in hosts]))
        n_cells = int(round(area / cell_area_nm2(a)))
    out = {"area_nm2": area * n_frames, "n_metal_sites": n_cells * n_frames,
           "n_chalcogen_sites": n_cells * n_frames, "sites_from": "image area"}
    if n_frames > 1:
        out.update(frame_area_nm2=area, n_frames=n_frames)
    return out


def image_layer_data(img) -> tuple:
    """LayerData tuple of a :class:`~.core.io.image.StemImage` (scale in nm when calibrated)."""
    from ._layers import MOVIE_AXES

    px = img.pixel_size_nm
    spatial = (px, px) if px else (1.0, 1.0)
    scale = ((1.0,) + spatial) if img.is_stack else spatial
    units = "nm" if px else "pixel"
    meta = {
        "atomdefect": {
            "pixel_size_nm": px,
            "calibration": img.calibration,
            "source_path": img.path,
            "messages": list(img.messages),
        },
        "original_metadata": img.metadata,
    }
    kwargs = {"name": img.name, "scale": scale, "metadata": meta, "colormap": "gray",
              "units": ("pixel",) + (units, units) if img.is_stack else (units, units)}
    if img.is_stack:  # the slider says "frame" (napari's default was "-3")
        kwargs["axis_labels"] = MOVIE_AXES
    return img.data, kwargs, "image"


def read_stem_layers(path: str | list[str]) -> list[tuple]:
    """Read one STEM file into napari layer data; bad files raise a plain-language error."""
    import warnings

    from napari.utils.notifications import show_info

    from .core.io.image import read_image

    if isinstance(path, list):
        path = path[0]
    img = read_image(path)
    for msg in img.messages:
        show_info(msg)
    data, kwargs, kind = image_layer_data(img)
    moved = _draw_open_defect_layers_on(data.shape, kwargs)
    if moved:
        show_info(f"{', '.join(moved)}: drawn on {img.name}'s pixel grid (the table's pixel "
                  "coordinates belong to this image's pixels).")
        _under_when_added(img.path, list(moved))
    for sentence in moved.values():
        if sentence:  # (the table opened first: told as it is when opened after its image)
            warnings.warn(sentence, UserWarning, stacklevel=2)
    return [(data, kwargs, kind)]


def _under_when_added(source_path: Any, above: list[str]) -> None:
    """Once the image layer read from ``source_path`` is added (napari puts a new layer on top),
    move it under the layers named ``above`` — the defect layers opened before it and drawn on
    its pixel grid, which it had covered (a trial saw no marker)."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no Qt, no viewer: nothing to order
        return
    if viewer is None:
        return
    layers = viewer.layers

    def inserted(event) -> None:
        image = event.value
        if (getattr(image, "metadata", None) or {}).get("atomdefect", {}).get(
                "source_path") != source_path:
            return
        layers.events.inserted.disconnect(inserted)
        below = [layers.index(layer) for layer in layers if layer.name in above]
        here = layers.index(image)
        if below and min(below) < here:
            layers.move(here, min(below))

    layers.events.inserted.connect(inserted)


def _draw_open_defect_layers_on(shape: tuple[int, ...], image_kwargs: dict
                                ) -> dict[str, str | None]:
    """Give the defect layers already open (detections, or a reference such as ground truth),
    that no image layer carries yet, the frame of the
    image being opened, when their points fit its pixel grid; their names, each with the
    sentence that says when its table was measured at another pixel size than the image is
    read at (else ``None``). Each layer then belongs to that image (``metadata["image"]``: it
    follows the image's calibration, Statistics reads its area), as a table opened after its
    image does.

    The mirror of :func:`_image_under` for a table opened *before* its image: drawn by the
    table's own pixel size in nm, the markers of an uncalibrated image's table (scale 1 pixel)
    were far off its columns.
    """
    import numpy as np

    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001 - no Qt, no viewer: nothing is open
        return {}
    if viewer is None:
        return {}
    from types import SimpleNamespace

    from napari.layers import Points

    from ._layers import image_frame
    from .widgets._common import is_image_layer
    from .widgets._tracks import tracks_layer_of

    images = [layer for layer in viewer.layers if is_image_layer(layer)]
    moved: dict[str, str | None] = {}
    image_px = image_kwargs["metadata"]["atomdefect"].get("pixel_size_nm")
    for layer in viewer.layers:
        if not isinstance(layer, Points) \
                or layer.metadata.get("atomdefect", {}).get("kind") not in ("detections",
                                                                            "reference"):
            continue
        ndim = int(layer.data.shape[1]) if layer.data.ndim == 2 else 2
        frame = image_frame(layer, ndim)
        if any(image_frame(im, ndim) == frame for im in images if im.ndim >= ndim):
            continue  # drawn on an open image already
        pts = np.asarray(layer.data, float)
        grid = np.asarray(shape[-ndim:], float)
        if len(pts) == 0 or len(shape) < ndim or not np.all((pts >= -0.5) & (pts <= grid - 0.5)):
            continue
        lead = len(image_kwargs["scale"]) - ndim
        if lead < 0:
            continue
        tracks = [t for t in (tracks_layer_of(viewer, layer),) if t is not None]
        for drawn in (layer, *tracks):  # (a movie's tracks go with their calls)
            drawn.scale = tuple(image_kwargs["scale"][lead:])
            drawn.translate = (0.0,) * ndim
            drawn.units = tuple(image_kwargs["units"][lead:])
            drawn.metadata.setdefault("atomdefect", {})["image"] = image_kwargs["name"]
        meta = layer.metadata["atomdefect"]
        px = meta.get("pixel_size_nm")
        if "class" in getattr(layer.features, "columns", ()) and "area_nm2" not in meta:
            image = SimpleNamespace(data=SimpleNamespace(shape=shape),
                                    scale=image_kwargs["scale"], units=image_kwargs["units"])
            movie = ndim == 3 and len(shape) == 3
            for key, value in _sites_from_area(image, layer.features["class"], px,
                                               int(shape[0]) if movie else 1).items():
                meta.setdefault(key, value)
        moved[layer.name] = _other_calibration(layer.name, px, image_kwargs["name"], image_px)
    return moved
