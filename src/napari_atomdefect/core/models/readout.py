"""Read a network's output: class probabilities at the sites, and generator translation of tiles.

What detection needs from the models, apart from the training loops (``core/train``) that make them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily, inside the functions
    import torch

import numpy as np

from ..materials.columns import LEGACY_CLASSES, site_channels


def to_gan(tiles: np.ndarray) -> np.ndarray:
    """Normalised tiles (background 0, chalcogen 1) to the generators' tanh range."""
    return np.clip(np.asarray(tiles, np.float32) / 4.0 - 0.25, -0.98, 0.98)


def from_gan(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_gan`."""
    return (np.asarray(x, np.float32) + 0.25) * 4.0


def site_logits(logits: torch.Tensor, sites: torch.Tensor) -> torch.Tensor:
    """Per-site class logits ``(N, 2, C)``: bilinear samples of the logit maps at the own sites.

    Parameters
    ----------
    logits : Tensor
        ``(N, C, S, S)`` output of the U-Net.
    sites : Tensor
        ``(N, 2, 2)`` tile coordinates (row, col) of the metal and chalcogen sites.
    """
    import torch.nn.functional as F

    s = logits.shape[-1]
    # grid_sample wants (x, y) in [-1, 1] with align_corners=True mapping 0 -> -1, s-1 -> 1.
    grid = sites.flip(-1) / (s - 1) * 2 - 1                       # (N, 2, 2) as (x, y)
    out = F.grid_sample(logits, grid[:, :, None, :], mode="bilinear", align_corners=True)
    return out[..., 0].permute(0, 2, 1)                            # (N, 2, C)


def site_probabilities(logits_at_sites: torch.Tensor, temperature: float = 1.0,
                       classes: tuple[str, ...] = LEGACY_CLASSES,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities of the metal site and the chalcogen site.

    Parameters
    ----------
    logits_at_sites : Tensor
        ``(N, 2, C)`` from :func:`site_logits`.
    temperature : float
        Softmax temperature.
    classes : tuple of str
        The model's defect classes (its card's ``detector.classes``), in channel order.

    Returns
    -------
    tuple of Tensor
        ``(p_metal, p_chalcogen)`` over :func:`~..materials.columns.site_choices` of ``classes``
        (pristine first).
    """
    import torch

    metal_ch, chalcogen_ch = site_channels(classes)
    lm = logits_at_sites[:, 0, list(metal_ch)] / temperature
    lx = logits_at_sites[:, 1, list(chalcogen_ch)] / temperature
    return torch.softmax(lm, -1), torch.softmax(lx, -1)


def translate(gen: torch.nn.Module, tiles: np.ndarray, device: torch.device,
              batch_size: int = 256) -> np.ndarray:
    """Run a U-GAT-IT generator over normalised tiles; returns normalised tiles."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(tiles), batch_size):
            x = torch.from_numpy(to_gan(tiles[s:s + batch_size])[:, None]).to(device)
            out.append(from_gan(gen(x)[0][:, 0].cpu().numpy()))
    s = tiles.shape[-1]
    return np.concatenate(out) if out else np.zeros((0, s, s), np.float32)
