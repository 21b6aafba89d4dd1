"""The archive side of ``fetch-dataset``: where the zip comes from and where it stays.

Into a local destination, or when the server does not answer Range requests, the archive is
downloaded (resumably: :mod:`fmaprep.acquire.resume`) next to the destination's staging files
or into ``$TMPDIR``, verified once (a ``.verified`` note of its sha1, size and mtime spares a
rerun the hashing) and removed only once every member is unpacked. Into S3 or HDFS, when the
server answers Range, it is read in place (:mod:`fmaprep.acquire.rangezip`): members are
staged, and published only once the archive's sha1 matches.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fmaprep.acquire.http import FetchError, HttpClient
from fmaprep.acquire.rangezip import RangeFile, Remote
from fmaprep.acquire.resume import download_resumable
from fmaprep.progress import Progress, human_bytes
from fmaprep.redaction import redact_text
from fmaprep.storage.checksum import file_sha1

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatasetError(RuntimeError):
    """The archive could not be fetched or verified (nothing was extracted)."""


@dataclass
class DatasetSummary:
    name: str
    sha1: str = ""
    archive_bytes: int = 0
    downloaded_bytes: int = 0  # received over the network this run (0: the archive was here)
    extracted: int = 0
    skipped: int = 0
    unverified: int = 0
    metadata_files: int = 0
    with_metadata: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            f"fetch-dataset {self.name}: archive {human_bytes(self.archive_bytes)} sha1 "
            f"{self.sha1}{'' if ' ' in self.sha1 else ' ok'} "
            f"({human_bytes(self.downloaded_bytes)} downloaded this run); "
            f"{self.extracted} tracks extracted, {self.skipped} already "
            f"complete, {len(self.failures)} failed, {self.unverified} not in checksums, "
            f"{self.with_metadata} with tracks.csv metadata, {self.metadata_files} metadata files"
        ]
        lines += [f"  failed {member}: {redact_text(why)}" for member, why in self.failures]
        return "\n".join(lines)


def verified_sha1(zip_path: Path) -> str | None:
    """The sha1 recorded when this very file (same size and mtime) was verified, else None:
    a rerun does not hash a verified 880 GB archive again."""
    mark = zip_path.with_name(zip_path.name + ".verified")
    try:
        digest, size, mtime = mark.read_text().split()
        stat = zip_path.stat()
    except (OSError, ValueError):
        return None
    return digest if (int(size), int(mtime)) == (stat.st_size, stat.st_mtime_ns) else None


def mark_verified(zip_path: Path, digest: str) -> None:
    stat = zip_path.stat()
    mark = zip_path.with_name(zip_path.name + ".verified")
    mark.write_text(f"{digest} {stat.st_size} {stat.st_mtime_ns}\n")


def remove_archive(zip_path: Path) -> None:
    for path in (zip_path, zip_path.with_name(zip_path.name + ".verified")):
        path.unlink(missing_ok=True)


def check_room(staging: Path, size: int | None, url: str) -> None:
    """Before a byte is fetched: the local disk must hold the whole archive (the server does
    not answer Range requests, so it cannot be read in place)."""
    staging.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(staging).free
    have = sum(p.stat().st_size for p in staging.iterdir() if p.is_file())
    need = f"{human_bytes(size)}" if size is not None else "the whole archive"
    log.warning("%s does not answer Range requests: it is downloaded to %s first (needs %s of "
                "local disk; %s free)", url, staging, need, human_bytes(free))  # fmt: skip
    if size is not None and free + have < size:
        raise DatasetError(f"{url} needs {human_bytes(size)} of local disk in {staging} (its "
                           f"server does not answer Range requests); {human_bytes(free)} free "
                           "there: set TMPDIR to a bigger disk")  # fmt: skip


def unpack_in_place(
    client: HttpClient,
    remote: Remote,
    expected_sha1: str,
    summary: DatasetSummary,
    unpack: Callable[[Any, int], T],
) -> T:
    """``unpack(stream, size)`` over the archive read in place, then the archive's sha1 (the
    bytes the pass skipped are read too): what ``unpack`` staged is trusted only if it matches."""
    reader = RangeFile(client, remote)
    summary.archive_bytes = remote.size
    log.info("unpacking %s in place (%s, Range requests)", remote.url, human_bytes(remote.size))
    try:
        with io.BufferedReader(reader, 1 << 20) as stream:
            result = unpack(stream, remote.size)
        digest = reader.sha1()
    except FetchError as exc:
        raise DatasetError(f"reading {remote.url} failed: {exc}") from exc
    finally:
        summary.downloaded_bytes = reader.received
    if digest != expected_sha1:
        raise DatasetError(f"{remote.url}: sha1 {digest} does not match the expected "
                           f"{expected_sha1}: nothing was published")  # fmt: skip
    summary.sha1 = digest
    return result


def fetch_archive(
    client: HttpClient,
    url: str,
    zip_path: Path,
    expected_sha1: str,
    *,
    summary: DatasetSummary,
    progress: Progress,
) -> Path:
    """The verified archive at ``zip_path``: kept from an earlier run, or (resumably) fetched."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    got = verified_sha1(zip_path) if zip_path.is_file() else None
    if got == expected_sha1:
        log.info("reusing the verified %s from an earlier run", zip_path)
    else:
        if zip_path.is_file():
            got = file_sha1(zip_path)
        if got != expected_sha1:
            zip_path.unlink(missing_ok=True)
            log.info("downloading %s", url)
            try:
                got, received = download_resumable(
                    client, url, zip_path, lambda n: progress.add(nbytes=n),
                    on_length=lambda n: setattr(progress, "total_bytes", n),
                )  # fmt: skip
            except FetchError as exc:
                raise DatasetError(f"download of {url} failed: {exc}") from exc
            summary.downloaded_bytes = received
    summary.archive_bytes = zip_path.stat().st_size
    if got != expected_sha1:
        remove_archive(zip_path)
        raise DatasetError(f"{url}: sha1 {got} does not match the expected {expected_sha1}")
    mark_verified(zip_path, got)
    summary.sha1 = got
    return zip_path
