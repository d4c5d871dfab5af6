"""Stacks and in-situ movies: detection frame by frame with lattice drift, and defect tracks.

:func:`iter_detect_frames` finds each frame's lattice, follows the lattice from frame to frame
(the drift between two frames is the shift of the lattice origin, known up to a lattice vector:
the translation under which most of the previous frame's defects are found again is taken,
else the shortest, and a step far from the movie's steady drift — the translation the defects
of all steps together find again most often — follows it) and detects the defects of every
frame; the result is one defect table with a ``frame`` column, whose ``attrs["drift_px"]``
holds the drift of every frame relative to frame 0.

:func:`link_tracks` links the defects of consecutive frames into tracks (``track_id``) with
trackpy, in drift-corrected coordinates. Defects on chalcogen sites (``V_S``, ``V_S2``, ``O_S``,
``Se_S``, ... of any material) are linked among themselves whatever their class — a ``V_S`` that
becomes a ``V_S2`` or an ``O_S`` at the same site continues the site's track, each row keeping the
class of its frame — and metal vacancies (``V_Mo``, ``V_W``) among themselves; a chalcogen-site
defect never continues a metal-site track.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import AtomDefectError
from ..io.table import DEFECT_COLUMNS, TRACK_CLASS_COLUMN, track_classes
from ..materials.columns import LEGACY_CLASSES, class_site
from .blur import BLUR_NOTE, blur_message, is_blurred
from .light_gap import LightGap
from .overlap import class_overlaps, overlap_message

if TYPE_CHECKING:  # pragma: no cover
    from ..lattice.lattice import Lattice

#: Metadata key of the electron dose per frame (e/Å²) on an image (see :func:`dose_per_frame`).
DOSE_KEY = "dose_e_per_A2_per_frame"


def _shape(message: str) -> str:
    """A message with its numbers left out (the same fact of another frame)."""
    return re.sub(r"\d+(?:\.\d+)?", "#", message)


def lattice_drift(previous: Lattice, current: Lattice) -> np.ndarray:
    """Shift ``(row, col)`` in pixels of the lattice of ``current`` relative to ``previous``.

    The shift of the lattice origin is only known up to a lattice vector; the one of the
    smallest length is taken (:func:`resolve_drift` lets the defects decide between it and the
    others).

    Parameters
    ----------
    previous, current : Lattice

    Returns
    -------
    ndarray
        ``(2,)`` shift in pixels.
    """
    basis = np.stack([np.asarray(current.a1_px, float), np.asarray(current.a2_px, float)], axis=1)
    d = np.asarray(current.origin_px, float) - np.asarray(previous.origin_px, float)
    frac = np.linalg.solve(basis, d)
    base = frac - np.floor(frac)
    # The nearest of the four lattice points around the fractional offset (oblique basis).
    best = None
    for corner in ((0, 0), (1, 0), (0, 1), (1, 1)):
        cand = basis @ (base - np.asarray(corner, float))
        if best is None or np.hypot(*cand) < np.hypot(*best):
            best = cand
    return best


#: Lattice translations tried around the shortest drift (:func:`resolve_drift`): up to this many
#: lattice constants away from it.
DRIFT_SEARCH_A = 3.0
#: A defect of one frame is found again in the next when one lies within this share of the
#: lattice constant of its drift-corrected position (a neighbouring site of either sublattice
#: is 0.58 lattice constants away).
DRIFT_MATCH_A = 0.3
#: The defects decide the lattice translation when at least this many are found again under it
#: and half as many again as under any other translation (defects that hop between two frames
#: agree with a wrong one, so the stayers must outnumber the hoppers in any one direction).
DRIFT_MIN_MATCHES = 3
DRIFT_MIN_RATIO = 1.5
#: ... and when so many are not found again by chance: a wrong translation also finds some
#: (a low-dose frame's false calls, and defects that sit where others were), on average the
#: wrong translations' mean count; the best count must be above what that gives the best of all
#: tried translations with probability :data:`DRIFT_CHANCE` (Poisson). Without it, 3 matches
#: against 2 decided a jump of 2.6 lattice constants in a 3e4 e/Å² movie drifting 0.11 lattice
#: constants a frame (20–30 false calls a frame), and its tracks broke there.
DRIFT_CHANCE = 0.05
#: A decided step farther than this (lattice constants) from the median of the decided steps
#: (at least :data:`DRIFT_MIN_DECIDED` of them) is taken for a chance decision and follows the
#: others (:func:`_follow_decided_steps`): a specimen drifts steadily, and a wrong translation
#: is at least a lattice constant from the right one.
DRIFT_OUTLIER_A = 0.5
DRIFT_MIN_DECIDED = 3


def resolve_drift(step_px: np.ndarray, basis_px: np.ndarray, previous_yx: np.ndarray,
                  current_yx: np.ndarray, a_px: float,
                  matches: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, bool]:
    """The drift between two frames, with its lattice-vector ambiguity decided by the defects.

    The lattice gives the drift only up to a lattice vector; defects do not repeat with the
    lattice. Each translation ``step_px + basis_px @ n`` within :data:`DRIFT_SEARCH_A` lattice
    constants of ``step_px`` is scored by the number of the current frame's defects that lie,
    moved back by it, within :data:`DRIFT_MATCH_A` lattice constants of a previous frame's
    defect. Defects that stay at their site between the two frames (most, in a movie) all agree
    on the true drift; one that hops to a neighbouring site agrees with one wrong translation,
    and false calls agree with any by chance (:data:`DRIFT_CHANCE`).

    Parameters
    ----------
    step_px : ndarray
        ``(2,)`` drift ``(row, col)`` in pixels from :func:`lattice_drift` (the shortest).
    basis_px : ndarray
        ``(2, 2)`` lattice vectors as columns, in pixels.
    previous_yx, current_yx : ndarray
        ``(N, 2)`` defect positions ``(row, col)`` in pixels of the two frames.
    a_px : float
        Lattice constant in pixels.
    matches : tuple of ndarray, optional
        :func:`translation_matches` of these arguments, where the caller has them already.

    Returns
    -------
    step : ndarray
        ``(2,)`` the translation with the most defects found again when they decide (at least
        :data:`DRIFT_MIN_MATCHES`, :data:`DRIFT_MIN_RATIO` times as many as under any other,
        and more than chance gives, :data:`DRIFT_CHANCE`), else ``step_px``.
    decided : bool
        Whether the defects decided it.
    """
    from scipy.stats import poisson

    step = np.asarray(step_px, float)
    prev = np.asarray(previous_yx, float).reshape(-1, 2)
    cur = np.asarray(current_yx, float).reshape(-1, 2)
    if len(prev) < DRIFT_MIN_MATCHES or len(cur) < DRIFT_MIN_MATCHES:
        return step, False
    candidates, counts = (matches if matches is not None
                          else translation_matches(step, basis_px, prev, cur, a_px))
    best = int(np.argmax(counts))
    others = np.delete(counts, best)
    chance = (others.sum() + 1) / (len(others) + 1)  # mean count of a wrong translation
    by_chance = poisson.sf(counts[best] - 1, chance) * len(candidates)
    if (counts[best] >= DRIFT_MIN_MATCHES and counts[best] >= DRIFT_MIN_RATIO * others.max(initial=0)
            and by_chance < DRIFT_CHANCE):
        return candidates[best], True
    return step, False


def translation_matches(step_px: np.ndarray, basis_px: np.ndarray, previous_yx: np.ndarray,
                        current_yx: np.ndarray, a_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The lattice translations around a step and how many defects each finds again.

    Parameters
    ----------
    step_px, basis_px, previous_yx, current_yx, a_px
        As for :func:`resolve_drift`.

    Returns
    -------
    candidates : ndarray
        ``(K, 2)`` translations ``step_px + basis_px @ n`` within :data:`DRIFT_SEARCH_A`
        lattice constants of ``step_px``, the shortest first.
    counts : ndarray
        ``(K,)`` the current frame's defects that lie, moved back by each, within
        :data:`DRIFT_MATCH_A` lattice constants of one of the previous frame's.
    """
    from scipy.spatial import cKDTree

    candidates = _lattice_translations(np.asarray(step_px, float), basis_px,
                                       DRIFT_SEARCH_A * a_px)
    # The shortest first: it wins a tie.
    candidates = candidates[np.argsort(np.hypot(*candidates.T), kind="stable")]
    prev = np.asarray(previous_yx, float).reshape(-1, 2)
    cur = np.asarray(current_yx, float).reshape(-1, 2)
    if not len(prev) or not len(cur):
        return candidates, np.zeros(len(candidates), int)
    tree = cKDTree(prev)
    counts = np.array([int(np.sum(tree.query(cur - c, distance_upper_bound=DRIFT_MATCH_A * a_px)[0]
                                  < np.inf)) for c in candidates])
    return candidates, counts


def steady_drift(evidence: Sequence[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray | None:
    """The drift per frame that the defects of all steps together find again, if they decide.

    A specimen drifts steadily: the same translation (within a third of a lattice constant)
    holds between every two frames. Each translation that some step's defects found again is
    scored by the matches of every step at its own translation nearest it; the defects of all
    steps decide when the best has :data:`DRIFT_MIN_MATCHES` and :data:`DRIFT_MIN_RATIO` times
    as many as any translation :data:`DRIFT_OUTLIER_A` lattice constants or more from it.
    Pooled, the few defects of a slow movie that all hop by one lattice vector between two
    frames are outvoted by those that stay in the other steps (one step alone took their hop for
    a drift of a lattice constant), and a fast drift found in a few steps holds for the others.

    Parameters
    ----------
    evidence : sequence of (candidates, counts, a_px)
        Per step, :func:`translation_matches`' output and the lattice constant in pixels.

    Returns
    -------
    ndarray or None
        ``(2,)`` the decided translation, or None.
    """
    if not evidence:
        return None
    found = [(c, k) for cands, counts, _ in evidence for c, k in zip(cands, counts, strict=True)
             if k > 0]
    if not found:
        return None
    a_px = float(np.median([a for *_, a in evidence]))
    kept: list[np.ndarray] = []  # one trial per translation found (steps drift a little apart)
    for c, _ in sorted(found, key=lambda ck: -ck[1]):
        if all(np.hypot(*(c - t)) > FAST_DRIFT_SHARE * a_px for t in kept):
            kept.append(np.asarray(c, float))
    scores = []
    for t in kept:
        total = 0
        for cands, counts, a in evidence:
            near = np.hypot(*(cands - t).T)
            j = int(np.argmin(near))
            total += int(counts[j]) if near[j] <= FAST_DRIFT_SHARE * a else 0
        scores.append(total)
    best = int(np.argmax(scores))
    rivals = [sc for t, sc in zip(kept, scores, strict=True)
              if np.hypot(*(t - kept[best])) >= DRIFT_OUTLIER_A * a_px]
    if scores[best] >= DRIFT_MIN_MATCHES and scores[best] >= DRIFT_MIN_RATIO * max(rivals,
                                                                                  default=0):
        return kept[best]
    return None


#: A drift between two frames above this share of the lattice constant is said when the
#: defects did not decide it (:func:`resolve_drift`): the lattice tells the drift only up to a
#: lattice vector (:func:`lattice_drift` takes the shortest), so beyond half a lattice constant
#: it is taken for a smaller one the other way and the tracks break (a simulated movie drifting
#: 17 px a frame at a 26 px lattice: linking 0.50).
FAST_DRIFT_SHARE = 1 / 3


def fast_drift_message(frames: Sequence[int]) -> str:
    """The sentence for frames whose drift from the frame before is near half a lattice
    constant and was not decided by the defects (0-based ``frames``)."""
    # (frames numbered as the slider, the frame column and Statistics number them: from 0)
    shown = ", ".join(str(k) for k in list(frames)[:5]) + (" …" if len(frames) > 5 else "")
    return (f"The lattice moved by more than a third of a lattice constant between frames (into "
            f"frame {shown}) and too few defects were found again to tell by how much: a drift "
            "past half a lattice constant cannot be told from a smaller one the other way, so "
            "the drift and the tracks may be wrong there: align the movie first (drift "
            "correction).")


def iter_detect_frames(stack: np.ndarray, pixel_size_nm: float | None = None,
                       material: str = "MoS2", model: str | Path | None = None,
                       device: str = "auto", calibration: str = "user",
                       frames: Sequence[int] | None = None,
                       operating_point: dict[str, float] | None = None, *,
                       substituents: str | Sequence[str] | None = None) -> Iterator[dict]:
    """Detect defects in every frame of a stack, following the lattice drift; yields progress.

    The first frame is calibrated as :func:`~.detect.iter_detect` does; the later frames use the
    first frame's pixel size, so that every frame shares one calibration. The consumer may stop
    between any two progress items (Cancel): nothing is returned then.

    Parameters
    ----------
    stack : ndarray
        ``(frames, rows, cols)``; a 2-D image is a movie of one frame.
    pixel_size_nm, material, model, device, calibration, operating_point, substituents
        As for :func:`~.detect.iter_detect`.
    frames : sequence of int, optional
        Frames to analyse (default: all).

    Yields
    ------
    dict
        Progress ``{"step", "fraction", "message", "frame"}`` (the fraction covers the whole
        movie), then ``{"done": True, "defects": DataFrame, "lattices": list, "drift_px":
        ndarray, "frames": list, "model", "device", "fit_messages"}``. The table has the
        columns of a defect CSV plus ``frame``; ``attrs`` hold ``drift_px`` (frame → shift of
        the lattice relative to the first analysed frame), ``frames`` (per-frame sites counts)
        the first frame's calibration, and ``classes`` / ``substituents`` of the run.

    Raises
    ------
    AtomDefectError
        If ``stack`` is not 2-D or 3-D, or a frame index is out of range.
    """
    from ..lattice.grains import misorientation_deg
    from .detect import iter_detect

    data = np.asarray(stack)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise AtomDefectError(f"A movie is a stack of 2-D frames (frames × rows × cols); this "
                              f"array has {data.ndim} dimensions.")
    chosen = list(range(data.shape[0])) if frames is None else [int(k) for k in frames]
    bad = [k for k in chosen if not 0 <= k < data.shape[0]]
    if bad:
        raise AtomDefectError(f"Frame {bad[0]} is out of range (0–{data.shape[0] - 1}).")
    if not chosen:
        raise AtomDefectError("No frame to analyse: the stack has no frames, or none was "
                              "chosen.")
    n = len(chosen)
    tables, lattices, per_frame, site_tables = [], [], [], []
    gap_said = None  # (light_gap.py: the first frame that said it)
    said_raw: set[str] = set()  # (the frames' notes as they said them, numbers left out)
    blurred: list[tuple[int, float]] = []  # (frame, column width) of frames too blurred
    messages: list[str] = []
    fit_messages: list[str] = []
    last, last_yx = None, np.zeros((0, 2))
    steps: list[tuple[int, np.ndarray, np.ndarray, float, bool]] = []  # (frame, step, basis,
    # a_px, decided by the defects) from the frame before
    evidence: list[tuple[np.ndarray, np.ndarray, float]] = []  # per step: translation_matches
    failed: list[tuple[int, AtomDefectError]] = []  # frames that cannot be analysed
    done = None
    for pos, k in enumerate(chosen):
        result = None
        try:
            for item in iter_detect(data[k], pixel_size_nm, material, model, device,
                                    calibration, operating_point=operating_point,
                                    substituents=substituents):
                if item.get("done"):
                    result = item
                    continue
                yield {**item, "frame": k, "fraction": (pos + item.get("fraction", 0.0)) / n,
                       "message": f"Frame {k} ({pos + 1} of {n}): {item.get('message', '')}"}
        except AtomDefectError as exc:
            # One bad frame (blank, cut, a scan glitch) does not cost the others; said below.
            failed.append((k, exc))
            continue
        done = result
        lattice = result["lattice"]
        here_yx = _defect_yx(result["defects"])
        if last is None:  # every later frame uses the first frame's calibration
            pixel_size_nm, calibration = lattice.pixel_size_nm, "user"
            followed = lattice
        else:
            # The drift follows one grain: that of the orientation followed so far (with
            # several grains, which one a frame finds first may change).
            followed = min(result.get("lattices", [lattice]),
                           key=lambda la: misorientation_deg(last, la))
            basis = np.stack([np.asarray(followed.a1_px, float),
                              np.asarray(followed.a2_px, float)], axis=1)
            shortest = lattice_drift(last, followed)
            matches = translation_matches(shortest, basis, last_yx, here_yx, followed.a_px)
            step, decided = resolve_drift(shortest, basis, last_yx, here_yx, followed.a_px,
                                          matches)
            steps.append((k, step, basis, float(followed.a_px), decided))
            evidence.append((*matches, float(followed.a_px)))
        last, last_yx = followed, here_yx
        table = result["defects"].copy()
        table["frame"] = k
        tables.append(table)
        lattices.append(lattice)
        per_frame.append({"frame": k, "drift_px": [0.0, 0.0],
                          "n_metal_sites": table.attrs.get("n_metal_sites"),
                          "n_chalcogen_sites": table.attrs.get("n_chalcogen_sites"),
                          "a_px": lattice.a_px,
                          "column_fwhm_nm": table.attrs.get("column_fwhm_nm")})
        # (the defect calls and their probabilities: what the overlap of two classes is read
        # from; a long movie's pristine sites are not kept)
        sites = result["sites"]
        site_tables.append(sites.loc[~sites["class"].isin(("metal", "chalcogen")),
                                     ["class"] + [c for c in sites.columns if c.startswith("p_")]])
        # (two classes that overlap are said once, for the whole movie, below)
        frame_overlap = table.attrs.get("overlap_message")
        gap_said = gap_said or table.attrs.get("light_gap")
        # One sentence per fact: frames that say the same with other numbers (a flagged
        # share) keep the first frame's — compared as each frame said it (the pixel size the
        # user gave, passed on to the later frames, had been said twice in other words).
        # (a blurred frame is named in one sentence for the movie, below)
        if is_blurred(table.attrs.get("column_fwhm_nm"),
                      table.attrs.get("model_material") or material):
            blurred.append((k, float(table.attrs["column_fwhm_nm"])))
        notes = [m for m in table.attrs.get("messages", [])
                 if m != frame_overlap and _shape(m) not in said_raw
                 and not m.startswith(BLUR_NOTE)]
        said_raw |= {_shape(m) for m in notes}
        if len(lattices) > 1:  # later frames were given the first one's pixel size, not the user's
            notes = [m.replace("The pixel size you gave", f"The first frame's pixel size (frame "
                                                        f"{per_frame[0]['frame']})") for m in notes]
        said = {_shape(m) for m in messages}
        messages += [m for m in notes if _shape(m) not in said]
        said = {_shape(m) for m in fit_messages}
        fit_messages += [m for m in result.get("fit_messages", [])
                         if m != frame_overlap and _shape(m) not in said
                         and not m.startswith(BLUR_NOTE)]
    if done is None:  # no frame could be analysed: the first frame's reason
        raise failed[0][1]
    result = done
    if failed:
        ks = [k for k, _ in failed]
        what = _frames_named(ks)
        messages.append(f"{what[0].upper()}{what[1:]} could not be analysed and "
                        f"{'was' if len(ks) == 1 else 'were'} left out: {failed[0][1]}")
    if blurred:  # (one sentence naming the frames, first among the fit's)
        sentence = blur_message(max(w for _, w in blurred), result["defects"].attrs.get(
            "model_material") or material, frames=_frames_named([k for k, _ in blurred]),
            several=len(blurred) > 1)
        if sentence:
            fit_messages.insert(0, sentence)
            messages.append(sentence)
    fast = _follow_decided_steps(steps, steady_drift(evidence))
    drift = np.cumsum([np.zeros(2)] + [step for _, step, *_ in steps], axis=0)
    for entry, d in zip(per_frame, drift, strict=True):
        entry["drift_px"] = d.tolist()
    overlaps = class_overlaps(pd.concat(site_tables, ignore_index=True))
    overlap = overlap_message(overlaps, "these frames", fine_tuned=bool(result.get("fine_tuned")))
    pairs = [list(o.classes) for o in overlaps]
    if gap_said and not any(set(p) == set(gap_said["classes"]) for p in pairs):
        # (the first frame that said it, with the calls of every frame, as Statistics counts)
        gap = LightGap(**{k: v for k, v in gap_said.items() if k != "message"})
        counts = [sum(int((t["class"].astype(str) == c).sum()) for t in tables)
                  for c in gap.classes]
        n_calls = sum(counts)
        if gap.n_light is not None:
            gap = dataclasses.replace(gap, n_light=counts[1])
        overlap = " ".join(m for m in (overlap, gap.message(n_calls, "these frames'")) if m)
        pairs.append(list(gap.classes))
    fit_messages += [m for m in (overlap, fast_drift_message(fast) if fast else None) if m]
    messages += [m for m in (overlap, fast_drift_message(fast) if fast else None) if m]
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=DEFECT_COLUMNS + ["frame"])
    out["frame"] = out["frame"].astype(int)
    if "grain" in out.columns:  # frames of one grain carry no grain column: theirs is grain 0
        out["grain"] = out["grain"].fillna(0).astype(int)
    first = lattices[0]
    out.attrs.update({"model": result["model"], "device": result["device"],
                      "pixel_size_nm": first.pixel_size_nm, "calibration": first.calibration,
                      "drift_px": {f["frame"]: f["drift_px"] for f in per_frame},
                      "frames": per_frame, "a_px": float(np.mean([la.a_px for la in lattices])),
                      "messages": messages, "classes": result["classes"],
                      "substituents": result["substituents"],
                      "model_material": result["defects"].attrs.get("model_material"),
                      "class_overlaps": pairs,
                      "overlap_message": overlap})
    yield {"done": True, "defects": out, "lattices": lattices,
           "drift_px": np.array([f["drift_px"] for f in per_frame]), "frames": per_frame,
           "model": result["model"], "device": result["device"],
           "fit_messages": fit_messages, "classes": result["classes"],
           "substituents": result["substituents"]}


def _frames_named(frames: list[int]) -> str:
    """``frame 4``, or ``3 frames (1, 4, 7)``: frames as a sentence names them."""
    return (f"frame {frames[0]}" if len(frames) == 1
            else f"{len(frames)} frames ({_frame_list(frames)})")


def _frame_list(frames: list[int], most: int = 8) -> str:
    """``1, 4, 7`` (frame numbers, the first ``most`` and how many more)."""
    shown = ", ".join(str(k) for k in frames[:most])
    return shown + (f" and {len(frames) - most} more" if len(frames) > most else "")


def _follow_decided_steps(steps: list, steady: np.ndarray | None = None) -> list[int]:
    """Steps the defects did not decide, and decided steps far from the others
    (:data:`DRIFT_OUTLIER_A`), take the lattice translation nearest the movie's steady drift:
    ``steady`` where the defects of all steps decided it (:func:`steady_drift`), else the
    median of the decided steps (a specimen drifts steadily); returns the frames whose step
    stays undecided and long enough to be in doubt (:data:`FAST_DRIFT_SHARE`).

    ``steps`` holds ``(frame, step, basis, a_px, decided)`` and is changed in place.
    """
    decided = [step for _, step, _, _, sure in steps if sure]
    typical = (np.asarray(steady, float) if steady is not None
               else np.median(decided, axis=0) if decided else None)
    if steady is not None or len(decided) >= DRIFT_MIN_DECIDED:
        steps[:] = [(k, step, basis, a_px, sure and bool(
            np.hypot(*(step - typical)) <= DRIFT_OUTLIER_A * a_px))
            for k, step, basis, a_px, sure in steps]
    doubtful = []
    for pos, (k, step, basis, a_px, sure) in enumerate(steps):
        if sure:
            continue
        if typical is not None:
            candidates = _lattice_translations(step, basis, np.hypot(*(typical - step)) + a_px)
            near = candidates[np.argmin(np.hypot(*(candidates - typical).T))]
            if np.hypot(*(near - typical)) <= FAST_DRIFT_SHARE * a_px:
                steps[pos] = (k, near, basis, a_px, True)
                continue
        if np.hypot(*step) > FAST_DRIFT_SHARE * a_px or (
                typical is not None and np.hypot(*typical) > FAST_DRIFT_SHARE * a_px):
            doubtful.append(k)
    return doubtful


def _lattice_translations(step: np.ndarray, basis: np.ndarray, reach_px: float) -> np.ndarray:
    """``step`` plus every lattice translation (``basis`` columns) within ``reach_px`` of it."""
    # Integer coordinates to ±span cover a disc of that radius on an oblique (60°) basis.
    span = int(np.ceil(reach_px / np.linalg.norm(basis, axis=0).min() * 2 / np.sqrt(3))) + 1
    grid = np.array([(i, j) for i in range(-span, span + 1) for j in range(-span, span + 1)],
                    float)
    candidates = np.asarray(step, float) + grid @ np.asarray(basis, float).T
    return candidates[np.hypot(*(candidates - step).T) <= reach_px + 1e-9]


def _defect_yx(table: pd.DataFrame) -> np.ndarray:
    """``(N, 2)`` defect positions ``(row, col)`` in pixels of a frame's defect table."""
    if len(table) == 0:
        return np.zeros((0, 2))
    return table[["y_px", "x_px"]].to_numpy(float)


def _sublattice_group(classes: pd.Series) -> np.ndarray:
    """0 for defects of chalcogen sites, 1 for metal sites, 2 for anything else."""
    site = classes.astype(str).map(class_site)
    return np.where(site == "chalcogen", 0, np.where(site == "metal", 1, 2))


#: A hop to a neighbouring site of the same sublattice, in lattice constants: a search range
#: below it starts a new track at every hop (an independent movie's 14 hops all broke at 0.5).
HOP_DISTANCE = 1.0


def short_search_message(search_range: float) -> str | None:
    """A sentence when ``search_range`` (lattice constants) is too short to link a hop to a
    neighbouring site (:data:`HOP_DISTANCE`), else ``None``."""
    if search_range >= HOP_DISTANCE:
        return None
    return (f"A search range of {search_range:g} lattice constants cannot link a defect that "
            f"hops to a neighbouring site ({HOP_DISTANCE:g} lattice constant away): every hop "
            "starts a new track; give 1.2 (the default) or more to follow hops.")


def link_tracks(table: pd.DataFrame, a_px: float | None = None, search_range: float = 1.2,
                memory: int = 1, drift_px: dict | None = None) -> pd.DataFrame:
    """Link the defects of a movie's frames into tracks: adds a ``track_id`` column.

    Linking uses trackpy (``trackpy.link``) on drift-corrected positions; defects of chalcogen
    sites and of metal sites are linked separately, and a class change at a site (``V_S`` →
    ``V_S2`` or ``O_S``) continues its track. A defect seen in one frame only gets a track of
    its own.

    Parameters
    ----------
    table : DataFrame
        Defects with ``frame``, ``y_px``, ``x_px``, ``class`` (e.g. from
        :func:`iter_detect_frames`).
    a_px : float, optional
        Lattice constant in pixels (default: ``table.attrs["a_px"]``).
    search_range : float
        Largest move between two frames, in lattice constants (a hop to a neighbouring site of
        the same sublattice is one lattice constant).
    memory : int
        Number of frames a defect may be missed (blinking, not detected) and still continue its
        track.
    drift_px : dict, optional
        Frame → ``(row, col)`` drift of the lattice (default: ``table.attrs["drift_px"]``; none:
        no drift correction).

    Returns
    -------
    DataFrame
        A copy of ``table`` with integer ``track_id`` (0, 1, … in order of first appearance)
        and the same ``attrs``, plus ``attrs["tracking"]`` with the parameters used.

    Raises
    ------
    AtomDefectError
        If ``frame`` is missing, no lattice constant is known, ``memory`` is negative, or the
        defects are too crowded to link.

    Notes
    -----
    A ``search_range`` below :data:`HOP_DISTANCE` adds :func:`short_search_message` to
    ``attrs["messages"]`` (and ``attrs["tracking"]["message"]``).
    """
    if "frame" not in table.columns:
        raise AtomDefectError("The defect table has no 'frame' column; tracks link the defects "
                              "of a movie's frames.")
    a_px = a_px if a_px is not None else table.attrs.get("a_px")
    if not a_px or not np.isfinite(a_px) or a_px <= 0:
        raise AtomDefectError("The lattice constant is unknown; give a_px (pixels) to link "
                              "tracks.")
    if int(memory) < 0:
        raise AtomDefectError(f"The memory of the tracks is a number of frames (0 or more), not "
                              f"{memory}.")
    drift = drift_px if drift_px is not None else table.attrs.get("drift_px") or {}
    out = table.copy()
    out.attrs = dict(table.attrs)
    out["track_id"] = -1
    if len(out) == 0:
        out["track_id"] = out["track_id"].astype(int)
        out[TRACK_CLASS_COLUMN] = out["class"].astype(str)
        return out
    import trackpy

    trackpy.quiet()
    shift = np.array([drift.get(int(f), drift.get(str(int(f)), (0.0, 0.0)))
                      for f in out["frame"]], float).reshape(-1, 2)
    work = pd.DataFrame({"frame": out["frame"].astype(int).to_numpy(),
                         "y": out["y_px"].to_numpy(float) - shift[:, 0],
                         "x": out["x_px"].to_numpy(float) - shift[:, 1],
                         "group": _sublattice_group(out["class"])}, index=out.index)
    raw = pd.Series(-1, index=out.index)
    offset = 0
    for g in sorted(work["group"].unique()):
        part = work[work["group"] == g]
        try:
            # Where many defects crowd together, trackpy narrows the search range there (down to
            # half a lattice constant, below which two sites cannot be confused).
            linked = trackpy.link(part[["frame", "y", "x"]].reset_index(), search_range *
                                  float(a_px), memory=int(memory), pos_columns=["y", "x"],
                                  t_column="frame", adaptive_stop=0.5 * float(a_px),
                                  adaptive_step=0.9)
        except trackpy.SubnetOversizeException as exc:
            raise AtomDefectError(
                "Too many defects lie close together to link them into tracks; lower the "
                f"search range (now {search_range:g} lattice constants) or the memory.") from exc
        ids = pd.Series(linked["particle"].to_numpy(), index=linked["index"].to_numpy())
        raw.loc[ids.index] = ids.to_numpy() + offset
        offset += int(ids.max()) + 1
    # Track ids in order of first appearance (frame, then row in the table).
    order = out.assign(_raw=raw).sort_values(["frame"], kind="stable")["_raw"]
    renumber = {r: k for k, r in enumerate(dict.fromkeys(order.tolist()))}
    out["track_id"] = raw.map(renumber).astype(int)
    out[TRACK_CLASS_COLUMN] = track_classes(out)
    short = short_search_message(search_range)
    out.attrs["tracking"] = {"search_range_a": float(search_range), "memory": int(memory),
                             "a_px": float(a_px), "library": f"trackpy {trackpy.__version__}",
                             "changing_class": changing_class_tracks(out), "message": short}
    if short:
        out.attrs["messages"] = [*out.attrs.get("messages", []), short]
    return out


def changing_class_tracks(table: pd.DataFrame) -> tuple[int, int]:
    """``(changing, tracks)``: how many of the tracks over two or more frames are called more
    than one class from frame to frame, and how many such tracks there are."""
    if table.empty or "track_id" not in table.columns:
        return 0, 0
    linked = table[table["track_id"] >= 0]
    sizes = linked.groupby("track_id")["frame"].size()
    kinds = linked.groupby("track_id")["class"].nunique()
    long = sizes.index[sizes >= 2]
    return int((kinds[long] > 1).sum()), len(long)


#: A track whose calls in frame order form two runs of at least this many frames each changed
#: class once and kept it: an event in the specimen (a vacancy that loses its second atom, one
#: that takes an O), not a split the microscope cannot make.
EVENT_RUN_FRAMES = 2


def class_events(table: pd.DataFrame) -> dict[str, int]:
    """Tracks that change class once and keep it (:data:`EVENT_RUN_FRAMES`), counted by change
    (``{"V_S → V_S2": 11}``)."""
    if table.empty or "track_id" not in table.columns:
        return {}
    events: dict[str, int] = {}
    linked = table[table["track_id"] >= 0].sort_values(["track_id", "frame"])
    for _, rows in linked.groupby("track_id"):
        cls = rows["class"].astype(str).to_numpy()
        if len(cls) < 2 * EVENT_RUN_FRAMES:
            continue
        switch = np.flatnonzero(cls[1:] != cls[:-1])
        if len(switch) == 1 and EVENT_RUN_FRAMES <= switch[0] + 1 <= len(cls) - EVENT_RUN_FRAMES:
            key = f"{cls[0]} → {cls[-1]}"
            events[key] = events.get(key, 0) + 1
    return events


def changing_class_message(table: pd.DataFrame) -> str | None:
    """A sentence when some tracks change class from frame to frame (``None`` otherwise): those
    that change once and keep it (events) apart from those whose calls go back and forth."""
    changing, tracks = changing_class_tracks(table)  # (a filtered table keeps its attrs: count)
    if not changing:
        return None
    events = class_events(table)
    n_events = sum(events.values())
    parts = []
    if n_events:
        listed = ", ".join(f"{k} {n}" for k, n in sorted(events.items(), key=lambda kv: -kv[1]))
        parts.append(f"{n_events} of {tracks} tracks change class once and keep it ({listed}): "
                     "events in the specimen, kept frame by frame in the class column")
    if changing > n_events:
        parts.append(f"{changing - n_events} of {tracks} tracks are called more than one class "
                     "back and forth (at a microscope that hardly tells the classes apart it is "
                     "the split)")
    return ("; ".join(parts) + f". The CSV's {TRACK_CLASS_COLUMN} gives each track the class its "
            "frames add up to.")


def track_frames(table: pd.DataFrame) -> np.ndarray:
    """Number of frames of each row's track (1 for a defect in no track, ``track_id`` -1).

    At a low dose per frame most false calls are seen in one frame only, while a defect of the
    specimen persists: on a simulated MoS2 movie at 3e4 e/Å² a frame, every one of 121
    detections in one-frame tracks was false, 11 of 157 in tracks of six frames or more.
    """
    if len(table) == 0 or "track_id" not in table.columns:
        return np.ones(len(table), int)
    ids = table["track_id"].astype(int)
    frames = table.groupby(ids)["frame"].transform("nunique").to_numpy(int)
    return np.where(ids.to_numpy() < 0, 1, frames)


def persistent_defects(table: pd.DataFrame, min_frames: int) -> pd.DataFrame:
    """The rows of a linked movie table (:func:`link_tracks`) whose track spans at least
    ``min_frames`` frames (``attrs`` kept, ``attrs["min_track_frames"]`` set).

    Raises
    ------
    AtomDefectError
        If ``min_frames`` is below 1.
    """
    if int(min_frames) < 1:
        raise AtomDefectError(f"A defect is seen in at least 1 frame; {min_frames} frames is "
                              "not a threshold.")
    out = table[track_frames(table) >= int(min_frames)].copy()
    out.attrs = {**table.attrs, "min_track_frames": int(min_frames)}
    return out


def track_layer_data(table: pd.DataFrame) -> np.ndarray:
    """Data of a napari Tracks layer: ``(track_id, frame, row, col)`` rows sorted by track and
    frame (tracks seen in one frame only are left out: a Tracks layer draws lines).

    Parameters
    ----------
    table : DataFrame
        Defects with ``track_id``, ``frame``, ``y_px``, ``x_px``.

    Returns
    -------
    ndarray
        ``(N, 4)`` float array.
    """
    t = table[["track_id", "frame", "y_px", "x_px"]].astype(float)
    t = t[t["track_id"] >= 0]
    sizes = t.groupby("track_id")["frame"].transform("size")
    t = t[sizes > 1].sort_values(["track_id", "frame"])
    return t.to_numpy(float).reshape(-1, 4)


def counts_per_frame(table: pd.DataFrame, frames: Sequence[int] | None = None,
                     classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Number of defects per class in every frame.

    Parameters
    ----------
    table : DataFrame
        Defects with ``frame`` and ``class``.
    frames : sequence of int, optional
        Frames to list (frames without defects get zeros); default: the table's frames.
    classes : sequence of str, optional
        Classes to count, in order; default: the run's ``table.attrs["classes"]`` (legacy MoS2
        classes without it), then any other class in the table (e.g. added by hand).

    Returns
    -------
    DataFrame
        Index ``frame``, one integer column per defect class.
    """
    frames = sorted(set(table["frame"].astype(int))) if frames is None else list(frames)
    if classes is None:
        classes = tuple(table.attrs.get("classes") or LEGACY_CLASSES)
        seen = sorted(set(table["class"].astype(str)) - set(classes))
        classes = tuple(classes) + tuple(seen)
    counts = pd.crosstab(table["frame"].astype(int), table["class"].astype(str))
    counts = counts.reindex(index=frames, columns=list(classes), fill_value=0)
    counts.index.name = "frame"
    return counts.astype(int)


def _find_key(meta: Any, key: str, depth: int = 0) -> Any:
    if depth > 6:
        return None
    if isinstance(meta, dict):
        if key in meta:
            return meta[key]
        for value in meta.values():
            found = _find_key(value, key, depth + 1)
            if found is not None:
                return found
    return None


def dose_per_frame(metadata: dict | None) -> float | list[float] | None:
    """The electron dose per frame (e/Å²) an image's metadata tells, if any.

    No reader of this plugin finds a dose in the vendors' files yet; the documented key
    ``dose_e_per_A2_per_frame`` (a number, or one number per frame) is looked up anywhere in
    the metadata (e.g. ``layer.metadata["atomdefect"]`` or the file's original metadata).

    Returns
    -------
    float, list of float or None
    """
    value = _find_key(metadata or {}, DOSE_KEY)
    if value is None:
        return None
    try:
        arr = np.asarray(value, float)
    except (TypeError, ValueError):
        return None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        return None
    return float(arr) if arr.ndim == 0 else arr.ravel().tolist()


def cumulative_dose(dose: float | Sequence[float] | np.ndarray | None,
                    frames: Sequence[int] | np.ndarray) -> np.ndarray | None:
    """Cumulative dose (e/Å²) at the end of each of ``frames`` (0-based frame indices)."""
    if dose is None:
        return None
    frames = np.asarray(list(frames), int)
    if np.ndim(dose) == 0:
        return (frames + 1) * float(np.asarray(dose, float))
    per = np.asarray(dose, float)
    if frames.size and frames.max() >= per.size:
        return None
    return np.cumsum(per)[frames]


__all__ = ["DOSE_KEY", "counts_per_frame", "cumulative_dose", "dose_per_frame",
           "iter_detect_frames", "lattice_drift", "link_tracks", "track_layer_data"]
