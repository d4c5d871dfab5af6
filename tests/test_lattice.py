"""Lattice detection on simulated images with known truth, and its failure modes."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from napari_atomdefect.core.cells.normalize import intensity_levels
from napari_atomdefect.core.errors import AtomDefectError, BadImageError, NoLatticeError
from napari_atomdefect.core.lattice.lattice import CalibrationWarning, find_lattice
from napari_atomdefect.core.materials.materials import get_material
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

from .conftest import nearest_distances, pristine_params


def vector_error(lat, sim):
    """Largest relative error of the found vectors against the true ones (up to symmetry)."""
    true = [sim.a1_px, sim.a2_px, sim.a2_px - sim.a1_px]
    true += [-v for v in true]
    errs = []
    for v in (lat.a1_px, lat.a2_px):
        errs.append(min(np.linalg.norm(v - t) / np.linalg.norm(t) for t in true))
    return max(errs)


@pytest.mark.parametrize("rotation", [0.0, 17.0, 33.0, 51.0])
@pytest.mark.parametrize("dose", [1e4, 1e5, 1e6])
def test_vectors_within_one_percent(rotation, dose):
    sim = simulate_image("MoS2", 512, 0.012, params=pristine_params(dose_e_per_A2=dose),
                         rotation_deg=rotation, seed=int(rotation) + int(np.log10(dose)))
    lat = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    assert vector_error(lat, sim) < 0.01
    assert lat.pixel_size_lattice_nm == pytest.approx(0.012, rel=0.01)


@pytest.mark.parametrize("pixel_size_nm,size", [(0.005, 1024), (0.008, 768), (0.015, 512),
                                                 (0.025, 384)])
def test_pixel_sizes(pixel_size_nm, size):
    sim = simulate_image("MoS2", size, pixel_size_nm, params=pristine_params(), seed=7)
    lat = find_lattice(sim.image, "MoS2")
    assert vector_error(lat, sim) < 0.01
    assert lat.calibration == "lattice"
    assert lat.pixel_size_nm == pytest.approx(pixel_size_nm, rel=0.01)


def test_low_dose_small_pixels():
    sim = simulate_image("MoS2", 1024, 0.005, params=pristine_params(dose_e_per_A2=1e4), seed=11)
    lat = find_lattice(sim.image, "MoS2")
    assert vector_error(lat, sim) < 0.01


def _inner(pos: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sites more than a pixel inside the field (a site at the edge may be that of a column
    just outside it, which the list of true columns leaves out)."""
    return pos[np.all((pos > 0.5) & (pos < np.array(shape) - 1.5), axis=1)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metal_sites_subpixel(seed):
    sim = simulate_image("MoS2", 512, 0.012, params=pristine_params(dose_e_per_A2=1e5), seed=seed)
    lat = find_lattice(sim.image, "MoS2")
    truth = sim.sites[sim.sites.sublattice == "metal"][["y_px", "x_px"]].to_numpy()
    # (a site within a pixel of the field's edge may be that of a column just outside it, which
    # the list of true columns leaves out: the nearest listed one is a lattice constant away)
    d = nearest_distances(_inner(lat.metal_sites_px, sim.image.shape), truth)
    assert np.sqrt(np.mean(d**2)) < 0.3
    # nearly every true site found (the border may lose a few half-visible ones)
    found = nearest_distances(truth, lat.metal_sites_px)
    assert np.mean(found < 1.0) > 0.95
    xt = sim.sites[sim.sites.sublattice == "chalcogen"][["y_px", "x_px"]].to_numpy()
    dx = nearest_distances(_inner(lat.chalcogen_sites_px, sim.image.shape), xt)
    assert np.sqrt(np.mean(dx**2)) < 0.8 and np.mean(dx < 2.0) > 0.98


def test_metal_and_chalcogen_not_swapped_and_vacancies_kept():
    params = pristine_params(dose_e_per_A2=1e5)
    sim = simulate_image("MoS2", 512, 0.012, params=params, seed=4,
                         defect_fractions={"V_Mo": 0.05, "V_S2": 0.05})
    lat = find_lattice(sim.image, "MoS2")
    metal = sim.sites[sim.sites.sublattice == "metal"][["y_px", "x_px"]].to_numpy()
    chalc = sim.sites[sim.sites.sublattice == "chalcogen"][["y_px", "x_px"]].to_numpy()
    assert np.median(nearest_distances(lat.metal_sites_px, metal)) < 0.5
    assert np.median(nearest_distances(lat.chalcogen_sites_px, chalc)) < 0.8
    # Empty sites are still sites: each V_Mo has a metal site within 1.5 px (away from the
    # border, where an empty site cannot be told from a column outside the field).
    vac = sim.sites[sim.sites["class"] == "V_Mo"][["y_px", "x_px"]].to_numpy()
    margin = 0.5 * lat.a_px
    vac = vac[((vac > margin) & (vac < 511 - margin)).all(axis=1)]
    assert len(vac) > 3
    assert np.all(nearest_distances(vac, lat.metal_sites_px) < 1.5)
    # Chalcogen of cell (i, j) sits at metal + (a1 + a2) / 3.
    lookup = {tuple(ij): p for ij, p in zip(lat.metal_index.tolist(), lat.metal_sites_px, strict=True)}
    offs = [p - lookup[tuple(ij)] for ij, p in zip(lat.chalcogen_index.tolist(),
                                                  lat.chalcogen_sites_px, strict=True) if tuple(ij) in lookup]
    np.testing.assert_allclose(np.median(offs, axis=0), (lat.a1_px + lat.a2_px) / 3, atol=1.0)
    # Normalised basis: 60 degrees apart, right-handed.
    cos = lat.a1_px @ lat.a2_px / (np.linalg.norm(lat.a1_px) * np.linalg.norm(lat.a2_px))
    assert cos == pytest.approx(0.5, abs=0.02)
    assert lat.a1_px[0] * lat.a2_px[1] - lat.a1_px[1] * lat.a2_px[0] > 0


@pytest.mark.parametrize("material", ["MoS2", "WS2", "MoSe2", "WSe2"])
def test_sublattices_for_every_preset(material):
    sim = simulate_image(material, 384, 0.012, params=pristine_params(), seed=9)
    lat = find_lattice(sim.image, material)
    metal = sim.sites[sim.sites.sublattice == "metal"][["y_px", "x_px"]].to_numpy()
    assert np.median(nearest_distances(lat.metal_sites_px, metal)) < 0.5
    assert lat.pixel_size_nm == pytest.approx(0.012, rel=0.01)


@pytest.mark.parametrize("material", ["MoS2", "WS2", "MoSe2", "WSe2"])
def test_noise_free_images_find_the_lattice(material):
    """Noise-free simulations (random microscopes, scan distortion, defects): the lattice is found
    with the first-order basis, chalcogen sites on the chalcogen columns, and a measured (not
    fallback) metal/chalcogen contrast. Their spectrum has no noise floor: the ring background
    falls steeply with frequency, so faint high-frequency streaks outrank the first-order spots
    by ratio."""
    mat = get_material(material)
    fallback = 1.0 / 0.35  # normalize.intensity_levels' "chalcogen invisible" ratio
    for k in range(10):
        params = MicroscopeParams.random(np.random.default_rng(500 + k), mat, dose_e_per_A2=None)
        sim = simulate_image(mat, 288, 0.013, params=params, seed=k,
                             defect_fractions={"V_X": 0.06, "D_X": 0.06, "V_X2": 0.02, "V_M": 0.02})
        assert sim.image.std() > 0
        lat = find_lattice(sim.image, mat, pixel_size_nm=0.013)
        assert lat.a_px == pytest.approx(mat.a_nm / 0.013, rel=0.04), k
        chalc = sim.sites[sim.sites.sublattice == "chalcogen"][["y_px", "x_px"]].to_numpy()
        metal = sim.sites[sim.sites.sublattice == "metal"][["y_px", "x_px"]].to_numpy()
        dx = nearest_distances(lat.chalcogen_sites_px, chalc) / lat.a_px
        dm = nearest_distances(lat.metal_sites_px, metal) / lat.a_px
        assert np.mean(dx < 0.1) > 0.95 and np.mean(dm < 0.1) > 0.95, k
        ratio = intensity_levels(sim.image, lat).metal_to_chalcogen
        at_truth = replace(lat, metal_sites_px=metal, chalcogen_sites_px=chalc)
        true_ratio = intensity_levels(sim.image, at_truth).metal_to_chalcogen
        assert ratio != pytest.approx(fallback, abs=1e-6), k
        assert ratio == pytest.approx(true_ratio, rel=0.05), k


@pytest.mark.parametrize("pixel_size_nm,size,rotation", [(0.012, 256, 45.0), (0.012, 256, 17.0),
                                                         (0.005, 768, 45.0), (0.025, 256, 0.0)])
def test_noise_free_perfect_lattice_first_order(pixel_size_nm, size, rotation):
    """A perfect scan without noise: the first-order spots fill much of their low-frequency ring
    and the high orders have far higher ratios; the primitive basis must still be chosen."""
    params = pristine_params(dose_e_per_A2=None, row_jitter_nm=0.0, drift_nm=0.0, line_noise=0.0)
    sim = simulate_image("MoS2", size, pixel_size_nm, params=params, seed=3, rotation_deg=rotation)
    lat = find_lattice(sim.image, "MoS2")
    assert vector_error(lat, sim) < 0.01
    assert lat.pixel_size_nm == pytest.approx(pixel_size_nm, rel=0.01)
    chalc = sim.sites[sim.sites.sublattice == "chalcogen"][["y_px", "x_px"]].to_numpy()
    assert np.mean(nearest_distances(lat.chalcogen_sites_px, chalc) < 0.1 * lat.a_px) > 0.95


def test_distorted_scan_follows_local_lattice():
    params = MicroscopeParams(dose_e_per_A2=1e5, shear=0.04, y_stretch=-0.03, drift_nm=0.04,
                              row_jitter_nm=0.006)
    sim = simulate_image("MoS2", 768, 0.012, params=params, seed=21)
    lat = find_lattice(sim.image, "MoS2")
    truth = sim.sites[sim.sites.sublattice == "metal"][["y_px", "x_px"]].to_numpy()
    d = nearest_distances(lat.metal_sites_px, truth)
    assert np.sqrt(np.mean(d**2)) < 0.5
    assert np.mean(nearest_distances(truth, lat.metal_sites_px) < 1.0) > 0.95


def test_calibration_messages():
    sim = simulate_image("MoS2", 384, 0.012, params=pristine_params(), seed=1)
    with pytest.warns(CalibrationWarning, match="using the lattice calibration"):
        lat = find_lattice(sim.image, "MoS2", pixel_size_nm=0.011, calibration="file")
    assert lat.calibration == "lattice" and lat.pixel_size_nm == pytest.approx(0.012, rel=0.01)
    with pytest.warns(CalibrationWarning, match="kept as given"):
        lat = find_lattice(sim.image, "MoS2", pixel_size_nm=0.011, calibration="user")
    assert lat.calibration == "user" and lat.pixel_size_nm == 0.011
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lat = find_lattice(sim.image, "MoS2", pixel_size_nm=0.0121, calibration="file")
    assert lat.calibration == "file" and lat.pixel_size_nm == 0.0121
    lat = find_lattice(sim.image, "MoS2")
    assert lat.calibration == "lattice" and "calibrated" in lat.messages[-1]


def _amorphous(seed, n=512):
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n))
    pts = rng.uniform(0, n, (4000, 2)).astype(int)
    np.add.at(img, (pts[:, 0], pts[:, 1]), 1.0)
    return rng.poisson(ndimage.gaussian_filter(img, 2.0) * 40 + 2).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_amorphous_and_noise_have_no_lattice(seed):
    with pytest.raises(NoLatticeError, match="No crystal lattice"):
        find_lattice(_amorphous(seed), "MoS2")
    noise = np.random.default_rng(seed).poisson(3.0, (256, 256)).astype(np.float32)
    with pytest.raises(NoLatticeError):
        find_lattice(noise, "MoS2")


def test_bad_inputs_give_clear_errors(sim_mos2):
    img = sim_mos2.image
    with pytest.raises(BadImageError, match="stack"):
        find_lattice(np.stack([img, img]), "MoS2")
    with pytest.raises(BadImageError, match="colour"):
        find_lattice(np.dstack([img, img, img]), "MoS2")
    with pytest.raises(BadImageError, match="constant"):
        find_lattice(np.ones((256, 256)), "MoS2")
    with pytest.raises(BadImageError, match="too small"):
        find_lattice(img[:20, :20], "MoS2")
    nan = img.copy()
    nan[:100] = np.nan
    with pytest.raises(BadImageError, match="NaN"):
        find_lattice(nan, "MoS2")
    with pytest.raises(AtomDefectError, match="pixel size"):
        find_lattice(img, "MoS2", pixel_size_nm=-1.0)
    few = img.copy()
    few[10, 10] = np.nan  # a few NaN pixels are tolerated
    assert find_lattice(few, "MoS2").n_cells > 100


def test_too_few_cells():
    sim = simulate_image("MoS2", 64, 0.025, params=pristine_params(), seed=0)
    with pytest.raises(NoLatticeError):
        find_lattice(sim.image[:40, :40], "MoS2")


def test_to_dict_schema(sim_mos2):
    d = find_lattice(sim_mos2.image, "MoS2", pixel_size_nm=0.012).to_dict()
    for key in ("a1_px", "a2_px", "pixel_size_nm", "calibration", "n_cells", "metal_sites_px",
                "chalcogen_sites_px"):
        assert key in d
    assert d["calibration"] == "user" and d["n_cells"] == len(d["metal_sites_px"])


@pytest.mark.parametrize("c", [0.75, 0.92])
@pytest.mark.parametrize("material,sub", [("MoSe2", "S"), ("MoS2", "Se")])
def test_alloy_that_reverses_the_brightness_order_keeps_its_sublattices(material, sub, c):
    """An S-rich MoSe2 (metal brighter than its chalcogen) or Se-rich MoS2 (chalcogen brighter
    than its metal) alloy: the uniform sublattice is the metal, whatever the brightness says —
    also when the layer is nearly converted (``c``: per-atom fraction of the substituent; at
    0.92 one column in seven is mixed, which leaves the inter-quartile range of a pure layer:
    the sublattice with the outlying columns is the chalcogen one)."""
    from scipy.spatial import cKDTree

    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    x = get_material(material).chalcogen
    fractions = {f"{sub}_{x}": 2 * c * (1 - c), f"{sub}2_{x}2": c * c}
    for seed in range(3):
        params = MicroscopeParams.random(np.random.default_rng(70 + seed), material,
                                         dose_e_per_A2=5e5)
        sim = simulate_image(material, 320, 0.012, params=params, seed=seed,
                             defect_fractions=fractions, substituents=sub)
        lattice = find_lattice(sim.image, material, pixel_size_nm=0.012)
        truth = sim.sites[sim.sites.sublattice == "chalcogen"][["y_px", "x_px"]].to_numpy()
        d, _ = cKDTree(truth).query(lattice.chalcogen_sites_px)
        assert np.mean(d < 0.25 * lattice.a_px) > 0.95, (material, seed, lattice.messages)


@pytest.mark.parametrize(("material", "seed"), [("MoSe2", 2), ("MoSe2", 3), ("WSe2", 7),
                                                ("MoS2", 11)])
def test_a_field_five_cells_across_finds_the_unit_cell(material, seed):
    """On a field about five unit cells across the first-order spots are broad and the
    second-order ring won: a lattice √3 too fine (every column and hollow on one sublattice,
    the second one "barely visible"). The unit cell's own spots, a third of the way between
    two second-order ones, give the right lattice."""
    from napari_atomdefect.core.lattice.lattice import SECOND_SUBLATTICE_NOTE

    a_nm = get_material(material).a_nm
    sim = simulate_image(material, int(5.2 * a_nm / 0.012), 0.012,
                         params=MicroscopeParams(dose_e_per_A2=3e5), seed=seed,
                         rotation_deg=7.0 * seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = find_lattice(sim.image, material)
    assert lattice.a_px == pytest.approx(a_nm / 0.012, rel=0.03)
    assert not any(SECOND_SUBLATTICE_NOTE in m for m in lattice.messages)


def test_a_given_pixel_size_finds_faint_first_order_spots():
    """A noisy field eight cells across (2.6e4 e/Å², the kind of image training simulates):
    only the second-order ring stood out of the spectrum and the lattice came out √3 too fine,
    against the pixel size given. The given pixel size says where the first-order spots are;
    they are there, a third of the way between second-order ones."""
    from napari_atomdefect.core.train.datasets import training_fractions

    mat = get_material("MoS2")
    rng = np.random.default_rng(1000091)
    params = MicroscopeParams.random(rng, mat, row_jitter_nm=0.0, drift_nm=0.0, shear=0.0,
                                     y_stretch=0.0, background=0.0)
    px = float(np.exp(rng.uniform(*np.log((0.008, 0.02)))))
    sim = simulate_image(mat, 320, px, params=params, substituents=("O", "Se"),
                         defect_fractions=training_fractions(mat, ("O", "Se"), rng),
                         seed=int(rng.integers(2**31)))
    assert params.dose_e_per_A2 < 5e4
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        lattice = find_lattice(sim.image, mat, pixel_size_nm=px)
    assert lattice.a_px == pytest.approx(mat.a_nm / px, rel=0.03)


def test_a_swap_that_the_chosen_heavier_substituent_explains_is_said_as_such():
    """A Se-rich MoS2 layer outshines its Mo: with Se chosen the swap is what the user
    expects and is said so ("as in a Se-rich MoS2 alloy"), not as a surprise ("an alloy?")."""
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    params = MicroscopeParams.random(np.random.default_rng(70), "MoS2", dose_e_per_A2=5e5)
    sim = simulate_image("MoS2", 320, 0.012, params=params, seed=0,
                         defect_fractions={"Se_S": 2 * 0.75 * 0.25, "Se2_S2": 0.75 ** 2},
                         substituents="Se")
    told = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012, substituents="Se").messages
    assert any("outshine the Mo columns here, as they can in a MoS2 alloy with Se" in m
               for m in told), told
    plain = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012).messages
    assert any("against MoS2's usual brightness order (an alloy?)" in m for m in plain), plain


def test_within_field_counts_pixel_centres_and_margins():
    from napari_atomdefect.core.lattice.sites import within_field

    pts = np.array([[0.0, 0.0], [9.0, 19.0], [-0.01, 5.0], [5.0, 19.01], [2.0, 2.0], [7.5, 17.5]])
    assert within_field(pts, (10, 20)).tolist() == [True, True, False, False, True, True]
    assert within_field(pts, (10, 20), margin=2.0).tolist() == [False, False, False, False,
                                                               True, False]
    # a negative margin lets positions lie that far beyond the field
    assert within_field(pts, (10, 20), margin=-0.02).tolist() == [True] * 6
    assert within_field(np.zeros((0, 2)), (10, 20)).shape == (0,)


@pytest.mark.parametrize("y_stretch, told", [(0.0, False), (0.03, False), (0.10, True)])
def test_a_strongly_distorted_lattice_is_told(y_stretch, told):
    """A scan stretched along its slow axis spreads the three lattice spacings; beyond 5 % the
    user reads that positions in nm carry it (the real fully converted image: 11 %)."""
    from napari_atomdefect.core.lattice.lattice import distortion_message

    sim = simulate_image("MoS2", 384, 0.012, params=pristine_params(y_stretch=y_stretch), seed=3)
    lat = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    notes = [m for m in lat.messages if m.startswith("The lattice is distorted")]
    assert bool(notes) is told
    if told:
        assert "densities per nm² (from the cell area) are not" in notes[0]
    # the same sentence from the basis alone, None for a hexagon
    assert distortion_message(np.array([10.0, 0.0]), np.array([5.0, 8.660254])) is None
    assert "differ by 10%" in distortion_message(np.array([11.0, 0.0]), np.array([5.0, 8.660254]))


def test_side_lobes_near_a_spot_are_not_taken_for_a_lower_order():
    """The first order is the lowest-frequency hexagon of comparable strength, since higher
    orders can be as strong; but a weaker hexagon only a little nearer the origin (side lobes
    that a hole's edge puts around every spot: a real image with a hole read a pixel size 3 %
    off) is the same order, and the strongest of that order stands for it."""
    from napari_atomdefect.core.lattice.fft_peaks import _blind_choice

    def hexagon(strength: float, freq: float) -> tuple:
        g1 = np.array([freq, 0.0])
        g2 = freq * np.array([-0.5, np.sqrt(3) / 2])
        return (strength, freq, g1, g2, strength, g1, g2)

    lattice, lobes = hexagon(100.0, 0.0316), hexagon(8.0, 0.0290)
    assert _blind_choice([lattice, lobes])[1] == 0.0316
    assert _blind_choice([lobes, lattice])[1] == 0.0316
    # A hexagon √3 nearer the origin with at least 5 % of the strength is the first order.
    first = hexagon(6.0, 0.0316 / np.sqrt(3))
    assert _blind_choice([lattice, lobes, first])[1] == pytest.approx(0.0316 / np.sqrt(3))


def test_the_phase_on_a_grid_is_the_phase_at_its_points():
    """The mean cell reads the fractional coordinates of a grid of pixels separably (two small
    matrix products): the same bilinear interpolation as at the points one by one, edges
    clamped, within float64 rounding."""
    from napari_atomdefect.core.lattice.gpa import PhaseMap

    rng = np.random.default_rng(0)
    phase = np.cumsum(rng.normal(size=(40, 36)), axis=0) * 3
    pm = PhaseMap(g_ref=np.array([0.031, -0.012]), phase=phase, amplitude=np.ones_like(phase),
                  step=np.array([27.3, 29.1]), pad=13)
    rows, cols = np.arange(-20, 1100, 7.0), np.arange(-30, 1070, 5.0)  # (beyond both ends)
    grid = pm.total_phase_cycles_grid(rows, cols)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    points = pm.total_phase_cycles(np.stack([rr.ravel(), cc.ravel()], axis=1))
    assert grid.shape == (len(rows), len(cols))
    np.testing.assert_allclose(grid, points.reshape(grid.shape), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(40, 36), (41, 37), (64, 50)])
def test_half_spectrum_window_equals_the_full_transform(shape):
    """GPA keeps only the non-negative column frequencies of a real image's spectrum; a window
    anywhere — across the origin, across the Nyquist column, odd or even sizes — reads the same
    bins as the full transform."""
    from scipy import fft

    from napari_atomdefect.core.lattice.gpa import ImageSpectrum

    h, w = shape
    x = np.random.default_rng(h).random(shape)
    full = fft.fft2(x)
    spectrum = ImageSpectrum(half=fft.rfft2(x), shape=shape)
    rows = (np.arange(-8, 8) + 5) % h
    for centre in (-3, 0, w // 2, w // 2 + 1):
        cols = (np.arange(-8, 8) + centre) % w
        np.testing.assert_allclose(spectrum.window(rows, cols), full[np.ix_(rows, cols)],
                                   rtol=1e-10, atol=1e-10)


def test_fractional_grid_equals_fractional_point_by_point():
    """The separable reading of a pixel grid's lattice coordinates (the column-width fit's
    fold) equals the point-by-point one."""
    sim = simulate_image("MoS2", 256, 0.012, seed=11)
    lat = find_lattice(sim.image, get_material("MoS2"), 0.012)
    rows, cols = np.arange(0, 256, 5), np.arange(3, 256, 7)
    grid = lat.fractional_grid(rows, cols)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    points = lat.fractional(np.stack([rr.ravel(), cc.ravel()], 1))
    assert grid.shape == (len(rows), len(cols), 2)
    np.testing.assert_allclose(grid.reshape(-1, 2), points, rtol=0, atol=1e-9)
