"""fetch-dataset against small FMA-like zips built here and served on 127.0.0.1."""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.archive import DatasetError
from fmaprep.acquire.dataset import ARCHIVES, fetch_dataset
from fmaprep.acquire.members import parse_checksums, read_tracks_csv
from fmaprep.cli import fetch_dataset as fetch_cli

# FMA's tracks.csv: two header rows (top level, column), then pandas' "track_id" row
TRACKS_CSV = (
    ",album,artist,set,set,track,track,track\n"
    ",title,name,split,subset,genre_top,title,duration\n"
    "track_id,,,,,,,\n"
    "2,AWOL - A Way Of Life,AWOL,training,small,Hip-Hop,Food,168\n"
    '5,AWOL - A Way Of Life,AWOL,training,small,Hip-Hop,"This World, again\nand again",206\n'
    "7,,Kurt Vile,validation,small,,Punk Rock,161\n"
    "11234,Album,Someone,test,medium,Rock,Song,100\n"
)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def rel(tid: int) -> str:
    name = f"{tid:06d}"
    return f"{name[:3]}/{name}.mp3"


def build_audio_zip(tones: list[bytes], with_csv: bool = True) -> tuple[bytes, dict[int, bytes]]:
    audio = {2: tones[0], 5: tones[1], 7: tones[2], 11234: tones[3]}
    checksums = "".join(f"{sha1(data)}  {rel(tid)}\n" for tid, data in audio.items())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("fma_test/README.txt", "a test archive\n")
        zf.writestr("fma_test/checksums", checksums)
        for tid, data in audio.items():
            body = data
            if tid == 7:  # corrupted after the checksums were made (the zip's CRC is fine)
                body = data[:200] + bytes(b ^ 0x55 for b in data[200:400]) + data[400:]
            zf.writestr(f"fma_test/{rel(tid)}", body)
        zf.writestr("../../evil/000009.mp3", tones[4])  # zip-slip attempt, not in checksums
        zf.writestr("../../etc/passwd", "root:x:0:0\n")
        if with_csv:
            zf.writestr("fma_test/tracks.csv", TRACKS_CSV)
    return buffer.getvalue(), {**audio, 9: tones[4]}


@pytest.fixture
def static() -> Iterator[Any]:
    """static(directory) serves a directory on 127.0.0.1 and returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def lines(dest: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for raw in (dest / "_tracks.jsonl").read_text().splitlines():
        line = json.loads(raw)
        out[line["id"]] = line
    return out


def test_checksum_paths_in_the_test_zip_are_fma_style(tones: list[bytes]) -> None:
    data, _ = build_audio_zip(tones)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        checks = zf.read("fma_test/checksums").decode()
    assert "fma_test/000/000002.mp3" in names and "fma_test/011/011234.mp3" in names
    assert f"{sha1(tones[0])}  000/000002.mp3" in checks.splitlines()


def test_fetch_dataset_extracts_verifies_and_joins(
    static: Any, tones: list[bytes], tmp_path: Path
) -> None:
    data, audio = build_audio_zip(tones)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "fma_test.zip").write_bytes(data)
    url = static(tmp_path / "www") + "/fma_test.zip"
    dest = tmp_path / "sandbox" / "dest"

    summary = fetch_dataset("fma_small", str(dest), url=url, sha1=sha1(data))
    assert summary.extracted == 4 and summary.unverified == 1, summary.text()
    assert [m for m, _ in summary.failures] == ["fma_test/000/000007.mp3"]
    assert "checksum_mismatch" in summary.failures[0][1]
    for tid in (2, 5, 11234, 9):
        name = f"{tid:06d}"
        assert sha1((dest / name[:3] / f"{name}.mp3").read_bytes()) == sha1(audio[tid])
    assert files_under(dest) == {
        "000/000002.mp3", "000/000005.mp3", "000/000009.mp3", "011/011234.mp3", "_tracks.jsonl",
        "_fetched/fma_small.json",
    }  # fmt: skip
    assert files_under(tmp_path / "sandbox") == {f"dest/{f}" for f in files_under(dest)}

    meta = lines(dest)
    assert meta["000002"] | {"fetched_at": None} == {
        "id": "000002",
        "path": "000/000002.mp3",
        "title": "Food",
        "artist": "AWOL",
        "album": "AWOL - A Way Of Life",
        "genre": "Hip-Hop",
        "urls": {"archive": url},
        "bytes": len(audio[2]),
        "sha1": sha1(audio[2]),
        "fetched_at": None,
        "status": "ok",
        "error": None,
        "source": "fma_small",
        "split": "training",
        "subset": "small",
    }
    assert meta["000005"]["title"] == "This World, again\nand again"
    assert meta["011234"]["subset"] == "medium"
    assert meta["000007"]["status"] == "error" and meta["000007"]["artist"] == "Kurt Vile"
    assert meta["000007"]["genre"] is None
    assert meta["000009"]["status"] == "ok" and meta["000009"]["title"] is None

    again = fetch_dataset("fma_small", str(dest), url=url, sha1=sha1(data))
    assert (again.extracted, again.skipped, len(again.failures)) == (0, 4, 1)


def test_wrong_sha1_extracts_nothing(static: Any, tones: list[bytes], tmp_path: Path) -> None:
    data, _ = build_audio_zip(tones)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.zip").write_bytes(data)
    url = static(tmp_path / "www") + "/a.zip"
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="does not match"):
        fetch_dataset("fma_small", str(dest), url=url)  # FMA's published sha1 for fma_small
    with pytest.raises(DatasetError, match="unknown archive"):
        fetch_dataset("fma_tiny", str(dest), url=url)
    assert files_under(dest) == set()


def test_metadata_archive_then_audio_archive(
    static: Any, tones: list[bytes], tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    meta_zip = io.BytesIO()
    with zipfile.ZipFile(meta_zip, "w") as zf:
        zf.writestr("fma_metadata/tracks.csv", TRACKS_CSV)
        zf.writestr("fma_metadata/genres.csv", "genre_id,title\n1,Avant-Garde\n")
        zf.writestr("fma_metadata/README.txt", "metadata\n")
    (www / "fma_metadata.zip").write_bytes(meta_zip.getvalue())
    audio_zip, _ = build_audio_zip(tones, with_csv=False)
    (www / "fma_small.zip").write_bytes(audio_zip)
    base = static(www)
    dest = tmp_path / "dest"

    got = fetch_dataset(
        "fma_metadata", str(dest), url=f"{base}/fma_metadata.zip",
        sha1=sha1(meta_zip.getvalue()),
    )  # fmt: skip
    assert got.metadata_files == 3
    assert (dest / "_fma_metadata" / "tracks.csv").read_text() == TRACKS_CSV
    summary = fetch_dataset(
        "fma_small", f"file://{dest}", url=f"{base}/fma_small.zip", sha1=sha1(audio_zip)
    )
    assert summary.with_metadata == 4  # 2, 5, 7 and 11234 are in tracks.csv
    assert lines(dest)["000002"]["genre"] == "Hip-Hop"


def test_cli_reports_the_corrupted_member(
    static: Any, tones: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = build_audio_zip(tones)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "fma_small.zip").write_bytes(data)
    url = static(tmp_path / "www") + "/fma_small.zip"
    parser = argparse.ArgumentParser()
    fetch_cli.add_arguments(parser)
    args = ["fma_small", "--dest", str(tmp_path / "d"), "--url", url, "--sha1", sha1(data),
            "--no-progress"]  # fmt: skip
    assert fetch_cli.run(parser.parse_args(args)) == 1
    err = capsys.readouterr().err
    assert (
        "4 tracks extracted" in err and "failed fma_test/000/000007.mp3: checksum_mismatch" in err
    )
    assert fetch_cli.run(parser.parse_args(["fma_small", "--dest", "rel", "--url", url])) == 2


def test_parsers() -> None:
    text = f"{'a' * 40}  000/000002.mp3\n{'B' * 40} *sub/x.mp3\nnot a line\n"
    assert parse_checksums(text, "fma_small") == {
        "fma_small/000/000002.mp3": "a" * 40,
        "fma_small/sub/x.mp3": "b" * 40,
    }
    table = read_tracks_csv(io.StringIO(TRACKS_CSV, newline=""))
    assert sorted(table) == [2, 5, 7, 11234]
    assert table[7] == {"title": "Punk Rock", "artist": "Kurt Vile", "album": None,
                        "genre": None, "split": "validation", "subset": "small"}  # fmt: skip
    assert set(ARCHIVES) == {"fma_metadata", "fma_small", "fma_medium", "fma_large", "fma_full"}
    assert all(len(a.sha1) == 40 and a.url.endswith(f"/{a.name}.zip") for a in ARCHIVES.values())
