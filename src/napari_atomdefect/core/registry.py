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
    state = load_state(info.path / NOISE_FILE)
    try:
        gen_ab.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("gen_ab.")})
        gen_ba.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("gen_ba.")})
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
    return folder
