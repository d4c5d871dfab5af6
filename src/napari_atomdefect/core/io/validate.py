"""Checks on image content and pixel sizes before analysis, with messages a microscopist can act on.

Every pixel size given to the API, the command line or read from a file goes through
:func:`check_pixel_size`; every image analysed goes through :func:`as_analysis_image`, which also
clips isolated outliers (hot pixels, ±3e38 sentinels) so that one bad pixel cannot hide the lattice
or overflow the Fourier analysis.
"""

from __future__ import annotations

import numbers
import weakref

import numpy as np

from ..errors import AtomDefectError, BadImageError

#: Smallest side length (pixels) for which lattice detection is attempted.
MIN_SIDE_PX = 32
#: Largest share of NaN or infinite pixels an image may hold and still be analysed (they are
#: replaced by the median).
MAX_NONFINITE_SHARE = 0.05
#: Plausible pixel sizes (nm): the lattice constant of every preset (0.315–0.329 nm) then spans
#: between about 2 and about 1000 pixels, the range in which the lattice can be analysed.
PIXEL_SIZE_RANGE_NM = (3e-4, 0.15)
#: Robust intensity range: these percentiles, widened by ``OUTLIER_MARGIN`` times their distance.
#: Pixels beyond it are outliers (hot or dead pixels) and are clipped to it.
ROBUST_PERCENTILES = (0.1, 99.9)
OUTLIER_MARGIN = 0.5


def check_pixel_size(value: object, name: str = "pixel size", plausible: bool = True) -> float:
    """Return ``value`` as a float number of nm per pixel, or raise one clear sentence.

    Parameters
    ----------
    value : real number
        The pixel size in nm.
    name : str
        How the value is called in messages (e.g. ``"--pixel-size-nm"``).
    plausible : bool
        Also require ``value`` to lie in :data:`PIXEL_SIZE_RANGE_NM`.

    Returns
    -------
    float

    Raises
    ------
    AtomDefectError
        If ``value`` is not a real number, not finite and positive, or (with ``plausible``) outside
        the range in which a 2D-material lattice can be resolved.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise AtomDefectError(
            f"The {name} must be a number of nm per pixel, not {type(value).__name__} {value!r}.")
    px = float(value)
    if not (np.isfinite(px) and px > 0):
        raise AtomDefectError(f"The {name} must be a positive number of nm per pixel, not {value}.")
    lo, hi = PIXEL_SIZE_RANGE_NM
    if plausible and not lo <= px <= hi:
        raise AtomDefectError(
            f"The {name} of {px:g} nm/px is implausible for an atomic-resolution image: it must lie "
            f"between {lo:g} and {hi:g} nm/px (a lattice constant then spans 2 to 1000 pixels).")
    return px


def check_region(region: object, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``region`` as a boolean mask of an image of ``shape``, or raise one clear sentence.

    ``region`` marks the pixels to analyse (e.g. one grain of a polycrystalline layer): an
    array of booleans (or of 0 and 1) of the image's shape, or ``(row0, row1, col0, col1)``
    pixel bounds of a rectangle (end excluded).
    """
    shape = tuple(int(n) for n in shape[:2])
    if isinstance(region, (tuple, list)) and len(region) == 4 and all(
            isinstance(v, numbers.Real) for v in region):
        r0, r1, c0, c1 = (int(round(float(v))) for v in region)
        h, w = shape
        if r1 <= r0 or c1 <= c0:
            raise AtomDefectError(f"The region (rows {r0}:{r1}, columns {c0}:{c1}) is empty: it "
                                  "is (row0, row1, col0, col1) with row0 < row1 and col0 < col1.")
        if r0 >= h or c0 >= w or r1 <= 0 or c1 <= 0:
            raise AtomDefectError(f"The region (rows {r0}:{r1}, columns {c0}:{c1}) lies outside "
                                  f"the image ({h} x {w} px: rows 0:{h}, columns 0:{w}).")
        mask = np.zeros(shape, bool)
        mask[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
    else:
        mask = np.asarray(region)
        if mask.ndim < 2:  # a rectangle with a number missing, say
            raise AtomDefectError(f"The region must be (row0, row1, col0, col1) or a mask of the "
                                  f"image's shape {shape}, not {region!r}.")
        if mask.shape != shape:
            raise AtomDefectError(f"The region's shape {mask.shape} is not the image's {shape}.")
        if mask.dtype != bool:
            if not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
                raise AtomDefectError("The region must be a mask of True/False (or 0/1) pixels.")
            mask = mask.astype(bool)
    if mask.sum() < MIN_SIDE_PX * MIN_SIDE_PX:
        raise AtomDefectError(f"The region holds {int(mask.sum())} pixels inside the image; at "
                              f"least {MIN_SIDE_PX} x {MIN_SIDE_PX} are needed.")
    return mask


#: Share of the pixels :func:`tail_percentiles` reads its first estimate of a tail from.
_TAIL_SAMPLE_STEP = 61


def tail_percentiles(values: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """``np.percentile(values, percentiles)`` (linear interpolation) for a low and a high
    percentile near the ends of many finite values, without partitioning them all.

    A strided sample bounds each tail; the values beyond the bound hold the order statistics
    sought whenever there are enough of them (counted), and only those are partitioned (else,
    e.g. many equal values, all are). The result is the same order statistics interpolated as
    numpy does, equal to ``np.percentile`` (to the bit where measured): 1.3 ms instead of 13 on a
    1024² image.

    Parameters
    ----------
    values : ndarray
        Finite values (any shape; read flat).
    percentiles : tuple of float
        A low and a high percentile (0–100).

    Returns
    -------
    ndarray
        ``(2,)`` float64.
    """
    flat = np.asarray(values).ravel()
    n = flat.size
    out = np.empty(2)
    sample = np.sort(flat[::_TAIL_SAMPLE_STEP])
    for i, q in enumerate(percentiles):
        pos = (n - 1) * (float(q) / 100.0)
        k = int(np.floor(pos))
        g = pos - k
        upper = q > 50.0
        # (k, k + 1) counted from the tail the percentile lies in; a bound with twice their
        # rank in the sample, and a few values more, keeps them beyond it as a rule
        rank = (n - 1 - k - 1) if upper else k + 1
        s_rank = min(len(sample) - 1, 2 * (rank + 1) // _TAIL_SAMPLE_STEP + 8)
        bound = sample[len(sample) - 1 - s_rank] if upper else sample[s_rank]
        tail = flat[flat >= bound] if upper else flat[flat <= bound]
        if len(tail) >= rank + 2:
            j = len(tail) - 1 - (n - 1 - k) if upper else k  # k's rank within the tail
            picked = np.partition(tail, (j, min(j + 1, len(tail) - 1)))
            a, b = float(picked[j]), float(picked[min(j + 1, len(tail) - 1)])
        else:
            picked = np.partition(flat, (k, min(k + 1, n - 1)))
            a, b = float(picked[k]), float(picked[min(k + 1, n - 1)])
        out[i] = a + (b - a) * g if g < 0.5 else b - (b - a) * (1.0 - g)
    return out


def _clip_outliers(arr: np.ndarray) -> np.ndarray:
    """Clip pixels far outside the robust intensity range (float64 in, float64 out)."""
    scale = float(np.max(np.abs(arr)))
    if scale > 1e30:  # keep every difference finite
        arr = arr / scale
    lo, hi = tail_percentiles(arr, ROBUST_PERCENTILES)
    margin = OUTLIER_MARGIN * (hi - lo)
    return np.clip(arr, lo - margin, hi + margin)


#: Arrays this module returned, by id: passing one back costs nothing (detection prepares the
#: image once and hands it to the lattice search, which would otherwise prepare it again).
_PREPARED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def is_prepared(image: object) -> bool:
    """Whether ``image`` is an array :func:`as_analysis_image` returned (read-only, owned by this
    package: its pixels cannot change, so results computed from it may be kept by identity)."""
    return _PREPARED.get(id(image)) is image


#: Images whose largest magnitude is below this are rescaled to 0–1 before the analysis.
SMALLEST_SCALE = 1e-3


def as_analysis_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return a float32 2-D copy of ``image`` fit for lattice analysis.

    NaN or infinite pixels (up to 5 %) are replaced by the median; outliers beyond the robust
    intensity range (see :data:`ROBUST_PERCENTILES`) are clipped to it.

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
    if is_prepared(image):
        return image
    arr = np.asarray(image)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise BadImageError(f"The {name} is not numeric (dtype {arr.dtype}).")
    if np.iscomplexobj(arr):
        raise BadImageError(f"The {name} is complex-valued; give its modulus or intensity.")
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise BadImageError(
            f"The {name} has colour channels (shape {arr.shape}); convert it to greyscale first "
            "(read_image and the Detect dock do: one channel where all are equal, else the "
            "luminance).")
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
    arr = arr.astype(np.float64, copy=True)
    finite = np.isfinite(arr)
    if not finite.all():
        n_bad = int((~finite).sum())
        frac = n_bad / arr.size
        if frac > MAX_NONFINITE_SHARE:
            raise BadImageError(
                f"{frac:.0%} of the {name}'s pixels are NaN or infinite; it cannot be analysed "
                f"(at most {MAX_NONFINITE_SHARE:.0%}: crop them away, or select a region).")
        arr[~finite] = np.median(arr[finite])
    arr = _clip_outliers(arr)
    top = float(np.max(np.abs(arr)))
    span = float(arr.max() - arr.min())
    if span <= 1e-12 * max(top, 1e-300):
        raise BadImageError(f"The {name} is constant: there is nothing to analyse.")
    if top > 1e30 or top < SMALLEST_SCALE:
        # Outside what float32 arithmetic (and the analysis' small guards against division by
        # zero) handle safely: an image ×1e-15 lost every defect. HAADF intensities are
        # relative; counts (≥ 1) are never this small.
        arr = (arr - arr.min()) / span
    elif top > 1e5 * span:  # an offset float32 cannot resolve the image on (a dark level)
        arr = arr - arr.min()
    out = arr.astype(np.float32)
    out.flags.writeable = False  # prepared once: nobody may change it behind the cache's back
    _PREPARED[id(out)] = out
    return out
