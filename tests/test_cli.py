"""The ``atomdefect`` command line, end to end (in-process and as a console script)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_atomdefect.cli import main
from napari_atomdefect.core.io.image import read_image


def test_simulate_an_alloy(tmp_path, capsys):
    """``--alloy Te:0.1``: a tenth of the Se atoms are Te, each independently (Te_Se columns
    2c(1-c) = 18 %, Te2_Se2 c² = 1 %); detect with S only is told to add Te."""
    out = tmp_path / "sim"
    assert main(["simulate", "--material", "MoSe2", "--alloy", "te:0.1", "--size", "384",
                 "--dose", "3e5", "--out", str(out)]) == 0
    sites = pd.read_csv(out / "sites.csv")
    chalcogen = sites[sites.sublattice == "chalcogen"]
    share = (chalcogen["class"] == "Te_Se").mean()
    assert 0.12 < share < 0.24, share
    assert main(["detect", str(out / "image.tif"), "--material", "MoSe2", "--substituents", "S",
                 "--out", str(tmp_path / "d.csv")]) == 0
    err = capsys.readouterr().err
    assert "add Te to the substituents (S, Te)" in err and "as uniform as" not in err
    # the simulator's truth names no substituents: its classes say which are alloying
    assert main(["evaluate", str(tmp_path / "d.csv"), str(out / "defects.csv")]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    truth = pd.read_csv(out / "defects.csv")["class"]
    n_alloy = int(truth.isin(["S_Se", "S2_Se2", "Te_Se", "Te2_Se2"]).sum())
    assert summary.endswith(f"and {n_alloy} alloying substitutions"), summary
    for bad in ("Te", "Te:0", "Te:1.5", ":0.2"):
        assert main(["simulate", "--alloy", bad, "--out", str(tmp_path / "x")]) == 2
    assert main(["simulate", "--material", "MoS2", "--alloy", "Te:0.1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "not a substituent this package models in MoS2" in capsys.readouterr().err


def test_simulate_puts_the_named_metals_in(tmp_path):
    """``--substituents O,W`` simulates W on a few metal sites (``--metal-alloy`` sets how many),
    ``O,Mo`` Mo antisites in a few chalcogen columns: a trial's runs had dropped both silently."""
    from napari_atomdefect.cli import NAMED_ANTISITE_SHARE, NAMED_METAL_SHARE

    counts = {}
    for subs, extra in (("O,W", []), ("O,W", ["--metal-alloy", "0.2"]), ("O,Mo", []),
                        ("O", [])):
        out = tmp_path / f"sim_{subs}_{len(extra)}"
        assert main(["simulate", "--substituents", subs, "--size", "512", "--dose", "0",
                     "--seed", "4", "--out", str(out)] + extra) == 0
        sites = pd.read_csv(out / "sites.csv")
        metal = sites[sites.sublattice == "metal"]
        chalcogen = sites[sites.sublattice == "chalcogen"]
        counts[subs, len(extra)] = ((metal["class"] == "W_Mo").mean(),
                                    (chalcogen["class"] == "Mo_S2").mean())
    assert 0.3 * NAMED_METAL_SHARE < counts["O,W", 0][0] < 3 * NAMED_METAL_SHARE
    assert 0.12 < counts["O,W", 2][0] < 0.28
    assert 0 < counts["O,Mo", 0][1] < 3 * NAMED_ANTISITE_SHARE and counts["O,Mo", 0][0] == 0
    assert counts["O", 0] == (0, 0)


def test_simulate_then_lattice_json(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--material", "MoS2", "--size", "384", "--pixel-size-nm", "0.012",
                 "--dose", "1e5", "--seed", "0", "--out", str(out)]) == 0
    img = read_image(out / "image.tif")
    assert img.pixel_size_nm == pytest.approx(0.012)
    defects = pd.read_csv(out / "defects.csv")
    assert list(defects.columns) == ["y_px", "x_px", "y_nm", "x_nm", "class", "confidence",
                                     "source"]
    assert len(defects) > 5 and set(defects["class"]) <= {"V_S", "V_S2", "O_S", "V_Mo"}
    np.testing.assert_allclose(defects.y_nm, defects.y_px * 0.012, atol=1e-4)
    meta = json.loads((out / "meta.json").read_text())
    capsys.readouterr()

    assert main(["lattice", str(out / "image.tif"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["calibration"] == "file" and result["pixel_size_nm"] == pytest.approx(0.012)
    assert result["n_cells"] == len(result["metal_sites_px"]) > 100
    true_a = np.linalg.norm(meta["a1_px"])
    for key in ("a1_px", "a2_px"):
        assert np.linalg.norm(result[key]) == pytest.approx(true_a, rel=0.01)
    assert len(result["chalcogen_sites_px"]) > 100


def test_lattice_user_pixel_size_and_text(tmp_path, capsys):
    main(["simulate", "--size", "256", "--out", str(tmp_path), "--dose", "0"])
    capsys.readouterr()
    assert main(["lattice", str(tmp_path / "image.tif"), "--pixel-size-nm", "0.0121"]) == 0
    out = capsys.readouterr().out
    assert "pixel size = 0.01210 nm (user)" in out and "unit cells" in out
    assert "Vegard" not in out  # said only of a lattice calibration
    from tifffile import imread

    np.save(tmp_path / "bare.npy", imread(tmp_path / "image.tif"))  # no pixel size
    assert main(["lattice", str(tmp_path / "bare.npy")]) == 0
    out = capsys.readouterr().out
    assert "(lattice)" in out and "from the MoS2 lattice constant" in out and "Vegard" in out


def test_errors_exit_2_with_message(tmp_path, capsys):
    (tmp_path / "bad.tif").write_bytes(b"garbage" * 10)
    assert main(["lattice", str(tmp_path / "bad.tif")]) == 2
    assert "could not be read" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    np.save(tmp_path / "noise.npy", rng.poisson(4, (256, 256)).astype(np.float32))
    assert main(["lattice", str(tmp_path / "noise.npy")]) == 2
    assert "No crystal lattice found" in capsys.readouterr().err
    np.save(tmp_path / "stack.npy", rng.random((2, 64, 64)).astype(np.float32))
    assert main(["lattice", str(tmp_path / "stack.npy")]) == 2
    assert "--frame" in capsys.readouterr().err
    assert main(["lattice", str(tmp_path / "noise.npy"), "--material", "GaN"]) == 2
    assert "Unknown material" in capsys.readouterr().err


def test_demo_writes_results(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["demo", "--out", str(out)]) == 0
    said = capsys.readouterr().out  # (trial: the closing line left the sample's files out)
    assert "(sample.tif, sample_truth.csv, defects.csv, defects.png" in said
    assert "V_S circles, V_S2 squares" in said  # the picture's legend
    for name in ("sample.tif", "sample_truth.csv", "lattice.json", "sites.csv", "cells.npz",
                 "lattice.png", "cells.png", "defects.csv", "defects.png"):
        assert (out / name).stat().st_size > 0
    cells = np.load(out / "cells.npz")
    assert cells["tiles"].shape[1:] == (32, 32) and len(cells["tiles"]) > 200
    sites = pd.read_csv(out / "sites.csv")
    assert set(sites.sublattice) == {"metal", "chalcogen"}
    defects = pd.read_csv(out / "defects.csv")
    truth = pd.read_csv(out / "sample_truth.csv")
    assert abs(len(defects) - len(truth)) < 0.3 * len(truth)


def test_demo_takes_the_substituents_and_pixel_size_of_an_image(tmp_path, capsys):
    """``demo IMAGE`` reads an alloy with the substituents and pixel size given (a trial's real
    WS2 + Se image could only be read for O: 36 O_S, where detect with Se found 113 Se_S)."""
    from napari_atomdefect.core.simulate.image import simulate_image

    c = 0.3
    sim = simulate_image("WS2", 384, 0.012, seed=3, dose_e_per_A2=5e5, substituents="Se",
                         defect_fractions={"Se_S": 2 * c * (1 - c), "Se2_S2": c * c,
                                           "V_X": 0.03})
    image = tmp_path / "alloy.npy"  # (no pixel size in the file)
    np.save(image, sim.image)
    out = tmp_path / "res"
    assert main(["demo", str(image), "--material", "WS2", "--substituents", "Se",
                 "--pixel-size-nm", "0.012", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "pixel size 0.01200 nm (user)" in said and "alloying substitutions" in said
    defects = pd.read_csv(out / "defects.csv")
    truth = sim.defects["class"].value_counts()
    called = defects["class"].value_counts()
    assert abs(called.get("Se_S", 0) - truth["Se_S"]) < 0.2 * truth["Se_S"]
    assert called.get("O_S", 0) < 0.1 * truth["Se_S"]


def _console_script():
    beside = Path(sys.executable).parent / "atomdefect"
    return str(beside) if beside.exists() else shutil.which("atomdefect")


@pytest.mark.skipif(_console_script() is None, reason="console script not installed")
def test_console_script(tmp_path):
    res = subprocess.run([_console_script(), "simulate", "--size", "128", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and (tmp_path / "image.tif").exists()


def test_detect_npy_says_no_pixel_size_only_when_none_was_given(tmp_path, capsys):
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 256, 0.012, seed=3)
    path = tmp_path / "frame.npy"
    np.save(path, sim.image)
    assert main(["detect", str(path), "--pixel-size-nm", "0.012",
                 "--out", str(tmp_path / "a.csv")]) == 0
    assert "no pixel size in the file" not in capsys.readouterr().err
    # the table names its image (as napari names the layer of the file: reopened among
    # images of one size, it goes onto this one)
    assert set(pd.read_csv(tmp_path / "a.csv")["image"]) == {"frame"}
    assert main(["detect", str(path), "--out", str(tmp_path / "b.csv")]) == 0
    assert "no pixel size in the file" in capsys.readouterr().err


def test_detect_lists_its_counts_in_the_class_order_of_the_dock(tmp_path, capsys):
    """The CLI's result line lists the classes as the Detect dock and the legend do (the run's
    class order: V_S, V_S2, O_S, …, V_Mo), not alphabetically (a trial)."""
    from napari_atomdefect.core.materials.columns import class_names
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 320, 0.012, seed=4,
                         defect_fractions={"V_S": 0.05, "O_S": 0.04, "V_S2": 0.03, "V_Mo": 0.03})
    np.save(tmp_path / "frame.npy", sim.image)
    assert main(["detect", str(tmp_path / "frame.npy"), "--pixel-size-nm", "0.012",
                 "--out", str(tmp_path / "a.csv")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    listed = [part.split(":")[0].strip() for part in line.split("(", 1)[1].split(")")[0].split(",")]
    called = set(pd.read_csv(tmp_path / "a.csv")["class"])
    assert set(listed) == called and {"V_S", "O_S", "V_S2", "V_Mo"} <= called
    order = list(class_names("MoS2"))  # V_S, V_S2, O_S, Se_S, Se2_S2, V_Mo
    assert listed == sorted(listed, key=order.index) != sorted(listed)


def test_detect_never_replaces_a_table_corrected_by_hand(tmp_path, capsys):
    """A defect CSV holding rows the user added or corrected (source manual) is not replaced by
    a new detection written to the same --out; a table of model calls only is."""
    from napari_atomdefect.core.simulate.image import simulate_image

    image = tmp_path / "img.npy"
    np.save(image, simulate_image("MoS2", 256, 0.012, seed=1).image)
    out = tmp_path / "defects.csv"
    edited = "y_px,x_px,class,confidence,source\n10.0,12.0,V_S,1.0,manual\n20,30,O_S,0.8,model\n"
    out.write_text(edited)
    assert main(["detect", str(image), "--pixel-size-nm", "0.012", "--out", str(out)]) == 2
    assert "holds 1 defect you added or corrected by hand" in capsys.readouterr().err
    assert out.read_text() == edited
    out.write_text("y_px,x_px,class,confidence,source\n20,30,O_S,0.8,model\n")
    assert main(["detect", str(image), "--pixel-size-nm", "0.012", "--out", str(out)]) == 0
    assert set(pd.read_csv(out)["source"]) <= {"model"}


def test_finetune_from_the_command_line(tmp_path, capsys, monkeypatch):
    """A user's trial: fine-tuning had no command. ``atomdefect finetune`` runs the widget's
    fine-tuning on the cells of a region (with the corrected detections of the image), writes a
    user model, says when none of those cells holds a correction by hand, and refuses a name
    that is taken before any work."""
    from napari_atomdefect.core.models.registry import resolve_model
    from napari_atomdefect.core.simulate.image import simulate_image

    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(tmp_path / "models"))
    image = tmp_path / "img.npy"
    np.save(image, simulate_image("MoS2", 256, 0.012, seed=1).image)
    table = tmp_path / "det.csv"
    assert main(["detect", str(image), "--pixel-size-nm", "0.012", "--out", str(table)]) == 0
    capsys.readouterr()
    # (no pixel size given: the corrections table's, the detection's own calibration)
    args = ["finetune", str(image), "--name", "cli-tuned",
            "--corrections", str(table), "--region", "0:200,0:256", "--noise-steps", "2",
            "--detector-steps", "2", "--batch-size", "4", "--verbose"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "Pixel size 0.01200 nm/px from the corrections table" in out.err
    assert "(0.01200 nm/px, the corrections table)" in out.err
    assert "None of the" in out.err and "holds a call added or changed by hand" in out.err
    assert "model written to" in out.out and "detector" in out.out
    # the outcome once, also with --verbose (it was printed twice)
    outcome = out.out.splitlines()[-2]
    assert out.out.count(outcome) == 1 and outcome not in out.err
    info = resolve_model("cli-tuned")
    assert not info.bundled and info.card["material"] == "MoS2"
    used = info.card["fine_tuning"]["cells_used"]
    assert 40 < used < 90  # the region's cells of the 256² field (~78 cells in all)
    # the widget's advanced settings, from the command line too (a trial's CLI run used 32)
    settings = info.card["fine_tuning"]["settings"]
    assert settings["detector_batch_size"] == 4 and settings["keep_better_detector"] is True
    assert main([*args[:2], "--name", "x", "--batch-size", "1"]) == 2
    assert "--batch-size 2 or more" in capsys.readouterr().err
    assert main(args) == 2  # the name is taken: refused at once
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("content, said", [
    ("x_px,y_px,class\n10,12,V_S\n", "a defect table without confidences"),
    ("notes on this scan\n", "not a detection table of this tool"),
    # the simulator's truth (`atomdefect simulate`, the demo) carries confidence 1 and source
    # simulation: a docs trial's `detect --out` replaced it silently
    ("y_px,x_px,y_nm,x_nm,class,confidence,source\n10,12,0.1,0.1,V_S,1.0,simulation\n",
     "ground truth (the simulator's labels)"),
])
def test_detect_never_replaces_labels_or_another_file(tmp_path, capsys, content, said):
    """Trial, twenty-first session: ground-truth labels (no confidence column) or any other
    file given as --out were replaced without a word. Refused now, the file untouched."""
    from napari_atomdefect.core.simulate.image import simulate_image

    image = tmp_path / "img.npy"
    np.save(image, simulate_image("MoS2", 256, 0.012, seed=1).image)
    out = tmp_path / "labels.csv"
    out.write_text(content)
    assert main(["detect", str(image), "--pixel-size-nm", "0.012", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and "give another --out" in err and "Traceback" not in err
    assert out.read_text() == content


def test_version_and_reader_notes_once(tmp_path, capsys):
    """--version answers; an RGB file's conversion note is printed once, as a plain line."""
    from PIL import Image

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("atomdefect ")
    rgb = tmp_path / "colour.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")).save(rgb)
    assert main(["detect", str(rgb), "--out", str(tmp_path / "d.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("converted to greyscale") == 1 and "Warning" not in err


def test_a_frame_of_a_single_image_is_refused(tmp_path, capsys):
    """--frame 3 on a 2-D image was accepted silently (the image analysed as it is)."""
    from napari_atomdefect.core.simulate.image import simulate_image

    np.save(tmp_path / "one.npy", simulate_image("MoS2", 96, 0.012, seed=0).image)
    assert main(["detect", str(tmp_path / "one.npy"), "--frame", "3",
                 "--out", str(tmp_path / "d.csv")]) == 2
    assert "is a single image, not a stack: --frame 3" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()


def test_a_region_beyond_the_image_is_said(tmp_path, capsys):
    """--region reaching past the image was clipped silently; now the line says what is
    analysed."""
    from napari_atomdefect.core.simulate.image import simulate_image

    np.save(tmp_path / "one.npy", simulate_image("MoS2", 160, 0.012, seed=0).image)
    assert main(["detect", str(tmp_path / "one.npy"), "--pixel-size-nm", "0.012",
                 "--region", "0:200,0:160", "--out", str(tmp_path / "d.csv")]) == 0
    assert ("--region 0:200,0:160 reaches beyond the image (160 x 160 px): analysed up to its "
            "edge (rows 0:160, columns 0:160).") in capsys.readouterr().err
    # Wholly outside: one sentence, exit 2, no "analysed up to its edge" before it.
    assert main(["detect", str(tmp_path / "one.npy"), "--pixel-size-nm", "0.012",
                 "--region", "500:600,0:10", "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("atomdefect: --region 500:600,0:10 lies outside the image (160 x 160 px: "
                   "rows 0:160, columns 0:160).")
    assert not (tmp_path / "e.csv").exists()


def test_a_pixel_size_no_material_can_have_stops_the_run(tmp_path, capsys):
    """Trial, twenty-first session: a pixel size 10× off (a lattice constant of 3 nm) was kept
    with two notes and every nm value written 10× wrong. It stops the run with one sentence
    (CLI exit 2, no file; the API raises); one a material could have (17 % off) is kept, said."""
    from napari_atomdefect.core.detect.detect import detect
    from napari_atomdefect.core.errors import AtomDefectError
    from napari_atomdefect.core.simulate.image import simulate_image

    sim = simulate_image("MoS2", 256, 0.012, seed=1)
    np.save(tmp_path / "img.npy", sim.image)
    out = tmp_path / "d.csv"
    assert main(["detect", str(tmp_path / "img.npy"), "--pixel-size-nm", "0.12",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "makes the lattice constant 3.1" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.raises(AtomDefectError, match="no supported material has"):
        detect(sim.image, 0.0012)
    assert main(["detect", str(tmp_path / "img.npy"), "--pixel-size-nm", "0.014",
                 "--out", str(out)]) == 0
    assert pd.read_csv(out)["y_nm"].div(pd.read_csv(out)["y_px"]).median() == \
        pytest.approx(0.014, rel=1e-3)


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """Trial, twenty-first session: ``atomdefect evaluate … --json | head -c 10`` said
    "atomdefect: Broken pipe." and exited 2."""
    import subprocess
    import sys

    from napari_atomdefect.core.io.table import defects_table, write_csv_atomic

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"y_px": rng.uniform(0, 500, 400), "x_px": rng.uniform(0, 500, 400),
                          "class": ["V_S"] * 400})
    write_csv_atomic(defects_table(table, 0.012), tmp_path / "a.csv")
    code = ("import sys; from napari_atomdefect.cli import main; "
            "sys.exit(main(['evaluate', sys.argv[1], sys.argv[1], '--json']))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "a.csv")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader stops before the table is written (`| head -c 0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Broken pipe" not in err and "Traceback" not in err


def test_the_packages_warnings_are_plain_lines_and_view_needs_a_display(tmp_path, capsys,
                                                                        monkeypatch):
    """Docs trial, twenty-second session: `evaluate` (and `demo`) printed Python's warning form
    (`cli.py:466: UnknownClassWarning: …` and a line of source); `view` without a display
    aborted with Qt's core dump. One plain line each now."""
    import subprocess
    import sys

    (tmp_path / "found.csv").write_text("y_px,x_px,class\n1,2,V_Q\n")
    (tmp_path / "truth.csv").write_text("y_px,x_px,class\n1,2,V_S\n")
    # (a process of its own: pytest records warnings instead of printing them)
    err = subprocess.run([sys.executable, "-m", "napari_atomdefect.cli", "evaluate",
                          str(tmp_path / "found.csv"), str(tmp_path / "truth.csv")],
                         capture_output=True, text=True, timeout=120).stderr
    assert "atomdefect: found.csv: 1 class name(s) are not defect classes" in err
    assert "UnknownClassWarning" not in err and "cli.py" not in err
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["view"]) == 2
    assert "No display to open napari on" in capsys.readouterr().err


@pytest.mark.parametrize("args, said", [
    (["simulate", "--size", "0"], "--size: must be at least 32 pixels"),
    (["simulate", "--dose", "-5"], "--dose: must be a dose of 0"),
    (["train-detector", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["train-detector", "--steps", "0"], "--steps: must be at least 1"),
    (["train-detector", "--n-images", "0"], "--n-images: must be at least 1"),
    (["train-detector", "--translated-fraction", "2"], "must lie between 0 and 1"),
    (["train-detector", "--name", "mos2-default"], "is the name of a bundled model"),
    (["calibrate-model", "--size", "16"], "--size: must be at least 32 pixels"),
])
def test_bad_training_and_simulation_options_are_refused_at_once(tmp_path, capsys, args, said):
    """Options that would crash (a 0-pixel image), train nothing (0 steps) or a NaN model
    (batch 0), or hide a user model behind a bundled one are refused before any work, one
    sentence and exit 2."""
    assert main(args + ["--out", str(tmp_path / "x")] if args[0] == "simulate" else args) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_training_never_replaces_a_folder_that_is_not_a_model(tmp_path, capsys):
    """``--out`` naming a folder of other files, or a file, is refused before the training
    (a trial's folder was deleted with its contents after a training wrote over it)."""
    kept = tmp_path / "my results"
    kept.mkdir()
    (kept / "notes.txt").write_text("keep")
    as_file = tmp_path / "model.txt"
    as_file.write_text("keep")
    for out in (kept, as_file):
        assert main(["train-detector", "--steps", "1", "--n-images", "1", "--val-images", "1",
                     "--out", str(out)]) == 2
        assert "choose another --out" in capsys.readouterr().err
    assert (kept / "notes.txt").read_text() == "keep" and as_file.read_text() == "keep"
    from napari_atomdefect.core.models.registry import ModelError, write_model

    with pytest.raises(ModelError, match="not a model folder"):
        write_model(kept, {"name": "x"})
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_another_materials_model_runs_and_says_whose_classes_it_names(tmp_path, capsys):
    """``--model wse2-default`` on a MoS2 analysis: the lattice is MoS2's, the classes the
    model's, said once (a trial's run stopped at "'S' is not a substituent ... in MoS2")."""
    out = tmp_path / "sim"
    assert main(["simulate", "--size", "256", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["detect", str(out / "image.tif"), "--model", "wse2-default",
                 "--out", str(tmp_path / "d.csv")]) == 0
    err = capsys.readouterr().err
    assert "The model was trained for WSe2, not MoS2" in err
    classes = set(pd.read_csv(tmp_path / "d.csv")["class"])
    assert classes and classes <= {"V_Se", "V_Se2", "S_Se", "S2_Se2", "V_W"}


def test_detect_over_an_edited_table_keeps_it_as_previous(tmp_path, capsys):
    """``detect --out`` over a table edited by hand that kept ``source`` ``model`` (nothing
    marks it as a user's) replaces it, but keeps it beside as ``NAME.previous.csv`` and says
    so; the same result again leaves no copy behind."""
    out = tmp_path / "sim"
    assert main(["simulate", "--size", "256", "--out", str(out)]) == 0
    csv = tmp_path / "d.csv"
    args = ["detect", str(out / "image.tif"), "--out", str(csv)]
    assert main(args) == 0
    assert main(args) == 0
    assert not (tmp_path / "d.previous.csv").exists()
    edited = pd.read_csv(csv).iloc[1:]
    edited.to_csv(csv, index=False)
    kept = csv.read_bytes()
    capsys.readouterr()
    assert main(args) == 0
    assert "d.csv replaced is kept as d.previous.csv" in capsys.readouterr().err
    assert (tmp_path / "d.previous.csv").read_bytes() == kept
    assert len(pd.read_csv(csv)) == len(edited) + 1


def test_demo_on_a_bad_image_leaves_no_folder(tmp_path, capsys):
    """A demo whose image cannot be used says so and leaves no empty --out folder behind."""
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"garbage" * 10)
    assert main(["demo", str(bad), "--out", str(tmp_path / "dd")]) == 2
    assert not (tmp_path / "dd").exists()


def test_the_quick_look_draws_each_class_in_its_symbol():
    """defects.png drew every class as a circle (a trial): a class is drawn in its layer's
    colour and symbol, a square where a vacancy's circle would be round."""
    from napari_atomdefect.core.io.preview import legend_text, overlay

    image = np.zeros((40, 40))
    disc = overlay(image, {"V_S": [[20.0, 20.0]]}, radius=8)
    square = overlay(image, {"V_S2": [[20.0, 20.0]]}, radius=8)
    drawn = lambda rgb: np.argwhere(rgb.sum(axis=2) > 0)  # noqa: E731
    square_sides = np.abs(drawn(square) - 20).max(axis=1)  # (Chebyshev distance from the centre)
    disc_sides = np.abs(drawn(disc) - 20).max(axis=1)
    assert np.ptp(square_sides) <= 1 and np.ptp(disc_sides) >= 2  # flat sides, round outline
    assert tuple(square[drawn(square)[0][0], drawn(square)[0][1]]) == (255, 32, 32)  # V_S2 red
    assert legend_text(["V_S", "O_S", "Se2_S2"]) == ("V_S circles, O_S downward triangles, "
                                                     "Se2_S2 stars")


def test_detect_says_its_outcome_before_its_notes(tmp_path, monkeypatch):
    """Trial, forty-third session: four to six paragraphs of notes came before the line that
    says what was found. The outcome comes first now, then each note on a line of its own."""
    import io

    from napari_atomdefect.core.simulate.image import simulate_image

    np.save(tmp_path / "one.npy", simulate_image("MoS2", 256, 0.012, seed=2).image)
    both = io.StringIO()  # stdout and stderr as one terminal shows them
    monkeypatch.setattr(sys, "stdout", both)
    monkeypatch.setattr(sys, "stderr", both)
    # (no pixel size in a bare .npy: the lattice calibrates it, and says so)
    assert main(["detect", str(tmp_path / "one.npy"), "--out", str(tmp_path / "d.csv")]) == 0
    lines = both.getvalue().strip().splitlines()
    # (what the reader says of the file comes as it is read, before the long part)
    assert lines[0].startswith("one: no pixel size in the file"), lines
    outcome = [k for k, line in enumerate(lines) if " unit cells (" in line]
    calibrated = [k for k, line in enumerate(lines) if line.startswith("Pixel size calibrated")]
    assert outcome == [1] and lines[1].endswith(str(tmp_path / "d.csv")), lines
    assert calibrated and calibrated[0] > 1, lines
