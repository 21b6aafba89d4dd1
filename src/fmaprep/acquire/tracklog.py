"""The destination's ``_tracks.jsonl`` as acquisition keeps it: the latest line per id, whether a
stored track is complete, and appends (schema and parser: :mod:`fmaprep.tracks`)."""

from __future__ import annotations

import threading
from typing import Any

from fmaprep.acquire.destination import Destination
from fmaprep.model import track_path
from fmaprep.tracks import PERMANENT_ERRORS, TRACKS_FILE, dumps_line, parse_lines


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

    def is_complete(self, track_id: int, rehash: bool = True) -> bool:
        """True when the last line says ok and the stored file has that size (and, with
        ``rehash``, that sha1: every byte read again). Without it the size and the line's sha1,
        checked when the file was written, are trusted: what a rerun of a 100,000-track archive
        can afford."""
        line = self.latest.get(f"{track_id:06d}")
        if not line or line.get("status") != "ok":
            return False
        path = track_path(track_id)
        size = self.dest.size(path)
        if size is None or size != line.get("bytes"):
            return False
        return not rehash or self.dest.sha1(path) == line.get("sha1")

    def failed_for_good(self, track_id: int) -> bool:
        """True when the last line is an error that a retry would not fix (e.g. not audio)."""
        line = self.latest.get(f"{track_id:06d}")
        if not line or line.get("status") != "error":
            return False
        return str(line.get("error") or "").startswith(PERMANENT_ERRORS)

    def append(self, line: dict[str, Any]) -> None:
        text = dumps_line(line)
        with self._lock:
            self.dest.append_text(TRACKS_FILE, text)
            self.latest[line["id"]] = line
