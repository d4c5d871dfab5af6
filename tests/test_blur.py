"""Columns blurred beyond the training images (out of focus, a wide probe) are measured from the
image and said — in a single image and, naming the frames, in a movie."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_atomdefect.core.detect.blur import (
    BLUR_NOTE,
    blur_message,
    column_fwhm_nm,
    is_blurred,
    widest_trained_nm,
)
from napari_atomdefect.core.detect.detect import detect
from napari_atomdefect.core.detect.movie import iter_detect_frames
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.progress import run_to_end
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image
from napari_atomdefect.core.simulate.movie import simulate_movie

PX = 0.012


def _image(material: str, probe_nm: float, seed: int = 3, px: float = PX):
    params = MicroscopeParams(probe_fwhm_nm=probe_nm, dose_e_per_A2=5e5)
    return simulate_image(material, 288, px, params=params, seed=seed)


def _lattice(image, material: str, px: float = PX):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_lattice(image, material, pixel_size_nm=px)


@pytest.mark.parametrize("material", ["MoS2", "WSe2", "MoSe2"])
@pytest.mark.parametrize("probe_nm", [0.08, 0.12, 0.18])
def test_the_width_read_is_the_probes(material, probe_nm):
    """The fitted width follows the simulated probe (the simulator's own column spread adds a
    little), for hosts whose brighter sublattice is the metal or the chalcogen."""
    sim = _image(material, probe_nm)
    width = column_fwhm_nm(sim.image, _lattice(sim.image, material))
    assert width == pytest.approx(probe_nm, rel=0.12)


def test_the_width_does_not_follow_a_wrong_pixel_size():
    """Read in lattice constants and given at the material's: a pixel size off by 8 % (said
    elsewhere) leaves the width as it is."""
    sim = _image("MoS2", 0.10)
    right = column_fwhm_nm(sim.image, _lattice(sim.image, "MoS2"))
    wrong = column_fwhm_nm(sim.image, _lattice(sim.image, "MoS2", px=PX * 1.08))
    assert wrong == pytest.approx(right, rel=0.02)


def test_the_training_images_set_the_limit_and_the_sentence():
    for material in ("MoS2", "WS2", "MoSe2", "WSe2"):
        widest = widest_trained_nm(material)
        assert widest is not None and 0.11 < widest < 0.16  # (probes drawn 0.07–0.12 nm)
        assert not is_blurred(widest, material) and not is_blurred(None, material)
        assert not is_blurred(float("nan"), material)
        assert blur_message(widest, material) is None
    widest = widest_trained_nm("MoS2")
    said = blur_message(0.21, "MoS2")
    assert said.startswith(f"{BLUR_NOTE}: 0.21 nm wide (FWHM)")
    assert f"at most {widest:.2f} nm" in said and "such images" in said
    assert blur_message(0.21, "MoS2", frames="frame 4").startswith(
        f"{BLUR_NOTE} in frame 4: 0.21")
    assert blur_message(0.21, "MoS2", frames="2 frames (2, 4)", several=True).startswith(
        f"{BLUR_NOTE} in 2 frames (2, 4): up to 0.21 nm wide")


def test_a_blurred_image_is_said_and_a_sharp_one_is_not():
    sharp = _image("MoS2", 0.09)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(sharp.image, pixel_size_nm=PX, material="MoS2", device="cpu")
    assert not any(str(w.message).startswith(BLUR_NOTE) for w in caught)
    assert table.attrs["column_fwhm_nm"] == pytest.approx(0.09, rel=0.12)
    blurred = _image("MoS2", 0.20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(blurred.image, pixel_size_nm=PX, material="MoS2", device="cpu")
    said = [str(w.message) for w in caught if str(w.message).startswith(BLUR_NOTE)]
    assert len(said) == 1 and said[0] in table.attrs["fit_messages"]
    assert said[0] == table.attrs["fit_messages"][0]  # (first, where the user looks)


def test_a_movie_names_its_blurred_frame_once():
    """An in-situ movie with one frame out of focus: one sentence names that frame (each
    frame's own sentence had been said once, for the first, without its number)."""
    movie = simulate_movie("MoS2", 256, n_frames=4, pixel_size_nm=PX, seed=1)
    frames = movie.frames.astype(np.float32).copy()
    frames[2] = gaussian_filter(frames[2], 0.16 / PX / 2.355)  # ~0.18 nm columns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = run_to_end(iter_detect_frames(frames, PX, "MoS2", device="cpu"))["defects"]
    said = [m for m in table.attrs["messages"] if BLUR_NOTE in m]
    assert len(said) == 1 and said[0].startswith(f"{BLUR_NOTE} in frame 2: ")
    widths = {f["frame"]: f["column_fwhm_nm"] for f in table.attrs["frames"]}
    assert is_blurred(widths[2], "MoS2")
    assert not any(is_blurred(widths[k], "MoS2") for k in (0, 1, 3))


def test_a_blurred_image_is_not_taken_for_an_inverted_one():
    """Blur makes the pixel values symmetric: a blurred WSe2 field (skewness −0.1) was told it
    "looks inverted … a bright-field or ABF image?" after the blur sentence."""
    seed = 993000
    rng = np.random.default_rng(seed)
    params = MicroscopeParams.random(rng, "WSe2", probe_fwhm_nm=0.16,
                                     dose_e_per_A2=10 ** rng.uniform(5.0, 6.0))
    px = float(rng.uniform(0.010, 0.014))
    sim = simulate_image("WSe2", 384, px, params=params, seed=seed)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        table = detect(sim.image, pixel_size_nm=px, material="WSe2", device="cpu")
    said = table.attrs["fit_messages"]
    assert said[0].startswith(BLUR_NOTE)
    assert not any("looks inverted" in m for m in said)


def test_blurred_metal_columns_are_not_read_for_a_mow_alloy():
    """A frame out of focus (a trial's movie) was told its Mo columns take two levels "as W
    columns are in a Mo/W alloy" and of an antisite: blur smears the levels into each other."""
    movie = simulate_movie("MoS2", 256, n_frames=1, pixel_size_nm=PX, seed=3)
    frame = gaussian_filter(movie.frames[0].astype(np.float32), 0.2 / PX / 2.355)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect_frames(frame[None], PX, "MoS2", device="cpu"))
    assert result["lattices"][0].metal_alloy is not None  # (the lattice reads two levels)
    said = result["defects"].attrs["messages"]
    assert said[0].startswith(BLUR_NOTE)
    assert not any("two levels" in m or "Mo/W alloy" in m or "antisite" in m for m in said)
