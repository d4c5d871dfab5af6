"""Tables written to disk: the defect CSV schema, site tables, and atomic CSV writing."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AtomDefectError, OutputError, TableError
from ..materials.columns import ALL_CLASS_NAMES

#: Columns of a defect CSV (``atomdefect detect`` output and the napari writer).
DEFECT_COLUMNS = ["y_px", "x_px", "y_nm", "x_nm", "class", "confidence", "source"]
#: Optional columns of a movie's defect CSV: the frame (0-based) and the track (-1: not linked).
MOVIE_COLUMNS = ["frame", "track_id"]
#: Optional column of a movie's defect CSV: the class of the row's track over all its frames
#: (:func:`track_classes`; written, recomputed from the calls on every export, never read).
TRACK_CLASS_COLUMN = "track_class"
#: Optional column of the defects of a field with several grains: the grain (0: the first, the
#: one that calibrates; -1: added by hand).
GRAIN_COLUMN = "grain"
#: Optional columns naming the run a table came from: the material its class names follow and the
#: substituents that were looked for (``"Se"``, ``"O,Se"``; empty: vacancies only). With them a
#: reopened table offers the run's classes — a metal vacancy nobody called yet, O when O was
#: looked for — rather than the classes its names imply (a WS2 table of `V_S` and `O_S` only
#: reads as the legacy MoS2 classes, with `V_Mo`).
RUN_COLUMNS = ["material", "substituents"]
#: Optional columns saying which pixel size the nm columns follow and where it came from
#: (``file``, ``user``, ``lattice``: the calibration policy's sources), so that a table read
#: months later tells whether its nm are the file's calibration or the lattice's.
PIXEL_SIZE_COLUMNS = ["pixel_size_nm", "pixel_size_source"]
#: The image the table's pixel coordinates belong to (its file's name without the extension, as
#: napari names the image layer): reopened among several images of one size, the table is drawn
#: on that one (a trial's table went onto another 1024² image).
IMAGE_COLUMN = "image"
#: Optional column naming the pairs of classes the run could not tell apart (``V_S|O_S``, pairs
#: separated by ``;``): a reopened table keeps Statistics' mark on them.
OVERLAPS_COLUMN = "overlaps"


class UnknownClassWarning(UserWarning):
    """A defect table holds class names that are not defect classes of this plugin."""


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


def sites_table(lattice: Any) -> pd.DataFrame:
    """All column sites of a :class:`~..lattice.lattice.Lattice` as a table (pixels and nm).

    ``lattice`` is typed loosely: ``io`` sits below ``lattice`` and does not import it.
    """
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


def csv_columns(path: str | Path) -> set[str]:
    """The column names of the CSV file at ``path`` (stripped; Excel's BOM read away); empty
    when it cannot be read as a table."""
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError):
        return set()
    return {str(c).strip() for c in header}


#: ``source`` values of ground truth: the simulator's labels (``atomdefect simulate``, the demo)
#: and the napari sample's. A table whose every row is one of them is a reference, not detections.
TRUTH_SOURCES = ("simulation", "truth")


def is_truth_table(path: str | Path) -> bool:
    """Whether the defect CSV at ``path`` is ground truth: no ``confidence`` column, or every
    ``source`` one of :data:`TRUTH_SOURCES` (the simulator's labels carry confidence 1)."""
    columns = csv_columns(path)
    if not columns:
        return False
    if "confidence" not in columns:
        return True
    if "source" not in columns:
        return False
    try:
        source = pd.read_csv(path, usecols=lambda c: str(c).strip() == "source",
                             encoding="utf-8-sig").iloc[:, 0]
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    values = source.dropna().astype(str).str.strip()
    return len(values) > 0 and bool(values.isin(TRUTH_SOURCES).all())


def manual_rows(path: str | Path | bytes) -> int:
    """How many rows of the defect CSV at ``path`` (or of its ``bytes``) are the user's own
    (``source`` ``manual``: added or corrected in the Review widget); 0 when the file is missing
    or not such a table."""
    import io

    if isinstance(path, bytes):
        text: Any = io.BytesIO(path)
    elif Path(path).is_file():
        text = Path(path)
    else:
        return 0
    try:
        source = pd.read_csv(text, usecols=["source"], encoding="utf-8-sig")["source"]
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError):
        return 0
    return int((source.astype(str).str.strip() == "manual").sum())


def replace_refusal(path: str | Path) -> str | None:
    """Why the existing file at ``path`` must not be replaced by a fresh detection table, or
    ``None`` when it may be (missing, empty, or a detection table of this tool with no row the
    user added or corrected).

    A table with rows whose ``source`` is ``manual`` holds the user's corrections; a file that
    is not a detection table (no ``confidence`` and ``source`` columns: ground-truth labels, an
    annotation, any other file) or is ground truth (:func:`is_truth_table`: the simulator's
    labels) is not this tool's to replace."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    edited = manual_rows(path)
    if edited:
        rows = f"{edited} defect{'' if edited == 1 else 's'}"
        return f"{path} holds {rows} you added or corrected by hand; it is not replaced"
    columns = csv_columns(path)
    if {"y_px", "x_px", "class", "confidence", "source"} <= columns and not is_truth_table(path):
        return None
    what = ("ground truth (the simulator's labels)" if "confidence" in columns
            else "a defect table without confidences (ground-truth labels or an annotation)"
            if {"y_px", "x_px", "class"} <= columns else "not a detection table of this tool")
    return f"{path} exists and is {what}; it is not replaced"


def check_writable(path: str | Path) -> Path:
    """Check, before any long computation, that a result file can be written at ``path``.

    Parameters
    ----------
    path : str or Path
        The file to be written (it may exist: it will be replaced).

    Returns
    -------
    Path

    Raises
    ------
    OutputError
        If ``path`` is a folder or another non-regular file (a device, a FIFO), if its folder is
        missing, or if the folder does not accept new files (read-only, full).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name for the results.")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path} is not a regular file (a device or a pipe); results are only "
                          "written to regular files.")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"Cannot write {path}: {folder} is a file, not a folder.")
    if not folder.is_dir():
        raise OutputError(f"Cannot write {path}: the folder {folder} does not exist.")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:  # (a system folder such as /proc says "No such file": say what it is)
        raise OutputError(f"Cannot write {path}: the folder {folder} does not accept new files "
                          f"({exc.strerror or exc}).") from exc
    os.close(fd)
    os.unlink(probe)
    return path


def normal_permissions(path: str | Path) -> None:
    """Give a file or folder written through a temporary one (``mkstemp``: 0600, ``mkdtemp``:
    0700) the permissions of any the user makes (0666 or 0777 less their umask): a table or
    model shared on a group's disk was readable only by its author."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


def write_csv_atomic(table: pd.DataFrame, path: str | Path, float_format: str | None = "%.4f"
                     ) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename (never half-written).

    Raises
    ------
    OutputError
        If the file cannot be written (see :func:`check_writable`, or a full disk); an existing file
        at ``path`` is then left as it was and no temporary file remains.
    """
    path = check_writable(path)
    if float_format and "pixel_size_nm" in table.columns:  # (0.0083 for 0.00826: 0.5 % off)
        values = pd.to_numeric(table["pixel_size_nm"], errors="coerce")
        table = table.assign(pixel_size_nm=values.map(lambda v: "" if pd.isna(v) else f"{v:.6g}"))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            table.to_csv(fh, index=False, float_format=float_format)
        normal_permissions(tmp)  # mkstemp creates 0600
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}; nothing was "
                          "changed.") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_keeping_previous(table: pd.DataFrame, path: str | Path,
                           **csv_kwargs: Any) -> Path | None:
    """Write ``table`` to ``path`` (:func:`write_csv_atomic`, with ``csv_kwargs``); a different
    table it replaces (an earlier run, a table corrected by hand) is kept beside it as
    ``<name>.previous.csv``, whose path is returned (``None`` when nothing was replaced).

    The new table is staged beside the file first, the old one kept, and only then is the new
    one renamed into place: when the old table cannot be kept, nothing is replaced.

    Raises
    ------
    OSError
        If the table cannot be written, or the one it would replace cannot be kept (then the
        file at ``path`` is as it was).
    """
    path = Path(path)
    before = path.read_bytes() if path.is_file() and path.stat().st_size else None
    if before is None:
        write_csv_atomic(table, path, **csv_kwargs)
        return None
    staged = path.with_name(f".{path.name}.new.part")
    previous = path.with_name(f"{path.stem}.previous{path.suffix or '.csv'}")
    tmp = previous.with_name(f".{previous.name}.part")
    try:
        write_csv_atomic(table, staged, **csv_kwargs)
        if staged.read_bytes() == before:
            staged.unlink()
            return None
        older = _keep_corrected_backup(previous, before, staged)
        tmp.write_bytes(before)
        os.replace(tmp, previous)
        os.replace(staged, path)
    except OSError:
        staged.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        raise
    if older is not None:
        warnings.warn(f"{previous.name} held {manual_rows(older)} defects corrected by hand; it "
                      f"is kept as {older.name} (the table just replaced is {previous.name} "
                      "now).", UserWarning, stacklevel=2)
    return previous


def _keep_corrected_backup(previous: Path, replaced: bytes, new: Path) -> Path | None:
    """Move the backup ``previous`` out of the way to the first free ``<name>.previous-N.csv``
    when it holds more corrections by hand (``manual`` rows) than both the table now replaced
    (``replaced``: its bytes) and the ``new`` one (staged) — a third save over a corrected
    table had overwritten its only copy; a table saved again as its corrections grow leaves no
    trail of backups. The path it went to, or ``None`` when it was left."""
    kept = manual_rows(previous)
    if kept == 0 or previous.read_bytes() == replaced \
            or kept <= max(manual_rows(replaced), manual_rows(new)):
        return None
    k = 2
    while (older := previous.with_name(f"{previous.stem}-{k}{previous.suffix}")).exists():
        k += 1
    os.replace(previous, older)
    return older


def _numeric_column(table: pd.DataFrame, column: str, name: str, required: bool) -> np.ndarray:
    """``table[column]`` (text) as floats; a non-numeric cell, or if ``required`` an empty or NaN
    one, raises :class:`TableError` naming the row of the file."""
    text = table[column].str.strip()
    empty = (text == "") | (text.str.lower() == "nan")
    values = pd.to_numeric(text.where(~empty, "nan"), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values) & (~empty.to_numpy() | required)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        what = "an empty" if empty.iloc[k] else "a non-numeric or infinite"
        raise TableError(f"{name}: row {k + 2} has {what} {column} ({table[column].iloc[k]!r}); "
                         f"every defect needs numeric {column} values.")
    return values


def with_run_columns(table: pd.DataFrame, material: str | None = None,
                     substituents: Any = None, pixel_size_nm: float | None = None,
                     pixel_size_source: str | None = None,
                     overlaps: list | None = None, image: str | None = None) -> pd.DataFrame:
    """``table`` with the columns of the run it came from.

    Parameters
    ----------
    table : pandas.DataFrame
        A defect table (:data:`DEFECT_COLUMNS`, maybe more).
    material, substituents : optional
        The :data:`RUN_COLUMNS` (default: the ``attrs`` ``"model_material"`` and
        ``"substituents"``, which :func:`~..detect.detect.detect` sets); they are added only when
        the material is known.
    pixel_size_nm, pixel_size_source : optional
        The :data:`PIXEL_SIZE_COLUMNS` (default: the ``attrs`` ``"pixel_size_nm"`` and
        ``"calibration"``); added when the pixel size is known.
    overlaps : list of pairs, optional
        The :data:`OVERLAPS_COLUMN` (default: the ``attrs`` ``"class_overlaps"``); added with
        the material.
    image : str, optional
        The :data:`IMAGE_COLUMN` (default: the ``attrs`` ``"image"``); added when known.

    Returns
    -------
    pandas.DataFrame
        A copy with the columns added (``table`` itself when there is nothing to add).
    """
    material = material or table.attrs.get("model_material") or table.attrs.get("material")
    pixel_size_nm = pixel_size_nm or table.attrs.get("pixel_size_nm")
    pixel_size_source = pixel_size_source or table.attrs.get("calibration")
    image = image or table.attrs.get("image")
    if not material and not pixel_size_nm and not image:
        return table
    out = table.copy()
    if material:
        if substituents is None:
            substituents = table.attrs.get("substituents", ())
        if isinstance(substituents, str):
            substituents = [d for d in substituents.split(",") if d.strip()]
        out["material"] = str(material)
        out["substituents"] = ",".join(str(d).strip() for d in substituents)
        pairs = table.attrs.get("class_overlaps", []) if overlaps is None else overlaps
        out[OVERLAPS_COLUMN] = overlaps_text(pairs)
    if pixel_size_nm:
        size, source = PIXEL_SIZE_COLUMNS
        out[size] = float(pixel_size_nm)
        out[source] = str(pixel_size_source or "")
    if image:
        out[IMAGE_COLUMN] = str(image)
    return out


def overlaps_text(pairs: Iterable[Sequence[str]]) -> str:
    """Pairs of classes that overlap as the :data:`OVERLAPS_COLUMN` writes them
    (``"V_S|O_S;V_Se|S_Se"``): each pair in the order of the class lists, so that one pair
    reads alike in every row of a batch summary (a trial's held ``V_S|O_S`` and ``O_S|V_S``)."""
    from ..materials.columns import ALL_CLASS_NAMES

    rank = {name: k for k, name in enumerate(ALL_CLASS_NAMES)}

    def ordered(pair: Sequence[str]) -> list[str]:
        return sorted(map(str, pair), key=lambda c: (rank.get(c, len(rank)), c))

    return ";".join("|".join(ordered(p)) for p in pairs if len(p) == 2)


def _run_context(table: pd.DataFrame, name: str) -> dict:
    """``attrs`` from a table's :data:`RUN_COLUMNS` (its first row that names a material):
    ``material``, ``substituents`` and the run's ``classes``; empty without them, or with a
    material or substituent this plugin does not know (said in a warning: the classes are then
    those the names imply)."""
    from ..materials.columns import class_names, parse_substituents
    from ..materials.materials import get_material

    if "material" not in table.columns:
        return {}
    named = table["material"].str.strip()
    named = named[named != ""]
    if named.empty:
        return {}
    subs_text = table["substituents"].iloc[named.index[0]] if "substituents" in table.columns \
        else ""
    try:
        mat = get_material(named.iloc[0])
        subs = parse_substituents(str(subs_text).replace(" ", ""), mat)
    except AtomDefectError as exc:
        warnings.warn(f"{name}: its material/substituents columns are not understood ({exc}); "
                      "the classes offered are those its class names imply.", stacklevel=3)
        return {}
    classes = class_names(mat, subs)
    said = table[OVERLAPS_COLUMN].iloc[named.index[0]] if OVERLAPS_COLUMN in table.columns \
        else ""
    pairs = [p.split("|") for p in str(said).split(";") if p.count("|") == 1]
    return {"material": mat.name, "substituents": tuple(subs), "classes": classes,
            "class_overlaps": [p for p in pairs if set(p) <= set(classes)]}


def read_defects_csv(path: str | Path) -> pd.DataFrame:
    """Read a defect CSV: ``atomdefect detect`` output, the napari writer's, or a dev-set
    ``labels.csv`` (only ``y_px, x_px, class`` are required; any column order; UTF-8 with or
    without a byte-order mark). A detections layer saved by napari's own points writer
    (:data:`NAPARI_POINTS_AXES`: the layer's pixel coordinates, its features beside them) is
    read too, without nm columns or run.

    Classes that are not one of :data:`~..materials.columns.ALL_CLASS_NAMES` (the defect classes
    of every material) are kept as they are, with one warning naming them.

    Returns
    -------
    DataFrame
        Columns :data:`DEFECT_COLUMNS` (missing nm columns are NaN, confidence 1, source manual),
        then the integer :data:`MOVIE_COLUMNS` the file has (``frame``; ``track_id``, -1 where
        empty) and :data:`GRAIN_COLUMN` (-1 where empty). A table with :data:`RUN_COLUMNS`
        has ``attrs`` ``material``, ``substituents``, ``classes`` (the run's classes) and
        ``class_overlaps`` (from :data:`OVERLAPS_COLUMN`); one with ``pixel_size_source`` has
        ``attrs`` ``calibration`` (where its nm came from), one with one ``pixel_size_nm``
        value ``attrs`` ``pixel_size_nm``, one with :data:`IMAGE_COLUMN` ``attrs`` ``image``.

    Raises
    ------
    TableError
        If the file cannot be read, is empty, lacks a required column or holds a non-numeric or
        empty coordinate, or a frame or track that is not a whole number.
    """
    name = Path(path).name
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise TableError(f"{name} is empty; a defect table needs a header y_px, x_px, "
                         "class.") from exc
    except UnicodeDecodeError as exc:  # a binary file: an image, an archive
        raise TableError(f"{name} is not a text (CSV) file: a defect table is a CSV file with a "
                         "header y_px, x_px, class and one row per defect.") from exc
    except pd.errors.ParserError as exc:  # the parser's own words say nothing to a user
        ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        where = (f": line {ragged[2]} has {ragged[3]} fields where the first line has "
                 f"{ragged[1]}" if ragged else "")
        raise TableError(f"{name} cannot be read as a defect table (a CSV file with a header "
                         f"y_px, x_px, class){where}.") from exc
    except OSError as exc:
        reason = str(getattr(exc, "strerror", None) or exc).strip().splitlines()[0][:200]
        raise TableError(f"Cannot read the table {name}: {reason.rstrip('.')}.") from exc
    if not isinstance(table.index, pd.RangeIndex):  # pandas took surplus fields as an index
        raise TableError(f"{name}: its rows have more fields than the header has columns; "
                         "check the separator and the header line.")
    table.columns = [str(c).strip() for c in table.columns]
    table = _from_napari_points_layout(table)
    missing = [c for c in ("y_px", "x_px", "class") if c not in table.columns]
    if missing:
        raise TableError(f"{name} is not a defect table: it lacks the column(s) "
                         f"{', '.join(missing)} (expected y_px, x_px, class and optionally y_nm, "
                         "x_nm, confidence, source).")
    out = pd.DataFrame({c: _numeric_column(table, c, name, required=True)
                        for c in ("y_px", "x_px")})
    for c in ("y_nm", "x_nm"):
        out[c] = _numeric_column(table, c, name, False) if c in table.columns else np.nan
    out["class"] = table["class"].str.strip().to_numpy()
    blank = np.flatnonzero(out["class"].to_numpy() == "")
    if blank.size:
        raise TableError(f"{name}: row {int(blank[0]) + 2} has no class (an incomplete row?); "
                         "every defect needs y_px, x_px and class.")
    out["confidence"] = _numeric_column(table, "confidence", name, False) \
        if "confidence" in table.columns else 1.0
    out["source"] = table["source"].to_numpy() if "source" in table.columns else "manual"
    unknown = sorted(set(out["class"]) - set(ALL_CLASS_NAMES))
    if unknown:
        warnings.warn(f"{name}: {len(unknown)} class name(s) are not defect classes of this "
                      f"plugin ({', '.join(map(repr, unknown))}); they are kept as they are.",
                      UnknownClassWarning, stacklevel=2)
    out = _integer_columns(out[DEFECT_COLUMNS].copy(), table, name)
    out.attrs.update(_run_context(table, name))
    if "pixel_size_source" in table.columns:  # where the nm columns' pixel size came from
        said = table["pixel_size_source"].str.strip()
        said = said[said != ""]
        if not said.empty:
            out.attrs["calibration"] = str(said.iloc[0])
    if "pixel_size_nm" in table.columns:  # the one pixel size the nm columns were made with
        values = pd.to_numeric(table["pixel_size_nm"], errors="coerce").dropna().unique()
        if len(values) == 1 and values[0] > 0:
            out.attrs["pixel_size_nm"] = float(values[0])
    if IMAGE_COLUMN in table.columns:  # the image its pixel coordinates belong to
        named = table[IMAGE_COLUMN].str.strip()
        named = named[named != ""]
        if not named.empty:
            out.attrs["image"] = str(named.iloc[0])
    return out


#: Coordinate columns of napari's own points CSV writer (``File > Save Selected Layer(s)`` with
#: its "points" format, listed first in the dialog): ``index``, then the layer's data
#: coordinates (pixels for this plugin's layers; a movie's first axis is its frame), then the
#: features.
NAPARI_POINTS_AXES = ("axis-0", "axis-1", "axis-2")


def is_napari_points_layout(columns: Iterable[str]) -> bool:
    """Whether a CSV with ``columns`` is napari's own points table of a defect layer (its pixel
    coordinates under :data:`NAPARI_POINTS_AXES`, a ``class`` feature, no ``y_px``)."""
    names = {str(c).strip() for c in columns}
    return {"axis-0", "axis-1", "class"} <= names and "y_px" not in names


def _from_napari_points_layout(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with napari's points layout renamed to this plugin's columns: ``axis-0``,
    ``axis-1`` are ``y_px``, ``x_px`` (with ``axis-2``: ``frame``, ``y_px``, ``x_px``); its
    ``index`` column dropped. Other tables are returned as they are."""
    if not is_napari_points_layout(table.columns):
        return table
    axes = [a for a in NAPARI_POINTS_AXES if a in table.columns]
    names = ["frame", "y_px", "x_px"] if len(axes) == 3 else ["y_px", "x_px"]
    table = table.drop(columns=[c for c in ("index", *names) if c in table.columns])
    table = table.rename(columns=dict(zip(axes, names, strict=True)))
    if "frame" in table.columns:  # (written as floats: "3.0")
        values = pd.to_numeric(table["frame"], errors="coerce")
        table["frame"] = [str(int(v)) if v == v and v == round(v) else str(t)
                          for v, t in zip(values, table["frame"], strict=True)]
    return table


def _integer_columns(out: pd.DataFrame, table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Add the file's ``frame`` (required in every row), ``track_id`` and ``grain`` (-1 where
    empty) as integers."""
    for column, required in (("frame", True), ("track_id", False), (GRAIN_COLUMN, False)):
        if column not in table.columns:
            continue
        values = _numeric_column(table, column, name, required)
        values = np.where(np.isfinite(values), values, -1.0)
        bad = (values != np.round(values)) | (values < (0 if required else -1))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise TableError(f"{name}: row {k + 2} has {column} {table[column].iloc[k]!r}; "
                             f"a {column} is a whole number (0 or more).")
        out[column] = values.astype(int)
    return out


def table_from_points(data: np.ndarray, features: pd.DataFrame,
                      pixel_size_nm: float | None) -> pd.DataFrame:
    """Defect table from Points-layer data (pixel ``(row, col)``, or ``(frame, row, col)`` for a
    movie: then with ``frame`` and ``track_id`` columns, -1 for points without a track) and its
    features."""
    data = np.asarray(data, float)
    movie = data.ndim == 2 and data.shape[1] == 3
    frames = np.round(data[:, 0]).astype(int) if movie else None
    data = data[:, 1:] if movie else data.reshape(-1, 2)
    n = len(data)

    def col(name: str, default: object) -> np.ndarray:
        if name in features.columns and len(features) == n:
            return features[name].to_numpy()
        return np.full(n, default, dtype=object if isinstance(default, str) else float)

    scale = np.nan if not pixel_size_nm else float(pixel_size_nm)
    out = pd.DataFrame({
        "y_px": data[:, 0], "x_px": data[:, 1],
        "y_nm": data[:, 0] * scale, "x_nm": data[:, 1] * scale,
        "class": pd.Series(col("class", "V_S")).astype(str).to_numpy(),
        "confidence": pd.to_numeric(pd.Series(col("confidence", 1.0)), errors="coerce").to_numpy(),
        "source": pd.Series(col("source", "manual")).astype(str).to_numpy(),
    })[DEFECT_COLUMNS]
    if movie:
        out["frame"] = frames
        tracks = pd.to_numeric(pd.Series(col("track_id", -1.0)), errors="coerce").to_numpy()
        out["track_id"] = np.where(np.isfinite(tracks), tracks, -1).astype(int)
        out[TRACK_CLASS_COLUMN] = track_classes(out).to_numpy()  # (after the user's edits)
    if GRAIN_COLUMN in features.columns:  # a field of several grains (-1: added by hand)
        grains = pd.to_numeric(pd.Series(col(GRAIN_COLUMN, -1.0)), errors="coerce").to_numpy()
        out[GRAIN_COLUMN] = np.where(np.isfinite(grains), grains, -1).astype(int)
    return out


def track_classes(table: pd.DataFrame) -> pd.Series:
    """Each row's track's class over all its frames: the class whose calls on the track add up
    to the most confidence (a row without a track, ``track_id`` -1: its own class).

    A vacancy read ``V_S`` in some frames and ``O_S`` in others (at a microscope that hardly
    tells them apart) is one defect with one most likely class; the per-frame calls stay as they
    are (an O that fills a vacancy is a real event).

    Parameters
    ----------
    table : pandas.DataFrame
        Defects with ``class``, ``confidence`` and ``track_id``.

    Returns
    -------
    pandas.Series
        Class names, indexed like ``table``.
    """
    cls = table["class"].astype(str)
    if "track_id" not in table.columns or table.empty:
        return cls.copy()
    ids = pd.to_numeric(table["track_id"], errors="coerce").fillna(-1).astype(int)
    conf = pd.to_numeric(table.get("confidence", 1.0), errors="coerce")
    conf = pd.Series(conf, index=table.index).fillna(1.0).clip(lower=1e-6)
    linked = ids >= 0
    weights = pd.DataFrame({"track": ids[linked], "class": cls[linked], "w": conf[linked]})
    best = (weights.groupby(["track", "class"])["w"].sum().reset_index()
            .sort_values(["track", "w", "class"], ascending=[True, False, True])
            .drop_duplicates("track").set_index("track")["class"])
    out = cls.copy()
    out[linked] = ids[linked].map(best).to_numpy()
    return out


def pixel_size_from_table(table: pd.DataFrame) -> float | None:
    """Pixel size implied by a table's nm and px columns (``None`` without usable nm values).

    Only coordinates at least one pixel from 0 are used (the ratio of two tiny numbers is
    imprecise), and only where the nm value is finite.
    """
    if not {"y_nm", "y_px", "x_nm", "x_px"} <= set(table.columns):
        return None
    px = np.concatenate([table.y_px.to_numpy(float), table.x_px.to_numpy(float)])
    nm = np.concatenate([table.y_nm.to_numpy(float), table.x_nm.to_numpy(float)])
    ok = (np.abs(px) >= 1) & np.isfinite(nm)
    if not ok.any():
        return None
    value = float(np.median(nm[ok] / px[ok]))
    return value if np.isfinite(value) and value > 0 else None
