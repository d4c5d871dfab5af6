"""Training data made in several processes are the data made in one (``--workers``)."""

from __future__ import annotations

import numpy as np

from napari_atomdefect.core.cells.tiles import TileSpec
from napari_atomdefect.core.train.pipeline import iter_simulated_cells, simulated_cells


def test_workers_make_the_same_cells_in_the_same_order():
    one = simulated_cells(3, 5, "WS2", TileSpec(), ideal=False,
                          overrides=lambda rng: {"dose_e_per_A2": float(rng.uniform(1e5, 1e6))})
    two = simulated_cells(3, 5, "WS2", TileSpec(), ideal=False, workers=2,
                          overrides=lambda rng: {"dose_e_per_A2": float(rng.uniform(1e5, 1e6))})
    assert len(one) == len(two) > 100
    np.testing.assert_array_equal(one.tiles, two.tiles)
    np.testing.assert_array_equal(one.own_classes, two.own_classes)


def test_progress_comes_per_image_and_closing_stops_the_workers():
    items = iter_simulated_cells(4, 1, "MoS2", TileSpec(), ideal=True, workers=2)
    first = next(items)
    assert first["stage"] == "data" and "image 1/4" in first["message"]
    items.close()  # a cancelled run: the pool is shut down, nothing is returned
    import multiprocessing

    assert multiprocessing.active_children() == []
