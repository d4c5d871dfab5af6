"""Nion Swift (.ndata, .h5), MRC and HyperSpy files: written as those programs write them, read
back with their calibration, and detected end to end."""

import io
import json
import zipfile

import numpy as np
import pytest

from napari_atomdefect.core.errors import ImageReadError
from napari_atomdefect.core.io.image import read_image


@pytest.fixture
def image():
    return np.random.default_rng(1).poisson(30, (64, 80)).astype(np.float32)


def _calibrations(shape, scale, units):
    return [{"offset": 0.0, "scale": scale, "units": units} for _ in shape]


def write_ndata(path, data, metadata):
    """A Nion Swift .ndata file: an uncompressed zip of data.npy and metadata.json."""
    buffer = io.BytesIO()
    np.save(buffer, data)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("data.npy", buffer.getvalue())
        archive.writestr("metadata.json", json.dumps(metadata))


def write_nion_h5(path, data, metadata):
    """A Nion Swift .h5 file: dataset ``data`` with the metadata as JSON attribute ``properties``."""
    import h5py

    with h5py.File(path, "w") as h5:
        h5.create_dataset("data", data=data).attrs["properties"] = json.dumps(metadata)


def write_mrc(path, data, pixel_size_angstrom):
    """An MRC 2014 file (mode 2, float32) whose cell gives the pixel size in Å."""
    ny, nx = data.shape
    header = bytearray(1024)
    header[0:16] = np.array([nx, ny, 1, 2], np.int32).tobytes()
    header[28:40] = np.array([nx, ny, 1], np.int32).tobytes()
    header[40:52] = np.array([nx * pixel_size_angstrom, ny * pixel_size_angstrom, 1.0],
                             np.float32).tobytes()
    header[64:76] = np.array([1, 2, 3], np.int32).tobytes()
    header[208:212] = b"MAP "
    header[212:214] = b"\x44\x44"
    path.write_bytes(bytes(header) + data.astype(np.float32).tobytes())


def test_ndata_with_its_calibration(tmp_path, image):
    path = tmp_path / "scan.ndata"
    write_ndata(path, image, {"dimensional_calibrations": _calibrations(image.shape, 0.0125, "nm"),
                              "properties": {"hardware_source": {"high_tension_v": 100000}}})
    img = read_image(path)
    assert img.calibration == "file" and img.pixel_size_nm == pytest.approx(0.0125)
    np.testing.assert_array_equal(img.data, image)
    assert img.metadata["nion"]["properties"]["hardware_source"]["high_tension_v"] == 100000
    json.dumps(img.metadata)


def test_ndata_of_older_swift_and_in_angstrom(tmp_path, image):
    path = tmp_path / "old.ndata"
    write_ndata(path, image, {"spatial_calibrations": _calibrations(image.shape, 0.15, "Å")})
    assert read_image(path).pixel_size_nm == pytest.approx(0.015)


def test_ndata_sequence_stays_a_stack(tmp_path, image):
    frames = np.stack([image, image + 1, image + 2])
    path = tmp_path / "movie.ndata"
    cal = [{"offset": 0.0, "scale": 1.0, "units": ""}] + _calibrations(image.shape, 0.011, "nm")
    write_ndata(path, frames, {"dimensional_calibrations": cal, "is_sequence": True})
    img = read_image(path)
    assert img.is_stack and img.data.shape == (3, 64, 80)
    assert img.pixel_size_nm == pytest.approx(0.011)


def test_uncalibrated_ndata_is_calibrated_from_the_lattice(tmp_path, image):
    path = tmp_path / "u.ndata"
    write_ndata(path, image, {"dimensional_calibrations": _calibrations(image.shape, 1.0, "")})
    img = read_image(path)
    assert img.pixel_size_nm is None and img.calibration == "none"
    assert any("calibrated from the lattice" in m for m in img.messages)


def test_nion_h5(tmp_path, image):
    path = tmp_path / "scan.h5"
    write_nion_h5(path, image, {"dimensional_calibrations": _calibrations(image.shape, 9.0, "pm")})
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(0.009)
    np.testing.assert_array_equal(img.data, image)


def test_other_hdf5_and_broken_nion_files_are_refused_plainly(tmp_path, image):
    import h5py

    from napari_atomdefect._reader import get_reader

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("images/frame", data=image)
    with pytest.raises(ImageReadError, match="not a Nion Swift data item"):
        read_image(other)
    assert get_reader(str(other)) is None  # left to other napari readers
    good = tmp_path / "good.ndata"
    write_ndata(good, image, {"dimensional_calibrations": _calibrations(image.shape, 0.01, "nm")})
    assert get_reader(str(good)) is not None
    nion_h5 = tmp_path / "nion.h5"
    write_nion_h5(nion_h5, image, {})
    assert get_reader(str(nion_h5)) is not None
    truncated = tmp_path / "cut.ndata"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(ImageReadError, match="could not be read"):
        read_image(truncated)
    no_data = tmp_path / "empty.ndata"
    with zipfile.ZipFile(no_data, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(ImageReadError, match="no data.npy"):
        read_image(no_data)
    cut_h5 = tmp_path / "cut.h5"
    cut_h5.write_bytes(nion_h5.read_bytes()[:500])
    with pytest.raises(ImageReadError, match="could not be read"):
        read_image(cut_h5)


def test_mrc_with_its_cell(tmp_path, image):
    path = tmp_path / "scan.mrc"
    write_mrc(path, image, 0.12)
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(0.012, rel=1e-5)
    np.testing.assert_allclose(img.data, image)


def test_hyperspy_file(tmp_path, image):
    from rsciio.hspy import file_writer

    path = tmp_path / "scan.hspy"
    axes = [{"name": n, "size": s, "scale": 0.13, "offset": 0.0, "units": "Å", "navigate": False}
            for n, s in zip("yx", image.shape, strict=True)]
    file_writer(str(path), {"data": image, "axes": axes,
                            "metadata": {"General": {"title": "HAADF"}, "Signal": {}},
                            "original_metadata": {}, "tmp_parameters": {},
                            "attributes": {"_lazy": False}, "learning_results": {}, "models": {},
                            "package_info": {"name": "test", "version": "0"}})
    img = read_image(path)
    assert img.pixel_size_nm == pytest.approx(0.013)
    np.testing.assert_allclose(img.data, image)


def test_detection_reads_a_nion_file_end_to_end(tmp_path):
    """A simulated WS2 scan saved as .ndata: the CLI takes its calibration from the file and
    finds the simulated vacancies."""
    from napari_atomdefect.cli import main
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("WS2", 320, 0.011, seed=5, defect_fractions={"V_S2": 0.04})
    path = tmp_path / "ws2.ndata"
    write_ndata(path, sim.image.astype(np.float32),
                {"dimensional_calibrations": _calibrations(sim.image.shape, 0.011, "nm")})
    out = tmp_path / "d.csv"
    assert main(["detect", str(path), "--material", "WS2", "--out", str(out)]) == 0
    import pandas as pd

    found = pd.read_csv(out, comment="#")
    true_v = int((sim.defects["class"] == "V_S2").sum())
    assert true_v >= 3
    assert (found["class"] == "V_S2").sum() == pytest.approx(true_v, abs=1)
    # the file's calibration, not the lattice's
    np.testing.assert_allclose(found["y_nm"] / found["y_px"], 0.011, rtol=1e-3)


def test_colour_pictures_are_left_to_napari_and_grey_ones_read_here(tmp_path):
    """A colour photograph or false-colour rendering (.png, .jpg, .tif, .npy with RGB channels
    that differ) is napari's own to open, in colour; a STEM image saved as RGB with equal
    channels, a greyscale file and a corrupt one (whose error this plugin says) are read here."""
    import tifffile
    from PIL import Image

    from napari_atomdefect._reader import get_reader

    rng = np.random.default_rng(5)
    grey = (rng.random((64, 80)) * 255).astype(np.uint8)
    colour = np.stack([grey, grey[::-1], np.roll(grey, 7, axis=1)], axis=-1)
    as_rgb = np.stack([grey] * 3, axis=-1)
    for name, data in (("colour", colour), ("as_rgb", as_rgb), ("grey", grey)):
        Image.fromarray(data).save(tmp_path / f"{name}.png")
        Image.fromarray(data).save(tmp_path / f"{name}.jpg", quality=95)
        tifffile.imwrite(tmp_path / f"{name}.tif", data,
                         photometric="rgb" if data.ndim == 3 else "minisblack")
        np.save(tmp_path / f"{name}.npy", data)
    for ext in ("png", "jpg", "tif", "npy"):
        assert get_reader(str(tmp_path / f"colour.{ext}")) is None, ext
        assert get_reader(str(tmp_path / f"grey.{ext}")) is not None, ext
    for ext in ("png", "jpg", "tif", "npy"):  # (a JPEG's compression tints them a little)
        assert get_reader(str(tmp_path / f"as_rgb.{ext}")) is not None, ext
    broken = tmp_path / "broken.png"
    broken.write_bytes((tmp_path / "colour.png").read_bytes()[:40])
    assert get_reader(str(broken)) is not None  # (its reading error is this plugin's sentence)
    stack = tmp_path / "movie.npy"  # (frames, rows, cols): no colour axis
    np.save(stack, rng.random((3, 40, 40)).astype(np.float32))
    assert get_reader(str(stack)) is not None
