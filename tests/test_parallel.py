"""The one thread pool for numpy work (:mod:`napari_atomdefect.core.parallel`)."""

from __future__ import annotations

import numpy as np

from napari_atomdefect.core import parallel


def test_map_threads_keeps_the_order_and_a_budget_caps_the_threads(monkeypatch):
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(parallel, "_BUDGET", [])
    assert parallel.n_workers() == 4
    parts = np.array_split(np.arange(1000), 4)
    assert np.concatenate(parallel.map_threads(lambda p: p * 2, parts)).tolist() == list(
        range(0, 2000, 2))
    parallel.set_thread_budget(1)  # a batch worker sharing the cores with another
    assert parallel.n_workers() == 1
    assert parallel.map_threads(lambda p: p.sum(), parts) == [p.sum() for p in parts]


def test_the_ladder_fit_is_the_same_on_threads_as_on_one():
    """Each microscope of the ladder's mixture fit is a fit of its own: shared out between
    threads, the readings are the same (but for the rounding of sums over different row blocks,
    which the EM's iterations carry: 4e-12 relative on an AVX-512 machine)."""
    from napari_atomdefect.core.cells import ladder

    rng = np.random.default_rng(0)
    m, c = 130, 4
    rungs = np.sort(rng.uniform(0.0, 2.0, (m, c)), axis=1)
    rungs[:, 1] = 1.0
    split = np.zeros((m, c))
    split[:, 2] = 0.05
    centres = np.arange(-0.2, 2.4, 0.02)
    counts = rng.poisson(20 * np.exp(-0.5 * ((centres - 1.0) / 0.05) ** 2)).astype(float)
    caps = np.array([0.15, 1.0, 0.5, 1.0])
    kept = counts > 0
    args = (counts[kept], centres[kept], rungs, split, caps, 0.0, 1.0, 1)
    threaded = ladder._fit_mixture(*args)
    single = ladder._fit_mixture_rows(*args)
    for a, b in zip(threaded, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-15)


def test_blas_runs_on_one_thread_within_overlapping_blocks():
    """A detection runs numpy's BLAS on one thread; blocks may overlap and end in any order, and
    the process's own count comes back when the last one ends."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}

    before = blas_threads()
    outer = parallel.blas_in_one_thread()
    inner = parallel.blas_in_one_thread()
    outer.__enter__()
    inner.__enter__()
    if before:
        assert blas_threads() == {1}
    outer.__exit__(None, None, None)  # (the first to start ends first)
    if before:
        assert blas_threads() == {1}
    inner.__exit__(None, None, None)
    assert blas_threads() == before
