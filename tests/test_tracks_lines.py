"""Hostile ``_tracks.jsonl`` values (written from a website's data): each bad line is one
warning naming the file and line; the good lines around it still count."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fmaprep.storage.listing import list_local_inputs
from fmaprep.tracks import METADATA_VALUE_MAX, track_metadata

HOSTILE = [
    '{"id": 2, "title": Infinity}',
    '{"id": 2, "title": -Infinity}',
    '{"id": 2, "title": NaN}',
    '{"id": 2, "bytes": 1e400}',
    '{"id": 2, "bytes": -1e400}',
    '{"id": 1e400}',
    '{"id": Infinity}',
    '{"id": "' + "9" * 5000 + '"}',  # an int over Python's digit limit
    '{"id": 2, "x": ' + "[" * 200_000 + "]" * 200_000 + "}",
    '{"id": 2, "x": ' + '{"a":' * 200_000 + "1" + "}" * 200_000 + "}",
    '{"id": 2, "title": "' + "t" * (1 << 20) + '"}',  # over the line limit
    "[1, 2]",
    '"just a string"',
    '{"title": "no id"}',
    '{"id": [2]}',
    '{"id": 2, "title": "torn',
    '{"id": 2, "title": "\udcff\udcfe"}',  # bytes ff fe, as surrogateescape reads them
]


@pytest.mark.parametrize("bad", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_line_is_one_warning(bad: str, caplog: pytest.LogCaptureFixture) -> None:
    text = [
        '{"id": 1, "status": "ok", "title": "One"}',
        bad,
        '{"id": 3, "status": "ok", "title": "' + "x" * 5000 + '"}',
    ]
    with caplog.at_level(logging.WARNING, logger="fmaprep.tracks"):
        table = track_metadata(text, "/data/_tracks.jsonl")
    assert table["000001"] == {"title": "One"}
    assert len(table["000003"]["title"]) == METADATA_VALUE_MAX
    assert "000002" not in table
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("/data/_tracks.jsonl line 2 is not")


def test_non_utf8_bytes_in_a_file_are_that_lines_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path
    (root / "000001.mp3").write_bytes(b"\xff\xfb")
    (root / "000004.mp3").write_bytes(b"\xff\xfb")
    (root / "_tracks.jsonl").write_bytes(
        b'{"id": 4, "title": "bad \xff\xfe"}\n{"id": 1, "title": "caf\xc3\xa9"}\n'
    )
    with caplog.at_level(logging.WARNING, logger="fmaprep.tracks"):
        files = list_local_inputs(str(root), (".mp3",))
    assert [f.metadata for f in files] == [{"title": "café"}, {}]
    assert [r.getMessage()[-60:] for r in caplog.records] == [
        f"{root}/_tracks.jsonl line 1 is not a track line (not UTF-8 (character 24)); ignored"[-60:]
    ]
