"""Bundled and user-trained models: safetensors weights plus a JSON model card.

A model is a folder holding ``card.json`` and one or both of ``detector.safetensors`` (stage 2,
U-Net) and ``noise.safetensors`` (stage 1, U-GAT-IT generators). Bundled models live in the
package (``napari_atomdefect/weights``), user models in the user data directory; a user model never
overwrites a bundled one. Weights are read with safetensors only: a model file cannot run code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import AtomDefectError

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = "mos2-default"
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
        return json.loads((folder / CARD).read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"Model folder {folder} has no {CARD}.") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"The model card {folder / CARD} is unreadable: {exc}") from exc


def list_models() -> list[ModelInfo]:
    """Bundled models first, then user models (sorted by name)."""
    out = []
    for root, bundled in ((BUNDLED_DIR, True), (user_models_dir(), False)):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / CARD).is_file()):
            try:
                out.append(ModelInfo(folder.name, folder, bundled, _read_card(folder)))
            except ModelError:
                continue
    return out


def resolve_model(model: str | os.PathLike | None = None) -> ModelInfo:
    """Find a model by name (user models shadow nothing: bundled names win) or by folder path."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.is_dir():
        return ModelInfo(path.name, path.resolve(), False, _read_card(path))
    if path.suffix == ".safetensors" and path.is_file():
        return ModelInfo(path.parent.name, path.parent.resolve(), False, _read_card(path.parent))
    for info in list_models():
        if info.name == str(model):
            return info
    names = ", ".join(m.name for m in list_models()) or "none installed"
    raise ModelError(f"No model called {str(model)!r} (available: {names}), and no such folder.")


def save_state(module, path: Path, metadata: dict | None = None) -> None:
    """Write a module's weights to ``path`` (safetensors) via a temporary file."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".part")
    save_file(state, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    """Read a safetensors file into a state dict (never executes code)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelError(f"Model file {path} is missing.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"Model file {path} is corrupt or not a safetensors file ({exc}).") from exc


def build_detector(card: dict):
    from .models.unet import UNet

    return UNet(**card["detector"]["architecture"])


def build_noise_generators(card: dict):
    from .models.ugatit import Generator

    arch = card["noise"]["architecture"]
    return Generator(**arch), Generator(**arch)


def load_generator_states(gen_ab, gen_ba, path: Path) -> None:
    """Load both U-GAT-IT generators from a noise-transfer safetensors file."""
    state = load_state(path)
    gen_ab.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("gen_ab.")})
    if gen_ba is not None:
        gen_ba.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("gen_ba.")})


@lru_cache(maxsize=8)
def _load_cached(folder: str, part: str, device: str, mtime: float):
    import torch

    info = ModelInfo(Path(folder).name, Path(folder), False, _read_card(Path(folder)))
    if part == "detector":
        if "detector" not in info.card:
            raise ModelError(f"Model {info.name} has no detector (stage 2).")
        net = build_detector(info.card)
        state = load_state(info.path / DETECTOR_FILE)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"Detector weights of {info.name} do not fit its card: {exc}") from exc
        return net.eval().fused().to(torch.device(device))
    if "noise" not in info.card:
        raise ModelError(f"Model {info.name} has no noise-transfer stage (stage 1).")
    gen_ab, gen_ba = build_noise_generators(info.card)
    try:
        load_generator_states(gen_ab, gen_ba, info.path / NOISE_FILE)
    except RuntimeError as exc:
        raise ModelError(f"Noise-transfer weights of {info.name} do not fit its card: {exc}") from exc
    return gen_ab.to(torch.device(device)).eval(), gen_ba.to(torch.device(device)).eval()


def load_detector(info: ModelInfo, device):
    """The stage-2 U-Net of ``info`` on ``device`` (loaded once, then cached)."""
    f = info.path / DETECTOR_FILE
    return _load_cached(str(info.path), "detector", str(device), f.stat().st_mtime if f.exists() else 0)


def load_noise_generators(info: ModelInfo, device):
    """``(gen_ab, gen_ba)`` of the stage-1 U-GAT-IT of ``info`` (cached)."""
    f = info.path / NOISE_FILE
    return _load_cached(str(info.path), "noise", str(device), f.stat().st_mtime if f.exists() else 0)


def write_model(folder: Path, card: dict, detector=None, noise=None) -> Path:
    """Write a model folder atomically (temporary folder, then rename); returns the folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.resolve().is_relative_to(BUNDLED_DIR.resolve()) and folder.exists() and \
            os.environ.get("ATOMDEFECT_WRITE_BUNDLED") != "1":
        raise ModelError(f"{folder} is a bundled model and is never overwritten.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        if detector is not None:
            save_state(detector, tmp / DETECTOR_FILE)
        if noise is not None:
            save_state(noise, tmp / NOISE_FILE)
        (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
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


#: Callables run after the set of user models changes (widgets refresh their lists).
_listeners: list = []


def on_models_changed(callback) -> None:
    """Register ``callback()`` to run whenever a model is written, renamed, deleted or imported.

    The callback runs in the thread that changed the models — a fine-tuning worker writes its
    model from a background thread. It must be cheap and thread-safe; GUI code must hand the
    work to its own thread (the widgets emit a Qt signal, see ``widgets._worker.follow_models``).
    """
    _listeners.append(callback)


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


def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\:*?\"<>|") or name.startswith("."):
        raise ModelError(f"{name!r} is not a valid model name (letters, digits, - and _).")
    if (BUNDLED_DIR / name).exists():
        raise ModelError(f"{name!r} is the name of a bundled model; choose another.")


def rename_model(old: str, new: str) -> Path:
    """Rename a user model (bundled models cannot be renamed)."""
    _check_name(new)
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


def export_model(name_or_path, archive: str | os.PathLike) -> Path:
    """Write a model to a single ``.zip`` archive (card and safetensors files only)."""
    import zipfile

    info = resolve_model(name_or_path)
    archive = Path(archive)
    tmp = archive.with_name(archive.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(info.path.iterdir()):
            if f.name in ALLOWED_FILES:
                zf.write(f, f.name)
    os.replace(tmp, archive)
    return archive


def import_model(archive: str | os.PathLike, name: str | None = None) -> Path:
    """Import a model archive into the user models folder, validating it first.

    Only ``card.json`` and ``*.safetensors`` members are accepted; the card must parse, every
    weights file must load with safetensors (never pickle) and fit the card's architecture.
    """
    import zipfile

    archive = Path(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{archive.name} is not a model archive ({exc}).") from exc
    with zf:
        names = zf.namelist()
        bad = [n for n in names if n not in ALLOWED_FILES]
        if bad or CARD not in names:
            raise ModelError(f"{archive.name} is not a model archive: unexpected or missing "
                             f"files ({', '.join(bad) or CARD + ' missing'}).")
        if sum(i.file_size for i in zf.infolist()) > MAX_ARCHIVE_BYTES:
            raise ModelError(f"{archive.name} is too large to be a model archive.")
        try:
            card = json.loads(zf.read(CARD))
        except ValueError as exc:
            raise ModelError(f"The card in {archive.name} is not valid JSON.") from exc
        name = name or str(card.get("name") or archive.stem)
        _check_name(name)
        dst = user_models_dir() / name
        if dst.exists():
            raise ModelError(f"A model called {name!r} exists already; rename or delete it first.")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dst.parent))
        try:
            for n in names:
                (tmp / n).write_bytes(zf.read(n))
            card["name"] = name
            (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
            info = ModelInfo(name, tmp, False, card)
            if "detector" in card:
                build_detector(card).load_state_dict(load_state(tmp / DETECTOR_FILE))
            if "noise" in card:
                gen_ab, gen_ba = build_noise_generators(card)
                load_generator_states(gen_ab, gen_ba, tmp / NOISE_FILE)
            del info
            os.replace(tmp, dst)
        except (ModelError, RuntimeError, KeyError, TypeError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"{archive.name} does not hold a valid model: {exc}") from exc
    _notify()
    return dst
