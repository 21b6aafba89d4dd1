"""Console progress for a running Spark job: files done / total, failures, rate, ETA.

The line is :class:`fmaprep.progress.Progress`, polled from the driver: on a terminal it
redraws in place every half second; elsewhere (logs, CI) it is logged every ten seconds.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TextIO

from fmaprep.progress import Progress as Line


class Progress(contextlib.AbstractContextManager["Progress"]):
    """``with Progress(total, poll):`` shows ``poll()`` -> (files done, files failed)."""

    def __init__(
        self,
        total: int,
        poll: Callable[[], tuple[int, int]],
        stream: TextIO = sys.stderr,
        interval: float = 0.5,
        log_interval: float = 10.0,
    ) -> None:
        self.line = Line(total, stream, log_every=log_interval, unit="files")
        self._watch = self.line.watch(poll, interval)

    def __enter__(self) -> Progress:
        self._watch.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.__exit__(None, None, None)
