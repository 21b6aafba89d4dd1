"""A zip archive on an HTTP server, read in place with Range requests: unpacking into S3 or HDFS
then needs local disk for one member at a time (its upload spool), not for the archive.

:class:`RangeFile` is a seekable read-only file over the URL. It fetches aligned windows of
:data:`WINDOW` bytes, each with ``If-Range`` on the validator the probe saw (a file that changes
mid-way is an error, never a mix of two archives), resuming a cut window from the byte it got
to. ``zipfile`` reads the central directory at the end, then the members in offset order, so
an archive costs about size / WINDOW requests. When every window is read in order from byte 0
(a first, uninterrupted pass) the archive's sha1 is computed on the way; a rerun that skips
members already stored reads only what it needs and cannot.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass

from fmaprep.acquire.http import (
    CHUNK,
    TRANSIENT,
    FetchError,
    HttpClient,
    ResumeBudget,
    RetryableError,
)
from fmaprep.acquire.resume import content_range, validator

log = logging.getLogger(__name__)

WINDOW = 32 << 20


@dataclass(frozen=True)
class Remote:
    url: str
    size: int
    validator: str


def probe(client: HttpClient, url: str) -> tuple[Remote | None, int | None]:
    """(the archive, when its server answers Range requests with a validator, else None;
    its size, when known)."""
    with client.open_download(url, {"Range": "bytes=0-0"}) as response:
        span, tag = content_range(response), validator(response)
        if response.status_code != 206 or span is None or span[1] is None or not tag:
            length = response.headers.get("Content-Length") or ""
            # (the body of a 200 is not read: closing the response drops it)
            return None, int(length) if length.isdigit() else None
        return Remote(url, span[1], tag), span[1]


class RangeFile(io.RawIOBase):
    """Seekable reads of a :class:`Remote` through windowed Range requests."""

    def __init__(self, client: HttpClient, remote: Remote, window: int = WINDOW) -> None:
        super().__init__()
        self.client, self.remote, self.window = client, remote, window
        self.pos = 0
        self.received = 0  # body bytes over the network
        self._cache: dict[int, bytes] = {}  # window index -> bytes (the last two used)
        self._sha1 = hashlib.sha1()
        self._hashed = 0  # windows hashed in order from 0

    # -- io.RawIOBase ------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.remote.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.pos >= self.remote.size:
            return 0
        index, start = divmod(self.pos, self.window)
        data = self._window(index)
        n = min(len(buffer), len(data) - start)
        buffer[:n] = data[start : start + n]
        self.pos += n
        return n

    # -- what the caller asks after the pass --------------------------------------------------
    def sha1(self) -> str | None:
        """The whole archive's sha1 if every window was read in order, else None."""
        whole = -(-self.remote.size // self.window)
        return self._sha1.hexdigest() if self._hashed == whole else None

    # -- internals ----------------------------------------------------------------------------
    def _window(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is None:
            data = self._fetch(index)
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = data
        if index == self._hashed:  # the next window in order (the tail read first waits)
            self._sha1.update(data)
            self._hashed += 1
        return data

    def _fetch(self, index: int) -> bytes:
        first = index * self.window
        last = min(self.remote.size, first + self.window) - 1
        got = bytearray()
        budget = ResumeBudget(self.client, self.remote.url)
        while True:
            at = first + len(got)
            headers = {"Range": f"bytes={at}-{last}", "If-Range": self.remote.validator}
            before = len(got)
            try:
                with self.client.open_download(self.remote.url, headers) as response:
                    span = content_range(response)
                    if response.status_code != 206 or span is None or span[0] != at:
                        raise FetchError(
                            "archive_changed",
                            f"{self.remote.url} changed on the server while it was being "
                            "unpacked (If-Range refused)",
                        )
                    for chunk in response.iter_content(CHUNK):
                        got += chunk
                        self.received += len(chunk)
                        if len(got) > last - first:  # all asked for (a server may send more)
                            break
                if len(got) >= last - first + 1:
                    return bytes(got[: last - first + 1])
                raise RetryableError(f"window cut short at byte {first + len(got)}", None)
            except TRANSIENT as exc:
                budget.failed(exc, len(got) > before, f"byte {first + len(got)}")
