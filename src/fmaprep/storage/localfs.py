"""Local disk behind :class:`fmaprep.storage.stores.Store`: hidden temporary files, fsync and
``os.replace`` for atomic publishes."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from fmaprep.atomic_file import fsync_dir
from fmaprep.storage.stores import Entry, Store, Writer, _dir_prefix, _tmp_name
from fmaprep.storage.uris import split_uri

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- local disk
class _LocalWriter(Writer):
    def __init__(self, uri: str, path: str, *, replace: bool = True) -> None:
        super().__init__(uri)
        self._path = path
        self._replace = replace
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._tmp = _tmp_name(path) if "/" in path else _tmp_name("./" + path)
        self._file: BinaryIO | None = open(self._tmp, "xb")  # noqa: SIM115

    def _write(self, data: memoryview) -> None:
        assert self._file is not None
        self._file.write(data)

    def _commit(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        if self._replace:
            os.replace(self._tmp, self._path)
        else:
            os.link(self._tmp, self._path)  # FileExistsError when taken: never replaces
            os.unlink(self._tmp)
        fsync_dir(os.path.dirname(self._path))

    def _abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush: the file goes anyway
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


class LocalStore(Store):
    """``file://`` URIs and plain paths."""

    kind = "file"

    @staticmethod
    def _path(uri: str) -> str:
        return split_uri(uri, "file").path

    @staticmethod
    def _entry(uri: str, st: os.stat_result) -> Entry:
        return Entry(uri, st.st_size, st.st_mtime, None)

    def list_files(self, uri: str) -> Iterator[Entry]:
        parsed = split_uri(uri)
        top = parsed.path
        try:
            st = os.stat(top)
        except FileNotFoundError:
            return
        if not os.path.isdir(top):
            yield self._entry(parsed.uri, st)
            return
        seen = {(st.st_dev, st.st_ino)}
        stack = [_dir_prefix(top)]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as it:
                    children = sorted(it, key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while listing
            subdirs = []
            for child in children:
                path = directory + child.name
                try:
                    if child.is_dir():
                        cst = child.stat()
                        if (cst.st_dev, cst.st_ino) not in seen:  # symlink loops
                            seen.add((cst.st_dev, cst.st_ino))
                            subdirs.append(path + "/")
                    elif child.is_file():
                        yield self._entry(parsed.with_path(path), child.stat())
                except FileNotFoundError:
                    continue
            stack.extend(reversed(subdirs))

    def stat(self, uri: str) -> Entry | None:
        path = self._path(uri)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "is a directory", uri)
        return self._entry(uri, st)

    def open_read(self, uri: str, start: int = 0) -> BinaryIO:
        stream = open(self._path(uri), "rb")  # noqa: SIM115
        if start:
            stream.seek(start)
        return stream

    def create_new(self, uri: str, data: bytes) -> None:
        _LocalWriter(uri, self._path(uri), replace=False).publish(data)

    def open_write(self, uri: str) -> Writer:
        return _LocalWriter(uri, self._path(uri))

    def delete(self, uris: Iterable[str]) -> None:
        for uri in uris:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(uri))

    def replace(self, src: str, dst: str) -> None:
        path = self._path(dst)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.replace(self._path(src), path)
        fsync_dir(os.path.dirname(path))
