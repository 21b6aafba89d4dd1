"""``hdfs://`` destinations through WebHDFS (the NameNode's REST API), so the scraper needs
neither a JVM nor Hadoop's jars.

The NameNode's HTTP address is ``$FMAPREP_WEBHDFS_URL`` when set, else ``http://HOST:9870``
(Hadoop 3's default, also EMR's). A writer spools to a local temporary file, creates the file
under a hidden ``.fmaprep-tmp/`` name and renames it into place on commit, so a file is visible
only once complete. The user is ``$HADOOP_USER_NAME`` or the login name (simple auth).
"""

from __future__ import annotations

import getpass
import io
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests

from fmaprep.acquire.destination import (
    Destination,
    DestinationError,
    SpooledWriter,
    Writer,
    check_key,
)

WEBHDFS_ENV = "FMAPREP_WEBHDFS_URL"
TIMEOUT = 60


class WebHDFS:
    """The few WebHDFS calls a destination needs."""

    def __init__(self, base_url: str, user: str) -> None:
        self.base = base_url.rstrip("/")
        self.user = user
        self.http = requests.Session()

    def _url(self, path: str) -> str:
        return f"{self.base}/webhdfs/v1{path}"

    def _call(self, method: str, path: str, op: str, **params: Any) -> requests.Response:
        query = {"op": op, "user.name": self.user, **params}
        response = self.http.request(method, self._url(path), params=query, timeout=TIMEOUT)
        if response.status_code >= 400 and response.status_code != 404:
            raise OSError(f"WebHDFS {op} {path}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def length(self, path: str) -> int | None:
        response = self._call("GET", path, "GETFILESTATUS")
        if response.status_code == 404:
            return None
        return int(response.json()["FileStatus"]["length"])

    def list_names(self, path: str) -> list[str]:
        """Names of the files in the directory ``path`` (none when it does not exist)."""
        response = self._call("GET", path, "LISTSTATUS")
        if response.status_code == 404:
            return []
        statuses = response.json()["FileStatuses"]["FileStatus"]
        return [s["pathSuffix"] for s in statuses if s.get("type") == "FILE"]

    def mkdirs(self, path: str) -> None:
        self._call("PUT", path, "MKDIRS")

    def delete(self, path: str) -> None:
        self._call("DELETE", path, "DELETE", recursive="false")

    def rename(self, src: str, dst: str) -> None:
        response = self._call("PUT", src, "RENAME", destination=dst)
        if not response.json().get("boolean"):
            raise OSError(f"WebHDFS RENAME {src} -> {dst} refused")

    def create(self, path: str, data: BinaryIO) -> None:
        # two steps, as the protocol says: the NameNode answers with the DataNode to send to
        query = {"op": "CREATE", "overwrite": "true", "user.name": self.user}
        first = self.http.put(self._url(path), params=query, allow_redirects=False, timeout=TIMEOUT)
        location = first.headers.get("Location")
        if first.status_code != 307 or not location:
            raise OSError(f"WebHDFS CREATE {path}: HTTP {first.status_code} {first.text[:200]}")
        second = self.http.put(location, data=data, timeout=TIMEOUT)
        if second.status_code != 201:
            raise OSError(f"WebHDFS CREATE {path}: HTTP {second.status_code} {second.text[:200]}")

    def read(self, path: str) -> bytes | None:
        response = self._call("GET", path, "OPEN")
        return None if response.status_code == 404 else response.content


class _WebHDFSWriter(SpooledWriter):
    def __init__(self, fs: WebHDFS, final: str, tmp_dir: str) -> None:
        super().__init__()
        self._fs, self._final, self._tmp_dir = fs, final, tmp_dir

    def _upload(self, data: BinaryIO) -> None:
        tmp = f"{self._tmp_dir}/{uuid.uuid4().hex}.part"
        self._fs.mkdirs(self._tmp_dir)
        self._fs.create(tmp, data)
        self._fs.mkdirs(self._final.rsplit("/", 1)[0] or "/")
        if self._fs.length(self._final) is not None:
            self._fs.delete(self._final)  # RENAME does not replace
        self._fs.rename(tmp, self._final)


class WebHDFSDestination(Destination):
    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        host = parts.hostname
        if not host:  # hdfs:///path: the NameNode of $FMAPREP_HDFS_URI (as Hadoop's defaultFS)
            host = urlsplit(os.environ.get("FMAPREP_HDFS_URI", "")).hostname
        base = os.environ.get(WEBHDFS_ENV) or (f"http://{host}:9870" if host else "")
        if not base:
            raise DestinationError(f"{uri}: no NameNode (name it, or set {WEBHDFS_ENV})")
        self.uri = uri
        self.root = "/" + parts.path.strip("/")
        user = os.environ.get("HADOOP_USER_NAME") or getpass.getuser()
        self._fs = WebHDFS(base, user)

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.root.rstrip('/')}/{key}"

    def writer(self, key: str) -> Writer:
        return _WebHDFSWriter(self._fs, self._path(key), f"{self.root.rstrip('/')}/.fmaprep-tmp")

    def size(self, key: str) -> int | None:
        return self._fs.length(self._path(key))

    def open_read(self, key: str) -> BinaryIO:
        data = self._fs.read(self._path(key))
        if data is None:
            raise FileNotFoundError(f"{self.uri}/{key}")
        return io.BytesIO(data)

    def list_keys(self, prefix: str) -> list[str]:
        folder = prefix.rstrip("/")
        return sorted(f"{folder}/{name}" for name in self._fs.list_names(self._path(folder)))

    def delete(self, key: str) -> None:
        self._fs.delete(self._path(key))

    def publish(self, staged: str, key: str) -> None:
        final = self._path(key)
        self._fs.mkdirs(final.rsplit("/", 1)[0] or "/")
        if self._fs.length(final) is not None:
            self._fs.delete(final)  # RENAME does not replace
        self._fs.rename(self._path(staged), final)

    def append_text(self, key: str, text: str) -> None:
        # WebHDFS APPEND needs append support on the cluster; a small file is simply rewritten
        old = self.read_text(key) or ""
        with self.writer(key) as writer:
            writer.write((old + text).encode("utf-8"))

    def local_tmp_dir(self) -> Path | None:
        return None
