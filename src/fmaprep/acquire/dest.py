"""Where acquired files land: a folder on a :class:`fmaprep.storage.stores.Store` (local disk,
``s3://``/``s3a://``, ``hdfs://``), opened with the same settings as every command
(``conf/storage.toml``, then the environment, then flags: :class:`StoreSettings`).

A :class:`Destination` names files by relative keys (``000/000002.mp3``, ``_tracks.jsonl``)
checked by :func:`check_key`, and adds to the store only what acquisition needs: a writer that
counts and hashes what it writes (and can start over when a download restarts), a small file
read as text, the files directly under a folder, appends to ``_tracks.jsonl`` where they are
cheap, and the clean-up of what a killed run left. Everything else is the store's: writes
publish atomically (S3 CompleteMultipartUpload or one PutObject, HDFS rename2 OVERWRITE, local
``os.replace``), reads stream and resume, WebHDFS and S3 requests retry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fmaprep.atomic_file import is_temp_name
from fmaprep.storage.checksum import stream_sha1
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.stores import Store, StoreURI, Writer, split_uri

log = logging.getLogger(__name__)

TMP_DIR = ".fmaprep-tmp"  # a local destination's own scratch folder (archives being downloaded)
_KEY = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class DestinationError(ValueError):
    """A destination URI that cannot be used."""


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated, and made of safe characters only (no '..', no '/...')."""
    if not _KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe destination key {key!r}")
    return key


class TrackWriter(Writer):
    """The store's writer at a key, which also hashes what it writes (``sha1``; ``size`` counts
    it) and can start over (``restart``: a download that begins again drops what it wrote)."""

    def __init__(self, store: Store, uri: str) -> None:
        super().__init__(uri)
        self._store = store
        self._inner = store.open_write(uri)
        self._sha1 = hashlib.sha1()

    @property
    def sha1(self) -> str:
        return self._sha1.hexdigest()

    def restart(self) -> None:
        self._inner.abort()
        self._inner = self._store.open_write(self.uri)
        self._sha1 = hashlib.sha1()
        self.size = 0

    def _write(self, data: memoryview) -> None:
        self._inner.write(data)
        self._sha1.update(data)

    def _commit(self) -> None:
        self._inner.commit()

    def _abort(self) -> None:
        self._inner.abort()


class Destination:
    """A folder of a store, addressed by keys."""

    def __init__(self, store: Store, uri: str) -> None:
        self.store = store
        self.uri = uri
        self._parsed: StoreURI = split_uri(uri)
        prefix = self._parsed.path.rstrip("/")
        # the folder's URI with its slash (on S3 a bucket's root is the empty key)
        on_bucket_root = self._parsed.kind == "s3" and not prefix
        self._base = self._parsed.with_path("" if on_bucket_root else f"{prefix}/")
        # local disk: the folder itself (made now: a destination that cannot be, fails here)
        self.local_root: Path | None = None
        if self._parsed.kind == "file":
            self.local_root = Path(prefix or "/")
            self.local_root.mkdir(parents=True, exist_ok=True)

    def key_uri(self, key: str) -> str:
        check_key(key)
        if self.local_root is not None:
            path = self.local_root / key
            if not path.resolve().is_relative_to(self.local_root.resolve()):
                raise ValueError(f"destination key {key!r} escapes {self.local_root}")
        return self._base + key

    @property
    def appends_in_place(self) -> bool:
        """True where appending a line costs O(1) (a local file); S3 and HDFS rewrite."""
        return self.local_root is not None

    def writer(self, key: str) -> TrackWriter:
        """A writer whose file appears at ``key`` (replacing it, atomically) only on commit."""
        return TrackWriter(self.store, self.key_uri(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        """A small file, published whole (replacing what was there, atomically)."""
        self.store.write_bytes(self.key_uri(key), data)

    def size(self, key: str) -> int | None:
        """The file's size in bytes, or None when there is no file."""
        try:
            entry = self.store.stat(self.key_uri(key))
        except IsADirectoryError:
            return None
        return None if entry is None else entry.size

    def open_read(self, key: str) -> BinaryIO:
        """A streaming reader (FileNotFoundError when missing)."""
        return self.store.open_read(self.key_uri(key))

    def read_text(self, key: str) -> str | None:
        """A small file as text, or None when missing; bytes that are not UTF-8 become U+FFFD
        (a hand-edited ``_tracks.jsonl`` never stops a run: the parser judges each line)."""
        try:
            return self.store.read_bytes(self.key_uri(key)).decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    def sha1(self, key: str) -> str:
        with self.open_read(key) as stream:
            return stream_sha1(stream)

    def append_text(self, key: str, text: str) -> None:
        """Append to a small text file, creating it: O(1) on local disk; elsewhere (no append
        on S3, none without cluster support on HDFS) the file is rewritten."""
        if self.local_root is not None:
            with open(self.local_root / check_key(key), "a", encoding="utf-8") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            return
        self.write_bytes(key, ((self.read_text(key) or "") + text).encode("utf-8"))

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the files directly under the folder ``prefix`` (``a/b/``), sorted; names
        that are not keys (a writer's hidden temporary file) are left out."""
        folder = prefix.rstrip("/")
        base = self.key_uri(folder) + "/"
        keys = []
        for entry in self.store.list_files(base):
            name = entry.uri[len(base) :]
            if "/" not in name and _KEY.match(name):
                keys.append(f"{folder}/{name}")
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove one file; a missing one is not an error."""
        self.store.delete([self.key_uri(key)])

    def publish(self, staged: str, key: str) -> None:
        """Move the complete file ``staged`` to ``key`` (replacing it) on the store, its bytes
        never passing through here: members of an archive read in place are staged, then
        published once the archive's sha1 is proven."""
        self.store.replace(self.key_uri(staged), self.key_uri(key))

    def local_tmp_dir(self) -> Path | None:
        """A local scratch folder on the same disk (for big downloads), if there is one."""
        if self.local_root is None:
            return None
        path = self.local_root / TMP_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def leftovers(self) -> Iterator[str]:
        """URIs of the temporary files a killed writer left (local disk and HDFS; on S3 a
        killed writer leaves an unfinished upload instead, which :meth:`cleanup` aborts)."""
        for entry in self.store.list_files(self._base):
            name = entry.uri[len(self._base) :]
            if not name.startswith(TMP_DIR + "/") and is_temp_name(name.rsplit("/")[-1]):
                yield entry.uri

    def cleanup(self) -> None:
        """Drop what an earlier, killed run left half-written (fmaprep's own temporary names,
        and on S3 its unfinished uploads to keys of a destination's shape)."""
        if self._parsed.kind == "s3":
            base = self._base
            aborted = self.store.abort_uploads(
                base, lambda uri: uri.startswith(base) and bool(_KEY.match(uri[len(base) :]))
            )
            if aborted:
                log.info("%s: aborted %d unfinished uploads of an earlier run", self.uri, aborted)
            return
        self.store.delete(list(self.leftovers()))


def open_destination(uri: str, settings: StoreSettings | None = None) -> Destination:
    """A destination for an absolute local path, ``file:``, ``s3://``, ``s3a://`` or ``hdfs://``,
    on a store opened with ``settings`` (default: ``conf/storage.toml`` and the environment)."""
    if not uri:
        raise DestinationError("empty destination")
    try:
        parsed = split_uri(uri)
        if parsed.kind == "file" and not parsed.path.startswith("/"):
            raise DestinationError(
                f"{uri}: relative destination; give an absolute path (e.g. {Path.cwd() / uri}) "
                "or a file:// / s3:// / hdfs:// URI"
            )
        store = open_store(uri, settings or StoreSettings.from_env())
        return Destination(store, uri)
    except DestinationError:
        raise
    except ValueError as exc:  # a URI, or storage settings, that cannot be used
        raise DestinationError(f"{uri}: not a destination: {exc}") from exc
