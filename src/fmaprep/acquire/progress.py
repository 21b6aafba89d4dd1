"""A one-line progress bar on stderr: tracks done / wanted, bytes, rate, ETA, the current pause.

Not on a terminal (cron, a pipeline step, EMR's step log), the same line is logged once a
minute instead, so a long transfer is never silent.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)
LOG_EVERY_S = 60.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Redraws one line with ``\\r`` when the stream is a terminal (or ``enabled=True``)."""

    def __init__(
        self,
        total: int | None,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        log_every: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.total_bytes: int | None = None  # set while bytes of known size are transferred
        self.log_every = log_every
        self._clock = clock
        self._started = clock()
        self._logged_at = self._started
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
        if not self.enabled and self._clock() - self._logged_at >= self.log_every:
            self._logged_at = self._clock()
            log.info("progress: %s", self.line())

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
        elapsed = self._clock() - self._started
        if elapsed > 1 and self.nbytes:
            rate = self.nbytes / elapsed
            text += f", {human_bytes(rate)}/s"
            if self.total_bytes:
                left = max(0, self.total_bytes - self.nbytes) / rate
                text += f" of {human_bytes(self.total_bytes)}, ETA {_duration(left)}"
            elif self.total and done:
                text += f", ETA {_duration((self.total - done) * elapsed / done)}"
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


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
