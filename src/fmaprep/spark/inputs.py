"""The inputs of one task, as local files: local sources as they are, remote ones (S3, HDFS)
streamed to a task-local temporary file by the task itself, a few files ahead of the decoder.

No file passes through a JVM, none is held whole in memory, and a read's latency overlaps the
decoding of the file before it. A read that fails after the store client's bounded retries, or
a file that vanished since it was listed, becomes one ``read_failed`` manifest line.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fmaprep.model import InputFile, TrackError
from fmaprep.storage.checksum import file_sha1, stream_sha1
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.uris import is_local_source, local_path

log = logging.getLogger(__name__)

# Remote files in flight ahead of the one being decoded: enough to hide tens of milliseconds
# of request latency behind tiny files, bounded in bytes so long tracks do not fill the disk.
PREFETCH_FILES = 8
PREFETCH_BYTES = 256 * 1024 * 1024
COPY_BLOCK = 1 << 20


def local_copies(
    items: Iterable[InputFile],
    settings: StoreSettings,
    max_files: int = PREFETCH_FILES,
    max_bytes: int = PREFETCH_BYTES,
    timeout_s: float = math.inf,
) -> Iterator[tuple[InputFile, str | None, TrackError | None]]:
    """(input, local path or None, read error or None) for each input, in order. A remote input's
    temporary copy is removed once the consumer asks for the next one. A read the consumer has
    waited ``timeout_s`` for (a server that trickles, a stalled mount) is a ``timeout``; its
    thread is left to its socket timeouts and not waited for."""
    items = list(items)
    if all(is_local_source(item.source) for item in items):
        for item in items:
            yield item, local_path(item.source), None
        return
    scratch = tempfile.mkdtemp(prefix="fmaprep-inputs-")
    pool = ThreadPoolExecutor(max_workers=max(1, max_files), thread_name_prefix="fmaprep-read")
    pending: collections.deque[tuple[InputFile, Future[str] | None]] = collections.deque()
    queue = collections.deque(enumerate(items))

    def top_up() -> None:
        in_flight = sum(item.size for item, future in pending if future is not None)
        while queue and (not pending or (len(pending) < max_files and in_flight < max_bytes)):
            n, item = queue.popleft()
            if is_local_source(item.source):
                pending.append((item, None))
                continue
            target = os.path.join(scratch, str(n))
            pending.append((item, pool.submit(_fetch, item, target, settings)))
            in_flight += item.size

    stuck = False
    try:
        top_up()
        while pending:
            item, future = pending.popleft()
            top_up()
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
        pool.shutdown(wait=not stuck, cancel_futures=True)
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
    except Exception as exc:  # the store client's own errors, after its bounded retries
        raise TrackError("read_failed", f"{type(exc).__name__}: {exc}") from exc
    return path


def hash_inputs(
    spark_context: Any, bins: list[list[InputFile]], settings: StoreSettings
) -> dict[str, str]:
    """sha1 of every input's bytes, computed by the tasks where the files are (source -> hex)."""

    def digest(item: InputFile) -> tuple[str, str]:
        try:
            if is_local_source(item.source):
                return item.source, file_sha1(local_path(item.source))
            with open_store(item.source, settings).open_read(item.source) as stream:
                return item.source, stream_sha1(stream)
        except Exception:
            return item.source, f"unreadable:{item.source}"

    rdd = spark_context.parallelize(bins, len(bins)).flatMap(lambda b: b)
    return dict(rdd.map(digest).collect())
