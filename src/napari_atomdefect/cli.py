"""Command-line interface: ``atomdefect simulate | lattice | demo | detect | evaluate | batch |
models | train-* | calibrate-model | view``.

Every sub-command runs the napari-free core; only ``view`` starts napari.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from .core.errors import AtomDefectError
from .core.progress import run_to_end


class _ArgumentParser(argparse.ArgumentParser):
    """Argument errors become one sentence and exit status 2 (see :func:`main`), no usage dump."""

    def error(self, message: str):
        raise _UsageError(f"{message.rstrip('.')} (see '{self.prog} --help').")


class _UsageError(AtomDefectError):
    """A command-line argument is wrong."""


def _checked(convert: Callable[[str], float], ok: Callable[[float], bool], need: str
             ) -> Callable[[str], float]:
    """An argparse ``type``: ``convert`` the text (a number, or a whole number for ``int``), then
    refuse a value that is not ``ok`` with "must {need}, not TEXT"."""
    what = "a whole number" if convert is int else "a number"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must {need}, not {text}")
        return value
    return parse


#: Share of the metal sites holding the other metal when ``simulate --substituents`` names it
#: (``O,W`` for MoS2) without ``--metal-alloy``: dilute, as a grown layer's stray W.
NAMED_METAL_SHARE = 0.03
#: Share of the pristine chalcogen columns holding a host metal atom when ``simulate
#: --substituents`` names the host metal (``O,Mo`` for MoS2: antisites).
NAMED_ANTISITE_SHARE = 0.01
#: Smallest side of a simulated image (pixels).
MIN_SIMULATED_SIDE = 32

_positive_float = _checked(float, lambda v: v > 0, "be a positive number")
_positive_int = _checked(int, lambda v: v >= 1, "be at least 1")
_fraction = _checked(float, lambda v: 0.0 <= v <= 1.0, "lie between 0 and 1")
_image_side = _checked(int, lambda v: v >= MIN_SIMULATED_SIDE,
                       f"be at least {MIN_SIMULATED_SIDE} pixels (a few unit cells)")
_dose = _checked(float, lambda v: v >= 0 and math.isfinite(v),
                 "be a dose of 0 (noise-free) or more")


def _pixel_size(text: str) -> float:
    """A ``--pixel-size-nm`` value: a plausible number of nm per pixel."""
    from .core.io.validate import check_pixel_size

    try:
        return check_pixel_size(_positive_float(text), "pixel size")
    except AtomDefectError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _alloy(text: str) -> tuple[str, float]:
    """A ``--alloy`` value: ``D:FRACTION``, a substituent and its per-atom fraction in (0, 1]."""
    name, sep, value = text.partition(":")
    try:
        fraction = float(value)
    except ValueError:
        fraction = float("nan")
    if not sep or not name.strip() or not 0 < fraction <= 1:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not SUBSTITUENT:FRACTION with a fraction in (0, 1], e.g. Se:0.3")
    return name.strip().capitalize(), fraction


def _truth_summary(classes: list[str], substituents: tuple[str, ...], adjective: str = "") -> str:
    """``"54 defects"``, or ``"48 defects and 6 alloying substitutions"`` for a table of true
    sites holding substitutions by a chosen alloying chalcogen or the other metal of a Mo/W alloy
    (the alloy's composition, not defects)."""
    from .core.detect.image_fit import alloying_count

    n_alloy = alloying_count(classes, substituents)
    n = len(classes) - n_alloy
    text = f"{n} {adjective}defect{'' if n == 1 else 's'}"
    return text + (f" and {n_alloy} alloying substitution{'' if n_alloy == 1 else 's'}"
                   if n_alloy else "")


def _metal_alloy(text: str) -> float:
    """A ``--metal-alloy`` value: the other metal's share of the metal sites, in [0, 1)."""
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0 <= share < 1:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a share of the metal sites in [0, 1), e.g. 0.3")
    return share


def _region(text: str) -> tuple[int, int, int, int]:
    """A ``--region`` value: ``ROW0:ROW1,COL0:COL1`` pixel bounds (end excluded)."""
    try:
        rows, cols = text.split(",")
        r0, r1 = (int(v) for v in rows.split(":"))
        c0, c1 = (int(v) for v in cols.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not ROW0:ROW1,COL0:COL1 (pixels, e.g. 0:512,0:250)") from None
    if r1 <= r0 or c1 <= c0 or min(r0, c0) < 0:
        raise argparse.ArgumentTypeError(
            f"'{text}': each range must start at 0 or more and end after it starts")
    return r0, r1, c0, c1


def _operating_point(text: str) -> str:
    """A ``--operating-point`` value: ``CLASS=VALUE`` pairs, each value strictly in (0, 1).

    The form and the values are checked here; the class names are checked by the detection
    against the classes of its run (a class the run cannot produce stops it before any work).
    """
    from .core.detect.decision import parse_operating_point

    try:
        parse_operating_point(text, None)
    except AtomDefectError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    return text


_HOST_WORDS = {"S": "sulfides (MoS2, WS2)", "Se": "selenides (MoSe2, WSe2)"}


def _substituents_help() -> str:
    """Help of ``--substituents``: the choices and defaults per host chalcogen."""
    from .core.materials.columns import DEFAULT_SUBSTITUENTS, SUPPORTED_SUBSTITUENTS

    per_host = "; ".join(
        f"{_HOST_WORDS.get(x, x + '-based materials')}: {', '.join(SUPPORTED_SUBSTITUENTS[x])} "
        f"(default {', '.join(DEFAULT_SUBSTITUENTS[x])})" for x in SUPPORTED_SUBSTITUENTS)
    return ("substituent elements to look for, comma-separated, e.g. Se,O; 'none' for vacancies "
            f"only. {per_host}. The other metal of a Mo/W alloy too: W in MoS2/MoSe2, Mo in "
            "WS2/WSe2 (its columns called W_Mo / Mo_W from their brightness); and the host's own "
            "metal for its antisites (Mo in MoS2: S2 columns holding a Mo atom called Mo_S2, "
            "from their brightness; not beside Se). The default is the "
            "material's default that the model knows; a substituent the model was not trained "
            "for is an error")


def _progress_printer(args: argparse.Namespace):
    """``--verbose``: a callback printing each progress step's message (a training step without
    one prints nothing) — not the model-fit sentences, which the command prints once at the end
    with the other notes."""
    if not getattr(args, "verbose", False):
        return None
    return lambda item: (None if item.get("step") == "fit" or not item.get("message")
                         else print(item["message"], file=sys.stderr))


def _quiet_calibration(func, *args, **kwargs):
    """Run ``func``; its calibration and model-fit warnings are printed as plain lines from the
    result's messages by the commands, every other warning still reaches the user."""
    from .core.detect.image_fit import ModelFitWarning
    from .core.lattice.lattice import CalibrationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func(*args, **kwargs)
    for w in caught:
        if not issubclass(w.category, (CalibrationWarning, ModelFitWarning)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .core.io.image import write_tiff
    from .core.io.table import defects_table, write_csv_atomic
    from .core.materials.columns import (
        antisite_chosen,
        metal_substituents,
        parse_substituents,
    )
    from .core.materials.materials import get_material
    from .core.simulate.image import (
        MicroscopeParams,
        random_alloy_fractions,
        simulate_image,
        simulated_substituents,
    )

    params = MicroscopeParams(dose_e_per_A2=None if args.dose <= 0 else args.dose)
    substituents = args.substituents
    fractions = None
    # The other metal and the host metal among the substituents occur too (a trial's
    # "--substituents O,W" had simulated no W, silently): dilute, unless --metal-alloy says more.
    metal_alloy = args.metal_alloy
    if metal_substituents(substituents, args.material) and metal_alloy == 0:
        metal_alloy = NAMED_METAL_SHARE
    antisites = NAMED_ANTISITE_SHARE if antisite_chosen(substituents, args.material) else 0.0
    if args.alloy is not None:
        d, c = args.alloy
        mat = get_material(args.material)
        chosen = simulated_substituents(mat, substituents)
        substituents = ",".join(dict.fromkeys((*chosen, d))) or d
        parse_substituents(substituents, mat)  # one sentence when D is not one of the material's
        fractions = random_alloy_fractions(mat, d, c, substituents)
    sim = simulate_image(args.material, (args.size, args.size), args.pixel_size_nm, params=params,
                         rotation_deg=args.rotation, seed=args.seed, substituents=substituents,
                         defect_fractions=fractions, metal_alloy=metal_alloy,
                         antisites=antisites)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_tiff(out / "image.tif", sim.image, sim.pixel_size_nm)
    write_tiff(out / "image_clean.tif", sim.clean, sim.pixel_size_nm)
    write_csv_atomic(defects_table(sim.defects, sim.pixel_size_nm), out / "defects.csv")
    sites = sim.sites.copy()
    write_csv_atomic(sites, out / "sites.csv")
    (out / "meta.json").write_text(json.dumps(sim.metadata(), indent=2))
    print(f"Simulated {sim.material.name} {args.size}x{args.size} px at {args.pixel_size_nm} nm/px "
          f"with {_truth_summary(list(sim.defects['class']), tuple(sim.substituents))} -> {out}")
    return 0


def _read_image(path: str, args: argparse.Namespace, single: bool = False):
    """:func:`read_image` for a command: its notes once each, as plain lines on stderr (the
    warnings that repeat them are not printed again), without "no pixel size in the file" when
    the user gave one and without the stack note (the command says what to do with a stack).
    ``single``: a stack stops the command with one sentence, before any note is printed."""
    from .core.io.image import ReaderWarning, no_pixel_size_message, read_image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = read_image(path)
    if single and img.is_stack:
        raise AtomDefectError(f"{img.name} is a stack of {img.data.shape[0]} frames; choose one "
                              "with --frame N, or analyse all of them with --all-frames.")
    for w in caught:
        if not (issubclass(w.category, ReaderWarning) and str(w.message) in img.messages):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    given = getattr(args, "pixel_size_nm", None) is not None
    whole = getattr(args, "region", None) is None
    for msg in img.messages:
        if given and msg == no_pixel_size_message(img.name):
            continue
        if whole and "detection refuses the image" in msg:
            continue  # the refusal itself comes next, in one sentence
        if img.is_stack and msg.startswith(f"{img.name}: a stack of"):
            continue
        print(msg, file=sys.stderr)
    return img


def _load_frame(path: str, frame: int | None, args: argparse.Namespace | None = None):
    img = _read_image(path, args or argparse.Namespace())
    data = img.data
    if img.is_stack:
        if frame is None:
            raise AtomDefectError(f"{img.name} is a stack of {data.shape[0]} frames; choose one "
                                  "with --frame N.")
        if not 0 <= frame < data.shape[0]:
            raise AtomDefectError(f"--frame {frame} is out of range (0–{data.shape[0] - 1}).")
        data = data[frame]
    elif frame not in (None, 0):  # (frame 0 of a single image is the image)
        raise AtomDefectError(f"{img.name} is a single image, not a stack: --frame {frame} does "
                              "not exist (leave --frame out).")
    return img, data


def _lattices_for(args: argparse.Namespace, one_grain: bool = False):
    """The image, the frame and the lattices of its grains (the first holds the calibration;
    ``one_grain``: the image's one lattice, as the Fine-tune widget finds it)."""
    from .core.lattice.grains import find_grains
    from .core.lattice.lattice import find_lattice

    img, data = _load_frame(args.image, args.frame, args)
    if args.pixel_size_nm is not None:
        px, source = args.pixel_size_nm, "user"
    else:
        px, source = img.pixel_size_nm, "file"
    lattices = _quiet_calibration(find_lattice if one_grain else find_grains, data,
                                  args.material, pixel_size_nm=px, calibration=source)
    return img, data, [lattices] if one_grain else lattices


def _cmd_lattice(args: argparse.Namespace) -> int:
    from .core.lattice.grains import orientation_deg

    _, _, lattices = _lattices_for(args)
    lattice = lattices[0]
    for msg in lattice.messages:
        print(msg, file=sys.stderr)
    if args.json:
        out = lattice.to_dict(sites=True)
        if len(lattices) > 1:  # the other grains, each on its own lattice
            out["grains"] = [la.to_dict(sites=True) for la in lattices[1:]]
        print(json.dumps(out))
        return 0
    for k, grain in enumerate(lattices):
        d = grain.to_dict(sites=False)
        if len(lattices) > 1:
            print(f"grain {k}:")
        print(f"a1 = {d['a1_px'][0]:.3f}, {d['a1_px'][1]:.3f} px (row, col)")
        print(f"a2 = {d['a2_px'][0]:.3f}, {d['a2_px'][1]:.3f} px (row, col)")
        print(f"pixel size = {d['pixel_size_nm']:.5f} nm ({d['calibration']})")
        if d["calibration"] == "lattice" and k == 0:
            print(f"  (from the {grain.material.name} lattice constant, {grain.material.a_nm:.4f} "
                  "nm; for an alloy, `atomdefect detect --substituents` refines it by Vegard's "
                  "law once the columns are classified)")
        print(f"lattice constant = {grain.a_px:.2f} px = {grain.a_px * grain.pixel_size_nm:.4f} "
              f"nm, orientation {orientation_deg(grain):.1f}° (modulo 60°, from the column axis)")
        print(f"unit cells = {d['n_cells']}, metal sites = {len(grain.metal_sites_px)}, "
              f"chalcogen sites = {len(grain.chalcogen_sites_px)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Headless run of the pipeline on the built-in sample (or an image): writes result files."""
    import numpy as np
    from skimage.io import imsave

    from .core.cells.tiles import tile_cells
    from .core.io.image import write_tiff
    from .core.io.preview import legend_text, overlay, to_display
    from .core.io.table import defects_table, sites_table, with_run_columns, write_csv_atomic
    from .core.lattice.lattice import find_lattice
    from .core.simulate.image import simulate_image

    out = Path(args.out)
    if args.image:  # (read before the folder is made: a bad image leaves no empty folder)
        img, data = _load_frame(args.image, args.frame, args)
        px, source, material = img.pixel_size_nm, "file", args.material
        if args.pixel_size_nm is not None:
            px, source = args.pixel_size_nm, "user"
    out.mkdir(parents=True, exist_ok=True)
    if not args.image:
        sim = simulate_image("MoS2", 512, 0.012, seed=0)
        data, px, source, material = sim.image, sim.pixel_size_nm, "file", "MoS2"
        write_tiff(out / "sample.tif", data, px)
        write_csv_atomic(defects_table(sim.defects, px), out / "sample_truth.csv")
        print(f"Sample: simulated MoS2, 512x512 px, {len(sim.defects)} true defects "
              f"-> {out / 'sample.tif'}")
    lattice = _quiet_calibration(find_lattice, data, material, pixel_size_nm=px,
                                 calibration=source)
    for msg in lattice.messages:
        print(msg)
    (out / "lattice.json").write_text(json.dumps(lattice.to_dict(sites=True)))
    write_csv_atomic(sites_table(lattice), out / "sites.csv")
    tiles = tile_cells(data, lattice, min_inside=1.0)
    np.savez_compressed(out / "cells.npz", tiles=tiles.tiles, index=tiles.index,
                        affine=tiles.affine)
    pic = overlay(data, {"metal": lattice.metal_sites_px,
                         "chalcogen": lattice.chalcogen_sites_px}, radius=3, zoom=2)
    imsave(out / "lattice.png", pic, check_contrast=False)
    n = min(len(tiles), 64)
    if n:
        side = int(np.ceil(np.sqrt(n)))
        s = tiles.spec.size_px
        mont = np.zeros((side * s, side * s), np.float32)
        for k in range(n):
            r, c = divmod(k, side)
            mont[r * s:(r + 1) * s, c * s:(c + 1) * s] = to_display(tiles.tiles[k])
        imsave(out / "cells.png", (mont * 255).astype(np.uint8), check_contrast=False)
    print(f"Lattice: {lattice.n_cells} unit cells, a = {lattice.a_px:.2f} px, pixel size "
          f"{lattice.pixel_size_nm:.5f} nm ({lattice.calibration}); {len(tiles)} complete cell "
          "tiles.")
    from .core.detect.detect import iter_detect

    result = run_to_end(iter_detect(data, lattice.pixel_size_nm, material, None, "auto", "user",
                                    lattice=lattice, substituents=args.substituents))
    table = result["defects"]
    write_csv_atomic(with_run_columns(table), out / "defects.csv")
    counts = table["class"].value_counts().to_dict()
    from .core.detect.image_fit import calls_summary

    found = calls_summary(list(table["class"]), tuple(result["substituents"]))
    listed = ", ".join(f"{k} {v}" for k, v in _in_class_order(counts, result["classes"]))
    print(f"Detected {found} with model {result['model']} on {result['device']}: "
          f"{listed or 'none'}.")
    imsave(out / "defects.png", overlay(data, {
        c: table[table["class"] == c][["y_px", "x_px"]].to_numpy() for c in counts},
        radius=6, zoom=2), check_contrast=False)
    if counts:
        print(f"defects.png: {legend_text(sorted(counts))}, in the colours of the napari layer.")
    if not args.image:
        from .core.detect.evaluate import score

        s = score(table, sim.defects, 0.08 / sim.pixel_size_nm)
        print("Against the sample's ground truth (F1, matching radius 0.08 nm): "
              + ", ".join(f"{c} {s.loc[c, 'f1']:.2f}" for c in s.index))
    sample = "" if args.image else "sample.tif, sample_truth.csv, "
    print(f"Results in {out}/ ({sample}defects.csv, defects.png, lattice.json, sites.csv, "
          "cells.npz, lattice.png, cells.png)")
    return 0


def _detect_input(args: argparse.Namespace):
    """The image of ``atomdefect detect`` and the frame (or stack, with ``--all-frames``) to
    analyse."""
    if args.all_frames and args.frame is not None:
        raise _UsageError("--all-frames and --frame exclude each other; give one of them "
                          "(see 'atomdefect detect --help').")
    if args.all_frames and args.region is not None:
        raise _UsageError("--region analyses one frame; crop the movie, or give --frame N "
                          "(see 'atomdefect detect --help').")
    if args.memory < 0:  # before the long detection
        raise _UsageError(f"--memory is a number of frames (0 or more), not {args.memory}.")
    if args.min_track_frames < 1:
        raise _UsageError(f"--min-track-frames is a number of frames (1 or more), not "
                          f"{args.min_track_frames}.")
    if args.min_track_frames > 1 and not args.all_frames:
        raise _UsageError("--min-track-frames keeps the defects seen in several frames of a "
                          "movie; give --all-frames with it.")
    from .core.materials.columns import parse_substituents
    from .core.materials.materials import get_material

    # A misspelt material or substituent is said before the file is read.
    parse_substituents(args.substituents, get_material(args.material))
    if args.frame is not None:
        return _load_frame(args.image, args.frame, args)
    img = _read_image(args.image, args, single=not args.all_frames)
    return img, img.data


def _write_keeping_previous(table, out: str) -> None:
    """Write the defect table to ``out``, saying when the table it replaced is kept as
    ``<name>.previous.csv`` (:func:`~.core.io.table.write_keeping_previous`)."""
    from .core.io.table import write_keeping_previous

    name = Path(out).name
    existed = Path(out).is_file()
    try:
        previous = write_keeping_previous(table, out)
    except OSError as exc:  # (the file at --out is as it was)
        why = ("the table it would replace could not be kept beside it" if existed
               else "its folder cannot be written to")  # (a folder gone during the run: a trial)
        raise AtomDefectError(f"{name} was not written: {why} ({exc.strerror or exc}); give "
                              "another --out.") from exc
    if previous is not None:
        print(f"atomdefect: the table {name} replaced is kept as {previous.name}.",
              file=sys.stderr)


def _check_run_options(args: argparse.Namespace) -> None:
    """Raise for an unknown material, model or substituent, or an operating point of a class
    the run cannot produce, before the image is read (its notes would come first)."""
    from .core.detect.decision import check_run, parse_operating_point

    _, run = check_run(args.material, args.model, args.substituents)
    parse_operating_point(args.operating_point, run.classes)


def _cmd_detect(args: argparse.Namespace) -> int:
    from .core.detect.detect import iter_detect
    from .core.device import select_device
    from .core.io.table import (
        check_writable,
        replace_refusal,
        with_run_columns,
    )

    check_writable(args.out)  # before the long detection: no result is lost at the end
    refusal = replace_refusal(args.out)
    if refusal:  # corrections by hand, labels or another file are never replaced
        raise AtomDefectError(f"{refusal}: give another --out.")
    select_device(args.device)
    _check_run_options(args)  # a bad model or operating point said before any note on the image
    img, data = _detect_input(args)
    if args.pixel_size_nm is not None:
        px, source = args.pixel_size_nm, "user"
    else:
        px, source = img.pixel_size_nm, "file"
    if args.all_frames:
        return _detect_movie(args, data, px, source, img.name)
    if args.region is not None:
        r0, r1, c0, c1 = args.region
        h, w = data.shape[-2:]
        if r0 >= h or c0 >= w or r1 <= 0 or c1 <= 0:
            raise AtomDefectError(f"--region {r0}:{r1},{c0}:{c1} lies outside the image "
                                  f"({h} x {w} px: rows 0:{h}, columns 0:{w}).")
        if min(r0, c0) < 0 or r1 > h or c1 > w:
            print(f"--region {r0}:{r1},{c0}:{c1} reaches beyond the image ({h} x {w} px): "
                  f"analysed up to its edge (rows {max(r0, 0)}:{min(r1, h)}, columns "
                  f"{max(c0, 0)}:{min(c1, w)}).", file=sys.stderr)
    result = _quiet_calibration(
        run_to_end, iter_detect(data, px, args.material, args.model, args.device, source,
                                operating_point=args.operating_point,
                                substituents=args.substituents, region=args.region),
        _progress_printer(args))
    table = result["defects"]
    # (the image named as the reader names it — napari's layer name, batch's column too)
    _write_keeping_previous(with_run_columns(table, image=img.name), args.out)
    from .core.detect.image_fit import calls_summary

    counts = table["class"].value_counts().to_dict()
    listed = ", ".join(f"{k}: {v}" for k, v in _in_class_order(counts, result["classes"]))
    subs = ", ".join(table.attrs["substituents"]) or "none"
    what = calls_summary(list(table["class"]), tuple(table.attrs["substituents"]))
    n_cells = table.attrs.get("n_cells", result["lattice"].n_cells)  # every grain's
    print(f"{what} in {n_cells} unit cells "
          f"({listed or 'none'}); model "
          f"{result['model']} on {result['device']}, substituents {subs}"
          + (f", operating point {table.attrs['operating_point']}" if args.operating_point
             else "") + f" -> {args.out}", flush=True)
    # The notes after the outcome (a new user read four to six paragraphs before it): the
    # calibration first, then whether the model fits, each a line of its own.
    for msg in table.attrs["messages"]:
        print(msg, file=sys.stderr)
    return 0


def _in_class_order(counts: dict, classes) -> list[tuple[str, int]]:
    """``counts`` per class in the run's class order (the Detect dock's and the legend's;
    classes it does not list last, by name)."""
    order = {c: k for k, c in enumerate(classes)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def _detect_movie(args: argparse.Namespace, data, px, source, image_name: str) -> int:
    """``detect --all-frames``: every frame, lattice drift followed, defects linked into tracks;
    one CSV with ``frame`` and ``track_id``."""
    from .core.detect.movie import (
        changing_class_message,
        iter_detect_frames,
        link_tracks,
        persistent_defects,
    )
    from .core.io.table import with_run_columns

    result = _quiet_calibration(
        run_to_end, iter_detect_frames(data, px, args.material, args.model, args.device, source,
                                    operating_point=args.operating_point,
                                    substituents=args.substituents),
        _progress_printer(args))
    table = link_tracks(result["defects"], search_range=args.search_range, memory=args.memory)
    for msg in [*table.attrs["messages"], changing_class_message(table)]:
        if msg:
            print(msg, file=sys.stderr)
    kept = ""
    if args.min_track_frames > 1:
        n_all = len(table)
        table = persistent_defects(table, args.min_track_frames)
        kept = (f" (of {n_all}: those seen in at least {args.min_track_frames} frames, "
                "--min-track-frames)")
    _write_keeping_previous(with_run_columns(table, image=image_name), args.out)
    n_frames = len(result["frames"])
    lengths = table.groupby("track_id").size() if len(table) else table["track_id"]
    drift = result["drift_px"][-1] if n_frames else (0.0, 0.0)
    from .core.detect.image_fit import calls_summary

    # (an alloy's substitutions counted apart, as the Detect dock does: "718 defects" had held
    # 491 Se_S and Se2_S2)
    what = calls_summary(list(table["class"].astype(str)), tuple(table.attrs["substituents"]))
    print(f"{what}{kept} in {n_frames} frames, {int((lengths >= 2).sum())} tracks "
          f"over two or more frames (lattice drift y {drift[0]:+.1f}, x {drift[1]:+.1f} px by "
          f"the last frame); model {result['model']} on {result['device']} -> {args.out}")
    return 0


#: Largest matching radius of ``evaluate`` that keeps a match to one column: half the smallest
#: metal–chalcogen distance of the four hosts (a / sqrt(3) = 0.18 nm in MoS2).
MAX_MATCH_RADIUS_NM = 0.09


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .core.detect.evaluate import corrections_needed, located_share, score
    from .core.io.table import pixel_size_from_table, read_defects_csv

    pred, truth = read_defects_csv(args.pred), read_defects_csv(args.truth)
    px = args.pixel_size_nm or pixel_size_from_table(pred) or pixel_size_from_table(truth)
    if px is None:
        raise AtomDefectError("Neither table has nm coordinates: give --pixel-size-nm.")
    if args.radius_nm > MAX_MATCH_RADIUS_NM:
        print(f"atomdefect: a matching radius of {args.radius_nm:g} nm reaches the neighbouring "
              f"columns (0.18 nm apart in MoS2): a call may match a defect next to it; "
              f"{MAX_MATCH_RADIUS_NM:g} nm or less keeps the matches to one column.",
              file=sys.stderr)
    for note in _evaluate_notes(args.pred, args.truth, pred, truth):
        print(f"atomdefect: {note}", file=sys.stderr)
    table = score(pred, truth, args.radius_nm / px)
    if len(pred) >= 5 and len(truth) >= 5 and located_share(pred, truth, args.radius_nm / px) < 0.1:
        print(f"atomdefect: under a tenth of the calls lie within {args.radius_nm:g} nm of a true "
              "defect of any class: are the two tables of the same image, at the same pixel "
              "size?", file=sys.stderr)
    if args.json:
        print(table.to_json(orient="index"))
    else:
        print(f"matching radius {args.radius_nm} nm = {args.radius_nm / px:.2f} px")
        print(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="—"))
        edits = corrections_needed(pred, truth, args.radius_nm / px)
        print(f"corrections needed to reach the truth: {edits['total']} (add {edits['add']}, "
              f"delete {edits['delete']}, reclassify {edits['reclassify']}) for "
              f"{_truth_summary(list(truth['class']), _truth_substituents(truth), 'true ')}")
    return 0


def _truth_substituents(truth) -> tuple[str, ...]:
    """The substituents a truth table was made with: its run's (a reviewed detection table), else
    those its classes hold (the simulator's truth names none: its Te_Se sites had counted as
    defects where ``simulate`` called them alloying substitutions)."""
    from .core.materials.columns import substituents_of

    named = tuple(truth.attrs.get("substituents", ()))
    return named or substituents_of(truth["class"].astype(str))


def _evaluate_notes(pred_path: str, truth_path: str, pred, truth) -> list[str]:
    """Sentences for an evaluation whose tables look mismatched: no class in common (two
    materials?), or confidences in the truth but not in the predictions (swapped?)."""
    from .core.io.table import csv_columns

    notes = []
    shared = set(pred["class"]) & set(truth["class"])
    if len(pred) and len(truth) and not shared:
        notes.append(f"the tables share no class (predictions: {', '.join(sorted(set(pred['class'])))}; "
                     f"truth: {', '.join(sorted(set(truth['class'])))}): of two materials or "
                     "two images? Every score below is 0.")

    if "confidence" in csv_columns(truth_path) and "confidence" not in csv_columns(pred_path):
        notes.append(f"{Path(truth_path).name} has confidences and {Path(pred_path).name} has "
                     "none: are the two swapped? (atomdefect evaluate PREDICTIONS TRUTH)")
    return notes


def _print_training(item: dict) -> None:
    """One line per progress report of a training command."""
    if "message" in item:
        print(item["message"], flush=True)
        return
    losses = ", ".join(f"{k} {item[k]:.4g}" for k in ("loss", "d", "g_adv", "cycle", "identity",
                                                      "cam") if k in item)
    print(f"step {item['step']}/{item['steps']}: {losses} ({item['elapsed_s']:.0f} s, "
          f"~{item['eta_s']:.0f} s left)", flush=True)


def _model_out(name: str, out: str | None) -> Path:
    """Where a new model goes (``--out``, else the user models folder under ``--name``),
    checked before any work (:func:`~.core.models.registry.check_model_destination`)."""
    from .core.models.registry import check_model_destination, check_model_name, user_models_dir

    if not out:
        check_model_name(name)
    return check_model_destination(Path(out) if out else user_models_dir() / name)


def _cmd_train_noise(args: argparse.Namespace) -> int:
    import torch

    from .core.materials.materials import get_material
    from .core.models.registry import resolve_model, write_model
    from .core.train.pipeline import new_card, run_train_noise

    torch.set_num_threads(max(1, args.threads))
    out = _model_out(args.name, args.out)  # (refused before the training, not after)
    init = resolve_model(args.init) if args.init else None
    result = run_to_end(run_train_noise(args.material, args.real, args.real_mode,
                                        args.real_material, args.n_images, args.steps,
                                        args.batch_size, args.seed, args.device, init_model=init),
                        _print_training)
    card = new_card(out.name, get_material(args.material).name)
    card["noise"] = {**result["card"], "command": card["command"]}
    from torch import nn

    write_model(out, card, noise=nn.ModuleDict({"gen_ab": result["model"].gen_ab,
                                                "gen_ba": result["model"].gen_ba}))
    print(f"noise-transfer model written to {out}")
    return 0


def _init_detector(model: str):
    """The detector of ``model`` and its defect classes, to start ``train-detector`` from."""
    from .core.materials.columns import LEGACY_CLASSES
    from .core.models.registry import ModelError, base_detector, resolve_model

    info = resolve_model(model)
    if "detector" not in info.card:
        raise ModelError(f"Model {info.name} has no detector (stage 2) to start from.")
    classes = tuple(info.card["detector"].get("classes") or LEGACY_CLASSES)
    return base_detector(info), classes


def _cmd_train_detector(args: argparse.Namespace) -> int:
    import json

    import torch

    from .core.materials.materials import get_material
    from .core.models.registry import NOISE_FILE, resolve_model, write_model
    from .core.train.pipeline import new_card, run_train_detector

    torch.set_num_threads(max(1, args.threads))
    material = get_material(args.material).name
    out = _model_out(args.name, args.out)  # (refused before the training, not after)
    noise = resolve_model(args.noise) if args.noise else None
    init_net, init_classes = _init_detector(args.init) if args.init else (None, None)
    result = run_to_end(run_train_detector(material, noise, args.n_images, args.val_images,
                                           args.steps, args.batch_size, args.seed, args.device,
                                           args.translated_fraction, init_net=init_net,
                                           init_classes=init_classes,
                                           host_units=args.host_units,
                                           labelled=args.labelled,
                                           labelled_doses=args.labelled_doses,
                                           host_level_from=args.host_level,
                                           workers=args.workers,
                                           incoherent_share=args.incoherent_share),
                         _print_training)
    card = new_card(out.name, material)
    if noise is not None:
        card["noise"] = noise.card.get("noise")
    card["detector"] = {**result["card"], "command": card["command"]}
    # (the stage 1 copied in before the folder is replaced: a detector trained into the folder
    # of its own stage 1 — the models.md recipe — had lost its noise weights)
    stage1 = (noise.path / NOISE_FILE) if noise is not None else None
    write_model(out, card, detector=result["net"],
                copy_files={NOISE_FILE: stage1} if stage1 is not None and stage1.exists() else None)
    print(json.dumps(result["card"]["metrics"], indent=1))
    print(f"detector written to {out}")
    return 0


def _cmd_average_models(args: argparse.Namespace) -> int:

    from .core.models.average import average_detectors
    from .core.models.registry import NOISE_FILE, model_material, write_model
    from .core.train.pipeline import new_card

    out = _model_out(args.name, args.out)
    net, detector_card, infos = average_detectors(args.models)
    first = infos[0]
    card = new_card(out.name, model_material(first))
    if "noise" in first.card:
        card["noise"] = first.card["noise"]
    card["detector"] = {**detector_card, "command": card["command"]}
    stage1 = first.path / NOISE_FILE
    write_model(out, card, detector=net,
                copy_files={NOISE_FILE: stage1} if stage1.exists() else None)
    print(f"averaged the detectors of {', '.join(i.name for i in infos)} -> {out}; "
          f"calibrate it before use: atomdefect calibrate-model {out}")
    return 0


def _cmd_calibrate_model(args: argparse.Namespace) -> int:
    from .core.detect.confidence import iter_calibrate_model

    if args.n_images < 3:
        raise _UsageError(f"--n-images must be 3 or more, not {args.n_images}.")
    result = _quiet_calibration(
        run_to_end, iter_calibrate_model(args.model, args.n_images, args.seed, args.size,
                                         args.device, write=not args.dry_run,
                                         decide_on=args.decide_on),
        _progress_printer(args))
    cal = result["calibration"]
    for key in ("ece_before", "ece_after"):
        e = cal[key]
        print(f"{key.replace('_', ' ')} (held-out): all sites {e['all_sites']:.3f}, chalcogen "
              f"sites {e['chalcogen_sites']:.3f}, defect calls {e['defect_calls']:.3f} "
              f"({e['n_defect_calls']} calls)")
    print(f"calibration written to {result['path']}" if result["path"] else
          "dry run: nothing written")
    return 0


def _held_out_image_args(p: argparse.ArgumentParser, n_images: int, seed: int) -> None:
    """The model and its held-out simulated images (calibrate-model, model-metrics)."""
    p.add_argument("model", nargs="?", default=None, help="model name or folder (default: bundled;"
                   " the bundled card is written only with ATOMDEFECT_WRITE_BUNDLED=1)")
    p.add_argument("--n-images", type=_positive_int, default=n_images,
                   help="held-out simulated images")
    p.add_argument("--seed", type=int, default=seed, help="seed of the first image")
    p.add_argument("--size", type=_image_side, default=256, help="image side in pixels")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def _cmd_model_metrics(args: argparse.Namespace) -> int:
    from .core.detect.held_out import iter_held_out_metrics

    result = _quiet_calibration(
        run_to_end, iter_held_out_metrics(
            args.model, args.n_images, args.seed, args.size, args.device, write=args.write,
            substituents=args.substituents),
        _progress_printer(args))
    held = result["held_out"]
    print(held["validation"])
    for name, sc in held["site_scores"].items():
        print(f"{name:>8}  F1 {sc['f1']:.3f}  precision {sc['precision']:.3f}  recall "
              f"{sc['recall']:.3f}  ({sc['support']} true sites)")
    print(f"written to {result['path']}" if result["path"] else
          "not written (--write stores the figures in the card)")
    return 0


def _table_pixel_size(table) -> float | None:
    """The one pixel size a defect table read by ``read_defects_csv`` was made with (its
    ``pixel_size_nm`` column), else ``None``."""
    value = None if table is None else table.attrs.get("pixel_size_nm")
    return float(value) if value else None


def _cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune a model on the cells of one image (the Fine-tune widget's run, without Qt)."""
    import numpy as np

    from .core.finetune.finetune import FinetuneSettings, iter_finetune
    from .core.finetune.selection import select_cells, unreviewed_note
    from .core.io.table import read_defects_csv
    from .core.materials.columns import parse_substituents
    from .core.materials.materials import get_material
    from .core.models.registry import (
        check_model_destination,
        check_new_user_model,
        default_model_name,
    )

    # (refused before the training, not after)
    out = check_model_destination(check_new_user_model(args.name))
    if args.batch_size is not None and args.batch_size < 2:
        raise AtomDefectError(f"A batch of {args.batch_size} cannot be trained on: give "
                              "--batch-size 2 or more.")
    substituents = (parse_substituents(args.substituents, get_material(args.material))
                    if args.substituents else None)
    base = args.model or default_model_name(args.material, substituents)
    corrections = read_defects_csv(args.corrections) if args.corrections else None
    table_px = _table_pixel_size(corrections)
    from_table = args.pixel_size_nm is None and table_px is not None
    if from_table:
        # The detection's own calibration (an alloy's Vegard refinement included): the fit of the
        # simulator sees the lattice the corrected calls were made on (a trial's run had fitted
        # another pixel size than Detect's and scored the same detector differently).
        args.pixel_size_nm = table_px
        print(f"Pixel size {table_px:.5f} nm/px from the corrections table (the detection's "
              "calibration).", file=sys.stderr)
    _, data, [lattice] = _lattices_for(args, one_grain=True)
    for msg in lattice.messages:
        print(msg, file=sys.stderr)
    if args.region is not None:
        r0, r1, c0, c1 = args.region
        corners = np.array([[r0, c0], [r0, c1], [r1, c1], [r1, c0]], float)
        cells = select_cells(lattice, polygons=[corners])
    else:
        cells = select_cells(lattice, select_all=True)
    if corrections is not None:
        note = unreviewed_note(lattice, cells, corrections)
        if note:
            print(note, file=sys.stderr)
    settings = FinetuneSettings(seed=args.seed, use_corrections=corrections is not None)
    if args.noise_steps is not None:
        settings.noise_steps = args.noise_steps
    if args.detector_steps is not None:
        settings.detector_steps = args.detector_steps
    if args.batch_size is not None:  # (the widget's advanced settings, the same names)
        settings.detector_batch_size = args.batch_size
    settings.keep_better_detector = not args.keep_finetuned
    print(f"fine-tuning {base} on {len(cells)} cells of {Path(args.image).name} "
          f"({lattice.pixel_size_nm:.5f} nm/px, "
          f"{'the corrections table' if from_table else lattice.calibration})", file=sys.stderr)
    printer = _progress_printer(args)
    verdicts: list[str] = []  # the check on the held-out cells, then the outcome

    def on_progress(item: dict) -> None:
        if "real_validation" in item or "outcome" in item:
            verdicts.append(item["message"])
        elif printer is not None:
            printer(item)

    result = run_to_end(iter_finetune(data, lattice, cells, base, out.name, settings,
                                      corrections, args.device, Path(args.image).name,
                                      substituents=substituents), on_progress)
    for line in verdicts or [result["outcome"]]:
        print(line)
    print(f"model written to {result['path']}")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    from ._batch_cli import run_batch

    return run_batch(args)


def _cmd_view(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not any(
            os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        # (Qt would abort the process with a core dump)
        raise AtomDefectError("No display to open napari on (DISPLAY is not set): run it on a "
                              "desktop, with ssh -X, or under xvfb-run for screenshots.")
    import napari

    viewer = napari.Viewer()
    if args.image:
        viewer.open(args.image, plugin="napari-atomdefect")
    else:
        viewer.open_sample("napari-atomdefect", "mos2")
    napari.run()
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    """``atomdefect models``: every installed model with its material and defect classes."""
    from .core.models.registry import (
        default_model_name,
        list_models,
        model_classes,
        model_material,
        model_substituents,
    )

    rows = []
    for info in list_models():
        has_detector = "detector" in info.card
        material = model_material(info)
        subs = list(model_substituents(info)) if has_detector else []
        default_for = ""
        if info.bundled and default_model_name(material) == info.name:
            default_for = f"the default for {material}"
        elif info.bundled and default_model_name(material, subs) == info.name:
            default_for = f"the default for {material} when an alloying substituent is chosen"
        rows.append({"name": info.name, "bundled": info.bundled, "path": str(info.path),
                     "material": material,
                     "classes": list(model_classes(info)) if has_detector else [],
                     "substituents": subs, "default_for": default_for,
                     "stages": [k for k in ("noise", "detector") if k in info.card]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No models installed.")
    for r in rows:
        where = "bundled" if r["bundled"] else "user"
        classes = ", ".join(r["classes"]) or "no detector"
        subs = ", ".join(r["substituents"]) or "none"
        note = f" ({r['default_for']})" if r["default_for"] else ""
        print(f"{r['name']} ({where}, {r['material']}): classes {classes}; substituents "
              f"{subs}{note}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-atomdefect")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``atomdefect`` argument parser."""
    from .core.materials.materials import MATERIALS

    parser = _ArgumentParser(
        prog="atomdefect",
        description="Find atomic defects in HAADF-STEM images of 2D materials.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "simulate", help="simulate a labelled HAADF image",
        description="Simulate a HAADF-STEM image of a 2H-TMD monolayer with known point defects "
                    "(the package's own fast simulator, the one its models are trained on). "
                    "Writes image.tif (noisy, calibrated), image_clean.tif (noise-free), "
                    "defects.csv (every defect: y_px, x_px, y_nm, x_nm, class, confidence 1, "
                    "source 'simulation'), sites.csv (every lattice site with its class) and "
                    "meta.json (microscope, dose, "
                    "seed) into --out.",
        epilog="Example: atomdefect simulate --material MoSe2 --substituents S,Te --alloy "
               "Te:0.1 --size 512 --dose 2e5 --out sim_mose2; then atomdefect detect "
               "sim_mose2/image.tif --material MoSe2 --substituents S,Te --out d.csv and "
               "atomdefect evaluate d.csv sim_mose2/defects.csv.")
    p.add_argument("--material", default="MoS2", choices=list(MATERIALS),
                   help="host material (default MoS2)")
    p.add_argument("--size", type=_image_side, default=512,
                   help="image side in pixels (default 512)")
    p.add_argument("--pixel-size-nm", type=_pixel_size, default=0.012,
                   help="pixel size in nm (default 0.012)")
    p.add_argument("--dose", type=_dose, default=1e5,
                   help="electron dose in e/Å² (default 1e5; 0 = noise-free)")
    p.add_argument("--rotation", type=float, default=None,
                   help="lattice rotation in degrees (default random)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed gives the same image (default 0)")
    p.add_argument("--substituents", default=None,
                   help="substituents whose defect classes occur, e.g. Se,O (default: the "
                        "material's defaults, as detect; 'all': every chalcogen substituent it "
                        "supports; 'none': vacancies only). The other metal (W in MoS2) puts it "
                        "on 3 %% of the metal sites (more with --metal-alloy); the host metal (Mo "
                        "in MoS2) puts antisites (Mo_S2) in 1 %% of the chalcogen columns")
    p.add_argument("--alloy", type=_alloy, default=None, metavar="D:FRACTION",
                   help="a random alloy: this share of the host's chalcogen atoms replaced by D, "
                        "each independently (e.g. Se:0.3 for MoS2, Te:0.1 for MoSe2); D is "
                        "added to the substituents")
    p.add_argument("--metal-alloy", type=_metal_alloy, default=0.0, metavar="FRACTION",
                   help="a Mo/W alloy: this share of the metal sites holds the other metal (W in "
                        "a Mo host, Mo in a W host); sites.csv then names each metal column's "
                        "atom (metal_atom). Not a defect class")
    p.add_argument("--out", required=True, help="output folder (created; files in it replaced)")
    p.set_defaults(func=_cmd_simulate)

    def image_args(q):
        from .core.io.image import SUPPORTED_EXTENSIONS

        q.add_argument("image", help="image file (" + " ".join(SUPPORTED_EXTENSIONS) + ")")
        q.add_argument("--material", default="MoS2",
                       help="host material: MoS2 (default), WS2, MoSe2 or WSe2")
        q.add_argument("--pixel-size-nm", type=_pixel_size, default=None,
                       help="override the file's calibration")
        q.add_argument("--frame", type=int, default=None, help="frame of a stack")

    p = sub.add_parser("lattice", help="find the lattice and its sites")
    image_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_lattice)

    p = sub.add_parser("demo", help="run the pipeline headless on the sample and write results")
    p.add_argument("image", nargs="?", default=None, help="image file (default: built-in sample)")
    p.add_argument("--material", default="MoS2",
                   help="host material of IMAGE: MoS2 (default), WS2, MoSe2 or WSe2")
    p.add_argument("--pixel-size-nm", type=_pixel_size, default=None,
                   help="override the file's calibration")
    p.add_argument("--substituents", default=None, metavar="D[,D]", help=_substituents_help())
    p.add_argument("--frame", type=int, default=None, help="frame of a stack")
    p.add_argument("--out", default="results",
                   help="output folder (default results; created, files in it replaced)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("detect", help="detect and classify defects; writes a CSV")
    image_args(p)
    p.add_argument("--model", default=None,
                   help="model name or folder (default: the bundled model of the material for "
                        "the substituents: mos2-alloy for MoS2 with Se, else <material>-default, "
                        "else mos2-default); see 'atomdefect models'")
    p.add_argument("--substituents", default=None, metavar="D[,D]", help=_substituents_help())
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--out", default="defects.csv",
                   help="CSV to write (default defects.csv; an earlier, different one is kept "
                        "as NAME.previous.csv; refused when it holds defects you corrected by "
                        "hand)")
    p.add_argument("--verbose", action="store_true", help="print the progress of each step")
    p.add_argument("--all-frames", action="store_true",
                   help="analyse every frame of a stack, follow the lattice drift and link the "
                        "defects into tracks (CSV with frame and track_id)")
    p.add_argument("--operating-point", type=_operating_point, default=None,
                   metavar="CLASS=T,...",
                   help="per defect class of the run (e.g. V_S, V_S2, O_S, V_Mo) a value in "
                        "(0, 1), default 0.5: higher calls the class only with more evidence "
                        "(precision), lower calls it sooner (recall); e.g. V_S=0.6,O_S=0.4")
    p.add_argument("--region", type=_region, default=None, metavar="ROW0:ROW1,COL0:COL1",
                   help="analyse only this rectangle of the image (pixels, end excluded), e.g. "
                        "one grain of a polycrystalline layer; coordinates stay the image's")
    p.add_argument("--search-range", type=_positive_float, default=1.2,
                   help="with --all-frames: largest move between frames, in lattice constants "
                        "(default 1.2; a hop to a neighbouring site is 1: below it every hop "
                        "starts a new track)")
    p.add_argument("--memory", type=int, default=1,
                   help="with --all-frames: frames a defect may be missed and keep its track "
                        "(default 1)")
    p.add_argument("--min-track-frames", type=int, default=1, metavar="N",
                   help="with --all-frames: keep only defects whose track spans at least N "
                        "frames (default 1: all); at a low dose per frame most false calls are "
                        "seen in one frame only")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("finetune", help="adapt a model to your microscope from the cells of one "
                                        "image (and your corrected detections); a user model")
    image_args(p)
    p.add_argument("--name", required=True, help="name of the new user model")
    p.add_argument("--model", default=None,
                   help="model to start from (default: the bundled model of the material)")
    p.add_argument("--substituents", default=None, metavar="D[,D]",
                   help="substituents the image was analysed for (default: those of the "
                        "corrected classes)")
    p.add_argument("--corrections", default=None, metavar="CSV",
                   help="a defect table of this image you reviewed (Review's export or "
                        "'atomdefect detect --out' corrected by hand): its selected cells "
                        "become labelled training examples")
    p.add_argument("--region", type=_region, default=None, metavar="ROW0:ROW1,COL0:COL1",
                   help="the cells to learn from (pixels; default: every cell of the image)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-steps", type=int, default=None,
                   help="stage-1 steps (default as the widget: 150)")
    p.add_argument("--detector-steps", type=int, default=None,
                   help="stage-2 steps (default as the widget: 400)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="stage-2 batch size, 2 or more (default as the widget: 32)")
    p.add_argument("--keep-finetuned", action="store_true",
                   help="keep the fine-tuned detector even where it scores worse than the base "
                        "one (default, as the widget: the base detector is kept then)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--verbose", action="store_true", help="print the progress of each step")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("evaluate", help="per-class precision/recall/F1 of a defect CSV")
    p.add_argument("pred", help="detections (atomdefect detect CSV)")
    p.add_argument("truth", help="ground truth (same format, or x_px, y_px, class)")
    p.add_argument("--radius-nm", type=_positive_float, default=0.08,
                   help="a call matches a true defect within this distance (default 0.08 nm, "
                        "under half the 0.18 nm between neighbouring columns)")
    p.add_argument("--pixel-size-nm", type=_pixel_size, default=None,
                   help="nm per pixel of the tables' pixel coordinates (default: from their nm "
                        "columns)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=_cmd_evaluate)

    def train_args(q, steps, batch):
        q.add_argument("--material", default="MoS2",
                       help=f"host material ({', '.join(MATERIALS)}; default MoS2)")
        q.add_argument("--steps", type=_positive_int, default=steps,
                       help=f"optimiser steps (default {steps})")
        q.add_argument("--batch-size", type=_positive_int, default=batch,
                       help=f"cells per step (default {batch})")
        q.add_argument("--seed", type=int, default=0,
                       help="seed of the simulated images and the training (default 0)")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
        q.add_argument("--threads", type=_positive_int, default=2,
                       help="CPU threads for torch (default 2)")
        q.add_argument("--name", default="my-model", help="model name (user models folder)")
        q.add_argument("--out", default=None, help="model folder (default: user models/NAME)")

    p = sub.add_parser("train-noise", help="train the stage-1 U-GAT-IT noise transfer")
    train_args(p, 2000, 16)
    p.add_argument("--real", nargs="+", required=True, help="real images or folders (domain B)")
    p.add_argument("--real-mode", choices=["cells", "noise"], default="cells",
                   help="cells: real cells are domain B (same material); noise: carry the real "
                        "images' measured noise and scan jitter onto simulated cells")
    p.add_argument("--real-material", default=None, help="material of the real images")
    p.add_argument("--n-images", type=_positive_int, default=60,
                   help="simulated images per domain (default 60)")
    p.add_argument("--init", default=None, help="start from this model's stage 1 (fine-tune)")
    p.set_defaults(func=_cmd_train_noise)

    p = sub.add_parser("train-detector", help="train the stage-2 U-Net detector")
    train_args(p, 4000, 64)
    p.add_argument("--noise", default=None, help="model (folder or name) whose stage 1 "
                   "translates simulated cells; without it cells come from the simulator only")
    p.add_argument("--n-images", type=_positive_int, default=240,
                   help="simulated training images (default 240)")
    p.add_argument("--val-images", type=_positive_int, default=40,
                   help="simulated validation images (default 40)")
    p.add_argument("--translated-fraction", type=_fraction, default=0.5,
                   help="share of the training cells made realistic by --noise's stage 1 "
                        "(default 0.5)")
    p.add_argument("--init", default=None, help="start from this model's detector (another "
                   "material's too: its last layer is remade for this material's classes)")
    p.add_argument("--host-units", action="store_true",
                   help="the detector reads tiles in host units (a host chalcogen column is 1, "
                        "read from the image's Z-contrast ladder) instead of chalcogen units "
                        "(the median chalcogen column is 1): an alloy whose median column is "
                        "substituted reads right")
    p.add_argument("--host-level", choices=("ladder", "truth"), default="ladder",
                   help="with --host-units: the training images' host level from the ladder's "
                        "reading, as detection reads it (default), or from their true host "
                        "columns (the ladder's reading where an image has fewer than 10)")
    p.add_argument("--labelled", nargs="+", default=None, metavar="DIR",
                   help="also train on the cells of labelled images of another simulator "
                        "(folders holding image_clean.npy or image.npy, labels.csv and "
                        "meta.json, e.g. from benchmarks/make_multislice_set.py)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="processes that simulate the training images (the same images whatever "
                        "the number; a machine with many cores, a GPU machine's, makes its data "
                        "that much faster)")
    p.add_argument("--incoherent-share", type=_fraction, default=0.0,
                   help="share of the simulated images whose microscope follows the incoherent "
                        "Z-contrast rule (each atom Z**n, n 1.5-2, no cross term between a "
                        "column's atoms) instead of the multislice-grounded one (default 0)")
    p.add_argument("--labelled-doses", type=_positive_int, default=3,
                   help="noise realisations of each labelled noise-free image (doses drawn "
                        "log-uniformly in 1e5-2e6 e/Å²)")
    p.set_defaults(func=_cmd_train_detector)

    p = sub.add_parser("average-models",
                       help="average the detector weights of sibling models (trained from the "
                            "same model): a new model, to calibrate before use")
    p.add_argument("models", nargs="+", help="two or more model names or folders")
    p.add_argument("--name", default="averaged", help="name of the new user model")
    p.add_argument("--out", default=None, help="folder to write (default: the user model folder)")
    p.set_defaults(func=_cmd_average_models)

    p = sub.add_parser("calibrate-model",
                       help="fit a model's per-class confidence calibration and store it in its card")
    _held_out_image_args(p, n_images=300, seed=700_000)
    p.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    p.add_argument("--decide-on", choices=["calibrated", "model"], default="model",
                   help="decide classes on the network's own probabilities with per-class call "
                        "confidences fitted on held-out calls (default, as every bundled model), "
                        "or on the calibrated probabilities")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=_cmd_calibrate_model)

    p = sub.add_parser("model-metrics",
                       help="score a model as it ships on held-out simulated images (per-class "
                            "F1 of the whole detection); --write stores them in its card")
    _held_out_image_args(p, n_images=150, seed=800_000)
    p.add_argument("--substituents", default=None,
                   help="substituents the images carry and the detection looks for, e.g. O "
                        "(default: all of the model's; 'none': vacancies only)")
    p.add_argument("--write", action="store_true", help="store the figures in the model's card "
                   "(detector.held_out)")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=_cmd_model_metrics)

    from ._batch_cli import add_batch_parser

    add_batch_parser(sub, _pixel_size, _cmd_batch, _operating_point, _substituents_help())

    p = sub.add_parser("models", help="list the installed models: material and defect classes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("view", help="open napari with the plugin (and the sample or an image)")
    p.add_argument("image", nargs="?", default=None)
    p.set_defaults(func=_cmd_view)
    return parser


@contextlib.contextmanager
def _plain_warnings():
    """Print the package's own warnings (model fit, calibration, unknown classes, …) as one plain
    line each, as the commands print their messages — not Python's ``file:line: Category:``
    form with a line of source; warnings of other libraries keep Python's form. Only the
    format changes (``warnings.formatwarning``): filters and recorders work as before."""
    package = os.path.dirname(os.path.abspath(__file__))
    formatted = warnings.formatwarning

    def plain(message, category, filename, lineno, line=None):
        ours = (category.__module__.startswith(__package__ or "napari_atomdefect")
                or os.path.abspath(str(filename)).startswith(package))
        return (f"atomdefect: {message}\n" if ours
                else formatted(message, category, filename, lineno, line))

    warnings.formatwarning = plain
    try:
        yield
    finally:
        warnings.formatwarning = formatted


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``atomdefect`` command.

    Returns
    -------
    int
        0 on success; 2, with one sentence on stderr and no traceback, for bad arguments, bad
        input files, unwritable outputs and every other :class:`AtomDefectError`.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        with _plain_warnings():
            return int(args.func(args) or 0)
    except AtomDefectError as exc:
        print(f"atomdefect: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of a pipe stopped (``| head``): nothing more to say
        with contextlib.suppress(OSError):  # Python flushes stdout at exit: send it nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a folder that cannot be created, a file that cannot be written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"atomdefect: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
