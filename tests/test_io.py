"""Reader: calibrated round trips through real writers, and every kind of bad file."""

import json
from unittest import mock

import numpy as np
import pytest
import tifffile

from napari_atomdefect.core.errors import ImageReadError
from napari_atomdefect.core.io.image import ReaderWarning, read_image, unit_to_nm, write_tiff


@pytest.fixture
def image():
    return np.random.default_rng(0).poisson(20, (64, 80)).astype(np.float32)


def test_imagej_tiff_round_trip(tmp_path, image):
    path = tmp_path / "a.tif"
    write_tiff(path, image, 0.0123)
    img = read_image(path)
    assert img.calibration == "file" and img.pixel_size_nm == pytest.approx(0.0123, rel=1e-6)
    np.testing.assert_array_equal(img.data, image)
    assert img.name == "a" and not img.is_stack


def test_imagej_tiff_in_angstrom_and_micron(tmp_path, image):
    for unit, value, expected in (("A", 0.15, 0.015), ("\\u00B5m", 2e-5, 0.02), ("um", 1e-5, 0.01)):
        path = tmp_path / "u.tif"
        tifffile.imwrite(path, image, imagej=True, resolution=(1 / value, 1 / value),
                         metadata={"unit": unit})
        assert read_image(path).pixel_size_nm == pytest.approx(expected, rel=1e-6)


def test_ome_tiff(tmp_path, image):
    path = tmp_path / "o.ome.tif"
    tifffile.imwrite(path, image, ome=True,
                     metadata={"PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "Å",
                               "PhysicalSizeY": 0.5, "PhysicalSizeYUnit": "Å"})
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(0.05)


def test_plain_tiff_has_no_calibration(tmp_path, image):
    path = tmp_path / "p.tiff"
    tifffile.imwrite(path, image)
    img = read_image(path)
    assert img.pixel_size_nm is None and img.calibration == "none"
    assert any("calibrated from the lattice" in m for m in img.messages)


def test_emd_round_trip_with_rosettasciio(tmp_path, image):
    from rsciio.emd import file_writer

    path = tmp_path / "x.emd"
    axes = [{"name": "y", "size": image.shape[0], "scale": 0.21, "offset": 0.0, "units": "Å",
             "navigate": False, "index_in_array": 0},
            {"name": "x", "size": image.shape[1], "scale": 0.21, "offset": 0.0, "units": "Å",
             "navigate": False, "index_in_array": 1}]
    file_writer(str(path), {"data": image, "axes": axes,
                            "metadata": {"General": {"title": "HAADF"}, "Signal": {}},
                            "original_metadata": {}})
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(0.021, rel=1e-6)
    np.testing.assert_allclose(img.data, image)
    json.dumps(img.metadata)  # metadata stays JSON-friendly


def _dm_signal(data, scale, units, title="HAADF"):
    return {"data": data, "axes": [
        {"name": "y", "size": data.shape[0], "scale": scale, "offset": 0, "units": units,
         "navigate": False},
        {"name": "x", "size": data.shape[1], "scale": scale, "offset": 0, "units": units,
         "navigate": False}],
        "metadata": {"General": {"title": title}}, "original_metadata": {"ImageList": {"x": 1}}}


@pytest.mark.parametrize("ext", [".dm3", ".dm4", ".ser"])
def test_rsciio_formats_use_signal_axes(tmp_path, image, ext):
    """DM and TIA files cannot be written here: check the adapter on rosettasciio's output."""
    path = tmp_path / f"d{ext}"
    path.write_bytes(b"\x00" * 16)
    plugin = "digitalmicrograph" if ext.startswith(".dm") else "tia"
    spectrum = {"data": np.ones(100), "axes": [{"name": "E", "size": 100, "scale": 1,
                                                 "units": "eV", "navigate": False}],
                "metadata": {"General": {"title": "EELS"}}}
    with mock.patch(f"rsciio.{plugin}.file_reader",
                    return_value=[spectrum, _dm_signal(image, 1.5, "pm", "BF"),
                                  _dm_signal(image * 2, 0.012, "nm", "HAADF")]):
        img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(0.012)
    np.testing.assert_allclose(img.data, image * 2)  # the HAADF signal is chosen


def test_npy_and_png(tmp_path, image):
    np.save(tmp_path / "a.npy", image)
    img = read_image(tmp_path / "a.npy")
    np.testing.assert_array_equal(img.data, image) and img.pixel_size_nm is None
    from skimage.io import imsave

    grey = (image / image.max() * 255).astype(np.uint8)
    imsave(tmp_path / "g.png", grey, check_contrast=False)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").data, grey)


def test_rgb_becomes_grey_with_warning(tmp_path, image):
    from skimage.io import imsave

    g = (image / image.max() * 255).astype(np.uint8)
    rgb = np.dstack([g, g // 2, g // 3])
    imsave(tmp_path / "c.png", rgb, check_contrast=False)
    with pytest.warns(ReaderWarning, match="greyscale"):
        img = read_image(tmp_path / "c.png")
    assert img.data.shape == g.shape
    assert any("greyscale" in m for m in img.messages)


def test_stack_is_kept(tmp_path, image):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, np.stack([image, image + 1, image + 2]), imagej=True,
                     resolution=(100, 100), metadata={"unit": "nm", "axes": "ZYX"})
    img = read_image(path)
    assert img.is_stack and img.data.shape == (3, 64, 80) and img.pixel_size_nm == 0.01
    assert any("stack of 3 frames" in m for m in img.messages)


def test_nan_pixels_reported(tmp_path, image):
    image[3, 3] = np.nan
    np.save(tmp_path / "n.npy", image)
    assert any("NaN" in m for m in read_image(tmp_path / "n.npy").messages)


@pytest.mark.parametrize("ext", [".tif", ".npy", ".png", ".emd", ".dm4"])
def test_truncated_and_garbage_files(tmp_path, image, ext):
    good = tmp_path / f"good{ext}"
    if ext == ".tif":
        write_tiff(good, image, 0.01)
    elif ext == ".npy":
        np.save(good, image)
    elif ext == ".png":
        from skimage.io import imsave

        imsave(good, image.astype(np.uint8), check_contrast=False)
    else:
        good.write_bytes(b"not really a microscope file" * 50)
    bad = tmp_path / f"bad{ext}"
    bad.write_bytes(good.read_bytes()[: max(8, good.stat().st_size // 3)])
    with pytest.raises(ImageReadError, match="could not be read|holds no"):
        read_image(bad)


def test_a_text_file_named_png_is_told_without_install_advice(tmp_path):
    """Trial, thirty-seventh session: a text file renamed .png was told imageio's "pip install
    imageio[pyav] ..." (it needs no package: it is no image), with a doubled backtick."""
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "bad.png")
    said = str(info.value)
    assert said.startswith("bad.png could not be read as a .png image") and said.endswith(
        "(the reader says: it found nothing in the file it could decode as an image)")
    assert "pip" not in said and "`" not in said


def test_missing_empty_unsupported(tmp_path):
    with pytest.raises(ImageReadError, match="No such file"):
        read_image(tmp_path / "nope.tif")
    (tmp_path / "e.tif").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "e.tif")
    (tmp_path / "x.docx").write_bytes(b"abc")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(tmp_path / "x.docx")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_object_arrays_never_unpickled(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "o.npy")


def test_units():
    assert unit_to_nm("Å") == 0.1 and unit_to_nm("nm") == 1.0 and unit_to_nm("µm") == 1000
    assert unit_to_nm("<undefined>") is None and unit_to_nm("px") is None


def test_write_tiff_is_atomic(tmp_path, image):
    path = tmp_path / "w.tif"
    write_tiff(path, image, 0.01)
    with mock.patch("tifffile.imwrite", side_effect=OSError("disk full")):
        with pytest.raises(OSError):
            write_tiff(path, image * 0, 0.01)
    np.testing.assert_array_equal(read_image(path).data, image)  # old file intact
    assert not list(tmp_path.glob("*.part"))  # and no half-written file left behind


def test_analysis_image_is_prepared_once():
    """Detection prepares the image once; the lattice search gets the same array back, and
    nobody can change a prepared array behind the cache's back."""
    from napari_atomdefect.core.io.validate import as_analysis_image

    raw = np.random.default_rng(0).normal(size=(64, 64))
    raw[3, 3] = np.nan
    prepared = as_analysis_image(raw)
    assert as_analysis_image(prepared) is prepared
    assert np.isfinite(prepared).all() and prepared.dtype == np.float32
    with pytest.raises(ValueError):
        prepared[0, 0] = 1.0
    assert as_analysis_image(raw) is not prepared  # a raw array is prepared anew


@pytest.mark.parametrize("kind", ["normal", "few_levels", "sorted", "hot_pixels", "tiny"])
def test_tail_percentiles_equal_numpy(kind):
    """The outlier clip's percentiles read from the tails only are numpy's, for values of every
    shape of distribution (ties, sorted input, a few huge outliers, fewer values than the
    sample step)."""
    from napari_atomdefect.core.io.validate import tail_percentiles

    rng = np.random.default_rng(7)
    draws = {"normal": lambda n: rng.normal(size=n),
             "few_levels": lambda n: rng.integers(0, 4, n).astype(float),
             "sorted": lambda n: np.sort(rng.exponential(size=n)),
             "hot_pixels": lambda n: np.where(rng.random(n) < 0.001, 3e38, rng.random(n)),
             "tiny": lambda n: rng.poisson(2, n) * 1e-7}
    for n in (3, 40, 1000, 123_457):
        x = draws[kind](n)
        for q in ((0.1, 99.9), (0.0, 100.0), (2.5, 97.5)):
            np.testing.assert_allclose(tail_percentiles(x, q), np.percentile(x, q),
                                       rtol=1e-13, atol=0)
