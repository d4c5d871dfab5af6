"""Network shapes, the U-GAT-IT losses, and that a few training steps reduce the loss."""

import numpy as np
import pytest
import torch

from napari_atomdefect.core.materials.columns import class_names
from napari_atomdefect.core.models.readout import from_gan, site_logits, to_gan
from napari_atomdefect.core.models.ugatit import (
    UGATIT,
    Discriminator,
    Generator,
    discriminator_loss,
    generator_loss,
)
from napari_atomdefect.core.models.unet import UNet
from napari_atomdefect.core.train.datasets import CellSet, iter_simulated_cell_sets
from napari_atomdefect.core.train.loops import label_preservation, train_detector, train_noise


@pytest.fixture(scope="module")
def tiny_cells():
    parts = [c for c, _ in iter_simulated_cell_sets(3, seed=3, image_px=256)]
    return CellSet.concatenate(parts)


def test_shapes():
    x = torch.randn(4, 1, 32, 32)
    assert UNet()(x).shape == (4, 7, 32, 32)
    img, cam, heat = Generator()(x)
    assert img.shape == x.shape and cam.shape == (4, 2) and heat.shape[0] == 4
    assert img.abs().max() <= 1
    logit, cam, _ = Discriminator(n_layers=4)(x)
    assert logit.ndim == 4 and cam.shape == (4, 2)


def test_site_logits_reads_the_right_pixel():
    logits = torch.zeros(1, 7, 32, 32)
    logits[0, 3, 10, 20] = 5.0
    at = site_logits(logits, torch.tensor([[[10.0, 20.0], [0.0, 0.0]]]))
    assert at[0, 0, 3] == pytest.approx(5.0) and at[0, 1, 3] == 0


def test_gan_range_round_trip():
    v = np.array([-1.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(from_gan(to_gan(v)), v, atol=1e-6)


def test_ugatit_losses_are_finite_and_trainable():
    torch.manual_seed(0)
    model = UGATIT(ngf=8, n_blocks=1, ndf=8)
    a, b = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    d = discriminator_loss(model, a, b)
    g, parts = generator_loss(model, a, b)
    assert torch.isfinite(d) and torch.isfinite(g)
    assert set(parts) == {"g_adv", "cycle", "identity", "cam"}
    g.backward()
    assert all(p.grad is not None for p in model.gen_ab.parameters() if p.requires_grad)


def test_noise_training_reduces_reconstruction(tiny_cells):
    n = min(64, len(tiny_cells) // 2)
    a = tiny_cells.tiles[:n]
    b = tiny_cells.tiles[n:2 * n] + np.random.default_rng(0).normal(0, 0.3, (n, 32, 32))
    items = list(train_noise(a, b.astype(np.float32), steps=40, batch_size=8, report_every=10,
                             ngf=8, n_blocks=1, ndf=8, seed=0))
    first, last = items[0], items[-2]
    assert last["cycle"] + last["identity"] < first["cycle"] + first["identity"]
    model = items[-1]["model"]
    kept = label_preservation(tiny_cells, tiny_cells.tiles)  # identity: before == after
    assert all(v["before"] == v["after"] for v in kept.values())
    assert model.gen_ab.config["ngf"] == 8


def test_detector_training_reduces_loss(tiny_cells):
    items = list(train_detector(tiny_cells, tiny_cells, steps=40, batch_size=16, width=8,
                                report_every=10, seed=0))
    losses = [i["loss"] for i in items if "loss" in i]
    assert losses[-1] < losses[0]
    final = items[-1]
    assert final["done"] and 0.1 < final["temperature"] < 10
    assert tuple(final["metrics"]) == class_names("MoS2")  # every supported substituent
    assert final["net"].config["n_classes"] == 3 + len(class_names("MoS2"))


def test_detector_trained_on_cells_takes_their_image_context(tiny_cells):
    """Simulated cells carry their image's log metal/chalcogen contrast; a detector trained on them
    takes it as one constant input plane after the tile."""
    from napari_atomdefect.core.cells.normalize import CONTEXT_NAMES

    assert tiny_cells.context is not None
    assert tiny_cells.context.shape == (len(tiny_cells), len(CONTEXT_NAMES))
    # one value per image: MoS2's metal column brighter than the median chalcogen column (only
    # just, in an Se-rich alloy), then the ladder's lower and upper rung around that median
    ctx = np.unique(tiny_cells.context, axis=0)
    assert 1 <= len(ctx) <= 3 and np.all((ctx[:, 0] > 0) & (ctx[:, 0] < np.log(6)))
    assert np.all(ctx[:, 1] <= 0) and np.all(ctx[:, 2] >= 0)
    items = list(train_detector(tiny_cells, tiny_cells, steps=2, batch_size=4, width=8,
                                report_every=1, seed=0))
    assert items[-1]["net"].config["in_channels"] == 1 + len(CONTEXT_NAMES)
    sub = tiny_cells.subset(np.arange(5))
    assert len(sub) == 5 and np.array_equal(sub.context, tiny_cells.context[:5])


def test_context_inputs_added_to_a_trained_detector_change_nothing_until_trained():
    from napari_atomdefect.core.models.unet import add_context_inputs, n_context, with_context

    torch.manual_seed(0)
    net = UNet(width=8).eval()
    x = torch.randn(3, 1, 32, 32)
    before = net(x)
    add_context_inputs(net, 1)
    assert n_context(net) == 1 and net.config["in_channels"] == 2
    ctx = torch.tensor([0.3, 1.0, 2.0])[:, None]
    xin = with_context(net, x, ctx)
    assert xin.shape == (3, 2, 32, 32) and torch.all(xin[1, 1] == 1.0)
    assert torch.allclose(net(xin), before, atol=1e-6)
    with pytest.raises(ValueError, match="context"):
        with_context(net, x, None)
    assert with_context(UNet(width=8), x, ctx) is x  # a tile-only detector ignores it
