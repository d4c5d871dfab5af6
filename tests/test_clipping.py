"""Intensities cut at an image's ends (a saturated detector, a stretched 8-bit export) are said:
measured at the lattice's columns and hollow sites, silent where nothing read changes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_atomdefect.core.detect.clipping import (
    Clipping,
    clipped_columns,
    clipping_message,
)
from napari_atomdefect.core.io.validate import as_analysis_image
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

PX = 0.014


def export_8bit(image: np.ndarray, cut_low_pct: float = 0.0, cut_high_pct: float = 0.0
                ) -> np.ndarray:
    """``image`` saved as 8-bit with its contrast stretched: the darkest and brightest given
    percentages of the pixels cut at 0 and 255 (as a viewer's auto contrast does)."""
    lo, hi = np.percentile(image, [cut_low_pct, 100 - cut_high_pct])
    return np.clip(np.round((image - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mose2():
    """A MoSe2 field: its Se2 columns are brighter than its Mo columns."""
    return simulate_image("MoSe2", 320, PX, MicroscopeParams(dose_e_per_A2=5e5), seed=4)


def _clipping(image: np.ndarray, material: str) -> Clipping:
    arr = as_analysis_image(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = find_lattice(arr, material, pixel_size_nm=PX)
    return clipped_columns(arr, lattice)


def test_uncut_and_mildly_stretched_images_are_silent(mose2):
    for image in (mose2.image, export_8bit(mose2.image), export_8bit(mose2.image, 0.175, 0.175)):
        clip = _clipping(image, "MoSe2")
        assert clip.chalcogen_cut < 0.05 and clip.metal_cut < 0.5 and clip.hollow_cut < 0.8
        assert clipping_message(clip, "Mo") is None


def test_cut_brightest_columns_are_said(mose2):
    clip = _clipping(export_8bit(mose2.image, cut_high_pct=3.0), "MoSe2")
    assert clip.top == 255 and clip.chalcogen_cut > 0.2
    message = clipping_message(clip, "Mo")
    assert message is not None and "of the chalcogen columns are cut at the image's brightest " \
        "value (255)" in message and message.count(".") == 1


def test_cut_dark_end_is_said():
    ws2 = simulate_image("WS2", 320, PX, MicroscopeParams(dose_e_per_A2=5e5), seed=5)
    clip = _clipping(export_8bit(ws2.image, cut_low_pct=25.0), "WS2")
    assert clip.bottom == 0 and clip.hollow_cut >= 0.8
    message = clipping_message(clip, "W")
    assert "pixels between the columns sit at its darkest value (0)" in message
    assert "vacancies most" in message


def test_metal_columns_cut_alone_say_the_contrast():
    clip = Clipping(top=255.0, bottom=0.0, chalcogen_cut=0.0, metal_cut=0.9, hollow_cut=0.0)
    message = clipping_message(clip, "W")
    assert "90% of the W columns are cut" in message and "W/chalcogen contrast reads low" in message


def test_detection_says_it_first(mose2):
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.image_fit import ModelFitWarning

    cut = export_8bit(mose2.image, cut_high_pct=3.0)
    with pytest.warns(ModelFitWarning, match="intensities are cut"):
        table = detect(cut, PX, "MoSe2", device="cpu")
    assert table.attrs["fit_messages"][0].startswith("The image's intensities are cut")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = detect(mose2.image, PX, "MoSe2", device="cpu")
    assert not any("intensities are cut" in str(w.message) for w in caught)
    assert not any("intensities are cut" in m for m in table.attrs["fit_messages"])
