"""npe2 sample data: a simulated MoS2 image with defects and its ground truth (thin adapter)."""

from __future__ import annotations

from ._layers import defect_layer_kwargs, reference_layer_kwargs
from .core.io.table import defects_table

SAMPLE_SHAPE = (512, 512)
SAMPLE_PIXEL_SIZE_NM = 0.012
SAMPLE_SEED = 0


def make_sample_data() -> list[tuple]:
    """Simulated MoS2 (512 x 512 px, 0.012 nm/px, 1e5 e/Å²) and its true defects as Points."""
    from .core.simulate.image import simulate_image

    sim = simulate_image("MoS2", SAMPLE_SHAPE, SAMPLE_PIXEL_SIZE_NM, seed=SAMPLE_SEED)
    px = sim.pixel_size_nm
    image_meta = {"atomdefect": {"pixel_size_nm": px, "calibration": "file",
                                 "source_path": None, "simulation": sim.metadata()}}
    image = (sim.image, {"name": "MoS2 sample (simulated)", "scale": (px, px),
                         "units": ("nm", "nm"), "colormap": "gray", "metadata": image_meta},
             "image")
    table = defects_table(sim.defects, px, source="truth")
    kwargs = reference_layer_kwargs(
        defect_layer_kwargs(table, px, "truth", a_px=sim.material.a_nm / px),
        name="ground truth (sample)")
    return [image, (table[["y_px", "x_px"]].to_numpy(float), kwargs, "points")]
