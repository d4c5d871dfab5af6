"""Bilinear sampling: the one interpolator of images (and stacks of tiles) at float coordinates.

:func:`sample_bilinear` is numpy's; :func:`sample_bilinear_many` computes the same for the
million points of a batch of tiles with torch's grid sampler (vectorised, on torch's threads:
25 → 3 ms for 1024 tiles of 24² pixels).
"""

from __future__ import annotations

import numpy as np


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    layer: np.ndarray | None = None,
                    dtype: type[np.floating] = np.float32) -> np.ndarray:
    """Bilinear interpolation of ``image`` at float coordinates (edges clamped); fast.

    The same values as ``scipy.ndimage.map_coordinates(image, (rows, cols), order=1,
    mode="nearest")``, at a third of its time for many points.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` image, or a stack ``(N, H, W)`` of images of one size (with ``layer``).
    rows, cols : ndarray
        Float pixel coordinates, any (equal) shape; clamped to the image.
    layer : ndarray, optional
        For a stack: the index of the image each point is sampled in (shape of ``rows``).
    dtype : type, optional
        Precision of the arithmetic and the result (``np.float64`` for values that must keep
        it, e.g. unwrapped phases).

    Returns
    -------
    ndarray
        Values of ``dtype``, shape of ``rows``.
    """
    img = np.asarray(image)  # (only the four neighbours of each point are cast to ``dtype``)
    if img.ndim != (2 if layer is None else 3):
        raise ValueError("Give a 2-D image, or a stack of images together with a layer index.")
    h, w = img.shape[-2:]
    if h < 2 or w < 2:
        raise ValueError("The image must be at least 2 x 2 pixels.")
    r = np.clip(np.asarray(rows, dtype), 0, h - 1)
    c = np.clip(np.asarray(cols, dtype), 0, w - 1)
    r0 = np.minimum(r.astype(np.int32), h - 2)  # the last row/column interpolates with weight 1
    c0 = np.minimum(c.astype(np.int32), w - 2)
    fr = r - r0
    fc = c - c0
    i00 = r0 * w + c0
    if layer is not None:
        i00 = i00 + np.asarray(layer, np.int64) * (h * w)
    flat = img.ravel()
    v00, v01 = flat[i00].astype(dtype), flat[i00 + 1].astype(dtype)
    v10, v11 = flat[i00 + w].astype(dtype), flat[i00 + w + 1].astype(dtype)
    top = v00 + (v01 - v00) * fc
    return top + ((v10 + (v11 - v10) * fc) - top) * fr


def sample_bilinear_many(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """:func:`sample_bilinear` of a 2-D ``image`` at many points (float32), by torch's grid sampler.

    The same interpolation (edges clamped); the values agree within the float32 rounding of the
    coordinates (~1e-4 pixel on a 1024² image). Imports torch: for callers that run a network
    on the result anyway (tiles).

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` image (at least 2 x 2).
    rows, cols : ndarray
        Float pixel coordinates, any (equal) shape.

    Returns
    -------
    ndarray
        float32 values, shape of ``rows``.
    """
    import torch
    import torch.nn.functional as F

    img = np.asarray(image, np.float32)
    if img.ndim != 2:
        raise ValueError("Give a 2-D image.")
    h, w = img.shape
    if h < 2 or w < 2:
        raise ValueError("The image must be at least 2 x 2 pixels.")
    shape = np.shape(rows)
    # (x, y) in [-1, 1] with align_corners: -1 and 1 are the centres of the first and last pixel
    grid = np.empty((1, 1, int(np.prod(shape)), 2), np.float32)
    for axis, coords, n in ((0, cols, w), (1, rows, h)):
        scaled = np.array(coords, np.float64).ravel()  # (a copy: scaled in place)
        scaled *= 2.0 / (n - 1)
        scaled -= 1.0
        grid[0, 0, :, axis] = scaled
    with torch.inference_mode():
        out = F.grid_sample(torch.from_numpy(np.ascontiguousarray(img))[None, None],
                            torch.from_numpy(grid), mode="bilinear", padding_mode="border",
                            align_corners=True)
    return out.numpy().reshape(shape)
