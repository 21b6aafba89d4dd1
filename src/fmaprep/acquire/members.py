"""What ``fetch-dataset`` accepts from inside an archive, and the bounds it puts on it.

An archive is data from a mirror: its ``checksums`` member and ``tracks.csv`` are written by
whoever made the zip, and prove nothing until the archive's sha1 does. Before a member is
read the central directory is checked against :class:`Limits` (a zip bomb ends the run with
one line), the ``checksums`` member is read as a stream of lines, and metadata files and
members the checksums do not name are bounded in size and count (docs/inputs.md).
"""

from __future__ import annotations

import csv
import io
import logging
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from fmaprep.acquire.archive import DatasetError
from fmaprep.tracks import cap_value

log = logging.getLogger(__name__)

MIB = 1 << 20
MP3_MEMBER = re.compile(r"^(\d{1,9})\.mp3$")
_SHA1SUM_LINE = re.compile(r"^([0-9a-fA-F]{40}) [ *](.+)$")
_CSV_COLUMNS = {
    "title": "track.title",
    "artist": "artist.name",
    "album": "album.title",
    "genre": "track.genre_top",
    "split": "set.split",
    "subset": "set.subset",
}
# one CSV field (FMA's tracks.csv has long free-text columns; csv's default stops at 128 KiB)
MAX_CSV_FIELD = 16 * MIB


@dataclass(frozen=True)
class Limits:
    """Bounds on what an archive may unpack to (docs/inputs.md, "Archives")."""

    member_bytes: int = 2 << 30  # one audio member
    total_bytes: int = 4 << 40  # all members together, as the directory declares them
    total_ratio: float = 20.0  # unpacked / archive bytes, over the whole archive
    member_ratio: float = 100.0  # unpacked / packed, one member over 1 MiB
    unlisted_count: int = 1000  # audio members the checksums file does not name
    unlisted_bytes: int = 256 * MIB  # one such member
    metadata_count: int = 100  # .csv / .txt members
    metadata_bytes: int = 2 << 30  # one such member
    checksums_bytes: int = 64 * MIB  # the checksums member


def check_directory(infos: list[zipfile.ZipInfo], archive_bytes: int, limits: Limits) -> None:
    """Refuse, before any member is read, an archive whose directory declares too much."""
    total = sum(info.file_size for info in infos)
    if total > limits.total_bytes or total > limits.total_ratio * max(archive_bytes, MIB):
        raise DatasetError(
            f"the archive's members unpack to {total} bytes from {archive_bytes}: over the "
            f"limit ({limits.total_ratio:g} times the archive, at most {limits.total_bytes}); "
            "refused (a zip bomb?)"
        )
    for info in infos:
        if info.file_size > MIB and info.file_size > limits.member_ratio * max(
            info.compress_size, 1
        ):
            raise DatasetError(
                f"member {info.filename!r} unpacks to {info.file_size} bytes from "
                f"{info.compress_size}: over {limits.member_ratio:g} times; refused (a zip bomb?)"
            )


def parse_checksums(lines: Iterator[str] | str, base_dir: str = "") -> dict[str, str]:
    """``sha1sum`` output as {normalised member path: sha1}, paths joined to ``base_dir``."""
    table: dict[str, str] = {}
    for raw in lines.splitlines() if isinstance(lines, str) else lines:
        match = _SHA1SUM_LINE.match(raw.strip())
        if match:
            path = posixpath.normpath(posixpath.join(base_dir, match.group(2).strip()))
            table[path] = match.group(1).lower()
    return table


def read_checksums(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: Limits
) -> dict[str, str]:
    """Every ``checksums`` member's table, read line by line (never whole in memory)."""
    checks: dict[str, str] = {}
    for info in infos:
        if posixpath.basename(info.filename) != "checksums":
            continue
        if info.file_size > limits.checksums_bytes:
            raise DatasetError(f"{info.filename} is {info.file_size} bytes, over the "
                               f"{limits.checksums_bytes} a checksums file may have")  # fmt: skip
        with archive.open(info) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
            checks |= parse_checksums(_lines(text), posixpath.dirname(info.filename))
    return checks


def _lines(text: IO[str]) -> Iterator[str]:
    """Lines of at most 4 KiB (a longer one comes in pieces, none a sha1sum line)."""
    return iter(lambda: text.readline(4096), "")


def metadata_key(member: str) -> str | None:
    """The destination name of a metadata member (``.csv``/``.txt``), made of safe characters
    (``tracks (1).csv`` -> ``tracks__1_.csv``); None for other members."""
    name = posixpath.basename(member)
    if not name.endswith((".csv", ".txt")):
        return None
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".-") or None


def read_tracks_csv(stream: IO[str], name: str = "tracks.csv") -> dict[int, dict[str, str | None]]:
    """FMA's ``tracks.csv`` (two header rows: top level, then column; first column the id)
    as {track id: {title, artist, album, genre, split, subset}}, values capped
    (:func:`fmaprep.tracks.cap_value`). A row that does not parse is a warning naming its line."""
    reader = csv.reader(stream)
    table: dict[int, dict[str, str | None]] = {}
    old_limit = csv.field_size_limit(MAX_CSV_FIELD)  # (process-wide: put back after)
    try:
        try:
            top, names = next(reader), next(reader)
        except StopIteration:
            return {}
        except csv.Error as exc:
            log.warning("%s: header unreadable (%s): no metadata", name, exc)
            return {}
        index: dict[str, int] = {}
        group = ""
        for i, (level0, level1) in enumerate(zip(top, names, strict=False)):
            group = level0.strip() or group
            index[f"{group}.{level1.strip()}"] = i
        columns = {key: index.get(col) for key, col in _CSV_COLUMNS.items()}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                log.warning("%s line %d: %s; row ignored", name, reader.line_num, exc)
                continue
            if not row or not row[0].strip().isdigit() or len(row[0].strip()) > 9:
                continue  # e.g. the "track_id,,,..." row pandas writes under the header
            values: dict[str, str | None] = {}
            for key, col in columns.items():
                cell = row[col].strip() if col is not None and col < len(row) else ""
                values[key] = cap_value(cell) or None
            table[int(row[0])] = values
    finally:
        csv.field_size_limit(old_limit)
    return table


def check_tracks_csv(path: str) -> None:
    """Before any download: ``--tracks-csv`` exists and reads as CSV text."""
    try:
        with open(path, "rb") as raw:
            head = raw.read(64 * 1024)
    except OSError as exc:
        raise DatasetError(f"--tracks-csv {path}: {exc.strerror or exc}") from exc
    if b"\0" in head:
        raise DatasetError(f"--tracks-csv {path}: binary data, not a CSV file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # (not a character cut by the 64 KiB read)
            raise DatasetError(f"--tracks-csv {path}: not UTF-8 text (byte {exc.start})") from exc


def check_sha1(text: str) -> str:
    """A sha1 as 40 hex digits (lower case), or a one-line error before any download."""
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{40}", value):
        raise DatasetError(f"--sha1 {text!r} is not a sha1 (40 hexadecimal digits)")
    return value
