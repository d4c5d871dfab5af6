"""Quick-look PNG overlays of sites and defects (no plotting library needed)."""

from __future__ import annotations

import numpy as np

from ..materials.columns import ALL_CLASS_NAMES
from .class_style import SYMBOL_WORDS, class_rgb, class_symbol

#: RGB colours (0–1) of marker sets used across the package: the sites, then every defect class
#: of every material in its :func:`~.class_style.class_rgb` colour (the colour of its layer).
COLOURS = {
    "metal": (1.0, 0.25, 0.25),
    "chalcogen": (0.2, 0.9, 1.0),
    **{c: class_rgb(c) for c in ALL_CLASS_NAMES},
}


def to_display(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Scale an image to [0, 1] between two percentiles."""
    img = np.asarray(image, float)
    finite = np.isfinite(img)
    lo, hi = np.percentile(img[finite], [low, high]) if finite.any() else (0.0, 1.0)
    return np.clip((np.nan_to_num(img, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)


def overlay(image: np.ndarray, markers: dict[str, np.ndarray], radius: float = 3.0,
            zoom: int = 1) -> np.ndarray:
    """RGB uint8 picture of ``image`` with a hollow marker at the ``(row, col)`` points of each set.

    Parameters
    ----------
    image : ndarray
        2-D image.
    markers : dict
        Name (a site, a defect class, or anything else, drawn in yellow) to ``(N, 2)`` points. A
        defect class is drawn in its layer's colour and symbol (:func:`marker_shape`), anything
        else as a circle.
    radius : float
        Marker radius in output pixels.
    zoom : int
        Integer upscaling of the image before drawing (sharper markers on small images).
    """
    from skimage.draw import circle_perimeter, polygon_perimeter

    grey = to_display(image)
    if zoom > 1:
        grey = np.kron(grey, np.ones((zoom, zoom)))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for name, pts in markers.items():
        colour = COLOURS.get(name, (1.0, 1.0, 0.0))
        shape = marker_shape(name)
        for r, c in np.asarray(pts, float).reshape(-1, 2):
            r0, c0 = (r + 0.5) * zoom - 0.5, (c + 0.5) * zoom - 0.5
            if shape is None:
                rr, cc = circle_perimeter(int(round(r0)), int(round(c0)), int(round(radius)),
                                          shape=grey.shape)
            else:
                rr, cc = polygon_perimeter(np.round(r0 + radius * shape[:, 0]),
                                           np.round(c0 + radius * shape[:, 1]), shape=grey.shape,
                                           clip=False)
                keep = (rr >= 0) & (rr < grey.shape[0]) & (cc >= 0) & (cc < grey.shape[1])
                rr, cc = rr[keep], cc[keep]
            rgb[rr, cc] = colour
    return (rgb * 255).astype(np.uint8)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = np.pi / points * np.arange(2 * points) - np.pi / 2
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.sin(angles), radii * np.cos(angles)], axis=1)


#: Outline (row, column offsets in marker radii) of each napari symbol the defect classes use;
#: ``disc`` is drawn as a circle.
MARKER_OUTLINES = {
    "square": np.array([[-0.8, -0.8], [-0.8, 0.8], [0.8, 0.8], [0.8, -0.8]]),
    "diamond": np.array([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]),
    "triangle_up": np.array([[-1.0, 0.0], [0.6, 0.9], [0.6, -0.9]]),
    "triangle_down": np.array([[1.0, 0.0], [-0.6, 0.9], [-0.6, -0.9]]),
    "star": _star(),
    "cross": np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 1.0], [1.0, -1.0],
                       [0.0, 0.0]]),
}


def marker_shape(name: str) -> np.ndarray | None:
    """Outline of the marker of the defect class ``name`` (:data:`MARKER_OUTLINES`), ``None`` for
    a circle (a single vacancy, a site, anything that is not a defect class)."""
    if name not in ALL_CLASS_NAMES:
        return None
    return MARKER_OUTLINES.get(class_symbol(name))


def legend_text(names: list[str] | tuple[str, ...]) -> str:
    """"V_S circles, V_S2 squares, …": how :func:`overlay` draws each defect class, for a
    caption printed beside the picture."""
    return ", ".join(f"{n} {SYMBOL_WORDS.get(class_symbol(n), 'circles')}" for n in names)
