"""Fine-tuning, the simulator fitted to the user's image: contrast, probe and acquisition noise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..lattice.lattice import Lattice


def calibrated_simulator(image: np.ndarray, lattice: Lattice, corrections: pd.DataFrame | None,
                         seed: int = 0, substituents: tuple[str, ...] | None = None
                         ) -> tuple[Callable[[np.random.Generator], dict], dict]:
    """Simulator parameters fitted to the user's image: ``(draw(rng) -> params, description)``.

    The probe and column contrast come from :func:`.calibrate.fit_contrast` (with the corrected
    defects, when given; in host units read with ``substituents``), the dose, scan-line noise
    and jitter from :func:`..train.noise_model.measure_acquisition`.
    """
    from ..train.noise_model import measure_acquisition
    from ..train.pipeline import realistic_overrides_from
    from .calibrate import fit_contrast

    measured = measure_acquisition(image, lattice)
    fit = fit_contrast(image, lattice, corrections,
                       jitter_nm=measured["jitter_a"] * lattice.material.a_nm, seed=seed,
                       substituents=substituents)
    draw = realistic_overrides_from([measured], lattice.material.name, contrast=fit,
                                    pixel_size_nm=lattice.pixel_size_nm, snr_steps=2)
    return draw, {"contrast": fit.to_dict(),
                  "acquisition": {k: round(float(v), 4) for k, v in measured.items()}}


def describe_calibration(calibration: dict) -> str:
    """One line for the user: what the simulator was fitted to."""
    c = calibration["contrast"]
    parts = [f"probe {c['probe_fwhm_nm']:.3f} nm", f"metal/chalcogen {c['metal_to_chalcogen']:.2f}"]
    post = c.get("posterior") or {}
    fitted_from = c.get("fitted_from") or {"second_atom_factor": "V_S", "light_ratio": "O_S"}
    for name, label in (("second_atom_factor", "second chalcogen atom"),
                        ("light_ratio", "light substituent")):
        cls = fitted_from.get(name)
        if c.get(name) is None or cls not in c["n_sites"]:
            continue
        mean, sd = post.get(name, (c[name], 0.0))
        parts.append(f"{label} {mean:.2f} ± {sd:.2f} (from {c['n_sites'][cls]} {cls})")
    return "Simulator fitted to your image: " + ", ".join(parts) + "."
