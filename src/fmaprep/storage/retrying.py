"""The one retry policy, and reads that survive dropped connections with it.

:class:`RetryPolicy` is how every hand-written retry in fmaprep waits and when it stops: store
reads here, and the scraper's and ``fetch-dataset``'s HTTP client (``acquire.http``). Bounded
attempts in a row without progress (an attempt that brought bytes resets the count: five drops
of an 880 GB transfer are not five failures), exponential backoff with jitter, capped, and a
server's Retry-After honoured up to the cap. Requests that botocore makes retry inside botocore
(``mode=standard``, bounded); they are not retried again here.

Why by hand and not urllib3's ``Retry``: a retry here resumes a body at the offset it reached,
pinned to the same object (S3 ``If-Match: <etag>``, HTTP ``If-Range``), and the scraper's polite
throttle must stand in front of every request, a retry's included, and hold the whole run on a
Retry-After; urllib3 restarts a request from byte 0 and knows no run-wide throttle.

:class:`RetryingReader` reopens at the current offset, each retry logged as "attempt n of N"
(used by every store's ``open_read``).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Protocol

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from fmaprep.storage.stores import READ_ATTEMPTS, READ_BUFFER, StoreError, TransientError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------- the retrying reader
class RawStream(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


#: ``open_at(offset)`` -> (a stream of the bytes from ``offset``, the total size if known)
Opener = Callable[[int], tuple[RawStream, int | None]]


def _transient(exc: BaseException) -> bool:
    """Whether a failure to open or read is worth a reopen."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(
        exc,
        FileNotFoundError
        | FileExistsError
        | PermissionError
        | IsADirectoryError
        | NotADirectoryError
        | io.UnsupportedOperation
        | StoreError,  # refused (a TransientError is one too, but said so above)
    ):
        return False
    transport = OSError | http.client.HTTPException | requests.RequestException | Urllib3Error
    if isinstance(exc, transport):
        return True
    from botocore import exceptions as bce  # here: a local read never loads botocore

    return isinstance(exc, bce.HTTPClientError | bce.IncompleteReadError)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in a row without progress, then give up; between them, exponential backoff
    from ``base`` seconds, capped at ``cap``, jittered 0.5x to 1.5x (so clients that failed
    together do not come back together)."""

    attempts: int
    base: float
    cap: float

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retries counts attempts and must be >= 1")

    def delay(
        self, failures: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after ``failures`` failures in a row (1, 2, ...); a server's
        Retry-After, when longer, wins (never beyond the cap: a header is not a reason to hang)."""
        jitter = 0.5 + (rng.random() if rng is not None else random.random())
        delay: float = min(self.cap, self.base * 2 ** (failures - 1)) * jitter
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay


class RetryBudget:
    """Failures in a row without progress, counted against a :class:`RetryPolicy`."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def failed(self, progressed: bool = False) -> bool:
        """Count a failure (an attempt that ``progressed`` starts the count again); True while
        another attempt is allowed."""
        self.failures = 0 if progressed else self.failures + 1
        return self.failures < self.policy.attempts


#: store reads: six opens in a row without a byte, waits of ~0.125 s doubling to ~4 s
STORE_READS = RetryPolicy(attempts=READ_ATTEMPTS, base=0.125, cap=4.0)


class RetryingReader(io.RawIOBase):
    """A readable, seekable stream over ``open_at``, reopening at the current offset when a
    read fails transiently or the body ends before the known size.

    ``max_attempts`` bounds the opens in a row without a byte of progress. Seeking is lazy
    (the next read reopens), except a short forward seek on an open stream, which reads on.
    """

    def __init__(
        self,
        open_at: Opener,
        start: int = 0,
        *,
        name: str = "",
        size: int | None = None,
        max_attempts: int = READ_ATTEMPTS,
        backoff: Callable[[int], float] = STORE_READS.delay,
        skip_limit: int = 256 * 1024,
        transient: Callable[[BaseException], bool] | None = None,
    ) -> None:
        super().__init__()
        if start < 0:
            raise ValueError("start must be >= 0")
        self._open_at = open_at
        self._pos = start
        self._stream: RawStream | None = None
        self.size = size
        self.name = name
        self.max_attempts = max_attempts
        self._policy = replace(STORE_READS, attempts=max_attempts)
        self._backoff = backoff
        self._skip_limit = skip_limit
        self.reopens = 0  # how many times a failure made it reopen (for tests and logs)
        # a store's own test for errors worth a reopen (S3: throttling codes), then the generic
        self._transient = (lambda e: transient(e) or _transient(e)) if transient else _transient

    # -- opening
    def open(self) -> None:
        """Open at the current offset now (so a missing file raises here, not at first read)."""
        self._with_retries(lambda: None)

    def _ensure(self) -> RawStream:
        if self._stream is None:
            stream, size = self._open_at(self._pos)
            if size is not None:
                self.size = size
            self._stream = stream
        return self._stream

    def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            # a broken connection may fail to close; it is gone either way
            with contextlib.suppress(Exception):
                stream.close()

    def _with_retries(self, action: Callable[[], Any]) -> Any:
        # (a call ends at the first byte read: every failure counted here is one in a row)
        budget = RetryBudget(self._policy)
        while True:
            try:
                self._ensure()
                return action()
            except Exception as exc:
                self._drop()
                again = budget.failed()
                failures = budget.failures
                if not self._transient(exc) or not again:
                    if failures > 1 and self._transient(exc):
                        raise TransientError(
                            f"{self.name}: read at offset {self._pos} failed "
                            f"{failures} times: {exc}"
                        ) from exc
                    raise
                delay = self._backoff(failures)
                log.warning(
                    "%s: read at offset %d failed (%s: %s); reopening, attempt %d of %d in %.2f s",
                    self.name,
                    self._pos,
                    type(exc).__name__,
                    exc,
                    failures + 1,
                    self.max_attempts,
                    delay,
                )
                self.reopens += 1
                time.sleep(delay)

    # -- io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        view = memoryview(buffer).cast("B")
        if not len(view) or (self.size is not None and self._pos >= self.size):
            return 0

        def once() -> int:
            assert self._stream is not None
            data = self._stream.read(len(view))
            if not data:
                if self.size is not None and self._pos < self.size:
                    raise TransientError(
                        f"{self.name}: body ended at {self._pos} of {self.size} bytes"
                    )
                return 0
            view[: len(data)] = data
            self._pos += len(data)
            return len(data)

        return int(self._with_retries(once))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            if self.size is None:
                self.open()
            if self.size is None:
                raise io.UnsupportedOperation(f"{self.name}: size unknown, cannot seek from end")
            target = self.size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        if target == self._pos:
            return target
        if self._stream is not None and 0 < target - self._pos <= self._skip_limit:
            remaining = target - self._pos
            while remaining > 0:
                got = self.read(min(remaining, 65536))
                if not got:
                    break
                remaining -= len(got)
            self._pos = target
            if remaining > 0:
                self._drop()
            return target
        self._drop()
        self._pos = target
        return target

    def close(self) -> None:
        self._drop()
        super().close()


def buffered(reader: RetryingReader, buffer_size: int = READ_BUFFER) -> BinaryIO:
    """``reader`` with a read buffer (what :meth:`Store.open_read` returns)."""
    return io.BufferedReader(reader, buffer_size=buffer_size)


class _Empty:
    def read(self, size: int = -1, /) -> bytes:
        return b""

    def close(self) -> None:
        pass
