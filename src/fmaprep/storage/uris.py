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

from fmaprep.storage.stores import split_uri

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


_GLOB_CHARS = set("*?[")


def _place(uri: str) -> tuple[str, str, str]:
    """(kind, authority, path without a trailing slash) of a location, for comparisons: local
    paths real (symlinks resolved), a glob cut to the directory it starts from, S3's ``s3a``
    and ``s3`` alike, a bucket's root the empty key."""
    parsed = split_uri(uri)
    path = parsed.path
    if parsed.kind == "file":
        path = local_path(uri)
        if not os.path.exists(path) and _GLOB_CHARS & set(path):
            path = path[: min(path.index(c) for c in _GLOB_CHARS if c in path)]
            path = path.rsplit("/", 1)[0] or "/"
        return "file", "", os.path.realpath(path)
    if _GLOB_CHARS & set(path):
        path = path[: min(path.index(c) for c in _GLOB_CHARS if c in path)].rsplit("/", 1)[0]
    path = path.rstrip("/")
    if parsed.kind == "hdfs":
        path = os.path.normpath(path or "/")
    return parsed.kind, parsed.authority, path


def _inside(inner: str, outer: str) -> bool:
    if outer in ("", "/"):
        return True
    return inner == outer or inner.startswith(outer + "/")


def check_apart(
    input_uri: str, output_uri: str, what: str = "OUTPUT", source: str = "INPUT"
) -> None:
    """Refuse a place written to (``what``) that is the place read from (``source``), lies
    inside it or contains it, in every spelling: plain paths, ``file:``, symlinks,
    ``s3://``/``s3a://``, a glob's directory, a bucket's root."""
    (ikind, iauth, ipath), (okind, oauth, opath) = _place(input_uri), _place(output_uri)
    if ikind != okind:
        return
    if iauth and oauth and iauth.lower() != oauth.lower():  # hdfs:///x may be any NameNode's
        return
    if _inside(opath, ipath) or _inside(ipath, opath):
        relation = (
            "is" if opath == ipath else "lies inside" if _inside(opath, ipath) else "contains"
        )
        raise StorageError(
            f"{what} {output_uri} {relation} {source} {input_uri}: fmaprep writes and deletes "
            f"under {what}, so it must be apart from {source}; nothing was done"
        )
