"""The CUDA path gives the CPU's answers (issue #15): detection of every bundled model, movies,
training and fine-tuning steps, and the CLI's ``--device cuda``. Skipped without a CUDA GPU;
``benchmarks/gpu_checks.sh`` runs this module on a lent accelerator."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from napari_atomdefect.core.detect.detect import iter_detect
from napari_atomdefect.core.progress import run_to_end
from napari_atomdefect.core.simulate.image import simulate_image

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Classes may differ only where the CPU's two most probable classes are this close: the
# GPU's convolutions sum in another order (and cuDNN may use TF32), a few 1e-4 of a logit.
TIE = 0.02


def _same_calls(cpu: pd.DataFrame, gpu: pd.DataFrame) -> None:
    """Same sites, the same class wherever the CPU's call is not a near tie, close confidences."""
    assert len(cpu) == len(gpu)
    np.testing.assert_allclose(gpu[["y_px", "x_px"]], cpu[["y_px", "x_px"]], atol=1e-3)
    differ = cpu["class"].to_numpy() != gpu["class"].to_numpy()
    assert differ.sum() <= max(1, len(cpu) // 1000), cpu[differ]
    assert (cpu["confidence"][differ] < 0.5 + TIE).all(), cpu[differ]
    np.testing.assert_allclose(gpu["confidence"][~differ], cpu["confidence"][~differ], atol=2e-3)


@pytest.mark.parametrize(("material", "substituents", "fractions"), [
    ("MoS2", None, {"V_S": 0.05, "V_Mo": 0.02, "O_S": 0.03, "V_S2": 0.01}),
    ("WS2", "Se", {"Se_S": 0.2, "Se2_S2": 0.1, "V_X": 0.03}),
    ("WSe2", "S", {"S_Se": 0.15, "V_X": 0.04}),
    ("MoSe2", None, {"V_X": 0.05, "V_M": 0.02}),
    ("MoS2", "Se", {"Se_S": 0.2, "Se2_S2": 0.05}),  # mos2-alloy
])
def test_cuda_detection_matches_cpu(material, substituents, fractions):
    sim = simulate_image(material, 384, 0.012, seed=5, substituents=substituents,
                         defect_fractions=fractions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # model-fit notes are not what this test checks
        cpu = run_to_end(iter_detect(sim.image, 0.012, material, device="cpu",
                                     substituents=substituents))
        gpu = run_to_end(iter_detect(sim.image, 0.012, material, device="cuda", batch_size=128,
                                     substituents=substituents))
    assert gpu["device"].startswith("cuda")
    _same_calls(cpu["sites"], gpu["sites"])


def test_cuda_movie_matches_cpu():
    from napari_atomdefect.core.detect.movie import iter_detect_frames
    from napari_atomdefect.core.simulate.movie import simulate_movie

    movie = simulate_movie("MoS2", 256, n_frames=4, pixel_size_nm=0.012, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = run_to_end(iter_detect_frames(movie.frames, movie.pixel_size_nm, device="cpu"))
        gpu = run_to_end(iter_detect_frames(movie.frames, movie.pixel_size_nm, device="cuda"))
    np.testing.assert_allclose(gpu["drift_px"], cpu["drift_px"], atol=1e-3)
    per_frame = [part.groupby("class").size().to_dict()
                 for result in (cpu, gpu) for _, part in result["defects"].groupby("frame")]
    assert per_frame[:4] == per_frame[4:]


def test_cuda_fine_tuning_writes_a_model_the_cpu_reads(tmp_path):
    from napari_atomdefect.core.finetune.finetune import FinetuneSettings, iter_finetune
    from napari_atomdefect.core.finetune.selection import select_cells
    from napari_atomdefect.core.lattice.lattice import find_lattice

    sim = simulate_image("MoS2", 256, 0.012, seed=3, defect_fractions={"V_S": 0.06})
    lattice = find_lattice(sim.image, "MoS2", pixel_size_nm=0.012)
    settings = FinetuneSettings(noise_steps=4, detector_steps=20, n_sim_images=2,
                                anchor_images=1)
    items = list(iter_finetune(sim.image, lattice, select_cells(lattice, select_all=True), None,
                               "gpu-tuned", settings, corrections=sim.defects, device="cuda",
                               out_dir=tmp_path))
    card = items[-1]["card"]
    assert card["fine_tuning"]["device"].startswith("cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect(sim.image, 0.012, "MoS2", model=tmp_path / "gpu-tuned",
                                        device="cpu"))
    assert np.isfinite(result["sites"]["confidence"]).all()
    assert len(result["sites"]) > 150


def test_cuda_training_step_learns():
    from napari_atomdefect.core.train.datasets import cells_from_simulation
    from napari_atomdefect.core.train.loops import train_detector
    from napari_atomdefect.core.train.pipeline import run_train_detector

    items = list(run_train_detector("MoS2", None, 4, 2, 40, 32, 0, "cuda"))
    done = items[-1]
    assert done["card"]["device"].startswith("cuda")
    assert done["card"]["metrics"]["validation_site_f1"]
    cells = cells_from_simulation(simulate_image("MoS2", 384, 0.012, seed=1))
    losses = [i["loss"] for i in train_detector(cells, cells, steps=120, batch_size=32,
                                                device=torch.device("cuda"), report_every=10)
              if "loss" in i]
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < losses[0]


def test_cli_device_cuda_writes_the_cpu_csv(tmp_path, capsys):
    import tifffile

    from napari_atomdefect.cli import main

    sim = simulate_image("WS2", 320, 0.012, seed=8, substituents="Se",
                         defect_fractions={"Se_S": 0.2, "V_X": 0.03})
    tif = tmp_path / "ws2.tif"
    tifffile.imwrite(tif, sim.image.astype(np.float32))
    out = {}
    for dev in ("cpu", "cuda"):
        csv = tmp_path / f"{dev}.csv"
        assert main(["detect", str(tif), "--material", "WS2", "--substituents", "Se",
                     "--pixel-size-nm", "0.012", "--device", dev, "--out", str(csv)]) == 0
        out[dev] = pd.read_csv(csv, comment="#")
    assert "on cuda" in capsys.readouterr().out
    cpu, gpu = out["cpu"], out["cuda"]
    assert abs(len(cpu) - len(gpu)) <= 1
    assert set(gpu["class"]) <= set(cpu["class"]) | {"V_X"}
