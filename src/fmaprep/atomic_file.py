"""One atomic local write: a file appears at its final name whole, or not at all.

Whatever writes the bytes (our own code, soundfile, ffmpeg, matplotlib) writes a hidden
temporary sibling; it is flushed to disk and renamed over the final name (``os.replace``, atomic
within a directory), and the directory is synced so the rename survives a crash. On any error the
temporary file goes and the final name is untouched. The stores' writers (``fmaprep.storage``)
name their temporary files the same way, so one rule recognizes leftovers everywhere.

This module sits at the bottom of the import layers (standard library only) so that every room,
``audio`` included, can use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator

TMP_SUFFIX = ".fmaprep-tmp"


def temp_name(path: str) -> str:
    """A hidden name in ``path``'s directory: ``/d/.name.<hex>.fmaprep-tmp`` (< 255 bytes)."""
    head, _, name = path.rpartition("/")
    return f"{head}/.{name[:40]}.{uuid.uuid4().hex}{TMP_SUFFIX}"


_TEMP_NAME = re.compile(r"\.[^/]+\.[0-9a-f]{32}" + re.escape(TMP_SUFFIX))


def is_temp_name(name: str) -> bool:
    """True for a name :func:`temp_name` makes (a file's name, without its directory)."""
    return _TEMP_NAME.fullmatch(name) is not None


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable; best effort (some filesystems refuse)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path to write; on a clean exit it becomes ``final`` atomically."""
    final = os.path.abspath(final)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(final))
