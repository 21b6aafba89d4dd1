"""A download that continues where it stopped: HTTP Range requests, validated with If-Range.

The partial file (``<target>.part``) and a small record of what it is a prefix of
(``<target>.part.json``: URL, validator, length) survive interruptions and reruns. Each request
after the first asks for ``Range: bytes=<have>-`` with ``If-Range: <ETag or Last-Modified>``:

- ``206`` from the byte we have: append;
- ``200``: the server ignored the Range, or the file changed since the part was started (If-Range
  did not match): start again from byte 0, and say which;
- no strong ETag and no Last-Modified to validate a resume with: no Range is sent (a prefix of
  another file must never be completed into a wrong archive);
- ``416`` with the whole length already here: complete.

Attempts that bring new bytes do not count against the client's retries (five drops of an
880 GB transfer are not five failures); attempts that bring nothing do. The sha1 is computed as
the bytes arrive; a rerun hashes the prefix it finds once. :func:`read_span` reads one span of
a file pinned by its validator (the zip read in place, :mod:`fmaprep.acquire.rangezip`), resumed
by the same loop (:func:`fmaprep.acquire.http.resumed`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from fmaprep.acquire.http import (
    CHUNK,
    FetchError,
    HttpClient,
    RetryableError,
    declared_length,
    resumed,
)
from fmaprep.atomic_file import atomic_path
from fmaprep.progress import human_bytes

log = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def content_range(response: requests.Response) -> tuple[int, int | None] | None:
    """(first byte, total length or None) of a 206's Content-Range, None when there is none."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None:
        return None
    return int(match.group(1)), None if match.group(3) == "*" else int(match.group(3))


def validator(response: requests.Response) -> str | None:
    """What If-Range can name: a strong ETag, else Last-Modified."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


@dataclass
class _Part:
    """The partial file, what it is a prefix of (``meta``), and the sha1 of its bytes so far."""

    path: Path
    meta_path: Path
    meta: dict[str, Any] | None
    digest: Any

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0

    def start_over(self, meta: dict[str, Any] | None) -> None:
        self.path.unlink(missing_ok=True)
        self.digest = hashlib.sha1()
        self.meta = meta
        if meta is None:
            self.meta_path.unlink(missing_ok=True)
        else:
            # atomically: a torn progress file would stop every rerun (read below as "none")
            with atomic_path(self.meta_path) as tmp:
                Path(tmp).write_text(json.dumps(meta))


def download_resumable(
    client: HttpClient,
    url: str,
    target: Path,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_length: Callable[[int], None] = lambda n: None,
) -> tuple[str, int]:
    """Fetch ``url`` to ``target`` (renamed from its ``.part`` when complete); returns the sha1
    of the whole file and the bytes received over the network."""
    path = target.with_name(target.name + ".part")
    meta_path = target.with_name(target.name + ".part.json")
    meta: dict[str, Any] | None = None
    if path.is_file() and meta_path.is_file():
        try:  # one written by an older version may be torn: then it says nothing
            meta = json.loads(meta_path.read_text())
        except ValueError:
            meta = None
        if not isinstance(meta, dict) or meta.get("url") != url or not meta.get("validator"):
            meta = None
    part = _Part(path, meta_path, meta, None)
    if meta is not None:
        with open(path, "rb") as prefix:  # once per run: then the sha1 grows with the bytes
            part.digest = hashlib.file_digest(prefix, "sha1")
        log.info("resuming %s at %s", url, human_bytes(part.size))
    received = 0
    attempt = functools.partial(_receive, client, url, part, on_length)
    for chunk in resumed(client, url, attempt, lambda: f" at byte {part.size}"):
        received += len(chunk)
        on_bytes(len(chunk))
    path.replace(target)
    meta_path.unlink(missing_ok=True)
    return part.digest.hexdigest(), received


def _receive(
    client: HttpClient, url: str, part: _Part, on_length: Callable[[int], None]
) -> Iterator[bytes]:
    """One attempt: append a response's body to the part, yielding each chunk written; raises
    RetryableError when the body stopped short (the next attempt resumes)."""
    if part.meta is None:  # nothing to validate a resume with: start over
        part.start_over(None)
    have = part.size
    headers = {}
    if have and part.meta is not None:
        headers = {"Range": f"bytes={have}-", "If-Range": str(part.meta["validator"])}
    with client.open_download(url, headers) as response:
        status = response.status_code
        if status == 416:
            if part.meta is not None and have == part.meta.get("length"):
                return
            raise FetchError("http_416", f"{url}: the server refused the range from byte {have}")
        if status == 206:
            got = content_range(response)
            if got is None or got[0] != have:
                raise FetchError("bad_range", f"{url}: a 206 that does not start at byte {have}")
        else:  # 200: the whole file, from byte 0
            new_validator = validator(response)
            if have:
                changed = part.meta is not None and new_validator != part.meta.get("validator")
                why = ("the file changed on the server since the partial download" if changed
                       else "the server ignored the Range request")  # fmt: skip
                log.warning("%s: %s; starting again from byte 0 (%s had been fetched)", url, why,
                            human_bytes(have))  # fmt: skip
            meta = {"url": url, "validator": new_validator, "length": declared_length(response)}
            if new_validator is None:
                log.warning("%s: no ETag or Last-Modified: an interrupted download restarts", url)
            part.start_over(meta if new_validator is not None else None)
        if part.meta is not None and part.meta.get("length"):
            on_length(int(part.meta["length"]))
        with open(part.path, "ab") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                part.digest.update(chunk)
                yield chunk
    length = part.meta.get("length") if part.meta is not None else None
    if length is not None and part.size < length:
        raise RetryableError(f"body cut short at byte {part.size} of {length}", None)


class Counter(Protocol):
    received: int  # body bytes received over the network


def read_span(
    client: HttpClient, url: str, tag: str, first: int, last: int, *, counter: Counter
) -> Iterator[bytes]:
    """Bytes ``first..last`` (inclusive) of ``url``, in order, each attempt with ``If-Range:
    <tag>`` (a file that changed is an error, never a mix of two), resumed from the byte it got
    to; the body bytes received are added to ``counter.received``."""
    at = first

    def attempt() -> Iterator[bytes]:
        nonlocal at
        with client.open_download(url, {"Range": f"bytes={at}-{last}", "If-Range": tag}) as got:
            span = content_range(got)
            if got.status_code != 206 or span is None or span[0] != at:
                raise FetchError("archive_changed", f"{url} changed on the server while it was "
                                 "being read (If-Range refused)")  # fmt: skip
            for chunk in got.iter_content(CHUNK):
                counter.received += len(chunk)
                piece = chunk[: last - at + 1]  # (a server may send more)
                at += len(piece)
                yield piece
                if at > last:
                    return
        raise RetryableError(f"span cut short at byte {at}", None)

    return resumed(client, url, attempt, lambda: f" at byte {at}")
