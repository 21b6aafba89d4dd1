"""The manifest-shard codec (fmaprep.formats.manifest): what the tasks write and the readers
read, against the format spelled out by hand."""

from __future__ import annotations

from fmaprep.formats.manifest import parse_shard, shard_bytes

LINES = [
    {"track_id": "000002", "source": "/in/000002.mp3", "status": "ok", "part": "part-00000"},
    {"track_id": "000005", "source": "/in/000005.mp3", "status": "error", "error": "x: y"},
]
# JSON lines, keys sorted, the task header first
BY_HAND = (
    b'{"_task": {"bytes": 10, "part": "part-00000", "records": 1}}\n'
    b'{"part": "part-00000", "source": "/in/000002.mp3", "status": "ok", "track_id": "000002"}\n'
    b'{"error": "x: y", "source": "/in/000005.mp3", "status": "error", "track_id": "000005"}\n'
)


def test_a_task_shard_is_its_header_then_its_lines() -> None:
    task = {"part": "part-00000", "bytes": 10, "records": 1}
    assert shard_bytes(task, LINES) == BY_HAND
    assert parse_shard(BY_HAND) == (task, LINES)


def test_a_shard_without_a_header_is_all_lines() -> None:
    data = b"".join(BY_HAND.splitlines(keepends=True)[1:]) + b"\n"  # a blank line is no row
    assert shard_bytes(None, LINES) == data.rstrip(b"\n") + b"\n"
    assert parse_shard(data) == ({}, LINES)
