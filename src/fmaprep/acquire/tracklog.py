"""The destination's ``_tracks.jsonl`` as acquisition keeps it: the latest line per id, whether a
stored track is complete, and appends (schema and parser: :mod:`fmaprep.tracks`).

On a local disk a line is appended to the file as it comes. S3 and WebHDFS cannot append, and
rewriting a file that grows to 30 MB once per track is O(n^2) (100,000 GET+PUT pairs for
fma_large), so there lines are written in batches, each batch one new object under
``_tracks.d/`` (one PUT per :data:`BATCH_LINES` lines or :data:`BATCH_SECONDS`), and
:meth:`TrackLog.close` merges them into ``_tracks.jsonl`` with one PUT and deletes them. A run
that dies leaves its batches; the next run merges them first. A crash loses at most the batch
in memory, and its tracks are found again from what is stored (``fetch-dataset``) or fetched
again (``scrape``).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from fmaprep.acquire.dest import Destination
from fmaprep.model import track_path
from fmaprep.tracks import PERMANENT_ERRORS, TRACKS_FILE, dumps_line, parse_lines

SHARD_DIR = "_tracks.d"
BATCH_LINES = 500
BATCH_SECONDS = 60.0


class TrackLog:
    """The destination's ``_tracks.jsonl``: the latest line per id, and appends."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._text = dest.read_text(TRACKS_FILE) or ""
        self._pending: list[str] = []
        self._written: list[str] = []  # this run's batch objects
        self._run = time.strftime("%Y%m%dT%H%M%S") + secrets.token_hex(3)
        self._flushed_at = time.monotonic()
        if self._text and not self._text.endswith("\n"):
            self._text += "\n"  # close a torn line before appending
            if dest.appends_in_place:
                dest.append_text(TRACKS_FILE, "\n")
        if not dest.appends_in_place:
            self._merge_leftovers()
        for line in parse_lines(self._text):
            self.latest[line["id"]] = line
        if dest.appends_in_place:
            self._text = ""  # kept only where batches are merged into a rewrite of the file

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
            self.latest[line["id"]] = line
            if self.dest.appends_in_place:
                self.dest.append_text(TRACKS_FILE, text)
                return
            self._pending.append(text)
            due = time.monotonic() - self._flushed_at >= BATCH_SECONDS
            if len(self._pending) >= BATCH_LINES or due:
                self._flush()

    def __enter__(self) -> TrackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write what is pending; on S3/HDFS merge this run's batches into ``_tracks.jsonl``."""
        with self._lock:
            if self.dest.appends_in_place:
                return
            self._flush()
            if self._written:
                self._publish()

    # ------------------------------------------------------------------ internals
    def _flush(self) -> None:
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        key = f"{SHARD_DIR}/{self._run}-{len(self._written):06d}.jsonl"
        text = "".join(self._pending)
        self.dest.write_bytes(key, text.encode("utf-8"))
        self._written.append(key)
        self._text += text
        self._pending.clear()

    def _publish(self) -> None:
        """``_tracks.jsonl`` = what it held + the batches, then the batches go (in that order:
        a crash between the two leaves lines twice, which the latest-line-wins parser absorbs)."""
        self.dest.write_bytes(TRACKS_FILE, self._text.encode("utf-8"))
        for key in self._written:
            self.dest.delete(key)
        self._written.clear()

    def _merge_leftovers(self) -> None:
        """Batches a dead run left: into ``_tracks.jsonl`` before anything else."""
        leftovers = self.dest.list_keys(SHARD_DIR + "/")
        for key in leftovers:
            text = self.dest.read_text(key) or ""
            self._text += text if not text or text.endswith("\n") else text + "\n"
        if leftovers:
            self._written = leftovers
            self._publish()
