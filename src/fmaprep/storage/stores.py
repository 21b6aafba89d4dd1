"""Direct clients for the three stores (local disk, S3, HDFS), for the driver and for Python tasks.

No JVM: ``file://`` and plain paths use the OS, ``s3://``/``s3a://`` use boto3, ``hdfs://`` uses
WebHDFS over ``requests``. A :class:`Store` is small and picklable (S3: the frozen
:class:`~fmaprep.storage_conf.S3Settings`; HDFS: the NameNode's HTTP address and the user), so a
task receives the store and builds its client itself: one boto3 client and one HTTP session per
process (and per settings), created on first use and cached.

URIs are parsed by :mod:`fmaprep.storage.uris` (never percent-decoded). Listings return URIs
spelled as the URI they were asked for (``s3a://`` stays ``s3a://``, ``hdfs:///x`` stays
``hdfs:///x``, ``file:/x`` stays ``file:/x``).

**What is atomic where** (a reader sees the old content or the new, never a part):

- ``write_bytes`` and a committed ``open_write`` replace atomically everywhere. S3: one PutObject,
  or CompleteMultipartUpload (nothing is visible before it). Local: a hidden temp file in the same
  directory, fsync, ``os.replace``. HDFS: a hidden temp file, then RENAME with
  ``renameoptions=OVERWRITE``, which makes the NameNode run rename2: one namespace operation that
  replaces the target (plain WebHDFS RENAME refuses an existing target, and delete-then-rename
  would leave a moment with no file).
- ``create_new`` publishes only if the name is free (FileExistsError otherwise). Local: temp
  file + ``os.link`` (refuses an existing name): atomic. HDFS: temp + RENAME
  ``renameoptions=NONE``: atomic. S3: PutObject with ``If-None-Match: *``: atomic on AWS S3
  (conditional writes); a server that ignores the header replaces instead (see the tests for
  what s3proxy does), so do not rely on it for mutual exclusion off AWS.
- ``replace`` moves a finished file over another: local ``os.replace`` and HDFS rename2
  OVERWRITE (atomic); on S3 a server-side copy then a delete (the one copy fmaprep makes, for
  acquisition's verify-then-publish; the job never calls it).
- ``delete`` is per file (S3: DeleteObjects, 1000 keys a request): never atomic across files.

Plain WebHDFS RENAME (no ``renameoptions``) is *not* used: it refuses an existing file and moves
the source *into* an existing directory. Files being written on HDFS are visible (growing) under
their name, which is why every write goes to a hidden temp name (``.NAME.<hex>.fmaprep-tmp``,
hidden by the ``.`` prefix from Hadoop's input formats and fmaprep's listing rule) first.

**Reads stream.** :meth:`Store.open_read` never holds the whole object: it returns a buffered
:class:`RetryingReader` that reopens with a Range from the current offset when the connection
drops mid-body (bounded: at most ``max_attempts`` opens in a row without progress, exponential
backoff with jitter, each retry logged as "attempt n of N"). On S3 the reopen carries
``If-Match: <etag>`` so a replaced object is never spliced into the old one's bytes. botocore
itself retries throttling (503 SlowDown) and 5xx on every request (``mode=standard``, bounded).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Self

from fmaprep import atomic_file

# the one URI parser lives in uris; the stores' modules import these names from here too
from fmaprep.storage.uris import StoreError as StoreError  # noqa: PLC0414 (re-export)
from fmaprep.storage.uris import StoreURI as StoreURI  # noqa: PLC0414 (re-export)
from fmaprep.storage.uris import split_uri as split_uri  # noqa: PLC0414 (re-export)

log = logging.getLogger(__name__)

WEBHDFS_ENV = "FMAPREP_WEBHDFS_URL"
HDFS_DEFAULT_FS_ENV = "FMAPREP_HDFS_URI"
WEBHDFS_PORT = 9870  # Hadoop 3's NameNode HTTP port (EMR's too)
S3_MAX_ATTEMPTS = 8  # botocore's bounded retries per request (throttling, 5xx, connection)
S3_PAGE = 1000  # ListObjectsV2 and DeleteObjects maximum
PART_SIZE = 16 * 1024 * 1024  # S3 multipart part (AWS minimum 5 MiB, except the last)
READ_BUFFER = 1024 * 1024  # buffered reader in front of a RetryingReader
HTTP_TIMEOUT = (10.0, 120.0)  # connect, read (seconds)
READ_ATTEMPTS = 6  # opens in a row without progress before a read gives up
# temporary files: the one naming rule of atomic local writes, for every store
TMP_SUFFIX = atomic_file.TMP_SUFFIX
_tmp_name = atomic_file.temp_name


class TransientError(StoreError):
    """A failure worth retrying (5xx, throttling, a dropped connection, a short body)."""


def _dir_prefix(path: str) -> str:
    """``path`` as a directory prefix: ``/a/b`` -> ``/a/b/``; S3's ``""`` stays ``""``."""
    return path if not path or path.endswith("/") else path + "/"


# ----------------------------------------------------------------------------- the interface
@dataclass(frozen=True)
class Entry:
    """One file. ``etag``: the S3 ETag without quotes (None elsewhere). ``mtime``: seconds."""

    uri: str
    size: int
    mtime: float | None
    etag: str | None = None


class Writer(ABC):
    """A staged file: ``write`` bytes, then ``commit`` (publish at the URI) or ``abort`` (leave
    nothing). As a context manager it aborts unless committed."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.size = 0
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._done:
            raise ValueError(f"{self.uri}: write after commit/abort")
        view = memoryview(data).cast("B")
        self._write(view)
        self.size += len(view)
        return len(view)

    def commit(self) -> None:
        """Publish the file."""
        if self._done:
            raise ValueError(f"{self.uri}: already committed or aborted")
        try:
            self._commit()
        except BaseException:
            self._done = True
            self._abort_quietly()
            raise
        self._done = True

    def publish(self, data: bytes) -> None:
        """Write ``data`` and commit: a whole file at once (aborted when either fails)."""
        with self:
            self.write(data)
            self.commit()

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self._abort()

    def _abort_quietly(self) -> None:
        try:
            self._abort()
        except Exception as exc:  # the commit's error is the one to report
            log.warning("%s: clean-up after a failed commit failed too: %s", self.uri, exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    @abstractmethod
    def _write(self, data: memoryview) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class Store(ABC):
    """One store's operations. Every URI must be of this store's kind."""

    kind: str

    @abstractmethod
    def list_files(self, uri: str) -> Iterator[Entry]:
        """Every file under ``uri`` (recursively; ``uri`` itself when it is a file), in a
        deterministic order. S3: one paginated ListObjectsV2 (1000 a page); HDFS: one
        LISTSTATUS_BATCH series per directory; never a request per file. Nothing is filtered
        here (hidden names included) except S3 directory markers (keys ending in ``/``)."""

    @abstractmethod
    def stat(self, uri: str) -> Entry | None:
        """The file at ``uri``, or None when there is none (IsADirectoryError for a directory
        on HDFS and local disk)."""

    @abstractmethod
    def open_read(self, uri: str, start: int = 0) -> BinaryIO:
        """A streaming, seekable reader from byte ``start``; FileNotFoundError when missing."""

    def read_bytes(self, uri: str) -> bytes:
        """A small file whole (manifests, commit files); FileNotFoundError when missing."""
        with self.open_read(uri) as stream:
            return stream.read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Publish ``data`` at ``uri``, atomically replacing what was there (see the module)."""
        self.open_write(uri).publish(data)

    @abstractmethod
    def create_new(self, uri: str, data: bytes) -> None:
        """Publish ``data`` at ``uri`` only if nothing is there (FileExistsError otherwise)."""

    @abstractmethod
    def open_write(self, uri: str) -> Writer:
        """A streaming writer whose file appears at ``uri`` (replacing) only on commit."""

    @abstractmethod
    def delete(self, uris: Iterable[str]) -> None:
        """Delete files; missing ones are fine."""

    @abstractmethod
    def replace(self, src: str, dst: str) -> None:
        """Publish the complete file ``src`` at ``dst`` (replacing it; ``src`` is gone after),
        its bytes staying on the store: for what must be verified before it is published
        (acquisition stages the members of an archive read in place until its sha1 is proven).
        Local: ``os.replace``; HDFS: rename2 OVERWRITE; both atomic. S3 has no rename: a
        server-side copy (CopyObject, multipart above boto3's threshold), then ``src`` goes."""

    def abort_uploads(self, uri: str, doomed: Callable[[str], bool]) -> int:
        """Abort the unfinished uploads under ``uri`` to the URIs ``doomed`` accepts (only what
        the caller knows it wrote), and say how many. Only S3 has them (a killed writer's
        multipart upload: invisible to listings, but its parts are stored, and billed, until
        aborted); a killed writer elsewhere leaves a hidden temporary file, which
        ``list_files`` sees like any other."""
        return 0
