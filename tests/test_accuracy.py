"""Accuracy regression test: per-class F1 of the bundled model on held-out simulated images.

Twelve 256² MoS2 images of the project's simulator (random microscopes, doses 3e5–1e6 e/Å²,
pixel sizes 0.011–0.014 nm, defect fractions V_S 6 %, V_S2 3 %, O_S 6 %, V_Mo 3 % so that each
class has 40–100 true sites), seeds 950 000–950 011: disjoint from training (random seeds of the
pipeline), the calibration (700 000+) and ``benchmarks/bench_accuracy.py`` (900 000+). Pooled
F1 at the matching radius 0.08 nm, neutral operating point.

Measured with the bundled ``mos2-default`` of the fifth session of 2026-12-02 (round 4: static
cross term measured to 200 kV, the Z-contrast ladder context, deciding on its own probabilities)
on images that follow the simulator's current physics — patchy contamination, column scatter, and
static high-angle microscopes where a single S reads 0.6–0.67 of its column and O adds next to
nothing — harder than before: see ``MEASURED`` (the third-session model had 0.846 / 0.772 on the
images of the fourth session's simulator).
The floors are the measured values minus 0.1 for ``V_S`` and ``O_S`` (asserted separately, not
only merged), and 0.9 for ``V_S2`` and ``V_Mo``; a change that loses one class fails here.
Run this file as a script to print the current figures.
"""

from __future__ import annotations

import numpy as np
import pytest

N_IMAGES = 12
SEED = 950_000
FRACTIONS = {"V_S": 0.06, "V_S2": 0.03, "O_S": 0.06, "V_Mo": 0.03}
#: Pooled F1 of the bundled model on these images when the floors were set.
MEASURED = {"V_S": 0.792, "O_S": 0.731, "V_S2": 1.0, "V_Mo": 1.0}
FLOORS = {"V_S": 0.69, "O_S": 0.63, "V_S2": 0.9, "V_Mo": 0.9}


def pooled_f1(model: str | None = None) -> dict[str, float]:
    """Pooled per-class F1 (and true-site counts) of ``model`` on the held-out images."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.detect.evaluate import score
    from napari_atomdefect.core.simulate.image import MicroscopeParams, simulate_image

    totals: dict[str, np.ndarray] = {}
    for k in range(N_IMAGES):
        rng = np.random.default_rng(SEED + k)
        dose = float(10 ** rng.uniform(np.log10(3e5), 6.0))
        px = float(rng.uniform(0.011, 0.014))
        params = MicroscopeParams.random(rng, "MoS2", dose_e_per_A2=dose)
        sim = simulate_image("MoS2", 256, px, params=params, seed=SEED + k,
                             defect_fractions=FRACTIONS)
        s = score(detect(sim.image, px, "MoS2", model, device="cpu"), sim.defects, 0.08 / px)
        for c in s.index:
            totals[c] = totals.get(c, np.zeros(3, int)) + s.loc[c, ["tp", "fp", "fn"]].to_numpy(int)
    return {c: 2 * t[0] / max(2 * t[0] + t[1] + t[2], 1) for c, t in totals.items()} | \
        {f"n_{c}": int(t[0] + t[2]) for c, t in totals.items()}


@pytest.fixture(scope="module")
def f1():
    return pooled_f1()


@pytest.mark.parametrize("cls", ["V_S", "O_S", "V_S2", "V_Mo"])
def test_per_class_f1_floor(f1, cls):
    assert f1[f"n_{cls}"] >= 30  # enough true sites for the floor to mean something
    assert f1[cls] >= FLOORS[cls], (f"{cls} F1 {f1[cls]:.3f} fell below its floor "
                                    f"{FLOORS[cls]} (measured {MEASURED[cls]})")


if __name__ == "__main__":  # pragma: no cover
    print({k: round(float(v), 3) for k, v in pooled_f1().items()})
