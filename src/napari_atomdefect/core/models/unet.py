"""U-Net that labels every pixel of a unit-cell tile with a column class.

Classes (channel order, :func:`~..materials.columns.segment_classes` of the model's defect classes):
background, pristine metal, pristine chalcogen, then the defect classes of the card's
``detector.classes`` (``V_S``, ``V_S2``, ``O_S``, ``V_Mo`` for a legacy MoS2 model), so
``3 + len(classes)`` channels. Training targets are discs at every column site of the tile
(the cell's own columns and its neighbours); detection reads the class probabilities at the
cell's own two sites.
"""

from __future__ import annotations

import torch
from torch import nn

from ..materials.columns import LEGACY_CLASSES, PRISTINE_SEGMENTS, lookup_class, segment_classes

#: Generic kinds whose head channels carry over between hosts (same physics: missing atoms).
TRANSFERABLE_KINDS = ("V_X", "V_X2", "V_M")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small U-Net (three resolution levels) for normalised tiles.

    Parameters
    ----------
    in_channels : int
        Input channels: 1 (the normalised tile) plus one constant plane per image-level context
        value (:func:`~..cells.normalize.image_context`), see :func:`with_context`.
    n_classes : int
        Output channels (per-pixel class logits).
    width : int
        Channels of the first level (doubled at each level down).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = len(PRISTINE_SEGMENTS) + len(LEGACY_CLASSES),
                 width: int = 24):
        super().__init__()
        w = width
        self.config = {"in_channels": in_channels, "n_classes": n_classes, "width": width}
        self.enc1 = _block(in_channels, w)
        self.enc2 = _block(w, 2 * w)
        self.enc3 = _block(2 * w, 4 * w)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _block(2 * w, w)
        self.head = nn.Conv2d(w, n_classes, 1)

    def fused(self) -> UNet:
        """An inference copy with every BatchNorm folded into its convolution (about 2x faster)."""
        import copy

        from torch.nn.utils.fusion import fuse_conv_bn_eval

        net = copy.deepcopy(self).eval()
        for name in ("enc1", "enc2", "enc3", "dec2", "dec1"):
            conv1, bn1, act1, conv2, bn2, act2 = getattr(net, name)
            setattr(net, name, nn.Sequential(fuse_conv_bn_eval(conv1, bn1), act1,
                                             fuse_conv_bn_eval(conv2, bn2), act2))
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def n_context(net: nn.Module) -> int:
    """Number of image-level context planes ``net`` expects after the tile."""
    return int(getattr(net, "config", {}).get("in_channels", 1)) - 1


def with_context(net: nn.Module, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """The input of ``net``: tiles ``x`` ``(N, 1, S, S)`` and, when ``net`` takes ``k`` of
    them, the first ``k`` of the ``(N, K)`` or ``(K,)`` ``context`` values as constant planes after
    the tile (context values are only ever appended, so a detector trained with fewer takes the
    first ones)."""
    k = n_context(net)
    if k == 0:
        return x
    if context is None or context.shape[-1] < k:
        raise ValueError(f"The detector takes {k} image-level context value(s); "
                         f"{0 if context is None else context.shape[-1]} were given.")
    ctx = context.to(device=x.device, dtype=x.dtype)
    ctx = ctx.reshape(-1, ctx.shape[-1])[:, :k]
    planes = ctx[:, :, None, None].expand(x.shape[0], k, x.shape[-2], x.shape[-1])
    return torch.cat([x, planes], dim=1)


def add_context_inputs(net: UNet, k: int) -> UNet:
    """``net`` taking ``k`` context planes after the tile (it may take fewer already: those keep
    their weights); the new input weights start at zero, so the network's output is unchanged
    until it is trained. Nothing changes when it has ``k``."""
    have = n_context(net)
    if have == k:
        return net
    if have > k:
        raise ValueError(f"The detector already takes {have} context planes, more than {k}.")
    conv = net.enc1[0]
    assert isinstance(conv, nn.Conv2d)  # the first layer of every U-Net block
    new = nn.Conv2d(1 + k, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                    padding=conv.padding,  # type: ignore[arg-type]
                    bias=conv.bias is not None).to(conv.weight.device)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :1 + have] = conv.weight
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    net.enc1[0] = new
    net.config = {**net.config, "in_channels": 1 + k}
    return net


def _source_channel(name: str, old: tuple[str, ...]) -> int | None:
    """Channel of ``old``'s segment classes that starts the new class ``name``, if any."""
    seg = segment_classes(old)
    if name in seg:
        return seg.index(name)
    new = lookup_class(name)
    if new is None or new.kind not in TRANSFERABLE_KINDS:
        return None
    for k, other in enumerate(seg):
        c = lookup_class(other)
        if c is not None and c.kind == new.kind:
            return k
    return None


def transfer_head(net: UNet, old_classes: tuple[str, ...], new_classes: tuple[str, ...],
                  seed: int = 0) -> UNet:
    """``net`` with its last layer remade for ``new_classes`` (all other layers kept).

    A channel of the new head starts from the old channel of the same class name (background,
    pristine sites, ``V_S`` ...) or, for vacancies, of the same kind (``V_Mo`` -> ``V_W``); the
    others are freshly initialised. Nothing changes when the class lists are equal.

    Parameters
    ----------
    net : UNet
        Trained network whose head has ``3 + len(old_classes)`` channels.
    old_classes, new_classes : tuple of str
        Defect classes of ``net`` and of the network wanted, in channel order.
    seed : int
        Seed of the fresh channels' initialisation.

    Returns
    -------
    UNet
        The same object, with a new ``head`` and ``config["n_classes"]``.
    """
    old_classes, new_classes = tuple(old_classes), tuple(new_classes)
    if old_classes == new_classes:
        return net
    old = net.head
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    head = nn.Conv2d(old.in_channels, len(segment_classes(new_classes)), 1)
    torch.random.set_rng_state(gen_state)
    with torch.no_grad():
        for k, name in enumerate(segment_classes(new_classes)):
            src = _source_channel(name, old_classes)
            if src is not None:
                head.weight[k] = old.weight[src]
                head.bias[k] = old.bias[src]
    net.head = head.to(old.weight.device)
    net.config = {**net.config, "n_classes": head.out_channels}
    return net
