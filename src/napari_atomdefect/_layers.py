"""Layer data for napari: detections, lattice sites and the unit-cell grid (no Qt here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core.materials import DEFECT_CLASSES

#: Face colours and symbols of the defect classes (the legend of the widgets uses them too).
CLASS_COLORS = {"V_S": "#ff9900", "V_S2": "#ff2020", "O_S": "#00e5ff", "V_Mo": "#33ff33"}
CLASS_SYMBOLS = {"V_S": "disc", "V_S2": "square", "O_S": "diamond", "V_Mo": "triangle_up"}
SOURCES = ("model", "manual")


def defect_features(table: pd.DataFrame) -> pd.DataFrame:
    """Points-layer features of a defect table: categorical class and source, confidence."""
    return pd.DataFrame({
        "class": pd.Categorical(table["class"].astype(str), categories=list(DEFECT_CLASSES)),
        "confidence": table["confidence"].astype(float).to_numpy(),
        "source": pd.Categorical(table["source"].astype(str),
                                 categories=sorted(set(SOURCES) | set(table["source"].astype(str)))),
    })


def defect_layer_kwargs(table: pd.DataFrame, pixel_size_nm: float | None, name: str,
                        a_px: float | None = None) -> dict:
    """Keyword arguments of a Points layer showing ``table`` (pixel data, scale in nm)."""
    px = pixel_size_nm or 1.0
    size = 0.4 * a_px if a_px else 10.0  # data pixels: smaller than the column spacing
    return {
        "name": name,
        "scale": (px, px),
        "units": ("nm", "nm") if pixel_size_nm else ("pixel", "pixel"),
        "features": defect_features(table),
        "feature_defaults": {"class": "V_S", "confidence": 1.0, "source": "manual"},
        "face_color": "class",
        "face_color_cycle": dict(CLASS_COLORS),
        "symbol": [CLASS_SYMBOLS.get(c, "disc") for c in table["class"].astype(str)],
        "border_color": "white",
        "border_width": 0.05,
        "size": size,
        "opacity": 0.6,  # the column under the marker stays visible
        "metadata": {"atomdefect": {"kind": "detections", "pixel_size_nm": pixel_size_nm,
                                    "a_px": a_px}},
    }


def site_layer_kwargs(lattice, name: str) -> tuple[np.ndarray, dict]:
    """Points data and kwargs of the (light) lattice-sites layer."""
    px = lattice.pixel_size_nm
    data = np.concatenate([lattice.metal_sites_px, lattice.chalcogen_sites_px])
    sub = ["metal"] * len(lattice.metal_sites_px) + ["chalcogen"] * len(lattice.chalcogen_sites_px)
    return data, {
        "name": name, "scale": (px, px), "units": ("nm", "nm"),
        "features": pd.DataFrame({"sublattice": pd.Categorical(sub, ["metal", "chalcogen"])}),
        "face_color": "transparent", "border_color": "sublattice",
        "border_color_cycle": {"metal": "#ff6060", "chalcogen": "#40e0ff"},
        "border_width": 0.15, "size": 0.3 * lattice.a_px, "opacity": 0.6, "symbol": "ring",
        "metadata": {"atomdefect": {"kind": "lattice_sites"}},
    }


def grid_layer_data(lattice) -> tuple[list[np.ndarray], dict]:
    """Unit-cell parallelograms (one per metal site) for a Shapes layer."""
    px = lattice.pixel_size_nm
    a1, a2 = lattice.a1_px, lattice.a2_px
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    # Local vectors would follow distortion exactly; the global ones keep the grid readable.
    shapes = [p + corners[:, :1] * a1 + corners[:, 1:] * a2 for p in lattice.metal_sites_px]
    return shapes, {"name": "unit cells", "scale": (px, px), "units": ("nm", "nm"),
                    "shape_type": "polygon", "edge_color": "#ffd700", "edge_width": 0.5,
                    "face_color": "transparent", "opacity": 0.4, "visible": False,
                    "metadata": {"atomdefect": {"kind": "cell_grid"}}}
