"""Quick-look PNG overlays of sites and defects (no plotting library needed)."""

from __future__ import annotations

import numpy as np

from ..materials.columns import ALL_CLASS_NAMES
from .class_style import class_rgb

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
    """RGB uint8 picture of ``image`` with circles at the ``(row, col)`` points of each set.

    Parameters
    ----------
    image : ndarray
        2-D image.
    markers : dict
        Name (a site, a defect class, or anything else, drawn in yellow) to ``(N, 2)`` points.
    radius : float
        Circle radius in output pixels.
    zoom : int
        Integer upscaling of the image before drawing (sharper markers on small images).
    """
    from skimage.draw import circle_perimeter

    grey = to_display(image)
    if zoom > 1:
        grey = np.kron(grey, np.ones((zoom, zoom)))
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for name, pts in markers.items():
        colour = COLOURS.get(name, (1.0, 1.0, 0.0))
        for r, c in np.asarray(pts, float).reshape(-1, 2):
            rr, cc = circle_perimeter(int(round((r + 0.5) * zoom - 0.5)),
                                      int(round((c + 0.5) * zoom - 0.5)),
                                      int(round(radius)), shape=grey.shape)
            rgb[rr, cc] = colour
    return (rgb * 255).astype(np.uint8)
