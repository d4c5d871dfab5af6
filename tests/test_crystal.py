"""Sites over vacuum or amorphous material are left out of the lattice (core/lattice/crystal.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.core.lattice.crystal import (
    MIN_CRYSTAL_SUPPORT,
    crystal_support,
    in_crystal,
    median_of,
    off_crystal_message,
)
from napari_atomdefect.core.lattice.grains import low_angle_domain
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.materials.materials import get_material
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
from napari_atomdefect.core.train.datasets import training_fractions

from .scenarios import bicrystal_image, holey_image

HOLE = (250.0, 250.0, 110.0)
AMORPHOUS = (560.0, 520.0, 120.0)


def _distance_inside(points: np.ndarray, disc: tuple[float, float, float]) -> np.ndarray:
    """How far each point lies inside the disc (negative: outside)."""
    return disc[2] - np.hypot(points[:, 0] - disc[0], points[:, 1] - disc[1])


@pytest.fixture(scope="module")
def holey():
    sim, image = holey_image(hole=HOLE, amorphous=AMORPHOUS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = find_lattice(image, "MoS2", pixel_size_nm=sim.pixel_size_nm)
        reference = find_lattice(sim.image, "MoS2", pixel_size_nm=sim.pixel_size_nm)
    return sim, image, lattice, reference


def test_median_of_ignores_missing_neighbours():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    idx = np.array([[0, 1, 2, -1], [3, 4, -1, -1], [-1, -1, -1, -1], [0, 1, 2, 3]])
    out = median_of(values, idx)
    np.testing.assert_allclose(out[[0, 1, 3]], [2.0, 4.5, 2.5])
    assert np.isnan(out[2])


def test_median_of_is_numpys_nanmedian_to_the_bit():
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        values = rng.normal(size=500).astype(dtype)
        values[rng.random(500) < 0.2] = np.nan
        idx = rng.integers(-1, 500, size=(300, 13))
        idx[7] = -1
        rows = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
        with warnings.catch_warnings():  # (the rows without a value)
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(rows, axis=1)
        np.testing.assert_array_equal(median_of(values, idx), expected)


def test_no_site_inside_a_hole_or_an_amorphous_patch(holey):
    sim, _, lattice, _ = holey
    _, _, _, reference = holey
    a = lattice.a_px
    for sites, before in ((lattice.metal_sites_px, reference.metal_sites_px),
                          (lattice.chalcogen_sites_px, reference.chalcogen_sites_px)):
        assert (_distance_inside(sites, HOLE) > a).sum() == 0
        # Random blobs over the amorphous patch can line up with a few sites.
        deep = (_distance_inside(sites, AMORPHOUS) > a).sum()
        assert deep <= 0.1 * (_distance_inside(before, AMORPHOUS) > a).sum()
    assert any("left out over vacuum or amorphous material" in m for m in lattice.messages)


def test_the_crystal_around_them_keeps_every_site(holey):
    from scipy.spatial import cKDTree

    _, _, lattice, reference = holey
    a = lattice.a_px
    assert not any("left out" in m for m in reference.messages)
    for sites, before in ((lattice.metal_sites_px, reference.metal_sites_px),
                          (lattice.chalcogen_sites_px, reference.chalcogen_sites_px)):
        away = ((_distance_inside(before, HOLE) < -2 * a)
                & (_distance_inside(before, AMORPHOUS) < -2 * a)
                & ((before > 5) & (before < np.array(lattice.shape) - 6)).all(1))
        distance, _ = cKDTree(sites).query(before[away])
        assert away.sum() > 600 and distance.max() < 0.1 * a


@pytest.mark.parametrize("material", ["MoS2", "WS2", "MoSe2", "WSe2"])
def test_no_crystal_left_out_of_ordinary_images(material):
    """Alloys, vacancy clusters, contamination, doses down to 1e4 e/Å², small fields: every
    cell stays."""
    mat = get_material(material)
    subs = ("O", "Se") if mat.chalcogen == "S" else ("S", "Te")
    rng = np.random.default_rng(7)
    for k in range(4):
        dose = float(np.exp(rng.uniform(np.log(1e4), np.log(2e6))))
        params = MicroscopeParams.random(rng, mat, dose_e_per_A2=dose)
        px = float(np.exp(rng.uniform(np.log(0.008), np.log(0.02))))
        sim = simulate_image(mat, 320, px, params=params, seed=100 + k, substituents=subs,
                             defect_fractions=training_fractions(mat, subs, rng))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lattice = find_lattice(sim.image, mat, pixel_size_nm=px)
        assert not any("left out" in m for m in lattice.messages), (material, k, dose)
        # one orientation domain: the scan distortion turns the lattice smoothly
        assert len(low_angle_domain(lattice)) == 0, (material, k, dose)


def test_support_is_one_in_a_crystal_and_zero_in_vacuum():
    a = 20.0
    i, j = np.mgrid[-2:14, -2:14]
    a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    metal = i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2
    metal = metal[(metal > 2).all(1) & (metal < 197).all(1)]
    chalc = metal + (a1 + a2) / 3
    hollow = metal + 2 * (a1 + a2) / 3
    yy, xx = np.mgrid[:200, :200]
    image = np.zeros((200, 200))
    for pts, amp in ((metal, 3.0), (chalc, 1.0)):
        for y, x in pts:
            image += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.0**2))
    image[:, 120:] = 0.0  # vacuum on the right
    (metal_support, chalc_support), _ = crystal_support(image, [metal, chalc], hollow, a)
    for pts, support in ((metal, metal_support), (chalc, chalc_support)):
        assert support[pts[:, 1] < 100].min() > 0.8
        assert support[pts[:, 1] > 140].max() < MIN_CRYSTAL_SUPPORT
    # A vacancy in the crystal stays; the sites just inside the vacuum edge do not.
    vacancy = np.argmin(np.hypot(*(metal - [100, 60]).T))
    image -= 3.0 * np.exp(-((yy - metal[vacancy, 0]) ** 2 + (xx - metal[vacancy, 1]) ** 2) / 8.0)
    metal_in, chalc_in = in_crystal(image, [metal, chalc], hollow, a)
    assert metal_in[vacancy] and metal_in[metal[:, 1] < 100].all()
    assert not metal_in[metal[:, 1] > 125].any() and not chalc_in[chalc[:, 1] > 125].any()


def test_message_says_how_many_cells():
    assert off_crystal_message(0, 100) == ""
    assert off_crystal_message(25, 75).startswith("25 unit cells (25%) are left out over vacuum")
    assert off_crystal_message(1, 800).startswith("1 unit cell (under 1%) is left out")


def test_detection_calls_no_defect_inside_a_hole(holey):
    """The ring of `V_Mo`/`V_S2` calls inside every hole is gone, the crystal's defects are
    found, and the user is told why part of the field has no calls."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score

    sim, image, _, _ = holey
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        defects = detect(image, pixel_size_nm=sim.pixel_size_nm, material="MoS2")
    points = defects[["y_px", "x_px"]].to_numpy(float)
    a = 0.316 / sim.pixel_size_nm
    assert (_distance_inside(points, HOLE) > 0.75 * a).sum() == 0
    assert (_distance_inside(points, AMORPHOUS) > 0.75 * a).sum() == 0
    assert any("over vacuum or amorphous material" in m for m in defects.attrs["messages"])
    truth = sim.defects
    away = lambda t: t[(_distance_inside(t[["y_px", "x_px"]].to_numpy(float), HOLE) < -a)  # noqa: E731
                       & (_distance_inside(t[["y_px", "x_px"]].to_numpy(float), AMORPHOUS) < -a)]
    f1 = score(away(defects), away(truth), 0.08 / sim.pixel_size_nm)["f1"]
    assert f1["V_S2"] >= 0.9 and f1["V_Mo"] >= 0.9


def test_one_lattice_stops_at_the_grain_boundary():
    """Two grains 18 degrees apart: the lattice of one fades over the other (its Bragg amplitude
    there is a few per cent of its own grain's), so no site lies more than a lattice constant
    into the other grain, the user is told, and (first grain only) its defects are found."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score

    left, right, image = bicrystal_image()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = find_lattice(image, "MoS2", pixel_size_nm=0.012)
        defects = detect(image, pixel_size_nm=0.012, material="MoS2", grains=False)
    a = lattice.a_px
    cols = np.concatenate([lattice.metal_sites_px, lattice.chalcogen_sites_px])[:, 1]
    # one grain analysed (the lattice of either); its lattice fades over about a cell (the
    # resolution of the Bragg filter), so nothing lies deeper than 1.5 lattice constants into
    # the other grain and a few sites deeper than 0.75
    on_right = np.median(cols) > 256
    depth = (256 - cols) if on_right else (cols - 256)
    assert (depth > 1.5 * a).sum() == 0
    assert (depth > 0.75 * a).sum() <= 0.02 * len(cols), np.sort(depth)[-10:] / a
    assert any("left out where this lattice fades" in m for m in lattice.messages)
    assert any("another grain" in m for m in defects.attrs["messages"])
    grain = right if on_right else left
    inside = (lambda t: t[(t.x_px > 256 + 2 * a) & (t.x_px < 510 - a) & (t.y_px > a)  # noqa: E731
                          & (t.y_px < 511 - a)] if on_right else
              t[(t.x_px < 256 - 2 * a) & (t.x_px > a) & (t.y_px > a) & (t.y_px < 511 - a)])
    f1 = score(inside(defects), inside(grain.defects), 0.08 / 0.012)["f1"]
    assert f1[["V_S2", "V_Mo"]].min() >= 0.9, f1
    # every call, up to the boundary: the cells half over the other grain are left out (their
    # V_Mo / V_S2 calls read the other grain's columns)
    half = grain.defects[(grain.defects.x_px > 256) if on_right else (grain.defects.x_px < 256)]
    precision = score(defects, half, 0.08 / 0.012)["precision"]
    assert precision[["V_S2", "V_Mo"]].min() >= 0.95, precision


def _grain_interior(t: pd.DataFrame, on_right: bool, a: float) -> pd.DataFrame:
    """Rows of ``t`` inside one grain of the bicrystal: two lattice constants from the boundary
    at column 256, one from the field's edges."""
    rows = (t.y_px > a) & (t.y_px < 511 - a)
    if on_right:
        return t[rows & (t.x_px > 256 + 2 * a) & (t.x_px < 510 - a)]
    return t[rows & (t.x_px < 256 - 2 * a) & (t.x_px > a)]


def test_every_grain_is_analysed(tmp_path, capsys):
    """By default both grains are found, each on its own lattice (18 degrees apart), said in one
    sentence; no site of one lies on the other; each grain's defects are found as in a
    single-grain image, the boundary adds no false V_S2 / V_Mo, and the CSV says the grain."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.io.table import read_defects_csv, write_csv_atomic
    from napari_atomdefect.core.lattice.grains import find_grains, misorientation_deg
    from napari_atomdefect.core.progress import run_to_end

    left, right, image = bicrystal_image()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattices = find_grains(image, "MoS2", pixel_size_nm=0.012)
        result = run_to_end(iter_detect(image, 0.012, "MoS2"))
    assert len(lattices) == 2
    assert misorientation_deg(*lattices) == pytest.approx(18.0, abs=0.5)
    assert {la.pixel_size_nm for la in lattices} == {0.012}
    a = lattices[0].a_px
    cols = [np.concatenate([la.metal_sites_px, la.chalcogen_sites_px])[:, 1] for la in lattices]
    sides = [np.median(c) > 256 for c in cols]
    assert sides[0] != sides[1]
    for c, on_right in zip(cols, sides, strict=True):  # each grain stays on its side
        depth = (256 - c) if on_right else (c - 256)
        assert (depth > 1.5 * a).sum() == 0
    defects = result["defects"]
    assert any("2 grains at different orientations" in m for m in defects.attrs["messages"])
    assert not any("left out where this lattice fades" in m for m in defects.attrs["messages"])
    assert defects.attrs["n_cells"] == sum(la.n_cells for la in lattices) > 1.6 * lattices[0].n_cells
    assert set(defects["grain"]) == {0, 1}
    preds, truths = [], []
    for k, grain in enumerate((right, left) if sides[0] else (left, right)):
        on_right = sides[k]
        mine = defects[defects.grain == k]
        assert ((mine.x_px > 256) == on_right).mean() > 0.95
        preds.append(_grain_interior(mine, on_right, a))
        truths.append(_grain_interior(grain.defects, on_right, a))
    f1 = score(pd.concat(preds), pd.concat(truths), 0.08 / 0.012)["f1"]
    assert f1[["V_S2", "V_Mo", "V_S|O_S"]].min() >= 0.9, f1
    truth = pd.concat([left.defects[left.defects.x_px < 256],
                       right.defects[right.defects.x_px >= 256]])
    precision = score(defects, truth, 0.08 / 0.012)["precision"]
    assert precision[["V_S2", "V_Mo"]].min() >= 0.95, precision
    write_csv_atomic(defects, tmp_path / "d.csv")
    back = read_defects_csv(tmp_path / "d.csv")
    np.testing.assert_array_equal(back["grain"], defects["grain"])
    # the lattice command lists both grains too
    import json

    from napari_atomdefect.cli import main

    np.save(tmp_path / "bicrystal.npy", image)
    capsys.readouterr()
    assert main(["lattice", str(tmp_path / "bicrystal.npy"), "--pixel-size-nm", "0.012",
                 "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["grains"]) == 1 and listed["grains"][0]["n_cells"] > 150


@pytest.mark.parametrize("seed", [4, 6, 7, 14])
def test_a_mirror_twin_is_a_grain_of_its_own(seed):
    """Two grains 60 degrees apart (a mirror twin: the same Bragg peaks, the metal-to-chalcogen
    step reversed): one lattice ran over both and put the twin's chalcogen sites on its empty
    hollows (94 false V_S2, its defects missed). Now the twin is found apart and each grain's
    defects are found; ordinary fields have no twin site."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.lattice.grains import find_grains, is_mirror_twin, twin_sites
    from napari_atomdefect.core.progress import run_to_end

    # Seventeenth session (grains.off_column_sites): seed 7's first lattice ran on over the twin
    # out of step with its columns (13 false V_S2); seed 4's kept patches of the twin in step
    # with it whose chalcogen sites it had dropped (17 % of the cells left out, defects in the
    # twin missed); seed 14's twin was not seen at all (32 false V_S2).
    left, right, image = bicrystal_image(seed=seed, rotations_deg=(5.0, 65.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattices = find_grains(image, "MoS2", pixel_size_nm=0.012)
        result = run_to_end(iter_detect(image, 0.012, "MoS2"))
        plain = find_lattice(bicrystal_image()[2], "MoS2", pixel_size_nm=0.012)
    assert len(lattices) == 2 and is_mirror_twin(*lattices)
    assert not twin_sites(plain, bicrystal_image()[2]).any()
    # uncalibrated too: one lattice over both domains shows no second sublattice, yet it is
    # not the second-order ring of a field too small (no spots a third of the way between)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bare = find_grains(image, "MoS2")
    assert len(bare) == 2 and bare[0].pixel_size_nm == pytest.approx(0.012, rel=0.03)
    defects = result["defects"]
    assert any("a mirror twin" in m for m in defects.attrs["messages"])
    a = lattices[0].a_px
    preds = [_grain_interior(defects, side, a) for side in (False, True)]
    truths = [_grain_interior(g.defects, side, a) for g, side in ((left, False), (right, True))]
    f1 = score(pd.concat(preds), pd.concat(truths), 0.08 / 0.012)["f1"]
    assert f1[["V_S2", "V_Mo", "V_S|O_S"]].min() >= 0.85, f1
    assert (preds[0]["class"] == "V_S2").sum() <= 2 * (truths[0]["class"] == "V_S2").sum() + 2


def test_a_low_angle_boundary_splits_the_field_into_two_grains():
    """Two grains 7 degrees apart: their Bragg peaks lie in one filter kernel and one lattice
    followed both, its sites along the boundary falling between columns (30 false calls). The
    columns' local orientations split into two domains: each grain is analysed on its own
    lattice, and the boundary adds few false calls."""
    from scipy.spatial import cKDTree

    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.lattice.grains import misorientation_deg
    from napari_atomdefect.core.progress import run_to_end

    left, right, image = bicrystal_image(seed=3, rotations_deg=(10.0, 17.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = find_lattice(image, "MoS2", pixel_size_nm=0.012)
        result = run_to_end(iter_detect(image, 0.012, "MoS2"))
    assert len(low_angle_domain(one)) >= 100  # the smaller domain: about half the columns
    lattices, defects = result["lattices"], result["defects"]
    assert len(lattices) == 2
    assert misorientation_deg(*lattices) == pytest.approx(7.0, abs=0.7)
    assert any("2 grains at different orientations (rotated 7°" in m
               for m in defects.attrs["messages"])
    truth = pd.concat([left.defects[left.defects.x_px < 256],
                       right.defects[right.defects.x_px >= 256]])
    radius = 0.08 / 0.012
    off, _ = cKDTree(truth[["y_px", "x_px"]].to_numpy()).query(defects[["y_px", "x_px"]])
    assert (off > radius).sum() <= 8, defects[off > radius]
    f1 = score(defects, truth, radius)["f1"]
    assert f1[["V_S2", "V_Mo", "V_S|O_S"]].min() >= 0.85, f1


def test_a_single_grain_with_holes_is_one_grain():
    """Holes and an amorphous patch in one grain: the search for another grain finds the same
    lattice (the holes' rims) or none, so one lattice analyses the field."""
    from napari_atomdefect.core.lattice.grains import find_grains

    _, image = holey_image()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(find_grains(image, "MoS2", pixel_size_nm=0.012)) == 1


def _within(table: pd.DataFrame, rect: tuple[int, int, int, int]) -> pd.DataFrame:
    """Rows of ``table`` a lattice constant (at 0.012 nm/px) inside the rectangle."""
    a = 0.316 / 0.012
    return table[(table.x_px > rect[2] + a) & (table.x_px < rect[3] - a)
                 & (table.y_px > rect[0] + a) & (table.y_px < rect[1] - 1 - a)]


def test_a_region_analyses_the_grain_it_holds(tmp_path, capsys):
    """The region given (API mask or rectangle, CLI --region) holds every site and call, and the
    grain in it is analysed as well as a whole single-grain image; a bad region is one
    sentence."""
    from napari_atomdefect.cli import main
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.errors import AtomDefectError

    left, right, image = bicrystal_image()
    for grain, rect in ((left, (0, 512, 0, 250)), (right, (0, 512, 262, 512))):
        mask = np.zeros(image.shape, bool)
        mask[rect[0]:rect[1], rect[2]:rect[3]] = True
        for region in (rect, mask):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lattice = find_lattice(image, "MoS2", pixel_size_nm=0.012, region=region)
            sites = np.concatenate([lattice.metal_sites_px, lattice.chalcogen_sites_px])
            # (a site at the region's edge may refine up to ~1.5 px over it)
            assert sites[:, 1].min() >= rect[2] - 2 and sites[:, 1].max() <= rect[3] + 1
            assert not any("another grain" in m for m in lattice.messages)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = detect(image, pixel_size_nm=0.012, material="MoS2", region=rect)
        f1 = score(_within(found, rect), _within(grain.defects, rect), 0.08 / 0.012)["f1"]
        # 10-18 true single-chalcogen defects per half: one call moves V_S|O_S by ~0.05 (round 6
        # of mos2-default: 0.82-0.97 here, as a whole single-grain field's 0.96-0.99 allows).
        assert f1[["V_S2", "V_Mo"]].min() >= 0.9 and f1["V_S|O_S"] >= 0.8, f1
    path = tmp_path / "bicrystal.npy"
    np.save(path, image)
    out = tmp_path / "right.csv"
    assert main(["detect", str(path), "--pixel-size-nm", "0.012", "--region", "0:512,262:512",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) > 10 and table.x_px.min() >= 262 - 1
    capsys.readouterr()
    for bad in ("0:512", "5:1,0:10", "a:b,c:d"):
        assert main(["detect", str(path), "--region", bad, "--out", str(out)]) == 2
        assert "--region" in capsys.readouterr().err
    assert main(["detect", str(path), "--pixel-size-nm", "0.012", "--region", "600:700,0:10",
                 "--out", str(tmp_path / "none.csv")]) == 2
    assert "--region 600:700,0:10 lies outside the image" in capsys.readouterr().err
    assert not (tmp_path / "none.csv").exists()
    with pytest.raises(AtomDefectError, match="shape"):
        find_lattice(image, "MoS2", region=np.ones((10, 10), bool))
