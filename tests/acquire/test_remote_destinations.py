"""Scrape straight into S3 (s3proxy) and HDFS (WebHDFS), both on loopback and started by the
test run, then preprocess from there: files complete, metadata carried, a rerun downloads
nothing. (slow)"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.scrape import ScrapeConfig, scrape
from fmaprep.formats.records import read_records
from local_services_fixture import local_services

from .conftest import FakeFMA, FakeTrack, make_mp3

__all__ = ["local_services"]
pytestmark = pytest.mark.slow


def test_scrape_to_s3_then_preprocess(
    local_services: dict[str, str], serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = local_services
    for key in (
        "FMAPREP_S3_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.setenv(key, env[key])
    tracks = [FakeTrack(tid, make_mp3(300.0 + 50 * i, seconds=1.0), "ok", title=f"S3 {tid}")
              for i, tid in enumerate([8, 1009])]  # fmt: skip
    site = serve(FakeFMA(tracks, page_size=5))
    dest = f"s3a://{env['FMAPREP_S3_BUCKET']}/scrape-{uuid.uuid4().hex[:8]}"

    def run() -> Any:
        return scrape(
            ScrapeConfig(dest=dest, base_url=site.base_url, genre="Test", limit=2, batch_size=5,
                         pause=0.1, min_delay=0.01, concurrency=2, retries=2, backoff=0.01,
                         timeout=10)
        )  # fmt: skip

    assert run().downloaded == 2
    again = run()
    assert again.downloaded == 0 and again.skipped == 2

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", dest, str(out), "--master", "local[1]"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["track_id"]: r for r in read_records(str(out))}
    assert sorted(records) == ["000008", "001009"]
    assert records["001009"]["title"] == "S3 1009" and records["001009"]["genre"] == "Test"
    lines = [json.loads(line) for line in (out / "_manifest.jsonl").open()]
    assert all(line["source"].startswith(dest) for line in lines)


def _s3_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("FMAPREP_S3_ENDPOINT", endpoint)


def test_tracks_file_requests_grow_linearly_on_s3(
    local_services: dict[str, str], serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 tracks scraped into S3: the lines of _tracks.jsonl cost a few requests per batch of
    BATCH_LINES (counted by the recording proxy in front of s3proxy), not a GET+PUT per track."""
    from fmaprep.acquire.tracklog import BATCH_LINES
    from support.httpproxy import S3Proxy

    env = local_services
    audio = make_mp3(440.0, seconds=0.1)
    site = serve(FakeFMA([FakeTrack(i, audio) for i in range(1, 1001)], page_size=200))
    dest = f"s3a://{env['FMAPREP_S3_BUCKET']}/lines-{uuid.uuid4().hex[:8]}"
    with S3Proxy(env["FMAPREP_S3_ENDPOINT"]) as proxy:
        _s3_env(env, monkeypatch, proxy.url)
        summary = scrape(
            ScrapeConfig(dest=dest, base_url=site.base_url, genre="Test", limit=1000,
                         batch_size=1000, pause=0.0, min_delay=0.0, concurrency=4, retries=2,
                         backoff=0.01, timeout=10)
        )  # fmt: skip
        requests = [r for r in proxy.requests() if r.key and "/_tracks" in r.key]
    assert summary.downloaded == 1000
    batches = -(-1000 // BATCH_LINES)
    # a GET of _tracks.jsonl and a LIST of _tracks.d/ at start; a PUT per batch; one PUT to
    # merge; a DELETE per batch
    assert len(requests) <= 3 * batches + 3, [(r.operation, r.key) for r in requests]
    from fmaprep.acquire.dest import open_destination
    from fmaprep.tracks import parse_lines

    monkeypatch.setenv("FMAPREP_S3_ENDPOINT", env["FMAPREP_S3_ENDPOINT"])
    stored = open_destination(dest)
    body = stored.read_text("_tracks.jsonl") or ""
    assert sorted(int(x["id"]) for x in parse_lines(body)) == list(range(1, 1001))
    assert stored.list_keys("_tracks.d/") == []


@pytest.mark.parametrize("store", ["s3", "hdfs"])
def test_a_dead_runs_batches_are_merged_by_the_next(
    local_services: dict[str, str], monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    from fmaprep.acquire.dest import open_destination
    from fmaprep.acquire.tracklog import BATCH_LINES, TrackLog
    from fmaprep.tracks import make_line

    env = local_services
    _s3_env(env, monkeypatch, env["FMAPREP_S3_ENDPOINT"])
    monkeypatch.setenv("FMAPREP_WEBHDFS_URL", env["FMAPREP_WEBHDFS_URL"])
    tag = uuid.uuid4().hex[:8]
    uri = (f"s3a://{env['FMAPREP_S3_BUCKET']}/dead-{tag}" if store == "s3"
           else f"{env['FMAPREP_HDFS_URI']}/fmaprep-test/dead-{tag}")  # fmt: skip
    dest = open_destination(uri)
    first = TrackLog(dest)
    for tid in range(1, BATCH_LINES + 11):  # one batch written, 10 lines in memory
        first.append(make_line(tid, status="ok", bytes=1, sha1="0" * 40))
    # the run dies here: no close()
    assert dest.list_keys("_tracks.d/") != []
    second = TrackLog(open_destination(uri))
    assert sorted(int(k) for k in second.latest) == list(range(1, BATCH_LINES + 1))
    assert dest.list_keys("_tracks.d/") == []  # merged into _tracks.jsonl, then removed
    second.append(make_line(BATCH_LINES + 1, status="ok", bytes=1, sha1="0" * 40))
    second.close()
    assert len(TrackLog(open_destination(uri)).latest) == BATCH_LINES + 1
