"""Where inputs and outputs live: URI resolution, input listing and atomic output commits.

Plain paths are always local files, resolved to absolute paths here and said so in the log: a
relative path is never left for Hadoop to resolve against a default filesystem (on EMR that is
HDFS's home directory, which is how the original system lost its outputs). Other filesystems are
named explicitly with ``hdfs://``, ``s3a://`` or ``s3://`` and handled by Hadoop's FileSystem API
through the Spark driver's JVM.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import uuid
from collections.abc import Iterable
from typing import Any

from fmaprep.pipeline import METADATA_KEYS, InputFile, track_id_for

log = logging.getLogger(__name__)

TRACKS_FILE = "_tracks.jsonl"
_GLOB_CHARS = set("*?[")


class StorageError(RuntimeError):
    """An input or output location is unusable; the message says which and why."""


def resolve_uri(arg: str) -> str:
    """``hdfs://…``, ``s3a://…`` stay as they are; ``file:`` and plain paths become ``file:///abs``."""
    if "://" in arg and not arg.startswith("file://"):
        return arg
    path = arg[len("file://") :] if arg.startswith("file://") else arg
    if path.startswith("file:"):
        path = path[len("file:") :]
    absolute = os.path.abspath(os.path.expanduser(path))
    if not os.path.isabs(os.path.expanduser(path)):
        log.info("relative path %r resolved to local %s", arg, absolute)
    return "file://" + absolute


def is_local(uri: str) -> bool:
    return uri.startswith("file://")


def local_path(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _has_audio_extension(name: str, extensions: Iterable[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in extensions)


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def list_local_inputs(uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    """Audio files under a local directory (recursively), matching a glob, or one file."""
    path = local_path(uri)
    if _GLOB_CHARS & set(path):
        candidates = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        root = _glob_root(path)
    elif os.path.isdir(path):
        candidates = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            candidates.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not _hidden(f))
        root = path
    elif os.path.isfile(path):
        candidates, root = [path], os.path.dirname(path)
    else:
        raise StorageError(f"input {path} does not exist")
    metadata = load_track_metadata(os.path.join(root, TRACKS_FILE))
    files = []
    for p in candidates:
        if not _has_audio_extension(p, extensions):
            continue
        st = os.stat(p)
        files.append(InputFile(p, st.st_size, metadata.get(track_id_for(p), {}), st.st_mtime))
    return files


def _glob_root(pattern: str) -> str:
    parts = pattern.split(os.sep)
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS & set(p))]]
    return os.sep.join(fixed) or os.sep


def load_track_metadata(path: str) -> dict[str, dict[str, str]]:
    """Acquisition's ``_tracks.jsonl`` (if present), keyed by zero-padded 6-digit track id."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return parse_track_metadata(f)


def parse_track_metadata(lines: Iterable[str]) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            track_id = f"{int(row['id']):06d}"
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("%s line %d: not a track line, skipped", TRACKS_FILE, number)
            continue
        table[track_id] = {k: str(row[k]) for k in METADATA_KEYS if row.get(k) not in (None, "")}
    return table


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

    def list_files(self, uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
        """Audio files under ``uri`` (recursively) or matching a glob, skipping hidden names."""
        path = self._p(uri)
        found: list[tuple[str, int, float]] = []
        if _GLOB_CHARS & set(uri.split("://", 1)[-1]):
            for status in self._fs.globStatus(path) or []:
                if status.isFile():
                    found.append(_status_tuple(status))
        else:
            it = self._fs.listFiles(path, True)
            while it.hasNext():
                found.append(_status_tuple(it.next()))
        files = []
        for source, size, mtime in sorted(found):
            rel = source[len(uri) :] if source.startswith(uri) else source
            if any(_hidden(part) for part in rel.split("/") if part):
                continue
            if _has_audio_extension(source, extensions):
                files.append(InputFile(source, size, mtime=mtime))
        return files


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


def sibling(uri: str, tag: str) -> str:
    """A hidden sibling of ``uri`` (same directory, so a rename is a metadata operation)."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.fmaprep-{tag}-{uuid.uuid4().hex[:8]}"
