"""Bundled and user-trained models: safetensors weights plus a JSON model card.

A model is a folder holding ``card.json`` and one or both of ``detector.safetensors`` (stage 2,
U-Net) and ``noise.safetensors`` (stage 1, U-GAT-IT generators). Bundled models live in the
package (``napari_atomdefect/weights``), user models in the user data directory; a user model never
overwrites a bundled one. Weights are read with safetensors only: a model file cannot run code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily, inside the functions
    import zipfile

    import torch

    from .ugatit import UGATIT, Generator
    from .unet import UNet

import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from ..errors import AtomDefectError

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "weights"
DEFAULT_MODEL = "mos2-default"
#: Suffix of a bundled model for a material's chalcogen alloys (:func:`default_model_name`).
ALLOY_SUFFIX = "-alloy"
CARD = "card.json"
DETECTOR_FILE = "detector.safetensors"
NOISE_FILE = "noise.safetensors"


class ModelError(AtomDefectError):
    """A model is missing, incomplete or corrupt."""


def user_models_dir() -> Path:
    """Folder of user-trained models (created on demand)."""
    env = os.environ.get("ATOMDEFECT_USER_MODELS")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-atomdefect", appauthor=False)) / "models"


@dataclass(frozen=True)
class ModelInfo:
    """Where a model lives and what its card says."""

    name: str
    path: Path
    bundled: bool
    card: dict


def _read_card(folder: Path) -> dict:
    try:
        card = json.loads((folder / CARD).read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"Model folder {folder} has no {CARD}.") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"The model card {folder / CARD} is unreadable: {exc}") from exc
    if not isinstance(card, dict):  # (valid JSON, but not a card: a list, a number)
        raise ModelError(f"The model card {folder / CARD} is not a model card (a JSON object).")
    return card


def list_models() -> list[ModelInfo]:
    """Bundled models first, then user models (sorted by name)."""
    out = []
    for root, bundled in ((BUNDLED_DIR, True), (user_models_dir(), False)):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / CARD).is_file()):
            try:
                out.append(ModelInfo(folder.name, folder, bundled, _read_card(folder)))
            except ModelError as exc:  # left out of the list, and said (not silently)
                warnings.warn(f"{exc} The model {folder.name} is left out.", UserWarning,
                              stacklevel=2)
                continue
    return out


def model_classes(info: ModelInfo | Mapping) -> tuple[str, ...]:
    """Defect classes of a model's detector, in channel order.

    Parameters
    ----------
    info : ModelInfo or dict
        The model (or its card).

    Returns
    -------
    tuple of str
        The card's ``detector.classes``; a card without them is a legacy MoS2 model
        (:data:`~..materials.columns.LEGACY_CLASSES`).
    """
    from ..materials.columns import LEGACY_CLASSES

    card = info.card if isinstance(info, ModelInfo) else info
    classes = (card.get("detector") or {}).get("classes")
    return tuple(str(c) for c in classes) if classes else LEGACY_CLASSES


def model_substituents(info: ModelInfo | Mapping) -> tuple[str, ...]:
    """Substituents a model's detector was trained for (card ``detector.substituents``).

    A card without them is a legacy MoS2 model, trained for ``("O",)``; a card with classes but
    no substituent list gets them from its ``D_X`` classes.
    """
    from ..materials.columns import substituents_of

    card = info.card if isinstance(info, ModelInfo) else info
    det = card.get("detector") or {}
    if det.get("substituents") is not None:
        return tuple(str(d) for d in det["substituents"])
    if not det.get("classes"):
        return ("O",)
    return substituents_of(det["classes"])


def model_material(info: ModelInfo | Mapping) -> str:
    """Host material a model was trained for (card ``material``; legacy cards: ``MoS2``)."""
    card = info.card if isinstance(info, ModelInfo) else info
    return str(card.get("material") or "MoS2")


def default_model_name(material: str | None = None,
                       substituents: str | Sequence[str] | None = None) -> str:
    """The bundled model of ``material`` for ``substituents``.

    ``<material lower>-alloy`` when an alloying substituent (Se, S, Te) is among
    ``substituents`` and the material has such a model (MoS2: a detector in host units for
    S/Se alloys, while ``mos2-default`` stays the one judged on O and vacancies), else
    ``<material lower>-default`` when it exists, else ``mos2-default``.
    """
    if material:
        from ..materials.columns import DOUBLE_SUBSTITUTION
        from ..materials.materials import get_material

        try:
            stem = get_material(material).name.lower()
        except AtomDefectError:
            stem = str(material).lower()
        if isinstance(substituents, str):
            substituents = [d.strip() for d in substituents.replace(";", ",").split(",")]
        double = {d.lower() for d in DOUBLE_SUBSTITUTION}  # ("se" is Se, as parsing reads it)
        if any(str(d).strip().lower() in double for d in substituents or ()) and \
                (BUNDLED_DIR / f"{stem}{ALLOY_SUFFIX}" / CARD).is_file():
            return f"{stem}{ALLOY_SUFFIX}"
        if (BUNDLED_DIR / f"{stem}-default" / CARD).is_file():
            return f"{stem}-default"
    return DEFAULT_MODEL


def is_default_model(name: str | None) -> bool:
    """Whether ``name`` is one of the bundled per-material defaults (``-default``/``-alloy``),
    which detection swaps for the one that fits the material and substituents chosen."""
    return bool(name) and str(name).endswith(("-default", ALLOY_SUFFIX)) and \
        (BUNDLED_DIR / str(name) / CARD).is_file()


def resolve_model(model: str | os.PathLike | ModelInfo | None = None,
                  material: str | None = None,
                  substituents: str | Sequence[str] | None = None) -> ModelInfo:
    """Find a model by name (user models shadow nothing: bundled names win) or by folder path.

    A :class:`ModelInfo` is returned as it is (its card may differ from the file, e.g. without
    calibration while the calibration is being fitted). ``model=None`` is
    :func:`default_model_name` of ``material`` and ``substituents``.
    """
    if isinstance(model, ModelInfo):
        return model
    if model is None:
        model = default_model_name(material, substituents)
    if not str(model).strip():
        raise ModelError("No model named (an empty name): give a model's name or folder.")
    path = Path(model)
    if path.is_dir():
        return ModelInfo(path.name, path.resolve(), False, _read_card(path))
    if path.suffix == ".safetensors" and path.is_file():
        return ModelInfo(path.parent.name, path.parent.resolve(), False, _read_card(path.parent))
    for root, bundled in ((BUNDLED_DIR, True), (user_models_dir(), False)):
        # (the named folder's card only, as list_models would find it first: reading every
        # card took ~1 ms of each detection)
        folder = root / str(model)
        if folder.name == str(model) and (folder / CARD).is_file():
            try:
                return ModelInfo(folder.name, folder, bundled, _read_card(folder))
            except ModelError:
                break  # (said below, with the models there are)
    with warnings.catch_warnings():  # (an unreadable card is said by the error below)
        warnings.simplefilter("ignore")
        models = list_models()
    for info in models:
        if info.name == str(model):
            return info
    for root in (BUNDLED_DIR, user_models_dir()):
        if (root / str(model) / CARD).is_file():  # there, but its card cannot be read
            _read_card(root / str(model))
    names = ", ".join(m.name for m in models) or "none installed"
    raise ModelError(f"No model called {str(model)!r} (available: {names}), and no such folder.")


def save_state(module: torch.nn.Module, path: Path, metadata: dict | None = None) -> None:
    """Write a module's weights to ``path`` (safetensors) via a temporary file."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".part")
    save_file(state, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    os.replace(tmp, path)


def load_state(path: Path, label: str | None = None) -> dict:
    """Read a safetensors file into a state dict (never executes code).

    Parameters
    ----------
    path : Path
        The ``.safetensors`` file.
    label : str, optional
        How the file is called in messages (default: its path).

    Raises
    ------
    ModelError
        If the file is missing or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    label = label or str(path)
    if not path.is_file():
        raise ModelError(f"Model file {label} is missing.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"Model file {label} is corrupt or not a safetensors file.") from exc


def _model_name(card: dict) -> str:
    return str(card.get("name") or "(unnamed)")


def _build(card: dict, stage: str, cls: type) -> Any:
    """``cls(**card[stage]["architecture"])``; a card the code cannot build raises one sentence."""
    try:
        arch = card[stage]["architecture"]
        return cls(**arch)
    except (KeyError, TypeError, ValueError) as exc:
        what = "detector" if stage == "detector" else "noise-transfer"
        raise ModelError(
            f"The card of model {_model_name(card)} describes a {what} architecture this version "
            f"cannot build ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); the model "
            "may come from another version of napari-atomdefect.") from exc


def build_detector(card: dict) -> UNet:
    """The stage-2 U-Net described by ``card`` (untrained).

    Raises
    ------
    ModelError
        If the card's architecture is missing or has keys this version does not know.
    """
    from .unet import UNet

    return _build(card, "detector", UNet)


def build_noise_generators(card: dict) -> tuple[Generator, Generator]:
    """The two stage-1 U-GAT-IT generators described by ``card`` (untrained).

    Raises
    ------
    ModelError
        If the card's architecture is missing or has keys this version does not know.
    """
    from .ugatit import Generator

    return _build(card, "noise", Generator), _build(card, "noise", Generator)


def load_weights(module: torch.nn.Module, state: dict, what: str, model: str) -> None:
    """Load ``state`` into ``module``; weights that do not fit raise one sentence.

    Parameters
    ----------
    module : torch.nn.Module
        The network built from the card.
    state : dict
        Tensors read from the weights file.
    what : str
        Which weights (for the message), e.g. ``"detector"``.
    model : str
        The model's name (for the message).

    Raises
    ------
    ModelError
        If tensors are missing, unexpected or of another shape than the card's architecture.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or extra or shape:
        parts = [f"{len(v)} {t}" for v, t in ((missing, "missing"), (extra, "unexpected"),
                                               (shape, "wrong-shaped")) if v]
        raise ModelError(f"The {what} weights of model {model} do not fit the architecture in its "
                         f"card ({', '.join(parts)} tensors); the card and the weights come from "
                         "different models.")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"The {what} weights of model {model} cannot be loaded "
                         f"({str(exc).splitlines()[0][:200]}).") from exc


def load_generator_states(gen_ab: torch.nn.Module, gen_ba: torch.nn.Module | None, path: Path,
                          model: str | None = None) -> None:
    """Load both U-GAT-IT generators from a noise-transfer safetensors file.

    Raises
    ------
    ModelError
        If the file is missing, corrupt or does not fit the generators.
    """
    model = model or path.parent.name
    state = load_state(path)
    load_weights(gen_ab, {k[7:]: v for k, v in state.items() if k.startswith("gen_ab.")},
                 "noise-transfer", model)
    if gen_ba is not None:
        load_weights(gen_ba, {k[7:]: v for k, v in state.items() if k.startswith("gen_ba.")},
                     "noise-transfer", model)


def base_ugatit(info: ModelInfo) -> UGATIT:
    """A U-GAT-IT with the generators of model ``info`` (fresh discriminators), to fine-tune."""
    from .ugatit import UGATIT

    model = UGATIT(**{"residual": False, **info.card["noise"]["model_config"]})
    load_generator_states(model.gen_ab, model.gen_ba, info.path / NOISE_FILE)
    return model


def base_detector(info: ModelInfo) -> UNet:
    """The stage-2 U-Net of model ``info`` with its weights, to fine-tune."""
    net = build_detector(info.card)
    load_weights(net, load_state(info.path / DETECTOR_FILE), "detector", info.name)
    return net


@lru_cache(maxsize=8)
def _load_cached(folder: str, part: str, device: str, mtime: float):
    import torch

    from .site_forward import prepare_detector

    info = ModelInfo(Path(folder).name, Path(folder), False, _read_card(Path(folder)))
    if part == "detector":
        if "detector" not in info.card:
            raise ModelError(f"Model {info.name} has no detector (stage 2).")
        net = build_detector({"name": info.name, **info.card})
        load_weights(net, load_state(info.path / DETECTOR_FILE), "detector", info.name)
        dev = torch.device(device)
        return prepare_detector(net.eval().fused().to(dev), dev)
    if "noise" not in info.card:
        raise ModelError(f"Model {info.name} has no noise-transfer stage (stage 1).")
    gen_ab, gen_ba = build_noise_generators({"name": info.name, **info.card})
    load_generator_states(gen_ab, gen_ba, info.path / NOISE_FILE, info.name)
    return gen_ab.to(torch.device(device)).eval(), gen_ba.to(torch.device(device)).eval()


def load_detector(info: ModelInfo, device: torch.device | str) -> UNet:
    """The stage-2 U-Net of ``info`` on ``device`` (loaded once, then cached)."""
    f = info.path / DETECTOR_FILE
    return _load_cached(str(info.path), "detector", str(device), f.stat().st_mtime if f.exists() else 0)


def load_noise_generators(info: ModelInfo,
                          device: torch.device | str) -> tuple[Generator, Generator]:
    """``(gen_ab, gen_ba)`` of the stage-1 U-GAT-IT of ``info`` (cached)."""
    f = info.path / NOISE_FILE
    return _load_cached(str(info.path), "noise", str(device), f.stat().st_mtime if f.exists() else 0)


def check_new_user_model(name: str) -> Path:
    """The user-models folder a new model called ``name`` goes to; :class:`ModelError` when the
    name is not allowed or a model of that name exists (a fine-tuning never replaces one:
    rename or delete it first)."""
    check_model_name(name)
    folder = user_models_dir() / name
    if folder.exists():
        raise ModelError(f"A model called {name!r} exists already: choose another name, or "
                         "rename or delete that one first.")
    return folder


def check_model_destination(folder: str | os.PathLike) -> Path:
    """Raise :class:`ModelError` when a model cannot be written to ``folder`` without losing
    something: a file, or a folder holding anything but a model (a model folder is replaced,
    as a model update); a bundled model; a place that cannot be written. Checked before a
    training starts, so that an hour's run does not end in a refusal. Returns the folder."""
    folder = Path(folder)
    if folder.resolve().is_relative_to(BUNDLED_DIR.resolve()) and \
            os.environ.get("ATOMDEFECT_WRITE_BUNDLED") != "1":
        raise ModelError(f"{folder} is a bundled model and is never overwritten.")
    if folder.exists() and not folder.is_dir():
        raise ModelError(f"{folder} is a file, not a model folder; choose another --out "
                         "(nothing was written).")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CARD).exists():
        raise ModelError(f"{folder} exists and is not a model folder (no {CARD}); choose "
                         "another --out: a model is written to a new folder or over a model.")
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ModelError(f"Cannot write a model in {parent}: {exc.strerror or exc}.") from exc
    return folder


def _normal_permissions(folder: Path) -> None:
    """Give a model folder written through a temporary one (``mkdtemp``: 0700, weights 0600) the
    permissions of any folder and file the user makes (their umask), as its card already had:
    a model shared on a group's disk was readable only by its author."""
    from ..io.table import normal_permissions

    normal_permissions(folder)
    for path in folder.iterdir():
        if path.is_file():
            normal_permissions(path)


def write_model(folder: Path, card: dict, detector: torch.nn.Module | None = None,
                noise: torch.nn.Module | None = None,
                copy_files: dict[str, Path] | None = None) -> Path:
    """Write a model folder atomically (temporary folder, then rename); returns the folder.

    ``copy_files``: file name -> an existing file to copy into the folder (e.g. the stage-1
    weights of another model, or of the very model being replaced: copied before the old
    folder goes)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.resolve().is_relative_to(BUNDLED_DIR.resolve()) and folder.exists() and \
            os.environ.get("ATOMDEFECT_WRITE_BUNDLED") != "1":
        raise ModelError(f"{folder} is a bundled model and is never overwritten.")
    if folder.exists() and not (folder.is_dir() and ((folder / CARD).exists()
                                                     or not any(folder.iterdir()))):
        check_model_destination(folder)  # (raises: a file, or a folder that is not a model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        if detector is not None:
            save_state(detector, tmp / DETECTOR_FILE)
        if noise is not None:
            save_state(noise, tmp / NOISE_FILE)
        for name, source in (copy_files or {}).items():
            shutil.copy2(source, tmp / name)
        (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
        _normal_permissions(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _load_cached.cache_clear()
    _notify()
    return folder


def card_write_refusal(info: ModelInfo) -> str | None:
    """Why the card of ``info`` must not be written (a bundled model without
    ``ATOMDEFECT_WRITE_BUNDLED=1``), or ``None``."""
    if info.path.resolve().is_relative_to(BUNDLED_DIR.resolve()) and \
            os.environ.get("ATOMDEFECT_WRITE_BUNDLED") != "1":
        return (f"{info.name} is a bundled model and its card is never overwritten (set "
                "ATOMDEFECT_WRITE_BUNDLED=1 to update the shipped card, or use --dry-run).")
    return None


#: The JSON layouts a card may have been written in (indent, ASCII escapes): a card keeps its own,
#: so that a rewrite changes only what it adds (the first tried for a new card).
CARD_LAYOUTS: tuple[dict, ...] = tuple({"indent": i, "ensure_ascii": a}
                                       for i in (2, 1, 4) for a in (True, False))


def _card_layout(path: Path) -> dict:
    """The layout of the card at ``path`` (:data:`CARD_LAYOUTS`; the first for a new or
    hand-edited card)."""
    try:
        text = path.read_text(encoding="utf-8")
        card = json.loads(text)
    except (OSError, ValueError):
        return CARD_LAYOUTS[0]
    for layout in CARD_LAYOUTS:
        if json.dumps(card, default=str, **layout) + "\n" == text:
            return layout
    return CARD_LAYOUTS[0]


def write_card(info: ModelInfo, card: dict) -> Path:
    """Replace the card of an existing model atomically (weights untouched); returns its path.

    A bundled model's card is written only with ``ATOMDEFECT_WRITE_BUNDLED=1`` (as the training
    commands do). The card keeps its JSON layout (indent, escapes: :data:`CARD_LAYOUTS`).

    Raises
    ------
    ModelError
        If the model is bundled without that switch, or the card cannot be written (the old card
        is then kept).
    """
    path = info.path / CARD
    refusal = card_write_refusal(info)
    if refusal:
        raise ModelError(refusal)
    layout = _card_layout(path)
    tmp = path.with_name(f".{CARD}.part")
    try:
        tmp.write_text(json.dumps(card, default=str, **layout) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"Cannot write the card of model {info.name}: "
                         f"{exc.strerror or exc}.") from exc
    _load_cached.cache_clear()
    _notify()
    return path


def provenance(info: ModelInfo, command: str) -> dict:
    """The stamp of a card entry: the command that reproduces it (``ATOMDEFECT_WRITE_BUNDLED=1``
    before it for a bundled model), when it was made and with which Python."""
    return {"command": ("ATOMDEFECT_WRITE_BUNDLED=1 " if info.bundled else "") + command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0]}


def write_detector_entry(info: ModelInfo, key: str, entry: dict) -> Path:
    """Store ``entry`` as ``detector[key]`` in the card of ``info`` (:func:`write_card`, weights
    untouched); returns the card's path."""
    card = dict(info.card)
    card["detector"] = {**card["detector"], key: entry}
    return write_card(info, card)


#: Callables run after the set of user models changes (widgets refresh their lists).
_listeners: list = []


def on_models_changed(callback: Callable[[], None]) -> None:
    """Register ``callback()`` to run whenever a model is written, renamed, deleted or imported.

    The callback runs in the thread that changed the models — a fine-tuning worker writes its
    model from a background thread. It must be cheap and thread-safe; GUI code must hand the
    work to its own thread (the widgets emit a Qt signal, see ``widgets._worker.follow_models``).
    """
    _listeners.append(callback)


def forget_models_listener(callback: Callable[[], None]) -> None:
    """Stop running ``callback`` (registered with :func:`on_models_changed`)."""
    if callback in _listeners:
        _listeners.remove(callback)


def _notify() -> None:
    """Run the registered callbacks in the calling thread; forget those of deleted Qt objects."""
    for cb in list(_listeners):
        try:
            cb()
        except RuntimeError:  # a deleted Qt widget
            _listeners.remove(cb)


def _user_model(name: str) -> Path:
    folder = user_models_dir() / name
    if not (folder / CARD).is_file():
        raise ModelError(f"No user model called {name!r}.")
    return folder


#: Longest name a user model may take (a folder name every file system holds).
MAX_MODEL_NAME = 100


def check_model_name(name: str) -> None:
    """Raise :class:`ModelError` for a name a new user model cannot take: empty, with path
    characters, hidden, or a bundled model's (a user model of that name would be hidden by it)."""
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name or ""):
        raise ModelError(f"{name!r} is not a valid model name (letters, digits, - and _).")
    if len(name) > MAX_MODEL_NAME:
        raise ModelError(f"A model name has at most {MAX_MODEL_NAME} characters, not "
                         f"{len(name)}.")
    bundled = {p.name.lower() for p in BUNDLED_DIR.iterdir()} if BUNDLED_DIR.is_dir() else set()
    if name.lower() in bundled:  # (on a case-insensitive disk the two would be one folder)
        raise ModelError(f"{name!r} is the name of a bundled model; choose another.")


def rename_model(old: str, new: str) -> Path:
    """Rename a user model (bundled models cannot be renamed)."""
    check_model_name(new)
    src = _user_model(old)
    dst = src.with_name(new)
    if dst.exists():
        raise ModelError(f"A model called {new!r} exists already.")
    os.replace(src, dst)
    card = _read_card(dst)
    card["name"] = new
    (dst / CARD).write_text(json.dumps(card, indent=2, default=str))
    _load_cached.cache_clear()
    _notify()
    return dst


def delete_model(name: str) -> None:
    """Delete a user model (bundled models cannot be deleted)."""
    shutil.rmtree(_user_model(name))
    _load_cached.cache_clear()
    _notify()


ALLOWED_FILES = {CARD, DETECTOR_FILE, NOISE_FILE}
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024


def export_model(name_or_path: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Write a model to a single ``.zip`` archive (card and safetensors files only).

    Raises
    ------
    ModelError
        If the model is unknown or the archive cannot be written (nothing is left behind).
    """
    import zipfile

    info = resolve_model(name_or_path)
    archive = Path(archive)
    tmp = archive.with_name(f".{archive.name}.part")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(info.path.iterdir()):
                if f.name in ALLOWED_FILES:
                    zf.write(f, f.name)
        os.replace(tmp, archive)
    except OSError as exc:
        raise ModelError(f"Cannot write the archive {archive}: {exc.strerror or exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return archive


def _open_archive(archive: Path):
    """The archive as an open :class:`zipfile.ZipFile`, its member names checked."""
    import zipfile

    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{archive.name} is not a model archive (not a readable zip file).") \
            from exc
    names = zf.namelist()
    bad = sorted({n for n in names if n not in ALLOWED_FILES})
    if bad or CARD not in names or len(set(names)) != len(names):
        zf.close()
        problem = (f"unexpected files {', '.join(bad)}" if bad else f"{CARD} missing"
                   if CARD not in names else "duplicate files")
        raise ModelError(f"{archive.name} is not a model archive: {problem}.")
    if sum(i.file_size for i in zf.infolist()) > MAX_ARCHIVE_BYTES:
        zf.close()
        raise ModelError(f"{archive.name} is too large to be a model archive (over "
                         f"{MAX_ARCHIVE_BYTES // 2**20} MB unpacked).")
    return zf


def _read_member(zf: zipfile.ZipFile, member: str, archive: Path) -> bytes:
    """One member's bytes; a damaged member (bad CRC, bad compressed data) raises one sentence."""
    import zipfile
    import zlib

    try:
        return zf.read(member)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise ModelError(f"{archive.name} is damaged: its member {member} cannot be "
                         "unpacked.") from exc


def _validate_model_folder(folder: Path, card: dict) -> None:
    """Every weights file of ``folder`` loads and fits ``card`` (raises :class:`ModelError`)."""
    name = _model_name(card)
    if "detector" in card:
        load_weights(build_detector(card), load_state(folder / DETECTOR_FILE,
                                                      f"{DETECTOR_FILE} of {name}"), "detector", name)
    if "noise" in card:
        gen_ab, gen_ba = build_noise_generators(card)
        state = load_state(folder / NOISE_FILE, f"{NOISE_FILE} of {name}")
        for gen, prefix in ((gen_ab, "gen_ab."), (gen_ba, "gen_ba.")):
            load_weights(gen, {k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)}, "noise-transfer", name)


def import_model(archive: str | os.PathLike, name: str | None = None) -> Path:
    """Import a model archive into the user models folder, validating it first (all or nothing).

    Only ``card.json`` and ``*.safetensors`` members are accepted; the card must parse, every
    weights file must load with safetensors (never pickle) and fit the card's architecture.

    Raises
    ------
    ModelError
        If the archive is not a valid model; nothing is then left in the user models folder.
    """
    archive = Path(archive)
    with _open_archive(archive) as zf:
        try:
            card = json.loads(_read_member(zf, CARD, archive))
        except ValueError as exc:
            raise ModelError(f"The card in {archive.name} is not valid JSON.") from exc
        if not isinstance(card, dict):
            raise ModelError(f"The card in {archive.name} is not a model card.")
        name = name or str(card.get("name") or archive.stem)
        check_model_name(name)
        dst = user_models_dir() / name
        if dst.exists():
            raise ModelError(f"A model called {name!r} exists already; rename or delete it first.")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dst.parent))
        except OSError as exc:
            raise ModelError(f"Cannot write to the models folder {dst.parent}: "
                             f"{exc.strerror or exc}.") from exc
        try:
            for member in zf.namelist():
                (tmp / member).write_bytes(_read_member(zf, member, archive))
            card["name"] = name
            (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
            _validate_model_folder(tmp, card)
            _normal_permissions(tmp)
            os.replace(tmp, dst)
        except ModelError as exc:
            raise ModelError(f"{archive.name} does not hold a valid model: "
                             f"{str(exc)[:1].lower()}{str(exc)[1:]}") from exc
        except OSError as exc:
            raise ModelError(f"Cannot import {archive.name}: {exc.strerror or exc}.") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _notify()
    return dst
