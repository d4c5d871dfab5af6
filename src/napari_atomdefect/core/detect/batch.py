"""Batch detection over many images on dask.distributed (``atomdefect batch``).

Each input file is one task; a worker reads it, detects defects in every frame and writes one
defect CSV per frame (the schema of ``atomdefect detect``) through an atomic rename. The driver
rewrites ``summary.csv`` atomically after every finished file, so an interrupted batch leaves only
complete files; a rerun skips the images whose CSV exists and whose summary row says ``ok``.

The detector is loaded once per worker process (a per-process cache keyed by model folder and
device), and torch gets ``cores // threads on the host`` threads per worker so that the workers
do not oversubscribe the CPU.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AtomDefectError
from ..io.table import overlaps_text
from ..materials.columns import ALL_CLASS_NAMES, LEGACY_CLASSES, lookup_class
from .image_fit import counts_as_flagged

#: Name of the summary table written in the output folder.
SUMMARY_NAME = "summary.csv"

_HEAD_COLUMNS = ["image", "frame", "csv", "status", "error", "material", "substituents",
                 "pixel_size_nm",
                 "pixel_size_source", "n_cells", "area_nm2", "n_defects", "defects_per_nm2",
                 "defects_per_cell"]
#: (``overlaps``: the pairs of classes the image could not tell apart, as the defect CSVs
#: write them, ``O_S|V_S``, ``;`` between pairs — a spreadsheet filters on it, a trial found
#: them only in the notes)
_TAIL_COLUMNS = ["time_s", "model", "operating_point", "device", "overlaps", "column_fwhm_nm",
                 "notes"]
_CLASS_KINDS = ("n", "per_nm2", "per_cell")


#: Chalcogens whose share of a layer's chalcogen atoms the summary gives (an alloy's
#: composition: what a conversion study wants, which a trial found only in the notes' Vegard
#: sentence); O is a point defect, not an alloy.
ALLOYING = ("S", "Se", "Te")


def alloy_elements(classes: tuple[str, ...]) -> list[str]:
    """Alloying chalcogens among the substituents of ``classes`` (their ``D_X`` classes), in
    class order: each has a ``<D>_fraction`` column in ``summary.csv``."""
    out: list[str] = []
    for c in classes:
        kind = lookup_class(c)
        if kind is not None and kind.kind == "D_X" and kind.substituent in ALLOYING \
                and kind.substituent not in out:
            out.append(kind.substituent)
    return out


def summary_columns(classes: tuple[str, ...] = LEGACY_CLASSES) -> list[str]:
    """Columns of ``summary.csv`` for a run with defect ``classes``, in order.

    Per class ``n_<class>``, ``per_nm2_<class>``, ``per_cell_<class>``, in the run's class order;
    per alloying substituent (:func:`alloy_elements`) ``<D>_fraction``, its share of the
    chalcogen atoms (one per ``D_X`` column, two per ``D2_X2``, over two per chalcogen site).
    """
    return (_HEAD_COLUMNS + [f"{kind}_{c}" for c in classes for kind in _CLASS_KINDS]
            + [f"{d}_fraction" for d in alloy_elements(classes)] + _TAIL_COLUMNS)


#: Columns of ``summary.csv`` of a run with the legacy MoS2 classes (V_S, V_S2, O_S, V_Mo).
SUMMARY_COLUMNS = summary_columns(LEGACY_CLASSES)

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BatchItem:
    """One input file of a batch.

    Attributes
    ----------
    path : str
        Absolute path of the image file (the ``image`` column of the summary).
    base : str
        Stem of its output CSV(s): ``BASE.csv``, or ``BASE_f0003.csv`` per frame of a stack.
    """

    path: str
    base: str


@dataclass
class BatchOptions:
    """What every task needs to know (sent to the workers)."""

    out: str
    material: str = "MoS2"
    pixel_size_nm: float | None = None
    model: str | None = None
    device: str = "auto"
    threads_by_host: dict = field(default_factory=dict)
    operating_point: dict | None = None
    substituents: tuple[str, ...] | None = None
    classes: tuple[str, ...] = LEGACY_CLASSES


# --------------------------------------------------------------------------------------- inputs

def expand_inputs(inputs: list[str], notes: list[str] | None = None) -> list[Path]:
    """Image files named by ``inputs``: files, folders (their supported images) and glob patterns.

    A folder holding microscope data files beside PNG/JPEG images gives its data files only:
    the PNG/JPEG images there are renderings (previews, figures) of the same scans, analysed
    twice otherwise; a sentence for each such folder goes to ``notes``. Named one by one, or in
    a folder of PNG/JPEG images only, they are analysed.

    Raises
    ------
    AtomDefectError
        If an input does not exist or matches nothing, or no image file is found at all.
    """
    from ..io.image import IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS

    files: list[Path] = []
    for text in map(str, inputs):
        if _GLOB_CHARS & set(text) and not Path(text).exists():
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            if not matches:
                raise AtomDefectError(f"No files match {text}.")
            found = [m for m in matches if m.is_file() and m.suffix.lower() in SUPPORTED_EXTENSIONS]
        elif Path(text).is_dir():
            found = sorted(f for f in Path(text).iterdir()
                           if f.is_file() and f.suffix.lower() in SUPPORTED_EXTENSIONS)
            rendered = [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS]
            if rendered and len(rendered) < len(found):
                found = [f for f in found if f not in rendered]
                if notes is not None:
                    notes.append(f"{text}: left out {len(rendered)} PNG/JPEG image"
                                 f"{'' if len(rendered) == 1 else 's'} beside its data files "
                                 "(renderings of the scans?); name them to analyse them.")
        elif Path(text).exists():
            found = [Path(text)]
        else:
            raise AtomDefectError(f"No such file or folder: {text}.")
        files += found
    # One entry per file (a file reached twice, or through a link, is analysed once), under the
    # name it was given: a linked file's outputs had taken its target's name ("image.csv").
    seen: dict[Path, Path] = {}
    for f in files:
        seen.setdefault(f.resolve(), f.absolute())
    unique = list(seen.values())
    if not unique:
        raise AtomDefectError(f"No image files found in {', '.join(map(str, inputs))}.")
    return unique


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]


def plan_items(files: list[Path]) -> list[BatchItem]:
    """Give each file a unique output stem: its own stem, or ``stem-HASH`` when stems collide.

    Stems are compared case-insensitively (for case-insensitive file systems), and a stem such as
    ``movie_f0001`` next to a ``movie`` file is tagged too (it could meet a stack's frame CSV); the
    hash is taken from the absolute path, so a file keeps its name from run to run.
    """
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem.lower()] = stems.get(f.stem.lower(), 0) + 1
    items = []
    for f in files:
        stem = f.stem.lower()
        frame_like = re.fullmatch(r"(.+)_f\d{4}", stem)  # could meet a stack's frame CSV
        clash = (stems[stem] > 1 or stem == Path(SUMMARY_NAME).stem
                 or (frame_like is not None and frame_like.group(1) in stems))
        items.append(BatchItem(str(f), f"{f.stem}-{_short_hash(str(f))}" if clash else f.stem))
    return items


def csv_name(base: str, frame: int | None) -> str:
    """Output CSV name of one frame (``None``: a single image)."""
    return f"{base}.csv" if frame is None else f"{base}_f{frame:04d}.csv"


# ------------------------------------------------------------------------------ worker side

_MODEL_LOCK = threading.Lock()
_WORKER_MODELS: dict[tuple[str, str], object] = {}
_MODEL_LOADS: dict[tuple[str, str], int] = {}
_TORCH_THREADS: list[int] = []


def model_load_count() -> int:
    """How many times this process has loaded a detector for a batch (for tests and checks)."""
    return sum(_MODEL_LOADS.values())


def _worker_model(model: str | None, device: str, material: str | None = None,
                  substituents: tuple[str, ...] | None = None):
    """The detector for ``(model, device)``, loaded once per process and kept."""
    from ..device import select_device
    from ..models.registry import load_detector, resolve_model

    info = resolve_model(model, material, substituents)
    try:
        dev, _ = select_device(device)
    except ValueError as exc:
        raise AtomDefectError(str(exc)) from exc
    key = (str(info.path), str(dev))
    with _MODEL_LOCK:
        if key not in _WORKER_MODELS:
            _WORKER_MODELS[key] = load_detector(info, dev)
            _MODEL_LOADS[key] = _MODEL_LOADS.get(key, 0) + 1
        return _WORKER_MODELS[key]


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _set_torch_threads(threads_by_host: dict) -> None:
    """Once per process: torch threads = cores // (task threads of all workers on this host);
    the numpy threads (:mod:`..parallel`) the same."""
    import torch

    from ..parallel import set_thread_budget

    with _MODEL_LOCK:
        if not _TORCH_THREADS:
            _TORCH_THREADS.append(_torch_threads_here(threads_by_host))
            torch.set_num_threads(_TORCH_THREADS[0])
            set_thread_budget(_TORCH_THREADS[0])


def _torch_threads_here(threads_by_host: dict) -> int:
    """``cores // task threads on this host`` (the host's total from the scheduler)."""

    host_threads = 1
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host

        worker = get_worker()
        host_threads = threads_by_host.get(get_address_host(worker.address), worker.state.nthreads)
    except (ImportError, ValueError):
        pass
    return max(1, _available_cores() // max(1, int(host_threads)))


def _error_row(item: BatchItem, frame: int | None, opts: BatchOptions, message: str,
               t0: float) -> dict:
    return {"image": item.path, "frame": frame, "csv": "", "status": "error", "error": message,
            "material": opts.material, "substituents": _substituents_text(opts),
            "time_s": round(time.perf_counter() - t0, 3)}


def _substituents_text(opts: BatchOptions) -> str:
    """The substituents looked for, as the summary and the defect CSVs write them (``O,Se``)."""
    from ..materials.columns import antisite_chosen, metal_substituents, parse_substituents
    from ..materials.materials import get_material

    try:  # (the chalcogen ones, the other metal of a Mo/W alloy, the host metal: antisites)
        mat = get_material(opts.material)
        return ",".join(parse_substituents(opts.substituents, mat)
                        + metal_substituents(opts.substituents, mat)
                        + ((mat.metal,) if antisite_chosen(opts.substituents, mat) else ()))
    except AtomDefectError:  # (a run refused before any image says why itself)
        return ",".join(opts.substituents or ())


def _result_row(item: BatchItem, frame: int | None, opts: BatchOptions, result: dict,
                notes: list[str], t0: float) -> dict:
    """Summary row of one analysed frame: counts and densities per class."""
    table, lattice = result["defects"], result["lattice"]
    n_cells = table.attrs.get("n_cells", lattice.n_cells)  # every grain's
    area = table.attrs.get("area_nm2", lattice.area_nm2)
    counts = table["class"].value_counts()
    # Substitutions by a chosen alloying chalcogen are the alloy's composition, not defects.
    subs = tuple(table.attrs.get("substituents", ()))
    n_defects = sum(int(n) for c, n in counts.items() if counts_as_flagged(str(c), subs))
    row = {"image": item.path, "frame": frame, "csv": csv_name(item.base, frame), "status": "ok",
           "error": "", "material": lattice.material.name, "substituents": ",".join(subs),
           "pixel_size_nm": float(lattice.pixel_size_nm), "pixel_size_source": lattice.calibration,
           "n_cells": n_cells, "area_nm2": float(area), "n_defects": n_defects,
           "defects_per_nm2": n_defects / area if area else np.nan,
           "defects_per_cell": n_defects / n_cells if n_cells else np.nan}
    for c in opts.classes:
        n = int(counts.get(c, 0))
        row[f"n_{c}"] = n
        row[f"per_nm2_{c}"] = n / area if area else np.nan
        row[f"per_cell_{c}"] = n / n_cells if n_cells else np.nan
    from .alloy_calibration import alloy_atoms

    n_chalcogen = table.attrs.get("n_chalcogen_sites")
    atoms = alloy_atoms(table["class"], lattice.material)  # (as Vegard's calibration counts)
    for d in alloy_elements(tuple(opts.classes)):
        row[f"{d}_fraction"] = atoms.get(d, 0) / (2 * n_chalcogen) if n_chalcogen else np.nan
    row.update({"time_s": round(time.perf_counter() - t0, 3), "model": result["model"],
                "operating_point": operating_point_text(opts.operating_point, opts.classes),
                "device": result["device"],
                "overlaps": overlaps_text(table.attrs.get("class_overlaps", ())),
                # (a folder of frames: the blurred ones found by sorting on it)
                "column_fwhm_nm": table.attrs.get("column_fwhm_nm"),
                "notes": " ".join(dict.fromkeys(notes))})
    return row


def detect_frame(data: np.ndarray, opts: BatchOptions, file_px: float | None) -> tuple[dict, list]:
    """Detect defects in one frame; returns the ``iter_detect`` result and its notes (calibration,
    and whether the model fits the image)."""
    from ..progress import run_to_end
    from .detect import iter_detect

    if opts.pixel_size_nm is not None:
        px, source = opts.pixel_size_nm, "user"
    else:
        px, source = file_px, "file"
    from ..lattice.lattice import CalibrationWarning
    from .image_fit import ModelFitWarning

    _worker_model(opts.model, opts.device, opts.material, opts.substituents)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_to_end(iter_detect(data, px, opts.material, opts.model, opts.device, source,
                                        operating_point=opts.operating_point,
                                        substituents=opts.substituents))
    for w in caught:  # calibration and model-fit notes go into the summary; others pass on
        if not issubclass(w.category, (CalibrationWarning, ModelFitWarning)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result, list(result["defects"].attrs["messages"])


def _write_defects(table: pd.DataFrame, path: Path) -> None:
    """Write a defect CSV atomically (with the run's material and substituents); a failed write
    is a user-facing error (nothing left)."""
    from ..io.table import with_run_columns, write_csv_atomic

    try:
        write_csv_atomic(with_run_columns(table), path)
    except AtomDefectError:  # already one sentence (export.OutputError)
        raise
    except OSError as exc:
        raise AtomDefectError(f"Could not write {path.name} in {path.parent} "
                              f"({exc.strerror or exc}).") from exc


def process_file(item: BatchItem, opts: BatchOptions, done_frames: frozenset = frozenset()
                 ) -> list[dict]:
    """Worker task: detect defects in every frame of one file, write their CSVs, return rows.

    Frames in ``done_frames`` (finished in an earlier run) are not recomputed and get no row;
    any failure becomes an ``error`` row with its one-sentence message, never an exception.
    """
    from ..io.image import STACK_NOTE, no_pixel_size_message, read_image

    t0 = time.perf_counter()
    try:
        _set_torch_threads(opts.threads_by_host)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reader's warnings are in img.messages
            img = read_image(item.path)
    except AtomDefectError as exc:
        return [_error_row(item, None, opts, str(exc), t0)]
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        return [_error_row(item, None, opts, f"Unexpected error ({type(exc).__name__}: {exc}).", t0)]
    from ..io.table import replace_refusal

    frames = list(range(img.data.shape[0])) if img.is_stack else [None]
    rows = []
    for frame in (f for f in frames if f not in done_frames):
        data = img.data if frame is None else img.data[frame]
        target = Path(opts.out) / csv_name(item.base, frame)
        refusal = replace_refusal(target)
        if refusal:  # a table of the user's (corrections, labels, any other file) stays
            rows.append(_error_row(item, frame, opts, f"{refusal}: choose another --out.", t0))
            continue
        try:
            result, notes = detect_frame(data, opts, img.pixel_size_nm)
            result["defects"].attrs["image"] = img.name  # (its table names it: reopened)
            _write_defects(result["defects"], target)
            # (the reader's advice on stacks is the CLI's, a batch analyses every frame; a
            # pixel size the user gave makes the file's lack of one moot)
            # (a row names its image: the reader's "name: " before a sentence is left out, the
            # terminal said "scan.tif: scan: no pixel size in the file")
            said = [m.removeprefix(f"{img.name}: ") for m in img.messages
                    if STACK_NOTE not in m and not (opts.pixel_size_nm is not None
                                                    and m == no_pixel_size_message(img.name))]
            rows.append(_result_row(item, frame, opts, result, said + notes, t0))
        except AtomDefectError as exc:
            rows.append(_error_row(item, frame, opts, str(exc), t0))
        except Exception as exc:  # noqa: BLE001
            rows.append(_error_row(item, frame, opts,
                                   f"Unexpected error ({type(exc).__name__}: {exc}).", t0))
        t0 = time.perf_counter()  # the first frame's time includes reading the file
    return rows


# ------------------------------------------------------------------------------ driver side

def read_summary(out: Path) -> pd.DataFrame:
    """The summary of an earlier run in ``out`` (empty if there is none).

    Raises
    ------
    AtomDefectError
        If ``summary.csv`` exists but is not a batch summary (it is then left untouched).
    """
    path = out / SUMMARY_NAME
    if not path.exists():
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    try:
        table = pd.read_csv(path, dtype={"image": str, "csv": str, "status": str, "error": str,
                                         "notes": str, "overlaps": str},
                            keep_default_na=False,
                            na_values={c: [""] for c in summary_columns(ALL_CLASS_NAMES)
                                       if c not in ("image", "csv", "status", "error", "notes",
                                                    "overlaps")})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise AtomDefectError(f"{path} is not a batch summary ({exc}); choose another --out "
                              "folder.") from exc
    missing = [c for c in ("image", "frame", "csv", "status") if c not in table.columns]
    if missing:
        raise AtomDefectError(f"{path} is not a batch summary (no {', '.join(missing)} column); "
                              "choose another --out folder.")
    try:
        table["frame"] = table["frame"].astype("Int64")
    except (ValueError, TypeError) as exc:
        raise AtomDefectError(f"{path} is not a batch summary (its frame column is not whole "
                              "numbers); choose another --out folder.") from exc
    return table


def operating_point_text(op: dict | None, classes: tuple[str, ...]) -> str:
    """The summary's ``operating_point``: ``"neutral"``, or the thresholds as
    :func:`~.decision.format_operating_point` writes them."""
    from .decision import format_operating_point, is_neutral

    return "neutral" if not op or is_neutral(op) else format_operating_point(op, classes)


def check_same_analysis(previous: pd.DataFrame, out: Path, material: str,
                        classes: tuple[str, ...], model: str | None,
                        operating_point: str | None = None,
                        pixel_size_nm: float | None = None) -> None:
    """Raise one sentence when the finished images of ``out``'s summary were analysed otherwise
    (another material, other classes — other substituents —, another ``model`` when one is
    named, another ``operating_point``, :func:`operating_point_text`, or another typed
    ``pixel_size_nm`` — one given now and not then, or then and not now): rerunning skips them,
    and the folder would mix two analyses. (Summaries of earlier versions, without an
    ``operating_point`` column, are not checked for it.)"""
    done = previous[previous["status"] == "ok"] if "status" in previous else previous.iloc[:0]
    if done.empty:
        return
    was: list[str] = []
    if "material" in done and set(done["material"].astype(str)) - {material}:
        was.append("material " + "/".join(sorted(set(done["material"].astype(str)))))
    old_classes = _row_classes(done)
    if old_classes and set(old_classes) != set(classes):
        was.append("classes " + ", ".join(old_classes))
    if model is not None and "model" in done and set(done["model"].astype(str)) - {str(model)}:
        was.append("model " + "/".join(sorted(set(done["model"].astype(str)))))
    if operating_point is not None and "operating_point" in done:
        earlier = set(done["operating_point"].dropna().astype(str)) - {""}
        if earlier - {operating_point}:
            was.append("operating point " + " / ".join(sorted(earlier)))
    if "pixel_size_source" in done and "pixel_size_nm" in done:
        typed = done["pixel_size_source"].astype(str) == "user"
        values = sorted({f"{float(v):.6g}" for v in done.loc[typed, "pixel_size_nm"]})
        now = None if pixel_size_nm is None else f"{float(pixel_size_nm):.6g}"
        if (now is None and values) or (now is not None and (not typed.all() or values != [now])):
            was.append("pixel size " + ("/".join(values) + " nm typed" if values
                                        else "from the files or the lattice"))
    if was:
        raise AtomDefectError(
            f"{out} holds {len(done)} results of another analysis ({'; '.join(was)}); a rerun "
            "skips finished images, so the folder would mix two analyses: choose another --out "
            "(or delete those results).")


def _finished(previous: pd.DataFrame, out: Path) -> dict[str, dict]:
    """Earlier rows by image path, with whether the whole file is done and which frames are."""
    state: dict[str, dict] = {}
    for row in previous.to_dict("records"):
        frame = None if pd.isna(row["frame"]) else int(row["frame"])
        row["frame"] = frame
        ok = row["status"] == "ok" and bool(row["csv"]) and (out / row["csv"]).is_file()
        s = state.setdefault(row["image"], {"rows": [], "all_ok": True, "done": set()})
        s["rows"].append(row)
        s["all_ok"] &= ok
        if ok and frame is not None:
            s["done"].add(frame)
    return state


def _row_classes(table: pd.DataFrame) -> list[str]:
    """Classes with per-class columns in ``table`` (rows kept from an earlier run), in order."""
    return [c[2:] for c in table.columns if c.startswith("n_") and c not in _HEAD_COLUMNS]


def write_summary(rows: dict, out: Path,
                  classes: tuple[str, ...] = LEGACY_CLASSES) -> pd.DataFrame:
    """Write ``summary.csv`` atomically from rows keyed by ``(image, frame)``; return the table.

    Per-class columns: the run's ``classes``, then any other class of rows kept from an earlier
    run (so that their counts are not lost).
    """
    from ..io.table import write_csv_atomic

    table = pd.DataFrame(list(rows.values()))
    extra = tuple(c for c in _row_classes(table) if c not in classes)
    columns = summary_columns(tuple(classes) + extra)
    for c in columns:
        if c not in table.columns:
            table[c] = np.nan
    table = table[columns]
    table["frame"] = table["frame"].astype("Int64")
    table = table.sort_values(["image", "frame"], na_position="first", kind="stable")
    table = table.reset_index(drop=True)
    write_csv_atomic(table, out / SUMMARY_NAME, float_format="%.6g")
    return table


def _remove_stale_parts(out: Path, bases: list[str]) -> None:
    """Delete temporary files of an interrupted earlier run (``.NAME.*.part``) for our outputs."""
    for base in bases:
        base = glob.escape(base)
        for pattern in (f".{base}.csv.*.part", f".{base}_f[0-9][0-9][0-9][0-9].csv.*.part"):
            for part in out.glob(pattern):
                part.unlink(missing_ok=True)


def _check_options(material: str, model: str | None, device: str,
                   substituents: str | list[str] | tuple[str, ...] | None = None):
    """Fail before the batch starts for a bad material, model or substituent (not once per image).

    Returns the material's name and the run's :class:`~.decision.RunClasses`.
    """
    from ..models.registry import resolve_model
    from .decision import check_run

    name, run = check_run(material, model, substituents)
    if run.message:
        info = resolve_model(model, name, substituents)
        warnings.warn(f"Model {info.name}: {run.message[0].lower()}{run.message[1:]}",
                      UserWarning, stacklevel=3)
    if (device or "auto").lower() not in ("auto", "cpu", "cuda", "mps") \
            and not str(device).startswith("cuda:"):
        raise AtomDefectError(f"Unknown device {device!r}; choose one of auto, cpu, cuda, mps.")
    return name, run


def _check_local_device(device: str) -> None:
    """A local cluster's workers see this machine's devices: check the device here, once."""
    from ..device import select_device

    try:
        select_device(device)
    except ValueError as exc:
        raise AtomDefectError(str(exc)) from exc


def _client(workers: int | None, scheduler: str | None, processes: bool, n_tasks: int):
    """A dask client: to ``scheduler`` if given, else to a new LocalCluster (closed by caller).

    A local cluster gets ``workers`` (default :func:`default_workers`) workers, never more than
    there are files to do.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise AtomDefectError(f"Could not connect to the dask scheduler at {scheduler} "
                                  f"({exc}).") from exc
    n = max(1, min(workers or default_workers(), n_tasks))
    # A free dashboard port: runs side by side. The log lines of our own cluster's workers are
    # dask's internals, not the user's business (on Ctrl-C each cancelled task logged "... ended
    # with CancelledError", and a loaded machine's shutdown a heartbeat traceback at ERROR): a
    # file that fails, or whose worker dies, is reported in the summary. A cluster of the user's
    # own (--scheduler) logs as it is configured.
    with _interrupt_ignored_by_children():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                               dashboard_address=":0", silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


@contextlib.contextmanager
def _interrupt_ignored_by_children() -> Iterator[None]:
    """Start worker processes that ignore Ctrl-C (an ignored signal stays ignored in a child).

    A terminal's Ctrl-C reaches every process of the command: each worker then printed a
    KeyboardInterrupt traceback while the batch itself was stopping them in order and saying
    what was finished. Only from the main thread (the only one that may set signal handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def default_workers() -> int:
    """Number of local workers by default: one per core, at most eight.

    Each worker then gets ``cores // workers`` torch threads. Lattice finding is single-threaded,
    so on two cores two one-thread workers beat one two-thread worker (docs/benchmarks.md).
    """
    return max(1, min(_available_cores(), 8))


def _threads_by_host(client: Any) -> dict[str, int]:
    """Total task threads of the cluster's workers on each host."""
    hosts: dict[str, int] = {}
    for w in client.scheduler_info().get("workers", {}).values():
        hosts[w["host"]] = hosts.get(w["host"], 0) + int(w.get("nthreads", 1))
    return hosts


def iter_batch(inputs: list[str], out: str | os.PathLike, material: str = "MoS2",
               pixel_size_nm: float | None = None, model: str | None = None,
               device: str = "auto", workers: int | None = None, scheduler: str | None = None,
               processes: bool = True,
               operating_point: str | dict[str, float] | None = None, *,
               substituents: str | list[str] | tuple[str, ...] | None = None) -> Iterator[dict]:
    """Run a batch step by step, yielding progress; the last item holds the summary.

    Parameters are those of :func:`batch`.

    Yields
    ------
    dict
        ``{"step": "batch", "done_files": int, "total_files": int, "skipped": int, "message": str}``
        once before the first file (with ``notes``: sentences on the inputs, e.g. renderings
        left out of a folder, :func:`expand_inputs`) and after each file, then
        ``{"done": True, "summary": DataFrame, "out": Path, "skipped": int, "analysed": list}``
        (``analysed``: the inputs analysed in this run, as the summary's ``image`` names them).
    """
    from .decision import parse_operating_point

    if workers is not None and workers < 1:
        raise AtomDefectError(f"--workers must be at least 1, not {workers}.")
    material, run = _check_options(material, model, device, substituents)
    op = parse_operating_point(operating_point, run.classes)  # a bad value stops before any work
    notes: list[str] = []
    items = plan_items(expand_inputs(list(inputs), notes))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AtomDefectError(f"{out} is a file, not a folder; choose another --out.")
    try:  # writable before any image is analysed (not "cannot write" after the last one)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise AtomDefectError(f"Cannot write results in {out}: {exc.strerror or exc}; choose "
                              "another --out.") from exc
    summary_before = read_summary(out)
    check_same_analysis(summary_before, out, material, tuple(run.classes), model,
                        operating_point_text(op, tuple(run.classes)), pixel_size_nm)
    previous = _finished(summary_before, out)
    _remove_stale_parts(out, [Path(SUMMARY_NAME).stem] + [i.base for i in items])
    rows: dict[tuple, dict] = {}
    for state in previous.values():
        for row in state["rows"]:
            rows[(row["image"], row["frame"])] = row
    todo = [i for i in items if not (i.path in previous and previous[i.path]["all_ok"])]
    skipped = len(items) - len(todo)
    total = len(items)
    yield {"step": "batch", "done_files": skipped, "total_files": total, "skipped": skipped,
           "message": f"{total} files, {skipped} already done", "notes": notes}
    if todo and not scheduler:
        _check_local_device(device)
    if todo:
        client, cluster = _client(workers, scheduler, processes, len(todo))
        try:
            yield from _run_tasks(client, todo, previous, rows, out, skipped, total,
                                  BatchOptions(str(out.resolve()), material, pixel_size_nm, model,
                                               device, _threads_by_host(client), op,
                                               run.all_substituents, run.classes))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    summary = write_summary(rows, out, run.classes)
    yield {"done": True, "summary": summary, "out": out, "skipped": skipped,
           "analysed": [str(i.path) for i in todo]}


def _run_tasks(client: Any, todo: list[BatchItem], previous: dict[str, dict], rows: dict[tuple, dict],
               out: Path, skipped: int, total: int, opts: BatchOptions) -> Iterator[dict]:
    """Submit one task per file and merge results into ``rows`` (summary rewritten each time)."""
    from distributed import as_completed

    futures = {}
    for item in todo:
        done = frozenset(previous.get(item.path, {}).get("done", ()))
        fut = client.submit(process_file, item, opts, done, pure=False)
        futures[fut] = item
    finished = skipped
    for fut in as_completed(futures):
        item = futures[fut]
        try:
            new_rows = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. the worker died on this file
            new_rows = [{"image": item.path, "frame": None, "csv": "", "status": "error",
                         "error": f"The worker processing it failed ({type(exc).__name__}: {exc}).",
                         "material": opts.material}]
        keep = previous.get(item.path, {}).get("done", set())
        for key in [k for k in rows if k[0] == item.path and k[1] not in keep]:
            del rows[key]
        for r in new_rows:
            rows[(r["image"], r["frame"])] = r
        write_summary(rows, out, opts.classes)
        finished += 1
        bad = [r for r in new_rows if r["status"] != "ok"]
        yield {"step": "batch", "done_files": finished, "total_files": total, "skipped": skipped,
               "message": f"{Path(item.path).name}: " + (bad[0]["error"] if bad else
                                                       f"{sum(r['n_defects'] for r in new_rows)} "
                                                       "defects")}


def batch(inputs: list[str], out: str | os.PathLike, material: str = "MoS2",
          pixel_size_nm: float | None = None, model: str | None = None, device: str = "auto",
          workers: int | None = None, scheduler: str | None = None, processes: bool = True,
          on_progress: Callable[[dict], None] | None = None,
          operating_point: str | dict[str, float] | None = None, *,
          substituents: str | list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """Detect defects in many images on dask.distributed; one CSV per image plus a summary.

    Parameters
    ----------
    inputs : list of str
        Image files, folders (their supported images) and glob patterns (``**`` recurses).
    out : str or path
        Output folder: ``NAME.csv`` per image (``NAME_f0003.csv`` per frame of a stack) and
        ``summary.csv``. Images already done there (CSV present, summary ``ok``) are skipped.
    material : str
        Material preset of all images.
    pixel_size_nm : float, optional
        Pixel size for every image; default: each file's own, else calibrated from the lattice.
    model : str, optional
        Model name or folder (default: the bundled model of ``material``, else ``mos2-default``).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``, resolved on each worker.
    workers : int, optional
        Worker processes of the local cluster (default :func:`default_workers`); each runs one
        image at a time with ``cores // workers`` torch threads.
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``); then ``workers`` is ignored.
    processes : bool
        Local cluster with worker processes (default) or threads in this process (then this
        process's torch thread count is set once, to ``cores // workers``, and stays so).
    on_progress : callable, optional
        Called with each progress dict (see :func:`iter_batch`).
    operating_point : str or dict, optional
        Per-class operating point for every image (see
        :func:`~.decision.parse_operating_point`; default neutral).
    substituents : str or list of str, optional
        Substituents to look for (see :func:`~.detect.detect`); default: the material's defaults
        that the model knows.

    Returns
    -------
    DataFrame
        The summary (also written to ``out/summary.csv``): one row per image or frame with
        ``status`` ``ok``/``error``, the error sentence, pixel size and its source, unit cells,
        counts and densities per class of the run (see :func:`summary_columns`), and time.

    Raises
    ------
    AtomDefectError
        If an input does not exist, the material, model or a substituent is unknown, or the
        scheduler cannot be reached. A file that cannot be analysed is not an exception: it is an error row.
    """
    from ..progress import run_to_end

    return run_to_end(iter_batch(inputs, out, material, pixel_size_nm, model, device, workers,
                                 scheduler, processes, operating_point, substituents=substituents),
                      on_progress)["summary"]


__all__ = ["SUMMARY_COLUMNS", "summary_columns", "batch", "expand_inputs", "iter_batch", "process_file"]
