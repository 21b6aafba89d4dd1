"""Ctrl-C as a request to stop, not an exception thrown at a random line.

Python raises ``KeyboardInterrupt`` in the main thread between any two bytecodes. Inside
``threading.Condition.wait`` (``Thread.start()``, ``Event.wait()``, a futures ``wait()``) it can
land after the lock was released and before it is taken back, and the ``with`` block around it
then fails with ``RuntimeError: release unlocked lock``: a traceback and exit 1 instead of an
orderly stop. So while a scrape runs, the first Ctrl-C only sets a flag (the handler takes no
lock), a watcher thread turns it into ``cancel()`` (requests in flight are cut, none starts), and
the main thread stops at a point of its own choosing. A second Ctrl-C raises as usual.

Only Python's own handler is replaced: a SIGINT that is ignored (``nohup``, a background job of
a script) stays ignored, and a handler someone else installed stays theirs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

POLL = 0.05  # seconds between the watcher's looks at the flag


class CtrlC:
    """``with CtrlC(cancel):`` the first Ctrl-C calls ``cancel()`` (from a thread of its own)."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel
        self.pressed = False
        self._done = threading.Event()
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is not threading.main_thread():
            return self
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return self
        self._previous = signal.signal(signal.SIGINT, self._handler)
        self._installed = True
        threading.Thread(target=self._watch, name="fmaprep-ctrl-c", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True  # (a plain store: safe wherever the main thread was)

    def _watch(self) -> None:
        while not self._done.wait(POLL):
            if self.pressed:
                self._cancel()
                return
