"""Where inputs and outputs live, as URIs: the one parser, resolution, local paths, hidden
siblings, and the one error family (:class:`StorageError`) the commands turn into one line.

Plain paths are always local files, resolved to absolute paths here and said so in the log: a
relative path is never left for Hadoop to resolve against a default filesystem (on EMR that is
HDFS's home directory, which is how the original system lost its outputs). Other filesystems are
named explicitly with ``hdfs://``, ``s3a://`` or ``s3://``.

**URIs are not percent-encoded.** Everything after the bucket or host is the real name, byte for
byte, as in Hadoop's ``Path(String)`` and the AWS CLI (``s3://b/a%20b#1?.mp3`` is the key
``a%20b#1?.mp3``), which is why :func:`split_uri` is hand-written: ``urllib.parse`` decodes
nothing either, but it cuts ``?query`` and ``#fragment`` off the path.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """An input or output location is unusable; the message says which and why. The base of the
    storage errors a command reports as one line (``fmaprep: ...``)."""


class BadURIError(StorageError, ValueError):
    """A location fmaprep cannot parse or has no client for (a ValueError too: a bad value)."""


class StoreError(StorageError, OSError):
    """A store refused or failed an operation; the message names the URI and the reason. An
    OSError too: like a full disk, a fault of the environment (``preprocess`` exits 1 for it, not
    2), and callers that catch OSError around a store's call catch it."""


@dataclass(frozen=True)
class StoreURI:
    """A parsed URI. ``root`` is the spelling before the path, kept so listings echo it:
    ``""`` (plain path), ``"file:"``, ``"file://"``, ``"s3a://bucket/"``, ``"hdfs://nn:8020"``,
    ``"hdfs://"``. ``path`` is absolute (``/a/b``) for file and HDFS, a key (``a/b``, no leading
    slash, possibly empty) for S3. ``authority`` is the bucket or ``host[:port]`` (or ``""``)."""

    kind: str  # "file" | "s3" | "hdfs"
    root: str
    authority: str
    path: str

    def with_path(self, path: str) -> str:
        """The URI of ``path`` (same kind, same authority, same spelling)."""
        return self.root + path

    @property
    def uri(self) -> str:
        return self.root + self.path


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
S3_SCHEMES = ("s3", "s3a", "s3n")


def scheme_of(uri: str) -> str:
    """The scheme, lower case; ``""`` for a plain path (a one-letter scheme is a drive)."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match and len(match.group(1)) > 1 else ""


_KIND_NAMES = {"file": "a local path", "s3": "an S3 URI", "hdfs": "an HDFS URI"}


def split_uri(uri: str, kind: str | None = None) -> StoreURI:
    """Parse ``uri`` without percent-decoding and without treating ``#``/``?`` specially; with
    ``kind``, refuse a URI of another kind (a store is handed only its own)."""
    parsed = _split(uri)
    if kind is not None and parsed.kind != kind:
        raise BadURIError(f"{uri}: not {_KIND_NAMES[kind]}")
    return parsed


def _split(uri: str) -> StoreURI:
    scheme = scheme_of(uri)
    if not scheme:
        if not uri:
            raise BadURIError("empty path")
        return StoreURI("file", "", "", uri)
    end = len(scheme) + 1
    rest = uri[end:]
    if scheme == "file":
        if rest.startswith("//"):
            authority, slash, path = rest[2:].partition("/")
            if authority not in ("", "localhost"):
                raise BadURIError(f"{uri}: file URIs name no host (got {authority!r})")
            return StoreURI("file", uri[: end + 2 + len(authority)], "", slash + path)
        if not rest.startswith("/"):
            raise BadURIError(f"{uri}: a file URI needs an absolute path")
        return StoreURI("file", uri[:end], "", rest)
    if scheme not in (*S3_SCHEMES, "hdfs"):
        raise BadURIError(
            f"{uri}: unsupported scheme {scheme!r}: no client for {scheme}:// (file, s3, hdfs)"
        )
    if not rest.startswith("//"):
        raise BadURIError(f"{uri}: expected {scheme}://")
    authority, slash, path = rest[2:].partition("/")
    if scheme in S3_SCHEMES:
        if not authority or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-_]*", authority):
            raise BadURIError(f"{uri}: not a bucket name: {authority!r}")
        return StoreURI("s3", uri[: end + 2 + len(authority)] + "/", authority, path)
    return StoreURI("hdfs", uri[: end + 2 + len(authority)], authority, slash + path)


def is_local(uri: str) -> bool:
    """A plain path or a ``file:`` URI: the one meaning of "local" (a path that exists is that
    path, whatever characters it holds, ``://`` included)."""
    return scheme_of(uri) in ("", "file")


def is_s3(uri: str) -> bool:
    """``s3://``, ``s3a://`` and ``s3n://`` alike (all served by boto3 here, by S3A in Spark)."""
    return scheme_of(uri) in S3_SCHEMES


def local_path(uri: str) -> str:
    """The local path of a plain path or a ``file:`` URI (``file:/x``, ``file:///x``,
    ``file://localhost/x``); BadURIError for a ``file:`` URI with a host."""
    return split_uri(uri).path if scheme_of(uri) == "file" else uri


def resolve_uri(arg: str) -> str:
    """``hdfs://…``, ``s3a://…`` stay as they are; ``file:`` and plain paths become ``file:///abs``."""
    if not is_local(arg):
        return arg
    path = arg
    if scheme_of(arg) == "file":  # (a relative ``file:x`` too, for what it has always meant)
        path = local_path(arg) if arg[5:].startswith("/") else arg[5:]
    absolute = os.path.abspath(os.path.expanduser(path))
    if not os.path.isabs(os.path.expanduser(path)):
        log.info("relative path %r resolved to local %s", arg, absolute)
    return "file://" + absolute


def is_hidden(name: str) -> bool:
    """Names Hadoop and fmaprep skip: ``_SUCCESS``, ``.crc`` files, staging directories."""
    return name.startswith((".", "_"))


def sibling(uri: str, tag: str) -> str:
    """A hidden sibling of ``uri``, a URI or a local path (same directory, so a rename is a
    metadata operation): ``<parent>/.<name>.fmaprep-<tag>-<random>``."""
    parent, _, name = uri.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.fmaprep-{tag}-{uuid.uuid4().hex[:8]}"


def glob_cut(path: str) -> str | None:
    """The directory a pattern starts from: ``path`` cut before the name holding its first
    glob character (``/in/a*/x.mp3`` -> ``/in``); None when ``path`` holds none."""
    first = min((path.index(c) for c in "*?[" if c in path), default=None)
    return None if first is None else path[:first].rsplit("/", 1)[0]


def _place(uri: str) -> tuple[str, str, str]:
    """(kind, authority, path without a trailing slash) of a location, for comparisons: local
    paths real (symlinks resolved), a glob cut to the directory it starts from, S3's ``s3a``
    and ``s3`` alike, a bucket's root the empty key."""
    parsed = split_uri(uri)
    path = parsed.path
    if parsed.kind == "file":
        path = local_path(uri)
        cut = None if os.path.exists(path) else glob_cut(path)
        return "file", "", os.path.realpath(path if cut is None else cut or "/")
    cut = glob_cut(path)
    path = (path if cut is None else cut).rstrip("/")
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
