"""npe2 sample data: a simulated MoS2 image with defects and its ground truth (thin adapter)."""

from __future__ import annotations

import numpy as np

from .core.materials import DEFECT_CLASSES

#: Face colours of defect classes in Points layers (shared with the widgets).
CLASS_COLORS = {"V_S": "#ff9900", "V_S2": "#ff2020", "O_S": "#00e5ff", "V_Mo": "#33ff33"}
CLASS_SYMBOLS = {"V_S": "disc", "V_S2": "square", "O_S": "diamond", "V_Mo": "triangle_up"}

SAMPLE_SHAPE = (512, 512)
SAMPLE_PIXEL_SIZE_NM = 0.012
SAMPLE_SEED = 0


def make_sample_data() -> list[tuple]:
    """Simulated MoS2 (512 x 512 px, 0.012 nm/px, 1e5 e/Å²) and its true defects as Points."""
    import pandas as pd

    from .core.simulate import simulate_image

    sim = simulate_image("MoS2", SAMPLE_SHAPE, SAMPLE_PIXEL_SIZE_NM, seed=SAMPLE_SEED)
    px = sim.pixel_size_nm
    image_meta = {"atomdefect": {"pixel_size_nm": px, "calibration": "file",
                                 "source_path": None, "simulation": sim.metadata()}}
    image = (sim.image, {"name": "MoS2 sample (simulated)", "scale": (px, px),
                         "units": ("nm", "nm"), "colormap": "gray", "metadata": image_meta},
             "image")
    defects = sim.defects
    classes = pd.Categorical(defects["class"], categories=list(DEFECT_CLASSES))
    features = pd.DataFrame({"class": classes, "confidence": np.ones(len(defects)),
                             "source": pd.Categorical(["truth"] * len(defects))})
    truth = (defects[["y_px", "x_px"]].to_numpy(float), {
        "name": "ground truth (sample)", "scale": (px, px), "units": ("nm", "nm"),
        # Points sizes are in data pixels: half a lattice constant reads well at any zoom.
        "features": features, "size": 0.5 * sim.material.a_nm / px, "symbol": "ring",
        "face_color": "class", "face_color_cycle": dict(CLASS_COLORS),
        "border_width": 0, "opacity": 0.9,
        "metadata": {"atomdefect": {"kind": "ground_truth", "pixel_size_nm": px}},
    }, "points")
    return [image, truth]
