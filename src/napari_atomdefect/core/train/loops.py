"""Training loops, written as generators that yield progress (so a UI can show it and cancel).

Each loop yields dictionaries ``{"stage", "step", "steps", ...losses...}`` and finally one with
``"done": True`` and the trained network(s). Closing the generator (``gen.close()``) stops the
training at the next step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily, inside the functions
    import torch

    from ..models.ugatit import UGATIT
    from ..models.unet import UNet

import time
from collections.abc import Iterator

import numpy as np

from ..materials.columns import LEGACY_CLASSES, class_site, segment_classes, site_channels
from ..models.readout import (
    from_gan,
    site_logits,
    site_probabilities,
    to_gan,
)
from .datasets import CellSet

#: Site channels of the legacy MoS2 classes (a cell set's own come from its ``classes``).
METAL_CHOICES, CHALCOGEN_CHOICES = site_channels(LEGACY_CLASSES)

#: Loss weight of the background pixel class (every site class weighs 1).
BACKGROUND_WEIGHT = 0.3


def pixel_class_weights(n_classes: int) -> tuple[float, ...]:
    """Pixel-class weights of the detector loss (background matters less than the sites)."""
    return (BACKGROUND_WEIGHT,) + (1.0,) * (n_classes - 1)


#: Pixel-class weights of a legacy (7-channel) detector.
PIXEL_CLASS_WEIGHTS = pixel_class_weights(3 + len(LEGACY_CLASSES))


def set_seed(seed: int) -> np.random.Generator:
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def site_predictions(net: torch.nn.Module, cells: CellSet, device: torch.device,
                     batch_size: int = 512, temperature: float = 1.0,
                     raw: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted own-site class indices and probabilities for a :class:`CellSet`.

    The network runs on ``device`` and is left on the device it came on (a trained network
    comes back on the CPU; fine-tuning scores it on the GPU).

    Returns
    -------
    classes : ndarray
        ``(N, 2)`` class indices (into ``segment_classes(cells.classes)``) of the metal and
        chalcogen sites.
    p_metal, p_chalcogen : ndarray
        Class probabilities (or logits when ``raw``) of each site.
    """
    came_on = next(net.parameters()).device
    net.eval().to(device)
    try:
        return _site_predictions(net, cells, device, batch_size, temperature, raw)
    finally:
        net.to(came_on)


def _site_predictions(net: torch.nn.Module, cells: CellSet, device: torch.device,
                      batch_size: int, temperature: float, raw: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`site_predictions` with the network already on ``device``."""
    import torch

    from ..models.unet import with_context

    metal_ch, chalcogen_ch = site_channels(cells.classes)
    pm_parts: list[np.ndarray] = []
    px_parts: list[np.ndarray] = []
    with torch.inference_mode():
        for s in range(0, len(cells), batch_size):
            x = torch.from_numpy(cells.tiles[s:s + batch_size, None]).to(device)
            x = with_context(net, x, _context(cells, slice(s, s + batch_size)))
            sites = torch.from_numpy(cells.own_sites[s:s + batch_size].astype(np.float32)).to(device)
            at = site_logits(net(x), sites)
            if raw:
                pm_parts.append(at[:, 0, list(metal_ch)].cpu().numpy())
                px_parts.append(at[:, 1, list(chalcogen_ch)].cpu().numpy())
            else:
                a, b = site_probabilities(at, temperature, cells.classes)
                pm_parts.append(a.cpu().numpy())
                px_parts.append(b.cpu().numpy())
    pm = np.concatenate(pm_parts) if pm_parts else np.zeros((0, len(metal_ch)))
    px = np.concatenate(px_parts) if px_parts else np.zeros((0, len(chalcogen_ch)))
    classes = np.stack([np.asarray(metal_ch, int)[pm.argmax(1)],
                        np.asarray(chalcogen_ch, int)[px.argmax(1)]], axis=1)
    return classes, pm, px


def site_f1(true: np.ndarray, pred: np.ndarray,
            classes: tuple[str, ...] = LEGACY_CLASSES) -> dict[str, float]:
    """F1 per defect class over own sites (a wrong class counts against both).

    ``true`` and ``pred`` are indices into ``segment_classes(classes)``.
    """
    out = {}
    seg = segment_classes(classes)
    for name in classes:
        k = seg.index(name)
        tp = np.sum((pred == k) & (true == k))
        fp = np.sum((pred == k) & (true != k))
        fn = np.sum((pred != k) & (true == k))
        out[name] = float(2 * tp / max(2 * tp + fp + fn, 1))
    return out


def site_scores(net: torch.nn.Module, cells: CellSet, device: torch.device) -> dict[str, float]:
    """Per-class F1 of ``net`` on the own sites of ``cells``, for every class of
    ``cells.classes`` (metal site for metal classes such as ``V_Mo``, chalcogen site for the
    others)."""
    pred, _, _ = site_predictions(net, cells, device)
    classes = cells.classes
    on_chalcogen = site_f1(cells.own_classes[:, 1], pred[:, 1], classes)
    on_metal = site_f1(cells.own_classes[:, 0], pred[:, 0], classes)
    return {c: on_metal[c] if class_site(c) == "metal" else on_chalcogen[c] for c in classes}


def fit_temperature(net: torch.nn.Module, cells: CellSet, device: torch.device) -> float:
    """Temperature that minimises the negative log-likelihood of the own-site classes."""
    _, lm, lx = site_predictions(net, cells, device, raw=True)
    metal_ch, chalcogen_ch = site_channels(cells.classes)
    # Only sites labelled with one of their sublattice's choices (a stray label never indexes
    # past the choices).
    ok_m = np.isin(cells.own_classes[:, 0], metal_ch)
    ok_x = np.isin(cells.own_classes[:, 1], chalcogen_ch)
    tm = np.searchsorted(metal_ch, cells.own_classes[ok_m, 0])
    tx = np.searchsorted(chalcogen_ch, cells.own_classes[ok_x, 1])
    lm, lx = lm[ok_m], lx[ok_x]

    def nll(t: float) -> float:
        total = 0.0
        for logits, target in ((lm, tm), (lx, tx)):
            z = logits / t
            z = z - z.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            total -= logp[np.arange(len(target)), target].sum()
        return total

    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 60))
    return float(grid[np.argmin([nll(t) for t in grid])])


def _context(cells: CellSet, idx: slice | np.ndarray) -> torch.Tensor | None:
    """The context values of ``cells[idx]`` as a tensor (``None`` when the cells have none)."""
    import torch

    return None if cells.context is None else torch.from_numpy(
        np.ascontiguousarray(cells.context[idx], np.float32))


#: Standard deviation of the jitter on the context values in training (the measurement's own
#: spread between images of one microscope, and what the simulator's contrast model may miss).
CONTEXT_JITTER = 0.05


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intensity augmentation: normalisation errors of a few percent (gain and offset)."""
    gain = rng.uniform(0.9, 1.1, (len(x), 1, 1)).astype(np.float32)
    offset = rng.normal(0, 0.05, (len(x), 1, 1)).astype(np.float32)
    return x * gain + offset


#: Which U-Net parts are trained: all, or (fine-tuning) only the decoder, or only the last layer.
TRAINABLE_PARTS = {"all": (), "decoder": ("enc1", "enc2", "enc3"),
                   "head": ("enc1", "enc2", "enc3", "up2", "dec2", "up1", "dec1")}


def train_detector(train: CellSet, val: CellSet, steps: int = 3000, batch_size: int = 64,
                   lr: float = 2e-3, seed: int = 0, device: torch.device | None = None,
                   net: UNet | None = None, width: int = 24,
                   report_every: int = 100, trainable: str = "all") -> Iterator[dict]:
    """Train (or fine-tune, when ``net`` is given) the stage-2 U-Net; yields progress.

    ``trainable`` (:data:`TRAINABLE_PARTS`) freezes the encoder (``decoder``) or everything but
    the last layer (``head``) — frozen parts keep their weights and normalisation statistics.

    The final item has ``done``, ``net``, ``temperature`` (fitted on ``val``) and ``metrics``
    (per-class F1 of the own sites of ``val``).
    """
    import torch
    import torch.nn.functional as F

    from ..models.unet import UNet, with_context

    rng = set_seed(seed)
    device = device or torch.device("cpu")
    n_classes = len(segment_classes(train.classes))
    k = 0 if train.context is None else train.context.shape[1]
    net = (net or UNet(in_channels=1 + k, n_classes=n_classes, width=width)).to(device)
    if net.config["n_classes"] != n_classes:
        raise ValueError(f"The network has {net.config['n_classes']} output channels; the cells' "
                         f"classes need {n_classes} (adapt its head first).")
    frozen = [getattr(net, name) for name in TRAINABLE_PARTS[trainable]]
    for part in frozen:
        part.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr,
                            weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.15)
    weights = torch.tensor(pixel_class_weights(n_classes), device=device)
    t0 = time.perf_counter()
    running = []
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(train), batch_size)
        x = torch.from_numpy(_augment(train.tiles[idx], rng)[:, None]).to(device)
        ctx = _context(train, idx)
        if ctx is not None:
            ctx = ctx + CONTEXT_JITTER * torch.from_numpy(
                rng.standard_normal(tuple(ctx.shape)).astype(np.float32))
        x = with_context(net, x, ctx)
        y = torch.from_numpy(train.labels[idx].astype(np.int64)).to(device)
        net.train()
        for part in frozen:
            part.eval()
        logits = net(x)
        loss = F.cross_entropy(logits, y, weight=weights)
        # The decision is read at the own sites: weight them explicitly too.
        sites = torch.from_numpy(train.own_sites[idx].astype(np.float32)).to(device)
        at = site_logits(logits, sites)
        own = torch.from_numpy(train.own_classes[idx].astype(np.int64)).to(device)
        loss = loss + F.cross_entropy(at.reshape(-1, at.shape[-1]), own.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(float(loss.detach()))
        if step % report_every == 0 or step == steps:
            elapsed = time.perf_counter() - t0
            yield {"stage": "detector", "step": step, "steps": steps,
                   "loss": float(np.mean(running)), "elapsed_s": elapsed,
                   "eta_s": elapsed / step * (steps - step)}
            running = []
    for part in frozen:
        part.requires_grad_(True)
    metrics = site_scores(net, val, device)
    temperature = fit_temperature(net, val, device)
    yield {"stage": "detector", "done": True, "net": net.cpu().eval(), "temperature": temperature,
           "metrics": metrics, "elapsed_s": time.perf_counter() - t0}


def column_intensities(tiles: np.ndarray, sites: np.ndarray, radius: float = 1.5) -> np.ndarray:
    """Mean tile value within ``radius`` of each own site: ``(N, 2)`` (metal, chalcogen)."""
    s = tiles.shape[-1]
    rr, cc = np.mgrid[0:s, 0:s]
    out = np.empty((len(tiles), 2))
    for j in range(2):
        d2 = (rr[None] - sites[:, j, 0, None, None]) ** 2 + (cc[None] - sites[:, j, 1, None, None]) ** 2
        m = d2 <= radius**2
        out[:, j] = (tiles * m).sum((1, 2)) / np.maximum(m.sum((1, 2)), 1)
    return out


def label_preservation(before: CellSet, after_tiles: np.ndarray) -> dict[str, dict]:
    """Mean own-column intensity per class before and after translation (labels kept?)."""
    b = column_intensities(before.tiles, before.own_sites)
    a = column_intensities(after_tiles, before.own_sites)
    out = {}
    seg = segment_classes(before.classes)
    for j, choices in enumerate(site_channels(before.classes)):
        for k in choices:
            sel = before.own_classes[:, j] == k
            if sel.any():
                out[seg[k]] = {"n": int(sel.sum()), "before": float(b[sel, j].mean()),
                                           "after": float(a[sel, j].mean())}
    return out


def train_noise(domain_a: np.ndarray, domain_b: np.ndarray, steps: int = 2000,
                batch_size: int = 16, lr: float = 1e-4, seed: int = 0,
                device: torch.device | None = None, model: UGATIT | None = None,
                report_every: int = 50, ngf: int = 16, n_blocks: int = 2, ndf: int = 12,
                sample_every: int = 0) -> Iterator[dict]:
    """Train (or fine-tune) the stage-1 U-GAT-IT between two sets of normalised tiles.

    Yields progress with the loss terms (and, every ``sample_every`` steps, a few translated
    tiles under ``"samples"``); the final item has ``done`` and ``model``.
    """
    import torch

    from ..models.ugatit import UGATIT, RhoClipper, discriminator_loss, generator_loss

    rng = set_seed(seed)
    device = device or torch.device("cpu")
    s = domain_a.shape[-1]
    model = (model or UGATIT(ngf=ngf, n_blocks=n_blocks, ndf=ndf, tile_px=s)).to(device)
    g_params = [p for g in model.generators() for p in g.parameters()]
    d_params = [p for d in model.discriminators() for p in d.parameters()]
    g_opt = torch.optim.Adam(g_params, lr=lr, betas=(0.5, 0.999), weight_decay=1e-4)
    d_opt = torch.optim.Adam(d_params, lr=lr, betas=(0.5, 0.999), weight_decay=1e-4)
    clip = RhoClipper()
    a_all, b_all = to_gan(domain_a), to_gan(domain_b)
    t0 = time.perf_counter()
    running: dict[str, list] = {}
    for step in range(1, steps + 1):
        model.train()
        if step > steps // 2:  # linear learning-rate decay over the second half (as U-GAT-IT)
            for opt in (g_opt, d_opt):
                for group in opt.param_groups:
                    group["lr"] = lr * (steps - step + 1) / (steps - steps // 2)
        ra = torch.from_numpy(a_all[rng.integers(0, len(a_all), batch_size)][:, None]).to(device)
        rb = torch.from_numpy(b_all[rng.integers(0, len(b_all), batch_size)][:, None]).to(device)
        if rng.random() < 0.5:  # flips keep the statistics of a lattice tile
            ra, rb = ra.flip(-1), rb.flip(-1)
        d_loss = discriminator_loss(model, ra, rb)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss, parts = generator_loss(model, ra, rb)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        for g in model.generators():
            g.apply(clip)
        parts["d"] = float(d_loss.detach())
        for k, v in parts.items():
            running.setdefault(k, []).append(v)
        if step % report_every == 0 or step == steps:
            elapsed = time.perf_counter() - t0
            item = {"stage": "noise", "step": step, "steps": steps, "elapsed_s": elapsed,
                    "eta_s": elapsed / step * (steps - step)}
            item.update({k: float(np.mean(v)) for k, v in running.items()})
            running = {}
            if sample_every and step % sample_every == 0:
                model.eval()
                with torch.inference_mode():
                    item["samples"] = from_gan(model.gen_ab(ra[:4])[0][:, 0].cpu().numpy())
            yield item
    yield {"stage": "noise", "done": True, "model": model.cpu().eval(),
           "elapsed_s": time.perf_counter() - t0}
