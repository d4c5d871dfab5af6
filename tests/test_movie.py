"""Movies: detection frame by frame with drift, tracks against a simulated ground truth, CSV
round trip with frame/track_id, and the CLI's --all-frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from napari_atomdefect.cli import main
from napari_atomdefect.core.detect.movie import (
    counts_per_frame,
    cumulative_dose,
    dose_per_frame,
    iter_detect_frames,
    lattice_drift,
    link_tracks,
    resolve_drift,
    track_layer_data,
)
from napari_atomdefect.core.errors import AtomDefectError, TableError
from napari_atomdefect.core.io.table import read_defects_csv, table_from_points, write_csv_atomic
from napari_atomdefect.core.progress import run_to_end
from napari_atomdefect.core.simulate.movie import simulate_movie


@pytest.fixture(scope="module")
def movie():
    return simulate_movie("MoS2", 256, n_frames=5, pixel_size_nm=0.012, seed=0)


@pytest.fixture(scope="module")
def detected(movie):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # model-fit notes are not what these tests check
        result = run_to_end(iter_detect_frames(movie.frames, movie.pixel_size_nm, device="cpu"))
    return result


def match_to_truth(found: pd.DataFrame, truth: pd.DataFrame, radius: float) -> pd.Series:
    """For each true defect, the track of the detection within ``radius`` in its frame (-1: none)."""
    out = pd.Series(-1, index=truth.index)
    for f, part in truth.groupby("frame"):
        det = found[found["frame"] == f]
        if det.empty:
            continue
        d, k = cKDTree(det[["y_px", "x_px"]].to_numpy()).query(part[["y_px", "x_px"]].to_numpy())
        out.loc[part.index] = np.where(d < radius, det["track_id"].to_numpy()[k], -1)
    return out


def linking_accuracy(found: pd.DataFrame, truth: pd.DataFrame, radius: float) -> float:
    """Fraction of the true frame-to-frame links (same true track, consecutive frames) whose two
    detections carry the same track id."""
    truth = truth.assign(found=match_to_truth(found, truth, radius)).sort_values(
        ["track_id", "frame"])
    good = total = 0
    for _, t in truth.groupby("track_id"):
        for (_, a), (_, b) in zip(t.iterrows(), t.iloc[1:].iterrows(), strict=False):
            total += 1
            good += int(a.found >= 0 and a.found == b.found)
    return good / total


def test_simulated_movie_truth(movie):
    assert movie.frames.shape == (5, 256, 256)
    assert movie.truth["track_id"].nunique() == 4
    # Vacancies appear later and hop one lattice constant; one turns into a V_S2 at its site.
    assert movie.truth.groupby("track_id")["frame"].min().max() > 0
    a = np.hypot(*movie.a1_px)
    for _, t in movie.truth.groupby("track_id"):
        ij = t[["i", "j"]].to_numpy()
        steps = np.abs(np.diff(ij, axis=0)).max(axis=1) if len(ij) > 1 else np.zeros(0)
        assert steps.max(initial=0) <= 1
    assert set(movie.truth["class"]) == {"V_S", "V_S2"}
    assert a == pytest.approx(0.316 / 0.012, rel=1e-3)


def test_lattice_drift_is_followed(movie, detected):
    # The measured lattice drift follows the specimen drift (to a fraction of a pixel).
    np.testing.assert_allclose(detected["drift_px"], movie.drift_px, atol=0.6)
    table = detected["defects"]
    assert sorted(table["frame"].unique()) == [0, 1, 2, 3, 4]
    assert table.attrs["pixel_size_nm"] == pytest.approx(0.012)
    assert len(table.attrs["frames"]) == 5


def test_tracks_against_ground_truth(movie, detected):
    tracks = link_tracks(detected["defects"])
    a = tracks.attrs["tracking"]["a_px"]
    truth = movie.truth
    found = match_to_truth(tracks, truth, 0.3 * a)
    assert (found >= 0).mean() >= 0.9  # recall of the true vacancies over all frames
    # One track per true vacancy (tracks of a single detection are stray detections).
    lengths = tracks.groupby("track_id").size()
    assert (lengths >= 2).sum() == truth["track_id"].nunique()
    assert linking_accuracy(tracks, truth, 0.3 * a) >= 0.85  # 0.92 at seed 0
    # The vacancy that becomes a V_S2 keeps its track through the class change.
    first = truth[truth["track_id"] == 0]
    ids = match_to_truth(tracks, first, 0.3 * a)
    assert ids.nunique() == 1 and ids.iloc[0] >= 0


def test_link_tracks_exact_on_truth(movie):
    truth = movie.truth.rename(columns={"track_id": "true_track"})
    drift = {k: movie.drift_px[k].tolist() for k in range(len(movie.drift_px))}
    linked = link_tracks(truth, a_px=float(np.hypot(*movie.a1_px)), drift_px=drift)
    assert linked["track_id"].nunique() == 4
    pairs = linked.groupby("true_track")["track_id"].nunique()
    assert (pairs == 1).all()
    assert linking_accuracy(linked, movie.truth, 1.0) == 1.0
    # Without drift correction a fast drift breaks the tracks.
    moved = truth.copy()
    moved["y_px"] += 20.0 * moved["frame"]
    broken = link_tracks(moved, a_px=float(np.hypot(*movie.a1_px)), drift_px={})
    assert broken["track_id"].nunique() > 4
    fixed = link_tracks(moved, a_px=float(np.hypot(*movie.a1_px)),
                        drift_px={k: [20.0 * k + drift[k][0], drift[k][1]] for k in drift})
    assert fixed["track_id"].nunique() == 4


def test_link_tracks_memory_and_sublattices():
    a = 26.0
    rows = [(0, 50.0, 50.0, "V_S"), (1, 50.5, 50.0, "V_S"), (3, 50.0, 50.5, "O_S"),
            (0, 50.0, 65.0, "V_Mo"), (1, 50.0, 65.0, "V_Mo")]
    table = pd.DataFrame(rows, columns=["frame", "y_px", "x_px", "class"])
    linked = link_tracks(table, a_px=a, memory=1)
    ids = linked["track_id"].tolist()
    assert ids[0] == ids[1] == ids[2]  # blinked in frame 2, class change V_S -> O_S: one track
    assert ids[3] == ids[4] != ids[0]  # a metal-site defect never continues a chalcogen track
    no_memory = link_tracks(table, a_px=a, memory=0)["track_id"].tolist()
    assert no_memory[2] != no_memory[0]
    assert linked.attrs["tracking"]["library"].startswith("trackpy")
    # the class of the track over all its frames (V_S twice against O_S once), the per-frame
    # calls kept; one of two tracks over two or more frames changes class, and is said
    assert linked["track_class"].tolist()[:3] == ["V_S"] * 3
    assert linked["class"].tolist()[2] == "O_S" and linked["track_class"].tolist()[3] == "V_Mo"
    assert linked.attrs["tracking"]["changing_class"] == (1, 2)
    from napari_atomdefect.core.detect.movie import changing_class_message

    assert changing_class_message(linked).startswith("1 of 2 tracks are called more than one")
    assert changing_class_message(linked[linked["class"] != "O_S"]) is None
    # A vacancy that loses its second atom and stays so is an event, said apart (a trial: 11 of
    # 12 "changing" tracks were V_S -> V_S2, the message blamed the V_S/O_S split).
    rows = [(f, 50.0, 50.0, "V_S" if f < 3 else "V_S2") for f in range(6)] + [
        (f, 90.0, 50.0, ("V_S", "O_S")[f % 2]) for f in range(6)]
    flips = link_tracks(pd.DataFrame(rows, columns=["frame", "y_px", "x_px", "class"]), a_px=a)
    said = changing_class_message(flips)
    assert said.startswith("1 of 2 tracks change class once and keep it (V_S → V_S2 1)"), said
    assert "1 of 2 tracks are called more than one class back and forth" in said
    data = track_layer_data(linked)
    assert data.shape == (5, 4)
    np.testing.assert_array_equal(data[:3, 1], [0, 1, 3])


def test_a_hop_keeps_its_track_unless_the_search_range_is_shorter_than_a_hop():
    """An independent movie's hops (one lattice constant) all kept their tracks at the default
    range and all broke at 0.5 — which the README gave as an example, and nothing said so."""
    a = 26.0
    rows = [(f, 50.0, 50.0 + (a if f >= 3 else 0.0), "V_S") for f in range(6)]
    table = pd.DataFrame(rows, columns=["frame", "y_px", "x_px", "class"])
    table.attrs["messages"] = ["detection's sentence"]
    linked = link_tracks(table, a_px=a)
    assert linked["track_id"].nunique() == 1 and linked.attrs["tracking"]["message"] is None
    assert linked.attrs["messages"] == ["detection's sentence"]
    short = link_tracks(table, a_px=a, search_range=0.5)
    assert short["track_id"].tolist() == [0, 0, 0, 1, 1, 1]
    said = short.attrs["tracking"]["message"]
    assert said.startswith("A search range of 0.5 lattice constants cannot link a defect that "
                           "hops to a neighbouring site")
    assert short.attrs["messages"] == ["detection's sentence", said]
    assert table.attrs["messages"] == ["detection's sentence"]  # (the input's left as it was)


def test_link_tracks_errors():
    with pytest.raises(AtomDefectError, match="no 'frame' column"):
        link_tracks(pd.DataFrame({"y_px": [1.0], "x_px": [1.0], "class": ["V_S"]}), a_px=20)
    with pytest.raises(AtomDefectError, match="lattice constant is unknown"):
        link_tracks(pd.DataFrame({"frame": [0], "y_px": [1.0], "x_px": [1.0], "class": ["V_S"]}))
    empty = link_tracks(pd.DataFrame({"frame": [], "y_px": [], "x_px": [], "class": []}), a_px=9)
    assert list(empty["track_id"]) == []


def test_iter_detect_frames_cancel_and_range(movie):
    gen = iter_detect_frames(movie.frames, movie.pixel_size_nm, device="cpu")
    items = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for item in gen:
            items.append(item)
            if item.get("frame") == 1:
                break
    gen.close()  # Cancel between (or within) frames: nothing is returned
    assert not any(i.get("done") for i in items)
    fractions = [i["fraction"] for i in items]
    assert fractions == sorted(fractions) and max(fractions) < 0.5
    assert items[-1]["message"].startswith("Frame 1 (2 of 5)")
    with pytest.raises(AtomDefectError, match="Frame 7 is out of range"):
        next(iter_detect_frames(movie.frames, 0.012, frames=[0, 7]))


def test_counts_and_dose():
    table = pd.DataFrame({"frame": [0, 0, 2, 2, 2], "class": ["V_S", "V_Mo", "V_S", "V_S",
                                                             "V_S2"]})
    counts = counts_per_frame(table, frames=[0, 1, 2])
    assert counts.loc[0, "V_S"] == 1 and counts.loc[1].sum() == 0
    assert counts.loc[2, "V_S"] == 2 and counts.loc[2, "V_S2"] == 1
    assert dose_per_frame({"atomdefect": {"dose_e_per_A2_per_frame": 2e4}}) == 2e4
    assert dose_per_frame({"x": {"y": {"dose_e_per_A2_per_frame": [1, 2, 3]}}}) == [1, 2, 3]
    assert dose_per_frame({"dose": 5}) is None
    np.testing.assert_allclose(cumulative_dose(2e4, [0, 1, 2]), [2e4, 4e4, 6e4])
    np.testing.assert_allclose(cumulative_dose([1, 2, 3], [0, 2]), [1, 6])
    assert cumulative_dose([1, 2], [0, 5]) is None


def test_movie_csv_round_trip(tmp_path):
    data = np.array([[0, 10.5, 20.25], [3, 11.0, 19.75], [3, 40.0, 41.0]])
    features = pd.DataFrame({"class": ["V_S", "V_S2", "V_Mo"], "confidence": [0.9, 0.8, 1.0],
                             "source": ["model", "model", "manual"],
                             "track_id": [4, 4, np.nan]})
    table = table_from_points(data, features, 0.012)
    assert table["frame"].tolist() == [0, 3, 3]
    assert table["track_id"].tolist() == [4, 4, -1]
    # each track's class over its frames, recomputed from the calls as they are now (V_S 0.9
    # against V_S2 0.8); a point without a track keeps its own
    assert table["track_class"].tolist() == ["V_S", "V_S", "V_Mo"]
    write_csv_atomic(table, tmp_path / "m.csv", float_format=None)
    back = read_defects_csv(tmp_path / "m.csv")
    assert back["frame"].tolist() == [0, 3, 3] and back["track_id"].tolist() == [4, 4, -1]
    np.testing.assert_array_equal(back[["y_px", "x_px"]].to_numpy(), data[:, 1:])
    (tmp_path / "bad.csv").write_text("y_px,x_px,class,frame\n1,2,V_S,1.5\n")
    with pytest.raises(TableError, match="row 2 has frame '1.5'"):
        read_defects_csv(tmp_path / "bad.csv")
    (tmp_path / "old.csv").write_text("y_px,x_px,class\n1,2,V_S\n")
    assert "frame" not in read_defects_csv(tmp_path / "old.csv").columns


def test_cli_all_frames(tmp_path, movie, capsys):
    from napari_atomdefect.core.io.image import write_tiff

    path = tmp_path / "movie.tif"
    write_tiff(path, movie.frames[:3], movie.pixel_size_nm)
    assert main(["detect", str(path), "--out", str(tmp_path / "d.csv")]) == 2
    err = capsys.readouterr().err
    assert "--frame N" in err and "--all-frames" in err and "Traceback" not in err
    # Uncalibrated: the stack sentence alone (no "it will be calibrated" before a refusal).
    np.save(tmp_path / "movie.npy", movie.frames[:3])
    assert main(["detect", str(tmp_path / "movie.npy"), "--out", str(tmp_path / "n.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atomdefect: movie is a stack of 3 frames") and "\n" not in err, err
    out = tmp_path / "all.csv"
    assert main(["detect", str(path), "--all-frames", "--device", "cpu", "--out", str(out)]) == 0
    table = read_defects_csv(out)
    assert sorted(table["frame"].unique()) == [0, 1, 2]
    assert (table["track_id"] >= 0).all()
    assert table.attrs["material"] == "MoS2"  # the movie's table names its run too
    truth = movie.truth[movie.truth["frame"] < 3]
    a = np.hypot(*movie.a1_px)
    assert (match_to_truth(table, truth, 0.3 * a) >= 0).mean() >= 0.9
    text = capsys.readouterr().out
    assert "3 frames" in text and "tracks" in text
    assert main(["detect", str(path), "--frame", "1", "--device", "cpu", "--out",
                 str(tmp_path / "one.csv")]) == 0
    assert "frame" not in read_defects_csv(tmp_path / "one.csv").columns
    assert main(["detect", str(path), "--frame", "1", "--all-frames", "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["detect", str(path), "--all-frames", "--memory", "-1", "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "--memory is a number of frames" in capsys.readouterr().err
    # --min-track-frames keeps the defects seen in that many frames (their tracks, whole).
    assert main(["detect", str(path), "--all-frames", "--device", "cpu", "--min-track-frames",
                 "2", "--out", str(tmp_path / "kept.csv")]) == 0
    kept = read_defects_csv(tmp_path / "kept.csv")
    spans = table.groupby("track_id")["frame"].nunique()
    want = table[table["track_id"].map(spans) >= 2]
    assert len(kept) == len(want) and 0 < len(kept) <= len(table)
    assert set(kept["track_id"]) == set(want["track_id"])
    assert f"(of {len(table)}: those seen in at least 2 frames" in capsys.readouterr().out
    for bad, said in ((["--min-track-frames", "0", "--all-frames"], "1 or more"),
                      (["--min-track-frames", "2", "--frame", "0"], "give --all-frames")):
        assert main(["detect", str(path), *bad, "--out", str(tmp_path / "x.csv")]) == 2
        assert said in capsys.readouterr().err


def test_track_frames_and_persistent_defects():
    from napari_atomdefect.core.detect.movie import persistent_defects, track_frames

    table = pd.DataFrame({"frame": [0, 1, 2, 0, 2, 1, 1],
                          "track_id": [0, 0, 0, 1, 1, 2, -1],
                          "class": ["V_S"] * 7, "y_px": 0.0, "x_px": 0.0})
    table.attrs["a_px"] = 26.0
    np.testing.assert_array_equal(track_frames(table), [3, 3, 3, 2, 2, 1, 1])
    kept = persistent_defects(table, 2)
    assert list(kept.index) == [0, 1, 2, 3, 4] and kept.attrs["min_track_frames"] == 2
    assert kept.attrs["a_px"] == 26.0
    assert len(persistent_defects(table, 1)) == 7
    with pytest.raises(AtomDefectError, match="at least 1 frame"):
        persistent_defects(table, 0)


def test_lattice_drift_reduces_to_the_nearest_lattice_translation():
    from types import SimpleNamespace

    a1, a2 = np.array([0.0, 26.0]), np.array([22.5167, 13.0])
    prev = SimpleNamespace(a1_px=a1, a2_px=a2, origin_px=np.array([100.0, 100.0]))
    # The new origin is another metal site: origin moved by 2.5 px plus one lattice vector.
    cur = SimpleNamespace(a1_px=a1, a2_px=a2, origin_px=np.array([102.5, 99.0]) - a1 + a2)
    np.testing.assert_allclose(lattice_drift(prev, cur), [2.5, -1.0], atol=1e-9)


def test_link_tracks_crowded_and_bad_memory():
    rng = np.random.default_rng(0)
    a = 26.0
    parts = [pd.DataFrame({"frame": f, "y_px": rng.uniform(0, 1024, 1500),
                           "x_px": rng.uniform(0, 1024, 1500), "class": "V_S"})
             for f in range(3)]
    # Crowded (trackpy alone stops at a subnetwork of 30+ candidates): the search range narrows
    # where needed, and no link is longer than the search range.
    linked = link_tracks(pd.concat(parts, ignore_index=True), a_px=a)
    steps = (linked.sort_values(["track_id", "frame"]).groupby("track_id")[["y_px", "x_px"]]
             .diff().dropna())
    assert len(steps) > 500 and np.hypot(steps.y_px, steps.x_px).max() <= 1.2 * a
    with pytest.raises(AtomDefectError, match="memory of the tracks"):
        link_tracks(parts[0], a_px=a, memory=-1)
    with pytest.raises(AtomDefectError, match="No frame to analyse"):
        next(iter_detect_frames(np.zeros((0, 64, 64)), 0.012))




def test_movie_specimen_scatter_and_contamination_stay_with_the_specimen():
    """A column's own scatter and the contamination belong to the specimen: they drift with the
    lattice instead of being drawn anew in every frame."""
    from scipy import ndimage

    from napari_atomdefect.core.simulate.image import MicroscopeParams

    def movie(scatter: float, contamination: float):
        params = MicroscopeParams(drift_nm=0.0, row_jitter_nm=0.0, column_scatter=scatter,
                                  contamination=contamination, contamination_length_nm=0.6,
                                  dose_e_per_A2=None, background=0.0)
        return simulate_movie("MoS2", 192, n_frames=3, pixel_size_nm=0.012, n_vacancies=0,
                              drift_px_per_frame=(6.0, -4.0), params=params, seed=3)

    plain, specimen = movie(0.0, 0.0), movie(0.08, 0.1)
    inner = (slice(30, -30), slice(30, -30))
    added = specimen.frames[0] - plain.frames[0]  # what the scatter and contamination add
    assert np.std(added[inner]) > 0.05 * np.mean(plain.frames[0])

    def moved_back(m, f):  # frame f shifted back onto frame 0
        return ndimage.shift(m.frames[f], -m.drift_px[f], order=3) - m.frames[0]

    # Frame 2 moved back onto frame 0 differs from it (interpolation, per-frame scan) no more
    # than in a movie without scatter or contamination, though these add more than that: were
    # they drawn anew in every frame, the difference would grow by about their size.
    np.testing.assert_allclose(specimen.drift_px, plain.drift_px)
    left, plain_left = np.std(moved_back(specimen, 2)[inner]), np.std(moved_back(plain, 2)[inner])
    assert np.std(added[inner]) > plain_left
    assert left < 1.1 * plain_left


def test_a_bicrystal_movie_follows_one_grain():
    """Two grains in every frame: the drift follows the grain of the first frame's orientation,
    whichever grain a later frame finds first."""
    import warnings

    from napari_atomdefect.core.detect.movie import iter_detect_frames
    from napari_atomdefect.core.progress import run_to_end
    from tests.scenarios import bicrystal_image

    _, _, image = bicrystal_image()
    moved = np.roll(image, (3, 2), axis=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect_frames(np.stack([image, moved]), 0.012, "MoS2"))
    assert all(len(la.messages) and any("2 grains" in m for m in la.messages)
               for la in result["lattices"])
    np.testing.assert_allclose(result["drift_px"][1], [3.0, 2.0], atol=0.5)
    assert set(result["defects"]["frame"]) == {0, 1}


def test_two_classes_that_overlap_are_said_once_for_the_whole_movie(movie, monkeypatch):
    """Each frame's overlap sentence (its own counts, either class first) gives way to one
    sentence with the movie's counts, in the table's messages and in the lines the Detect dock
    shows; the pair reaches the table (Statistics marks its rows)."""
    import napari_atomdefect.core.detect.detect as detect_module
    import napari_atomdefect.core.detect.movie as movie_module
    from napari_atomdefect.core.detect.overlap import ClassOverlap

    calls = iter(range(1, 100))
    monkeypatch.setattr(detect_module, "overlap_message",
                        lambda overlaps, **_: (
                            f"V_S and O_S overlap in this image: {next(calls)} of 9."
                            if next(calls) % 2 else "O_S and V_S overlap in this image: 2 of 9."))
    seen = []

    def overlaps_of(sites):
        seen.append(len(sites))
        return [ClassOverlap(("V_S", "O_S"), (3, 2), (10, 5))]

    monkeypatch.setattr(movie_module, "class_overlaps", overlaps_of)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect_frames(movie.frames[:3], movie.pixel_size_nm,
                                               device="cpu"))
    table = result["defects"]
    assert seen == [len(table)]  # every frame's defect calls (a long movie's pristine sites
    # are not kept for it)
    want = ("V_S and O_S overlap in these frames: 3 of 10 V_S and 2 of 5 O_S calls are nearly "
            "as likely the other class")
    for said in (table.attrs["messages"], result["fit_messages"]):
        about = [m for m in said if "overlap" in m]
        assert len(about) == 1 and about[0].startswith(want), about
    assert table.attrs["class_overlaps"] == [["V_S", "O_S"]]


def test_a_fast_drift_is_decided_by_the_defects_that_stay():
    """A movie drifting 17 px a frame on a 26 px lattice (the lattice alone takes the shorter
    9 px the other way): the defects found again in the next frame tell the lattice translation,
    so the drift is followed, the tracks link and nothing is said."""
    fast = simulate_movie("MoS2", 384, n_frames=4, pixel_size_nm=0.012,
                          drift_px_per_frame=(14.0, -10.0), n_vacancies=12, hop_probability=0.2,
                          seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect_frames(fast.frames, fast.pixel_size_nm, device="cpu"))
    np.testing.assert_allclose(result["drift_px"], fast.drift_px, atol=0.6)
    assert not any("lattice moved" in m for m in result["defects"].attrs["messages"])
    linked = link_tracks(result["defects"])
    a = float(np.hypot(*fast.a1_px))
    assert linking_accuracy(linked, fast.truth, 0.3 * a) >= 0.9
    assert linked["track_id"].nunique() == fast.truth["track_id"].nunique()


def test_resolve_drift_lets_stayers_outvote_hoppers():
    a1, a2 = np.array([0.0, 26.0]), np.array([22.5167, 13.0])
    basis = np.stack([a1, a2], axis=1)
    rng = np.random.default_rng(1)
    prev = rng.uniform(0, 400, (8, 2))
    true = np.array([14.0, -10.0])
    shortest = true - a2 + a1  # what the lattice alone gives (9 px against 17)
    assert np.hypot(*shortest) < np.hypot(*true)
    cur = prev + true
    cur[:3] += a1  # three of eight hop one site the same way
    step, decided = resolve_drift(shortest, basis, prev, cur, 26.0)
    assert decided
    np.testing.assert_allclose(step, true)
    # Two defects cannot decide; nor can as many hoppers as stayers: the shortest is kept.
    step, decided = resolve_drift(shortest, basis, prev[:2], prev[:2] + true, 26.0)
    assert not decided
    np.testing.assert_allclose(step, shortest)
    tied = prev[:6] + true
    tied[:3] += a1
    step, decided = resolve_drift(shortest, basis, prev[:6], tied, 26.0)
    assert not decided
    np.testing.assert_allclose(step, shortest)


def test_resolve_drift_is_not_decided_by_chance_matches():
    """Many false calls per frame (a low-dose movie): under some wrong lattice translation a few
    of them land on the frame before's by chance; three against two is not evidence, so the
    shortest step is kept; twelve stayers among the same false calls decide."""
    a1, a2 = np.array([0.0, 26.0]), np.array([22.5167, 13.0])
    basis = np.stack([a1, a2], axis=1)
    sites = np.array([i * a1 + j * a2 for i in range(-20, 20) for j in range(-20, 20)])
    sites = sites[(sites.min(axis=1) > 0) & (sites.max(axis=1) < 500)]
    true = np.array([2.5, -1.5])
    rng = np.random.default_rng(4)
    best_wrong = 0
    for _ in range(20):
        prev = sites[rng.choice(len(sites), 18, replace=False)]
        cur = sites[rng.choice(len(sites), 18, replace=False)] + true  # false calls only
        step, decided = resolve_drift(true, basis, prev, cur, 26.0)
        assert not decided or np.allclose(step, true)
        far = [np.sum(np.hypot(*(cur[:, None] - n - prev[None]).T).T.min(axis=1) < 7.8)
               for n in _translations(true, basis)]
        best_wrong = max(best_wrong, max(far))
    assert best_wrong >= 3  # chance alone reached the old rule's three matches
    prev = sites[rng.choice(len(sites), 18, replace=False)]
    cur = np.concatenate([prev[:12], sites[rng.choice(len(sites), 6, replace=False)]]) + true
    step, decided = resolve_drift(true, basis, prev, cur, 26.0)
    assert decided
    np.testing.assert_allclose(step, true)


def test_a_decided_step_far_from_the_others_follows_them():
    """One step decided a lattice constant and more away from the movie's steady drift (a
    chance decision) takes the translation nearest the others; the others stay."""
    from napari_atomdefect.core.detect.movie import _follow_decided_steps

    a1, a2 = np.array([0.0, 26.0]), np.array([22.5167, 13.0])
    basis = np.stack([a1, a2], axis=1)
    true = np.array([2.5, -1.5])
    steps = [(k, true + 0.3 * (k % 3 - 1), basis, 26.0, True) for k in range(1, 8)]
    steps[3] = (4, true + 2 * a1 + a2, basis, 26.0, True)
    doubtful = _follow_decided_steps(steps)
    assert doubtful == []
    np.testing.assert_allclose(steps[3][1], true)
    assert all(np.hypot(*(s[1] - true)) < 0.5 for s in steps)


def _steps_of(frames_yx, shortest, basis, a_px):
    """``(steps, evidence)`` of a movie's defect positions as iter_detect_frames keeps them."""
    from napari_atomdefect.core.detect.movie import resolve_drift, translation_matches

    steps, evidence = [], []
    for k in range(1, len(frames_yx)):
        prev, cur = frames_yx[k - 1], frames_yx[k]
        step, decided = resolve_drift(shortest, basis, prev, cur, a_px)
        steps.append((k, step, basis, a_px, decided))
        evidence.append((*translation_matches(shortest, basis, prev, cur, a_px), a_px))
    return steps, evidence


def test_few_defects_hopping_together_do_not_move_a_slow_drift():
    """A slow movie (0.07 lattice constants a frame) whose three defects all hop by one lattice
    vector between two frames: that step alone is decided a lattice vector wrong by them; the
    defects of all steps together find the steady drift, and the step follows it (seen on a
    simulated movie whose calls were all right)."""
    from napari_atomdefect.core.detect.movie import _follow_decided_steps, steady_drift

    a1, a2 = np.array([2.4, 26.2]), np.array([23.9, 11.1])
    basis = np.stack([a1, a2], axis=1)
    true = np.array([1.4, -1.2])
    sites = np.array([[120.0, 80.0], [200.0, 150.0], [90.0, 260.0]])
    frames = [sites + k * true for k in range(6)]
    frames[2:] = [f - a2 for f in frames[2:]]  # all three hop by -a2 into frame 2
    steps, evidence = _steps_of(frames, true, basis, 26.3)
    assert steps[1][4] and np.hypot(*(steps[1][1] - (true - a2))) < 0.5  # one step: wrong
    steady = steady_drift(evidence)
    np.testing.assert_allclose(steady, true)
    assert _follow_decided_steps(steps, steady) == []
    assert all(np.hypot(*(s[1] - true)) < 0.5 for s in steps)


def test_a_movie_whose_defects_hop_together_keeps_its_drift():
    """End to end: the simulated MoS2 movie in which all three defects hopped by one lattice
    vector into frame 2 (its calls all right): the drift followed is the true one in every
    frame (it had been a lattice vector off from frame 2 on)."""
    m = simulate_movie("MoS2", 384, n_frames=6, pixel_size_nm=0.012, seed=3)
    hops = m.truth.pivot(index="track_id", columns="frame", values="j")
    assert (hops[2] - hops[1]).dropna().eq(-1).all()  # the common hop of the case
    result = run_to_end(iter_detect_frames(m.frames, 0.012, "MoS2", calibration="file"))
    np.testing.assert_allclose(result["drift_px"], m.drift_px, atol=0.5 * 26.3 / 3)


def test_a_fast_drift_found_in_one_step_holds_for_the_others():
    """A fast drift (0.7 lattice constants a frame, whose shortest lattice translation is 0.3
    lattice constants the other way): one step's defects decide it, the others find one defect
    again each; pooled, the fast drift holds for every step."""
    from napari_atomdefect.core.detect.movie import _follow_decided_steps, steady_drift

    a1, a2 = np.array([0.0, 26.0]), np.array([22.5167, 13.0])
    basis = np.stack([a1, a2], axis=1)
    true = 0.7 * a1
    rng = np.random.default_rng(4)
    frames = []
    for k in range(5):
        stay = np.array([[100.0, 100.0]] + ([[150.0, 60.0], [60.0, 170.0], [200.0, 220.0]]
                                           if k in (2, 3) else []))
        new = rng.uniform(40, 260, (3, 2))  # defects of this frame only
        frames.append(np.concatenate([stay, new]) + k * true)
    steps, evidence = _steps_of(frames, true - a1, basis, 26.0)
    assert sum(s[4] for s in steps) == 1
    steady = steady_drift(evidence)
    np.testing.assert_allclose(steady, true, atol=1e-6)
    _follow_decided_steps(steps, steady)
    assert all(np.hypot(*(s[1] - true)) < 0.5 for s in steps)


def _translations(step, basis):
    """Wrong lattice translations within three lattice constants of ``step``."""
    grid = [(i, j) for i in range(-4, 5) for j in range(-4, 5) if (i, j) != (0, 0)]
    moved = [step + basis @ np.array(g, float) for g in grid]
    return [m for m in moved if np.hypot(*(m - step)) <= 78.0]


def test_a_drift_near_half_a_lattice_constant_between_frames_is_said():
    """The lattice gives the drift only up to a lattice vector: a movie drifting 17 px a frame
    on a 26 px lattice with too few defects to tell (two vacancies) is told that its drift and
    tracks may be wrong (one sentence, in the table's messages and the widget's fit lines); with
    six in a larger field, frame 3 finds more of frame 2's defects again than chance would give
    (three of four against two is not: ``DRIFT_CHANCE``), and frame 2 follows its drift."""
    kwargs = dict(n_frames=3, pixel_size_nm=0.012, drift_px_per_frame=(14.0, -10.0), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        few = simulate_movie("MoS2", 256, n_vacancies=2, **kwargs)
        result = run_to_end(iter_detect_frames(few.frames, few.pixel_size_nm, device="cpu"))
        six = simulate_movie("MoS2", 384, n_vacancies=6, **kwargs)
        followed = run_to_end(iter_detect_frames(six.frames, six.pixel_size_nm, device="cpu"))
    said = [m for m in result["defects"].attrs["messages"] if "lattice moved" in m]
    assert said == [m for m in result["fit_messages"] if "lattice moved" in m]
    assert len(said) == 1 and "(into frame 1, 2)" in said[0], said
    np.testing.assert_allclose(followed["drift_px"], six.drift_px, atol=0.6)
    assert not any("lattice moved" in m for m in followed["defects"].attrs["messages"])


def test_a_slow_drift_is_not_said(detected):
    assert not any("lattice moved" in m for m in detected["defects"].attrs["messages"])


def test_a_frame_that_cannot_be_analysed_is_left_out_and_said(movie, detected, tmp_path, capsys):
    """A blank frame in a movie (a scan that failed) costs that frame only: the others are
    analysed as before, and one sentence names the frame left out (a trial's whole movie was
    refused with "The image is constant", no frame named). A movie with no usable frame is
    refused with the first frame's reason."""
    frames = movie.frames.copy()
    frames[2] = frames[2].mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect_frames(frames, movie.pixel_size_nm, device="cpu"))
    table = result["defects"]
    assert sorted(table["frame"].unique()) == [0, 1, 3, 4]
    full = detected["defects"]
    for k in (0, 1):  # frames before the blank one: the very same calls
        assert sorted(table[table.frame == k]["class"]) == sorted(full[full.frame == k]["class"])
    said = [m for m in table.attrs["messages"] if "left out" in m]
    assert said and said[0].startswith("Frame 2 could not be analysed") and "constant" in said[0]
    with pytest.raises(AtomDefectError, match="constant"):
        run_to_end(iter_detect_frames(np.ones((2, 128, 128), np.float32), 0.012, device="cpu"))
    np.save(tmp_path / "m.npy", frames)
    assert main(["detect", str(tmp_path / "m.npy"), "--all-frames", "--pixel-size-nm",
                 str(movie.pixel_size_nm), "--out", str(tmp_path / "m.csv")]) == 0
    assert "Frame 2 could not be analysed" in capsys.readouterr().err
    assert sorted(pd.read_csv(tmp_path / "m.csv")["frame"].unique()) == [0, 1, 3, 4]


def test_a_pixel_size_the_lattice_disagrees_with_is_said_once_for_the_movie(movie):
    """A pixel size the user gave that the lattice disagrees with is passed on to every frame;
    the movie says so once (it had been said again as "The first frame's pixel size (frame
    0)…", a trial)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_to_end(iter_detect_frames(movie.frames[:3], movie.pixel_size_nm * 1.15,
                                               device="cpu", calibration="user"))
    said = [m for m in result["defects"].attrs["messages"] if "pixel size" in m.lower()
            and "disagrees" in m]
    assert len(said) == 1 and said[0].startswith("The pixel size you gave"), said
