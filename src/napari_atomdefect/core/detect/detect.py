"""Detection: image -> lattice -> normalised unit cells -> U-Net -> one defect table.

Every tile is read at its own cell's two sites only (its metal and its chalcogen column), so each
site is classified exactly once even though tiles overlap. Cells along the border whose metal site
lies outside the field are tiled too, for their chalcogen site. Probabilities are temperature-scaled
with the value fitted on held-out data when the model was trained, then calibrated per class and
turned into a class under the user's operating point (:mod:`.decision`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..cells.ladder import read_image_ladder, to_host_units, uses_host_units
from ..cells.lookup import CellLookup
from ..cells.normalize import image_context, prepare_image
from ..cells.tiles import (
    TileSpec,
    bin_image,
    iter_cell_tiles,
    mirrored_tiles,
    own_site_positions,
    tile_binning,
    with_tiles,
)
from ..cpu_share import CpuShare, torch_threads_for_free_cores
from ..errors import AtomDefectError
from ..io.blanked import blank_pixels, blanked_message, blanked_sites
from ..io.table import DEFECT_COLUMNS
from ..io.validate import MAX_NONFINITE_SHARE, as_analysis_image
from ..lattice.brightness_order import ORDER_NOTE, ORDER_UNDECIDED_NOTE
from ..lattice.grains import MAX_GRAINS, find_grains, misorientation_deg
from ..lattice.lattice import Lattice
from ..lattice.metal_rungs import METAL_ALLOY_NOTE, METAL_TWO_LEVELS_NOTE
from ..lattice.sites import within_field
from ..materials.columns import (
    HEAVIER_SUBSTITUENT,
    LEGACY_CLASSES,
    antisite_class,
    lighter_than_host,
    lookup_class,
    segment_classes,
    site_choices,
    supported_substituents,
)
from ..materials.materials import Material, get_material
from ..parallel import blas_in_one_thread
from ..sampling import sample_bilinear
from . import plain_cells as plain
from .alloy_calibration import partner_share, vegard_calibration
from .antisites import antisite_calls
from .blur import blur_message, column_fwhm_nm
from .clipping import clipped_columns, clipping_message
from .coarse import (
    coarse_message,
    enlarged,
    enlargement,
    from_enlarged,
    reads_coarse_enlarged,
)
from .decision import (
    NEUTRAL,
    RunClasses,
    card_calibration,
    format_operating_point,
    parse_operating_point,
    run_classes,
    site_decisions,
)
from .edge import crowded_edge_message, edge_adjusted
from .image_fit import (
    PARTNER_MAJORITY_SHARE,
    ModelFitWarning,
    assess_fit,
    counts_as_flagged,
    flagged_fraction_message,
    heavier_suggestion,
    other_host_reading,
    partner_host_substituents,
    partner_majority_message,
    partner_vacancy_message,
    read_heavier_substituent,
    strained_reading_message,
    uniform_substitution_message,
)
from .light_gap import light_gap, with_image_split
from .median_rung import (
    host_rung_message,
    keep_host_rung,
    keep_median_rung,
    median_rung_message,
)
from .overlap import class_overlaps, overlap_message
from .rungs import EQUAL_HALVES, split_heavy_rungs, split_vacancy_rung
from .scan_lines import scan_line_message, scan_line_runs
from .site_rows import site_table

if TYPE_CHECKING:
    from ..models.registry import ModelInfo

def probability_columns(classes: tuple[str, ...] = LEGACY_CLASSES) -> tuple[str, ...]:
    """Per-site probability columns of a run with defect ``classes``: ``p_metal, p_V_Mo,
    p_chalcogen, p_V_S, ...`` (the site choices, pristine first)."""
    metal, chalcogen = site_choices(classes)
    return tuple(f"p_{c}" for c in metal + chalcogen)



def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c not in ("class", "source") else object)
                         for c in DEFECT_COLUMNS})


def _decide(pm: np.ndarray, px: np.ndarray, calib: dict | None, op: Mapping[str, float],
            run: RunClasses) -> tuple[dict, dict]:
    """Per tile, the columns of its metal and chalcogen site: class and confidence after
    calibration, the run's substituent choice and the operating point, defect probability and the
    calibrated probability of every class of the sublattice (``nan`` for the other sublattice's)."""
    d = site_decisions(pm, px, calib, op, run.model_classes, run.detector_classes)
    qm, qx = d["q_metal"], d["q_chalcogen"]
    m_choices, x_choices = d["metal_choices"], d["chalcogen_choices"]
    n = len(qm)
    nan = np.full(n, np.nan)
    metal = {"class": d["metal_class"], "confidence": d["metal_conf"], "p_defect": 1 - qm[:, 0],
             **{f"p_{c}": qm[:, i] for i, c in enumerate(m_choices)},
             **{f"p_{c}": nan for c in x_choices}}
    chalcogen = {"class": d["chalcogen_class"], "confidence": d["chalcogen_conf"],
                 "p_defect": 1 - qx[:, 0], **{f"p_{c}": nan for c in m_choices},
                 **{f"p_{c}": qx[:, i] for i, c in enumerate(x_choices)}}
    return metal, chalcogen


def other_metal_calls(metal: dict, chalcogen: dict, metal_rows: np.ndarray,
                      probability: np.ndarray | None, name: str) -> tuple[dict, dict]:
    """The tiles' metal columns the detector calls pristine that lie on the other metal's rung of
    a Mo/W alloy (``probability`` per lattice metal site, :func:`~..cells.metal_alloy.
    other_metal_columns`; ``None``: no alloy read) called ``name`` (``W_Mo``), with that
    probability as confidence; its ``p_`` column joins both sublattices' (``nan`` on chalcogen
    sites)."""
    p = np.zeros(len(metal_rows))
    if probability is not None and len(probability):
        has = metal_rows >= 0
        p[has] = probability[metal_rows[has]]
    metal = dict(metal)
    call = (np.asarray(metal["class"]) == "metal") & (p >= 0.5)
    metal["class"] = np.where(call, name, np.asarray(metal["class"], object)).astype(object)
    metal["confidence"] = np.where(call, p, metal["confidence"])
    metal[f"p_{name}"] = p
    return metal, {**chalcogen, f"p_{name}": np.full(len(p), np.nan)}


def _check_channels(n: int | None, info: ModelInfo, classes: tuple[str, ...]) -> None:
    """The detector has one output channel (``n``) per segment class of its card's classes."""
    from ..models.registry import ModelError

    if n is not None and n != len(segment_classes(classes)):
        raise ModelError(f"The detector of model {info.name} has {n} output channels, but its card "
                         f"lists {len(classes)} defect classes ({len(classes) + 3} channels); the "
                         "card and the weights come from different models.")


@dataclasses.dataclass
class _Classifier:
    """What every grain of one run is classified with: the material, the model's card, the run's
    classes, the network on its device, the calibration, the operating point, the CPU share."""

    mat: Material
    card: dict
    run: RunClasses
    net: Any
    dev: Any
    calib: dict | None
    op: Mapping[str, float]
    share: CpuShare
    batch_size: int
    #: Whether a coarse sampling is read enlarged (:mod:`.coarse`): the bundled detectors and
    #: those fine-tuned on an enlarged image (:func:`.coarse.reads_coarse_enlarged`); an older
    #: fine-tuned one reads the cells as its fine-tuning read them.
    enlarge: bool = True
    #: Whether the columns are blurred beyond the training images' (:mod:`.blur`): the fit
    #: check's inverted-image test then asks for a plainly negative skewness.
    blurred: bool = False


#: A tile whose own metal or chalcogen site the detector calls with less probability than this
#: is read a second time, mirrored about its metal–chalcogen line (a mirror of the lattice), and
#: the two readings are averaged: eight multislice MoS2 images `V_S` 0.878 -> 0.899, `O_S`
#: 0.638 -> 0.686; the benchmarks' held-out images of our simulator MoS2 `O_S` 0.677 -> 0.706,
#: WSe2 `Te_Se` 0.866 -> 0.906, WS2 `V_S` 0.870 -> 0.860 (the same as reading every tile twice;
#: docs/benchmarks.md). About one tile in eight of a
#: defect-poor image is read again, half or more of an alloy's (docs/benchmarks.md). The choice
#: needs the probabilities on the host: one synchronisation per batch on a GPU.
SECOND_VIEW_BELOW = 0.9
#: The ladder's reading of the median column counts as sure from this posterior (a median doubly
#: substituted column, or a random alloy read with about as many doubly as singly substituted
#: columns, then lets :func:`~.rungs.split_heavy_rungs` split near-equal halves).
SURE_MEDIAN = 0.9
#: In mixed precision (:func:`~..models.site_forward.cpu_precision`) a tile whose bfloat16 reading
#: leaves a site below this probability is read again in float32 before anything is decided:
#: bfloat16 moved the probabilities of confident tiles by at most 0.01 (the 99th percentile
#: 0.0006–0.005 on simulated, multislice and real images), so every tile the float32 reading
#: would find uncertain (:data:`SECOND_VIEW_BELOW`) is read in float32 (its mirrored view in
#: bfloat16: :func:`~..models.site_forward.cpu_precision`).
FP32_RECHECK_BELOW = 0.95


def _two_view_probabilities(net: Any, batch: Any, own: np.ndarray, source: np.ndarray,
                            binning: int, host_level: float | None, context: np.ndarray | None,
                            temperature: float, dev: Any, classes: tuple[str, ...]
                            ) -> tuple[Any, Any]:
    """Site probabilities of one batch of tiles under one ladder reading: the tiles as cut, and
    for the tiles with an uncertain site (:data:`SECOND_VIEW_BELOW`) the mean with their mirrored
    view. Call within ``torch.inference_mode()``."""
    import torch

    from ..models.site_forward import cpu_precision, tile_site_probabilities

    tiles, ctx = ((batch.tiles, context) if host_level is None
                  else to_host_units(batch.tiles, context, host_level))
    precision = cpu_precision(dev)
    q_m, q_x = tile_site_probabilities(net, tiles, own, temperature, dev, classes, ctx,
                                       bf16=precision != "fp32")

    def below(limit: float) -> np.ndarray:
        return (((q_m.max(1).values < limit).cpu().numpy() & batch.has_metal)
                | (q_x.max(1).values < limit).cpu().numpy())

    if precision == "mixed" and (recheck := below(FP32_RECHECK_BELOW)).any():
        again = np.flatnonzero(recheck)
        f_m, f_x = tile_site_probabilities(net, tiles[again], own[again], temperature, dev,
                                           classes, ctx, bf16=False)
        at = torch.as_tensor(again, device=q_m.device)
        q_m, q_x = q_m.clone(), q_x.clone()
        q_m[at], q_x[at] = f_m, f_x
    unsure = below(SECOND_VIEW_BELOW)
    if not unsure.any():
        return q_m, q_x
    which = np.flatnonzero(unsure)
    mirrored, sites = mirrored_tiles(source, batch.subset(which), own[which], binning)
    if host_level is not None:
        mirrored, _ = to_host_units(mirrored, None, host_level)
    r_m, r_x = tile_site_probabilities(net, mirrored, sites, temperature, dev, classes, ctx,
                                       bf16=precision != "fp32")
    rows = torch.as_tensor(which, device=q_m.device)
    q_m, q_x = q_m.clone(), q_x.clone()
    q_m[rows] = (q_m[rows] + r_m) / 2
    q_x[rows] = (q_x[rows] + r_x) / 2
    return q_m, q_x


def _with_plain_cells(read: Callable[[Any, np.ndarray], tuple[Any, Any]], batch: Any,
                      own: np.ndarray, skip: np.ndarray, is_plain: np.ndarray
                      ) -> tuple[Any, Any]:
    """Site probabilities of a batch whose plain cells the detector reads in a sample
    (:mod:`.plain_cells`): the ``skip`` tiles take the sampled plain tiles' mean where every
    one of those is called pristine, else they are read too. Call within inference mode."""
    import torch

    kept = np.flatnonzero(~skip)
    r_m, r_x = read(batch.subset(~skip), own[~skip])
    sampled = np.flatnonzero(is_plain[kept])     # rows of the read tiles that were plain
    if plain.confirmed(r_m[sampled].cpu().numpy(), r_x[sampled].cpu().numpy()):
        s_m = r_m[sampled].mean(0, keepdim=True).expand(int(skip.sum()), -1)
        s_x = r_x[sampled].mean(0, keepdim=True).expand(int(skip.sum()), -1)
    else:
        s_m, s_x = read(batch.subset(skip), own[skip])
    p_m = torch.empty((len(batch), r_m.shape[1]), dtype=r_m.dtype, device=r_m.device)
    p_x = torch.empty((len(batch), r_x.shape[1]), dtype=r_x.dtype, device=r_x.device)
    at_kept = torch.as_tensor(kept, device=r_m.device)
    at_skip = torch.as_tensor(np.flatnonzero(skip), device=r_m.device)
    p_m[at_kept], p_x[at_kept] = r_m, r_x
    p_m[at_skip], p_x[at_skip] = s_m, s_x
    return p_m, p_x


def _classify_grain(arr: np.ndarray, lattice: Lattice, clf: _Classifier, dev_text: str,
                    progress: tuple[float, float], grain_text: str) -> Generator[dict, None, tuple]:
    """Classify the sites of one grain's ``lattice``; yields progress (``progress``: the span of
    the run's fraction this grain covers), returns ``(sites, fit, ladder, levels, dev_text,
    partner_reading)`` — the last a function giving the substituents to name for the layer read
    as its S/Se partner host (:func:`~.image_fit.partner_host_substituents`), computed on demand."""
    import torch

    mat, card, run, net, dev = clf.mat, clf.card, clf.run, clf.net, clf.dev
    calib, op, share, batch_size = clf.calib, clf.op, clf.share, clf.batch_size
    # A coarse sampling (a survey image): the columns read on the image enlarged (coarse.py).
    k = enlargement(lattice.a_px, arr.shape) if clf.enlarge else 1
    coarse = coarse_message(lattice.a_px, lattice.pixel_size_nm, k) if clf.enlarge else None
    if k > 1:
        arr, lattice = enlarged(arr, lattice, k)

    # (the ladder of an alloy takes a second or two: said, not a bar standing still at 0 %)
    yield {"step": "ladder", "fraction": progress[0],
           "message": f"Reading the columns' Z-contrast ladder{grain_text}…"}
    prepared = prepare_image(arr, lattice)  # read once, by the fit check and the levels
    ladder = read_image_ladder(prepared, lattice, mat, tuple(run.substituents))
    # (each item is a point where Cancel takes effect: a trial waited 3–5 s for it on a loaded
    # machine, through the ladder, the fit check and the decisions after the network)
    yield {"step": "ladder", "fraction": progress[0],
           "message": f"Checking the image against the model{grain_text}…"}
    # A heavier substituent not chosen that explains the image better (the median column back
    # on the host's rung: the host columns are then the median ones, not where the chosen
    # substituents' reading puts them; or, past a tenth of it, far likelier levels), and the
    # substituents to suggest with it.
    heavier, with_heavier = read_heavier_substituent(prepared, lattice, mat,
                                                     tuple(run.substituents), ladder)
    suggested = (heavier_suggestion(mat, tuple(run.substituents), heavier, with_heavier)
                 if heavier and with_heavier is not None else None)
    fit = assess_fit(prepared.flat, lattice, mat, model_material=card.get("material") or mat.name,
                     smoothed=prepared.smoothed, substituents=tuple(run.substituents),
                     host_level=(1.0 if ladder.median_class == "chalcogen" or heavier
                                 else ladder.host_level),
                     heavier_explains=heavier, suggested_substituents=suggested,
                     blurred=clf.blurred)

    def partner_reading(arr: np.ndarray = arr, lattice: Lattice = lattice) -> tuple[str, ...]:
        # (the image read again as the S/Se partner host — a second ladder fit, 0.8 s on a real
        # image — asked for only where its sentence is said, from the same prepared image)
        return partner_host_substituents(prepare_image(arr, lattice), lattice, mat, ladder)

    if not fit.fits:  # before the long part: a script learns it at once, the widget shows it
        warnings.warn(fit.summary, ModelFitWarning, stacklevel=3)
        yield {"step": "fit", "fraction": progress[0] + 0.02 * (progress[1] - progress[0]),
               "message": fit.summary, "fit": fit}
    levels = prepared.levels
    norm = prepared.normalised
    other_metal = prepared.other_metal  # (a Mo/W alloy: how probably each metal site is the other)
    context = image_context(levels)
    # Every chalcogen column's level (the heavy substituent's rungs and the vacancy rung are
    # split by them, rungs.py)
    chalc_sites = lattice.chalcogen_sites_px.reshape(-1, 2)
    chalc_levels = sample_bilinear(prepared.smoothed, chalc_sites[:, 0],
                                   chalc_sites[:, 1]) - levels.background
    # A host-unit detector reads the tiles under every probable reading of the ladder, its
    # probabilities averaged with the readings' weights (one reading: one pass).
    readings = ladder.alternatives() if uses_host_units(card["detector"]) else [(None, 1.0)]
    # Cells whose two columns sit plainly on the host's levels: read in a sample (plain_cells) —
    # unless an operating point of the detector's classes was lowered below neutral: the user
    # asks for the faint calls too (a trial at 0.15 lost three O_S calls at 0.05–0.09 on plain
    # S2 columns). The antisite's is not the detector's: it is read from the levels.
    plain_sites: tuple[np.ndarray, np.ndarray] | None = None
    lowered = any(float(v) < NEUTRAL for c, v in op.items() if c != antisite_class(mat).name)
    if (plain.enabled() and not lowered and len(readings) == 1
            and ladder.median_class == "chalcogen"):
        metal_sites = lattice.metal_sites_px.reshape(-1, 2)
        metal_levels = sample_bilinear(prepared.smoothed, metal_sites[:, 0],
                                       metal_sites[:, 1]) - levels.background
        brighter = plain.brighter_classes(run.classes, get_material(run.material))
        plain_sites = (
            plain.in_band(*plain.relative_levels(metal_levels), "metal", brighter["metal"])
            & within_field(metal_sites, arr.shape, lattice.a_px),
            plain.in_band(*plain.relative_levels(chalc_levels), "chalcogen",
                          brighter["chalcogen"])
            & within_field(chalc_sites, arr.shape, lattice.a_px))
    del prepared  # the flattened image, its smoothing and the offset: not needed any more
    temperature = float(card["detector"].get("temperature", 1.0))
    spec = TileSpec(**card["detector"].get("tile", {}))
    metal_lookup = CellLookup(lattice.metal_index)
    chalc_lookup = CellLookup(lattice.chalcogen_index)
    binning = tile_binning(lattice.a_px, spec)
    source = bin_image(norm, binning)  # the mirrored views are sampled from it
    n_tiles = lattice.n_cells + int((metal_lookup.rows(lattice.chalcogen_index) < 0).sum())
    metal_rows, chalc_rows, p_metal, p_chalcogen = [], [], [], []
    done = 0
    # Other programs keeping cores busy: threads beyond the free cores only contend with them.
    with torch_threads_for_free_cores(share, dev.type == "cpu") as (free, threads):
        if free < threads:
            # (short: the Detect dock's device line had wrapped to three lines)
            dev_text = f"cpu ({free} of {threads} threads: {share.busy_text()})"
        def read(tiles: Any, at: np.ndarray) -> tuple[Any, Any]:
            tiles = with_tiles(tiles, source, arr.shape, binning)  # (those read: sampled now)
            p_m = p_x = None
            for host_level, weight in readings:
                q_m, q_x = _two_view_probabilities(
                    net, tiles, at, source, binning, host_level, context, temperature,
                    dev, run.model_classes)
                p_m = weight * q_m if p_m is None else p_m + weight * q_m
                p_x = weight * q_x if p_x is None else p_x + weight * q_x
            return p_m, p_x

        for batch in iter_cell_tiles(norm, lattice, spec, batch_size=batch_size, border=True,
                                     lazy=True):
            c_rows = chalc_lookup.rows(batch.index)
            m_rows_b = np.where(batch.has_metal, metal_lookup.rows(batch.index), -1)
            own = own_site_positions(batch, lattice, chalcogen_rows=c_rows)
            skip = np.zeros(len(batch), bool)
            if plain_sites is not None:
                is_plain = plain.plain_cells(plain_sites[0], plain_sites[1], m_rows_b, c_rows,
                                             batch.has_metal)
                skip = is_plain & ~plain.sample(is_plain)
            # Inference mode around the forward pass only, never across a ``yield``: a consumer
            # that stops here (Cancel) must not leave its thread in inference mode. The
            # probabilities stay on the device until the end (one copy to the host per batch
            # only where plain cells were sampled).
            with torch.inference_mode():
                if not skip.any():
                    p_m, p_x = read(batch, own)
                else:
                    p_m, p_x = _with_plain_cells(read, batch, own, skip, is_plain)
            p_metal.append(p_m)
            p_chalcogen.append(p_x)
            metal_rows.append(m_rows_b)
            chalc_rows.append(c_rows)
            done += len(batch)
            yield {"step": "detect",
                   "fraction": progress[0] + (progress[1] - progress[0]) * done / max(n_tiles, 1),
                   "message": f"Classified {done}/{n_tiles} tiles (unit cells and border "
                              f"sites){grain_text}"}
    yield {"step": "decide", "fraction": progress[1],
           "message": f"Deciding each column's class{grain_text}…"}
    n_m, n_x = (len(c) for c in site_choices(run.model_classes))
    with torch.inference_mode():
        pm = torch.cat(p_metal).cpu().numpy() if p_metal else np.zeros((0, n_m), np.float32)
        px = torch.cat(p_chalcogen).cpu().numpy() if p_chalcogen else np.zeros((0, n_x), np.float32)
    metal, chalcogen = _decide(pm, px, calib, op, run)
    m_rows = np.concatenate(metal_rows) if metal_rows else np.zeros(0, int)
    if run.metal_substituents:  # the other metal of a Mo/W alloy, from its columns' rung
        metal, chalcogen = other_metal_calls(metal, chalcogen, m_rows, other_metal,
                                             f"{run.metal_substituents[0]}_{mat.metal}")
    c_rows = np.concatenate(chalc_rows) if chalc_rows else np.zeros(0, int)
    tile_levels = np.where(c_rows >= 0, chalc_levels[np.maximum(c_rows, 0)], np.nan) if len(
        chalc_levels) else np.full(len(c_rows), np.nan)
    # Each chalcogen column's level in chalcogen units (the median column 1; a column of the
    # sites table too).
    column_levels = tile_levels / max(levels.chalcogen - levels.background, 1e-12)
    # Calls of the classes below the host column (the single vacancy, the light substituent) on
    # the host's rung are host columns the detector misread past its training: lifted first, so
    # that the heavy rungs' split counts the host columns it has (a WSe2 + 47 % Te layer with S
    # chosen had its Se2 columns called S_Se, and its Te2_Se2 stayed Te_Se).
    lifted = []
    for below in (f"V_{mat.chalcogen}", f"{mat.light_substituent}_{mat.chalcogen}"):
        chalcogen, moved_up = keep_host_rung(chalcogen, column_levels, ladder, below)
        lifted.append(moved_up)
    # (an S/Se layer past half Se: its Se2 and S + Se columns come in near-equal numbers, as
    # the two orders of S + Se would; the ladder tells them apart — its median Se2 column, or
    # its random-alloy reading with about as many Se2 as S + Se columns, the orders split as
    # the microscopes split them: an independent simulator's WS2 + 64 % Se, its two rungs 8
    # spreads apart, had 120 of 224 Se2_S2 called Se_S)
    heavy, x = HEAVIER_SUBSTITUENT.get(mat.chalcogen), mat.chalcogen
    single, doubly = f"{heavy}_{x}", f"{heavy}2_{x}2"
    doubly_common = ladder.confidence >= SURE_MEDIAN and (ladder.median_class == doubly or (
        not ladder.ordered and ladder.shares.get(single, 0.0) > 0
        and ladder.shares.get(doubly, 0.0) >= ladder.shares[single] / EQUAL_HALVES))
    chalcogen, _ = split_heavy_rungs(chalcogen, tile_levels, mat, tuple(run.substituents), op,
                                     doubly_common)
    chalcogen, _ = split_vacancy_rung(chalcogen, tile_levels, mat, tuple(run.substituents), op,
                                      beyond_training=fit.beyond_contrast)
    chalcogen, moved = keep_median_rung(chalcogen, column_levels, ladder)
    overruled = median_rung_message(moved, ladder, fit.measurements.metal_to_chalcogen)
    # The host metal in a chalcogen column (an antisite): read from the levels when chosen, said
    # where columns look like one when not (the fit check's heavier substituent says it first).
    chalcogen, antisites_said = antisite_calls(
        chalcogen, column_levels, levels.metal_to_chalcogen, ladder.host_level,
        fit.measurements.metal_spread, mat, tuple(run.substituents), bool(run.antisites),
        float(op.get(antisite_class(mat).name, NEUTRAL)))
    if (fit.heavier or clf.blurred) and not run.antisites:
        # (blurred columns: their levels are smeared into each other — a frame out of focus
        # was told of an antisite, a trial)
        antisites_said = None
    for name in chalcogen:
        if name not in metal:  # (the antisite's probability: NaN on the metal sites)
            metal[name] = np.full(len(m_rows), np.nan)
    for said in (coarse, overruled, *(host_rung_message(m) for m in lifted), antisites_said):
        if said:
            warnings.warn(said, ModelFitWarning, stacklevel=3)
            fit.messages.append(said)
    chalcogen["level"] = column_levels
    metal["level"] = np.full(len(tile_levels), np.nan)
    sites = site_table(lattice, m_rows, c_rows, metal, chalcogen)
    # Calls on columns the edge of the field cuts: their confidence is lower (edge.py).
    sites = edge_adjusted(sites, arr.shape, lattice.a_px)
    if k > 1:  # (back in the image's pixels)
        sites = sites.assign(y_px=from_enlarged(sites["y_px"].to_numpy(float), k),
                             x_px=from_enlarged(sites["x_px"].to_numpy(float), k))
    return sites, fit, ladder, levels, dev_text, partner_reading


def _metal_level_note(message: str, lattice: Lattice) -> bool:
    """Whether ``message`` is the lattice's reading of its metal columns' levels (a Mo/W alloy,
    two levels): not said of blurred columns, whose levels are smeared into each other."""
    alloy = lattice.metal_alloy
    return (METAL_ALLOY_NOTE in message or METAL_TWO_LEVELS_NOTE in message
            or (alloy is not None and not alloy.named
                and message == alloy.message(lattice.material)))


def _unless_another_proposed(other_host: str | None, proposed: str | None) -> str | None:
    """``other_host``, unless the fit check proposed a different material (one name said)."""
    return other_host if proposed in (None, other_host) else None


def _one_calibration(lattices: list[Lattice], sites: pd.DataFrame) -> list[Lattice]:
    """Vegard's law over the columns of every grain (an S/Se alloy calibrated from the host's
    lattice constant), applied to the first grain's lattice and shared by all: one image, one
    pixel size."""
    first = vegard_calibration(lattices[0], sites)
    if first is lattices[0]:
        return lattices
    return [first] + [dataclasses.replace(la, pixel_size_nm=first.pixel_size_nm,
                                          pixel_size_lattice_nm=first.pixel_size_lattice_nm)
                      for la in lattices[1:]]


def iter_detect(image: np.ndarray, pixel_size_nm: float | None = None, material: str = "MoS2",
                model: str | os.PathLike | ModelInfo | None = None, device: str = "auto",
                calibration: str = "user", lattice: Lattice | Sequence[Lattice] | None = None,
                batch_size: int = 1024,
                operating_point: str | Mapping[str, float] | None = None, *,
                substituents: str | Sequence[str] | None = None,
                region: np.ndarray | tuple[float, float, float, float] | None = None,
                grains: bool = True) -> Iterator[dict]:
    """Run detection step by step, yielding progress; the last item holds the result.

    ``operating_point``: per defect class, see :func:`.decision.parse_operating_point` (default
    neutral: the most probable class); ``model`` may also be a loaded ``ModelInfo`` (default:
    :func:`~..models.registry.default_model_name` of ``material`` and ``substituents``);
    ``substituents``, ``region``: see :func:`detect` (``region`` is not used when ``lattice`` is
    given: the lattice holds the sites to analyse). ``lattice`` may be one lattice or the
    lattices of several grains (:func:`~..lattice.grains.find_grains`); without it, every grain
    of the field is found (``grains=False``: the first only).

    Yields
    ------
    dict
        ``{"step": str, "fraction": float, "message": str}`` while working, then
        ``{"done": True, "defects": DataFrame, "sites": DataFrame, "lattice": Lattice,
        "lattices": list, ...}`` (``lattice``: the first grain's, which holds the calibration;
        the sites and defects of several grains carry a ``grain`` column, 0 for the first).
    """
    # (numpy's BLAS on one thread for the run: its spinning threads had taken a core from the
    # network and the pool's threads, parallel.py)
    with blas_in_one_thread():
        return (yield from _detect_steps(
            image, pixel_size_nm, material, model, device, calibration, lattice, batch_size,
            operating_point, substituents=substituents, region=region, grains=grains))


def _detect_steps(image: np.ndarray, pixel_size_nm: float | None, material: str,
                  model: str | os.PathLike | ModelInfo | None, device: str, calibration: str,
                  lattice: Lattice | Sequence[Lattice] | None, batch_size: int,
                  operating_point: str | Mapping[str, float] | None, *,
                  substituents: str | Sequence[str] | None,
                  region: np.ndarray | tuple[float, float, float, float] | None,
                  grains: bool) -> Generator[dict, None, None]:
    """The steps of :func:`iter_detect` (its arguments, its items)."""
    from ..device import select_device
    from ..models.registry import load_detector, resolve_model

    mat = get_material(material)
    info = resolve_model(model, mat.name, substituents)
    card = info.card
    if "detector" not in card:
        raise AtomDefectError(f"Model {info.name} has no detector (stage 2).")
    run = run_classes(card, mat.name, substituents)
    _check_channels((card["detector"].get("architecture") or {}).get("n_classes"), info,
                    run.model_classes)
    op = parse_operating_point(operating_point, run.classes)  # bad values stop before any work
    blank = blank_pixels(image)  # (NaN pixels: read as the median, their columns left out)
    arr = as_analysis_image(image)
    if run.message:
        warnings.warn(run.message, ModelFitWarning, stacklevel=2)
    dev, dev_text = select_device(device)
    share = CpuShare()  # how busy other programs keep the cores, measured until the network
    # (with a lattice given — the dock's Run all found it first — the columns are read next)
    yield {"step": "lattice", "fraction": 0.0,
           "message": "Finding the lattice…" if lattice is None else "Reading the columns…"}
    if lattice is None:
        # Its warnings (e.g. a replaced calibration) reach the caller; the same sentences are
        # attached to the result as ``attrs["messages"]``.
        # (a model of another material names its own substituents: those of this one count)
        lattice_subs = tuple(d for d in run.substituents if d in supported_substituents(mat)) \
            + run.metal_substituents  # (named: a Mo/W alloy is read in a selenide too)
        lattices = find_grains(arr, mat, pixel_size_nm=pixel_size_nm, calibration=calibration,
                               region=region, substituents=lattice_subs,
                               max_grains=MAX_GRAINS if grains else 1, blank=blank)
    else:
        lattices = [lattice] if isinstance(lattice, Lattice) else list(lattice)
    yield {"step": "lattice", "fraction": 0.0,
           "message": f"Reading the columns of {sum(la.n_cells for la in lattices)} unit cells…"}
    # Sublattices whose brightness order the image does not settle (a Janus layer): the metal
    # sites may be on the chalcogen columns — a warning, before the long part.
    for note in [m for m in lattices[0].messages if ORDER_UNDECIDED_NOTE in m]:
        warnings.warn(note, ModelFitWarning, stacklevel=2)
    # Intensities cut at the image's ends (a saturated detector, a stretched export): the
    # brightness every class rests on is off — said first, where the user looks.
    clipped = clipping_message(clipped_columns(arr, lattices[0]), mat.metal)
    if clipped:
        warnings.warn(clipped, ModelFitWarning, stacklevel=2)
    # Columns wider than any the model was trained on (out of focus, a wide probe): defects
    # fade into their neighbours' tails and are missed — said before the long part too.
    column_fwhm = column_fwhm_nm(arr, lattices[0])
    blurred = blur_message(column_fwhm, card.get("material") or mat.name)
    if blurred:
        warnings.warn(blurred, ModelFitWarning, stacklevel=2)
    net = load_detector(info, dev)
    _check_channels(getattr(getattr(net, "head", None), "out_channels", None), info,
                    run.model_classes)
    calib = card_calibration(card["detector"], run.model_classes)
    clf = _Classifier(mat, card, run, net, dev, calib, op, share, batch_size,
                      enlarge=reads_coarse_enlarged(card, info.bundled),
                      blurred=blurred is not None)
    parts, fits, ladders = [], [], []
    partner_reading = None  # (the first grain's: the image's reading, as its fit and ladder)
    levels = None
    weights = np.cumsum([0] + [la.n_cells for la in lattices]) / max(
        sum(la.n_cells for la in lattices), 1)
    for k, grain in enumerate(lattices):
        text = f" in grain {k + 1}/{len(lattices)}" if len(lattices) > 1 else ""
        sites, fit, ladder, grain_levels, dev_text, reading = yield from _classify_grain(
            arr, grain, clf, dev_text, (float(weights[k]), float(weights[k + 1])), text)
        partner_reading = partner_reading or reading
        if len(lattices) > 1:
            sites = sites.assign(grain=k)
        parts.append(sites)
        fits.append(fit)
        ladders.append(ladder)
        levels = grain_levels if levels is None else levels
    sites = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    fit, ladder = fits[0], ladders[0]  # the first (largest) grain's reading of the image
    blanked = None
    if blank is not None:  # (a lattice found without them: read from filled-in pixels)
        off = blanked_sites(blank, sites.y_px.to_numpy(), sites.x_px.to_numpy(),
                            lattices[0].a_px)
        if off.any():
            sites = sites[~off].reset_index(drop=True)
            blanked = blanked_message(int(off.sum()))
            warnings.warn(blanked, ModelFitWarning, stacklevel=2)
    # An S/Se alloy calibrated from the host's lattice constant: Vegard's law over the columns.
    lattices = _one_calibration(lattices, sites)
    lattice = lattices[0]
    defects = sites[~sites["class"].isin(["metal", "chalcogen"])].reset_index(drop=True)
    table = _empty_table() if defects.empty else pd.DataFrame({
        "y_px": defects.y_px, "x_px": defects.x_px,
        "y_nm": defects.y_px * lattice.pixel_size_nm, "x_nm": defects.x_px * lattice.pixel_size_nm,
        "class": defects["class"], "confidence": defects.confidence, "source": "model"})
    if len(lattices) > 1:
        table["grain"] = defects["grain"].to_numpy(int) if len(defects) else np.zeros(0, int)
    n_chalcogen = int((sites.sublattice == "chalcogen").sum())
    flaggable = sites["class"].map(lambda c: counts_as_flagged(c, tuple(run.substituents)))
    n_flagged = int(((sites.sublattice == "chalcogen") & flaggable).sum())
    lowered = any(v < NEUTRAL for v in op.values())  # (a class called more readily)
    flagged = flagged_fraction_message(n_flagged, n_chalcogen,
                                       format_operating_point(op, run.classes) if lowered
                                       else None, fits=fit.fits or fit.spread_only)
    if flagged:
        warnings.warn(flagged, ModelFitWarning, stacklevel=2)
    # Vacancy calls crowded along one edge: a distorted stretch of the scan, likelier than damage.
    crowded = crowded_edge_message(sites, arr.shape, lattice.a_px)
    if crowded:
        warnings.warn(crowded, ModelFitWarning, stacklevel=2)
    # Vacancy calls in a row along one scan line: a glitch of the scan (not where the model does
    # not fit the image: its calls line up along the lattice's rows then, and that is said).
    scan_line = (scan_line_message(scan_line_runs(sites, arr.shape, lattice.a_px, arr))
                 if fit.fits else None)
    if scan_line:
        warnings.warn(scan_line, ModelFitWarning, stacklevel=2)
    # Chalcogen sites called substituted by a chosen alloying chalcogen (not pristine, not flagged).
    substituted = ((sites.sublattice == "chalcogen") & (sites["class"] != "chalcogen")
                   & ~flaggable).to_numpy()
    called_classes = sorted(set(sites["class"][substituted]))
    called = "/".join(called_classes)
    # (S in a selenide dims the columns it is in: a pristine layer reads so at a high contrast)
    lighter = bool(called_classes) and all(
        lighter_than_host(lookup_class(c), mat.chalcogen) for c in called_classes)
    chalcogen_counts = sites["class"][sites.sublattice == "chalcogen"].value_counts().to_dict()
    other_host = _unless_another_proposed(
        other_host_reading(chalcogen_counts, n_chalcogen, mat), fit.proposed)
    uniform = None if fit.heavier else uniform_substitution_message(  # (else: "add Te" said)
        int(substituted.sum()), n_chalcogen, fit.measurements.excess_spread, called,
        fit.measurements.metal_to_chalcogen, other_host=other_host, lighter=lighter,
        material=mat.name)
    if uniform:
        warnings.warn(uniform, ModelFitWarning, stacklevel=2)
    # Mostly the partner chalcogen: the layer is the partner host's alloy (one material
    # proposed at a time: not when the fit check or the uniform reading named one already).
    majority = None
    if not (fit.proposed or fit.heavier or (uniform and other_host)) \
            and (partner := partner_share(sites, mat)) > PARTNER_MAJORITY_SHARE:
        # (the first grain's reading as the partner host, only for the sentence that names it)
        fit = dataclasses.replace(fit, partner_substituents=partner_reading())
        majority = partner_majority_message(partner, mat, fit.partner_substituents)
    if majority:
        warnings.warn(majority, ModelFitWarning, stacklevel=2)
    # Fewer partner atoms, still many: the single vacancies that left one have no class here.
    partner_vacancies = None if fit.proposed or fit.heavier or majority or (
        uniform and other_host) else partner_vacancy_message(partner_share(sites, mat), mat)
    if partner_vacancies:
        warnings.warn(partner_vacancies, ModelFitWarning, stacklevel=2)
    # A ladder reading that needs many vacancies or unchosen substituents (one sentence per
    # fact: not when the fit check, a uniform or a majority reading named the cause already).
    strained = None if (not fit.fits or fit.heavier or uniform or majority) else \
        strained_reading_message(ladder.point_share, mat, tuple(run.substituents))
    if strained:
        warnings.warn(strained, ModelFitWarning, stacklevel=2)
    # The median class read about as well as atoms replaced at random and as an ordered layer:
    # the calls weigh both readings, and the doubly substituted columns' count depends on which.
    ordered_tie = ladder.order_message(mat, weighed=uses_host_units(card["detector"])) or None
    if ordered_tie:
        warnings.warn(ordered_tie, ModelFitWarning, stacklevel=2)
    # Two defect classes this image's calls cannot tell apart (their sum is what to trust).
    overlaps = class_overlaps(sites)
    # (a user model that kept its base detector reads with the bundled one: "fine-tune it
    # again" told a trial's user to redo what had not changed the detector)
    # (fine-tuned: a model trained from scratch or continued with train-detector is not)
    training = card["detector"].get("training") or {}
    detector_tuned = bool(training.get("fine_tuned_from")) and not training.get(
        "kept_base_detector", False)
    overlap = overlap_message(overlaps, fine_tuned=detector_tuned)
    # The single vacancy and the light substituent, at a contrast whose microscopes may put
    # them within the noise of each other: said even where the detector's calls look sure.
    # (the contrast over the host column: the median one is a substituted column in an alloy)
    gap = light_gap(mat, tuple(run.substituents),
                    fit.measurements.metal_to_chalcogen / max(ladder.host_level, 1e-6),
                    fit.measurements.metal_spread)
    if gap is not None:  # (O in a sulfide: do the image's own columns show the split?)
        pair = sites[sites["class"].isin(gap.classes)]
        is_light = (pair["class"] == gap.classes[1]).to_numpy()
        gap = with_image_split(gap, mat.light_substituent,
                               pair["level"].to_numpy(float) / max(ladder.host_level, 1e-6),
                               int(is_light.sum()), fit.measurements.metal_spread, is_light)
    pair_calls = 0 if gap is None else sum(int(chalcogen_counts.get(c, 0)) for c in gap.classes)
    # (the gap's fields and its sentence: a movie says it once, with every frame's calls)
    gap_said: dict[str, Any] | None = None
    overlap_pairs = [list(o.classes) for o in overlaps]
    if gap is not None and gap.overlap and pair_calls and not any(
            set(o.classes) == set(gap.classes) for o in overlaps):
        gap_said = {**dataclasses.asdict(gap), "message": gap.message(pair_calls)}
        overlap = " ".join(m for m in (overlap, gap_said["message"]) if m)
        overlap_pairs.append(list(gap.classes))
    if overlap:
        warnings.warn(overlap, ModelFitWarning, stacklevel=2)
    grain_fit = [m for f in fits[1:] for m in f.messages if m not in fit.messages]
    # A Mo/W alloy read on the metal columns and not named by the user (a lattice note, said
    # beside the result too: choose the other metal to mark its columns; named, the note is the
    # result's composition, not a warning).
    metal_alloy = [la.metal_alloy.message(la.material) for la in lattices[:1]
                   if la.metal_alloy and not la.metal_alloy.named]
    # (a selenide's possible Mo/W alloy, not read unasked: said first, beside the result too)
    metal_alloy += [m for m in lattices[0].messages if METAL_ALLOY_NOTE in m]
    metal_alloy += [m for m in lattices[0].messages if METAL_TWO_LEVELS_NOTE in m]
    # (which sublattice was taken for the metal where their brightness hardly differs)
    metal_alloy += [m for m in lattices[0].messages if m.startswith(ORDER_NOTE)]
    if blurred:  # (levels smeared into each other: a frame out of focus was told of W columns)
        metal_alloy = [m for m in metal_alloy if m.startswith(ORDER_NOTE)]
    if run.metal_substituents and lattices[0].metal_alloy is None and not any(
            METAL_TWO_LEVELS_NOTE in m for m in metal_alloy):
        metal_alloy.append(f"{run.metal_substituents[0]} was chosen, but the {mat.metal} columns "
                           f"show one level: no {run.metal_substituents[0]} column is marked.")
    fit_messages = list(dict.fromkeys([m for m in (clipped, blurred) if m] + metal_alloy
                                      + fit.messages + grain_fit)) + [
        m for m in (blanked, flagged, crowded, scan_line, uniform, majority, partner_vacancies,
                    strained, ordered_tie, overlap) if m]
    class_messages = [run.message] if run.message else []
    if run.message and any(m.startswith("The model was trained for") for m in fit_messages):
        # One sentence for one fact: the longer one also says how the classes are named.
        fit_messages = [run.message if m.startswith("The model was trained for") else m
                        for m in fit_messages]
        class_messages = []
    n_cells = sum(la.n_cells for la in lattices)
    table.attrs.update({"model": info.name, "classes": run.classes,
                        "substituents": run.all_substituents, "model_material": run.material,
                        "device": dev_text, "pixel_size_nm": lattice.pixel_size_nm,
                        "calibration": lattice.calibration,
                        "n_metal_sites": int((sites.sublattice == "metal").sum()),
                        "n_chalcogen_sites": n_chalcogen,
                        "n_cells": n_cells,
                        "column_fwhm_nm": column_fwhm if np.isfinite(column_fwhm) else None,
                        "area_nm2": float(sum(la.area_nm2 for la in lattices)),
                        "fit": {**fit.to_dict(), "flagged_fraction": n_flagged / max(n_chalcogen, 1),
                                "column_fwhm_nm": (column_fwhm if np.isfinite(column_fwhm)
                                                   else None),
                                "messages": fit_messages},
                        "fit_messages": fit_messages,
                        "operating_point": format_operating_point(op, run.classes),
                        "calibrated": calib is not None,
                        "ladder": ladder.to_dict(),
                        "class_overlaps": overlap_pairs,
                        "overlap_message": overlap,
                        "light_gap": gap_said,
                        "messages": list(dict.fromkeys([m for m in lattice.messages if not (
                            blurred and _metal_level_note(m, lattice))] + class_messages
                                                       + fit_messages))})
    if len(lattices) > 1:
        table.attrs["grains"] = [{"grain": k, "n_cells": la.n_cells, "a_px": la.a_px,
                                  "rotation_deg": misorientation_deg(lattices[0], la)}
                                 for k, la in enumerate(lattices)]
    sites.attrs.update({"classes": run.classes, "substituents": run.all_substituents})
    yield {"done": True, "defects": table, "sites": sites, "lattice": lattice,
           "lattices": lattices, "levels": levels, "ladder": ladder,
           "model": info.name, "fine_tuned": detector_tuned, "device": dev_text, "fit": fit,
           "fit_messages": fit_messages,
           "classes": run.classes, "substituents": run.all_substituents}


def detect(image: np.ndarray, pixel_size_nm: float | None = None, material: str = "MoS2",
           model: str | os.PathLike | None = None, device: str = "auto",
           calibration: str = "user",
           operating_point: str | Mapping[str, float] | None = None, *,
           substituents: str | Sequence[str] | None = None,
           region: np.ndarray | tuple[float, float, float, float] | None = None,
           grains: bool = True) -> pd.DataFrame:
    """Detect and classify point defects in a HAADF-STEM image.

    Parameters
    ----------
    image : ndarray or StemImage
        One 2-D frame, or an image read by :func:`~..io.image.read_image` (its file calibration is then
        used with ``calibration="file"`` unless ``pixel_size_nm`` is given).
    pixel_size_nm : float, optional
        Pixel size; ``None`` calibrates it from the lattice.
    material : str
        Material preset (``MoS2``, ``WS2``, ``MoSe2``, ``WSe2``).
    model : str or path, optional
        Model name (bundled or user) or folder; default: the bundled model of ``material``
        for ``substituents`` (:func:`~..models.registry.default_model_name`: ``mos2-alloy``
        for MoS2 with Se, else ``<material>-default``, else ``mos2-default``). The class names
        follow the material the model was trained for (a warning says so when it is not
        ``material``).
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    calibration : {"user", "file"}
        Where ``pixel_size_nm`` comes from (see :func:`~..lattice.lattice.find_lattice`).
    operating_point : str or mapping, optional
        Per defect class a value in (0, 1): against one alternative a site is called that class
        when its calibrated probability reaches the value (higher: precision, lower: recall), e.g.
        ``"V_S=0.6,O_S=0.4"``; default 0.5 for all (the most probable class). A class this run
        cannot produce is an error.
    substituents : str or list of str, optional
        Substituent elements to look for, e.g. ``"Se,O"`` or ``["Se"]``; ``""`` for vacancies
        only. Default: the material's defaults that the model knows (O in sulfides, S in
        selenides). Classes of the model's other substituents get probability 0 after calibration
        (their probability goes to the pristine column), so they are never called.
    region : ndarray of bool or (row0, row1, col0, col1), optional
        Only these pixels are analysed (e.g. one grain of a polycrystalline layer; see
        :func:`~..lattice.lattice.find_lattice`); coordinates stay those of the whole image and
        densities are over the region's crystal.
    grains : bool
        Find and analyse every grain of the field (or region), each on its own lattice
        (:func:`~..lattice.grains.find_grains`; default); ``False``: the first grain only.

    Returns
    -------
    DataFrame
        One row per defect: ``y_px, x_px, y_nm, x_nm, class, confidence, source`` (and ``grain``
        when the field holds several grains); ``attrs`` hold the model, device, pixel size, the
        number of sites and cells examined, the crystal area, the operating point,
        ``classes`` (the defect classes this run could produce, in channel order) and
        ``substituents``.

    Raises
    ------
    AtomDefectError
        For a bad image, material, model, substituent or operating point (one sentence).
    """
    from ..io.image import StemImage
    from ..progress import run_to_end

    if isinstance(image, StemImage):  # a file read by read_image: its own calibration
        if image.is_stack:
            raise AtomDefectError(f"{image.name} is a stack of {image.data.shape[0]} frames; "
                                  "pass one frame (image.data[k]).")
        if pixel_size_nm is None and image.pixel_size_nm is not None:
            pixel_size_nm, calibration = image.pixel_size_nm, "file"
        image = image.data
    elif isinstance(image, np.ndarray) and np.issubdtype(image.dtype, np.floating):
        # (a file's reader says it; an array's caller hears it here)
        n_bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
        if 0 < n_bad <= MAX_NONFINITE_SHARE * np.size(image):
            warnings.warn(f"{n_bad} pixel{'' if n_bad == 1 else 's'} of the image "
                          f"{'is' if n_bad == 1 else 'are'} NaN or infinite; read as the "
                          "image's median.", UserWarning, stacklevel=2)
    # The pipeline's warnings (calibration, model fit, class overlaps) are said at the caller's
    # line, not inside the generator that raised them; the caller's filters still apply.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_to_end(iter_detect(image, pixel_size_nm, material, model, device,
                                        calibration, operating_point=operating_point,
                                        substituents=substituents, region=region,
                                        grains=grains))
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    return result["defects"]


__all__ = ["detect", "iter_detect",
           "probability_columns"]
