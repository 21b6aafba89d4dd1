"""The inputs of one task, as local files: local sources as they are, remote ones (S3, HDFS)
streamed to a task-local temporary file by the task itself, a few files ahead of the decoder.

No file passes through a JVM, none is held whole in memory, and a read's latency overlaps the
decoding of the file before it. A read that fails after the store client's bounded retries, or
a file that vanished since it was listed, becomes one ``read_failed`` manifest line.
"""

from __future__ import annotations

import collections
import errno
import logging
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fmaprep.model import InputFile, TrackError
from fmaprep.storage.checksum import file_sha1, stream_sha1
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.uris import is_local, local_path

log = logging.getLogger(__name__)

# Remote files ahead of the one being decoded: enough to hide tens of milliseconds of request
# latency behind tiny files, bounded in bytes so long tracks do not fill the disk.
PREFETCH_FILES = 8
PREFETCH_BYTES = 256 * 1024 * 1024
# Bytes being fetched at once. Concurrent reads share the task's bandwidth (and the GIL), so
# eight songs fetched together all arrive late and the decoder waits for the whole bin; a few
# megabytes in flight keep tiny files overlapping while a song's bytes come before the next's.
CONCURRENT_BYTES = 8 * 1024 * 1024
COPY_BLOCK = 1 << 20


class _Prefetcher:
    """Fetches ``items`` in order into ``scratch``, within the ahead and in-flight limits; a
    finished fetch starts the next one at once, whether or not the decoder has asked yet."""

    def __init__(
        self,
        items: list[InputFile],
        settings: StoreSettings,
        scratch: str,
        *,
        max_files: int,
        max_bytes: int,
        concurrent_bytes: int,
    ) -> None:
        self._settings = settings
        self._scratch = scratch
        self._limits = (max(1, max_files), max_bytes, concurrent_bytes)
        self._pool = ThreadPoolExecutor(self._limits[0], thread_name_prefix="fmaprep-read")
        self._lock = threading.Lock()
        self._queue = collections.deque(enumerate(items))
        self.pending: collections.deque[tuple[InputFile, Future[str] | None]] = collections.deque()
        self._ahead = 0  # bytes of remote files started and not yet handed out
        self._fetching = 0  # bytes of remote files started and not yet finished
        self._closed = False

    def top_up(self) -> None:
        with self._lock:
            max_files, max_bytes, concurrent = self._limits
            while self._queue and not self._closed:
                n, item = self._queue[0]
                if is_local(item.source):
                    self._queue.popleft()
                    self.pending.append((item, None))
                    continue
                # An empty queue ahead always takes one file, however large; the in-flight
                # budget always applies (a second song would only slow the awaited one).
                ahead_ok = not self.pending or (
                    len(self.pending) < max_files and self._ahead < max_bytes
                )
                flight_ok = self._fetching == 0 or self._fetching + item.size <= concurrent
                if not (ahead_ok and flight_ok):
                    return
                self._queue.popleft()
                self._ahead += item.size
                self._fetching += item.size
                target = os.path.join(self._scratch, str(n))
                self.pending.append((item, self._pool.submit(self._fetch, item, target)))

    def _fetch(self, item: InputFile, target: str) -> str:
        # In the pool's thread: the next fetch starts as soon as this one ends.
        try:
            return _fetch(item, target, self._settings)
        finally:
            with self._lock:
                self._fetching -= item.size
            self.top_up()

    def take(self) -> tuple[InputFile, Future[str] | None]:
        with self._lock:
            item, future = self.pending.popleft()
            if future is not None:
                self._ahead -= item.size
        self.top_up()
        return item, future

    def close(self, wait: bool) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)


def local_copies(
    items: Iterable[InputFile],
    settings: StoreSettings,
    *,
    max_files: int = PREFETCH_FILES,
    max_bytes: int = PREFETCH_BYTES,
    timeout_s: float = math.inf,
    concurrent_bytes: int = CONCURRENT_BYTES,
) -> Generator[tuple[InputFile, str | None, TrackError | None], None, None]:
    """(input, local path or None, read error or None) for each input, in order. A remote input's
    temporary copy is removed once the consumer asks for the next one. A read the consumer has
    waited ``timeout_s`` for (a server that trickles, a stalled mount) is a ``timeout``; its
    thread is left to its socket timeouts and not waited for."""
    items = list(items)
    if all(is_local(item.source) for item in items):
        for item in items:
            yield item, local_path(item.source), None
        return
    scratch = tempfile.mkdtemp(prefix="fmaprep-inputs-")
    fetcher = _Prefetcher(
        items,
        settings,
        scratch,
        max_files=max_files,
        max_bytes=max_bytes,
        concurrent_bytes=concurrent_bytes,
    )
    stuck = False
    try:
        fetcher.top_up()
        while fetcher.pending:
            item, future = fetcher.take()
            if future is None:
                yield item, local_path(item.source), None
                continue
            try:
                path = future.result(timeout=None if math.isinf(timeout_s) else timeout_s)
            except TrackError as exc:
                yield item, None, exc
                continue
            except TimeoutError:
                stuck = True
                yield item, None, TrackError("timeout", f"not read within {timeout_s:g} s")
                continue
            try:
                yield item, path, None
            finally:
                os.unlink(path)
    finally:
        fetcher.close(wait=not stuck)
        shutil.rmtree(scratch, ignore_errors=True)


def _fetch(item: InputFile, target: str, settings: StoreSettings) -> str:
    """Stream one remote input to ``target``; a failure becomes a TrackError (read_failed)."""
    suffix = os.path.splitext(item.source.rsplit("/", 1)[-1])[1][:16]
    path = target + suffix  # decoders and the mp3 length check look at the extension
    try:
        store = open_store(item.source, settings)
        with store.open_read(item.source) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, COPY_BLOCK)
    except FileNotFoundError as exc:
        raise TrackError("read_failed", "not found (deleted since it was listed?)") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):  # the scratch disk: the task's
            raise OSError(
                exc.errno, f"{exc.strerror} (scratch copy of {item.source})", path
            ) from exc
        raise TrackError("read_failed", f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the store client's own errors, after its bounded retries
        raise TrackError("read_failed", f"{type(exc).__name__}: {exc}") from exc
    return path


def hash_inputs(
    spark_context: Any, bins: list[list[InputFile]], settings: StoreSettings
) -> dict[str, str]:
    """sha1 of every input's bytes, computed by the tasks where the files are (source -> hex)."""

    def digest(item: InputFile) -> tuple[str, str]:
        try:
            if is_local(item.source):
                return item.source, file_sha1(local_path(item.source))
            with open_store(item.source, settings).open_read(item.source) as stream:
                return item.source, stream_sha1(stream)
        except Exception:
            return item.source, f"unreadable:{item.source}"

    rdd = spark_context.parallelize(bins, len(bins)).flatMap(lambda b: b)
    return dict(rdd.map(digest).collect())
