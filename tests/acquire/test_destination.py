"""Destinations: the id-only layout, staged writes, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmaprep.acquire.dest import DestinationError, check_key, open_destination
from fmaprep.acquire.tracklog import TrackLog
from fmaprep.model import track_path
from fmaprep.tracks import TRACKS_FILE, make_line, track_metadata


def test_track_path_is_fma_layout() -> None:
    assert track_path(2) == "000/000002.mp3"
    assert track_path(155066) == "155/155066.mp3"
    assert track_path(1234567) == "123/1234567.mp3"
    for bad in (0, -1, True, "2", 2.0):
        with pytest.raises(ValueError):
            track_path(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a//b", "a/./b", "a/../b", ".hidden", ""])
def test_unsafe_keys(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


def test_writer_publishes_only_on_commit(tmp_path: Path) -> None:
    dest = open_destination(str(tmp_path))
    with dest.writer("000/000002.mp3") as writer:
        writer.write(b"abc")
        assert dest.size("000/000002.mp3") is None
        assert len(list(dest.leftovers())) == 1
        writer.restart()
        assert len(list(dest.leftovers())) == 1  # the first attempt's file went
        writer.write(b"hello")
        writer.commit()
    assert (tmp_path / "000/000002.mp3").read_bytes() == b"hello"
    assert writer.sha1 == "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d" and writer.size == 5
    with dest.writer("000/000003.mp3") as other:
        other.write(b"partial")
    assert dest.size("000/000003.mp3") is None and not list(dest.leftovers())


def test_cleanup_drops_leftovers(tmp_path: Path) -> None:
    dest = open_destination(str(tmp_path))
    dest.writer("000/000004.mp3").write(b"x")  # never committed nor aborted (a killed run)
    (tmp_path / "000" / ".000005.mp3.fmaprep-tmp").write_bytes(b"not of a writer's shape")
    assert len(list(dest.leftovers())) == 1
    dest.cleanup()
    assert not list(dest.leftovers())
    assert (tmp_path / "000" / ".000005.mp3.fmaprep-tmp").exists()  # only what fmaprep wrote


def test_open_destination(tmp_path: Path) -> None:
    assert open_destination(str(tmp_path)).local_root == tmp_path
    local = open_destination(tmp_path.as_uri())
    assert local.local_root == tmp_path and local.store.kind == "file"
    for bad, why in [
        ("relative/dir", "absolute"),
        ("ftp://host/x", "ftp"),
        ("s3://", "bucket"),
        ("file://otherhost/x", "otherhost"),
        ("", "empty"),
    ]:
        with pytest.raises(DestinationError, match=why):
            open_destination(bad)


def test_track_log_completeness_and_torn_line(tmp_path: Path) -> None:
    dest = open_destination(str(tmp_path))
    with dest.writer(track_path(2)) as writer:
        writer.write(b"mp3 bytes")
        writer.commit()
    log = TrackLog(dest)
    log.append(make_line(2, bytes=writer.size, sha1=writer.sha1, status="ok"))
    log.append(make_line(3, status="error", error="not_audio: HTML"))
    with open(tmp_path / TRACKS_FILE, "a") as stream:
        stream.write('{"id": "000004", "sta')  # a run killed mid-line
    again = TrackLog(dest)
    assert again.is_complete(2) and not again.is_complete(3) and not again.is_complete(4)
    assert again.failed_for_good(3) and not again.failed_for_good(2)
    again.append(make_line(5, status="error", error="retries_exhausted: 503"))
    assert not TrackLog(dest).failed_for_good(5)
    assert sorted(TrackLog(dest).latest) == ["000002", "000003", "000005"]
    (tmp_path / "000/000002.mp3").write_bytes(b"mp3 bytez")  # same size, other content
    assert not TrackLog(dest).is_complete(2)


def test_track_metadata_for_the_preprocess_job() -> None:
    text = "\n".join(
        [
            '{"id": "000002", "status": "error", "title": "old", "error": "x"}',
            '{"id": "000002", "status": "ok", "title": "Food", "artist": "AWOL",'
            ' "genre": "Hip-Hop"}',
            '{"id": "000003", "status": "ok", "title": "Three"}',
            '{"id": "000003", "status": "error", "error": "checksum_mismatch"}',
            '{"id": "000004", "sta',
        ]
    )
    meta = track_metadata(text)
    assert list(meta) == ["000002"]
    assert meta["000002"]["title"] == "Food" and meta["000002"]["genre"] == "Hip-Hop"
    assert "album" not in meta["000002"]  # unknown fields are absent, as in records
