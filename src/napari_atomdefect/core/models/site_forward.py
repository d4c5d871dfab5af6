"""U-Net inference read at the two own sites only: the same logits for about half the work.

Detection reads the U-Net's logit maps at two points of each tile (bilinear, see
:func:`~.readout.site_logits`). The encoder has to see the whole tile, but the decoder's last
level and the head only matter in a small window around those points: a 3 x 3 convolution's
output depends on its input one pixel around, so a window that stays at least the receptive margin
away from the tile edge comes out of *valid* (unpadded) convolutions over a cropped input exactly
as it does from the padded full-tile pass. :func:`site_logits_fast` computes the decoder on one
window shared by the whole batch (the bounding box of all sites plus that margin) and falls back to
the full pass when the window would reach the tile edge.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily, inside the functions
    import torch

    from .unet import UNet


def _valid_block(block: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a conv block without its zero padding (each 3 x 3 convolution trims one pixel a side)."""
    import torch.nn.functional as F
    from torch import nn

    for layer in block:
        if isinstance(layer, nn.Conv2d):
            x = F.conv2d(x, layer.weight, layer.bias, layer.stride, 0, layer.dilation, layer.groups)
        else:  # BatchNorm (eval) and ReLU act per pixel
            x = layer(x)
    return x


def _block_margin(block: torch.nn.Sequential) -> int:
    """Pixels one block trims per side when run without padding."""
    from torch import nn

    return sum(int(m.padding[0]) for m in block if isinstance(m, nn.Conv2d))


def _window(lo: int, hi: int, margin: int, size: int) -> tuple[int, int] | None:
    """``(lo - margin, hi + margin)`` if inside ``[0, size - 1]``, else ``None``."""
    a, b = lo - margin, hi + margin
    return (a, b) if a >= 0 and b <= size - 1 else None


def decoder_windows(sites: np.ndarray, size: int, margin1: int,
                    margin2: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int],
                                           tuple[int, int]] | None:
    """Windows (inclusive pixel ranges) of the full- and half-resolution decoder inputs.

    Parameters
    ----------
    sites : ndarray
        ``(N, 2, 2)`` tile coordinates (row, col) of the sites that will be read (host memory:
        the window is decided without a device round trip).
    size : int
        Tile side (pixels).
    margin1, margin2 : int
        Pixels trimmed per side by the last and the second-to-last decoder block.

    Returns
    -------
    tuple or None
        ``(rows1, cols1, rows2, cols2)``: the input windows of the last decoder block (full
        resolution) and of the one before (half resolution); ``None`` where a window would reach
        the tile edge (or a site is not finite), so that the full pass must be used.
    """
    pts = np.asarray(sites, np.float64).reshape(-1, 2)
    if not len(pts) or not np.isfinite(pts).all():
        return None
    lo = np.floor(pts.min(0)).astype(int)
    hi = np.floor(pts.max(0)).astype(int) + 1
    out = []
    for d in range(2):
        w1 = _window(int(lo[d]), int(hi[d]), margin1, size)
        if w1 is None:
            return None
        # a transposed 2 x 2, stride-2 convolution: output pixel p comes from input pixel p // 2
        w2 = _window(w1[0] // 2, w1[1] // 2, margin2, size // 2)
        if w2 is None:
            return None
        out.append((w1, w2))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def tiles_in_window(sites: np.ndarray, size: int, margin1: int, margin2: int) -> np.ndarray:
    """Which tiles' sites allow the cropped decoder on their own (:func:`decoder_windows` of
    each tile alone is not ``None``); the window of any set of them is then valid too (its
    limits only bound the lowest and the highest site)."""
    pts = np.asarray(sites, np.float64)
    pts = pts.reshape(len(pts), -1, 2)
    ok = np.isfinite(pts).all(axis=(1, 2))
    safe = np.where(np.isfinite(pts), pts, 0.0)
    lo = np.floor(safe.min(1)).astype(int)
    hi = np.floor(safe.max(1)).astype(int) + 1
    a1, b1 = lo - margin1, hi + margin1
    a2, b2 = a1 // 2 - margin2, b1 // 2 + margin2
    ok &= ((a1 >= 0) & (b1 <= size - 1) & (a2 >= 0) & (b2 <= size // 2 - 1)).all(axis=1)
    return ok


def site_logits_fast(net: UNet, x: torch.Tensor, sites: torch.Tensor,
                     sites_host: np.ndarray | None = None) -> torch.Tensor:
    """Per-site logits ``(N, 2, C)`` of ``net`` on tiles ``x``: ``site_logits(net(x), sites)``.

    Parameters
    ----------
    net : UNet
        The detector in eval mode (fused or not).
    x : Tensor
        ``(N, 1, S, S)`` tiles (any memory format).
    sites : Tensor
        ``(N, 2, 2)`` tile coordinates (row, col) of the metal and chalcogen sites.
    sites_host : ndarray, optional
        The same coordinates in host memory (saves a device-to-host copy on a GPU).

    Returns
    -------
    Tensor
        ``(N, 2, C)``, equal to :func:`~.readout.site_logits` of the full output within float
        rounding; computed on a cropped decoder when the sites allow it. Where some tiles' sites
        lie too near the tile edge (a distorted real lattice spreads its chalcogen sites over
        a third of the tile), those take the full pass and the others the cropped one.
    """
    import torch
    import torch.nn.functional as F

    from .readout import site_logits

    size = x.shape[-1]
    win = None
    if x.shape[-2] == size and size % 4 == 0:
        host = sites.detach().cpu().numpy() if sites_host is None else sites_host
        m1, m2 = _block_margin(net.dec1), _block_margin(net.dec2)
        win = decoder_windows(host, size, m1, m2)
        if win is None and len(host) > 1:
            fits = tiles_in_window(host, size, m1, m2)
            if fits.any() and not fits.all():
                out = torch.empty((len(host), 2, int(net.head.out_channels)), dtype=x.dtype,
                                  device=x.device)
                keep = torch.from_numpy(fits).to(x.device)
                out[keep] = site_logits_fast(net, _rows(x, keep), sites[keep],
                                             np.asarray(host)[fits]).to(out.dtype)
                out[~keep] = site_logits(net(_rows(x, ~keep)), sites[~keep]).to(out.dtype)
                return out
    if win is None:
        return site_logits(net(x), sites)
    (r1a, r1b), (c1a, c1b), (r2a, r2b), (c2a, c2b) = win
    e1 = net.enc1(x)
    e2 = net.enc2(net.pool(e1))
    e3 = net.enc3(net.pool(e2))
    # dec2 input on the half-resolution window; up2 output pixel p comes from e3 pixel p // 2
    u2 = net.up2(e3[..., r2a // 2:r2b // 2 + 1, c2a // 2:c2b // 2 + 1])
    u2 = u2[..., r2a - 2 * (r2a // 2):r2a - 2 * (r2a // 2) + r2b - r2a + 1,
            c2a - 2 * (c2a // 2):c2a - 2 * (c2a // 2) + c2b - c2a + 1]
    d2 = _valid_block(net.dec2, torch.cat([u2, e2[..., r2a:r2b + 1, c2a:c2b + 1]], dim=1))
    m2 = _block_margin(net.dec2)
    d2_r0, d2_c0 = r2a + m2, c2a + m2                         # d2 window's first pixel
    u1 = net.up1(d2)                                          # rows 2 * d2_r0 ...
    u1 = u1[..., r1a - 2 * d2_r0:r1b - 2 * d2_r0 + 1, c1a - 2 * d2_c0:c1b - 2 * d2_c0 + 1]
    d1 = _valid_block(net.dec1, torch.cat([u1, e1[..., r1a:r1b + 1, c1a:c1b + 1]], dim=1))
    logits = net.head(d1)
    m1 = _block_margin(net.dec1)
    origin = torch.tensor([r1a + m1, c1a + m1], dtype=sites.dtype, device=sites.device)
    extent = torch.tensor([logits.shape[-2] - 1, logits.shape[-1] - 1], dtype=sites.dtype,
                          device=sites.device)
    grid = ((sites - origin) / extent * 2 - 1).flip(-1)       # (N, 2, 2) as (x, y) in [-1, 1]
    out = F.grid_sample(logits, grid[:, :, None, :].to(logits.dtype), mode="bilinear",
                        align_corners=True)
    return out[..., 0].permute(0, 2, 1)


def _rows(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """``x[which]`` in ``x``'s memory format (a boolean index returns a contiguous copy)."""
    import torch

    part = x[which]
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        part = part.contiguous(memory_format=torch.channels_last)
    return part


def prepare_detector(net: UNet, device: torch.device) -> UNet:
    """The detector laid out for fast inference on ``device`` (channels-last on CPU and CUDA).

    Channels-last weights and activations let oneDNN (CPU) and cuDNN pick their fastest
    convolutions; the arithmetic, and so the result, is the same. Modifies ``net`` in place.
    """
    import torch

    if torch.device(device).type in ("cpu", "cuda"):
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net


def tile_site_probabilities(net: UNet, tiles: np.ndarray, sites: np.ndarray, temperature: float,
                            device: torch.device, classes: tuple[str, ...] | None = None,
                            context: np.ndarray | None = None, bf16: bool | None = None,
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities at each tile's own sites, left on ``device`` (no host synchronisation).

    Parameters
    ----------
    net : UNet
        The detector on ``device`` (eval mode).
    tiles : ndarray
        ``(N, S, S)`` float32 normalised tiles.
    sites : ndarray
        ``(N, 2, 2)`` tile coordinates of the metal and chalcogen sites.
    temperature : float
        Temperature of the softmax.
    device : torch.device
        Where ``net`` lives; on CUDA the tiles travel through pinned memory, asynchronously.
    classes : tuple of str, optional
        The model's defect classes in channel order (default: the legacy MoS2 classes).
    context : ndarray, optional
        The image's context values (:func:`~..cells.normalize.image_context`), needed when the
        detector takes them (:func:`~.unet.n_context`).
    bf16 : bool, optional
        Run the network in bfloat16 (CPU only); ``None``: as :func:`cpu_precision` says for the
        whole run (``"bf16"``).

    Returns
    -------
    p_metal, p_chalcogen : Tensor
        ``(N, M)`` and ``(N, X)`` on ``device`` over the site choices of ``classes`` (see
        :func:`~.readout.site_probabilities`); call within ``torch.inference_mode()``.
    """
    import torch

    from ..materials.columns import LEGACY_CLASSES
    from .readout import site_probabilities
    from .unet import with_context

    x = torch.from_numpy(np.ascontiguousarray(tiles, np.float32))[:, None]
    x = with_context(net, x, None if context is None else torch.from_numpy(
        np.asarray(context, np.float32)))
    s = torch.from_numpy(np.asarray(sites, np.float32))
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
        s = s.pin_memory().to(device, non_blocking=True)  # the host copy decides the window
    elif device.type != "cpu":
        x, s = x.to(device), s.to(device)
    if device.type in ("cpu", "cuda"):
        x = x.contiguous(memory_format=torch.channels_last)
    half = cpu_precision(device) == "bf16" if bf16 is None else bf16 and device.type == "cpu"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
        logits = site_logits_fast(net, x, s, np.asarray(sites))
    return site_probabilities(logits.float(), temperature,
                              LEGACY_CLASSES if classes is None else tuple(classes))


#: Precisions of CPU inference (:func:`cpu_precision`).
PRECISIONS = ("fp32", "mixed", "bf16")


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX; Linux flags): there
    a bfloat16 pass runs about twice as fast; elsewhere it is emulated and slower."""
    import torch

    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        supported = False
    return supported and ("avx512_bf16" in flags or "amx_bf16" in flags)


def cpu_precision(device: torch.device) -> str:
    """How detection on ``device`` runs its network: ``"fp32"``, ``"mixed"`` or ``"bf16"``.

    ``"mixed"`` (the default on a CPU with native bfloat16, :func:`native_bf16`): every tile is
    read in bfloat16 and the tiles it leaves uncertain (below
    :data:`~..detect.detect.FP32_RECHECK_BELOW`) are read again in float32, so every tile's own
    reading near a decision is the float32 one; the confident tiles keep probabilities within a
    few thousandths of float32. The mirrored views of the uncertain tiles
    (:data:`~..detect.detect.SECOND_VIEW_BELOW`) are read in bfloat16: the two views' mean then
    moves by at most ~0.014 (half of bfloat16's largest shift on uncertain tiles), which changed
    12 of ~5 000 calls of 22 analyses (each called at 0.37–0.50) and no class's F1 on 78
    benchmark images, for 25 ms less per 1024² image on one thread (docs/benchmarks.md).
    ``"bf16"`` reads everything in bfloat16 (more calls near a decision may change: opt-in).
    ``ATOMDEFECT_CPU_BF16`` chooses: ``1`` bf16, ``0`` fp32, ``mixed``; unset, the CPU decides.
    Other devices: fp32.
    """
    if device.type != "cpu":
        return "fp32"
    chosen = os.environ.get("ATOMDEFECT_CPU_BF16", "").strip().lower()
    if chosen in ("1", "bf16"):
        return "bf16"
    if chosen in ("0", "fp32"):
        return "fp32"
    if chosen == "mixed":
        return "mixed"
    return "mixed" if native_bf16() else "fp32"


def cpu_bf16(device: torch.device) -> bool:
    """Whether inference on ``device`` reads every tile in bfloat16 (``ATOMDEFECT_CPU_BF16=1``)."""
    return cpu_precision(device) == "bf16"
