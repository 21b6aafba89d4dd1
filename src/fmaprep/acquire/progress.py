"""A one-line progress bar on stderr: tracks done / wanted, bytes, and the current pause."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Redraws one line with ``\\r`` when the stream is a terminal (or ``enabled=True``)."""

    def __init__(
        self, total: int | None, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.tracks = 0
        self.skipped = 0
        self.failed = 0
        self.nbytes = 0
        self._pause_until = 0.0
        self._lock = threading.Lock()
        self._width = 0
        self._drawn_at = 0.0

    def add(self, *, tracks: int = 0, skipped: int = 0, failed: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.tracks += tracks
            self.skipped += skipped
            self.failed += failed
            self.nbytes += nbytes
        self.draw()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)
        self.draw(force=True)

    def line(self) -> str:
        done = self.tracks + self.skipped
        total = "?" if self.total is None else str(self.total)
        width = 20
        filled = 0 if not self.total else min(width, width * done // self.total)
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {done}/{total} tracks, {human_bytes(self.nbytes)}"
        if self.skipped:
            text += f", {self.skipped} already here"
        if self.failed:
            text += f", {self.failed} failed"
        left = self._pause_until - time.monotonic()
        if left > 0:
            text += f", pausing {left:.0f}s"
        return text

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._drawn_at < 0.1:
                return
            self._drawn_at = now
            text = self.line()
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()

    def close(self) -> None:
        self.draw(force=True)
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
