"""``atomdefect batch``: many images on dask.distributed, resumable, one CSV per image or frame."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from napari_atomdefect.cli import main  # noqa: E402
from napari_atomdefect.core.detect import batch as batch_mod  # noqa: E402
from napari_atomdefect.core.detect.batch import (  # noqa: E402
    SUMMARY_COLUMNS,
    batch,
    expand_inputs,
    plan_items,
)
from napari_atomdefect.core.detect.detect import detect  # noqa: E402
from napari_atomdefect.core.errors import AtomDefectError  # noqa: E402
from napari_atomdefect.core.io.image import read_image, write_tiff  # noqa: E402
from napari_atomdefect.core.io.table import read_defects_csv  # noqa: E402
from napari_atomdefect.core.simulate.image import simulate_image  # noqa: E402

PX = 0.012


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two calibrated TIFFs, a 2-frame stack without calibration and a corrupt TIFF."""
    root = tmp_path_factory.mktemp("batch_in")
    for k in range(2):
        write_tiff(root / f"img{k}.tif", simulate_image("MoS2", 256, PX, seed=k).image, PX)
    frames = [simulate_image("MoS2", 256, PX, seed=10 + k).image for k in range(2)]
    np.save(root / "movie.npy", np.stack(frames))
    (root / "bad.tif").write_bytes(b"garbage" * 10)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def expected(folder):
    """What ``detect`` finds in each image or frame: ``{(file name, frame): table}``."""
    out = {}
    for name in ("img0.tif", "img1.tif", "movie.npy"):
        img = read_image(folder / name)
        frames = list(enumerate(img.data)) if img.is_stack else [(None, img.data)]
        for frame, data in frames:
            out[(name, frame)] = detect(data, img.pixel_size_nm, "MoS2", calibration="file")
    return out


def _fresh_worker_state():
    batch_mod._WORKER_MODELS.clear()
    batch_mod._MODEL_LOADS.clear()
    batch_mod._TORCH_THREADS.clear()


def _no_partials(out):
    return [p.name for p in out.iterdir() if p.name.endswith(".part") or p.name.startswith(".")]


def _check_ok_rows(summary, out, expected):
    ok = summary[summary.status == "ok"]
    assert len(ok) == 4
    for row in ok.itertuples():
        name = os.path.basename(row.image)
        frame = None if pd.isna(row.frame) else int(row.frame)
        truth = expected[(name, frame)]
        assert row.n_defects == len(truth)
        for c in ("V_S", "V_S2", "O_S", "V_Mo"):
            assert getattr(row, f"n_{c}") == int((truth["class"] == c).sum())
            assert getattr(row, f"per_cell_{c}") == pytest.approx(
                (truth["class"] == c).sum() / row.n_cells, abs=1e-5)
        assert row.defects_per_nm2 == pytest.approx(row.n_defects / row.area_nm2, rel=1e-4)
        assert row.area_nm2 == pytest.approx(row.n_cells * np.sqrt(3) / 2 * 0.316 ** 2, rel=0.03)
        table = read_defects_csv(out / row.csv)
        assert list(table.columns) == list(truth.columns)
        np.testing.assert_allclose(table[["y_px", "x_px"]], truth[["y_px", "x_px"]], atol=1e-3)
        assert table["class"].tolist() == truth["class"].tolist()


def test_batch_folder_with_corrupt_file_then_resume(folder, expected, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _fresh_worker_state()
    summary = batch([str(folder)], out, workers=2, processes=False)

    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 5  # 2 images + 2 frames + 1 bad file; notes.txt is not an image
    bad = summary[summary.status == "error"]
    assert bad.image.tolist() == [str(folder / "bad.tif")]
    message = bad.error.iloc[0]
    assert message.startswith("bad.tif could not be read as a .tif image") and "\n" not in message
    assert bad.column_fwhm_nm.isna().all()
    ok = summary[summary.status == "ok"]  # (each image's column width: the simulator's probes)
    assert ok.column_fwhm_nm.between(0.06, 0.14).all()
    _check_ok_rows(summary, out, expected)
    movie = summary[summary.image.str.endswith("movie.npy")]
    assert movie.frame.tolist() == [0, 1]
    assert movie.csv.tolist() == ["movie_f0000.csv", "movie_f0001.csv"]
    assert set(movie.pixel_size_source) == {"lattice"}
    assert set(summary[summary.image.str.endswith(".tif") & (summary.status == "ok")]
               .pixel_size_source) == {"file"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["img0.csv", "img1.csv", "movie_f0000.csv", "movie_f0001.csv", "summary.csv"])
    on_disk = pd.read_csv(out / "summary.csv")
    assert on_disk.n_defects.fillna(-1).tolist() == summary.n_defects.fillna(-1).tolist()
    # the model is loaded once in this process although two workers ran four frames
    assert batch_mod.model_load_count() == 1
    assert batch_mod._TORCH_THREADS == [max(1, batch_mod._available_cores() // 2)]

    # rerun: nothing finished is recomputed, the bad file is tried again
    calls = []
    real = batch_mod.detect_frame
    monkeypatch.setattr(batch_mod, "detect_frame", lambda *a: calls.append(1) or real(*a))
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv") if p.name != "summary.csv"}
    again = batch([str(folder)], out, workers=2, processes=False)
    assert calls == []
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv")
            if p.name != "summary.csv"} == mtimes
    pd.testing.assert_frame_equal(again.drop(columns="time_s"), summary.drop(columns="time_s"))

    # a stack with one frame lost: only that frame is redone
    (out / "movie_f0001.csv").unlink()
    again = batch([str(folder)], out, workers=1, processes=False)
    assert len(calls) == 1
    assert (out / "movie_f0000.csv").stat().st_mtime_ns == mtimes["movie_f0000.csv"]
    _check_ok_rows(again, out, expected)
    assert _no_partials(out) == []


def test_real_scheduler_workers_load_model_once(folder, expected, tmp_path):
    from distributed import Client, LocalCluster

    for name in ("img0.tif", "img1.tif"):
        shutil.copy(folder / name, tmp_path / name)
    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        summary = batch([str(tmp_path / "*.tif")], out, scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            loads = client.run(batch_mod.model_load_count)
            threads = client.run(lambda: list(batch_mod._TORCH_THREADS))
    assert summary.status.tolist() == ["ok", "ok"]
    for row in summary.itertuples():
        assert row.n_defects == len(expected[(os.path.basename(row.image), None)])
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1
    cores = batch_mod._available_cores()
    assert all(t in ([], [max(1, cores // 2)]) for t in threads.values())


def test_output_names_unique_when_stems_collide(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "scan.npy", np.zeros((8, 8), np.float32))
    (tmp_path / "a" / "summary.npy").write_bytes(b"")
    (tmp_path / "a" / "other.npy").write_bytes(b"")
    files = expand_inputs([str(tmp_path / "*" / "scan.npy"), str(tmp_path / "a")])
    assert [f.parent.name + "/" + f.name for f in files] == [
        "a/scan.npy", "b/scan.npy", "a/other.npy", "a/summary.npy"]
    bases = [i.base for i in plan_items(files)]
    assert len(set(bases)) == 4
    assert bases[0].startswith("scan-") and bases[1].startswith("scan-")
    assert bases[2] == "other" and bases[3].startswith("summary-")
    assert bases == [i.base for i in plan_items(files)]  # stable from run to run
    names = [i.base for i in plan_items([tmp_path / "movie.npy", tmp_path / "movie_f0001.tif",
                                         tmp_path / "clip_f0001.tif"])]
    assert names[0] == "movie" and names[1].startswith("movie_f0001-") and names[2] == "clip_f0001"

    # A linked file keeps the name it was given (a trial's links to many "image.npy" came out
    # as image.csv / image-HASH.csv); a file reached twice is analysed once.
    links = tmp_path / "links"
    links.mkdir()
    (links / "first_scan.npy").symlink_to(tmp_path / "a" / "scan.npy")
    (links / "second_scan.npy").symlink_to(tmp_path / "b" / "scan.npy")
    files = expand_inputs([str(links), str(tmp_path / "a" / "scan.npy")])
    assert [f.name for f in files] == ["first_scan.npy", "second_scan.npy"]
    assert [i.base for i in plan_items(files)] == ["first_scan", "second_scan"]

    with pytest.raises(AtomDefectError, match="No files match"):
        expand_inputs([str(tmp_path / "*.dm4")])
    with pytest.raises(AtomDefectError, match="No such file or folder"):
        expand_inputs([str(tmp_path / "missing.tif")])


def test_cli_batch(folder, expected, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for stale in (".img0.csv.x1y2z3.part", ".summary.csv.a1b2c3.part", ".img0_f0002.csv.zz.part"):
        (out / stale).write_text("left by a killed run")
    (out / "mine.part").write_text("not ours")
    args = ["batch", str(folder / "img0.tif"), str(folder / "bad.tif"), "--out", str(out),
            "--workers", "1", "--pixel-size-nm", "0.012", "--no-progress"]
    assert main(args) == 0
    captured = capsys.readouterr()
    n = len(expected[("img0.tif", None)])
    assert f"2 files: 1 ok, 1 error (0 files already done); {n} defects" in captured.out
    assert "bad.tif could not be read" in captured.err
    summary = pd.read_csv(out / "summary.csv")
    ok = summary[summary.status == "ok"]
    assert ok.n_defects.tolist() == [n] and ok.pixel_size_source.tolist() == ["user"]
    assert summary.substituents.tolist() == ["O", "O"]  # (the failed file's row too)
    assert ok.csv.tolist() == ["img0.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["img0.csv", "mine.part", "summary.csv"]
    # one of the two files given again: the closing line says the other is from an earlier run
    assert main([a for a in args if a != str(folder / "bad.tif")]) == 0
    assert "(1 file already done)" in (said := capsys.readouterr().out) and \
        "1 of these files is from earlier runs into this folder" in said

    assert main(["batch", str(tmp_path / "nothere.tif"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"atomdefect: No such file or folder: {tmp_path / 'nothere.tif'}."

    # the same folder with other settings: one sentence, nothing changed (a rerun would skip
    # the finished image and mix two analyses)
    before = (out / "summary.csv").read_text()
    # (and another operating point: a docs trial's rerun skipped every image and reported the
    # old counts)
    assert ok.operating_point.tolist() == ["neutral"]
    for other in (["--material", "WS2"], ["--substituents", "O,Se"],
                  ["--operating-point", "V_S=0.7"], ["--pixel-size-nm", "0.02"]):
        assert main(args[:-1] + other + ["--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "holds 1 results of another analysis" in err and "choose another --out" in err
        assert (out / "summary.csv").read_text() == before


def test_foreign_summary_is_left_alone(folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("a,b\n1,2\n")
    (out / ".img0.csv.abc123.part").write_text("half")
    assert main(["batch", str(folder / "img0.tif"), "--out", str(out), "--no-progress"]) == 2
    assert "is not a batch summary" in capsys.readouterr().err
    assert (out / "summary.csv").read_text() == "a,b\n1,2\n"
    assert not (out / "img0.csv").exists()


def test_failed_write_leaves_no_partial_file(folder, tmp_path, monkeypatch):
    real_to_csv = pd.DataFrame.to_csv

    def disk_full(self, fh, *args, **kwargs):
        if "confidence" in self.columns:  # a defect table, not the summary
            fh.write("y_px,x_px\n1.0,")
            raise OSError(28, "No space left on device")
        return real_to_csv(self, fh, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    out = tmp_path / "out"
    summary = batch([str(folder / "img0.tif")], out, workers=1, processes=False)
    assert summary.status.tolist() == ["error"]
    assert summary.error.iloc[0] == (f"Cannot write {out / 'img0.csv'}: No space left on device; "
                                     "nothing was changed.")
    assert [p.name for p in out.iterdir()] == ["summary.csv"]

    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    summary = batch([str(folder / "img0.tif")], out, workers=1, processes=False)
    assert summary.status.tolist() == ["ok"] and (out / "img0.csv").is_file()


def test_cli_ctrl_c_says_how_to_continue(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        yield {"step": "batch", "done_files": 3, "total_files": 7, "skipped": 1, "message": "x"}
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_mod, "iter_batch", interrupted)
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path), "--out", str(out), "--no-progress"]) == 130
    # no summary written yet (workers may have written a CSV the run did not record)
    assert capsys.readouterr().err == (
        "atomdefect: interrupted after 3 of 7 files; no file was recorded as finished yet. Run "
        "the same command again to continue (files not recorded are analysed again).\n")
    out.mkdir()
    (out / "summary.csv").write_text("image\n")
    assert main(["batch", str(tmp_path), "--out", str(out), "--no-progress"]) == 130
    assert capsys.readouterr().err == (
        f"atomdefect: interrupted after 3 of 7 files; {out}/summary.csv lists the finished ones. "
        "Run the same command again to continue (files not recorded are analysed again).\n")


def test_operating_point_reaches_every_image(folder, tmp_path, capsys):
    """The batch applies the operating point it is given, as `detect` does; a bad one stops
    before any work with one sentence."""
    out = tmp_path / "strict"
    summary = batch([str(folder / "img0.tif")], out, workers=1, processes=False,
                    operating_point="V_S=0.99")
    found = pd.read_csv(out / summary["csv"].iloc[0])
    img = read_image(folder / "img0.tif")
    strict = detect(img.data, img.pixel_size_nm, calibration="file", operating_point="V_S=0.99")
    neutral = detect(img.data, img.pixel_size_nm, calibration="file")
    assert (found["class"] == "V_S").sum() == (strict["class"] == "V_S").sum()
    assert (strict["class"] == "V_S").sum() < (neutral["class"] == "V_S").sum()
    assert main(["batch", str(folder / "img0.tif"), "--out", str(tmp_path / "bad"),
                 "--operating-point", "V_S=2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert not (tmp_path / "bad").exists()


def test_batch_with_se_uses_the_alloy_model(tmp_path, capsys):
    """MoS2 with Se looked for: every image is read by mos2-alloy, as detect would choose, and
    the Se substitutions (the alloy's composition) are counted per class, not as defects."""
    path = tmp_path / "alloy.tif"
    write_tiff(path, simulate_image("MoS2", 256, PX, seed=3, substituents="O,Se",
                                    defect_fractions={"Se_S": 0.2, "Se2_S2": 0.03, "V_S": 0.04,
                                                      "V_Mo": 0.02}).image, PX)
    out = tmp_path / "alloy"
    args = ["batch", str(path), "--out", str(out), "--workers", "1", "--substituents", "O,Se",
            "--no-progress"]
    assert main(args) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary.model.tolist() == ["mos2-alloy"] and summary.status.tolist() == ["ok"]
    img = read_image(path)
    same = detect(img.data, img.pixel_size_nm, "MoS2", calibration="file", substituents="O,Se")
    assert same.attrs["model"] == "mos2-alloy"
    alloying = same["class"].isin(["Se_S", "Se2_S2"]).sum()
    assert alloying >= 10 and summary.n_defects.tolist() == [len(same) - alloying]
    assert summary.n_Se_S.tolist() == [(same["class"] == "Se_S").sum()]
    # the summary names the substituents looked for; the closing line counts the alloying
    # substitutions apart (a trial read "N defects" as every call)
    assert summary.substituents.tolist() == ["O,Se"]
    said = capsys.readouterr().out
    assert (f"{len(same) - alloying} defects and {alloying} alloying substitutions (not counted "
            "as defects)") in said and "(0 files already done)" in said


def test_a_batch_where_nothing_could_be_analysed_ends_with_status_2(folder, tmp_path, capsys):
    """Every input an error: the summary is written and lists it, and the exit status says
    the run produced nothing (a script cannot tell otherwise)."""
    out = tmp_path / "out"
    assert main(["batch", str(folder / "bad.tif"), "--out", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "1 file: 0 ok, 1 error" in captured.out
    summary = pd.read_csv(out / "summary.csv")
    assert summary.status.tolist() == ["error"]


def test_a_given_pixel_size_drops_the_files_missing_one_from_the_notes(folder, tmp_path):
    """Trial, twenty-first session: with --pixel-size-nm every row's notes still said "no pixel
    size in the file; it will be calibrated from the lattice" beside pixel_size_source user."""
    out = tmp_path / "out"
    assert main(["batch", str(folder / "movie.npy"), "--out", str(out), "--workers", "1",
                 "--pixel-size-nm", str(PX), "--no-progress"]) == 0
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert set(summary.pixel_size_source) == {"user"}
    assert not summary.notes.str.contains("no pixel size in the file").any()


def test_a_folders_renderings_beside_its_data_are_left_out(tmp_path, capsys):
    """Trial, twenty-first session: a folder's preview.png beside its scans was analysed as one
    more image. PNG/JPEG images beside data files are left out (said); named, they are read."""
    from PIL import Image

    from napari_atomdefect.core.detect.batch import expand_inputs

    folder = tmp_path / "scans"
    folder.mkdir()
    write_tiff(folder / "scan.tif", simulate_image("MoS2", 128, PX, seed=1).image, PX)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "preview.png")
    notes: list[str] = []
    assert [p.name for p in expand_inputs([str(folder)], notes)] == ["scan.tif"]
    assert len(notes) == 1 and "left out 1 PNG/JPEG image" in notes[0]
    assert [p.name for p in expand_inputs([str(folder / "preview.png")])] == ["preview.png"]
    only = tmp_path / "pngs"
    only.mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(only / "a.png")
    assert [p.name for p in expand_inputs([str(only)])] == ["a.png"]
    out = tmp_path / "out"
    assert main(["batch", str(folder), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "left out 1 PNG/JPEG image" in capsys.readouterr().err
    assert [os.path.basename(p) for p in pd.read_csv(out / "summary.csv")["image"]] == ["scan.tif"]


def test_cli_batch_prints_each_images_notes_and_refuses_bad_options_first(folder, tmp_path,
                                                                          capsys):
    """The calibration and model-fit notes of each image reach the terminal, not only the
    summary's notes column (a trial's batch of WS2 images analysed as MoS2 said nothing); an
    implausible pixel size is refused before any image, as ``detect`` does."""
    out = tmp_path / "out"
    assert main(["batch", str(folder / "movie.npy"), "--out", str(out), "--workers", "1",
                 "--material", "WS2", "--no-progress"]) == 0
    err = capsys.readouterr().err
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert len(summary) == 2 and all(summary.notes)
    for row in summary.itertuples():
        assert f"movie.npy frame {row.frame}: {row.notes}" in err
        assert not row.notes.startswith("movie:")  # (the row names its image once)
        # the pairs the image could not tell apart, as its defect CSV writes them
        own = pd.read_csv(out / row.csv, keep_default_na=False)
        assert {row.overlaps} == set(own["overlaps"]) or (not row.overlaps and own.empty)
    assert "calibrated from the lattice" in err and "Metal/chalcogen contrast" in err
    # A rerun skips the finished images and does not say their notes again (trial, 25th
    # session); they stay in the summary.
    assert main(["batch", str(folder / "movie.npy"), "--out", str(out), "--workers", "1",
                 "--material", "WS2", "--no-progress"]) == 0
    again = capsys.readouterr()
    assert "already done" in again.out + again.err
    assert "calibrated from the lattice" not in again.err
    assert main(["batch", str(folder / "img0.tif"), "--out", str(tmp_path / "o2"),
                 "--pixel-size-nm", "10"]) == 2
    assert "implausible" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_batch_never_replaces_a_users_table_where_its_csv_goes(folder, tmp_path, capsys):
    """A table of the user's where a batch CSV would go (hand corrections, labels) is left as
    it is and that image is an error row saying why (a trial's batch replaced both)."""
    out = tmp_path / "out"
    out.mkdir()
    labels = "y_px,x_px,class\n10,12,V_S\n"
    (out / "img0.csv").write_text(labels)
    manual = ("y_px,x_px,y_nm,x_nm,class,confidence,source\n"
              "10,12,0.12,0.144,V_S,1.0,manual\n")
    (out / "img1.csv").write_text(manual)
    assert main(["batch", str(folder / "img0.tif"), str(folder / "img1.tif"), "--out", str(out),
                 "--workers", "1", "--pixel-size-nm", "0.012", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "ground-truth labels or an annotation" in err and "you added or corrected" in err
    assert (out / "img0.csv").read_text() == labels and (out / "img1.csv").read_text() == manual
    summary = pd.read_csv(out / "summary.csv")
    assert (summary.status == "error").all()


def test_the_summary_gives_an_alloys_composition(tmp_path):
    """Trial, thirty-seventh session: a conversion study wants the Se share of each image; the
    summary had it only in the notes' Vegard sentence. It has a <D>_fraction column per
    alloying substituent of the run (O is a defect, not an alloy)."""
    from napari_atomdefect.core.detect.batch import alloy_elements, summary_columns

    assert alloy_elements(("V_S", "V_S2", "O_S", "Se_S", "Se2_S2", "V_W")) == ["Se"]
    assert "Se_fraction" in summary_columns(("V_S", "Se_S", "Se2_S2"))
    assert not any(c.endswith("_fraction") for c in SUMMARY_COLUMNS)  # (MoS2 + O)
    c = 0.3
    sim = simulate_image("WS2", 256, PX, seed=3, substituents="Se",
                         defect_fractions={"Se_S": 2 * c * (1 - c), "Se2_S2": c * c})
    write_tiff(tmp_path / "alloy.tif", sim.image, PX)
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "alloy.tif"), "--out", str(out), "--workers", "1",
                 "--material", "WS2", "--substituents", "Se", "--no-progress"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    chalc = sim.sites[sim.sites["sublattice"] == "chalcogen"]["class"].astype(str)
    truth = (chalc.eq("Se_S").sum() + 2 * chalc.eq("Se2_S2").sum()) / (2 * len(chalc))
    assert summary["Se_fraction"].iloc[0] == pytest.approx(truth, abs=0.03)


def test_the_documented_summary_columns_are_the_files_in_order():
    """docs/batch.md lists the summary's columns in the file's order (a docs trial found
    ``overlaps`` and ``device`` out of place)."""
    import re
    from pathlib import Path

    from napari_atomdefect.core.detect.batch import summary_columns

    doc = (Path(__file__).resolve().parents[1] / "docs" / "batch.md").read_text(encoding="utf-8")
    table = doc.split("## Summary columns", 1)[1].split("\n\n", 3)[2]
    documented = []
    for row in table.splitlines()[2:]:
        cell = row.split(" | ")[0]
        documented += re.findall(r"`([^`]+)`", cell)
    classes = ("V_S", "V_S2", "Se_S", "Se2_S2", "V_W")
    expected = summary_columns(classes)
    per_class = {f"{kind}_CLASS" for kind in ("n", "per_nm2", "per_cell")}
    collapsed = []
    for name in expected:  # (the per-class and per-substituent columns documented once)
        name = re.sub(r"^(n|per_nm2|per_cell)_(" + "|".join(classes) + ")$", r"\1_CLASS", name)
        name = re.sub(r"^[A-Z][a-z]?_fraction$", "D_fraction", name)
        if name not in collapsed:
            collapsed.append(name)
    assert per_class <= set(documented)
    assert documented == collapsed
