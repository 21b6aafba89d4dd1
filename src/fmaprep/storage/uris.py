"""Where inputs and outputs live, as URIs: resolution, local paths and hidden siblings.

Plain paths are always local files, resolved to absolute paths here and said so in the log: a
relative path is never left for Hadoop to resolve against a default filesystem (on EMR that is
HDFS's home directory, which is how the original system lost its outputs). Other filesystems are
named explicitly with ``hdfs://``, ``s3a://`` or ``s3://``.
"""

from __future__ import annotations

import logging
import os
import uuid

log = logging.getLogger(__name__)


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


def is_local_source(source: str) -> bool:
    """An input's source is local when it is a plain path or a ``file:`` URI."""
    return "://" not in source or source.startswith("file:")


def local_path(uri: str) -> str:
    """The local path of a ``file://`` URI, a ``file:`` URI or a plain path."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri[len("file:") :] if uri.startswith("file:") else uri


def is_hidden(name: str) -> bool:
    """Names Hadoop and fmaprep skip: ``_SUCCESS``, ``.crc`` files, staging directories."""
    return name.startswith((".", "_"))


def sibling(uri: str, tag: str) -> str:
    """A hidden sibling of ``uri``, a URI or a local path (same directory, so a rename is a
    metadata operation): ``<parent>/.<name>.fmaprep-<tag>-<random>``."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.fmaprep-{tag}-{uuid.uuid4().hex[:8]}"
