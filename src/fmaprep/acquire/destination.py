"""Where acquired files land. A :class:`Destination` stores objects under relative keys
(``000/000002.mp3``, ``_tracks.jsonl``) and never shows a partial object: writers stage the bytes
under a temporary name (or an unfinished multipart upload) and publish them in one step on
``commit()``.

Backends: an absolute local directory (or ``file://`` URI); ``s3://`` / ``s3a://`` through
boto3 (:mod:`fmaprep.acquire.s3`); ``hdfs://`` through WebHDFS (:mod:`fmaprep.acquire.webhdfs`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from fmaprep.storage.checksum import stream_sha1

TMP_DIR = ".fmaprep-tmp"  # staging area inside a local destination (hidden, never *.mp3)
_KEY = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class DestinationError(ValueError):
    """A destination URI that cannot be used."""


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated, and made of safe characters only (no '..', no '/...')."""
    if not _KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe destination key {key!r}")
    return key


class Writer(ABC):
    """A staged object: ``write`` bytes, then ``commit`` (publish) or ``abort`` (discard).
    ``restart`` drops what was written so far (a download attempt that failed half-way).
    As a context manager it aborts unless committed."""

    def __init__(self) -> None:
        self.nbytes = 0
        self._sha1 = hashlib.sha1()
        self.done = False

    @property
    def sha1(self) -> str:
        return self._sha1.hexdigest()

    def write(self, data: bytes) -> None:
        self._write(data)
        self._sha1.update(data)
        self.nbytes += len(data)

    def restart(self) -> None:
        self._restart()
        self._sha1 = hashlib.sha1()
        self.nbytes = 0

    def commit(self) -> None:
        self._commit()
        self.done = True

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self._abort()

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _restart(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class SpooledWriter(Writer):
    """A writer for stores without append or partial objects (S3, WebHDFS): bytes spool to a
    local temporary file (in memory up to 8 MB) and go up whole on commit, in ``_upload``."""

    def __init__(self) -> None:
        super().__init__()
        self._spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115

    def _write(self, data: bytes) -> None:
        self._spool.write(data)

    def _restart(self) -> None:
        self._spool.seek(0)
        self._spool.truncate()

    def _commit(self) -> None:
        self._spool.seek(0)
        try:
            self._upload(self._spool)  # type: ignore[arg-type]
        finally:
            self._spool.close()

    def _abort(self) -> None:
        self._spool.close()

    @abstractmethod
    def _upload(self, data: BinaryIO) -> None: ...


class Destination(ABC):
    """Storage for acquired files; keys are relative paths checked by :func:`check_key`."""

    uri: str

    @abstractmethod
    def writer(self, key: str) -> Writer:
        """A staged writer whose object appears at ``key`` only on commit."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A binary stream of the object (FileNotFoundError when missing)."""

    @abstractmethod
    def append_text(self, key: str, text: str) -> None:
        """Append ``text`` to a (small) text object, creating it when missing."""

    # True where appending a line costs O(1) (a local file); S3 and WebHDFS rewrite the object
    appends_in_place = False

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the files directly under the folder ``prefix`` (``a/b/``), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one file; a missing one is not an error."""

    @abstractmethod
    def publish(self, staged: str, key: str) -> None:
        """Move the complete file ``staged`` to ``key`` (replacing it) on the server, without
        its bytes passing through here: members of an archive read in place are staged, then
        published once the archive's sha1 is proven."""

    @abstractmethod
    def local_tmp_dir(self) -> Path | None:
        """A local staging directory on the same storage (for big downloads), if there is one."""

    def read_text(self, key: str) -> str | None:
        """The object as text, or None when missing; bytes that are not UTF-8 become U+FFFD
        (a hand-edited ``_tracks.jsonl`` never stops a run: the parser judges each line)."""
        try:
            with self.open_read(key) as stream:
                return stream.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    def sha1(self, key: str) -> str:
        with self.open_read(key) as stream:
            return stream_sha1(stream)

    def cleanup(self) -> None:  # noqa: B027  (optional hook)
        """Drop staging leftovers of an earlier, interrupted run."""


class _LocalWriter(Writer):
    def __init__(self, final: Path, staging: Path) -> None:
        super().__init__()
        self._final = final
        staging.mkdir(parents=True, exist_ok=True)
        self._tmp = staging / f"{final.name}.{secrets.token_hex(6)}.part"
        self._file: BinaryIO = open(self._tmp, "wb")  # noqa: SIM115

    def _write(self, data: bytes) -> None:
        self._file.write(data)

    def _restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()

    def _commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, self._final)

    def _abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalDestination(Destination):
    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise DestinationError(f"local destination must be an absolute path, not {root}")
        self.root = root
        self.uri = root.as_uri()
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"destination key {key!r} escapes {self.root}")
        return path

    def writer(self, key: str) -> Writer:
        return _LocalWriter(self._path(key), self.root / TMP_DIR)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def append_text(self, key: str, text: str) -> None:
        with open(self._path(key), "a", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())

    appends_in_place = True

    def list_keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(f"{prefix.rstrip('/')}/{p.name}" for p in folder.iterdir() if p.is_file())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def publish(self, staged: str, key: str) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(staged), final)

    def local_tmp_dir(self) -> Path:
        path = self.root / TMP_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def staged(self) -> Iterator[Path]:
        """Leftover staging files (an interrupted run's partial downloads)."""
        tmp = self.root / TMP_DIR
        return tmp.glob("*.part") if tmp.is_dir() else iter(())

    def cleanup(self) -> None:
        for leftover in self.staged():
            leftover.unlink(missing_ok=True)
