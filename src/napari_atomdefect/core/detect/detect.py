"""Detection: image -> lattice -> normalised unit cells -> U-Net -> one defect table.

Every tile is read at its own cell's two sites only (its metal and its chalcogen column), so each
site is classified exactly once even though tiles overlap. Cells along the border whose metal site
lies outside the field are tiled too, for their chalcogen site. Probabilities are temperature-scaled
with the value fitted on held-out data when the model was trained, then calibrated per class and
turned into a class under the user's operating point (:mod:`.decision`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..cells.normalize import intensity_levels, normalise
from ..cells.tiles import TileSpec, iter_cell_tiles, own_site_positions
from ..errors import AtomDefectError
from ..io.table import DEFECT_COLUMNS
from ..io.validate import as_analysis_image
from ..lattice.lattice import Lattice, find_lattice
from ..materials.materials import SEGMENT_CLASSES, get_material
from .decision import (
    CHALCOGEN_CLASSES,
    METAL_CLASSES,
    card_calibration,
    format_operating_point,
    parse_operating_point,
    site_decisions,
)
from .image_fit import ModelFitWarning, assess_fit, flagged_fraction_message

if TYPE_CHECKING:
    from ..models.registry import ModelInfo

#: Calibrated probability of every class of the site's sublattice (``nan`` on the other one).
PROBABILITY_COLUMNS = tuple(f"p_{c}" for c in METAL_CLASSES + CHALCOGEN_CLASSES)
_NO_METAL = (float("nan"),) * len(METAL_CLASSES)
_NO_CHALCOGEN = (float("nan"),) * len(CHALCOGEN_CLASSES)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c not in ("class", "source") else object)
                         for c in DEFECT_COLUMNS})


def iter_detect(image: np.ndarray, pixel_size_nm: float | None = None, material: str = "MoS2",
                model: str | os.PathLike | ModelInfo | None = None, device: str = "auto",
                calibration: str = "user", lattice: Lattice | None = None, batch_size: int = 1024,
                operating_point: str | Mapping[str, float] | None = None) -> Iterator[dict]:
    """Run detection step by step, yielding progress; the last item holds the result.

    ``operating_point``: per defect class, see :func:`.decision.parse_operating_point` (default
    neutral: the most probable class); ``model`` may also be a loaded ``ModelInfo``.

    Yields
    ------
    dict
        ``{"step": str, "fraction": float, "message": str}`` while working, then
        ``{"done": True, "defects": DataFrame, "sites": DataFrame, "lattice": Lattice, ...}``.
    """
    import torch

    from ..device import select_device
    from ..models.readout import site_logits, site_probabilities
    from ..models.registry import load_detector, resolve_model

    op = parse_operating_point(operating_point)
    mat = get_material(material)
    arr = as_analysis_image(image)
    info = resolve_model(model)
    card = info.card
    dev, dev_text = select_device(device)
    yield {"step": "lattice", "fraction": 0.0, "message": f"Finding the lattice (device {dev_text})"}
    if lattice is None:
        # Its warnings (e.g. a replaced calibration) reach the caller; the same sentences are
        # attached to the result as ``attrs["messages"]``.
        lattice = find_lattice(arr, mat, pixel_size_nm=pixel_size_nm, calibration=calibration)
    fit = assess_fit(arr, lattice, mat, model_material=card.get("material") or mat.name)
    if not fit.fits:  # before the long part: a script learns it at once, the widget shows it
        warnings.warn(fit.summary, ModelFitWarning, stacklevel=2)
        yield {"step": "fit", "fraction": 0.02, "message": fit.summary, "fit": fit}
    levels = intensity_levels(arr, lattice)
    norm = normalise(arr, levels)
    net = load_detector(info, dev)
    temperature = float(card["detector"].get("temperature", 1.0))
    calib = card_calibration(card["detector"])
    spec = TileSpec(**card["detector"].get("tile", {}))
    chalc_lookup = {tuple(ij): k for k, ij in enumerate(lattice.chalcogen_index.tolist())}
    metal_lookup = {tuple(ij): k for k, ij in enumerate(lattice.metal_index.tolist())}
    n_tiles = lattice.n_cells + sum(ij not in metal_lookup for ij in chalc_lookup)
    site_rows = []
    done = 0
    for batch in iter_cell_tiles(norm, lattice, spec, batch_size=batch_size, border=True):
        own = own_site_positions(batch, lattice)
        # Inference mode around the forward pass only, never across a ``yield``: a consumer that
        # stops here (Cancel) must not leave its thread in inference mode.
        with torch.inference_mode():
            x = torch.from_numpy(batch.tiles[:, None]).to(dev)
            s = torch.from_numpy(own.astype(np.float32)).to(dev)
            p_metal, p_chalcogen = site_probabilities(site_logits(net(x), s), temperature)
            pm, px = p_metal.cpu().numpy(), p_chalcogen.cpu().numpy()
        d = site_decisions(pm, px, calib, op)
        for k, ij in enumerate(map(tuple, batch.index.tolist())):
            m = metal_lookup.get(ij) if batch.has_metal[k] else None
            if m is not None:
                y, xx = lattice.metal_sites_px[m]
                site_rows.append((y, xx, "metal", d["metal_class"][k], float(d["metal_conf"][k]),
                                  float(d["q_metal"][k, 1]), *d["q_metal"][k], *_NO_CHALCOGEN))
            c = chalc_lookup.get(ij)
            if c is not None:
                y, xx = lattice.chalcogen_sites_px[c]
                site_rows.append((y, xx, "chalcogen", d["chalcogen_class"][k],
                                  float(d["chalcogen_conf"][k]), float(1 - d["q_chalcogen"][k, 0]),
                                  *_NO_METAL, *d["q_chalcogen"][k]))
        done += len(batch)
        yield {"step": "detect", "fraction": done / max(n_tiles, 1),
               "message": f"Classified {done}/{n_tiles} unit cells"}
    sites = pd.DataFrame(site_rows, columns=["y_px", "x_px", "sublattice", "class", "confidence",
                                             "p_defect", *PROBABILITY_COLUMNS])
    defects = sites[~sites["class"].isin(["metal", "chalcogen"])].reset_index(drop=True)
    table = _empty_table() if defects.empty else pd.DataFrame({
        "y_px": defects.y_px, "x_px": defects.x_px,
        "y_nm": defects.y_px * lattice.pixel_size_nm, "x_nm": defects.x_px * lattice.pixel_size_nm,
        "class": defects["class"], "confidence": defects.confidence, "source": "model"})
    n_chalcogen = int((sites.sublattice == "chalcogen").sum())
    n_flagged = int(((sites.sublattice == "chalcogen") & (sites["class"] != "chalcogen")).sum())
    flagged = flagged_fraction_message(n_flagged, n_chalcogen)
    if flagged:
        warnings.warn(flagged, ModelFitWarning, stacklevel=2)
    fit_messages = fit.messages + ([flagged] if flagged else [])
    table.attrs.update({"model": info.name, "device": dev_text, "pixel_size_nm":
                        lattice.pixel_size_nm, "calibration": lattice.calibration,
                        "n_metal_sites": int((sites.sublattice == "metal").sum()),
                        "n_chalcogen_sites": n_chalcogen,
                        "fit": {**fit.to_dict(), "flagged_fraction": n_flagged / max(n_chalcogen, 1),
                                "messages": fit_messages},
                        "fit_messages": fit_messages,
                        "operating_point": format_operating_point(op),
                        "calibrated": calib is not None,
                        "messages": list(lattice.messages) + fit_messages})
    yield {"done": True, "defects": table, "sites": sites, "lattice": lattice, "levels": levels,
           "model": info.name, "device": dev_text, "fit": fit, "fit_messages": fit_messages}


def detect(image: np.ndarray, pixel_size_nm: float | None = None, material: str = "MoS2",
           model: str | os.PathLike | None = None, device: str = "auto",
           calibration: str = "user",
           operating_point: str | Mapping[str, float] | None = None) -> pd.DataFrame:
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
        Model name (bundled or user) or folder; default: the bundled model.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    calibration : {"user", "file"}
        Where ``pixel_size_nm`` comes from (see :func:`~..lattice.lattice.find_lattice`).
    operating_point : str or mapping, optional
        Per defect class a value in (0, 1): against one alternative a site is called that class
        when its calibrated probability reaches the value (higher: precision, lower: recall), e.g.
        ``"V_S=0.6,O_S=0.4"``; default 0.5 for all (the most probable class).

    Returns
    -------
    DataFrame
        One row per defect: ``y_px, x_px, y_nm, x_nm, class, confidence, source``; ``attrs`` hold
        the model, device, pixel size, the number of sites examined and the operating point.
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
    return run_to_end(iter_detect(image, pixel_size_nm, material, model, device,
                                  calibration, operating_point=operating_point))["defects"]


__all__ = ["SEGMENT_CLASSES", "detect", "iter_detect"]
