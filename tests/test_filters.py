"""The fast box and moving-maximum filters equal scipy.ndimage's."""

import numpy as np
import pytest
from scipy import ndimage

from napari_atomdefect.core.lattice.filters import maximum_box, uniform_box


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "constant", "wrap"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
def test_uniform_box_equals_scipy(mode, size):
    image = np.random.default_rng(size).gamma(2.0, 100.0, (37, 53)).astype(np.float32)
    ours = uniform_box(image, size, mode)
    ref = ndimage.uniform_filter(image, size, mode=mode)
    assert ours.dtype == np.float32 and ours.shape == image.shape
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-3)


@pytest.mark.parametrize("mode", ["nearest", "reflect", "mirror", "constant", "wrap"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 6])
def test_maximum_box_equals_scipy(mode, size):
    image = np.random.default_rng(size).normal(0, 1, (41, 29))
    np.testing.assert_array_equal(maximum_box(image, size, mode),
                                  ndimage.maximum_filter(image, size, mode=mode))


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unsupported mode"):
        uniform_box(np.zeros((4, 4)), 3, "grid-wrap")


def test_box_smooth_of_a_prepared_image_is_kept_and_equal():
    """The smoothing of a prepared analysis image is computed once per box size and never of a
    caller's own (writable) array, whose pixels may change between calls."""
    from napari_atomdefect.core.io.validate import as_analysis_image
    from napari_atomdefect.core.lattice.sites import box_smooth

    rng = np.random.default_rng(3)
    raw = rng.random((64, 80)).astype(np.float32)
    prepared = as_analysis_image(raw)
    first = box_smooth(prepared, 2.0)
    assert box_smooth(prepared, 2.0) is first and not first.flags.writeable
    np.testing.assert_array_equal(first, box_smooth(np.array(prepared), 2.0))
    assert box_smooth(prepared, 4.0) is not first            # another box: computed anew
    mine = raw.copy()
    before = box_smooth(mine, 2.0)
    mine += 1.0
    np.testing.assert_allclose(box_smooth(mine, 2.0), before + 1.0, rtol=1e-6)


def test_the_kept_smoothing_goes_with_its_image():
    import gc

    import napari_atomdefect.core.lattice.sites as sites
    from napari_atomdefect.core.io.validate import as_analysis_image

    prepared = as_analysis_image(np.random.default_rng(4).random((64, 64)))
    sites.box_smooth(prepared, 2.0)
    assert sites._LAST_SMOOTHED[2] is not None
    del prepared
    gc.collect()
    assert sites._LAST_SMOOTHED == (None, 0, None)


def test_column_windows_copied_as_blocks_equal_the_pixel_gather():
    """The centroid refinement reads each column's window as a block of a strided view where
    it lies inside the image, pixel by pixel (edges repeated) where it does not: the same
    pixels either way, for windows inside, across an edge and wholly outside."""
    from napari_atomdefect.core.lattice.sites import _windows

    rng = np.random.default_rng(8)
    image = rng.random((40, 50)).astype(np.float32)
    rad = 3
    off = np.arange(-rad, rad + 1, dtype=np.float32)
    base = np.array([[10, 10], [0, 25], [39, 49], [20, 2], [-9, 20], [60, 70], [3, 46]],
                    np.float32)
    rows, cols = base[:, 0:1] + off, base[:, 1:2] + off
    ri = np.clip(rows, 0, 39).astype(np.intp)
    ci = np.clip(cols, 0, 49).astype(np.intp)
    windows = _windows(image, base, rad, rows, cols)
    np.testing.assert_array_equal(windows, image[ri[:, :, None], ci[:, None, :]])
    np.testing.assert_array_equal(windows[0], image[7:14, 7:14])
    np.testing.assert_array_equal(windows[1][:3], np.repeat(image[0:1, 22:29], 3, 0))


def test_peak_search_reads_every_disc_as_the_pixel_gather_did():
    """The sub-pixel peak search copies discs wholly inside the image as blocks of a strided
    view: the same peaks, heights and flags as reading every disc point by point, for discs
    inside, across the edge, beyond it, over a NaN pixel and on a field smaller than a disc."""
    from napari_atomdefect.core.lattice.sites import _refine_peaks_chunk, disc_offsets

    def by_points(smoothed, predicted, radius):
        h, w = smoothed.shape
        off = disc_offsets(max(radius, 1.5))
        pts = np.round(predicted).astype(int)[:, None, :] + off[None]
        inside = (pts[..., 0] >= 0) & (pts[..., 0] < h) & (pts[..., 1] >= 0) & (pts[..., 1] < w)
        vals = np.where(inside, smoothed[np.clip(pts[..., 0], 0, h - 1),
                                         np.clip(pts[..., 1], 0, w - 1)], -np.inf)
        best = np.argmax(vals, axis=1)
        return pts[np.arange(len(pts)), best], vals[np.arange(len(pts)), best]

    rng = np.random.default_rng(9)
    for shape in ((60, 50), (7, 30), (3, 3)):
        image = rng.random(shape).astype(np.float32)
        image[1, 1] = np.nan
        predicted = np.concatenate([rng.uniform(-6, max(shape) + 6, (80, 2)),
                                    rng.uniform(0, min(shape) - 1, (200, 2))])
        for radius in (1.0, 2.7, 4.2):
            refined, height, ok = _refine_peaks_chunk(image, predicted, radius)
            peak, want = by_points(image, predicted, radius)
            np.testing.assert_array_equal(height, np.where(np.isfinite(want), want, np.nan))
            assert (np.abs(refined - peak)[ok] <= 0.5).all()   # sub-pixel around that peak
