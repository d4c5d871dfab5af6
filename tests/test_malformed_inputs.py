"""Malformed-input corpus: every bad input gives one clear sentence (AtomDefectError, or exit 2
with one line on stderr) or a correct result; never a traceback, a hang, a partial or replaced file.

Reader, API, CLI, defect CSVs, model archives and output paths. Images are small (256 px) so that
the whole corpus runs in well under a minute.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_atomdefect._reader import get_reader, read_defects_layer
from napari_atomdefect.cli import main
from napari_atomdefect.core.errors import (
    AtomDefectError,
    BadImageError,
    DeviceError,
    ImageReadError,
    OutputError,
    TableError,
)
from napari_atomdefect.core.io.image import read_image, write_tiff
from napari_atomdefect.core.io.table import (
    UnknownClassWarning,
    read_defects_csv,
    table_from_points,
    write_csv_atomic,
)
from napari_atomdefect.core.lattice.lattice import find_lattice
from napari_atomdefect.core.models.registry import (
    BUNDLED_DIR,
    DEFAULT_MODEL,
    ModelError,
    import_model,
)
from napari_atomdefect.core.simulate.image import simulate_image

PX = 0.012


@pytest.fixture(scope="module")
def sim():
    """A 256 px MoS2 image with its true defects."""
    return simulate_image("MoS2", 256, PX, seed=5)


@pytest.fixture(scope="module")
def clean_cells(sim):
    return find_lattice(sim.image, "MoS2", pixel_size_nm=PX).n_cells


def within(seconds: float, fn, *args, **kwargs):
    """Run ``fn`` in a thread; fail (instead of hanging) if it takes longer than ``seconds``.

    Returns the result or re-raises the exception of ``fn``.
    """
    box: dict = {}

    def target():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} hung (> {seconds} s)"
    if "error" in box:
        raise box["error"]
    return box["result"]


def one_sentence(exc: BaseException) -> str:
    """The message of a clean error: one line, no dump, no traceback."""
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    assert 10 < len(text) < 400, text
    return text


def cli_error(argv: list[str], capsys, match: str) -> str:
    """Run the CLI; it must exit 2 with one line on stderr matching ``match``."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("atomdefect: ")
    assert re.search(match, lines[0], re.I), lines[0]
    return lines[0]


def no_leftovers(folder: Path) -> None:
    """No temporary files (``.part``, ``.probe``, hidden folders) remain in ``folder``."""
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == [], hidden


# ----------------------------------------------------------------------------------------------
# Reader: files that are not usable images


def _tif(tmp_path, data, name="img.tif"):
    path = tmp_path / name
    tifffile.imwrite(path, data)
    return path


def _npy(tmp_path, data, name="img.npy"):
    path = tmp_path / name
    np.save(path, data, allow_pickle=True)
    return path


def _truncated_tif(tmp_path, sim):
    path = _tif(tmp_path, sim.image)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])
    return path


READER_ERRORS = {
    "corrupt_tif": (lambda t, s: (t / "c.tif").write_bytes(os.urandom(4000)) and t / "c.tif",
                    "could not be read"),
    "empty_file": (lambda t, s: (t / "e.tif").write_bytes(b"") or t / "e.tif", "empty"),
    "wrong_extension": (lambda t, s: (t / "x.txt").write_text("1 2 3") and t / "x.txt",
                        "unsupported file type"),
    "png_named_tif": (lambda t, s: (t / "p.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
                      and t / "p.tif", "could not be read"),
    "npy_4d": (lambda t, s: _npy(t, np.zeros((2, 3, 64, 64), np.float32)), "4-D"),
    "npy_1d": (lambda t, s: _npy(t, np.arange(100.0)), "1-D"),
    "npy_complex": (lambda t, s: _npy(t, np.ones((64, 64), np.complex64)), "not real numbers"),
    "npy_bool": (lambda t, s: _npy(t, np.ones((64, 64), bool)), "not real numbers"),
    "npy_object_pickle": (lambda t, s: _npy(t, np.array([{"a": 1}], dtype=object)),
                          "holds Python objects"),
    "text_named_npy": (lambda t, s: (t / "t.npy").write_text("hello!") and t / "t.npy",
                       "not a NumPy .npy file"),
    "missing_file": (lambda t, s: t / "nope.tif", "No such file"),
    "folder": (lambda t, s: (t / "d.tif").mkdir() or t / "d.tif", "folder"),
}


@pytest.mark.parametrize("case", sorted(READER_ERRORS))
def test_reader_refuses_unusable_files(case, tmp_path, sim):
    build, match = READER_ERRORS[case]
    path = build(tmp_path, sim)
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path)
    one_sentence(info.value)


def test_reader_truncated_tif_is_an_error_or_the_full_image(tmp_path, sim):
    path = _truncated_tif(tmp_path, sim)
    try:
        img = read_image(path)
    except ImageReadError as exc:
        assert "could not be read" in one_sentence(exc)
    else:  # tifffile may fill the missing strips; then the shape must still be right
        assert img.data.shape == sim.image.shape


def test_reader_rgb_tif_becomes_grey(tmp_path, sim):
    rgb = np.repeat(sim.image[..., None], 3, axis=-1).astype(np.float32)
    with pytest.warns(UserWarning, match="greyscale"):
        img = read_image(_tif(tmp_path, rgb))
    np.testing.assert_allclose(img.data, sim.image, rtol=1e-6)


def test_reader_rgba_png_becomes_grey(tmp_path):
    from skimage.io import imsave

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    imsave(tmp_path / "a.png", rgba, check_contrast=False)
    with pytest.warns(UserWarning, match="greyscale"):
        img = read_image(tmp_path / "a.png")
    assert img.data.shape == (64, 64)
    assert img.data.mean() == pytest.approx(0.2125 * 200, rel=1e-3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_reader_and_lattice_survive_a_few_non_finite_pixels(bad, tmp_path, sim, clean_cells):
    data = sim.image.astype(np.float32).copy()
    data[10:14, 10:14] = bad
    img = read_image(_npy(tmp_path, data))
    assert ("16 pixels (<0.1%) are NaN or infinite; they are read as the image's median."
            in " ".join(img.messages))
    lat = within(30, find_lattice, img.data, "MoS2", pixel_size_nm=PX)
    assert abs(lat.n_cells - clean_cells) <= 2


def test_an_image_without_a_finite_pixel_is_not_opened_and_a_mostly_nan_one_is_told(tmp_path):
    """All NaN: nothing to show, one sentence at reading (it opened as an empty layer and
    failed only at detection); more NaN than detection accepts: said when it is read."""
    with pytest.raises(ImageReadError, match="every pixel is NaN or infinite") as info:
        read_image(_npy(tmp_path, np.full((64, 64), np.nan, np.float32)))
    one_sentence(info.value)
    half = np.ones((64, 64), np.float32)
    half[:32] = np.nan
    img = read_image(_npy(tmp_path, half))
    assert any("2048 pixels (50.0%) are NaN or infinite; above 5% detection refuses the image"
               in m for m in img.messages)


def test_cli_says_a_mostly_nan_image_is_refused_once(tmp_path, capsys):
    """The command line gives the refusal alone (the note read from the file said the same)."""
    half = np.ones((64, 64), np.float32)
    half[:32] = np.nan
    assert main(["detect", str(_npy(tmp_path, half)), "--pixel-size-nm", "0.012",
                 "--out", str(tmp_path / "d.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite" in err[0], err
    assert not (tmp_path / "d.csv").exists()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float16])
def test_reader_and_lattice_accept_integer_and_half_images(dtype, tmp_path, sim, clean_cells):
    data = sim.image - sim.image.min()
    data = (data / data.max() * (250 if dtype in (np.uint8,) else 1000)).astype(dtype)
    img = read_image(_tif(tmp_path, data))
    assert img.data.dtype == np.float32 and img.data.shape == (256, 256)
    lat = within(30, find_lattice, img.data, "MoS2", pixel_size_nm=PX)
    assert abs(lat.n_cells - clean_cells) <= 2


# ----------------------------------------------------------------------------------------------
# API: find_lattice / detect on bad content and bad arguments


ANALYSIS_ERRORS = {
    "constant": (np.full((256, 256), 7.0, np.float32), "constant"),
    "tiny": (np.random.default_rng(0).random((8, 8)), "too small"),
    "mostly_nan": (np.full((256, 256), np.nan, np.float32), "NaN"),
    "stack": (np.zeros((3, 64, 64), np.float32), "stack"),
    "rgb": (np.zeros((64, 64, 3), np.float32), "colour"),
    "complex": (np.ones((64, 64), np.complex64), "complex"),
    "bool": (np.ones((64, 64), bool), "not numeric"),
    "constant_with_hot_pixel": (np.where(np.eye(256, dtype=bool)[::97].any(0)[None, :]
                                         & np.eye(256, dtype=bool)[:1].T, 1e9, 3.0), "constant"),
}


@pytest.mark.parametrize("case", sorted(ANALYSIS_ERRORS))
def test_find_lattice_refuses_unanalysable_images(case):
    image, match = ANALYSIS_ERRORS[case]
    with pytest.raises(BadImageError, match=match) as info:
        within(20, find_lattice, image, "MoS2")
    one_sentence(info.value)


@pytest.mark.parametrize("value", [3e38, 1e300])
def test_extreme_pixels_neither_hang_nor_hide_the_lattice(value, sim, clean_cells):
    image = sim.image.astype(np.float64 if value > 1e38 else np.float32).copy()
    image[10, 10], image[200, 150] = value, -value
    lat = within(30, find_lattice, image, "MoS2")
    assert abs(lat.n_cells - clean_cells) <= 2
    assert lat.pixel_size_nm == pytest.approx(PX, rel=0.02)


def test_one_hot_pixel_does_not_make_the_image_amorphous(sim, clean_cells):
    image = sim.image.astype(np.float32).copy()
    image[100, 100] = 1000 * image.max()
    lat = within(30, find_lattice, image, "MoS2")
    assert abs(lat.n_cells - clean_cells) <= 2
    assert lat.pixel_size_nm == pytest.approx(PX, rel=0.02)


def test_image_at_huge_scale_is_analysed(sim, clean_cells):
    lat = within(30, find_lattice, sim.image.astype(np.float64) * 1e35, "MoS2")
    assert abs(lat.n_cells - clean_cells) <= 2


@pytest.mark.parametrize("value, match", [
    ("0.012", "must be a number"), (True, "must be a number"), ([0.012], "must be a number"),
    (-0.01, "positive"), (float("nan"), "positive"), (0.0, "positive"),
    (1e6, "implausible"), (1e-6, "implausible"),
])
def test_find_lattice_pixel_size_is_validated(value, match, sim):
    with pytest.raises(AtomDefectError, match=match) as info:
        find_lattice(sim.image, "MoS2", pixel_size_nm=value)
    one_sentence(info.value)


def test_implausible_file_pixel_size_is_replaced_by_the_lattice(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lat = find_lattice(sim.image, "MoS2", pixel_size_nm=1e6, calibration="file")
    assert lat.calibration == "lattice"
    assert lat.pixel_size_nm == pytest.approx(PX, rel=0.02)


def test_reader_drops_an_implausible_file_pixel_size(tmp_path, sim):
    write_tiff(tmp_path / "big.tif", sim.image, 5e3)
    img = read_image(tmp_path / "big.tif")
    assert img.pixel_size_nm is None and img.calibration == "none"
    assert any("implausible" in m for m in img.messages)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu"])
def test_detect_unknown_device(device, sim):
    from napari_atomdefect.core.detect.detect import detect

    with pytest.raises(DeviceError, match="Unknown device") as info:
        detect(sim.image, PX, device=device)
    one_sentence(info.value)


def test_detect_unavailable_cuda(sim):
    import torch

    from napari_atomdefect.core.detect.detect import detect

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(DeviceError, match="no CUDA GPU") as info:
        detect(sim.image, PX, device="cuda")
    one_sentence(info.value)


def test_detect_with_extreme_pixels_matches_the_clean_image(sim):
    from napari_atomdefect.core.detect.detect import detect

    clean = detect(sim.image, PX, device="cpu")
    image = sim.image.astype(np.float32).copy()
    image[10, 10], image[200, 150] = 3e38, -3e38
    dirty = within(60, detect, image, PX, device="cpu")
    assert len(clean) > 0
    assert abs(len(dirty) - len(clean)) <= 1


# ----------------------------------------------------------------------------------------------
# CLI: exit 2, one line on stderr, no traceback, nothing written


@pytest.fixture(scope="module")
def image_file(tmp_path_factory, sim):
    path = tmp_path_factory.mktemp("img") / "sim.tif"
    write_tiff(path, sim.image, PX)
    return path


@pytest.mark.parametrize("device", ["cuda", "tpu", "mps"])
def test_cli_detect_unavailable_device(device, image_file, tmp_path, capsys):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    mps = getattr(torch.backends, "mps", None)
    if device == "mps" and mps is not None and mps.is_available():
        pytest.skip("Apple MPS is present")
    out = tmp_path / "d.csv"
    cli_error(["detect", str(image_file), "--device", device, "--out", str(out)], capsys,
              "device|CUDA|MPS")
    assert not out.exists()


def _fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    return path


OUT_CASES = {
    "missing_folder": (lambda t: t / "no" / "such" / "d.csv", "does not exist"),
    "a_folder": (lambda t: t, "is a folder"),
    "file_as_folder": (lambda t: (t / "f.csv").write_text("x") and t / "f.csv" / "d.csv",
                       "is a file, not a folder"),
    "fifo": (_fifo, "not a regular file"),
    "dev_null": (lambda t: Path(os.devnull), "not a regular file"),
}


@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_cli_detect_bad_out_fails_before_the_run(case, image_file, tmp_path, capsys):
    build, match = OUT_CASES[case]
    out = build(tmp_path)
    before = os.stat(out) if os.path.exists(out) else None
    cli_error(["detect", str(image_file), "--out", str(out)], capsys, match)
    if before is not None:  # a device or a pipe is never replaced by a regular file
        after = os.stat(out)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    else:
        assert not out.exists()


def _read_only(folder: Path, monkeypatch):
    """Make ``folder`` read-only (as root, permissions do not bind: refuse file creation)."""
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        import tempfile

        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir) == folder:
                raise PermissionError(errno.EACCES, "Permission denied", str(folder))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_cli_detect_read_only_folder(image_file, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    try:
        cli_error(["detect", str(image_file), "--out", str(folder / "d.csv")], capsys,
                  "Permission denied")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("argv, match", [
    (["detect", "IMG", "--pixel-size-nm", "1e6"], "implausible"),
    (["detect", "IMG", "--pixel-size-nm", "abc"], "must be a number"),
    (["detect", "IMG", "--pixel-size-nm", "-1"], "positive"),
    (["lattice", "IMG", "--pixel-size-nm", "1e-7"], "implausible"),
    (["lattice", "IMG", "--frame", "x"], "invalid int"),
    (["frobnicate"], "invalid choice"),
    (["lattice"], "required"),
    (["lattice", "MISSING"], "No such file"),
    (["lattice", "CORRUPT"], "could not be read"),
])
def test_cli_argument_and_input_errors(argv, match, image_file, tmp_path, capsys):
    corrupt = tmp_path / "bad.tif"
    corrupt.write_bytes(os.urandom(3000))
    subst = {"IMG": str(image_file), "MISSING": str(tmp_path / "none.tif"),
             "CORRUPT": str(corrupt)}
    cli_error([subst.get(a, a) for a in argv], capsys, match)


def test_cli_simulate_disk_full_leaves_no_partial_file(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    out = tmp_path / "sim"
    cli_error(["simulate", "--size", "64", "--out", str(out)], capsys, "No space left")
    assert not (out / "defects.csv").exists()
    no_leftovers(out)


# ----------------------------------------------------------------------------------------------
# Defect CSVs: napari reader and `atomdefect evaluate`

GOOD_ROWS = "y_px,x_px,y_nm,x_nm,class,confidence,source\n" \
    "10.0,20.0,0.12,0.24,V_S,0.9,model\n50.0,60.0,0.6,0.72,V_Mo,1.0,manual\n"


def test_csv_with_bom_is_read_by_reader_and_evaluate(tmp_path, capsys):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_ROWS.encode())
    reader = get_reader(str(path))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(path))
    np.testing.assert_array_equal(data, [[10.0, 20.0], [50.0, 60.0]])
    assert list(kwargs["features"]["class"].astype(str)) == ["V_S", "V_Mo"]
    assert kwargs["scale"][0] == pytest.approx(0.012)
    assert main(["evaluate", str(path), str(path), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["V_S"]["tp"] == 1 and scores["V_Mo"]["tp"] == 1


CSV_ERRORS = {
    "empty_coordinate": ("y_px,x_px,class\n10,20,V_S\n,30,V_S\n", "row 3 has an empty y_px"),
    "non_numeric": ("y_px,x_px,class\n10,abc,V_S\n", "row 2 has a non-numeric or infinite x_px"),
    "nan_coordinate": ("y_px,x_px,class\nnan,4,V_S\n", "row 2 has an empty y_px"),
    "missing_column": ("y_px,class\n10,V_S\n", "lacks the column.*x_px"),
    "empty_file": ("", "is empty"),
    "non_numeric_nm": ("y_px,x_px,y_nm,x_nm,class\n1,2,abc,0.1,V_S\n", "non-numeric or infinite y_nm"),
    "not_utf8": (b"y_px,x_px,class\n1,2,V_\xff\xfe\n", "is not a text \\(CSV\\) file"),
    "infinite": ("y_px,x_px,class\ninf,4,V_S\n", "row 2 has a non-numeric or infinite y_px"),
    "surplus_field": ("y_px,x_px,class\n1,2,V_S,9\n", "more fields than the header"),
    "ragged_rows": ("y_px,x_px,class\n1,2,V_S\n3,4,V_S,7\n",
                    "line 3 has 4 fields where the first line has 3"),
    "json": ('{\n "pixel_size_A": 0.12,\n "shape": [198, 200],\n "a": [1, 2, 3]\n}\n',
             "cannot be read as a defect table"),
    "semicolons": ("y_px;x_px;class\n1;2;V_S\n", "lacks the column"),
}


@pytest.mark.parametrize("case", sorted(CSV_ERRORS))
def test_bad_csv_is_one_sentence_in_reader_and_evaluate(case, tmp_path, capsys):
    text, match = CSV_ERRORS[case]
    path = tmp_path / "t.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(TableError, match=match) as info:
        read_defects_csv(path)
    one_sentence(info.value)
    if get_reader(str(path)) is not None:
        with pytest.raises(TableError, match=match):
            read_defects_layer(str(path))
    cli_error(["evaluate", str(path), str(path), "--pixel-size-nm", "0.01"], capsys, match)


def test_classes_of_every_material_are_known(tmp_path, recwarn):
    """Se_S, V_W, Te2_Se2 are classes of WS2/WSe2 models: read without a warning, and the reader
    either opens them as they are or refuses with one sentence naming them (never drops them)."""
    path = tmp_path / "w.csv"
    path.write_text("y_px,x_px,class\n10,20,Se_S\n30,40,V_W\n50,60,Te2_Se2\n")
    assert list(read_defects_csv(path)["class"]) == ["Se_S", "V_W", "Te2_Se2"]
    assert not [w for w in recwarn if issubclass(w.category, UnknownClassWarning)]
    try:
        [(_, kwargs, kind)] = read_defects_layer(str(path))
    except TableError as exc:
        assert str(exc) == ("w.csv holds classes the defect layer cannot show yet ('Se_S', "
                            "'Te2_Se2', 'V_W'); opening it would lose them.")
    else:
        assert kind == "points"
        assert list(kwargs["features"]["class"].astype(str)) == ["Se_S", "V_W", "Te2_Se2"]


def test_unknown_classes_are_kept_not_dropped(tmp_path, capsys):
    path = tmp_path / "u.csv"
    path.write_text("y_px,x_px,class\n10,20,V_S\n30,40,Mo_S\n50,60,weird\n")
    with pytest.warns(UnknownClassWarning, match="'Mo_S', 'weird'"):
        table = read_defects_csv(path)
    assert list(table["class"]) == ["V_S", "Mo_S", "weird"]
    write_csv_atomic(table, tmp_path / "back.csv")
    with pytest.warns(UnknownClassWarning):
        assert list(read_defects_csv(tmp_path / "back.csv")["class"]) == ["V_S", "Mo_S", "weird"]
    # The Points layer can only hold known classes: the reader refuses rather than drop them.
    with pytest.raises(TableError, match="'Mo_S', 'weird'"):
        read_defects_layer(str(path))
    # evaluate keeps them (scored as classes of their own) and says so once.
    with pytest.warns(UnknownClassWarning):
        assert main(["evaluate", str(path), str(path), "--pixel-size-nm", "0.01", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["V_S"]["tp"] == 1 and scores["V_S"]["fp"] == 0


def test_header_only_csv_is_an_empty_table(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("y_px,x_px,class\n")
    table = read_defects_csv(path)
    assert len(table) == 0 and list(table.columns)[:2] == ["y_px", "x_px"]


# ----------------------------------------------------------------------------------------------
# Model archives: all or nothing


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("ATOMDEFECT_USER_MODELS", str(d))
    return d


def _card():
    return json.loads((BUNDLED_DIR / DEFAULT_MODEL / "card.json").read_text())


def _zip(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _detector_bytes():
    return (BUNDLED_DIR / DEFAULT_MODEL / "detector.safetensors").read_bytes()


def _detector_only_card(**arch):
    card = _card()
    card.pop("noise")
    card["name"] = "imp"
    card["detector"]["architecture"].update(arch)
    return card


def _corrupt_member(tmp_path):
    """A deflated detector whose compressed bytes are damaged (zlib.error or a bad CRC)."""
    path = _zip(tmp_path / "crc.zip", {"card.json": json.dumps(_detector_only_card()),
                                       "detector.safetensors": _detector_bytes()},
                zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("detector.safetensors")
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start:start + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    return path


ARCHIVE_CASES = {
    "corrupt_member": (_corrupt_member, "damaged"),
    "extra_member": (lambda t: _zip(t / "x.zip", {"card.json": json.dumps(_detector_only_card()),
                                                  "detector.safetensors": _detector_bytes(),
                                                  "run.py": "print(1)"}), "unexpected files run.py"),
    "unknown_architecture": (lambda t: _zip(t / "a.zip", {
        "card.json": json.dumps(_detector_only_card(depth_of_doom=3)),
        "detector.safetensors": _detector_bytes()}), "architecture this version cannot build"),
    "weights_do_not_fit_card": (lambda t: _zip(t / "w.zip", {
        "card.json": json.dumps(_detector_only_card(width=8)),
        "detector.safetensors": _detector_bytes()}), "do not fit the architecture"),
    "not_a_zip": (lambda t: (t / "n.zip").write_bytes(b"PK\x03\x04garbage") and t / "n.zip",
                  "not a model archive"),
    "card_not_json": (lambda t: _zip(t / "j.zip", {"card.json": "{name: "}), "not valid JSON"),
    "card_missing": (lambda t: _zip(t / "m.zip", {"detector.safetensors": b"x"}),
                     "card.json missing"),
    "weights_not_safetensors": (lambda t: _zip(t / "s.zip", {
        "card.json": json.dumps(_detector_only_card()),
        "detector.safetensors": b"\x80\x04pickle"}), "not a safetensors file"),
}


@pytest.mark.parametrize("case", sorted(ARCHIVE_CASES))
def test_model_import_is_all_or_nothing(case, tmp_path, user_dir):
    build, match = ARCHIVE_CASES[case]
    archive = build(tmp_path)
    with pytest.raises(ModelError, match=match) as info:
        import_model(archive)
    one_sentence(info.value)
    assert not user_dir.exists() or list(user_dir.iterdir()) == []


def test_model_import_refuses_a_bomb(tmp_path, user_dir, monkeypatch):
    import napari_atomdefect.core.models.registry as registry

    monkeypatch.setattr(registry, "MAX_ARCHIVE_BYTES", 1 << 20)
    archive = _zip(tmp_path / "bomb.zip", {"card.json": json.dumps(_detector_only_card()),
                                           "detector.safetensors": bytes(4 << 20)},
                   zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 100_000
    with pytest.raises(ModelError, match="too large"):
        import_model(archive)
    assert not user_dir.exists() or list(user_dir.iterdir()) == []


def test_card_weights_mismatch_when_loading_names_the_model(tmp_path):
    from napari_atomdefect.core.models.registry import load_detector, resolve_model

    folder = tmp_path / "mismatch"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps(_detector_only_card(width=8)))
    (folder / "detector.safetensors").write_bytes(_detector_bytes())
    with pytest.raises(ModelError, match="weights of model mismatch do not fit") as info:
        load_detector(resolve_model(folder), "cpu")
    one_sentence(info.value)


# ----------------------------------------------------------------------------------------------
# Output files: never half-written, never replacing what is not a regular file


def _table():
    return table_from_points(np.array([[1.0, 2.0]]), pd.DataFrame({"class": ["V_S"]}), PX)


@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_write_csv_refuses_bad_targets(case, tmp_path):
    build, match = OUT_CASES[case]
    out = build(tmp_path)
    before = os.stat(out) if os.path.exists(out) else None
    with pytest.raises(OutputError, match=match) as info:
        write_csv_atomic(_table(), out)
    one_sentence(info.value)
    if before is not None:
        assert os.stat(out).st_mode == before.st_mode
    else:
        assert not out.exists()


def test_write_csv_read_only_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            write_csv_atomic(_table(), folder / "t.csv")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("failing", ["write", "rename"])
def test_disk_full_keeps_the_old_file_and_no_temporary(failing, tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("old content\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "write":
        monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    else:
        monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="No space left on device") as info:
        write_csv_atomic(_table(), path)
    one_sentence(info.value)
    assert path.read_text() == "old content\n"
    no_leftovers(tmp_path)


def test_write_tiff_refuses_a_fifo(tmp_path, sim):
    out = _fifo(tmp_path)
    with pytest.raises(OutputError, match="not a regular file"):
        write_tiff(out, sim.image, PX)
    assert out.is_fifo()
    no_leftovers(tmp_path)


def test_api_arguments_said_in_one_sentence():
    """Trial, twenty-first session (a Python user): a rectangle with a number missing read as a
    mask of the wrong shape; tile_cells without a lattice raised an AttributeError."""
    from napari_atomdefect import tile_cells
    from napari_atomdefect.core.errors import AtomDefectError
    from napari_atomdefect.core.io.validate import check_region

    with pytest.raises(AtomDefectError, match=r"must be \(row0, row1, col0, col1\)"):
        check_region((0, 10, 0), (64, 64))
    # (trial, twenty-ninth session: the README's rectangle on a smaller image "held 0 pixels")
    with pytest.raises(AtomDefectError, match=r"lies outside the image \(512 x 512 px: rows "
                                              r"0:512, columns 0:512\)"):
        check_region((0, 1024, 512, 1024), (512, 512))
    with pytest.raises(AtomDefectError, match="is empty"):
        check_region((40, 10, 0, 64), (64, 64))
    assert check_region((-5, 40, 0, 80), (64, 64)).sum() == 40 * 64  # clipped to the image
    with pytest.raises(AtomDefectError, match="needs the image's lattice"):
        tile_cells(np.zeros((64, 64)), None)


@pytest.mark.parametrize("how", ["tiny", "huge", "offset"])
def test_intensity_scale_and_offset_do_not_change_the_calls(how, tmp_path, sim, capsys):
    """HAADF intensities are relative: the same image ×1e-15, as float64 ×1e40 (past 32-bit
    floats) or on a dark level of 1e9 (which 32-bit floats cannot resolve it on) gives the
    same calls — a trial's got 0 defects, "every pixel is NaN" and "the image is constant"."""
    base = np.asarray(sim.image, np.float64)
    data = {"tiny": (base * 1e-15).astype(np.float32), "huge": base * 1e40,
            "offset": base + 1e9}[how]
    tifffile.imwrite(tmp_path / "plain.tif", base.astype(np.float32))
    tifffile.imwrite(tmp_path / "changed.tif", data)
    for name in ("plain", "changed"):
        assert main(["detect", str(tmp_path / f"{name}.tif"), "--pixel-size-nm", str(PX),
                     "--out", str(tmp_path / f"{name}.csv")]) == 0
    plain, changed = (pd.read_csv(tmp_path / f"{n}.csv") for n in ("plain", "changed"))
    assert len(plain) >= 5
    assert sorted(changed["class"]) == sorted(plain["class"])
    np.testing.assert_allclose(np.sort(changed["y_px"]), np.sort(plain["y_px"]), atol=0.05)
    err = capsys.readouterr().err
    assert ("do not fit 32-bit floats" in err) == (how != "tiny")


def test_a_field_too_small_for_its_lattice_says_so(sim):
    """A 64 px field (two unit cells across) is not "amorphous or out of focus" only: the
    message names its size."""
    from napari_atomdefect.core.errors import NoLatticeError

    with pytest.raises(NoLatticeError, match=r"A field of 64 × 64 px may also hold too few"):
        find_lattice(sim.image[:64, :64], "MoS2", pixel_size_nm=PX)


@pytest.mark.parametrize("canvas", [768, 1024])
def test_a_frame_padded_with_zeros_is_analysed_where_the_image_is(canvas, tmp_path, sim):
    """An image centred in a zero border (a padded or registered frame; the crystal a quarter
    of the field or less): no call in the border, nearly the image's own calls (a trial's got
    576 calls in the border, or a ZeroDivisionError)."""
    from napari_atomdefect.core.detect.detect import detect

    n, o = canvas, (canvas - 256) // 2
    padded = np.zeros((n, n), np.float32)
    padded[o:o + 256, o:o + 256] = sim.image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = detect(sim.image, pixel_size_nm=PX)
        found = detect(padded, pixel_size_nm=PX)
    inside = ((found.y_px >= o - 1) & (found.y_px < o + 257)
              & (found.x_px >= o - 1) & (found.x_px < o + 257))
    assert inside.all()
    assert abs(len(found) - len(plain)) <= max(3, 0.2 * len(plain))


def test_a_user_model_with_a_broken_card_is_said_not_a_traceback(user_dir, capsys):
    """A user model whose card is a JSON list, or no JSON: ``models`` lists the others and says
    which is left out; naming it says its card is unreadable (a traceback; "no such folder")."""
    from napari_atomdefect.core.models.registry import ModelError, resolve_model

    for name, text in (("listcard", "[1, 2]"), ("broken", "{")):
        (user_dir / name).mkdir(parents=True)
        (user_dir / name / "card.json").write_text(text)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert main(["models"]) == 0
    out = capsys.readouterr()
    assert "mos2-default" in out.out
    told = " ".join(str(w.message) for w in said) + out.err
    assert "listcard is left out" in told and "broken is left out" in told
    for name in ("listcard", "broken"):
        with pytest.raises(ModelError, match="card.json is (unreadable|not a model card)"):
            resolve_model(name)
    with pytest.raises(ModelError, match="empty name"):
        resolve_model("")
