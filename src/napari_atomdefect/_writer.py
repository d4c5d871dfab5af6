"""npe2 writer contribution: a Points layer of defects -> CSV (atomic write)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _pixel_size(meta: dict) -> float | None:
    scale = meta.get("scale")
    own = (meta.get("metadata") or {}).get("atomdefect", {}).get("pixel_size_nm")
    if own:
        return float(own)
    units = meta.get("units")
    if scale is not None and units is not None and str(units[-1]) in ("nm", "nanometer"):
        return float(scale[-1])
    return None


def write_points_csv(path: str, data: Any, meta: dict) -> list[str]:
    """Write defect points as ``y_px, x_px, y_nm, x_nm, class, confidence, source``; a 3-D layer
    of a movie (``(frame, row, col)``) adds ``frame`` and ``track_id``, a layer that knows its
    run (a detection, or a table that named it) ``material`` and ``substituents``."""
    from .core.io.table import table_from_points, with_run_columns, write_csv_atomic

    features = meta.get("features")
    if features is None:
        features = pd.DataFrame(meta.get("properties") or {})
    table = table_from_points(data, pd.DataFrame(features), _pixel_size(meta))
    own = (meta.get("metadata") or {}).get("atomdefect", {})
    if own.get("material"):
        table = with_run_columns(table, own["material"], own.get("substituents") or ())
    if not str(path).lower().endswith(".csv"):
        path = f"{path}.csv"
    write_csv_atomic(table, path, float_format=None)  # full precision: exact round trip
    return [str(path)]
