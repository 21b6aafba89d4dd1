"""fetch-dataset trusts an archive only once its sha1 is proven, remembers a finished fetch,
and bounds what an archive may unpack to. Real zips built here and served by the loopback
archive server (it counts every body byte), real S3 (s3proxy) and HDFS (WebHDFS) for the
remote cases. (The archive server is tests/support/zipserver.py.)"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.archive import DatasetError
from fmaprep.acquire.dataset import fetch_dataset
from fmaprep.acquire.dest import open_destination
from fmaprep.acquire.http import HttpClient, Throttle
from fmaprep.acquire.members import Limits
from fmaprep.cli import fetch_dataset as fetch_cli
from fmaprep.tracks import METADATA_VALUE_MAX, parse_lines
from local_services_fixture import local_services
from support.zipserver import ZipServer, fma_shaped_zip

__all__ = ["local_services"]
MEMBER = 300_000


def _client() -> HttpClient:
    return HttpClient(Throttle(0.0, 1 << 30, 0.0), retries=3, backoff=0.01)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _key(tid: int) -> str:
    name = f"{tid:06d}"
    return f"{name[:3]}/{name}.mp3"


def _tampered(members: dict[int, bytes], victim: int) -> bytes:
    """The archive a hostile mirror serves: one member changed, and the archive's own checksums
    rewritten to match it (only the archive's sha1 can tell)."""
    bad = dict(members)
    bad[victim] = b"\xff\xfb" + b"evil" * (MEMBER // 4)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for tid, data in bad.items():
            zf.writestr(f"fma_x/{_key(tid)}", data)
        zf.writestr("fma_x/checksums", "".join(f"{_sha1(d)}  {_key(t)}\n" for t, d in bad.items()))
    return buffer.getvalue()


def _uri(store: str, tmp_path: Path, env: dict[str, str] | None) -> str:
    tag = uuid.uuid4().hex[:8]
    if store == "local":
        return str(tmp_path / "dest")
    assert env is not None
    if store == "s3":
        return f"s3a://{env['FMAPREP_S3_BUCKET']}/trust-{tag}"
    return f"{env['FMAPREP_HDFS_URI']}/fmaprep-test/trust-{tag}"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow),
                        pytest.param("hdfs", marks=pytest.mark.slow)])  # fmt: skip
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.param == "local":
        return request.param, None
    env = request.getfixturevalue("local_services")
    for key in ("FMAPREP_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION", "FMAPREP_WEBHDFS_URL"):  # fmt: skip
        monkeypatch.setenv(key, env[key])
    return request.param, env


def _ok_ids(uri: str) -> set[int]:
    text = open_destination(uri).read_text("_tracks.jsonl") or ""
    latest = {line["id"]: line for line in parse_lines(text)}
    return {int(i) for i, line in latest.items() if line["status"] == "ok"}


def test_a_tampered_archive_publishes_nothing_and_is_never_skipped(
    store: Any, zip_server: ZipServer, tmp_path: Path
) -> None:
    kind, env = store
    good, members = fma_shaped_zip(5, MEMBER)
    zip_server.files["/fma_x.zip"] = _tampered(members, victim=8)
    url, digest = zip_server.base + "/fma_x.zip", _sha1(good)
    uri = _uri(kind, tmp_path, env)
    dest = open_destination(uri)
    for _ in range(2):  # the rerun fails the same way: nothing of run 1 is taken as done
        with pytest.raises(DatasetError, match="does not match"):
            fetch_dataset("fma_x", uri, url=url, sha1=digest, client=_client())
        assert all(dest.size(_key(t)) is None for t in members), kind
        assert _ok_ids(uri) == set()
        assert dest.list_keys("_fetch_staging/") == [] and dest.list_keys("_fetched/") == []
    zip_server.files["/fma_x.zip"] = good  # the mirror is fixed
    summary = fetch_dataset("fma_x", uri, url=url, sha1=digest, client=_client())
    assert summary.extracted == 5 and summary.sha1 == digest, summary.text()
    assert _ok_ids(uri) == set(members)
    for tid, data in members.items():
        with dest.open_read(_key(tid)) as stream:
            assert _sha1(stream.read()) == _sha1(data)


def test_a_finished_fetch_is_remembered(store: Any, zip_server: ZipServer, tmp_path: Path) -> None:
    kind, env = store
    data, members = fma_shaped_zip(6, MEMBER)
    zip_server.files["/fma_x.zip"] = data
    url, digest = zip_server.base + "/fma_x.zip", _sha1(data)
    uri = _uri(kind, tmp_path, env)
    dest = open_destination(uri)
    assert fetch_dataset("fma_x", uri, url=url, sha1=digest, client=_client()).extracted == 6

    # complete: not one request to the archive's server
    sent, asked = zip_server.sent, len(zip_server.requests)
    again = fetch_dataset("fma_x", uri, url=url, sha1=digest, client=_client())
    assert (again.extracted, again.skipped, again.failures) == (0, 6, [])
    assert (zip_server.sent, len(zip_server.requests)) == (sent, asked)

    # two members gone: only they are read, by Range (header + data), nothing else
    gone = sorted(members)[1:3]
    for tid in gone:
        dest.delete(_key(tid))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = {int(i.filename[-10:-4]): i for i in zf.infolist() if i.filename.endswith(".mp3")}
    # a member's bytes: its local header (30 + name + extra) and its data
    budget = sum(30 + len(infos[t].filename) + 20 + infos[t].compress_size for t in gone)
    sent = zip_server.sent
    third = fetch_dataset("fma_x", uri, url=url, sha1=digest, client=_client())
    assert (third.extracted, third.skipped) == (2, 4), third.text()
    assert zip_server.sent - sent <= budget + 1, (zip_server.sent - sent, budget)
    assert _ok_ids(uri) == set(members)
    for tid in gone:
        with dest.open_read(_key(tid)) as stream:
            assert stream.read() == members[tid]

    # a server that ignores Range: the archive once
    dest.delete(_key(gone[0]))
    zip_server.ignore_range = True
    sent, asked = zip_server.sent, len(zip_server.requests)
    fourth = fetch_dataset("fma_x", uri, url=url, sha1=digest, client=_client())
    assert fourth.extracted + fourth.skipped >= 6 and _ok_ids(uri) == set(members)
    # one probe (its 200 closed unread: the sockets may have taken some of it), one download
    assert zip_server.requests[asked:] == [("bytes=0-0", 200), ("", 200)]
    assert len(data) <= zip_server.sent - sent <= 2 * len(data), zip_server.sent - sent


def test_a_member_the_server_changed_is_not_published_on_a_rerun(
    zip_server: ZipServer, tmp_path: Path
) -> None:
    data, members = fma_shaped_zip(3, MEMBER)
    zip_server.files["/fma_x.zip"] = data
    url, digest = zip_server.base + "/fma_x.zip", _sha1(data)
    dest = tmp_path / "dest"
    fetch_dataset("fma_x", str(dest), url=url, sha1=digest, client=_client())
    victim = sorted(members)[0]
    (dest / _key(victim)).unlink()
    # same size, one byte flipped inside the member: the server now serves another archive
    at = data.index(members[victim]) + 100
    zip_server.files["/fma_x.zip"] = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
    summary = fetch_dataset("fma_x", str(dest), url=url, sha1=digest, client=_client())
    assert [m for m, _ in summary.failures] == [f"fma_x/{_key(victim)}"], summary.text()
    assert "checksum_mismatch" in summary.failures[0][1]
    assert not (dest / _key(victim)).exists()


def _zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("files", "limits", "message"),
    [
        # a 128 MB checksums file in a few hundred KB (the ratio of that member)
        ({"x/checksums": b"0" * (128 << 20)}, Limits(), "134217728 bytes from"),
        # many members each under the per-member ratio, together over the archive's
        ({f"x/{i:03d}.txt": bytes(range(256)) * 1024 * 40 for i in range(8)},
         Limits(total_ratio=5.0, member_ratio=1e9), "over the limit (5 times"),
        # a checksums member over its own bound (read as a stream of lines when under it)
        ({"x/checksums": b"%040d  000/000002.mp3\n" % 0 * 2000}, Limits(checksums_bytes=4096),
         "a checksums file may have"),
    ],
)  # fmt: skip
def test_zip_bombs_end_with_one_line(
    zip_server: ZipServer, tmp_path: Path, files: dict[str, bytes], limits: Limits, message: str
) -> None:
    data = _zip(files)
    zip_server.files["/b.zip"] = data
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace("?", r"\?")):
        fetch_dataset("fma_x", str(tmp_path / "d"), url=zip_server.base + "/b.zip",
                      sha1=_sha1(data), client=_client(), limits=limits)  # fmt: skip
    assert not list((tmp_path / "d").glob("[0-9]*"))


def test_members_the_checksums_do_not_name_are_bounded(
    zip_server: ZipServer, tmp_path: Path
) -> None:
    listed = b"\xff\xfb" + b"a" * 1000
    files = {"x/000/000002.mp3": listed, "x/checksums": f"{_sha1(listed)}  000/000002.mp3\n"}
    files |= {f"x/000/{t:06d}.mp3": b"\xff\xfb" + bytes([t]) * 5000 for t in (3, 4, 5)}
    data = _zip({k: v if isinstance(v, bytes) else v.encode() for k, v in files.items()})
    zip_server.files["/u.zip"] = data
    summary = fetch_dataset("fma_x", str(tmp_path / "d"), url=zip_server.base + "/u.zip",
                            sha1=_sha1(data), client=_client(),
                            limits=Limits(unlisted_count=1, unlisted_bytes=4000))  # fmt: skip
    reasons = dict(summary.failures)
    assert summary.extracted == 1 and _ok_ids(str(tmp_path / "d")) == {2}, summary.text()
    assert "more than 4000" in reasons["x/000/000003.mp3"]
    assert reasons["x/000/000005.mp3"].startswith("not_in_checksums")


def test_odd_metadata_members_and_a_huge_csv_field(zip_server: ZipServer, tmp_path: Path) -> None:
    long_title = "t" * 200_000  # over csv's default 131,072-byte field limit
    tracks_csv = (",track,track\n,title,genre_top\ntrack_id,,\n"
                  f'2,"{long_title}",Rock\n3,Short,Pop\n')  # fmt: skip
    meta = _zip({"m/tracks.csv": tracks_csv.encode(), "m/my genres (v2).csv": b"a,b\n",
                 "m/.hidden.txt": b"x\n"})  # fmt: skip
    zip_server.files["/m.zip"] = meta
    dest = tmp_path / "d"
    got = fetch_dataset("fma_metadata", str(dest), url=zip_server.base + "/m.zip",
                        sha1=_sha1(meta), client=_client())  # fmt: skip
    assert got.metadata_files == 3 and not got.failures, got.text()
    assert (dest / "_fma_metadata" / "my_genres__v2_.csv").read_bytes() == b"a,b\n"
    assert (dest / "_fma_metadata" / "hidden.txt").read_bytes() == b"x\n"
    audio = b"\xff\xfb" + b"s" * 3000
    data = _zip({"a/000/000002.mp3": audio, "a/000/000003.mp3": audio})
    zip_server.files["/a.zip"] = data
    fetch_dataset("fma_x", str(dest), url=zip_server.base + "/a.zip", sha1=_sha1(data),
                  client=_client())  # fmt: skip
    lines = {x["id"]: x for x in map(json.loads, (dest / "_tracks.jsonl").read_text().splitlines())}
    assert lines["000003"]["title"] == "Short" and lines["000002"]["genre"] == "Rock"
    title = lines["000002"]["title"]
    assert len(title) == METADATA_VALUE_MAX and title.startswith("ttt") and title.endswith("\u2026")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sha1", "xyz"], "--sha1 'xyz' is not a sha1"),
        (["--tracks-csv", "/nonexistent/t.csv"], "--tracks-csv /nonexistent/t.csv: No such file"),
        (["--tracks-csv", "BINARY"], "binary data, not a CSV file"),
    ],
)  # fmt: skip
def test_bad_arguments_are_reported_before_any_download(
    zip_server: ZipServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
    message: str,
) -> None:  # fmt: skip
    binary = tmp_path / "tracks.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)))
    zip_server.files["/fma_x.zip"] = b"never asked for"
    parser = argparse.ArgumentParser()
    fetch_cli.add_arguments(parser)
    args = ["fma_small", "--dest", str(tmp_path / "d"), "--url", zip_server.base + "/fma_x.zip",
            "--no-progress", *[str(binary) if a == "BINARY" else a for a in extra]]  # fmt: skip
    assert fetch_cli.run(parser.parse_args(args)) == 1
    err = capsys.readouterr().err
    assert err.startswith("fmaprep fetch-dataset: ") and message in err, err
    assert err.count("\n") == 1 and zip_server.requests == []
