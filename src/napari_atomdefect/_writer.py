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
    run (a detection, or a table that named it) ``material`` and ``substituents``. A different
    table the file replaces is kept as ``<name>.previous.csv`` (:func:`write_points_table`),
    with a warning when it held more corrections by hand than the layer written (as the
    Review dock's *Export CSV…* says it; File → Save had said nothing)."""
    import warnings
    from pathlib import Path

    from napari.utils.notifications import show_warning

    from .core.io.table import manual_rows

    target = path if str(path).lower().endswith(".csv") else f"{path}.csv"
    before = manual_rows(target)
    # (napari's save dialog records the warnings of a writer and shows none: said here)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written, previous = write_points_table(path, data, meta)
    now = manual_rows(written)
    if previous is not None and before > now:
        show_warning(f"{Path(written).name} held {before} defects corrected by hand, this "
                     f"layer {now}: the table it replaced is kept as {Path(previous).name}.")
    for w in caught:  # (a corrected backup kept as NAME.previous-2.csv)
        if issubclass(w.category, UserWarning):
            show_warning(str(w.message))
        else:  # (a library's own warning goes on as it came)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return [written]


def write_points_table(path: str, data: Any, meta: dict) -> tuple[str, str | None]:
    """:func:`write_points_csv`, returning the path written and that of the table it replaced,
    kept beside it (``None`` when it replaced none, or the same table)."""
    from .core.io.table import table_from_points, with_run_columns, write_keeping_previous

    features = meta.get("features")
    if features is None:
        features = pd.DataFrame(meta.get("properties") or {})
    table = table_from_points(data, pd.DataFrame(features), _pixel_size(meta))
    own = (meta.get("metadata") or {}).get("atomdefect", {})
    table = with_run_columns(table, own.get("material"), own.get("substituents") or (),
                             _pixel_size(meta), own.get("calibration"),
                             own.get("class_overlaps") or [],
                             image=own.get("image_file") or own.get("image"))
    if not str(path).lower().endswith(".csv"):
        path = f"{path}.csv"
    # full precision: exact round trip
    previous = write_keeping_previous(table, path, float_format=None)
    return str(path), None if previous is None else str(previous)
