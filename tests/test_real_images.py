"""Physics checks of the bundled models on the real Nion images (WS2 partly / fully converted to Se).

Skipped cleanly without ``ATOMDEFECT_SHARED_DATA`` (``real/``), and per check when the bundled
model it needs is not there yet.

* ``Partially_converted_*`` analysed as WS2 with substituent Se: the mean normalised intensity of
  the chalcogen columns of each class (classes with at least ``MIN_SITES`` columns in the image)
  rises with what the column holds, ``V_S2 < V_S < pristine < Se_S < Se2_S2`` (HAADF signal grows
  with the atomic number: nothing, one S, two S, S + Se, two Se). Two neighbouring classes whose
  means differ by less than :data:`TIED_WITHIN_SE` standard errors of the difference are tied,
  not out of order (on one image `V_S2` and `V_S`, 7 and 16 columns at a low signal, differ by
  0.005 with a standard error of 0.03: either order is noise).
* ``Fully_converted_*``: the model-fit check of a WS2 analysis proposes WSe2, and analysed as WS2
  with Se at least 85 % of its chalcogen columns hold Se (``Se_S`` or ``Se2_S2``), with
  ``Se2_S2`` a minority: measured against its own W columns (``benchmarks/bench_real_composition.py``,
  no model involved), the image's typical chalcogen column sits at the S + Se level of the
  partly converted images of the same microscope, a quarter of them at the Se2 level and under a
  tenth at the S2 level — an S/Se alloy well past half Se, not a uniform WSe2 layer. The issue's
  first reading (≥ 90 % ``Se2_S2``, or ≥ 90 % pristine as WSe2) is kept as ``xfail`` with that
  evidence.
"""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.shared_data

MIN_SITES = 5
#: Standard errors of the difference within which two class means count as tied.
TIED_WITHIN_SE = 2.0
#: Chalcogen-column classes of WS2 with Se, from the least to the most signal.
WS2_SE_ORDER = ("V_S2", "V_S", "chalcogen", "Se_S", "Se2_S2")


def bench():
    """``benchmarks/bench_materials.py`` (the column-intensity read-out shared with the docs)."""
    from tests.test_materials_heldout import bench as load

    return load()


def real_images(shared_data: Path, prefix: str) -> list[Path]:
    files = sorted((shared_data / "real").glob(f"{prefix}*.tif"))
    if not files:
        pytest.skip(f"no {prefix}* images in {shared_data / 'real'}")
    return files


def model_with(material: str, substituent: str | None = None):
    """The bundled default model of ``material``, or skip with the reason it cannot be used."""
    from napari_atomdefect.core.models.registry import (
        default_model_name,
        model_material,
        model_substituents,
        resolve_model,
    )

    info = resolve_model(default_model_name(material), material)
    if model_material(info) != material:
        pytest.skip(f"no bundled model for {material} yet (default {info.name} is "
                    f"{model_material(info)}'s)")
    if substituent and substituent not in model_substituents(info):
        pytest.skip(f"{info.name} was not trained for {substituent}")
    return info


@cache
def analysed(path: str, material: str, substituents: str | None) -> tuple[dict, np.ndarray]:
    """The final ``iter_detect`` item of a real image (file calibration checked against the
    lattice), and the frame it analysed; warnings (calibration, fit) are recorded, not shown."""
    from napari_atomdefect.core.detect.detect import iter_detect
    from napari_atomdefect.core.io.image import read_image
    from napari_atomdefect.core.progress import run_to_end

    img = read_image(path)
    arr = np.asarray(img.data, np.float32)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = run_to_end(iter_detect(arr, img.pixel_size_nm, material, None, "cpu",
                                        calibration="file", substituents=substituents))
    return result, arr


def class_means(path: Path, material: str, substituents: str | None
                ) -> dict[str, tuple[float, int, float]]:
    """Mean normalised intensity, count and standard error of the mean of the chalcogen columns
    of each class."""
    result, arr = analysed(str(path), material, substituents)
    cols = bench().chalcogen_intensities(arr, result)
    return {str(c): (float(g.intensity.mean()), len(g),
                     float(g.intensity.std(ddof=1) / np.sqrt(len(g))) if len(g) > 1 else np.inf)
            for c, g in cols.groupby("class")}


def chalcogen_fraction(path: Path, material: str, substituents: str | None, name: str) -> float:
    """Fraction of the chalcogen columns called ``name``."""
    result, _ = analysed(str(path), material, substituents)
    sites = result["sites"]
    chalc = sites[sites["sublattice"] == "chalcogen"]
    return float((chalc["class"] == name).mean())


def test_partly_converted_ws2_column_intensity_follows_content(shared_data):
    model_with("WS2", "Se")
    for path in real_images(shared_data, "Partially_converted"):
        means = class_means(path, "WS2", "Se")
        used = [c for c in WS2_SE_ORDER if means.get(c, (0, 0, 0))[1] >= MIN_SITES]
        assert "chalcogen" in used, (path.name, means)
        for lo, hi in zip(used, used[1:], strict=False):
            (m_lo, _, se_lo), (m_hi, _, se_hi) = means[lo], means[hi]
            assert m_lo < m_hi + TIED_WITHIN_SE * np.hypot(se_lo, se_hi), (
                f"{path.name}: {lo} above {hi}: "
                f"{[(c, round(means[c][0], 3), means[c][1]) for c in used]}")
        # The vacancies sit below the host column and the substituted columns above it, each
        # clearly (not within the noise).
        host = means["chalcogen"]
        for c in used:
            if c != "chalcogen":
                m, _, se = means[c]
                below = WS2_SE_ORDER.index(c) < WS2_SE_ORDER.index("chalcogen")
                assert (m < host[0]) == below and abs(m - host[0]) > 3 * np.hypot(se, host[2]), (
                    path.name, c, means)


def test_fully_converted_fit_check_proposes_wse2(shared_data):
    model_with("WS2")
    for path in real_images(shared_data, "Fully_converted"):
        result, _ = analysed(str(path), "WS2", None)
        assert result["fit"].proposed == "WSe2", result["fit_messages"]


def test_fully_converted_analysed_as_ws2_with_se_holds_se_nearly_everywhere(shared_data):
    """The round-5 (host-unit) WS2 detector: Se in 91 % of the columns (Se_S 62 %, Se2_S2 28 %),
    as the W-relative levels say (the round-3 detector: 80 %, xfail until the sixth session)."""
    model_with("WS2", "Se")
    for path in real_images(shared_data, "Fully_converted"):
        with_se = (chalcogen_fraction(path, "WS2", "Se", "Se_S")
                   + chalcogen_fraction(path, "WS2", "Se", "Se2_S2"))
        both = chalcogen_fraction(path, "WS2", "Se", "Se2_S2")
        assert with_se >= 0.85, f"{path.name}: {with_se:.1%} of chalcogen columns hold Se"
        assert 0.1 <= both <= 0.5, f"{path.name}: {both:.1%} of chalcogen columns Se2_S2"


def test_fully_converted_analysed_as_wse2_with_s_is_not_told_to_add_te(shared_data):
    """An S/Se alloy with no Te: analysed as WSe2 with S, nothing may tell the user to add Te
    (its three rungs, S2 / S + Se / Se2, have the spacing of Se + S / Se2 / Se + Te; a stricter
    ordered-layer reading of the twelfth session read it as WSe2 with Te and was not adopted)."""
    model_with("WSe2", "S")
    for path in real_images(shared_data, "Fully_converted"):
        result, _ = analysed(str(path), "WSe2", "S")
        assert not any("add Te" in m for m in result["fit_messages"]), result["fit_messages"]


def test_fully_converted_analysed_as_wse2_with_s_says_v_se_and_s_se_overlap(shared_data):
    """At this microscope a single Se and an S beside a Se read nearly alike: the WSe2 detector
    splits the S + Se columns between ``S_Se`` and ``V_Se`` (a sixth of the columns ``V_Se``, no
    believable vacancy density), with many calls nearly as likely the other — the user is told
    the split is uncertain. Analysed as WS2 with Se (no such pair) nothing is said."""
    model_with("WSe2", "S")
    model_with("WS2", "Se")
    for path in real_images(shared_data, "Fully_converted"):
        result, _ = analysed(str(path), "WSe2", "S")
        said = [m for m in result["fit_messages"] if "overlap in this image" in m]
        assert said and "S_Se" in said[0] and "V_Se" in said[0], result["fit_messages"]
        result, _ = analysed(str(path), "WS2", "Se")
        assert not any("overlap in this image" in m for m in result["fit_messages"]), (
            result["fit_messages"])


def test_a_layer_read_mostly_as_the_partner_chalcogen_is_sent_to_the_partner_host(shared_data):
    """Trial, twenty-fifth session: a partly converted WS2 image analysed as WSe2 with S read
    68 % S, found a quarter of the defects it finds as WS2 with Se (one S left beside a vacancy
    is no class of a selenide) and said nothing. A layer whose chalcogen atoms read mostly as
    the partner is now told to analyse it as the partner host; the fully converted image
    (60 % Se, near an equal alloy) analysed as WS2 with Se is asked to be analysed as WSe2 with
    S as well (told to switch, a new user got a worse reading there and nothing sent them
    back)."""
    from napari_atomdefect.core.detect.alloy_calibration import partner_share
    from napari_atomdefect.core.detect.image_fit import PARTNER_MAJORITY_SHARE

    model_with("WSe2", "S")
    model_with("WS2", "Se")
    told = 0
    for path in real_images(shared_data, "Partially_converted"):
        result, _ = analysed(str(path), "WSe2", "S")
        said = [m for m in result["fit_messages"] if "analyse it as WS2 with Se" in m]
        if partner_share(result["sites"], "WSe2") > PARTNER_MAJORITY_SHARE:
            assert said, result["fit_messages"]
            told += 1
        else:
            assert not said
    assert told >= 1
    for path in real_images(shared_data, "Fully_converted"):
        result, _ = analysed(str(path), "WS2", "Se")
        assert any("analyse it as WSe2 with S as well and compare" in m
                   for m in result["fit_messages"]), result["fit_messages"]
        # ... and analysed as WSe2 with S (its reading: 31 % S), the other reading is named
        # too (a trial got five times the vacancies with nothing said of the WS2 reading)
        result, _ = analysed(str(path), "WSe2", "S")
        assert any("compare the vacancy counts with a run as WS2 with Se" in m
                   for m in result["fit_messages"]), result["fit_messages"]


def test_vacancy_calls_crowded_along_the_first_scan_lines_are_said(shared_data):
    """Trial, twenty-ninth session: image 12 analysed as WS2 with Se has most of its vacancy
    calls in the top fifth of the field (the scan's first lines), and nothing said so; it is
    said now, and not on the other partly converted images, whose calls spread."""
    model_with("WS2", "Se")
    for path in real_images(shared_data, "Partially_converted"):
        result, _ = analysed(str(path), "WS2", "Se")
        said = [m for m in result["fit_messages"] if "vacancy calls lie along the" in m]
        if "HAADF__12" in path.name:
            assert said and "top edge" in said[0], result["fit_messages"]
        else:
            assert not said, said


def test_a_vacuum_hole_leaves_the_lattice_and_its_calibration_alone(shared_data):
    """A real image with a hole cut into it (vacuum: dark noise in a disc 0.3 of the field
    across). The hole's edge puts side lobes around every spot of the spectrum; a weak hexagon
    of them a little nearer the origin than the lattice's had been taken for the first order
    (the lowest-frequency hexagon of comparable strength): the pixel size came out 3 % off, the
    lattice "distorted by 9 %" and eight false metal vacancies were called. The lattice is now
    the intact image's, and no site is called in the hole."""
    from napari_atomdefect.core.io.image import read_image
    from napari_atomdefect.core.lattice.grains import find_grains

    path = real_images(shared_data, "Partially_converted")[-1]
    img = np.asarray(read_image(path).data, np.float32)
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    k = w / 1024  # (the 1024² image's hole; a few pixels elsewhere and the lobes were weaker)
    hole = (yy - 300 * k) ** 2 + (xx - 700 * k) ** 2 < (150 * k) ** 2
    holed = img.copy()
    holed[hole] = np.random.default_rng(0).normal(np.percentile(img, 5), 2, int(hole.sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        intact = find_grains(img, "WS2", None, calibration="lattice", substituents="Se,O")[0]
        cut = find_grains(holed, "WS2", None, calibration="lattice", substituents="Se,O")[0]
    assert cut.pixel_size_nm == pytest.approx(intact.pixel_size_nm, rel=0.003)
    assert not any("distorted" in m for m in cut.messages), cut.messages
    inside = hole[np.clip(np.round(cut.metal_sites_px[:, 0]).astype(int), 0, h - 1),
                  np.clip(np.round(cut.metal_sites_px[:, 1]).astype(int), 0, w - 1)]
    assert not inside.any()


_NOT_UNIFORM = ("measured against its W columns (benchmarks/bench_real_composition.py) the image "
                "is an S/Se alloy: 65 % of its chalcogen columns at the S + Se level of the "
                "partly converted images, 26 % at Se2, 9 % at S2")


@pytest.mark.xfail(strict=False, reason=_NOT_UNIFORM)
def test_fully_converted_analysed_as_wse2_is_pristine(shared_data):
    model_with("WSe2")
    for path in real_images(shared_data, "Fully_converted"):
        frac = chalcogen_fraction(path, "WSe2", None, "chalcogen")
        assert frac >= 0.9, f"{path.name}: {frac:.1%} of chalcogen columns pristine"


@pytest.mark.xfail(strict=False, reason=_NOT_UNIFORM)
def test_fully_converted_analysed_as_ws2_with_se_is_se2_s2(shared_data):
    model_with("WS2", "Se")
    for path in real_images(shared_data, "Fully_converted"):
        frac = chalcogen_fraction(path, "WS2", "Se", "Se2_S2")
        assert frac >= 0.9, f"{path.name}: {frac:.1%} of chalcogen columns Se2_S2"


def test_a_converted_w_layer_analysed_as_mo_is_told_its_host_columns_are_ws2s(shared_data):
    """Trial, thirty-seventh session: the fully converted WS2 layer analysed as MoS2 with O, Se
    read a host-column contrast of 6.3 — outside MoS2's range — and no other host was named
    (the ladder read its median column as substituted, so the median contrast, between the Mo
    hosts', proposed nothing)."""
    model_with("MoS2", "Se")
    for path in real_images(shared_data, "Fully_converted"):
        result, _ = analysed(str(path), "MoS2", "O,Se")
        said = [m for m in result["fit_messages"] if "outside what the MoS2 model" in m]
        assert said and said[0].endswith("the host columns' contrast is WS2's: if the metal is "
                                         "W, analyse it as WS2 with O, Se."), said


def test_a_crop_of_a_real_alloy_reads_its_median_column_as_the_whole_field_does(shared_data):
    """A new user's trial (thirty-eighth session): the Z-contrast ladder of partly converted real
    image 10 (WS2 + O, Se) read its median column as S + Se (37 % Se) on the whole field and as
    a pristine S2 column (18 % Se, confidence 0.97; its S2 columns called V_S/O_S) on the field
    cropped by 8 px, with nothing said (``ladder.POINT_PRIOR_COLUMNS``)."""
    import tifffile

    from napari_atomdefect.core.detect.detect import detect

    [path] = [p for p in real_images(shared_data, "Partially_converted") if "_10_" in p.name]
    image = tifffile.imread(path).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = detect(image, 0.00859, "WS2", substituents="O,Se")
        crop = detect(image[8:1016, 8:1016], 0.00859, "WS2", substituents="O,Se")
    assert crop.attrs["ladder"]["median_class"] == whole.attrs["ladder"]["median_class"]
