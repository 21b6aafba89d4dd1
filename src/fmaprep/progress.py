"""One progress facility: a status line of counts, bytes, rate and ETA for long work.

On a terminal the line redraws in place (at most ten times a second). Elsewhere (cron, CI, a
pipeline step, EMR's step log) the same line is logged every ``log_every`` seconds instead, so a
long run is never silent and a log is never flooded. It is fed either way round: pushed, with
:meth:`Progress.add` as each piece of work finishes (downloads), or polled, with
:meth:`Progress.watch`, whose thread reads cumulative counts every interval (the Spark job's
driver, whose counts arrive through an accumulator).

The preprocess job uses it (:mod:`fmaprep.job.progress`). Acquisition's bar
(:mod:`fmaprep.acquire.progress`) is the same design and is to become an import of this module
(its ``add(tracks=...)``, ``pause``, ``close``, ``total_bytes`` and ``human_bytes`` are here),
once acquisition is not being edited elsewhere.

Standard library only, at the bottom of the import layers, so every room can use it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

log = logging.getLogger(__name__)
LOG_EVERY_S = 60.0
_REDRAW_S = 0.1


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """``[#####---------------] done/total unit, bytes, skipped, failed, rate, ETA, pause``.

    ``done`` counts finished work, failed included (a run that ends shows total/total).
    ``enabled``: draw on ``stream`` (default: when it is a terminal); when not, log instead.
    """

    def __init__(
        self,
        total: int | None,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        log_every: float = LOG_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        unit: str = "tracks",
    ) -> None:
        self.total = total
        self.total_bytes: int | None = None  # set while bytes of known size are transferred
        self.log_every = log_every
        self.unit = unit
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
        self._drawn_at = -_REDRAW_S

    def add(self, *, tracks: int = 0, skipped: int = 0, failed: int = 0, nbytes: int = 0) -> None:
        """Count finished work: ``tracks`` done, ``skipped`` already there, ``failed``."""
        with self._lock:
            self.tracks += tracks
            self.skipped += skipped
            self.failed += failed
            self.nbytes += nbytes
        self.update()

    def set(self, done: int, failed: int) -> None:
        """Cumulative counts (``done`` includes ``failed``), as a poll returns them."""
        with self._lock:
            self.tracks, self.failed = done - failed, failed
        self.update()

    def update(self, force: bool = False) -> None:
        """Redraw the line, or log it when its interval has passed (``force``: now)."""
        if self.enabled:
            self.draw(force)
        elif force or self._clock() - self._logged_at >= self.log_every:
            self._logged_at = self._clock()
            log.info("progress: %s", self.line())

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._pause_until = max(self._pause_until, self._clock() + seconds)
        self.draw(force=True)

    def line(self) -> str:
        done = self.tracks + self.skipped + self.failed
        total = "?" if self.total is None else str(self.total)
        width = 20
        filled = 0 if not self.total else min(width, width * done // self.total)
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {done}/{total} {self.unit}"
        if self.nbytes:
            text += f", {human_bytes(self.nbytes)}"
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
                text += f" of {human_bytes(self.total_bytes)}, ETA {duration(left)}"
            elif self.total and done:
                text += f", ETA {duration((self.total - done) * elapsed / done)}"
        elif elapsed > 1 and done:
            text += f", {done / elapsed:.1f} {self.unit}/s"
            if self.total and done < self.total:
                text += f", ETA {duration((self.total - done) * elapsed / done)}"
        left = self._pause_until - self._clock()
        if left > 0:
            text += f", pausing {left:.0f}s"
        return text

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            if not force and now - self._drawn_at < _REDRAW_S:
                return
            self._drawn_at = now
            text = self.line()
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()

    def close(self) -> None:
        """The last state: drawn and ended with a newline on a terminal, else logged."""
        if not self.enabled:
            self.update(force=True)
            return
        self.draw(force=True)
        if self._width:
            self.stream.write("\n")
            self.stream.flush()

    @contextlib.contextmanager
    def watch(self, poll: Callable[[], tuple[int, int]], interval: float = 0.5) -> Iterator[None]:
        """While the block runs, a thread sets the counts from ``poll()`` -> (done, failed)
        every ``interval`` seconds; the final counts are shown when it ends."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                self.set(*poll())

        thread = threading.Thread(target=run, name="fmaprep-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.set(*poll())
            self.close()
