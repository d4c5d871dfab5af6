"""napari-atomdefect: find and classify atomic defects in HAADF-STEM images of 2D materials.

The public API is imported lazily, so that ``import napari_atomdefect`` (done by napari at start-up)
costs nothing: no torch, no scipy until a function is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - not installed
    __version__ = "0.0.0"

_API = {
    "detect": "napari_atomdefect.core.detect",
    "iter_detect": "napari_atomdefect.core.detect",
    "read_image": "napari_atomdefect.core.io",
    "StemImage": "napari_atomdefect.core.io",
    "simulate_image": "napari_atomdefect.core.simulate",
    "MicroscopeParams": "napari_atomdefect.core.simulate",
    "find_lattice": "napari_atomdefect.core.lattice",
    "Lattice": "napari_atomdefect.core.lattice",
    "tile_cells": "napari_atomdefect.core.cells",
    "iter_cell_tiles": "napari_atomdefect.core.cells",
    "TileSpec": "napari_atomdefect.core.cells",
    "MATERIALS": "napari_atomdefect.core.materials",
    "get_material": "napari_atomdefect.core.materials",
    "AtomDefectError": "napari_atomdefect.core.errors",
    "NoLatticeError": "napari_atomdefect.core.errors",
    "BadImageError": "napari_atomdefect.core.errors",
    "ImageReadError": "napari_atomdefect.core.errors",
    "batch": "napari_atomdefect.core.batch",
    "iter_batch": "napari_atomdefect.core.batch",
    "assess_fit": "napari_atomdefect.core.image_fit",
}

__all__ = sorted(_API) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .core.batch import batch, iter_batch  # noqa: F401
    from .core.cells import TileSpec, iter_cell_tiles, tile_cells  # noqa: F401
    from .core.detect import detect, iter_detect  # noqa: F401
    from .core.errors import (  # noqa: F401
        AtomDefectError,
        BadImageError,
        ImageReadError,
        NoLatticeError,
    )
    from .core.image_fit import assess_fit  # noqa: F401
    from .core.io import StemImage, read_image  # noqa: F401
    from .core.lattice import Lattice, find_lattice  # noqa: F401
    from .core.materials import MATERIALS, get_material  # noqa: F401
    from .core.simulate import MicroscopeParams, simulate_image  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'napari_atomdefect' has no attribute {name!r}")
