"""A zip archive on an HTTP server, read in place with Range requests: unpacking into S3 or HDFS
then needs no local disk at all: members stream to the store, and none holds the archive.

:class:`RangeFile` is a seekable read-only file over the URL. It fetches aligned windows of
:data:`WINDOW` bytes, each with ``If-Range`` on the validator the probe saw (a file that changes
mid-way is an error, never a mix of two archives), resuming a cut window from the byte it got
to. ``zipfile`` reads the central directory at the end, then the members in offset order, so
an archive costs about size / WINDOW requests, and the archive's sha1 is computed on the way
(windows the pass did not need are read at the end: nothing is trusted before the sha1 is).

:class:`Spans` reads exact byte spans: a rerun that knows a verified archive's directory (its
fetch record) gets one member with two requests, its header and its data.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from fmaprep.acquire.http import FetchError, HttpClient, declared_length
from fmaprep.acquire.resume import content_range, read_span, validator

log = logging.getLogger(__name__)

WINDOW = 32 << 20
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (APPNOTE 4.3.7)
_LOCAL_SIGNATURE = b"PK\x03\x04"


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
            # (the body of a 200 is not read: closing the response drops it)
            return None, declared_length(response)
        return Remote(url, span[1], tag), span[1]


class RangeFile(io.RawIOBase):
    """Seekable reads of a :class:`Remote` through windowed Range requests."""

    def __init__(self, client: HttpClient, remote: Remote, window: int = WINDOW) -> None:
        super().__init__()
        self.client, self.remote, self.window = client, remote, window
        self.spans = Spans(client, remote)
        self.pos = 0
        self._cache: dict[int, bytes] = {}  # window index -> bytes (the last two used)
        self._sha1 = hashlib.sha1()
        self._hashed = 0  # windows hashed in order from 0

    # -- io.RawIOBase ------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

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
    @property
    def received(self) -> int:
        """Body bytes received over the network."""
        return self.spans.received

    def sha1(self) -> str:
        """The whole archive's sha1: the windows the pass skipped are read now, in order."""
        whole = -(-self.remote.size // self.window)
        while self._hashed < whole:
            self._window(self._hashed)
        return self._sha1.hexdigest()

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
        return b"".join(self.spans.span(first, last))


class Spans:
    """Byte spans of a :class:`Remote`, each one streamed GET with ``If-Range`` on the probe's
    validator, resumed from the byte it got to; ``received`` counts body bytes."""

    def __init__(self, client: HttpClient, remote: Remote) -> None:
        self.client, self.remote = client, remote
        self.received = 0

    def span(self, first: int, last: int) -> Iterator[bytes]:
        """Bytes ``first..last`` (inclusive), in order."""
        return read_span(
            self.client, self.remote.url, self.remote.validator, first, last, counter=self
        )

    def member(self, offset: int, csize: int, method: int, name: str) -> Iterator[bytes]:
        """The unpacked bytes of the member whose local header is at ``offset`` (from a
        central directory already trusted): its 30-byte header, then exactly its data."""
        header = b"".join(self.span(offset, offset + _LOCAL_HEADER.size - 1))
        sig, *_, name_len, extra_len = _LOCAL_HEADER.unpack(header)
        if sig != _LOCAL_SIGNATURE:
            raise FetchError("archive_changed", f"{self.remote.url}: no member header at {offset}")
        start = offset + _LOCAL_HEADER.size + name_len + extra_len
        if method == zipfile.ZIP_STORED:
            if csize:
                yield from self.span(start, start + csize - 1)
            return
        if method != zipfile.ZIP_DEFLATED:
            raise FetchError("unsupported", f"{name}: compression method {method}")
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        for piece in self.span(start, start + csize - 1) if csize else ():
            yield inflate.decompress(piece)
        yield inflate.flush()
