"""HDFS behind :class:`fmaprep.storage.stores.Store`, over WebHDFS with ``requests``: no JVM, no
libhdfs. One LISTSTATUS per directory, streaming reads and chunked writes, rename2 (OVERWRITE or
NONE) for atomic publishes."""

from __future__ import annotations

import dataclasses
import errno
import functools
import getpass
import http.client
import json
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from fmaprep.storage.retrying import RawStream, RetryingReader, _Empty, buffered
from fmaprep.storage.stores import (
    HDFS_DEFAULT_FS_ENV,
    HTTP_TIMEOUT,
    WEBHDFS_ENV,
    WEBHDFS_PORT,
    Entry,
    Store,
    StoreError,
    StoreURI,
    TransientError,
    Writer,
    _dir_prefix,
    _tmp_name,
)
from fmaprep.storage.uris import BadURIError, split_uri

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------- HDFS
@functools.cache  # per process (a forked worker makes its own) and NameNode address
def _session(pid: int, base_url: str) -> requests.Session:
    session = requests.Session()
    # idempotent metadata calls retry 5xx and connection failures; PUTs do not
    retry = Retry(
        total=5,
        backoff_factor=0.25,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD", "DELETE"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _hadoop_conf(file: str, name: str) -> str | None:
    """A property of Hadoop's client configuration, ``$HADOOP_CONF_DIR/<file>``
    (``/etc/hadoop/conf`` on EMR), or None."""
    conf = Path(os.environ.get("HADOOP_CONF_DIR") or "/etc/hadoop/conf") / file
    try:
        root = ET.parse(conf).getroot()
    except (OSError, ET.ParseError):
        return None
    for prop in root.iter("property"):
        if (prop.findtext("name") or "").strip() == name:
            return (prop.findtext("value") or "").strip() or None
    return None


def webhdfs_base(uri: str) -> str:
    """The NameNode's HTTP address for ``uri``: ``$FMAPREP_WEBHDFS_URL`` if set; else, for the
    default file system (``hdfs:///x``, or its host named), ``dfs.namenode.http-address`` from
    Hadoop's ``hdfs-site.xml``; else ``http://HOST:9870`` (HOST from the URI, or the default
    file system's: ``$FMAPREP_HDFS_URI``, else ``fs.defaultFS`` in ``core-site.xml``)."""
    env = os.environ.get(WEBHDFS_ENV, "").strip().rstrip("/")
    if env:
        return env
    parsed = split_uri(uri)
    default_fs = os.environ.get(HDFS_DEFAULT_FS_ENV, "").strip() or _hadoop_conf(
        "core-site.xml", "fs.defaultFS"
    )
    default = urlsplit(default_fs or "")
    host = parsed.authority.rsplit(":", 1)[0] if parsed.authority else default.hostname
    if not host:
        raise BadURIError(f"{uri}: no NameNode (name it in the URI or set {WEBHDFS_ENV})")
    http = _hadoop_conf("hdfs-site.xml", "dfs.namenode.http-address")
    if http and ":" in http and (not parsed.authority or parsed.authority == default.netloc):
        http_host, _, port = http.rpartition(":")
        return f"http://{host if http_host in ('', '0.0.0.0') else http_host}:{port}"
    return f"http://{host}:{WEBHDFS_PORT}"


def _hdfs_error(op: str, uri: str, response: requests.Response) -> OSError:
    return _status_error(op, uri, response.status_code, response.text)


def _status_error(op: str, uri: str, status: int, body: str) -> OSError:
    """The OSError a WebHDFS answer means (NameNode or DataNode alike): its status and the
    ``RemoteException`` in its body (a DataNode's message may run on with a Java stack)."""
    try:
        remote = json.loads(body)["RemoteException"]
        exception = str(remote["exception"])
        message = str(remote.get("message", "")).partition("\n")[0]
    except (ValueError, KeyError, TypeError):
        exception, message = "", body[:300]
    text = f"WebHDFS {op} {uri}: HTTP {status} {exception} {message}".strip()
    if status == 404 or exception == "FileNotFoundException":
        return FileNotFoundError(errno.ENOENT, text, uri)
    if exception in ("FileAlreadyExistsException",):
        return FileExistsError(errno.EEXIST, text, uri)
    if status in (401, 403) and exception in ("AccessControlException", ""):
        return PermissionError(errno.EACCES, text, uri)
    if exception in ("DSQuotaExceededException", "NSQuotaExceededException"):
        return OSError(errno.EDQUOT, text, uri)
    if status >= 500 or status == 429:
        return TransientError(text)
    return StoreError(text)


def _q(value: str) -> str:
    return quote(value, safe="/")


class _ChunkedPut:
    """A streamed PUT (chunked transfer encoding) to a DataNode, fed by ``send`` calls."""

    def __init__(self, location: str) -> None:
        parts = urlsplit(location)
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._conn = connection_class(parts.hostname or "", parts.port, timeout=HTTP_TIMEOUT[1])
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._conn.putrequest("PUT", target, skip_accept_encoding=True)
        self._conn.putheader("Content-Type", "application/octet-stream")
        self._conn.putheader("Transfer-Encoding", "chunked")
        self._conn.endheaders()

    def send(self, data: bytes | bytearray | memoryview) -> None:
        if len(data):
            self._conn.send(f"{len(data):x}\r\n".encode("ascii"))
            self._conn.send(data)
            self._conn.send(b"\r\n")

    def finish(self) -> tuple[int, str]:
        self._conn.send(b"0\r\n\r\n")
        response = self._conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        self._conn.close()
        return response.status, body

    def close(self) -> None:
        self._conn.close()


class _HDFSWriter(Writer):
    CHUNK = 1024 * 1024

    def __init__(self, store: HDFSStore, uri: str, path: str, *, replace: bool = True) -> None:
        super().__init__(uri)
        self._store, self._path, self._replace = store, path, replace
        self._tmp = _tmp_name(path)
        self._buffer = bytearray()
        self._put: _ChunkedPut | None = None
        self._created = False

    def _start(self) -> _ChunkedPut:
        if self._put is None:
            location = self._store._create_location(self.uri, self._tmp)
            self._created = True
            self._put = _ChunkedPut(location)
        return self._put

    def _write(self, data: memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= self.CHUNK:
            self._start().send(self._buffer)
            self._buffer = bytearray()

    def _commit(self) -> None:
        put = self._start()
        put.send(self._buffer)
        self._buffer = bytearray()
        status, body = put.finish()
        self._put = None
        if status != 201:
            raise _status_error("CREATE", self.uri, status, body)
        self._store._rename2(self.uri, self._tmp, self._path, overwrite=self._replace)
        self._created = False

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._put is not None:
            self._put.close()  # the DataNode sees the body end early and drops the block
            self._put = None
        if self._created:
            self._created = False
            self._store._delete_path(self.uri, self._tmp)


class HDFSStore(Store):
    """``hdfs://`` through WebHDFS (no JVM). Simple auth: ``user.name`` is
    ``$HADOOP_USER_NAME`` or the login name. Not for kerberized clusters."""

    kind = "hdfs"

    def __init__(self, base_url: str, user: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user or os.environ.get("HADOOP_USER_NAME") or getpass.getuser()

    def __reduce__(self) -> tuple[Any, ...]:
        return (HDFSStore, (self.base_url, self.user))

    @property
    def http(self) -> requests.Session:
        return _session(os.getpid(), self.base_url)

    @staticmethod
    def _split(uri: str) -> StoreURI:
        parsed = split_uri(uri, "hdfs")
        return parsed if parsed.path else dataclasses.replace(parsed, path="/")

    def _url(self, path: str, op: str, **params: str) -> str:
        query = {"op": op, "user.name": self.user, **params}
        encoded = "&".join(f"{_q(k)}={_q(v)}" for k, v in query.items())
        return f"{self.base_url}/webhdfs/v1{_q(path)}?{encoded}"

    def _call(
        self, method: str, uri: str, path: str, op: str, ok: tuple[int, ...] = (200,), **params: str
    ) -> requests.Response:
        response = self.http.request(method, self._url(path, op, **params), timeout=HTTP_TIMEOUT)
        if response.status_code not in ok:
            raise _hdfs_error(op, uri, response)
        return response

    @staticmethod
    def _entry(uri: str, status: dict[str, Any]) -> Entry:
        return Entry(uri, int(status["length"]), int(status["modificationTime"]) / 1000.0, None)

    def _statuses(self, uri: str, path: str) -> Iterator[dict[str, Any]]:
        """One directory's (or one file's) FileStatus objects, LISTSTATUS_BATCH page by page."""
        after: str | None = None
        while True:
            params = {"startAfter": after} if after is not None else {}
            response = self.http.get(
                self._url(path, "LISTSTATUS_BATCH", **params), timeout=HTTP_TIMEOUT
            )
            if response.status_code == 400 and after is None:  # no batch listing (Hadoop 2)
                response = self._call("GET", uri, path, "LISTSTATUS")
                yield from response.json()["FileStatuses"]["FileStatus"]
                return
            if response.status_code != 200:
                raise _hdfs_error("LISTSTATUS_BATCH", uri, response)
            listing = response.json()["DirectoryListing"]
            statuses = listing["partialListing"]["FileStatuses"]["FileStatus"]
            yield from statuses
            if not listing.get("remainingEntries") or not statuses:
                return
            after = statuses[-1]["pathSuffix"]

    def list_files(self, uri: str) -> Iterator[Entry]:
        parsed = self._split(uri)
        stack = [parsed.path]
        first = True
        while stack:
            directory = stack.pop()
            try:
                statuses = list(self._statuses(uri, directory))
            except FileNotFoundError:
                if first:
                    return
                continue  # removed while listing
            subdirs = []
            for status in sorted(statuses, key=lambda s: str(s["pathSuffix"])):
                suffix = str(status["pathSuffix"])
                if not suffix:  # the URI named a file: its own status
                    if status["type"] == "FILE":
                        yield self._entry(parsed.uri, status)
                    continue
                path = _dir_prefix(directory) + suffix
                if status["type"] == "DIRECTORY":
                    subdirs.append(path)
                elif status["type"] == "FILE":
                    yield self._entry(parsed.with_path(path), status)
            stack.extend(reversed(subdirs))
            first = False

    def stat(self, uri: str) -> Entry | None:
        parsed = self._split(uri)
        try:
            status = self._call("GET", uri, parsed.path, "GETFILESTATUS").json()["FileStatus"]
        except FileNotFoundError:
            return None
        if status["type"] == "DIRECTORY":
            raise IsADirectoryError(errno.EISDIR, "is a directory", uri)
        return self._entry(uri, status)

    def open_read(self, uri: str, start: int = 0) -> BinaryIO:
        parsed = self._split(uri)

        def open_at(offset: int) -> tuple[RawStream, int | None]:
            # the NameNode redirects (307) to a DataNode, which streams the bytes
            response = self.http.get(
                self._url(parsed.path, "OPEN", offset=str(offset)),
                stream=True,
                timeout=HTTP_TIMEOUT,
            )
            if response.status_code != 200:
                error = _hdfs_error("OPEN", uri, response)
                response.close()
                if "Offset=" in str(error) and "out of the range" in str(error):
                    return _Empty(), None
                raise error
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            raw: RawStream = response.raw
            return raw, total

        reader = RetryingReader(open_at, start, name=uri)
        reader.open()
        return buffered(reader)

    def create_new(self, uri: str, data: bytes) -> None:
        _HDFSWriter(self, uri, self._split(uri).path, replace=False).publish(data)

    def open_write(self, uri: str) -> Writer:
        return _HDFSWriter(self, uri, self._split(uri).path)

    def delete(self, uris: Iterable[str]) -> None:
        for uri in uris:
            self._delete_path(uri, self._split(uri).path)

    def replace(self, src: str, dst: str) -> None:
        path = self._split(dst).path
        self._call("PUT", dst, path.rsplit("/", 1)[0] or "/", "MKDIRS")  # rename2 needs it
        self._rename2(dst, self._split(src).path, path, overwrite=True)

    # -- the WebHDFS calls behind the writers
    def _create_location(self, uri: str, path: str) -> str:
        response = self.http.put(
            self._url(path, "CREATE", overwrite="false"),
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        location = response.headers.get("Location")
        if response.status_code != 307 or not location:
            raise _hdfs_error("CREATE", uri, response)
        return location

    def _rename2(self, uri: str, src: str, dst: str, *, overwrite: bool) -> None:
        # renameoptions makes the NameNode use rename2: OVERWRITE replaces atomically, NONE
        # refuses an existing destination; neither moves src *into* an existing directory
        self._call(
            "PUT",
            uri,
            src,
            "RENAME",
            destination=dst,
            renameoptions="OVERWRITE" if overwrite else "NONE",
        )

    def _delete_path(self, uri: str, path: str) -> None:
        response = self.http.delete(
            self._url(path, "DELETE", recursive="false"), timeout=HTTP_TIMEOUT
        )
        if response.status_code not in (200, 404):
            raise _hdfs_error("DELETE", uri, response)
