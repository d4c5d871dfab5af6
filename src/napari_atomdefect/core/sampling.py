"""Bilinear sampling: the one interpolator of images (and stacks of tiles) at float coordinates."""

from __future__ import annotations

import numpy as np


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    layer: np.ndarray | None = None,
                    dtype: type[np.floating] = np.float32, threaded: bool = False) -> np.ndarray:
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
    threaded : bool, optional
        For float32 points of one 2-D image (e.g. a field's unit-cell tiles): interpolate with
        torch's ``grid_sample`` on torch's threads, four to five times faster on two cores for a
        million points. Its coordinates pass through the ``[-1, 1]`` range in float32, so values
        differ from the numpy sampler's by up to ~1e-4 of the image's range (``1e-7`` relative
        coordinate rounding times the local slope); each point's value does not depend on the
        others, so tiles sampled in batches of any size are the same. Imports torch: for callers
        that run a network anyway.

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
    if threaded and layer is None and dtype == np.float32:
        return _grid_sample(img, np.asarray(rows, np.float32), np.asarray(cols, np.float32))
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


def _grid_sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """:func:`sample_bilinear` of float32 points by torch's ``grid_sample`` (its border padding
    clamps them to the image, as the numpy sampler does)."""
    import torch
    import torch.nn.functional as F

    h, w = image.shape
    src = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    # align_corners=True: -1 and +1 are the centres of the first and the last pixel
    grid = torch.stack([torch.from_numpy(cols.reshape(1, -1, 1)) * (2 / (w - 1)) - 1,
                        torch.from_numpy(rows.reshape(1, -1, 1)) * (2 / (h - 1)) - 1], dim=-1)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(rows.shape).numpy()
