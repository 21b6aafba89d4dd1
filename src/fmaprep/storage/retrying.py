"""Reads that survive dropped connections: reopen at the current offset, bounded, with
jittered backoff, each retry logged as "attempt n of N" (used by every store's ``open_read``)."""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import random
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

import requests

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
        | io.UnsupportedOperation,
    ):
        return False
    if isinstance(exc, StoreError):
        return False
    if isinstance(exc, OSError | http.client.HTTPException | requests.RequestException):
        return True
    try:
        import urllib3.exceptions

        if isinstance(exc, urllib3.exceptions.HTTPError):
            return True
    except ImportError:  # pragma: no cover
        pass
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover
        return False
    return bool(isinstance(exc, bce.HTTPClientError | bce.IncompleteReadError))


def backoff_delay(attempt: int, base: float = 0.25, cap: float = 8.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): exponential, full jitter."""
    return float(random.uniform(0, min(cap, base * 2 ** (attempt - 1))))


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
        backoff: Callable[[int], float] = backoff_delay,
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
        failures = 0
        while True:
            try:
                self._ensure()
                return action()
            except Exception as exc:
                self._drop()
                failures += 1
                if not self._transient(exc) or failures >= self.max_attempts:
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
