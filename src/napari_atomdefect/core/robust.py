"""Robust spread: the one estimate of a standard deviation that outliers do not move."""

from __future__ import annotations

import numpy as np

#: The median absolute deviation of a normal distribution times this is its standard deviation.
MAD_TO_SD = 1.4826


def robust_sd(values: np.ndarray, centre: float | None = None) -> float:
    """Standard deviation of ``values`` from their median absolute deviation.

    Parameters
    ----------
    values : ndarray
        Any shape (flattened); finite values expected.
    centre : float, optional
        The value deviations are taken from (default: the median of ``values``; ``0.0`` for
        values that are already distances).

    Returns
    -------
    float
        ``1.4826 * median(|values - centre|)``; 0.0 when there are no values.
    """
    v = np.asarray(values)
    if not v.size:
        return 0.0
    c = np.median(v) if centre is None else centre
    return MAD_TO_SD * float(np.median(np.abs(v - c)))


__all__ = ["MAD_TO_SD", "robust_sd"]
