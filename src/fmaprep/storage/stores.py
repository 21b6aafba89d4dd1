"""Local disk, S3 and HDFS behind one small interface, without a JVM: what the driver lists and
commits with, and what every task reads its inputs and writes its part with.

What is atomic where:
- ``write_bytes`` publishes a whole small file: S3 one PutObject; local disk a hidden temporary
  file renamed over the target; HDFS a hidden temporary file renamed over the target with
  WebHDFS ``RENAME`` and ``renameoptions=OVERWRITE`` (one NameNode operation).
- ``open_write`` streams a big file and publishes it on ``commit()``: S3 a multipart upload
  (invisible until completed, aborted on failure), local disk and HDFS a hidden temporary name
  renamed into place. Every byte is uploaded once; nothing is ever copied.

Clients come from :mod:`fmaprep.storage.s3client` (boto3) and :mod:`fmaprep.storage.webhdfs`
(requests); ``StoreSettings`` is the small, secret-free description that tasks receive.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Protocol
from urllib.parse import urlsplit

from fmaprep.storage.s3_settings import S3Settings, load_s3_settings


@dataclass(frozen=True)
class Entry:
    uri: str
    size: int
    mtime: float | None = None
    etag: str | None = None  # S3's ETag without quotes; None elsewhere


class Writer(Protocol):
    nbytes: int

    def write(self, data: bytes) -> int: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Writer: ...
    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    def list_files(self, uri: str) -> Iterator[Entry]: ...
    def open_read(self, uri: str) -> IO[bytes]: ...
    def read_bytes(self, uri: str) -> bytes: ...
    def write_bytes(self, uri: str, data: bytes) -> None: ...
    def open_write(self, uri: str) -> Writer: ...
    def delete(self, uris: Iterable[str]) -> None: ...


@dataclass(frozen=True)
class StoreSettings:
    """How to reach the stores. No secrets: credentials stay in the environment (or the
    instance profile) of whoever opens a store."""

    s3: S3Settings | None = None
    webhdfs: str | None = None  # the NameNode's HTTP address, e.g. http://nn:9870
    default_fs: str | None = None  # hdfs://nn:8020, what hdfs:///path means

    @classmethod
    def from_env(
        cls,
        endpoint: str | None = None,
        default_fs: str | None = None,
        namenode_http: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> StoreSettings:
        env = os.environ if environ is None else environ
        return cls(
            s3=load_s3_settings(env=env, endpoint=endpoint),
            webhdfs=env.get("FMAPREP_WEBHDFS_URL") or namenode_http,
            default_fs=default_fs or env.get("FMAPREP_HDFS_URI") or None,
        )

    def full_uri(self, uri: str) -> str:
        """``hdfs:///x`` with the default filesystem's host spelled out."""
        if uri.startswith("hdfs:///") and self.default_fs:
            return self.default_fs.rstrip("/") + uri[len("hdfs://") :]
        return uri


def open_store(uri: str, settings: StoreSettings | None = None) -> Store:
    """The store that holds ``uri`` (a local path, ``file:``, ``s3://``, ``s3a://``, ``hdfs://``)."""
    settings = settings or StoreSettings()
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else "file"
    if scheme == "file":
        return LocalStore()
    if scheme in ("s3", "s3a"):
        from fmaprep.storage.s3client import S3Store

        return S3Store(settings.s3 or S3Settings())
    if scheme == "hdfs":
        from fmaprep.storage.webhdfs import WebHDFSStore

        return WebHDFSStore(uri, settings.webhdfs)
    raise ValueError(f"{uri}: no client for {scheme}:// (local paths, s3://, s3a://, hdfs://)")


def _local(uri: str) -> str:
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri[len("file:") :] if uri.startswith("file:") else uri


def _temporary(path: str) -> str:
    head, name = os.path.split(path)
    return os.path.join(head, f".{name}.{secrets.token_hex(4)}.tmp")


class _LocalWriter:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path, self.tmp = path, _temporary(path)
        self._f: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 (closed on commit/abort)
        self.nbytes = 0

    def write(self, data: bytes) -> int:
        n = self._f.write(data)
        self.nbytes += n
        return n

    def commit(self) -> None:
        self._f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self) -> _LocalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._f.closed:
            self.abort()


class LocalStore:
    def list_files(self, uri: str) -> Iterator[Entry]:
        root = _local(uri)
        prefix = uri if "://" in uri or uri.startswith("file:") else None
        if os.path.isfile(root):
            st = os.stat(root)
            yield Entry(uri, st.st_size, st.st_mtime)
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue  # deleted while we listed
                rel = os.path.relpath(path, root)
                shown = f"{prefix.rstrip('/')}/{rel}" if prefix else path
                yield Entry(shown, st.st_size, st.st_mtime)

    def open_read(self, uri: str) -> IO[bytes]:
        return open(_local(uri), "rb")

    def read_bytes(self, uri: str) -> bytes:
        with open(_local(uri), "rb") as f:
            return f.read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        with _LocalWriter(_local(uri)) as w:
            w.write(data)
            w.commit()

    def open_write(self, uri: str) -> _LocalWriter:
        return _LocalWriter(_local(uri))

    def delete(self, uris: Iterable[str]) -> None:
        for uri in uris:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_local(uri))

    def rename(self, src: str, dst: str) -> None:
        os.replace(_local(src), _local(dst))
