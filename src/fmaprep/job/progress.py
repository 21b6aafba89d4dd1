"""Console progress for a running Spark job: files done / total, failures, rate, ETA."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


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
    ) -> None:
        self.total = total
        self.poll = poll
        self.stream = stream
        self.interval = interval if stream.isatty() else log_interval
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fmaprep-progress", daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._print(final=True)

    def line(self) -> str:
        done, failed = self.poll()
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        pct = 100.0 * done / self.total if self.total else 100.0
        eta_text = f", ETA {eta:,.0f}s" if done < self.total and rate > 0 else ""
        return (
            f"preprocess: {done}/{self.total} files ({pct:.0f}%), {failed} failed, "
            f"{rate:.1f} files/s, {elapsed:,.0f}s{eta_text}"
        )

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
