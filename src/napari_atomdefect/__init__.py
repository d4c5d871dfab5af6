"""napari-atomdefect: find and classify atomic defects in HAADF-STEM images of 2D materials.

The public API is imported lazily, so that ``import napari_atomdefect`` (done by napari at start-up)
costs nothing: no torch, no scipy until a function is used.

Start with :func:`read_image` and :func:`detect` (a DataFrame of defects, one row each, with
the run in its ``attrs``); :func:`with_run_columns` adds the material and substituents to it
before writing a CSV that reopens with the run's classes. Also: :func:`find_lattice`,
:func:`tile_cells`, :func:`simulate_image`, :func:`batch`, :func:`iter_detect_frames` and
:func:`link_tracks` (movies), :func:`assess_fit` (does the image look like the material?).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - not installed
    __version__ = "0.0.0"

_API = {
    "detect": "napari_atomdefect.core.detect.detect",
    "iter_detect": "napari_atomdefect.core.detect.detect",
    "read_image": "napari_atomdefect.core.io.image",
    "StemImage": "napari_atomdefect.core.io.image",
    "simulate_image": "napari_atomdefect.core.simulate.image",
    "MicroscopeParams": "napari_atomdefect.core.simulate.image",
    "find_lattice": "napari_atomdefect.core.lattice.lattice",
    "Lattice": "napari_atomdefect.core.lattice.lattice",
    "tile_cells": "napari_atomdefect.core.cells.tiles",
    "iter_cell_tiles": "napari_atomdefect.core.cells.tiles",
    "TileSpec": "napari_atomdefect.core.cells.tiles",
    "MATERIALS": "napari_atomdefect.core.materials.materials",
    "get_material": "napari_atomdefect.core.materials.materials",
    "AtomDefectError": "napari_atomdefect.core.errors",
    "NoLatticeError": "napari_atomdefect.core.errors",
    "BadImageError": "napari_atomdefect.core.errors",
    "ImageReadError": "napari_atomdefect.core.errors",
    "batch": "napari_atomdefect.core.detect.batch",
    "iter_batch": "napari_atomdefect.core.detect.batch",
    "assess_fit": "napari_atomdefect.core.detect.image_fit",
    "iter_detect_frames": "napari_atomdefect.core.detect.movie",
    "link_tracks": "napari_atomdefect.core.detect.movie",
    "with_run_columns": "napari_atomdefect.core.io.table",
    "read_defects_csv": "napari_atomdefect.core.io.table",
}

__all__ = sorted(_API) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .core.cells.tiles import TileSpec, iter_cell_tiles, tile_cells  # noqa: F401
    from .core.detect.batch import batch, iter_batch  # noqa: F401
    from .core.detect.detect import detect, iter_detect  # noqa: F401
    from .core.detect.image_fit import assess_fit  # noqa: F401
    from .core.detect.movie import iter_detect_frames, link_tracks  # noqa: F401
    from .core.errors import (  # noqa: F401
        AtomDefectError,
        BadImageError,
        ImageReadError,
        NoLatticeError,
    )
    from .core.io.image import StemImage, read_image  # noqa: F401
    from .core.io.table import read_defects_csv, with_run_columns  # noqa: F401
    from .core.lattice.lattice import Lattice, find_lattice  # noqa: F401
    from .core.materials.materials import MATERIALS, get_material  # noqa: F401
    from .core.simulate.image import MicroscopeParams, simulate_image  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'napari_atomdefect' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API too (imported lazily, so not in the module's namespace until used):
    tab completion and ``dir()`` show it."""
    return sorted(set(globals()) | set(__all__))
