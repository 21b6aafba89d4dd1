"""Memmap exports on ``s3://`` and ``hdfs://``, read in place: a training node needs no copy.

:class:`RemoteExport` is :class:`~fmaprep.train.data.MemmapExport`'s remote twin: the index is
read once, and a window's codes come from :class:`RangedFile`, which reads ``codes.u8`` in
blocks of ``block_bytes`` through the project's store clients (``Store.open_read(uri, start)``:
an S3 GET with a Range, a WebHDFS OPEN with an offset) into a bounded LRU cache of
``cache_bytes``. A window touches only the blocks it overlaps; while the reads go forward, a
background thread keeps the next ``read_ahead`` blocks coming, from the same open stream (one
request serves a whole sequential run of blocks), so a sequential pass waits for the network
only at its start. A jump reads only the blocks the window needs, with no read-ahead: random
windows cost a request each unless their block is cached (for random sampling over data larger
than the cache, copy the export locally).

Per process: the cache, the open stream and the read-ahead thread are made on first use and
made again after a fork (DataLoader workers), and the objects pickle by URI and sizes.

:func:`export_memmap_to_store` writes an export to a remote DEST: ``codes.u8`` streamed by the
store's atomic writer, then ``index.jsonl``, whose presence is the export's commit (a reader
checks that it covers ``codes.u8`` exactly).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.stores import Store
from fmaprep.storage.uris import is_local
from fmaprep.train.export import CODES_FILE, INDEX_FILE, ExportResult, index_line, read_index

log = logging.getLogger(__name__)

BLOCK_BYTES = 1024 * 1024
CACHE_BYTES = 64 * 1024 * 1024
READ_AHEAD = 16  # blocks, while the reads are sequential

Codes = npt.NDArray[np.uint8]


class RangedFile:
    """Random access to one remote file of known ``size`` (see the module doc)."""

    def __init__(
        self,
        uri: str,
        size: int,
        settings: StoreSettings | None = None,
        *,
        block_bytes: int = BLOCK_BYTES,
        cache_bytes: int = CACHE_BYTES,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        if block_bytes < 1 or read_ahead < 0:
            raise ValueError(f"block_bytes {block_bytes} and read_ahead {read_ahead}: need >= 1, 0")
        if cache_bytes < block_bytes * (read_ahead + 3):
            raise ValueError(
                f"cache_bytes {cache_bytes} must hold read_ahead + 3 = {read_ahead + 3} blocks "
                f"of {block_bytes} bytes"
            )
        self.uri, self.size, self.settings = uri, size, settings
        self.block_bytes, self.cache_bytes, self.read_ahead = block_bytes, cache_bytes, read_ahead
        self.bytes_fetched = 0  # from the store, this process (cache misses and read-ahead)
        self.requests = 0  # reads opened (a reopen after a jump counts)
        self._pid = -1

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = functools.partial(
            RangedFile,
            block_bytes=self.block_bytes,
            cache_bytes=self.cache_bytes,
            read_ahead=self.read_ahead,
        )
        return (rebuild, (self.uri, self.size, self.settings))

    def _start(self) -> None:
        """This process's cache, stream and read-ahead thread (again after a fork)."""
        self._pid = os.getpid()
        self._store: Store = open_store(self.uri, self.settings or StoreSettings.from_env())
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()  # the cache and the counters
        self._io = threading.Lock()  # the stream
        self._stream: IO[bytes] | None = None
        self._stream_block = -1  # the block the stream returns next
        self._pending: set[int] = set()
        self._last = -1  # the last block read on demand: is the reader going forward?
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="fmaprep-read-ahead")

    def read(self, start: int, length: int) -> Codes:
        """Bytes ``start .. start + length`` (clipped to the file) as uint8: a read-only view
        into the cached block when they lie in one block (no copy), else a new array holding
        just those bytes."""
        if self._pid != os.getpid():
            self._start()
        end = min(self.size, start + length)
        if start >= end:
            return np.empty(0, np.uint8)
        size = self.block_bytes
        first, last = start // size, (end - 1) // size
        if first == last:
            view: Codes = np.frombuffer(self._block(first), np.uint8, end - start,
                                        start - first * size)  # fmt: skip
            return view
        out: Codes = np.empty(end - start, np.uint8)
        for block in range(first, last + 1):
            lo, hi = max(start, block * size), min(end, (block + 1) * size)
            out[lo - start : hi - start] = np.frombuffer(
                self._block(block), np.uint8, hi - lo, lo - block * size
            )
        return out

    def _cached(self, block: int) -> bytes | None:
        with self._lock:
            data = self._cache.get(block)
            if data is not None:
                self._cache.move_to_end(block)
            return data

    def _block(self, block: int) -> bytes:
        if block == self._last:  # the block of the last read (most windows): no lock, no LRU
            data = self._cache.get(block)  # work; the eviction spares it (see _evict)
            if data is not None:
                return data
        forward = block == self._last + 1 or block == self._last
        self._last = block
        data = self._cached(block)
        if data is None:
            data = self._fetch(block)
            assert data is not None  # a demand read is never stale
        if forward:  # read ahead only for a reader going forward: a jump reads what it needs
            self._schedule(block)
        return data

    def _schedule(self, block: int) -> None:
        with self._lock:
            wanted = [
                b
                for b in range(block + 1, block + 1 + self.read_ahead)
                if b * self.block_bytes < self.size and b not in self._cache
                and b not in self._pending
            ]  # fmt: skip
            self._pending.update(wanted)
        for b in wanted:
            self._ahead.submit(self._prefetch, b)

    def _prefetch(self, block: int) -> None:
        try:
            self._fetch(block, ahead=True)
        except OSError as exc:  # the demand read will try again and report it
            log.debug("%s: read-ahead of block %d failed: %s", self.uri, block, exc)
        finally:
            with self._lock:
                self._pending.discard(block)

    def _evict(self) -> None:
        """Drop the least recently used block outside the reader's working set (the block
        before the last one read, that one, and the read-ahead), else the least recent."""
        keep = range(self._last - 1, self._last + self.read_ahead + 1)
        victim = next((b for b in self._cache if b not in keep), None)
        if victim is None:
            self._cache.popitem(last=False)
        else:
            del self._cache[victim]

    def _fetch(self, block: int, *, ahead: bool = False) -> bytes | None:
        """``block`` from the store, into the cache. The read-ahead (``ahead``) never opens a
        second request while the open one is still in the reader's path: when the stream is
        behind ``block`` but not behind the reader (a block the reader is about to fetch itself
        on demand, skipped by the read-ahead as its own), it reads on through those blocks.
        None: a stale read-ahead, not fetched."""
        with self._io:
            data = self._cached(block)  # the read-ahead may have brought it meanwhile
            if data is not None:
                return data
            # a read-ahead is stale once the reader moved past it or jumped away (checked
            # here, under the stream's lock: a busy machine can hold this thread back for long)
            if ahead and not self._last < block <= self._last + self.read_ahead:
                return None
            first = block
            if ahead and self._stream is not None and self._last <= self._stream_block < block:
                first = self._stream_block
            if self._stream is None or self._stream_block != first:
                if self._stream is not None:
                    self._stream.close()
                self._stream = self._store.open_read(self.uri, first * self.block_bytes)
                self.requests += 1
            got = b""
            for each in range(first, block + 1):
                got = self._read_next(each)
        return got

    def _read_next(self, block: int) -> bytes:
        """The open stream's next block (``block``), cached (under the stream's lock)."""
        assert self._stream is not None
        want = min(self.block_bytes, self.size - block * self.block_bytes)
        data = self._stream.read(want)
        if len(data) != want:
            self._stream.close()
            self._stream = None
            raise OSError(f"{self.uri}: short read of block {block} ({len(data)} of {want})")
        self._stream_block = block + 1
        with self._lock:  # still under the stream's lock: nobody fetches it again meanwhile
            self.bytes_fetched += len(data)
            self._cache[block] = data
            while len(self._cache) * self.block_bytes > self.cache_bytes:
                self._evict()
        return data


class _RangedCodes:
    """One track's codes in a remote export: ``size`` and slicing, like the memmap view."""

    def __init__(self, file: RangedFile, offset: int, length: int) -> None:
        self._file, self._offset, self.size = file, offset, length

    def __getitem__(self, key: slice) -> Codes:
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("only contiguous slices")
        return self._file.read(self._offset + start, max(0, stop - start))


class RemoteExport:
    """A memmap export at an ``s3://`` or ``hdfs://`` URI: ``tracks`` (the index lines) and
    ``codes(i)`` (a sliceable view read through :class:`RangedFile`)."""

    def __init__(
        self,
        uri: str,
        settings: StoreSettings | None = None,
        *,
        block_bytes: int = BLOCK_BYTES,
        cache_bytes: int = CACHE_BYTES,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        self.path = uri.rstrip("/")
        store = open_store(self.path, settings or StoreSettings.from_env())
        raw = store.read_bytes(f"{self.path}/{INDEX_FILE}").decode("utf-8")
        entry = store.stat(f"{self.path}/{CODES_FILE}")
        size = entry.size if entry is not None else -1
        self.tracks = read_index(raw, self.path, size)
        self.file = RangedFile(f"{self.path}/{CODES_FILE}", size, settings,
                               block_bytes=block_bytes, cache_bytes=cache_bytes,
                               read_ahead=read_ahead)  # fmt: skip
        self._views: dict[int, _RangedCodes] = {}

    def __len__(self) -> int:
        return len(self.tracks)

    def codes(self, i: int) -> Any:
        view = self._views.get(i)
        if view is None:  # one per track, made when first asked for (a window asks each time)
            line = self.tracks[i]
            view = self._views[i] = _RangedCodes(
                self.file, int(line["offset"]), int(line["length"])
            )
        return view


def is_remote_export(source: str, settings: StoreSettings | None = None) -> bool:
    """``source`` is an ``s3://``/``hdfs://`` directory holding a memmap export's index."""
    if is_local(source):
        return False
    uri = source.rstrip("/")
    return (
        open_store(uri, settings or StoreSettings.from_env()).stat(f"{uri}/{INDEX_FILE}")
        is not None
    )


def export_memmap_to_store(
    output: str,
    dest: str,
    *,
    track_ids: Collection[str] | None = None,
    genres: Collection[str] | None = None,
    splits: Collection[str] | None = None,
    settings: StoreSettings | None = None,
) -> ExportResult:
    """``fmaprep export OUTPUT DEST --to memmap`` for an ``s3://`` or ``hdfs://`` DEST (see the
    module doc). An existing export at DEST is refused: remove it first."""
    from fmaprep.formats.records import read_records

    dest = dest.rstrip("/")
    settings = settings or StoreSettings.from_env()
    store = open_store(dest, settings)
    if store.stat(f"{dest}/{INDEX_FILE}") is not None:
        raise FileExistsError(f"{dest} holds a memmap export; remove it first")
    lines = []
    offset = tracks = 0
    with store.open_write(f"{dest}/{CODES_FILE}") as out:
        for record in read_records(
            output, track_ids=track_ids, genres=genres, splits=splits, settings=settings
        ):
            codes, line = index_line(record, offset)
            out.write(np.ascontiguousarray(codes).data)
            lines.append(line)
            offset += codes.size
            tracks += 1
        out.commit()
    store.write_bytes(f"{dest}/{INDEX_FILE}", "".join(lines).encode())  # the commit, last
    log.info("exported %d tracks (%d samples) to %s", tracks, offset, dest)
    return ExportResult(dest, tracks, offset)
