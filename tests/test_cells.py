"""Unit-cell tiling: geometry in the lattice frame, round trips, streaming."""

import numpy as np
import pytest

from napari_atomdefect.core.cells.tiles import (
    CellTiles,
    TileSpec,
    bin_image,
    border_cells,
    iter_cell_tiles,
    mirror_about_sites,
    mirrored_affines,
    mirrored_tiles,
    own_site_positions,
    sample_tiles,
    tile_binning,
    tile_cells,
)
from napari_atomdefect.core.detect.model_view import stitch_tiles
from napari_atomdefect.core.finetune.selection import preview_tiles
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.lattice.mean_cell import fold_onto_cell
from napari_atomdefect.core.sampling import sample_bilinear, sample_bilinear_many
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
from napari_atomdefect.core.train.noise_model import lattice_model_image

from .conftest import nearest_distances


@pytest.fixture(scope="module")
def distorted():
    params = MicroscopeParams(dose_e_per_A2=1e6, shear=0.03, y_stretch=0.02, drift_nm=0.03)
    sim = simulate_image("MoS2", 512, 0.012, params=params, seed=5, rotation_deg=23.0)
    return sim, find_lattice(sim.image, "MoS2")


def test_round_trip_subpixel(distorted):
    sim, lat = distorted
    tiles = tile_cells(sim.image, lat)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, tiles.spec.size_px - 1, (len(tiles), 2))
    back = tiles.to_tile(tiles.to_image(pts))
    assert np.abs(back - pts).max() < 1e-9
    # One tile, many points.
    many = rng.uniform(0, 31, (50, 2))
    np.testing.assert_allclose(tiles.to_tile(tiles.to_image(many, 3), 3), many, atol=1e-9)


def test_own_columns_land_on_their_tile_positions(distorted):
    """The cell's metal and chalcogen appear where TileSpec says, in every tile."""
    sim, lat = distorted
    spec = TileSpec()
    tiles = tile_cells(sim.image, lat, spec, min_inside=1.0)
    metal_img = tiles.to_image(np.tile(spec.metal_px, (len(tiles), 1)))
    chalc_img = tiles.to_image(np.tile(spec.chalcogen_px, (len(tiles), 1)))
    true_m = sim.sites[sim.sites.sublattice == "metal"][["y_px", "x_px"]].to_numpy()
    true_x = sim.sites[sim.sites.sublattice == "chalcogen"][["y_px", "x_px"]].to_numpy()
    assert np.sqrt(np.mean(nearest_distances(metal_img, true_m) ** 2)) < 0.3
    assert np.sqrt(np.mean(nearest_distances(chalc_img, true_x) ** 2)) < 0.8
    # Same size and orientation in the lattice frame: averaged over all tiles, the metal column
    # stays sharp at its position (as bright as any metal in the tile) and the chalcogen too,
    # despite rotation, shear and drift.
    mean = tiles.tiles.mean(0)
    at_metal = sample_bilinear(mean, *spec.metal_px[:, None])[0]
    at_chalc = sample_bilinear(mean, *spec.chalcogen_px[:, None])[0]
    hollow = sample_bilinear(mean, *spec.ideal_to_tile([-np.sqrt(3) / 6 * 2, 0.0])[:, None])[0]
    assert at_metal > 0.95 * mean.max()
    assert at_metal > at_chalc > hollow + 0.1 * (at_metal - hollow)


def test_mirror_about_the_metal_chalcogen_line_is_a_symmetry_of_the_lattice(distorted):
    """The second view of a tile: reflected about the line through its own metal and chalcogen
    (a mirror of the projected layer), both sites stay in place, the reflection undoes itself,
    and on a noise-free pristine layer the mirrored tile is the tile."""
    spec = TileSpec()
    matrix, centre = mirror_about_sites(spec)
    np.testing.assert_allclose(matrix @ matrix, np.eye(2), atol=1e-12)
    for site in (spec.metal_px, spec.chalcogen_px):
        np.testing.assert_allclose(centre + matrix @ (site - centre), site, atol=1e-12)
    sim, lat = distorted
    tiles = tile_cells(sim.image, lat, spec, min_inside=1.0)
    np.testing.assert_allclose(mirrored_affines(mirrored_affines(tiles.affine, spec), spec),
                               tiles.affine, atol=1e-9)
    # Mirrored, the own sites land on the same image points.
    own = own_site_positions(tiles, lat)
    _, sites = mirrored_tiles(sim.image.astype(np.float32), tiles, own)
    flipped = CellTiles(tiles.tiles, tiles.index, mirrored_affines(tiles.affine, spec),
                        tiles.inside, spec)
    for k in (0, 1):
        np.testing.assert_allclose(flipped.to_image(sites[:, k]), tiles.to_image(own[:, k]),
                                   atol=1e-9)
    clean = simulate_image("MoS2", 256, 0.0125, seed=5, defect_fractions={}, rotation_deg=17.0)
    lat_clean = find_lattice(clean.clean, "MoS2")
    plain = tile_cells(clean.clean, lat_clean, spec, min_inside=1.0)
    view, _ = mirrored_tiles(clean.clean.astype(np.float32), plain,
                             own_site_positions(plain, lat_clean))
    inner = (slice(6, 26), slice(6, 26))
    corr = [np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1]
            for a, b in zip(plain.tiles, view, strict=True)]
    assert np.median(corr) > 0.97


def test_tile_pixels_sample_the_image(distorted):
    sim, lat = distorted
    tiles = tile_cells(sim.image, lat, min_inside=1.0)
    k = len(tiles) // 2
    pts = np.array([[5.0, 7.0], [20.0, 11.0], [30.0, 30.0]])
    img_pts = tiles.to_image(pts, k)
    expected = sample_bilinear(sim.image, img_pts[:, 0], img_pts[:, 1])
    got = tiles.tiles[k][pts[:, 0].astype(int), pts[:, 1].astype(int)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_streaming_batches_equal_all_at_once(distorted):
    sim, lat = distorted
    whole = tile_cells(sim.image, lat)
    parts = list(iter_cell_tiles(sim.image, lat, batch_size=50))
    assert all(len(p) <= 50 for p in parts) and len(parts) == int(np.ceil(len(whole) / 50))
    np.testing.assert_array_equal(np.concatenate([p.tiles for p in parts]), whole.tiles)
    np.testing.assert_array_equal(np.concatenate([p.index for p in parts]), whole.index)
    assert len(whole) == lat.n_cells


def test_lazy_batches_sample_the_same_tiles_when_asked(distorted):
    """Detection reads a sample of an image's plain cells: its batches come without tiles and
    the tiles it reads are sampled then — the same values, the same shares inside, for any
    subset of a batch."""
    from napari_atomdefect.core.cells.tiles import with_tiles

    sim, lat = distorted
    eager = list(iter_cell_tiles(sim.image, lat, batch_size=60, border=True))
    lazy = list(iter_cell_tiles(sim.image, lat, batch_size=60, border=True, lazy=True))
    assert [len(b) for b in lazy] == [len(b) for b in eager]
    source = np.asarray(sim.image, np.float32)
    for e, z in zip(eager, lazy, strict=True):
        assert z.tiles.size == 0 and np.isnan(z.inside).all()
        np.testing.assert_array_equal(z.has_metal, e.has_metal)
        pick = np.arange(len(z)) % 3 == 1
        got = with_tiles(z.subset(pick), source, sim.image.shape)
        np.testing.assert_array_equal(got.tiles, e.tiles[pick])
        np.testing.assert_array_equal(got.inside, e.inside[pick])
        assert with_tiles(e, source, sim.image.shape) is e      # sampled already: as it is


def test_inside_fraction_and_filter(distorted):
    sim, lat = distorted
    all_tiles = tile_cells(sim.image, lat)
    complete = tile_cells(sim.image, lat, min_inside=1.0)
    assert 0 < len(complete) < len(all_tiles)
    assert (all_tiles.inside <= 1).all() and (all_tiles.inside > 0).all()


def test_tile_spec_geometry():
    spec = TileSpec(size_px=48, extent_a=2.0)
    d = np.hypot(*(spec.chalcogen_px - spec.metal_px))
    assert d == pytest.approx(48 / 2.0 / np.sqrt(3))  # a / sqrt(3) in tile pixels
    np.testing.assert_allclose(spec.tile_to_ideal(spec.ideal_to_tile([0.3, -0.2])), [0.3, -0.2])


def test_shape_mismatch(distorted):
    sim, lat = distorted
    with pytest.raises(ValueError, match="shape"):
        tile_cells(sim.image[:100], lat)


def test_border_cells_give_every_chalcogen_site_a_tile(distorted):
    """Chalcogen sites whose cell's metal lies outside the image still get a tile of their own."""
    sim, lat = distorted
    index, origins, _ = border_cells(lat)
    assert len(index) > 0
    h, w = sim.image.shape
    outside = (origins[:, 0] < 0) | (origins[:, 0] > h - 1) | (origins[:, 1] < 0) | (origins[:, 1] > w - 1)
    assert outside.mean() > 0.9  # extrapolated metal positions lie beyond the border
    tiles = CellTiles.concatenate(list(iter_cell_tiles(sim.image, lat, border=True)))
    assert len(tiles) == lat.n_cells + len(index)
    assert (~tiles.has_metal).sum() == len(index) and tiles.has_metal[:lat.n_cells].all()
    assert {tuple(ij) for ij in tiles.index.tolist()} >= {tuple(ij) for ij in lat.chalcogen_index.tolist()}
    # In a border tile the own chalcogen position maps onto the chalcogen site of its cell.
    spec = tiles.spec
    border = np.nonzero(~tiles.has_metal)[0]
    mapped = tiles.to_image(np.tile(spec.chalcogen_px, (len(border), 1)), border)
    lookup = {tuple(ij): k for k, ij in enumerate(lat.chalcogen_index.tolist())}
    sites = lat.chalcogen_sites_px[[lookup[tuple(ij)] for ij in tiles.index[border].tolist()]]
    assert np.abs(mapped - sites).max() < 1e-6


def test_bilinear_sampling_of_a_stack_equals_each_image():
    """The one sampler reads a stack of tiles (model view) exactly as each image on its own."""
    rng = np.random.default_rng(1)
    stack = rng.normal(size=(4, 6, 9)).astype(np.float32)
    rows, cols = rng.uniform(-1, 7, 200), rng.uniform(-1, 10, 200)
    layer = rng.integers(0, 4, 200)
    got = sample_bilinear(stack, rows, cols, layer=layer)
    expected = [sample_bilinear(stack[k], [r], [c])[0] for k, r, c in zip(layer, rows, cols, strict=True)]
    np.testing.assert_allclose(got, np.array(expected, np.float32), rtol=1e-6, atol=1e-6)
    assert sample_bilinear(stack[0], [2.5], [3.0])[0] == pytest.approx((stack[0, 2, 3] + stack[0, 3, 3]) / 2)
    with pytest.raises(ValueError):
        sample_bilinear(stack, rows, cols)


def test_the_tiles_sampler_reads_what_numpys_does():
    """Tiles are sampled with torch's grid sampler: the same bilinear values as the numpy
    sampler (edges clamped), within the float32 rounding of the coordinates."""
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 30, (300, 420)).astype(np.float32)
    rows, cols = rng.uniform(-3, 303, (50, 64)), rng.uniform(-3, 423, (50, 64))
    got = sample_bilinear_many(image, rows, cols)
    assert got.shape == rows.shape and got.dtype == np.float32
    # (a gradient of up to 30 per pixel times ~1e-5 pixel of coordinate rounding)
    np.testing.assert_allclose(got, sample_bilinear(image, rows, cols), atol=2e-3)
    assert sample_bilinear_many(image, [[-5.0]], [[500.0]])[0, 0] == image[0, -1]
    with pytest.raises(ValueError):
        sample_bilinear_many(image[None], rows, cols)


def test_stitched_tiles_give_back_the_image(distorted):
    """Stitching untranslated tiles (model view without a generator) reproduces the image."""
    sim, lat = distorted
    tiles = tile_cells(sim.image, lat)
    view = stitch_tiles(tiles, sim.image.shape)
    inner = (slice(64, -64), slice(64, -64))
    err = np.abs(view[inner] - sim.image[inner])
    assert err.mean() < 0.02 * np.ptp(sim.image[inner])


def test_finely_sampled_images_are_binned_before_tiling():
    """Up to two image pixels per tile pixel (a lattice constant of 32 px over the 16 tile
    pixels) the tiles read the image as it is; finer images are averaged over blocks first, and
    a tile of a smooth image reads the same values either way."""
    spec = TileSpec()
    assert [tile_binning(a, spec) for a in (16.0, 26.0, 32.0, 41.5, 63.0, 105.0)] == [1, 1, 1, 2,
                                                                                    2, 4]
    img = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)
    binned = bin_image(img, 2)
    assert binned.shape == (3, 4)
    assert binned[1, 2] == pytest.approx(img[2:4, 4:6].mean())
    # a linear ramp: the block mean is the ramp at the block's centre, and bilinear sampling of
    # a ramp is exact, so binned and unbinned tiles agree
    yy, xx = np.mgrid[:300, :300].astype(np.float32)
    ramp = 0.3 * yy - 0.7 * xx + 5.0
    angle = np.deg2rad(17.0)
    scale = 3.5  # image pixels per tile pixel
    aff = np.array([[[scale * np.cos(angle), -scale * np.sin(angle), 100.0],
                     [scale * np.sin(angle), scale * np.cos(angle), 100.0]]], np.float32)
    plain, rows, cols = sample_tiles(ramp, aff, spec)
    for b in (2, 3):
        tiles, rows_b, cols_b = sample_tiles(bin_image(ramp, b), aff, spec, b)
        np.testing.assert_allclose(tiles, plain, atol=1e-3)
        np.testing.assert_array_equal(rows_b, rows)
        np.testing.assert_array_equal(cols_b, cols)


def test_preview_tiles_are_the_tiles_of_those_cells(distorted):
    sim, lat = distorted
    whole = tile_cells(sim.image, lat, min_inside=0.0)
    ids = np.array([3, 40, 41, 100])
    np.testing.assert_array_equal(preview_tiles(sim.image, lat, ids), whole.tiles[ids])
    assert preview_tiles(sim.image, lat, np.array([], int)).shape == (0, *whole.tiles.shape[1:])


def test_mean_cell_folding():
    frac = np.array([[0.1, 0.1], [1.1, 2.1], [0.6, 0.1], [-0.4, 0.1]])
    cell, counts, flat = fold_onto_cell(np.array([1.0, 3.0, 5.0, 7.0]), frac, bins=2)
    np.testing.assert_allclose(cell, [[2.0, 0.0], [6.0, 0.0]])
    np.testing.assert_array_equal(counts, [[2, 0], [2, 0]])
    np.testing.assert_array_equal(flat, [0, 0, 2, 2])


def test_lattice_model_image_is_the_mean_cell(distorted):
    """An image made of its own mean cell is its own lattice model (up to the binning)."""
    sim, lat = distorted
    model = lattice_model_image(sim.image, lat)
    again = lattice_model_image(model, lat)
    np.testing.assert_allclose(again, model, atol=1e-9)
    assert np.corrcoef(model.ravel(), sim.image.ravel())[0, 1] > 0.8



def test_context_ladder_tells_an_alloy_from_a_pristine_layer():
    """The ladder context values sit near the median (log 0) for a pristine layer and on
    different rungs for an S/Se alloy."""
    from napari_atomdefect.core.cells.normalize import CONTEXT_NAMES, image_context, prepare_image
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    params = MicroscopeParams(dose_e_per_A2=None)
    out = {}
    for name, subs, fractions in (("pristine", "", {"V_X": 0.02}),
                                  ("alloy", "Se", {"D_X": 0.3, "D2_X2": 0.3})):
        sim = simulate_image("MoS2", 256, 0.012, params=params, seed=5, substituents=subs,
                             defect_fractions=fractions)
        lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
        out[name] = image_context(prepare_image(sim.image, lattice).levels)
    assert len(out["pristine"]) == len(CONTEXT_NAMES) == 3
    assert np.all(np.abs(out["pristine"][1:]) < 0.1)
    assert out["alloy"][1] < -0.3 and out["alloy"][2] > 0.3
