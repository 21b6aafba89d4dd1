"""``fetch-dataset``: the FMA dataset archives (https://github.com/mdeff/fma).

Gets the zip (:mod:`fmaprep.acquire.archive`: downloaded resumably and sha1-verified, or read in
place over HTTP for S3 and HDFS destinations), extracts every ``<digits>.mp3`` member to
``<dest>/<id[:3]>/<id>.mp3`` (the path is built from the integer id alone, so a member name can
never escape the destination), checks each one against the archive's ``checksums`` file
(sha1sum format, paths relative to that file), and joins ``tracks.csv`` into ``_tracks.jsonl``.

``tracks.csv`` is taken from the archive itself, else from ``tracks_csv``, else from
``<dest>/_fma_metadata/tracks.csv`` (where fetching ``fma_metadata`` puts its csv files); so
``fetch-dataset fma_metadata`` then ``fetch-dataset fma_small`` to the same destination gives
audio lines with title, artist, genre, split and subset.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import posixpath
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fmaprep.acquire.archive import (
    DatasetError,
    DatasetSummary,
    check_room,
    fetch_archive,
    probe_range,
    unpack_in_place,
    unpack_then_tidy,
)
from fmaprep.acquire.destination import Destination, check_key
from fmaprep.acquire.http import HttpClient, Throttle
from fmaprep.acquire.progress import Progress
from fmaprep.acquire.targets import open_destination
from fmaprep.acquire.tracklog import TrackLog
from fmaprep.model import track_path
from fmaprep.tracks import make_line

log = logging.getLogger(__name__)

ARCHIVE_BASE_URL = "https://os.unil.cloud.switch.ch/fma/"
METADATA_DIR = "_fma_metadata"
DEFAULT_MAX_MEMBER_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Archive:
    name: str
    sha1: str
    size: str  # as FMA describes it, for --help

    @property
    def url(self) -> str:
        return f"{ARCHIVE_BASE_URL}{self.name}.zip"


# The sha1 values FMA publishes in its README (mdeff/fma, "History", 2017-05-09 release rc1,
# which the current download links serve). Override with sha1= / --sha1 for other copies.
ARCHIVES = {
    a.name: a
    for a in (
        Archive("fma_metadata", "f0df49ffe5f2a6008d7dc83c6915b31835dfe733", "342 MiB"),
        Archive("fma_small", "ade154f733639d52e35e32f5593efe5be76c6d70", "7.2 GiB"),
        Archive("fma_medium", "c67b69ea232021025fca9231fc1c7c1a063ab50b", "22 GiB"),
        Archive("fma_large", "497109f4dd721066b5ce5e5f250ec604dc78939e", "93 GiB"),
        Archive("fma_full", "0f0ace23fbe9ba30ecb7e95f763e435ea802b8ab", "879 GiB"),
    )
}

_MP3_MEMBER = re.compile(r"^(\d{1,9})\.mp3$")
_SHA1SUM_LINE = re.compile(r"^([0-9a-fA-F]{40}) [ *](.+)$")
_CSV_COLUMNS = {
    "title": "track.title",
    "artist": "artist.name",
    "album": "album.title",
    "genre": "track.genre_top",
    "split": "set.split",
    "subset": "set.subset",
}


def parse_checksums(text: str, base_dir: str = "") -> dict[str, str]:
    """``sha1sum`` output as {normalised member path: sha1}, paths joined to ``base_dir``."""
    table: dict[str, str] = {}
    for raw in text.splitlines():
        match = _SHA1SUM_LINE.match(raw.strip())
        if match:
            path = posixpath.normpath(posixpath.join(base_dir, match.group(2).strip()))
            table[path] = match.group(1).lower()
    return table


def read_tracks_csv(stream: IO[str]) -> dict[int, dict[str, str | None]]:
    """FMA's ``tracks.csv`` (two header rows: top level, then column; first column the id)
    as {track id: {title, artist, album, genre, split, subset}}."""
    reader = csv.reader(stream)
    try:
        top, names = next(reader), next(reader)
    except StopIteration:
        return {}
    index: dict[str, int] = {}
    group = ""
    for i, (level0, level1) in enumerate(zip(top, names, strict=False)):
        group = level0.strip() or group
        index[f"{group}.{level1.strip()}"] = i
    columns = {key: index.get(name) for key, name in _CSV_COLUMNS.items()}
    table: dict[int, dict[str, str | None]] = {}
    for row in reader:
        if not row or not row[0].strip().isdigit():
            continue  # e.g. the "track_id,,,..." row pandas writes under the header
        values: dict[str, str | None] = {}
        for key, col in columns.items():
            cell = row[col].strip() if col is not None and col < len(row) else ""
            values[key] = cell or None
        table[int(row[0])] = values
    return table


def _load_metadata(
    archive: zipfile.ZipFile, dest: Destination, tracks_csv: Path | None
) -> dict[int, dict[str, str | None]]:
    for info in archive.infolist():
        if posixpath.basename(info.filename) == "tracks.csv":
            with archive.open(info) as raw:
                return read_tracks_csv(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
    if tracks_csv is not None:
        with open(tracks_csv, encoding="utf-8", newline="") as stream:
            return read_tracks_csv(stream)
    text = dest.read_text(f"{METADATA_DIR}/tracks.csv")
    if text is not None:
        return read_tracks_csv(io.StringIO(text, newline=""))
    log.warning("no tracks.csv (in the archive, --tracks-csv or %s/): no metadata", METADATA_DIR)
    return {}


def _extract(
    archive: zipfile.ZipFile,
    *,
    info: zipfile.ZipInfo,
    dest: Destination,
    track_id: int,
    expected: str | None,
    limit: int,
) -> tuple[int, str]:
    if info.file_size > limit:
        raise ValueError(f"member is {info.file_size} bytes, more than {limit}")
    with dest.writer(track_path(track_id)) as writer, archive.open(info) as member:
        for block in iter(lambda: member.read(1 << 20), b""):
            writer.write(block)
            if writer.nbytes > limit:
                raise ValueError(f"member is more than {limit} bytes")
        if expected is not None and writer.sha1 != expected:
            raise ValueError(f"checksum_mismatch: expected sha1 {expected}, got {writer.sha1}")
        writer.commit()
        return writer.nbytes, writer.sha1


def _copy_metadata_files(
    archive: zipfile.ZipFile, members: Iterable[zipfile.ZipInfo], dest: Destination
) -> int:
    count = 0
    for info in members:
        name = posixpath.basename(info.filename)
        if info.is_dir() or not name.endswith((".csv", ".txt")):
            continue
        key = check_key(f"{METADATA_DIR}/{name}")
        with dest.writer(key) as writer, archive.open(info) as member:
            shutil.copyfileobj(member, _WriterIO(writer))
            writer.commit()
        count += 1
    return count


class _WriterIO:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def write(self, data: bytes) -> int:
        self.writer.write(data)
        return len(data)


def fetch_dataset(
    name: str,
    dest_uri: str,
    *,
    url: str | None = None,
    sha1: str | None = None,
    tracks_csv: Path | None = None,
    client: HttpClient | None = None,
    keep_archive: bool = False,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    progress: Progress | None = None,
) -> DatasetSummary:
    """Fetch, verify and extract one FMA archive into ``dest_uri``; see the module docstring."""
    known = ARCHIVES.get(name)
    if known is None and (url is None or sha1 is None):
        raise DatasetError(
            f"unknown archive {name!r}; known: {', '.join(ARCHIVES)} "
            "(another name needs --url and --sha1)"
        )
    expected_sha1 = (sha1 or (known.sha1 if known else "")).lower()
    url = url or (known.url if known else "")
    dest = open_destination(dest_uri)
    dest.cleanup()
    progress = progress or Progress(None)
    client = client or HttpClient(Throttle(0.0, 1 << 30, 0.0), retries=5)
    summary = DatasetSummary(name)
    unpack = functools.partial(
        _unpack, name, url=url, dest=dest, tracks_csv=tracks_csv, limit=max_member_bytes,
        summary=summary, progress=progress,
    )  # fmt: skip
    local_tmp = dest.local_tmp_dir()
    # The archive and its partial download live where a rerun finds them (the destination's
    # clean-up keeps them): beside the destination's staging files, or for S3 and HDFS in a
    # directory of $TMPDIR named after the archive's sha1.
    own = Path(tempfile.gettempdir()) / f"fmaprep-dataset-{name}-{expected_sha1[:12]}"
    staging = local_tmp / "datasets" if local_tmp is not None else own
    try:
        if local_tmp is None and not keep_archive:
            # S3 or HDFS: read the archive in place on the server when it answers Range
            remote, size = probe_range(client, url)
            if remote is not None:
                unpack_in_place(client, remote, expected_sha1, summary, unpack)
                return summary
            check_room(staging, size, url)
        zip_path = staging / f"{name}.zip"
        fetched = fetch_archive(
            client, url, zip_path, expected_sha1, summary=summary, progress=progress
        )
        unpack_then_tidy(fetched, unpack, keep_archive=keep_archive, own_dir=local_tmp is None)
    finally:
        progress.close()
    return summary


def _unpack(
    name: str,
    archive_file: Path | IO[bytes],
    *,
    url: str,
    dest: Destination,
    tracks_csv: Path | None,
    limit: int,
    summary: DatasetSummary,
    progress: Progress,
) -> None:
    # (leaving the TrackLog merges, on S3/HDFS, the batches of lines into _tracks.jsonl)
    with TrackLog(dest) as log_file, zipfile.ZipFile(archive_file) as archive:
        # in offset order: an archive read in place over HTTP is then read front to back
        members = sorted(archive.infolist(), key=lambda info: info.header_offset)
        checks: dict[str, str] = {}
        for info in members:
            if posixpath.basename(info.filename) == "checksums":
                text = archive.read(info).decode("utf-8", "replace")
                checks |= parse_checksums(text, posixpath.dirname(info.filename))
        audio = [
            (info, int(m.group(1)))
            for info in members
            if not info.is_dir() and (m := _MP3_MEMBER.match(posixpath.basename(info.filename)))
        ]
        if not audio:
            summary.metadata_files = _copy_metadata_files(archive, members, dest)
            return
        metadata = _load_metadata(archive, dest, tracks_csv)
        progress.total = len(audio)
        for info, track_id in audio:
            if track_id <= 0:
                continue
            expected = checks.get(posixpath.normpath(info.filename))
            meta: dict[str, Any] = dict(metadata.get(track_id, {}))
            summary.with_metadata += bool(meta)
            fields = {"urls": {"archive": url}, "source": name, **meta}
            previous = log_file.latest.get(f"{track_id:06d}")
            if (
                previous is not None
                and (expected is None or previous.get("sha1") == expected)
                and log_file.is_complete(track_id, rehash=expected is None)
            ):
                summary.skipped += 1
                progress.add(skipped=1)
                continue
            if expected is None:
                summary.unverified += 1
                log.warning("%s is not in the archive's checksums", info.filename)
            try:
                nbytes, digest = _extract(
                    archive, info=info, dest=dest, track_id=track_id, expected=expected, limit=limit
                )
            except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                reason = str(exc) if "checksum" in str(exc) else f"corrupt_member: {exc}"
                log.error("%s: %s", info.filename, reason)
                summary.failures.append((info.filename, reason))
                progress.add(failed=1)
                log_file.append(make_line(track_id, status="error", error=reason, **fields))
                continue
            summary.extracted += 1
            progress.add(tracks=1, nbytes=nbytes)
            log_file.append(make_line(track_id, bytes=nbytes, sha1=digest, status="ok", **fields))
