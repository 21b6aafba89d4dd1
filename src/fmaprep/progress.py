"""Progress on long work, for every command: one status line on stderr, redrawn in place on a
terminal, written or logged at an interval elsewhere (cron, EMR's step log, CI). :class:`Progress`
is acquisition's bar (fed tracks, bytes, pauses); :class:`JobProgress` the Spark job's line
(polled; a stalled store named on it, one log line per stall)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)
LOG_EVERY_S = 60.0
STALL_AFTER_S = 5.0  # no file done for this long: ask the stores whether they answer


def redraw(stream: TextIO, text: str, width: int, final: bool = False) -> int:
    """Replace the terminal's line (``width`` characters drawn before) with ``text``, spaces over
    the rest (no escape codes: a log shows text); a new line after it when ``final``."""
    stream.write("\r" + text + " " * max(0, width - len(text)) + ("\n" if final else ""))
    stream.flush()
    return len(text)


def human_bytes(n: float) -> str:
    """``512 B``, ``48.0 KiB``, ``1.2 GiB``: a size as a line shows it."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


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
            self._width = redraw(self.stream, self.line(), self._width)

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


class JobProgress:
    """Prints a status line every ``interval`` seconds from a background thread.

    ``poll`` returns (files done, files failed); on a terminal the line redraws in place,
    elsewhere (logs, CI) it prints a new line at most every ``log_interval`` seconds.
    """

    def __init__(
        self,
        total: int,
        poll: Callable[[], tuple[int, int]],
        stream: TextIO | None = None,
        interval: float = 0.5,
        log_interval: float = 10.0,
        *,
        stalled: Callable[[], str | None] | None = None,
        waiting: Callable[[], int] | None = None,
    ) -> None:
        self.total = total
        self.poll = poll
        self.stream = stream = stream if stream is not None else sys.stderr  # (now, not at import)
        self.interval = interval if stream.isatty() else log_interval
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fmaprep-progress", daemon=True)
        self._start = time.monotonic()
        self.stalled = stalled  # None, or what is not answering (a store and its address)
        self.waiting = waiting  # tasks running now (their reads wait on the stalled store)
        self._last_done, self._last_change = -1, time.monotonic()
        self._width = 0
        self._stall: tuple[str, float, str] | None = None  # (what, since (monotonic), since UTC)
        self._probe = threading.Thread(target=self._watch, name="fmaprep-stall", daemon=True)

    def __enter__(self) -> JobProgress:
        self._start = time.monotonic()
        self._thread.start()
        if self.stalled is not None:
            self._probe.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._probe.is_alive():
            self._probe.join()
        self._print(final=True)

    def line(self) -> str:
        done, failed = self.poll()
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        pct = 100.0 * done / self.total if self.total else 100.0
        eta_text = f", ETA {eta:,.0f}s" if done < self.total and rate > 0 else ""
        stall = self._stall
        stall_text = ""
        if stall is not None:
            what, since, utc = stall
            tasks = self.waiting() if self.waiting is not None else 0
            for_s = time.monotonic() - since
            stall_text = (f"; STALLED: {what} not answering for {for_s:,.0f}s (since {utc}), "
                          f"reads of {tasks} tasks waiting and retrying")  # fmt: skip
        return (
            f"preprocess: {done}/{self.total} files ({pct:.0f}%), {failed} failed, "
            f"{rate:.1f} files/s, {elapsed:,.0f}s{eta_text}{stall_text}"
        )

    def _watch(self) -> None:
        """Every second: when no file was done for STALL_AFTER_S, ask the stores; a store that
        does not answer starts a stall (one warning), an answer or a file done ends it (one
        info line)."""
        assert self.stalled is not None
        while not self._stop.wait(1.0):
            done = self.poll()[0]
            now = time.monotonic()
            if done != self._last_done:
                self._last_done, self._last_change = done, now
                self._end_stall()
                continue
            if now - self._last_change < STALL_AFTER_S:
                continue
            what = self.stalled()
            if what is None:
                self._end_stall()
            elif self._stall is None:
                utc = time.strftime(
                    "%H:%M:%S", time.gmtime(time.time() - (now - self._last_change))
                )
                self._stall = (what, self._last_change, utc + " UTC")
                log.warning("stall: %s is not answering (no file done since %s); reads wait and "
                            "retry", what, self._stall[2])  # fmt: skip
                if not self.tty:
                    self._print()

    def _end_stall(self) -> None:
        if self._stall is not None:
            what, since, _ = self._stall
            self._stall = None
            log.info("stall over: %s answers again (%.0f s)", what, time.monotonic() - since)

    def _print(self, final: bool = False) -> None:
        if self.tty:
            self._width = redraw(self.stream, self.line(), self._width, final=final)
        else:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()
