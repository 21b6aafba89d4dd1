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
