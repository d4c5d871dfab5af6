"""What the simulator that trains the models shows of each host material, over its random
microscopes: the ranges the model-fit check (:mod:`..detect.image_fit`) and the lattice's
sublattice choice (:mod:`..lattice.metal_rungs`) compare an image with."""

from __future__ import annotations

#: Per material, the metal/chalcogen contrast (1st, 50th, 99th percentile) and the excess
#: chalcogen spread (99th percentile) measured on 200 simulated images of random microscopes (probe, detector,
#: voltage, column coherence, contamination and column scatter, dose 1e4–1e6 e/Å², pixel size
#: 0.008–0.02 nm, default defect densities; background flattened as detection does):
#: ``measure_training_ranges(200)`` (twentieth session, 2026-12-04: microscopes at any voltage
#: between 60 and 300 kV, 120 kV among the common ones; MoS2 1.57–3.78 → 1.60–4.09, WS2
#: 2.6–9.7 → 2.7–10.0, MoSe2 0.45–0.81 → 0.48–0.85, WSe2 0.84–2.05 → 0.92–2.05). The columns'
#: width (FWHM in nm, 1st, 50th, 99th percentile; :func:`~..detect.blur.column_fwhm_nm`) was
#: added in the forty-first session from the same 200 images (the other figures came out the
#: same within 0.001): probes of 0.07–0.12 nm, with their tails and scan jitter. WSe2 measured
#: again in the forty-second session with a fifth of its microscopes incoherent, as its model
#: now trains (:data:`INCOHERENT_TRAINING_SHARE`; 0.917–2.051 before, median 1.532):
#: ``measure_training_ranges(200, materials=("WSe2",))``.
TRAINING_RANGES: dict[str, dict[str, tuple[float, ...]]] = {
    "MoS2": {"metal_to_chalcogen": (1.603, 2.708, 4.094), "excess_spread": (2.113,),
             "column_fwhm_nm": (0.072, 0.098, 0.124)},
    "WS2": {"metal_to_chalcogen": (2.715, 6.284, 10.037), "excess_spread": (2.578,),
            "column_fwhm_nm": (0.073, 0.097, 0.121)},
    "MoSe2": {"metal_to_chalcogen": (0.484, 0.665, 0.852), "excess_spread": (1.359,),
              "column_fwhm_nm": (0.072, 0.097, 0.124)},
    "WSe2": {"metal_to_chalcogen": (0.931, 1.687, 2.342), "excess_spread": (1.778,),
             "column_fwhm_nm": (0.073, 0.097, 0.122)},
}

#: Per material, the share of its bundled model's training images whose microscope follows the
#: incoherent Z-contrast rule (:func:`~..simulate.microscopes.incoherent_params`; the model's
#: card says it as ``detector.training.incoherent_share``); :data:`TRAINING_RANGES` are measured
#: with the same share. Materials not listed: none. WSe2 (forty-second session): independent
#: simulators' WSe2 reaches W/Se2 contrasts of 2.1–2.4, past the multislice-grounded microscopes,
#: where its `S_Se` had been read as `V_Se` (docs/benchmarks.md).
INCOHERENT_TRAINING_SHARE: dict[str, float] = {"WSe2": 0.2}
