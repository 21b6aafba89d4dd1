"""Console progress for a running Spark job: files done / total, failures, rate, ETA, and a
stalled store (its reads waiting and retrying): named on the line, one log line per stall."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)

STALL_AFTER_S = 5.0  # no file done for this long: ask the stores whether they answer


class Progress:
    """Prints a status line every ``interval`` seconds from a background thread.

    ``poll`` returns (files done, files failed); on a terminal the line redraws in place,
    elsewhere (logs, CI) it prints a new line at most every ``log_interval`` seconds.
    """

    def __init__(
        self,
        total: int,
        poll: Callable[[], tuple[int, int]],
        stream: TextIO = sys.stderr,
        interval: float = 0.5,
        log_interval: float = 10.0,
        *,
        stalled: Callable[[], str | None] | None = None,
        waiting: Callable[[], int] | None = None,
    ) -> None:
        self.total = total
        self.poll = poll
        self.stream = stream
        self.interval = interval if stream.isatty() else log_interval
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fmaprep-progress", daemon=True)
        self._start = time.monotonic()
        self.stalled = stalled  # None, or what is not answering (a store and its address)
        self.waiting = waiting  # tasks running now (their reads wait on the stalled store)
        self._last_done, self._last_change = -1, time.monotonic()
        self._stall: tuple[str, float, str] | None = None  # (what, since (monotonic), since UTC)
        self._probe = threading.Thread(target=self._watch, name="fmaprep-stall", daemon=True)

    def __enter__(self) -> Progress:
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
        text = self.line()
        if self.tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()
