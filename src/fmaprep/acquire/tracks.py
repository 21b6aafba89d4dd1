"""``_tracks.jsonl``: one JSON line per track acquisition, appended as tracks finish.

Fields of every line (``None`` when unknown):

- ``id``: str, the track id zero-padded to 6 digits (``"000002"``), the audio file's stem
- ``path``: str, the audio file relative to the destination (``"000/000002.mp3"``)
- ``title``, ``artist``, ``album``, ``genre``: str | None (FMA metadata; ``genre`` is the genre
  handle scraped from, or ``track.genre_top`` from a dataset's ``tracks.csv``)
- ``urls``: dict of str (``page``, ``file``, ``playback``, ``download``, ``final``, ``archive``)
- ``bytes``: int | None, ``sha1``: str | None (hex) of the stored file
- ``fetched_at``: str, UTC ISO 8601 (``2024-05-01T12:00:00Z``)
- ``status``: ``"ok"`` or ``"error"``; ``error``: reason text when ``status == "error"``
- ``source``: ``"scrape"`` or the dataset archive's name (``"fma_small"``)
- dataset lines also carry ``split`` and ``subset`` (``set.split``, ``set.subset``)

A track may have several lines (a failed attempt, then a success): the last line for an id wins.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from fmaprep.acquire.destination import Destination, track_path

log = logging.getLogger(__name__)

TRACKS_FILE = "_tracks.jsonl"
# error reasons that another attempt will not fix: a rerun skips these tracks (unless asked)
PERMANENT_ERRORS = (
    "not_audio",
    "robots_disallowed",
    "host_not_allowed",
    "too_large",
    "bad_url",
    "no_url",
    "http_403",
    "http_404",
    "http_410",
)
FIELDS = (
    "id",
    "path",
    "title",
    "artist",
    "album",
    "genre",
    "urls",
    "bytes",
    "sha1",
    "fetched_at",
    "status",
    "error",
    "source",
)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_line(track_id: int, **fields: Any) -> dict[str, Any]:
    """A ``_tracks.jsonl`` line with every field of :data:`FIELDS` present."""
    line: dict[str, Any] = dict.fromkeys(FIELDS)
    line.update(id=f"{track_id:06d}", path=track_path(track_id), urls={}, fetched_at=utc_now())
    line.update(fields)
    return line


def parse_lines(text: str) -> Iterator[dict[str, Any]]:
    """The lines of a ``_tracks.jsonl`` text; a torn last line (a killed run) is skipped."""
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            log.warning("%s line %d is not JSON; ignored", TRACKS_FILE, number)
            continue
        if isinstance(line, dict) and isinstance(line.get("id"), str):
            yield line


CARRIED = ("title", "artist", "album", "genre")  # what the preprocess job carries into records


def track_metadata(text: str) -> dict[str, dict[str, Any]]:
    """{id: {title, artist, album, genre, ...}} from a ``_tracks.jsonl`` text, for the
    preprocess job: the last line per id wins, and only ids whose last line is ``ok``."""
    latest: dict[str, dict[str, Any]] = {}
    for line in parse_lines(text):
        latest[line["id"]] = line
    return {
        tid: {key: line.get(key) for key in (*CARRIED, "split", "subset", "source")}
        for tid, line in latest.items()
        if line.get("status") == "ok"
    }


class TrackLog:
    """The destination's ``_tracks.jsonl``: the latest line per id, and appends."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        text = dest.read_text(TRACKS_FILE)
        if text:
            if not text.endswith("\n"):
                dest.append_text(TRACKS_FILE, "\n")  # close a torn line before appending
            for line in parse_lines(text):
                self.latest[line["id"]] = line

    def is_complete(self, track_id: int) -> bool:
        """True when the last line says ok and the stored file has that size and sha1."""
        line = self.latest.get(f"{track_id:06d}")
        if not line or line.get("status") != "ok":
            return False
        path = track_path(track_id)
        size = self.dest.size(path)
        if size is None or size != line.get("bytes"):
            return False
        return self.dest.sha1(path) == line.get("sha1")

    def failed_for_good(self, track_id: int) -> bool:
        """True when the last line is an error that a retry would not fix (e.g. not audio)."""
        line = self.latest.get(f"{track_id:06d}")
        if not line or line.get("status") != "error":
            return False
        return str(line.get("error") or "").startswith(PERMANENT_ERRORS)

    def append(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n"
        with self._lock:
            self.dest.append_text(TRACKS_FILE, text)
            self.latest[line["id"]] = line
