"""Scrape a loopback site, then preprocess what arrived: records carry their FMA metadata. (slow)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.scrape import ScrapeConfig, scrape
from fmaprep.config import load_config
from fmaprep.formats.records import read_records
from fmaprep.job.run import run_preprocess

from .conftest import FakeFMA, FakeTrack, make_mp3

pytestmark = pytest.mark.slow


def test_scraped_tracks_become_records_with_metadata(
    spark: Any, serve: Any, tmp_path: Path
) -> None:
    tracks = [FakeTrack(tid, make_mp3(200.0 + 40 * i, seconds=1.5), "ok", title=f"Song {tid}")
              for i, tid in enumerate([3, 1004, 20517])]  # fmt: skip
    site = serve(FakeFMA(tracks, page_size=2))
    dest = tmp_path / "fma"
    summary = scrape(
        ScrapeConfig(dest=str(dest), base_url=site.base_url, genre="Test", limit=3,
                     batch_size=2, pause=0.1, min_delay=0.01, concurrency=2, retries=2,
                     backoff=0.01, timeout=10)
    )  # fmt: skip
    assert summary.downloaded == 3
    out = tmp_path / "out"
    result = run_preprocess(str(dest), str(out), load_config(), spark)
    assert result.counts["ok"] == 3
    records = {r["track_id"]: r for r in read_records(str(out))}
    assert sorted(records) == ["000003", "001004", "020517"]
    for tid, record in records.items():
        assert record["title"] == f"Song {int(tid)}"
        assert record["genre"] == "Test" and record["artist"]
        assert record["codes"].size == pytest.approx(1.5 * 8000, abs=8000 * 0.1)
