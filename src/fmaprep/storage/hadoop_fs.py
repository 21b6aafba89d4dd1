"""The few Hadoop FileSystem calls the driver makes, through the Spark driver's JVM (py4j)."""

from __future__ import annotations

import os
from typing import Any

from fmaprep.storage.uris import StorageError, is_local, local_path


class HadoopFS:
    """The few Hadoop FileSystem calls the driver needs, through the Spark driver's JVM."""

    def __init__(self, spark_context: Any, uri: str) -> None:
        jvm = spark_context._jvm
        self._jvm = jvm
        self._conf = spark_context._jsc.hadoopConfiguration()
        self._path_cls = jvm.org.apache.hadoop.fs.Path
        self._fs = self._path_cls(uri).getFileSystem(self._conf)
        # No .crc side files in local outputs (readers without Hadoop should see only real
        # files). The FileSystem instance is cached per JVM, so in local mode this also covers
        # the tasks' writes; drop_checksum_files() sweeps up anything written before.
        self._fs.setWriteChecksum(False)

    def _p(self, uri: str) -> Any:
        return self._path_cls(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._p(uri)))

    def mkdirs(self, uri: str) -> None:
        self._fs.mkdirs(self._p(uri))

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._p(src), self._p(dst)):
            raise StorageError(f"rename {src} -> {dst} failed")

    def delete(self, uri: str) -> None:
        self._fs.delete(self._p(uri), True)

    def write_bytes(self, uri: str, data: bytes) -> None:
        stream = self._fs.create(self._p(uri), True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def read_bytes(self, uri: str) -> bytes:
        stream = self._fs.open(self._p(uri))
        try:
            # commons-io ships with Spark; py4j turns the returned byte[] into bytes
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def list_names(self, uri: str) -> list[str]:
        return [str(s.getPath().getName()) for s in self._fs.listStatus(self._p(uri))]

    def list_files(self, uri: str, is_glob: bool) -> list[tuple[str, int, float]]:
        """(URI, bytes, mtime) of every file under ``uri`` (recursively), or matching a glob."""
        if is_glob:
            return [_status_tuple(s) for s in self._fs.globStatus(self._p(uri)) or [] if s.isFile()]
        found = []
        it = self._fs.listFiles(self._p(uri), True)
        while it.hasNext():
            found.append(_status_tuple(it.next()))
        return found


def _status_tuple(status: Any) -> tuple[str, int, float]:
    """(URI, bytes, modification time in seconds) of a Hadoop FileStatus."""
    return (
        str(status.getPath().toString()),
        int(status.getLen()),
        int(status.getModificationTime()) / 1000.0,
    )


def drop_checksum_files(uri: str) -> None:
    """Remove Hadoop's ``.name.crc`` files from a local directory (no-op elsewhere)."""
    if not is_local(uri):
        return
    directory = local_path(uri)
    for name in os.listdir(directory):
        if name.startswith(".") and name.endswith(".crc"):
            os.remove(os.path.join(directory, name))
