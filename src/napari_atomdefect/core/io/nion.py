"""Read Nion Swift data items: ``.ndata`` (a zip of ``data.npy`` and ``metadata.json``) and
``.h5`` (an HDF5 file whose ``data`` dataset carries the same metadata as a JSON attribute
``properties``).

Nion UltraSTEM users save or export their scans from Nion Swift in these two forms. The
metadata's ``dimensional_calibrations`` (``spatial_calibrations`` in files of older Swift
versions) hold one ``{offset, scale, units}`` per array axis, in the array's order (rows first);
the last two are the image's. A sequence (frames × rows × columns) stays a stack.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from .units import unit_to_nm

#: File extensions of Nion Swift data items.
NION_EXTENSIONS = (".ndata", ".h5")


def _pixel_size_nm(metadata: dict[str, Any], ndim: int) -> float | None:
    """The image's pixel size in nm from a data item's calibrations (``None``: not calibrated,
    or in units that are not lengths)."""
    calibrations = (metadata.get("dimensional_calibrations")
                    or metadata.get("spatial_calibrations") or [])
    if not isinstance(calibrations, list) or len(calibrations) < 2 or ndim < 2:
        return None
    sizes = []
    for calibration in calibrations[-2:]:
        if not isinstance(calibration, dict):
            return None
        factor = unit_to_nm(calibration.get("units"))
        scale = calibration.get("scale")
        if factor is None or not isinstance(scale, (int, float)) or scale <= 0:
            return None
        sizes.append(float(scale) * factor)
    row, col = sizes
    return col if abs(row - col) <= 0.01 * max(sizes) else float(np.sqrt(row * col))


def _read_ndata(path: Path) -> tuple[np.ndarray, dict]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data.npy" not in names:
                raise ImageReadError(f"{path.name} is not a Nion Swift .ndata file (it holds no "
                                     "data.npy).")
            data = np.load(io.BytesIO(archive.read("data.npy")), allow_pickle=False)
            metadata = (json.loads(archive.read("metadata.json").decode("utf-8"))
                        if "metadata.json" in names else {})
    except zipfile.BadZipFile as exc:
        raise ImageReadError(f"{path.name} could not be read as a Nion Swift .ndata file: it is "
                             "not a zip archive (truncated, corrupt or of another format).") from exc
    return data, metadata


def _nion_dataset(h5: Any) -> Any:
    """The ``data`` dataset of an open HDF5 file when it is a Nion Swift data item (it carries
    its metadata as the attribute ``properties``), else ``None``."""
    import h5py

    dataset = h5.get("data")
    return dataset if isinstance(dataset, h5py.Dataset) and "properties" in dataset.attrs else None


def _read_h5(path: Path) -> tuple[np.ndarray, dict]:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            dataset = _nion_dataset(h5)
            if dataset is None:
                raise ImageReadError(
                    f"{path.name} is an HDF5 file but not a Nion Swift data item (no 'data' "
                    "dataset with its 'properties'); export the image as .ndata, .tif, .dm4 or "
                    ".emd.")
            properties = dataset.attrs["properties"]
            if isinstance(properties, bytes):
                properties = properties.decode("utf-8")
            return np.asarray(dataset[()]), json.loads(properties)
    except OSError as exc:
        raise ImageReadError(f"{path.name} could not be read as an HDF5 file (truncated, corrupt "
                             "or of another format).") from exc


def is_nion_h5(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file holding a Nion Swift data item (other programs' ``.h5``
    files are left to other readers)."""
    try:
        import h5py

        with h5py.File(path, "r") as h5:
            return _nion_dataset(h5) is not None
    except (OSError, ImportError):
        return False


def read_nion(path: str | Path) -> tuple[np.ndarray, float | None, dict]:
    """Read a Nion Swift ``.ndata`` or ``.h5`` data item.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    data : ndarray
        The array as stored (rows, columns; frames first for a sequence).
    pixel_size_nm : float or None
        From the last two calibrations when they are lengths.
    metadata : dict
        ``{"nion": <the data item's metadata>}``.

    Raises
    ------
    ImageReadError
        If the file is not such a data item or cannot be read.
    """
    path = Path(path)
    if path.suffix.lower() == ".ndata":
        data, metadata = _read_ndata(path)
    else:
        data, metadata = _read_h5(path)
    if not isinstance(metadata, dict):
        metadata = {}
    return data, _pixel_size_nm(metadata, data.ndim), {"nion": metadata}


__all__ = ["NION_EXTENSIONS", "is_nion_h5", "read_nion"]
