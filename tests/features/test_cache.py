"""Per-clip feature cache: keys follow every input, writes are atomic, corrupt entries heal."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from merkit.features import cache as cache_mod
from merkit.features.cache import FeatureCache, clip_key, clip_source

DESC = {"name": "lbp_top:r3p8", "params": {"radii": (3, 3, 3)}}
PRE = {"size": (112, 112), "length": 16, "align": False}


def _clip(folder: Path, numbers: range) -> dict:
    folder.mkdir(parents=True)
    for n in numbers:
        img = np.full((20, 16), n % 255, dtype=np.uint8)
        cv2.imwrite(str(folder / f"img{n}.jpg"), img)
    return {
        "dataset": "CASME2",
        "subject": "CASME2/01",
        "clip": "EP01_01",
        "frames_dir": str(folder),
        "video_path": None,
        "onset": numbers.start + 1,
        "offset": numbers.stop - 2,
    }


@pytest.fixture()
def row(tmp_path) -> dict:
    return _clip(tmp_path / "EP01_01", range(10, 20))


def test_source_lists_only_the_frames_in_the_range(row) -> None:
    src = clip_source(row)
    assert [e[0] for e in src["frames"]] == [f"img{n}.jpg" for n in range(11, 19)]
    assert all(e[1] > 0 and e[2] > 0 for e in src["frames"])


def test_key_is_stable_and_follows_every_input(row, monkeypatch) -> None:
    k = clip_key(row, DESC, PRE)
    assert len(k) == 64 and k == clip_key(dict(row), dict(DESC), dict(PRE))
    assert clip_key({**row, "offset": row["offset"] - 1}, DESC, PRE) != k
    assert clip_key({**row, "clip": "EP01_02"}, DESC, PRE) != k
    assert clip_key(row, {**DESC, "name": "lbp_top:r1p8"}, PRE) != k
    assert clip_key(row, DESC, {**PRE, "length": 8}) != k
    assert clip_key(row, DESC, {**PRE, "size": (64, 64)}) != k
    monkeypatch.setattr(cache_mod, "FEATURE_CODE_VERSION", "999")
    assert clip_key(row, DESC, PRE) != k


def test_touching_a_frame_in_range_changes_the_key_outside_does_not(row) -> None:
    k = clip_key(row, DESC, PRE)
    folder = Path(row["frames_dir"])
    outside = folder / "img10.jpg"  # onset is 11
    st = outside.stat()
    os.utime(outside, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert clip_key(row, DESC, PRE) == k
    inside = folder / "img15.jpg"
    st = inside.stat()
    os.utime(inside, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert clip_key(row, DESC, PRE) != k


def test_video_source_uses_the_file_stat(tmp_path) -> None:
    video = tmp_path / "clip.avi"
    video.write_bytes(b"0" * 1234)
    row = {"dataset": "X", "subject": "X/1", "clip": "c", "frames_dir": None,
           "video_path": str(video), "onset": 1, "offset": 5}  # fmt: skip
    src = clip_source(row)
    assert src["video"][1] == 1234
    with pytest.raises(FileNotFoundError, match="clip.avi"):
        clip_source({**row, "video_path": str(tmp_path / "clip.avi.missing")})


def test_save_load_round_trip_and_no_temporary_left(tmp_path) -> None:
    c = FeatureCache(tmp_path / "cache")
    key = "ab" * 32
    v = np.arange(7, dtype=np.float32) / 3
    path = c.save("lbp_top:r3p8", key, v)
    assert path == tmp_path / "cache" / "lbp_top-r3p8" / "ab" / f"{key}.npy"
    np.testing.assert_array_equal(c.load("lbp_top:r3p8", key, 7), v)
    assert c.load("lbp_top:r3p8", "cd" * 32) is None
    assert [p.name for p in c.entries()] == [f"{key}.npy"]
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]
    with pytest.raises(ValueError, match="hex digest"):
        c.path("lbp_top", "../../etc")


def test_interrupted_write_leaves_no_entry(tmp_path, monkeypatch) -> None:
    c = FeatureCache(tmp_path)
    key = "ef" * 32

    def boom(fh, arr, allow_pickle=False):
        fh.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        c.save("hoof:b8", key, np.ones(4, dtype=np.float32))
    monkeypatch.undo()
    assert c.load("hoof:b8", key) is None
    assert list(tmp_path.rglob("*")) == [tmp_path / "hoof-b8", tmp_path / "hoof-b8" / "ef"]


@pytest.mark.parametrize(
    "content, dim, why",
    [(b"garbage, not a npy file", None, "unreadable"), (None, 5, "expected 5 values")],
)
def test_corrupt_or_wrong_entry_is_dropped_with_a_warning(tmp_path, caplog, content, dim, why):
    c = FeatureCache(tmp_path)
    key = "12" * 32
    path = c.save("lbp_top:r3p8", key, np.ones(3, dtype=np.float32))
    if content is not None:
        path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="merkit.features.cache"):
        assert c.load("lbp_top:r3p8", key, dim) is None
    assert "recomputing" in caplog.text and str(path) in caplog.text
    assert why in caplog.text or why == "unreadable"
    assert not path.exists()


def test_missing_face_marker_is_kept(tmp_path) -> None:
    c = FeatureCache(tmp_path)
    c.save("lbp_top:r3p8", "34" * 32, cache_mod.MISSING)
    got = c.load("lbp_top:r3p8", "34" * 32, 15045)
    assert got is not None and got.size == 0


def test_frame_replaced_with_same_size_and_mtime_is_recomputed(tmp_path) -> None:
    """``cp -p`` / ``rsync -a`` of another frame over one: size and mtime as before, new bytes.

    The entry of that clip must not be served: the second run equals a run without a cache
    and differs from the first; the other clips still come from the cache.
    """
    from merkit.data.adapters import load_dataset
    from merkit.data.labels import apply_scheme
    from merkit.data.synthetic import synthesize
    from merkit.features.extract import extract
    from merkit.video.io import frame_number

    synthesize(tmp_path / "data", seed=5, databases=["SMIC_VIS"], size="tiny")
    table = apply_scheme(load_dataset("SMIC_VIS", tmp_path / "data"), "cdmer3")
    spec, cache = "lbp_top:r1p8", tmp_path / "cache"
    first = extract(table, spec, cache=cache)
    assert first.computed == len(table) == 6

    row = table.iloc[2]
    inside = [f for f in sorted(Path(row["frames_dir"]).iterdir())
              if int(row["onset"]) < frame_number(f) < int(row["offset"])]  # fmt: skip
    frame = inside[len(inside) // 2]
    before = frame.stat()
    img = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED)
    ok, data = cv2.imencode(".bmp", np.ascontiguousarray(255 - img))  # other pixels, same size
    assert ok and len(data) == before.st_size and data.tobytes() != frame.read_bytes()
    frame.write_bytes(data.tobytes())
    os.utime(frame, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = frame.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    second = extract(table, spec, cache=cache)
    fresh = extract(table, spec)  # no cache
    np.testing.assert_array_equal(second.features.X, fresh.features.X)
    assert np.abs(second.features.X[2] - first.features.X[2]).max() > 1e-3
    assert second.computed == 1 and second.cached == 5
    np.testing.assert_array_equal(np.delete(second.features.X, 2, 0),
                                  np.delete(first.features.X, 2, 0))  # fmt: skip


def test_source_digest_follows_the_bytes(row) -> None:
    src = clip_source(row)
    frame = Path(row["frames_dir"]) / src["frames"][3][0]
    assert src["frames"][3][3] == cache_mod.file_digest(frame) and len(src["frames"][3][3]) == 32
    assert len({e[3] for e in src["frames"]}) == len(src["frames"])  # the frames differ


def test_digests_are_remembered_until_the_bytes_are_written(row, tmp_path, monkeypatch) -> None:
    """A warm run reads ``stat``, not every frame; writing a frame (even with its old size and
    mtime put back) sets its ctime, so its digest is taken again."""
    memo = tmp_path / "digests"
    calls: list[str] = []
    real = cache_mod.file_digest
    monkeypatch.setattr(cache_mod, "file_digest", lambda p: calls.append(Path(p).name) or real(p))
    first = clip_source(row, memo)
    assert len(calls) == 8 and len(list(memo.glob("*/*.json"))) == 1
    calls.clear()
    assert clip_source(row, memo) == first and calls == []  # remembered
    frame = Path(row["frames_dir"]) / first["frames"][3][0]
    before = frame.stat()
    frame.write_bytes(bytes(255 - b for b in frame.read_bytes()))  # same size, new bytes
    os.utime(frame, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = clip_source(row, memo)
    assert len(calls) == 8  # the clip's signature changed: its frames are hashed again
    assert again["frames"][3][3] == real(frame) != first["frames"][3][3]
    assert [e[3] for e in again["frames"][:3]] == [e[3] for e in first["frames"][:3]]
    assert clip_source(row) == again  # the same source as without a memo
