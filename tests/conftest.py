"""Shared fixtures: simulated images with known truth, and the optional ../shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

REPO = Path(__file__).resolve().parents[1]
# Float32 inference throughout, on any CPU: outputs compared with fixed figures and with the
# straightforward path must not depend on whether the CPU computes in bfloat16 natively (the
# mixed precision a user gets there is tested on its own: test_speed.py).
os.environ.setdefault("ATOMDEFECT_CPU_BF16", "0")
SHARED_DATA = Path(os.environ.get("ATOMDEFECT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The development data folder beside the repository; tests skip cleanly without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sim_mos2():
    """A 512 x 512 MoS2 image at 0.012 nm/px and 1e5 e/Å² with mild scan distortion."""
    return simulate_image("MoS2", 512, 0.012, params=MicroscopeParams(), seed=3)


@pytest.fixture
def detector_calls_stand(monkeypatch):
    """Detection without the ladder's overruling of the median and the host rung
    (:func:`~napari_atomdefect.core.detect.median_rung.keep_median_rung`, ``keep_host_rung``):
    for tests whose stand-in models call every chalcogen column of a pristine image one class,
    to see the probabilities reach the table as the model gave them."""
    import napari_atomdefect.core.detect.detect as detect_module

    def as_given(chalcogen, *args):
        return {k: np.array(v, copy=True) for k, v in chalcogen.items()}, None

    monkeypatch.setattr(detect_module, "keep_median_rung", as_given)
    monkeypatch.setattr(detect_module, "keep_host_rung", as_given)


def pristine_params(**kw) -> MicroscopeParams:
    """Microscope parameters without shear/stretch (the lattice stays hexagonal)."""
    base = dict(shear=0.0, y_stretch=0.0)
    base.update(kw)
    return MicroscopeParams(**base)


def nearest_distances(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance from each found point to its nearest true point."""
    from scipy.spatial import cKDTree

    return cKDTree(truth).query(found)[0]
