"""fetch-dataset's download survives what a long transfer meets: dropped connections (resumed
with Range + If-Range), a server that ignores Range or whose file changed (restarted, and said
so), and a Ctrl-C while downloading or unpacking (the rerun continues; a verified archive is
never downloaded again). Against the loopback archive server of zipserver.py."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.dataset import fetch_dataset
from fmaprep.acquire.http import HttpClient, Throttle
from fmaprep.acquire.rangezip import probe
from fmaprep.acquire.resume import download_resumable
from fmaprep.progress import Progress
from support.zipserver import ZipServer, fma_shaped_zip


def _client() -> HttpClient:
    return HttpClient(Throttle(0.0, 1 << 30, 0.0), retries=3, backoff=0.01)


def _stored(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes()
            for p in dest.rglob("*.mp3") if "_fmaprep" not in p.as_posix()}  # fmt: skip


def _lines(dest: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for raw in (dest / "_tracks.jsonl").read_text().splitlines():
        line = json.loads(raw)
        line.pop("fetched_at", None)
        line.pop("urls")  # the two servers' ports differ
        out[line["id"]] = line
    return out


class _Interrupt(Progress):
    """A Ctrl-C once ``nbytes`` have arrived, or once ``tracks`` are unpacked."""

    def __init__(self, nbytes: int | None = None, tracks: int | None = None) -> None:
        super().__init__(None, enabled=False)
        self.limit_bytes, self.limit_tracks = nbytes, tracks
        self.got_bytes = self.got_tracks = 0

    def add(self, *args: Any, **counts: Any) -> None:
        super().add(*args, **counts)
        self.got_bytes += counts.get("nbytes", 0) if not counts.get("tracks") else 0
        self.got_tracks += counts.get("tracks", 0)
        if self.limit_bytes is not None and self.got_bytes >= self.limit_bytes:
            raise KeyboardInterrupt
        if self.limit_tracks is not None and self.got_tracks >= self.limit_tracks:
            raise KeyboardInterrupt


@pytest.fixture
def archive(zip_server: ZipServer) -> tuple[str, str, bytes, dict[int, bytes]]:
    data, members = fma_shaped_zip(24, 2_000_000)
    zip_server.files["/fma_x.zip"] = data
    return zip_server.base + "/fma_x.zip", hashlib.sha1(data).hexdigest(), data, members


def _fetch(dest: Path, url: str, digest: str, progress: Progress | None = None) -> Any:
    return fetch_dataset("fma_x", str(dest), url=url, sha1=digest, client=_client(),
                         progress=progress)  # fmt: skip


def test_five_drops_cost_at_most_a_tenth_more(
    zip_server: ZipServer, archive: tuple[str, str, bytes, dict[int, bytes]], tmp_path: Path
) -> None:
    url, digest, data, members = archive
    rng = random.Random(5)
    zip_server.drops = [rng.randrange(1_000_000, len(data) // 6) for _ in range(5)]
    summary = _fetch(tmp_path / "cut", url, digest)
    assert summary.sha1 == digest and not summary.failures
    assert [status for _, status in zip_server.requests] == [200] + [206] * 5
    assert zip_server.sent <= 1.1 * len(data), zip_server.sent / len(data)
    clean = ZipServer(files=dict(zip_server.files)).start()
    try:
        _fetch(tmp_path / "clean", clean.base + "/fma_x.zip", digest)
    finally:
        clean.close()
    assert _stored(tmp_path / "cut") == _stored(tmp_path / "clean")
    assert len(_stored(tmp_path / "cut")) == len(members)
    assert _lines(tmp_path / "cut") == _lines(tmp_path / "clean")


def test_a_server_that_ignores_range_restarts_cleanly_and_says_so(
    zip_server: ZipServer,
    archive: tuple[str, str, bytes, dict[int, bytes]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, digest, data, members = archive
    zip_server.ignore_range = True
    zip_server.drops = [3_000_000]
    with caplog.at_level(logging.WARNING):
        summary = _fetch(tmp_path / "d", url, digest)
    assert summary.sha1 == digest and len(_stored(tmp_path / "d")) == len(members)
    assert "the server ignored the Range request; starting again from byte 0" in caplog.text
    assert zip_server.sent == 3_000_000 + len(data)


def test_ctrl_c_then_a_changed_file_restarts_and_says_so(
    zip_server: ZipServer,
    archive: tuple[str, str, bytes, dict[int, bytes]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, digest, _, _ = archive
    with pytest.raises(KeyboardInterrupt):
        _fetch(tmp_path / "d", url, digest, _Interrupt(nbytes=10_000_000))
    new, members = fma_shaped_zip(24, 2_000_000, seed=2)
    zip_server.files["/fma_x.zip"] = new
    with caplog.at_level(logging.WARNING):
        summary = _fetch(tmp_path / "d", url, hashlib.sha1(new).hexdigest())
    assert "the file changed on the server since the partial download" in caplog.text
    assert _stored(tmp_path / "d") == {
        f"{t:06d}"[:3] + f"/{t:06d}.mp3": b for t, b in members.items()
    }
    assert summary.downloaded_bytes == len(new)


def test_ctrl_c_while_downloading_then_the_rerun_continues(
    zip_server: ZipServer, archive: tuple[str, str, bytes, dict[int, bytes]], tmp_path: Path
) -> None:
    url, digest, data, members = archive
    with pytest.raises(KeyboardInterrupt):
        _fetch(tmp_path / "d", url, digest, _Interrupt(nbytes=20_000_000))
    first_run = len(zip_server.requests)
    summary = _fetch(tmp_path / "d", url, digest)
    # the rerun asks only for the tail: every request it makes is a Range from past what the
    # first run kept (bytes the server pushed into socket buffers before the Ctrl-C are not
    # counted: how many that is depends on the kernel, not on fmaprep)
    rerun = zip_server.requests[first_run:]
    assert rerun and all(status == 206 for _, status in rerun), rerun
    assert all(int(rng[6:].partition("-")[0]) >= 15_000_000 for rng, _ in rerun), rerun
    assert summary.downloaded_bytes < len(data) - 15_000_000
    assert len(_stored(tmp_path / "d")) == len(members)


def test_ctrl_c_while_unpacking_then_no_byte_is_downloaded_again(
    zip_server: ZipServer, archive: tuple[str, str, bytes, dict[int, bytes]], tmp_path: Path
) -> None:
    url, digest, _, members = archive
    with pytest.raises(KeyboardInterrupt):
        _fetch(tmp_path / "d", url, digest, _Interrupt(tracks=5))
    assert len(_stored(tmp_path / "d")) == 5
    sent = zip_server.sent
    summary = _fetch(tmp_path / "d", url, digest)
    assert zip_server.sent == sent  # not a byte
    assert summary.downloaded_bytes == 0
    # the Ctrl-C came as the 5th track was counted, before its _tracks.jsonl line: redone
    assert (summary.skipped, summary.extracted) == (4, len(members) - 4)
    assert len(_stored(tmp_path / "d")) == len(members)
    # unpacked and verified: only now is the archive gone (no --keep-archive)
    assert not list((tmp_path / "d").rglob("fma_x.zip*"))


@pytest.fixture
def superscript_server() -> Iterator[tuple[str, bytes]]:
    """A server that ignores Range and says ``Content-Length: ²`` (``"²".isdigit()`` is True,
    ``int("²")`` raises): the body runs to the connection's close."""
    body = bytes(range(256)) * 64

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "\u00b2")
            self.send_header("ETag", '"v1"')
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/a.zip", body
    finally:
        server.shutdown()
        server.server_close()


def test_a_superscript_content_length_is_no_length_and_no_crash(
    superscript_server: tuple[str, bytes], tmp_path: Path
) -> None:
    url, body = superscript_server
    digest, received = download_resumable(_client(), url, tmp_path / "a.zip")
    assert (tmp_path / "a.zip").read_bytes() == body
    assert digest == hashlib.sha1(body).hexdigest() and received == len(body)


def test_the_range_probe_reads_a_superscript_length_as_unknown(
    superscript_server: tuple[str, bytes],
) -> None:
    url, _ = superscript_server
    assert probe(_client(), url) == (None, None)  # no Range support, no length it can trust


def test_a_torn_progress_file_starts_the_download_over(
    zip_server: ZipServer, archive: tuple[str, str, bytes, dict[int, bytes]], tmp_path: Path
) -> None:
    """A `.part.json` cut mid-write (a crash, a full disk) is no progress to resume from: the
    download starts over from byte 0 instead of failing every rerun."""
    url, digest, data, _ = archive
    target = tmp_path / "fma_x.zip"
    (tmp_path / "fma_x.zip.part").write_bytes(data[:1000])
    (tmp_path / "fma_x.zip.part.json").write_text('{"url": "' + url[:9])
    sha1, received = download_resumable(_client(), url, target)
    assert sha1 == digest and received == len(data) and target.read_bytes() == data
    assert [status for _, status in zip_server.requests] == [200]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fma_x.zip"]
