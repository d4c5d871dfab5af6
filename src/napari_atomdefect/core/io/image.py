"""Read STEM images with their pixel size: DigitalMicrograph, EMD, TIA, MRC, HyperSpy, Nion Swift,
TIFF, NumPy, PNG/JPEG.

Every reader returns a :class:`StemImage` whose ``pixel_size_nm`` comes from the file when the file
says it (``calibration == "file"``) or is ``None`` (the lattice will calibrate it). Colour images are
converted to grey and stacks are kept as stacks, each with a message; anything unreadable raises
:class:`~.errors.ImageReadError` with a plain explanation.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AtomDefectError, ImageReadError, OutputError
from .nion import NION_EXTENSIONS, read_nion
from .units import unit_to_nm
from .validate import MAX_NONFINITE_SHARE, check_pixel_size

#: File extensions handled here, by reader.
RSCIIO_EXTENSIONS = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".emd": "emd",
                     ".ser": "tia", ".mrc": "mrc", ".hspy": "hspy"}
TIFF_EXTENSIONS = (".tif", ".tiff")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SUPPORTED_EXTENSIONS = (tuple(RSCIIO_EXTENSIONS) + NION_EXTENSIONS + TIFF_EXTENSIONS + (".npy",)
                        + IMAGE_EXTENSIONS)



class ReaderWarning(UserWarning):
    """Something about the file was changed or guessed while reading (e.g. RGB to grey)."""


@contextlib.contextmanager
def _tifffile_log() -> Iterator[list[str]]:
    """Collect what tifffile logs while a file is read (it prints to stderr otherwise, before
    and apart from this reader's own sentence)."""
    import logging

    logger = logging.getLogger("tifffile")
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage().split("> ", 1)[-1])

    handler, propagate = _Collect(level=logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


#: Words of the reader's note on a stack of frames (batch analyses every frame and drops it).
STACK_NOTE = "stack of"


@dataclass
class StemImage:
    """An image read from disk.

    Attributes
    ----------
    data : ndarray
        ``(rows, cols)`` or, for a stack, ``(frames, rows, cols)``; float32.
    pixel_size_nm : float or None
        Pixel size from the file, ``None`` if the file has none.
    calibration : str
        ``"file"`` if the pixel size came from the file, else ``"none"``.
    name : str
        Display name (file stem).
    metadata : dict
        The file's original metadata (JSON-friendly where possible).
    messages : list of str
        What the reader changed or could not find, for the user.
    """

    data: np.ndarray
    pixel_size_nm: float | None
    calibration: str
    name: str
    metadata: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    path: str | None = None

    @property
    def is_stack(self) -> bool:
        """True for a stack of frames."""
        return self.data.ndim == 3


def _jsonable(obj: Any, depth: int = 0) -> Any:
    """Best-effort conversion of nested metadata to JSON-friendly types (bounded size)."""
    if depth > 12:
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in obj[:1000]]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 1000 else f"<array {obj.shape} {obj.dtype}>"
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _is_rgb(data: np.ndarray) -> bool:
    """Whether ``data``'s last axis holds colour channels (RGB or RGBA)."""
    return data.ndim >= 3 and data.shape[-1] in (3, 4) and data.shape[-2] > 4


def _equal_channels(rgb: np.ndarray) -> bool:
    """Whether the red, green and blue channels of ``rgb`` (float) hold the same image."""
    return bool(np.allclose(rgb[..., 0], rgb[..., 1]) and np.allclose(rgb[..., 0], rgb[..., 2]))


def to_grey(data: np.ndarray, name: str) -> tuple[np.ndarray, str | None]:
    """An RGB(A) image as grey (its one channel where all are equal, else the luminance) and the
    sentence that says so; any other array as it is, and ``None``.

    Parameters
    ----------
    data : ndarray
        The image (colour channels last).
    name : str
        How the image is called in the sentence.
    """
    if not _is_rgb(data):
        return data, None
    rgb = data[..., :3].astype(np.float32)
    same = _equal_channels(rgb)
    grey = rgb[..., 0] if same else rgb @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    return grey, (f"{name}: colour (RGB) image converted to greyscale"
                  + (" (all channels were equal)." if same else " by luminance; intensities are "
                     "no longer detector counts."))


def _to_grey(data: np.ndarray, messages: list, name: str) -> np.ndarray:
    """Convert an RGB(A) image to grey (:func:`to_grey`), with a message and a warning."""
    grey, msg = to_grey(data, name)
    if msg:
        messages.append(msg)
        warnings.warn(msg, ReaderWarning, stacklevel=3)
    return grey


#: 32-bit floats keep about 7 significant digits: data whose offset is this many times its
#: range are shifted first.
FLOAT32_OFFSET_LIMIT = 1e5
#: Largest magnitude kept as it is in 32-bit floats (their largest is 3.4e38).
FLOAT32_TOP = 1e30


def _as_float32(data: np.ndarray, name: str, messages: list[str]) -> np.ndarray:
    """``data`` as 32-bit floats; values that 32-bit floats cannot hold (magnitudes past
    :data:`FLOAT32_TOP`) or not tell apart (a large offset: a detector's dark level of 1e9
    under counts of 100) are shifted, and scaled if need be, in double precision first, and
    said — HAADF intensities are relative."""
    if data.dtype == np.float32 or (data.dtype.itemsize <= 2 and data.dtype.kind in "fiub"):
        return data.astype(np.float32, copy=False)  # (exact: nothing to shift)
    finite = np.isfinite(data)
    if not finite.any():
        return data.astype(np.float32)
    lo, hi = float(data[finite].min()), float(data[finite].max())
    top, span = max(abs(lo), abs(hi)), hi - lo
    if top <= FLOAT32_TOP and not (span > 0 and top > FLOAT32_OFFSET_LIMIT * span):
        return data.astype(np.float32)
    shifted = data.astype(np.float64) - lo
    how = "shifted by its minimum"
    if span > FLOAT32_TOP:
        shifted /= span
        how = "shifted and scaled to 0–1"
    msg = (f"{name}: its values ({lo:.4g} to {hi:.4g}) do not fit 32-bit floats; {how} "
           "(HAADF intensities are relative).")
    messages.append(msg)
    warnings.warn(msg, ReaderWarning, stacklevel=4)
    return shifted.astype(np.float32)


def _finish(data: np.ndarray, pixel_size_nm: float | None, name: str, metadata: dict,
            messages: list[str], path: str) -> StemImage:
    """Common checks: dimensionality, RGB, stacks, NaN; returns the StemImage."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ImageReadError(f"{name}: the data are not real numbers (dtype {data.dtype}).")
    data = _to_grey(np.squeeze(data), messages, name)
    if data.ndim < 2:
        raise ImageReadError(f"{name}: the file holds a {data.ndim}-D signal, not an image.")
    if data.ndim > 3:
        raise ImageReadError(
            f"{name}: the file holds a {data.ndim}-D dataset (shape {data.shape}); only single "
            "images and stacks of images are supported. A 4D-STEM dataset must be reduced to an "
            "image first.")
    if data.ndim == 3:
        messages.append(f"{name}: a {STACK_NOTE} {data.shape[0]} frames; detect one frame or "
                        "all frames (the Detect dock's Frames choice; on the command line "
                        "--frame N or --all-frames).")
    data = _as_float32(data, name, messages)
    n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if n_bad == np.size(data):
        raise ImageReadError(f"{name}: every pixel is NaN or infinite; the file holds no image.")
    if n_bad:
        share = n_bad / np.size(data)
        what = "1 pixel (" if n_bad == 1 else f"{n_bad} pixels ("
        pct = f"{share:.1%}" if share >= 0.001 else "<0.1%"
        messages.append(f"{name}: {what}{pct}) {'is' if n_bad == 1 else 'are'} NaN or infinite"
                        + (f"; above {MAX_NONFINITE_SHARE:.0%} detection refuses the image: crop "
                           "them away, or draw a region." if share > MAX_NONFINITE_SHARE
                           else "; they are read as the image's median."))
    if pixel_size_nm is None:
        messages.append(no_pixel_size_message(name))
    else:
        try:
            pixel_size_nm = check_pixel_size(pixel_size_nm, "file's pixel size")
        except AtomDefectError as exc:
            messages.append(f"{name}: {exc} It will be calibrated from the lattice.")
            pixel_size_nm = None
    return StemImage(data=data, pixel_size_nm=None if pixel_size_nm is None else float(pixel_size_nm),
                     calibration="file" if pixel_size_nm is not None else "none", name=name,
                     metadata=metadata, messages=messages, path=path)


def _pick_rsciio_signal(signals: list[dict]) -> dict:
    """Choose the image to show from a multi-signal file (HAADF first, then any 2-D image)."""
    images = [s for s in signals if sum(not ax.get("navigate", False) for ax in s["axes"]) == 2]
    if not images:
        raise ImageReadError("The file holds no 2-D image (only spectra or other signals).")

    def title(s: dict) -> str:
        md = s.get("metadata", {}) or {}
        return str(md.get("General", {}).get("title", "")).upper()

    for key in ("HAADF", "ADF", "DF"):
        for s in images:
            if key in title(s):
                return s
    return images[0]


def _read_rsciio(path: Path, plugin: str) -> tuple[np.ndarray, float | None, dict]:
    import importlib

    module = importlib.import_module(f"rsciio.{plugin}")
    signals = module.file_reader(str(path))
    if isinstance(signals, dict):
        signals = [signals]
    sig = _pick_rsciio_signal(signals)
    axes = sig["axes"]
    signal_axes = [ax for ax in axes if not ax.get("navigate", False)]
    scales = []
    for ax in signal_axes[-2:]:
        factor = unit_to_nm(ax.get("units"))
        scale = ax.get("scale")
        scales.append(None if factor is None or scale is None else float(scale) * factor)
    px = None
    if all(s is not None for s in scales):
        px = scales[1]
        if abs(scales[0] - scales[1]) > 0.01 * max(scales):
            px = float(np.sqrt(scales[0] * scales[1]))
    meta = {"metadata": _jsonable(sig.get("metadata", {})),
            "original_metadata": _jsonable(sig.get("original_metadata", {}))}
    return np.asarray(sig["data"]), px, meta


def _tiff_pixel_size(tif: Any) -> tuple[float | None, dict]:
    """Pixel size from OME-XML or ImageJ tags (resolution tag + unit)."""
    meta: dict = {}
    page = tif.pages[0]
    if tif.is_ome and tif.ome_metadata:
        meta["ome"] = tif.ome_metadata[:20000]
        try:
            import xml.etree.ElementTree as ET

            root = ET.fromstring(tif.ome_metadata)
            for el in root.iter():
                if el.tag.endswith("Pixels") and "PhysicalSizeX" in el.attrib:
                    size = float(el.attrib["PhysicalSizeX"])
                    factor = unit_to_nm(el.attrib.get("PhysicalSizeXUnit", "µm"))
                    if factor is not None:
                        return size * factor, meta
        except (ET.ParseError, ValueError):
            pass
    ij = tif.imagej_metadata or {}
    meta["imagej"] = _jsonable(ij)
    unit = ij.get("unit")
    if isinstance(unit, str) and "\\u" in unit:  # ImageJ writes micro as "\u00B5m"
        unit = unit.encode("ascii", "backslashreplace").decode("unicode_escape")
    factor = unit_to_nm(unit)
    tag = page.tags.get("XResolution")
    if factor is not None and tag is not None:
        num, den = tag.value
        if num > 0 and den > 0:
            return factor * den / num, meta
    if ij.get("spacing") and factor is not None:
        meta["note"] = "ImageJ spacing is the z step; no lateral calibration"
    return None, meta


def no_pixel_size_message(name: str) -> str:
    """What the reader says of a file without a pixel size (a caller that was given one by the
    user leaves it out)."""
    return f"{name}: no pixel size in the file; it will be calibrated from the lattice."


def _reader_words(exc: BaseException) -> str:
    """The parser's own words on a file it could not read, which may say what is wrong (not its
    exception's class name); imageio's "no backend" has its advice to install video plugins
    left out (a trial's corrupt .png was told "pip install imageio[pyav]")."""
    detail = " ".join(str(exc).split())
    if "Could not find a backend" in detail:
        return "it found nothing in the file it could decode as an image"
    return detail.replace("``", "'").replace("`", "'") or type(exc).__name__


def is_colour_picture(path: str | Path) -> bool:
    """Whether ``path`` is a readable colour picture (a ``.png``/``.jpg``/``.tif``/``.npy`` whose
    red, green and blue channels differ): a photograph or a false-colour rendering, which napari
    itself opens in colour. A grey image stored as RGB (equal channels), a greyscale image and a
    file that cannot be read say ``False``: this plugin reads those (the last to say why not).
    """
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if ext in IMAGE_EXTENSIONS:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode not in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"):
                    return False  # (greyscale modes: L, LA, I, I;16, F, 1)
                data = np.asarray(im.convert("RGB"))
        elif ext in TIFF_EXTENSIONS:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if getattr(page, "samplesperpixel", 1) not in (3, 4):
                    return False
                data = page.asarray()
        elif ext == ".npy":
            data = np.load(path, mmap_mode="r", allow_pickle=False)
            if not _is_rgb(data) or data.ndim != 3:
                return False
            data = np.asarray(data)
        else:
            return False
    except Exception:  # noqa: BLE001 - unreadable: this plugin's reader says why
        return False
    if not _is_rgb(data) or not np.issubdtype(data.dtype, np.number):
        return False
    rgb = data[..., :3].astype(np.float32)
    # (a JPEG's compression tints a grey picture's channels apart by a grey level or two)
    tint = 0.02 * max(float(rgb.max() - rgb.min()), 1e-12)
    return not (np.abs(rgb[..., 1] - rgb[..., 0]).max() <= tint
                and np.abs(rgb[..., 2] - rgb[..., 0]).max() <= tint)


def read_image(path: str | Path) -> StemImage:
    """Read a STEM image file.

    Parameters
    ----------
    path : str or Path
        ``.dm3``, ``.dm4``, ``.emd``, ``.ser``, ``.mrc``, ``.hspy`` (rosettasciio), ``.ndata``
        and ``.h5`` (Nion Swift, :mod:`.nion`), ``.tif``/``.tiff`` (tifffile; ImageJ and OME
        calibration), ``.npy``, ``.png``/``.jpg``.

    Returns
    -------
    StemImage

    Raises
    ------
    ImageReadError
        If the file is missing, truncated, of another format, or holds no usable image.
    """
    path = Path(path)
    name = path.stem
    ext = path.suffix.lower()
    if not path.exists():
        raise ImageReadError(f"No such file: {path}")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image file.")
    if ext not in SUPPORTED_EXTENSIONS:
        raise ImageReadError(f"{path.name}: unsupported file type '{ext}'. Supported: "
                             f"{', '.join(SUPPORTED_EXTENSIONS)}.")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path.name}: the file is empty.")
    messages: list[str] = []
    try:
        if ext in RSCIIO_EXTENSIONS:
            data, px, meta = _read_rsciio(path, RSCIIO_EXTENSIONS[ext])
        elif ext in NION_EXTENSIONS:
            data, px, meta = read_nion(path)
        elif ext in TIFF_EXTENSIONS:
            import tifffile

            with _tifffile_log() as logged, tifffile.TiffFile(path) as tif:
                data = tif.asarray()
                px, meta = _tiff_pixel_size(tif)
            # (tifffile's own notes on a file it could read; on one it cannot, the error says it)
            messages.extend(f"{path.name}: {m}" for m in logged)
        elif ext == ".npy":
            with open(path, "rb") as fh:
                if fh.read(6) != b"\x93NUMPY":
                    raise ImageReadError(f"{path.name} is not a NumPy .npy file (it does not "
                                         "start with the .npy header).")
            try:
                data = np.load(path, allow_pickle=False)
            except ValueError as exc:
                if "pickle" not in str(exc):
                    raise
                raise ImageReadError(f"{path.name} holds Python objects, not a numeric array; "
                                     "such files are not loaded (they could run code).") from exc
            px, meta = None, {}
        else:
            from skimage.io import imread

            data = imread(path)
            px, meta = None, {}
    except ImageReadError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means an unreadable file
        detail = _reader_words(exc)
        raise ImageReadError(
            f"{path.name} could not be read as a {ext} image: the file may be truncated, corrupt or "
            f"of another format (the reader says: {detail})") from exc
    try:
        json.dumps(meta)
    except (TypeError, ValueError):
        meta = _jsonable(meta)
    return _finish(data, px, name, meta, messages, str(path))


def write_tiff(path: str | Path, image: np.ndarray, pixel_size_nm: float | None) -> None:
    """Write a float32 ImageJ TIFF with the pixel size in nm (atomically).

    Raises
    ------
    OutputError
        If the file cannot be written; an existing file is then left as it was.
    """
    import os

    import tifffile

    from .table import check_writable

    path = check_writable(path)
    tmp = path.with_name(f".{path.name}.part")
    kwargs: dict = {"imagej": True}
    if pixel_size_nm:
        kwargs["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        kwargs["metadata"] = {"unit": "nm"}
    try:
        tifffile.imwrite(tmp, np.asarray(image, np.float32), **kwargs)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}; nothing was "
                          "changed.") from exc
    finally:
        tmp.unlink(missing_ok=True)
