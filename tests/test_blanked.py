"""Columns over blanked (NaN) pixels are left out of the table and said."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_atomdefect.core.detect.detect import detect, iter_detect
from napari_atomdefect.core.io.blanked import blank_pixels, blanked_sites
from napari_atomdefect.core.progress import run_to_end
from napari_atomdefect.core.simulate.image import simulate_image


def test_blanked_sites_are_those_whose_disc_is_largely_blank():
    blank = np.zeros((100, 100), bool)
    blank[40:50, :] = True
    rows = np.array([45.0, 51.0, 60.0, 10.0])
    cols = np.array([50.0, 50.0, 50.0, 50.0])
    # a = 20 px: a disc of 6 px; a site on the stripe, one 1 px beside it, two well away
    assert blanked_sites(blank, rows, cols, 20.0).tolist() == [True, True, False, False]
    assert blank_pixels(np.ones((8, 8), np.float32)) is None
    assert blank_pixels(np.ones((8, 8), np.int16)) is None


@pytest.fixture(scope="module")
def striped():
    sim = simulate_image("MoS2", 256, 0.012, seed=11)
    img = sim.image.astype(np.float32).copy()
    img[100:110, 50:200] = np.nan
    return sim, img


def test_no_call_on_a_blanked_stripe_and_the_rest_as_before(striped):
    """A stripe ten rows high blanked to NaN: no column on it or beside it is called (a trial
    got an O_S on a pristine column 89 % blanked), the sentence says how many were left out,
    and the calls away from the stripe are those of the intact image."""
    sim, img = striped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(img, pixel_size_nm=0.012, material="MoS2", device="cpu")
    intact = detect(sim.image, pixel_size_nm=0.012, material="MoS2", device="cpu")
    # (said by the lattice, which leaves the sites out: every statistic goes without them)
    said = [m for m in table.attrs["messages"] if "(blanked)" in m]
    assert len(said) == 1 and said[0].startswith("7 columns lie on NaN")
    assert not any("(blanked)" in str(w.message) for w in caught)
    near = (table.y_px > 100 - 8) & (table.y_px < 110 + 8) & (table.x_px > 50 - 8) \
        & (table.x_px < 200 + 8)
    assert not near.any()
    assert table.attrs["n_chalcogen_sites"] < intact.attrs["n_chalcogen_sites"]
    a_px = 0.316 / 0.012
    far = lambda t: t[(np.abs(t.y_px - 105) > a_px) | (t.x_px < 50 - a_px)  # noqa: E731
                      | (t.x_px > 200 + a_px)]
    kept, before = far(table), far(intact)
    assert len(kept) == len(before)
    assert (kept["class"].to_numpy() == before["class"].to_numpy()).all()


def test_filled_in_columns_are_left_out_of_the_lattice_statistics():
    """A stripe of filled-in pixels as grey as a Mo column over WS2's metal row: read with the
    rest, its W columns made a dim rung and the lattice said "a Mo/W alloy" (a trial's real
    image with a NaN stripe); told which pixels were filled in, the lattice reads the metal
    columns without them, and keeps their cells (detection leaves them out, and says so)."""
    sim = simulate_image("WS2", 384, 0.012, seed=3)
    img = sim.image.astype(np.float32).copy()
    lo, hi = np.percentile(img, [5, 99.5])
    blank = np.zeros(img.shape, bool)
    blank[150:162, 40:340] = True
    img[blank] = lo + 0.3 * (hi - lo)
    from napari_atomdefect.core.lattice.lattice import find_lattice

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unaware = find_lattice(img, "WS2", 0.012)
        aware = find_lattice(img, "WS2", 0.012, blank=blank)
        intact = find_lattice(sim.image, "WS2", 0.012)
    assert unaware.metal_alloy is not None  # the hazard this guards against
    assert aware.metal_alloy is None
    # its one sentence says how many columns were left out; the cells elsewhere all kept
    assert len(aware.messages) == 1 and "(blanked)" in aware.messages[0]
    assert intact.n_cells - 15 < aware.n_cells < intact.n_cells
    # NaN pixels are found in the image itself
    img[blank] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = find_lattice(img, "WS2", 0.012)
    assert found.metal_alloy is None
    assert intact.n_cells - 15 < found.n_cells < intact.n_cells
    assert len(found.messages) == 1 and "(blanked)" in found.messages[0]


def test_a_lattice_found_without_the_blank_has_its_blanked_sites_left_out_by_detection(striped):
    """A lattice found on the filled-in image (not told which pixels were blanked) keeps the
    sites on the stripe; detection leaves them out of its table and says so."""
    from napari_atomdefect.core.io.validate import as_analysis_image
    from napari_atomdefect.core.lattice.lattice import find_lattice

    sim, img = striped
    lattice = find_lattice(as_analysis_image(img), "MoS2", 0.012)
    assert not any("(blanked)" in m for m in lattice.messages)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = run_to_end(iter_detect(img, 0.012, "MoS2", device="cpu", lattice=lattice))[
            "defects"]
    said = [str(w.message) for w in caught if "(blanked)" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("7 columns lie on NaN")
    assert said[0] in table.attrs["fit_messages"]
    near = (table.y_px > 100 - 8) & (table.y_px < 110 + 8) & (table.x_px > 50 - 8) \
        & (table.x_px < 200 + 8)
    assert not near.any()
