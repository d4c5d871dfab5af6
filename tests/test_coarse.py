"""Coarsely sampled images (a survey at a low magnification) are read on the image enlarged by
cubic interpolation, their calls mapped back to the image's pixels, and it is said."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_atomdefect.core.detect.coarse as coarse
from napari_atomdefect.core.detect.coarse import (
    coarse_message,
    enlarged,
    enlargement,
    from_enlarged,
)
from napari_atomdefect.core.detect.evaluate import score
from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

PX = 0.05  # nm/px: a WS2 lattice constant over 6.3 pixels


@pytest.fixture(scope="module")
def ws2_survey():
    return simulate_image("WS2", 320, PX, MicroscopeParams(dose_e_per_A2=5e5), seed=11)


def test_the_factor_brings_a_lattice_constant_to_the_read_sampling():
    assert enlargement(26.0, (1024, 1024)) == 1 and enlargement(12.0, (1024, 1024)) == 1
    assert enlargement(9.9, (1024, 1024)) == 2 and enlargement(6.3, (1024, 1024)) == 3
    assert enlargement(6.3, (4096, 4096)) == 1  # (too large to enlarge: read as it is)
    assert coarse_message(26.0, 0.012, 1) is None
    assert "enlarged 3×" in coarse_message(6.3, PX, 3)
    assert "too large to be enlarged" in coarse_message(6.3, PX, 1)
    p = np.array([[0.0, 0.0], [10.25, 3.5]])
    np.testing.assert_allclose(from_enlarged((p + 0.5) * 3 - 0.5, 3), p)


def test_the_enlarged_lattice_sits_on_the_same_columns(ws2_survey):
    from napari_atomdefect.core.io.validate import as_analysis_image
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.sampling import sample_bilinear

    arr = as_analysis_image(ws2_survey.image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = find_lattice(arr, "WS2", pixel_size_nm=PX)
    big, big_lattice = enlarged(arr, lattice, 3)
    assert big.shape == (960, 960) and big_lattice.a_px == pytest.approx(3 * lattice.a_px)
    assert big_lattice.pixel_size_nm == pytest.approx(PX / 3)
    # the metal columns (the brightest) are where both lattices put them
    pts, big_pts = lattice.metal_sites_px, big_lattice.metal_sites_px
    inside = ((pts > 3) & (pts < 316)).all(axis=1)
    small = sample_bilinear(arr, pts[inside, 0], pts[inside, 1])
    large = sample_bilinear(big, big_pts[inside, 0], big_pts[inside, 1])
    assert np.corrcoef(small, large)[0, 1] > 0.85  # (bilinear and cubic differ at 6 px)
    assert np.median(large) > np.percentile(big, 90)
    # its distortion maps read through the enlargement (fine-tuning cuts cells by them)
    np.testing.assert_allclose(big_lattice.fractional((pts[inside] + 0.5) * 3 - 0.5),
                               lattice.fractional(pts[inside]), atol=1e-9)


def test_a_survey_image_is_read_enlarged_and_its_calls_mapped_back(ws2_survey, monkeypatch):
    from napari_atomdefect.core.detect.detect import detect

    def pooled(table):
        s = score(table, ws2_survey.defects, 0.08 / PX)
        tot = s.loc[[c for c in s.index if "|" not in c], ["tp", "fp", "fn"]].sum()
        return s, 2 * tot.tp / (2 * tot.tp + tot.fp + tot.fn)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = detect(ws2_survey.image, PX, "WS2", device="cpu", substituents="O,Se")
    s, f1 = pooled(table)
    assert f1 > 0.95 and s.loc["O_S", "f1"] > 0.9 and s.loc["V_S", "f1"] > 0.9
    assert table.attrs["pixel_size_nm"] == pytest.approx(PX, rel=0.02)  # the image's pixels
    assert any("enlarged 3×" in m for m in table.attrs["fit_messages"])
    # read as it is (no enlargement), the single vacancy and O were mixed up
    monkeypatch.setattr(coarse, "COARSEST_READ_A_PX", 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = detect(ws2_survey.image, PX, "WS2", device="cpu", substituents="O,Se")
    s_plain, f1_plain = pooled(plain)
    assert s_plain.loc["O_S", "f1"] < 0.5 and f1_plain < f1 - 0.2


def test_the_model_view_of_a_coarse_image_is_translated_enlarged(ws2_survey):
    """The model view translates the cells the detector reads: of a survey, those of the image
    enlarged (binned back to its pixels, so the layer overlays the image); without the
    enlargement (a model fine-tuned before it) the cells are cut from the coarse pixels."""
    import torch

    from napari_atomdefect.core.cells.tiles import TileSpec
    from napari_atomdefect.core.detect.model_view import iter_model_view
    from napari_atomdefect.core.io.validate import as_analysis_image
    from napari_atomdefect.core.lattice.lattice import find_lattice
    from napari_atomdefect.core.models.registry import load_noise_generators, resolve_model
    from napari_atomdefect.core.progress import run_to_end
    from napari_atomdefect.core.sampling import sample_bilinear

    arr = as_analysis_image(ws2_survey.image[:160, :160])  # (a part: the translation's time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = find_lattice(arr, "WS2", pixel_size_nm=PX)
    info = resolve_model(None, "WS2")
    _, gen_ba = load_noise_generators(info, torch.device("cpu"))
    spec = TileSpec(**info.card["noise"].get("tile", {}))
    views = {e: run_to_end(iter_model_view(arr, lattice, gen_ba, torch.device("cpu"), spec,
                                           enlarge=e))["image"]
             for e in (True, False)}
    for view in views.values():
        assert view.shape == arr.shape and np.isfinite(view).all()
    # both put the metal columns where the image has them
    pts = lattice.metal_sites_px
    inside = ((pts > 8) & (pts < 150)).all(axis=1)
    for view in views.values():
        on = sample_bilinear(view, pts[inside, 0], pts[inside, 1])
        assert np.median(on) > np.percentile(view, 85)
    assert not np.allclose(views[True], views[False])
