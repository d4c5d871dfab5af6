"""Tables written to disk: the defect CSV schema, site tables, and atomic CSV writing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns of a defect CSV (``atomdefect detect`` output and the napari writer).
DEFECT_COLUMNS = ["y_px", "x_px", "y_nm", "x_nm", "class", "confidence", "source"]


def defects_table(defects: pd.DataFrame, pixel_size_nm: float | None,
                  confidence: np.ndarray | None = None, source: str = "simulation") -> pd.DataFrame:
    """Defect table in the CSV schema from a frame with ``y_px, x_px, class``.

    Pixel coordinates are (row, column) of the image array with pixel centres at integers; the nm
    columns are these times the pixel size (empty when it is unknown).
    """
    out = pd.DataFrame({"y_px": defects["y_px"].to_numpy(float),
                        "x_px": defects["x_px"].to_numpy(float)})
    scale = np.nan if pixel_size_nm is None else float(pixel_size_nm)
    out["y_nm"] = out["y_px"] * scale
    out["x_nm"] = out["x_px"] * scale
    out["class"] = defects["class"].astype(str).to_numpy()
    out["confidence"] = 1.0 if confidence is None else np.asarray(confidence, float)
    out["source"] = source
    return out[DEFECT_COLUMNS]


def sites_table(lattice) -> pd.DataFrame:
    """All column sites of a :class:`~.lattice.Lattice` as a table (pixels and nm)."""
    parts = []
    for name, pos, idx, ok in (
        ("metal", lattice.metal_sites_px, lattice.metal_index, lattice.metal_refined),
        ("chalcogen", lattice.chalcogen_sites_px, lattice.chalcogen_index,
         lattice.chalcogen_refined),
    ):
        parts.append(pd.DataFrame({
            "y_px": pos[:, 0], "x_px": pos[:, 1],
            "y_nm": pos[:, 0] * lattice.pixel_size_nm, "x_nm": pos[:, 1] * lattice.pixel_size_nm,
            "sublattice": name, "i": idx[:, 0], "j": idx[:, 1], "measured": ok,
        }))
    return pd.concat(parts, ignore_index=True)


def write_csv_atomic(table: pd.DataFrame, path: str | Path, float_format: str = "%.4f") -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename (never half-written)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            table.to_csv(fh, index=False, float_format=float_format)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_defects_csv(path: str | Path) -> pd.DataFrame:
    """Read a defect CSV written by :func:`write_csv_atomic` / the napari writer.

    Raises
    ------
    ValueError
        If the columns are not those of a defect table.
    """
    table = pd.read_csv(path, dtype={"class": str, "source": str}, keep_default_na=False,
                        na_values={"y_nm": [""], "x_nm": [""], "confidence": [""]})
    missing = [c for c in ("y_px", "x_px", "class") if c not in table.columns]
    if missing:
        raise ValueError(f"{Path(path).name} is not a defect table (missing {', '.join(missing)}).")
    if "confidence" not in table.columns:
        table["confidence"] = 1.0
    if "source" not in table.columns:
        table["source"] = "manual"
    for c in ("y_nm", "x_nm"):
        if c not in table.columns:
            table[c] = np.nan
    table["source"] = table["source"].fillna("manual")
    return table[DEFECT_COLUMNS]


def table_from_points(data: np.ndarray, features: pd.DataFrame,
                      pixel_size_nm: float | None) -> pd.DataFrame:
    """Defect table from Points-layer data (pixel ``(row, col)``) and its features."""
    data = np.asarray(data, float).reshape(-1, 2)
    n = len(data)

    def col(name, default):
        if name in features.columns and len(features) == n:
            return features[name].to_numpy()
        return np.full(n, default, dtype=object if isinstance(default, str) else float)

    scale = np.nan if not pixel_size_nm else float(pixel_size_nm)
    return pd.DataFrame({
        "y_px": data[:, 0], "x_px": data[:, 1],
        "y_nm": data[:, 0] * scale, "x_nm": data[:, 1] * scale,
        "class": pd.Series(col("class", "V_S")).astype(str).to_numpy(),
        "confidence": pd.to_numeric(pd.Series(col("confidence", 1.0)), errors="coerce").to_numpy(),
        "source": pd.Series(col("source", "manual")).astype(str).to_numpy(),
    })[DEFECT_COLUMNS]


def pixel_size_from_table(table: pd.DataFrame) -> float | None:
    """Pixel size implied by the nm and px columns (``None`` if there are no nm values)."""
    px = np.concatenate([table.y_px.to_numpy(float), table.x_px.to_numpy(float)])
    nm = np.concatenate([table.y_nm.to_numpy(float), table.x_nm.to_numpy(float)])
    ok = (np.abs(px) > 1e-9) & np.isfinite(nm)
    if not ok.any():
        return None
    return float(np.median(nm[ok] / px[ok]))
