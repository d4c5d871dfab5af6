"""The optimised inference path gives the results of the straightforward one (issue #15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_atomdefect.core.cells.lookup import CellLookup
from napari_atomdefect.core.cells.normalize import image_context, prepare_image
from napari_atomdefect.core.cells.tiles import (
    TileSpec,
    iter_cell_tiles,
    own_site_positions,
    sample_tiles,
)
from napari_atomdefect.core.detect.decision import (
    card_calibration,
    parse_operating_point,
    run_classes,
    site_decisions,
)
from napari_atomdefect.core.detect.detect import SECOND_VIEW_BELOW, iter_detect
from napari_atomdefect.core.detect.edge import EDGE_BAND_A, EDGE_LOGIT_SCALE, EDGE_LOGIT_SHIFT
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.materials.materials import get_material
from napari_atomdefect.core.models.readout import site_logits, site_probabilities
from napari_atomdefect.core.models.registry import (
    build_detector,
    load_state,
    load_weights,
    model_classes,
    resolve_model,
)
from napari_atomdefect.core.models.site_forward import decoder_windows, site_logits_fast
from napari_atomdefect.core.models.unet import UNet, n_context
from napari_atomdefect.core.progress import run_to_end
from napari_atomdefect.core.simulate.image import simulate_image


def _reference_sites(image: np.ndarray, pixel_size_nm: float) -> pd.DataFrame:
    """The per-site table computed the plain way: unfused full U-Net pass, dictionaries, a loop
    (an uncertain cell read a second time, mirrored, one tile at a time)."""
    info = resolve_model(None)
    net = build_detector({"name": info.name, **info.card})
    load_weights(net, load_state(info.path / "detector.safetensors"), "detector", info.name)
    net.eval()
    mat = get_material("MoS2")
    lattice = find_lattice(image, mat, pixel_size_nm=pixel_size_nm)
    prepared = prepare_image(image, lattice)  # background flattened, levels measured
    levels = prepared.levels
    norm = prepared.normalised
    context = torch.from_numpy(image_context(levels))  # a constant plane after the tile
    temperature = float(info.card["detector"].get("temperature", 1.0))
    spec = TileSpec(**info.card["detector"].get("tile", {}))
    # The model's classes, and the run's: MoS2's default substituents (O) of those it knows.
    classes = model_classes(info)
    run = run_classes(info.card, "MoS2").classes
    chalc = {tuple(ij): k for k, ij in enumerate(lattice.chalcogen_index.tolist())}
    metal = {tuple(ij): k for k, ij in enumerate(lattice.metal_index.tolist())}
    rows = []
    # The second view of an uncertain cell: the tile reflected about the line through its metal
    # and chalcogen sites, sampled afresh from the image (written out here, not the library's).
    d = spec.chalcogen_px - spec.metal_px
    d = d / np.hypot(*d)
    mirror = 2 * np.outer(d, d) - np.eye(2)
    centre = (spec.metal_px + spec.chalcogen_px) / 2

    def probabilities(tiles: np.ndarray, sites: np.ndarray):
        x = torch.from_numpy(tiles[:, None].astype(np.float32))
        if n_context(net):
            x = torch.cat([x, context[None, :, None, None].expand(len(x), -1, *x.shape[-2:])],
                          dim=1)
        return site_probabilities(site_logits(net(x), torch.from_numpy(sites.astype(np.float32))),
                                  temperature, classes)

    for batch in iter_cell_tiles(norm, lattice, spec, batch_size=100, border=True):
        own = own_site_positions(batch, lattice)
        with torch.no_grad():
            pm, px = probabilities(batch.tiles, own)
            for k in range(len(batch)):
                unsure = (px[k].max() < SECOND_VIEW_BELOW
                          or (batch.has_metal[k] and pm[k].max() < SECOND_VIEW_BELOW))
                if not unsure:
                    continue
                lin, offset = batch.affine[k, :, :2], batch.affine[k, :, 2]
                affine = np.concatenate([lin @ mirror, (offset + lin @ (centre - mirror @ centre))
                                         [:, None]], axis=1)
                tile, _, _ = sample_tiles(norm, affine[None], spec)
                qm, qx = probabilities(tile, (centre + (own[k] - centre) @ mirror.T)[None])
                pm[k], px[k] = (pm[k] + qm[0]) / 2, (px[k] + qx[0]) / 2
        # the card's calibration over all the model's classes, then the classes of the run and
        # the neutral operating point, as detection applies them
        d = site_decisions(pm.numpy(), px.numpy(), card_calibration(info.card["detector"]),
                           parse_operating_point(None, run), classes, run)
        for k, ij in enumerate(map(tuple, batch.index.tolist())):
            m = metal.get(ij) if batch.has_metal[k] else None
            if m is not None:
                y, x = lattice.metal_sites_px[m]
                rows.append((y, x, "metal", d["metal_class"][k], float(d["metal_conf"][k]),
                             float(d["q_metal"][k, 1])))
            c = chalc.get(ij)
            if c is not None:
                y, x = lattice.chalcogen_sites_px[c]
                rows.append((y, x, "chalcogen", d["chalcogen_class"][k],
                             float(d["chalcogen_conf"][k]), float(1 - d["q_chalcogen"][k, 0])))
    table = pd.DataFrame(rows, columns=["y_px", "x_px", "sublattice", "class", "confidence",
                                        "p_defect"])
    # A defect call on a column the field's edge cuts: its confidence lowered (core/detect/edge).
    h, w = image.shape
    for k, row in table.iterrows():
        edge = min(row.y_px + 0.5, row.x_px + 0.5, h - 0.5 - row.y_px, w - 0.5 - row.x_px)
        if row["class"] != row.sublattice and edge < EDGE_BAND_A * lattice.a_px:
            c = min(max(row.confidence, 1e-6), 1 - 1e-6)
            z = EDGE_LOGIT_SCALE * np.log(c / (1 - c)) + EDGE_LOGIT_SHIFT
            table.loc[k, "confidence"] = min(1 / (1 + np.exp(-z)), row.confidence)
    return table


def test_optimised_detection_equals_reference(monkeypatch):
    # every cell read by the detector, as the reference does (plain cells read in a sample
    # change no call: tests/test_plain_cells.py)
    monkeypatch.setenv("ATOMDEFECT_PLAIN_CELLS", "0")
    sim = simulate_image("MoS2", 384, 0.012, seed=3,
                         defect_fractions={"V_S": 0.05, "V_S2": 0.02, "O_S": 0.03, "V_Mo": 0.02})
    ref = _reference_sites(sim.image, 0.012)
    # small batches: several batches, and the last one short
    out = run_to_end(iter_detect(sim.image, 0.012, "MoS2", device="cpu", batch_size=128))
    sites = out["sites"]
    assert len(ref) > 400 and (ref["class"] != ref["sublattice"]).sum() >= 10
    assert len(sites) == len(ref)
    assert sites["sublattice"].tolist() == ref["sublattice"].tolist()
    assert sites["class"].tolist() == ref["class"].tolist()
    np.testing.assert_allclose(sites[["y_px", "x_px"]], ref[["y_px", "x_px"]], atol=1e-9)
    np.testing.assert_allclose(sites[["confidence", "p_defect"]], ref[["confidence", "p_defect"]],
                               atol=1e-4)
    defects = out["defects"]
    want = ref[ref["class"] != ref["sublattice"]]
    assert len(defects) == len(want)
    assert defects["class"].tolist() == want["class"].tolist()
    assert str(sites["confidence"].dtype) == "float64"


def _random_net() -> UNet:
    torch.manual_seed(0)
    net = UNet(width=8).eval()
    for m in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net


def _net_tiles_sites(n: int, fused: bool, channels_last: bool, seed: int):
    """A random detector, ``n`` random 32 px tiles and sites scattered about two tile points."""
    net = _random_net()
    net = net.fused() if fused else net
    x = torch.randn(n, 1, 32, 32)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    sites = torch.tensor([[17.8, 11.5], [13.2, 19.5]]) + torch.randn(n, 2, 2, generator=gen)
    return net, x, sites


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_site_logits_fast_equals_full_pass(fused, channels_last):
    net, x, sites = _net_tiles_sites(64, fused, channels_last, seed=1)
    assert decoder_windows(sites.numpy(), 32, 2, 2) is not None  # the cropped path is taken
    with torch.inference_mode():
        want = site_logits(net(x), sites)
        got = site_logits_fast(net, x, sites)
    assert got.shape == (64, 2, 7)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_site_logits_fast_falls_back_near_the_tile_edge():
    net = _random_net()
    x = torch.randn(8, 1, 32, 32)
    sites = torch.tensor([[1.2, 3.0], [13.2, 30.5]]).expand(8, 2, 2).clone()
    assert decoder_windows(sites.numpy(), 32, 2, 2) is None
    sites[0, 0, 0] = float("nan")
    assert decoder_windows(sites.numpy(), 32, 2, 2) is None
    sites[0, 0, 0] = 1.2
    with torch.inference_mode():
        torch.testing.assert_close(site_logits_fast(net, x, sites), site_logits(net(x), sites))


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_batch_with_some_sites_near_the_edge_splits_between_the_two_passes(channels_last):
    """A distorted real lattice puts some tiles' chalcogen sites too near the tile edge for the
    cropped decoder: those take the full pass, the others the cropped one (the whole batch had
    taken the full pass, twice the work), in the batch's order."""
    from napari_atomdefect.core.models import site_forward

    net, x, sites = _net_tiles_sites(40, True, channels_last, seed=2)
    sites[::5, 1, 1] = 29.5  # every fifth tile: a site beside the edge
    fits = site_forward.tiles_in_window(sites.numpy(), 32, 2, 2)
    assert decoder_windows(sites.numpy(), 32, 2, 2) is None
    assert not fits[::5].any() and fits.sum() == 32
    calls = []
    real_net_forward = type(net).forward

    def counting(self, inp):
        calls.append(len(inp))
        return real_net_forward(self, inp)

    with torch.inference_mode():
        want = site_logits(net(x), sites)
        type(net).forward = counting
        try:
            got = site_logits_fast(net, x, sites)
        finally:
            type(net).forward = real_net_forward
    assert calls == [8]  # the full pass for the eight near the edge only
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_decoder_windows_cover_the_sites_with_margins():
    sites = np.array([[[17.8, 11.5], [13.2, 19.5]]])
    rows1, cols1, rows2, cols2 = decoder_windows(sites, 32, 2, 2)
    assert rows1 == (11, 20) and cols1 == (9, 22)        # floor/ceil of the sites, 2 px margin
    assert rows2 == (3, 12) and cols2 == (2, 13)          # half resolution, 2 px margin


def test_cell_lookup_matches_a_dictionary():
    rng = np.random.default_rng(0)
    index = np.unique(rng.integers(-20, 20, (300, 2)), axis=0)
    rng.shuffle(index)
    queries = np.concatenate([index[::3], rng.integers(-30, 30, (200, 2))])
    table = {tuple(ij): k for k, ij in enumerate(index.tolist())}
    want = [table.get(tuple(ij), -1) for ij in queries.tolist()]
    assert CellLookup(index).rows(queries).tolist() == want
    assert CellLookup(np.zeros((0, 2), int)).rows(queries).tolist() == [-1] * len(queries)
    assert CellLookup(index).rows(np.zeros((0, 2), int)).tolist() == []


def test_bf16_is_opt_in_and_close(monkeypatch):
    from napari_atomdefect.core.models.site_forward import cpu_bf16, tile_site_probabilities

    cpu = torch.device("cpu")
    monkeypatch.delenv("ATOMDEFECT_CPU_BF16", raising=False)
    assert not cpu_bf16(cpu)  # (mixed at most, on a CPU with native bfloat16)
    net = _random_net()
    rng = np.random.default_rng(2)
    tiles = rng.normal(size=(32, 32, 32)).astype(np.float32)
    sites = np.array([[17.8, 11.5], [13.2, 19.5]]) + rng.normal(0, 0.5, (32, 2, 2))
    with torch.inference_mode():
        pm32, px32 = tile_site_probabilities(net, tiles, sites, 1.0, cpu)
        monkeypatch.setenv("ATOMDEFECT_CPU_BF16", "1")
        assert cpu_bf16(cpu) and not cpu_bf16(torch.device("meta"))
        pm16, px16 = tile_site_probabilities(net, tiles, sites, 1.0, cpu)
    assert pm16.dtype == torch.float32 and px16.shape == (32, 4)
    torch.testing.assert_close(px16.sum(1), torch.ones(32))
    assert float((px16 - px32).abs().max()) < 0.05


def test_mixed_precision_decides_in_float32(monkeypatch):
    """Mixed precision (the default on a CPU with native bfloat16): every tile read in bfloat16,
    the uncertain ones again in float32 (their mirrored views stay bfloat16) — the calls are
    float32's; the probabilities move by thousandths."""
    import napari_atomdefect.core.models.site_forward as sf
    from napari_atomdefect.core.detect.detect import detect

    sim = simulate_image("MoS2", 320, 0.012, seed=5, dose_e_per_A2=2e5)
    monkeypatch.setenv("ATOMDEFECT_CPU_BF16", "0")
    assert sf.cpu_precision(torch.device("cpu")) == "fp32"
    ref = detect(sim.image, pixel_size_nm=0.012, device="cpu")
    sites32 = ref.attrs  # (the table's run record)
    monkeypatch.setenv("ATOMDEFECT_CPU_BF16", "mixed")
    assert sf.cpu_precision(torch.device("cpu")) == "mixed"
    assert sf.cpu_precision(torch.device("meta")) == "fp32"
    seen = []
    real = sf.tile_site_probabilities

    def spy(*args, **kw):
        seen.append((len(args[1]), kw.get("bf16")))
        return real(*args, **kw)

    monkeypatch.setattr(sf, "tile_site_probabilities", spy)
    mixed = detect(sim.image, pixel_size_nm=0.012, device="cpu")
    assert seen[0][1] is True and any(b is False for _, b in seen[1:])
    assert sum(n for n, b in seen if b is False) < sum(n for n, b in seen if b is True)
    pd.testing.assert_frame_equal(ref[["y_px", "x_px", "class"]], mixed[["y_px", "x_px", "class"]])
    assert np.abs(ref.confidence.to_numpy() - mixed.confidence.to_numpy()).max() < 0.01
    assert sites32["classes"] == mixed.attrs["classes"]
