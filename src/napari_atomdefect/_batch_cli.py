"""The ``atomdefect batch`` sub-command: arguments and console output (core in core/detect/batch.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def add_batch_parser(sub, pixel_size: Callable[[str], float],
                     func: Callable[[argparse.Namespace], int],
                     operating_point: Callable[[str], str] | None = None,
                     substituents_help: str | None = None) -> argparse.ArgumentParser:
    """Register ``batch`` on the sub-parsers ``sub`` of the ``atomdefect`` parser."""
    p = sub.add_parser("batch", help="detect defects in many images on dask; CSVs + summary.csv",
                       description="One defect CSV per image (per frame of a stack) and "
                                   "summary.csv in --out; rerunning skips finished images.")
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--material", default="MoS2",
                   help="host material of every image: MoS2 (default), WS2, MoSe2 or WSe2")
    p.add_argument("--pixel-size-nm", type=pixel_size, default=None,
                   help="pixel size of every image (default: each file's, else the lattice's)")
    p.add_argument("--model", default=None,
                   help="model name or folder (default: the bundled model of the material for "
                        "the substituents: mos2-alloy for MoS2 with Se, else <material>-default, "
                        "else mos2-default)")
    p.add_argument("--substituents", default=None, metavar="D[,D]",
                   help=substituents_help or "substituent elements to look for, e.g. Se,O")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--operating-point", type=operating_point, default=None,
                   metavar="CLASS=T,...",
                   help="per-class operating point for every image, e.g. V_S=0.6,O_S=0.4 "
                        "(default: the most probable class)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core, at most 8)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=func)
    return p


def _progress_bar(enabled: bool):
    """A callback drawing a tqdm bar on stderr (or nothing); returns ``(callback, close)``."""
    if not enabled:
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari
        return (lambda item: print(item["message"], file=sys.stderr)), lambda: None
    state: dict = {}

    def update(item: dict) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=item["total_files"], initial=item["done_files"],
                                      unit="file", file=sys.stderr, desc="batch")
        else:
            bar.update(item["done_files"] - bar.n)
        bar.set_postfix_str(item["message"][:60], refresh=True)

    return update, lambda: state.pop("bar").close() if "bar" in state else None


#: Images whose notes (calibration, model fit) are printed at the end of a batch; the rest
#: are in the summary's notes column.
MAX_NOTED_IMAGES = 20


def _earlier_note(n_listed: int, n_given: int | None) -> str:
    """"; 3 of these files are from earlier runs" when the summary lists files this run was
    not given (a trial read "4 files: 4 ok" after giving one)."""
    if n_given is None or n_listed <= n_given:
        return ""
    n = n_listed - n_given
    return f"; {n} of these files {'are' if n != 1 else 'is'} from earlier runs into this folder"


def run_batch(args: argparse.Namespace) -> int:
    """Run ``atomdefect batch``; prints a one-line result and the error rows."""
    import pandas as pd

    from .core.detect.batch import SUMMARY_NAME, iter_batch
    from .core.progress import run_to_end

    draw, close = _progress_bar(not args.no_progress)
    last: dict = {}

    def update(item: dict) -> None:
        for note in item.get("notes", ()):  # (said once, before the bar)
            print(f"atomdefect: {note}", file=sys.stderr)
        last.update(item)
        if draw is not None:
            draw(item)

    try:
        result = run_to_end(iter_batch(args.inputs, args.out, args.material, args.pixel_size_nm,
                                       args.model, args.device, args.workers, args.scheduler,
                                       operating_point=args.operating_point,
                                       substituents=args.substituents),
                            update)
    except KeyboardInterrupt:
        close()
        from pathlib import Path

        summary_path = Path(args.out) / SUMMARY_NAME
        recorded = (f"{summary_path} lists the finished ones" if summary_path.exists() else
                    "no file was recorded as finished yet")
        print(f"atomdefect: interrupted after {last.get('done_files', 0)} of "
              f"{last.get('total_files', '?')} files; {recorded}. Run the same command again to "
              "continue (files not recorded are analysed again).", file=sys.stderr)
        return 130
    finally:
        close()
    summary = result["summary"]
    errors = summary[summary["status"] != "ok"]
    # Calibration and model-fit notes of the images analysed now (a rerun had repeated those of
    # every image it skipped; they stay in the summary's notes column).
    analysed = summary["image"].astype(str).isin(result.get("analysed", []))
    noted = summary[(summary["status"] == "ok") & (summary.get("notes", "").astype(str) != "")
                    & analysed]
    for k, row in enumerate(noted.itertuples()):  # calibration and model-fit notes, per image
        if k == MAX_NOTED_IMAGES:
            print(f"... and notes on {len(noted) - k} more images (the notes column of "
                  f"{result['out'] / SUMMARY_NAME}).", file=sys.stderr)
            break
        where = row.image if pd.isna(row.frame) else f"{row.image} frame {row.frame}"
        print(f"{where}: {row.notes}", file=sys.stderr)
    for row in errors.itertuples():
        where = row.image if pd.isna(row.frame) else f"{row.image} frame {row.frame}"
        print(f"{where}: {row.error}", file=sys.stderr)
    n_files = summary["image"].nunique()
    frames = f" ({len(summary)} images and frames)" if n_files != len(summary) else ""
    skipped = int(result["skipped"])
    n_defects = int(summary["n_defects"].fillna(0).sum())
    # (per-class counts: n_<class>; a chosen alloying chalcogen's are composition, not defects)
    calls = summary[[c for c in summary.columns if c.startswith("n_")
                     and c not in ("n_cells", "n_defects")]].fillna(0).to_numpy().sum()
    alloying = int(calls) - n_defects
    print(f"{n_files} file{'s' if n_files != 1 else ''}{frames}: {len(summary) - len(errors)} ok, "
          f"{len(errors)} error{'s' if len(errors) != 1 else ''} "
          f"({skipped} file{'s' if skipped != 1 else ''} already done); {n_defects} defects"
          + (f" and {alloying} alloying substitutions (not counted as defects)" if alloying > 0
             else "") + _earlier_note(n_files, last.get("total_files"))
          + f" -> {result['out'] / SUMMARY_NAME}")
    # Nothing analysed and something failed: a script must learn that the run produced nothing
    # (a partial failure stays 0: the summary lists the errors beside the results).
    return 2 if len(errors) and len(errors) == len(summary) else 0
