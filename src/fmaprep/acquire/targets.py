"""Choosing a destination by its URI: local path, ``s3://``/``s3a://`` (boto3) or ``hdfs://``
(WebHDFS). The implementations import :mod:`fmaprep.acquire.destination`, never this module."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from fmaprep.acquire.destination import Destination, DestinationError, LocalDestination


def open_destination(uri: str) -> Destination:
    """A destination for an absolute local path, ``file://``, ``s3://``, ``s3a://`` or ``hdfs://``."""
    if not uri:
        raise DestinationError("empty destination")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "s3a"):
        if not parts.netloc:
            raise DestinationError(f"{uri}: no bucket")
        from fmaprep.acquire.s3 import S3Destination

        return S3Destination(parts.netloc, parts.path.strip("/"), uri)
    if scheme == "hdfs":
        from fmaprep.acquire.webhdfs import WebHDFSDestination

        return WebHDFSDestination(uri)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DestinationError(f"{uri}: file:// URIs must name a local path")
        return LocalDestination(Path(unquote(parts.path)))
    if scheme and len(scheme) > 1:  # (a one-letter scheme is a Windows drive)
        raise DestinationError(f"{uri}: unknown destination scheme {scheme!r}")
    path = Path(uri)
    if not path.is_absolute():
        raise DestinationError(
            f"{uri}: relative destination; give an absolute path (e.g. {Path.cwd() / uri}) "
            "or a file:// / s3:// URI"
        )
    return LocalDestination(path)
