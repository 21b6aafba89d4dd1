"""Faults of the environment (a full disk, a read-only or refused OUTPUT, a store that cannot be
reached or refuses the credentials, a bucket that is gone): what they are called in the one line
a user reads. The job stops at the first one (:class:`EnvironmentFaultError`); the CLI prints the
line, says that nothing was committed and which command continues, and keeps the traceback in a
log file.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fmaprep.progress import human_bytes
from fmaprep.storage.s3client import s3_error_code
from fmaprep.storage.uris import local_path, split_uri
from fmaprep.storage.webhdfs import webhdfs_base

if TYPE_CHECKING:
    from fmaprep.storage.clients import StoreSettings

# errnos that say the place is the problem, not the file being processed
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is a file, not a directory",
    errno.EIO: "input/output error",
}
# S3 error codes that say the bucket or the credentials are the problem
S3_CODES = {
    "NoSuchBucket": "the bucket does not exist (deleted?)",
    "AccessDenied": "access denied (credentials or policy)",
    "InvalidAccessKeyId": "the access key is not valid (revoked?)",
    "SignatureDoesNotMatch": "the secret key does not match (changed?)",
    "ExpiredToken": "the session token expired",
    "InvalidToken": "the session token is not valid",
    "AllAccessDisabled": "all access to this object has been disabled",
}


class EnvironmentFaultError(RuntimeError):
    """The environment failed the job; the message says what and where, in one line."""


def _free(path: str) -> str:
    """`` (N MiB free)`` for the file system holding local ``path``, or ``""``."""
    probe = local_path(path)
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe or "/")
    except OSError:
        return ""
    return f" ({human_bytes(st.f_bavail * st.f_frsize)} free)"


def describe(exc: BaseException, where: str = "") -> str | None:
    """The fault ``exc`` is, in a few words with the place, or None when it is not one of the
    environment's (a bug, a bad input: the caller reports it otherwise)."""
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.errno in ENVIRONMENT_ERRNOS:
            place = cause.filename or where
            text = ENVIRONMENT_ERRNOS[cause.errno]
            if cause.errno in (errno.ENOSPC, errno.EDQUOT) and place:
                text += _free(str(place))
            return f"{text}: {place}" if place else text
        code = s3_error_code(cause)
        if code in S3_CODES:
            return f"S3 refused: {S3_CODES[code]} ({code}){': ' + where if where else ''}"
        name = type(cause).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return "no S3 credentials found (environment, profile or instance role)" + (
                f": {where}" if where else "")  # fmt: skip
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionError",
                    "NewConnectionError", "ConnectionRefusedError"):  # fmt: skip
            return f"cannot reach the store ({cause}){': ' + where if where else ''}"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def check_reachable(uri: str, settings: StoreSettings, timeout: float = 5.0) -> None:
    """EnvironmentFaultError when the server behind ``uri`` (an S3 endpoint that is not AWS's, a
    NameNode's HTTP address) refuses or does not answer a TCP connection: one line in seconds,
    instead of every client's bounded retries with backoff (a minute on S3)."""
    kind = split_uri(uri).kind
    if kind == "s3":
        address = settings.s3.endpoint if settings.s3 else None
        name = "the S3 endpoint"
    elif kind == "hdfs":
        address = settings.webhdfs or webhdfs_base(uri)
        name = "the NameNode (WebHDFS)"
    else:
        return
    if not address:
        return  # AWS's own endpoint: botocore's resolver and retries know it best
    parts = urlsplit(address)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EnvironmentFaultError(
            f"cannot reach {name} at {address} for {uri}: {reason}"
        ) from exc


def store_answers(uri: str, settings: StoreSettings, timeout: float = 3.0) -> str | None:
    """None when the server behind ``uri`` answers an HTTP request within ``timeout`` (any
    answer, a refusal included); otherwise what is not answering, for the progress line and the
    log (``S3 at http://...``). Local disk is not probed."""
    import urllib.error
    import urllib.request

    kind = split_uri(uri).kind
    if kind == "s3":
        address = (settings.s3.endpoint if settings.s3 else None) or "https://s3.amazonaws.com"
        url, name = address, f"S3 at {address}"
    elif kind == "hdfs":
        address = settings.webhdfs or webhdfs_base(uri)
        url, name = f"{address}/webhdfs/v1/?op=GETFILESTATUS", f"HDFS (NameNode {address})"
    else:
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (OSError, ValueError):
        return name
