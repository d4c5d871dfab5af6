"""Checks on image content before analysis, with messages a microscopist can act on."""

from __future__ import annotations

import numpy as np

from .errors import BadImageError

#: Smallest side length (pixels) for which lattice detection is attempted.
MIN_SIDE_PX = 32


def as_analysis_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return a float32 2-D copy of ``image`` fit for lattice analysis.

    Parameters
    ----------
    image : array-like
        A single greyscale frame.
    name : str
        How the image is called in messages.

    Raises
    ------
    BadImageError
        For stacks, RGB data, non-finite values, constant images or images too small to analyse.
    """
    arr = np.asarray(image)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise BadImageError(f"The {name} is not numeric (dtype {arr.dtype}).")
    if np.iscomplexobj(arr):
        raise BadImageError(f"The {name} is complex-valued; give its modulus or intensity.")
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise BadImageError(
            f"The {name} has colour channels (shape {arr.shape}); convert it to greyscale first "
            "(the reader does this automatically).")
    if arr.ndim == 3:
        raise BadImageError(
            f"The {name} is a stack of {arr.shape[0]} frames; analyse one frame at a time "
            "(select a frame with the slider, or pass image[i]).")
    if arr.ndim != 2:
        raise BadImageError(f"The {name} must be 2-D; it has shape {arr.shape}.")
    if min(arr.shape) < MIN_SIDE_PX:
        raise BadImageError(
            f"The {name} is too small ({arr.shape[0]}×{arr.shape[1]} px) to hold a few unit cells; "
            f"at least {MIN_SIDE_PX} px per side is needed.")
    arr = arr.astype(np.float32, copy=True)
    finite = np.isfinite(arr)
    if not finite.all():
        n_bad = int((~finite).sum())
        frac = n_bad / arr.size
        if frac > 0.05:
            raise BadImageError(
                f"{frac:.0%} of the {name}'s pixels are NaN or infinite; it cannot be analysed.")
        arr[~finite] = np.median(arr[finite]) if finite.any() else 0.0
    if float(arr.max() - arr.min()) <= 1e-12 * max(1.0, float(abs(arr).max())):
        raise BadImageError(f"The {name} is constant: there is nothing to analyse.")
    return arr
