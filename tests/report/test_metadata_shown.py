"""Metadata values are capped and escaped wherever they are shown: a 5 MB title with a
terminal escape and markup reaches ``inspect`` and the HTML report as a bounded, inert string."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmaprep.cli import main
from fmaprep.tracks import METADATA_VALUE_MAX

from conftest import write_parquet_output

HOSTILE = "\x1b[2J\x1b]0;owned\x07<script>alert(1)</script>" + "x" * 5_000_000


def _output(root: Path) -> Path:
    rng = np.random.default_rng(3)
    records = [
        {"track_id": f"{i:06d}", "source": f"/m/{i}.mp3", "sample_rate": 8000, "mu": 255,
         "genre": HOSTILE if i == 0 else "Rock", "title": HOSTILE, "artist": HOSTILE,
         "codes": rng.integers(0, 256, 8000).astype(np.uint8)}
        for i in range(2)
    ]  # fmt: skip
    out = write_parquet_output(root, [records])
    lines = [json.loads(x) for x in (out / "_manifest.jsonl").read_text().splitlines()]
    for line in lines:
        line.update(title=HOSTILE, artist=HOSTILE)
    (out / "_manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return out


def test_inspect_shows_a_capped_escaped_title(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _output(tmp_path / "o")
    assert main(["-q", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\x07" not in text
    assert "title='\\x1b[2J\\x1b]0;owned\\x07<script>" in text
    assert len(text) < 2 * 3 * (METADATA_VALUE_MAX + 100) + 2000  # 2 records x 3 values


def test_the_report_shows_a_capped_escaped_title(tmp_path: Path) -> None:
    out = _output(tmp_path / "o")
    page_path = tmp_path / "r.html"
    assert main(["-q", "report", str(out), "--out", str(page_path)]) == 0
    page = page_path.read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "x" * (METADATA_VALUE_MAX + 1) not in page
    assert len(page) < 3_000_000  # the plots and players, not 5 MB per value
