"""Checks on the development data in ../shared/data (skipped cleanly when it is absent)."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_atomdefect.core.io.image import read_image
from napari_atomdefect.core.lattice.lattice import find_lattice

from .conftest import nearest_distances

pytestmark = pytest.mark.shared_data


def independent_fft_spacing(image: np.ndarray) -> tuple[float, float]:
    """Plane spacing (px) and direction (deg) of the strongest spectral peak, plain numpy FFT."""
    img = image.astype(float) - image.mean()
    h, w = img.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    n = 2 * max(h, w)
    p = np.abs(np.fft.fftshift(np.fft.fft2(img * win, (n, n)))) ** 2
    ky, kx = np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    kr = np.hypot(ky, kx) / n
    p[(kr < 1 / 100) | (kr > 1 / 8)] = 0  # plane spacings between 8 and 100 px
    r, c = np.unravel_index(p.argmax(), p.shape)
    k = np.hypot(r - n // 2, c - n // 2) / n
    return 1 / k, np.degrees(np.arctan2(r - n // 2, c - n // 2)) % 60


def plane_spacings(lat) -> tuple[np.ndarray, np.ndarray]:
    g = np.linalg.inv(np.stack([lat.a1_px, lat.a2_px])).T  # first-order reflections
    gs = [g[0], g[1], g[0] + g[1]]
    return (np.array([1 / np.linalg.norm(v) for v in gs]),
            np.array([np.degrees(np.arctan2(v[0], v[1])) % 60 for v in gs]))


def test_real_images_have_lattice_matching_fft(shared_data):
    files = sorted((shared_data / "real").glob("*.tif"))
    assert files
    for f in files:
        img = read_image(f)
        lat = find_lattice(img.data, "WS2", pixel_size_nm=img.pixel_size_nm, calibration="file")
        assert lat.n_cells > 100
        d_fft, ang_fft = independent_fft_spacing(tifffile.imread(f))
        d_lat, ang_lat = plane_spacings(lat)
        k = np.argmin(np.abs(d_lat - d_fft))
        assert d_lat[k] == pytest.approx(d_fft, rel=0.02), f.name
        assert min(abs(ang_lat[k] - ang_fft), 60 - abs(ang_lat[k] - ang_fft)) < 2.0, f.name
        # the file's calibration is ~9 % off (or missing): calibrated from the lattice, and said
        assert lat.calibration == "lattice"
        assert any("disagrees" in m or "calibrated from" in m for m in lat.messages)
        assert len(lat.chalcogen_sites_px) > 0.9 * lat.n_cells


def test_devset_sites_found(shared_data):
    folders = sorted((shared_data / "devset").iterdir())
    assert folders
    for d in folders:
        image = np.load(d / "image.npy")
        meta = json.loads((d / "meta.json").read_text())
        cols = pd.read_csv(d / "columns.csv")
        h, w = image.shape
        lat = find_lattice(image, "MoS2", pixel_size_nm=meta["pixel_size_A"] / 10,
                           calibration="file")
        assert lat.calibration == "file"
        edge = 0.35 * lat.a_px  # columns cut by the border may be left out

        def inner(p, edge=edge, h=h, w=w):
            return (p[:, 0] >= edge) & (p[:, 0] <= h - 1 - edge) & (p[:, 1] >= edge) & (
                p[:, 1] <= w - 1 - edge)

        is_metal = cols["class"].isin(["Mo", "V_Mo"])
        metal = cols[is_metal][["y_px", "x_px"]].to_numpy()
        chalc = cols[~is_metal][["y_px", "x_px"]].to_numpy()
        for found, truth in ((lat.metal_sites_px, metal), (lat.chalcogen_sites_px, chalc)):
            d_found = nearest_distances(found[inner(found)], truth)
            assert np.sqrt(np.mean(d_found**2)) < 0.6, d.name      # sub-pixel positions
            d_truth = nearest_distances(truth[inner(truth)], found)
            assert np.mean(d_truth < 2.0) > 0.97, d.name  # nearly every column found
