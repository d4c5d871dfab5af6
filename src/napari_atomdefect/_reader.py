"""npe2 reader contribution: STEM image files -> a calibrated Image layer (thin adapter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .core.io import SUPPORTED_EXTENSIONS


def get_reader(path: str | list[str]) -> Callable | None:
    """Return :func:`read_stem_layers` if ``path`` is a file type this plugin reads."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if Path(str(path)).suffix.lower() not in SUPPORTED_EXTENSIONS:
        return None
    return read_stem_layers


def image_layer_data(img) -> tuple:
    """LayerData tuple of a :class:`~.core.io.StemImage` (scale in nm when calibrated)."""
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
    return img.data, kwargs, "image"


def read_stem_layers(path: str | list[str]) -> list[tuple]:
    """Read one STEM file into napari layer data; bad files raise a plain-language error."""
    from napari.utils.notifications import show_info

    from .core.io import read_image

    if isinstance(path, list):
        path = path[0]
    img = read_image(path)
    for msg in img.messages:
        show_info(msg)
    return [image_layer_data(img)]
