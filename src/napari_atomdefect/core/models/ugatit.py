"""U-GAT-IT (Kim et al., ICLR 2020), sized for unit-cell tiles.

Unsupervised image-to-image translation with:

- generators with a class activation map (CAM) attention module that learns, from an auxiliary
  domain classifier, where the two domains differ, and residual blocks with adaptive
  layer-instance normalisation (AdaLIN) whose scale and shift come from the attention features;
- global and local discriminators, each with its own CAM;
- losses: least-squares adversarial (on the patch outputs and on the CAM logits), cycle
  consistency, identity and CAM.

This follows the authors' reference implementation (``light`` variant: the AdaLIN parameters come
from globally pooled features), with depths reduced for 1-channel tiles of 32–64 pixels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def class_activation(x: torch.Tensor, gap_fc: nn.Linear,
                     gmp_fc: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """The CAM module: auxiliary classifiers on average- and max-pooled features, whose weights
    re-weight the feature maps. Returns ``(cam_logit, attended features (2C channels))``."""
    gap_logit = gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
    gmp_logit = gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
    attended = torch.cat([x * gap_fc.weight[:, :, None, None],
                          x * gmp_fc.weight[:, :, None, None]], 1)
    return torch.cat([gap_logit, gmp_logit], 1), attended


class ResnetBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.InstanceNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AdaILN(nn.Module):
    """Adaptive layer-instance normalisation: a learnt mix (rho) of instance and layer norm."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, dim, 1, 1), 0.9))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        in_mean, in_var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True)
        ln_mean, ln_var = x.mean((1, 2, 3), keepdim=True), x.var((1, 2, 3), keepdim=True)
        x_in = (x - in_mean) / torch.sqrt(in_var + self.eps)
        x_ln = (x - ln_mean) / torch.sqrt(ln_var + self.eps)
        out = self.rho * x_in + (1 - self.rho) * x_ln
        return out * gamma[:, :, None, None] + beta[:, :, None, None]


class ILN(nn.Module):
    """Layer-instance normalisation with learnt rho, gamma and beta (used in up-sampling)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_mean, in_var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True)
        ln_mean, ln_var = x.mean((1, 2, 3), keepdim=True), x.var((1, 2, 3), keepdim=True)
        x_in = (x - in_mean) / torch.sqrt(in_var + self.eps)
        x_ln = (x - ln_mean) / torch.sqrt(ln_var + self.eps)
        out = self.rho * x_in + (1 - self.rho) * x_ln
        return out * self.gamma + self.beta


class ResnetAdaILNBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False)
        self.norm1 = AdaILN(dim)
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False)
        self.norm2 = AdaILN(dim)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return x + out


class Generator(nn.Module):
    """U-GAT-IT generator: encoder, CAM attention, AdaLIN residual decoder.

    Returns ``(image, cam_logit, heatmap)``: the translated tile (tanh range), the auxiliary
    classifier's logit (is the input from the source domain?) and the attention map.

    With ``residual=True`` (used for unit cells) the decoder's output is added to the input
    before the final tanh: the generator then learns only what differs between the domains
    (noise, scan artefacts) and a two-pixel-wide column's intensity, which carries the label,
    cannot be lost in the 4x down-sampled bottleneck. ``residual=False`` is the original network.
    """

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 16, n_blocks: int = 3,
                 n_down: int = 2, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.config = {"in_ch": in_ch, "out_ch": out_ch, "ngf": ngf, "n_blocks": n_blocks,
                       "n_down": n_down, "residual": residual}
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7, bias=False),
                  nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(n_down):
            m = 2**i
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, bias=False),
                       nn.InstanceNorm2d(ngf * m * 2), nn.ReLU(True)]
        dim = ngf * 2**n_down
        layers += [ResnetBlock(dim) for _ in range(n_blocks)]
        self.encoder = nn.Sequential(*layers)
        # Class activation map: auxiliary classifiers on global average and max pooled features.
        self.gap_fc = nn.Linear(dim, 1, bias=False)
        self.gmp_fc = nn.Linear(dim, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * dim, dim, 1)
        # AdaLIN parameters from the attended features (light variant: globally pooled).
        self.mlp = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.ReLU(True),
                                 nn.Linear(dim, dim, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(dim, dim, bias=False)
        self.beta = nn.Linear(dim, dim, bias=False)
        self.decoder_blocks = nn.ModuleList([ResnetAdaILNBlock(dim) for _ in range(n_blocks)])
        up = []
        for i in range(n_down):
            m = 2 ** (n_down - i)
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(ngf * m, ngf * m // 2, 3, bias=False), ILN(ngf * m // 2),
                   nn.ReLU(True)]
        last = nn.Conv2d(ngf, out_ch, 7, bias=False)
        up += [nn.ReflectionPad2d(3), last]
        if residual:  # start as the identity mapping
            nn.init.zeros_(last.weight)
        self.upsample = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inp = x
        x = self.encoder(x)
        cam_logit, attended = class_activation(x, self.gap_fc, self.gmp_fc)
        x = F.relu(self.conv1x1(attended))
        heatmap = x.sum(1, keepdim=True)
        h = self.mlp(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gamma, beta = self.gamma(h), self.beta(h)
        for block in self.decoder_blocks:
            x = block(x, gamma, beta)
        out = self.upsample(x)
        if self.residual:
            out = out + torch.atanh(inp.clamp(-0.995, 0.995))
        return torch.tanh(out), cam_logit, heatmap


class Discriminator(nn.Module):
    """U-GAT-IT discriminator with CAM; ``n_layers`` sets global (deep) or local (shallow)."""

    def __init__(self, in_ch: int = 1, ndf: int = 32, n_layers: int = 3):
        super().__init__()
        self.config = {"in_ch": in_ch, "ndf": ndf, "n_layers": n_layers}
        layers = [nn.ReflectionPad2d(1), spectral_norm(nn.Conv2d(in_ch, ndf, 4, 2, bias=True)),
                  nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers - 1):
            m = 2 ** (i - 1)
            layers += [nn.ReflectionPad2d(1),
                       spectral_norm(nn.Conv2d(ndf * m, ndf * m * 2, 4, 2, bias=True)),
                       nn.LeakyReLU(0.2, True)]
        m = 2 ** (n_layers - 2)
        layers += [nn.ReflectionPad2d(1),
                   spectral_norm(nn.Conv2d(ndf * m, ndf * m * 2, 4, 1, bias=True)),
                   nn.LeakyReLU(0.2, True)]
        dim = ndf * m * 2
        self.model = nn.Sequential(*layers)
        self.gap_fc = spectral_norm(nn.Linear(dim, 1, bias=False))
        self.gmp_fc = spectral_norm(nn.Linear(dim, 1, bias=False))
        self.conv1x1 = nn.Conv2d(2 * dim, dim, 1)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = spectral_norm(nn.Conv2d(dim, 1, 4, 1, bias=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.model(x)
        cam_logit, attended = class_activation(x, self.gap_fc, self.gmp_fc)
        x = F.leaky_relu(self.conv1x1(attended), 0.2)
        heatmap = x.sum(1, keepdim=True)
        return self.conv(self.pad(x)), cam_logit, heatmap


class RhoClipper:
    """Keep AdaLIN/ILN ``rho`` in [0, 1] after each optimiser step (as in the reference code)."""

    def __call__(self, module: nn.Module) -> None:
        rho = getattr(module, "rho", None)
        if rho is not None:
            rho.data.clamp_(0.0, 1.0)


class UGATIT(nn.Module):
    """Both directions of the translation: ``gen_ab`` (simulated -> real) and ``gen_ba``."""

    def __init__(self, ngf: int = 16, n_blocks: int = 3, ndf: int = 16, tile_px: int = 32,
                 residual: bool = True):
        super().__init__()
        self.config = {"ngf": ngf, "n_blocks": n_blocks, "ndf": ndf, "tile_px": tile_px,
                       "residual": residual}
        self.gen_ab = Generator(ngf=ngf, n_blocks=n_blocks, residual=residual)
        self.gen_ba = Generator(ngf=ngf, n_blocks=n_blocks, residual=residual)
        deep = 4 if tile_px <= 32 else 5
        self.dis_ga = Discriminator(ndf=ndf, n_layers=deep)
        self.dis_gb = Discriminator(ndf=ndf, n_layers=deep)
        self.dis_la = Discriminator(ndf=ndf, n_layers=3)
        self.dis_lb = Discriminator(ndf=ndf, n_layers=3)

    def generators(self) -> list[nn.Module]:
        return [self.gen_ab, self.gen_ba]

    def discriminators(self) -> list[nn.Module]:
        return [self.dis_ga, self.dis_gb, self.dis_la, self.dis_lb]


LOSS_WEIGHTS = {"adv": 1.0, "cycle": 10.0, "identity": 10.0, "cam": 1000.0}


def discriminator_loss(model: UGATIT, real_a: torch.Tensor, real_b: torch.Tensor,
                       weights: dict | None = None) -> torch.Tensor:
    """LSGAN loss of the four discriminators (patch outputs and CAM logits), fakes detached."""
    w = {**LOSS_WEIGHTS, **(weights or {})}
    with torch.no_grad():
        fake_ab, _, _ = model.gen_ab(real_a)
        fake_ba, _, _ = model.gen_ba(real_b)
    loss: torch.Tensor | float = 0.0
    for dis, real, fake in ((model.dis_ga, real_a, fake_ba), (model.dis_la, real_a, fake_ba),
                            (model.dis_gb, real_b, fake_ab), (model.dis_lb, real_b, fake_ab)):
        r_logit, r_cam, _ = dis(real)
        f_logit, f_cam, _ = dis(fake)
        loss = loss + (F.mse_loss(r_logit, torch.ones_like(r_logit))
                       + F.mse_loss(f_logit, torch.zeros_like(f_logit))
                       + F.mse_loss(r_cam, torch.ones_like(r_cam))
                       + F.mse_loss(f_cam, torch.zeros_like(f_cam)))
    return w["adv"] * loss


def generator_loss(model: UGATIT, real_a: torch.Tensor, real_b: torch.Tensor,
                   weights: dict | None = None) -> tuple[torch.Tensor, dict]:
    """Generator loss: adversarial + cycle + identity + CAM, and the float value of each term."""
    w = {**LOSS_WEIGHTS, **(weights or {})}
    l1, bce, mse = F.l1_loss, F.binary_cross_entropy_with_logits, F.mse_loss
    fake_ab, fake_ab_cam, _ = model.gen_ab(real_a)
    fake_ba, fake_ba_cam, _ = model.gen_ba(real_b)
    rec_a, _, _ = model.gen_ba(fake_ab)
    rec_b, _, _ = model.gen_ab(fake_ba)
    idt_a, idt_a_cam, _ = model.gen_ba(real_a)
    idt_b, idt_b_cam, _ = model.gen_ab(real_b)
    adv: Any = 0.0
    for dis, fake in ((model.dis_ga, fake_ba), (model.dis_la, fake_ba), (model.dis_gb, fake_ab),
                      (model.dis_lb, fake_ab)):
        f_logit, f_cam, _ = dis(fake)
        adv = adv + mse(f_logit, torch.ones_like(f_logit)) + mse(f_cam, torch.ones_like(f_cam))
    cycle = l1(rec_a, real_a) + l1(rec_b, real_b)
    identity = l1(idt_a, real_a) + l1(idt_b, real_b)
    # The generator's own CAM classifier: "is this input from my source domain?"
    cam = (bce(fake_ba_cam, torch.ones_like(fake_ba_cam))
           + bce(idt_a_cam, torch.zeros_like(idt_a_cam))
           + bce(fake_ab_cam, torch.ones_like(fake_ab_cam))
           + bce(idt_b_cam, torch.zeros_like(idt_b_cam)))
    loss = w["adv"] * adv + w["cycle"] * cycle + w["identity"] * identity + w["cam"] * cam
    parts = {"g_adv": float(adv.detach()), "cycle": float(cycle.detach()),
             "identity": float(identity.detach()), "cam": float(cam.detach())}
    return loss, parts
