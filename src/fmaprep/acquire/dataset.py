"""``fetch-dataset``: the FMA dataset archives (https://github.com/mdeff/fma).

Gets the zip (:mod:`fmaprep.acquire.archive`: downloaded resumably and sha1-verified, or read in
place over HTTP for S3 and HDFS destinations), extracts every ``<digits>.mp3`` member to
``<dest>/<id[:3]>/<id>.mp3`` (the path is built from the integer id alone, so a member name can
never escape the destination), checks each one against the archive's ``checksums`` file
(sha1sum format, paths relative to that file), and joins ``tracks.csv`` into ``_tracks.jsonl``.

The trust rule (docs/inputs.md): nothing from the archive, its ``checksums`` file included, is
trusted before the archive's sha1 is. A downloaded archive is verified before it is unpacked;
one read in place (S3, HDFS) has its members staged under ``_fetch_staging/`` and published only
once the pass has hashed every byte, so a tampered archive publishes nothing. A verified fetch is
remembered in ``_fetched/<name>.json`` (:mod:`fmaprep.acquire.fetchrecord`): a rerun checks the
destination against it and reads from the server only the members that are missing.

``tracks.csv`` is taken from the archive itself, else from ``tracks_csv``, else from
``<dest>/_fma_metadata/tracks.csv`` (where fetching ``fma_metadata`` puts its csv files); so
``fetch-dataset fma_metadata`` then ``fetch-dataset fma_small`` to the same destination gives
audio lines with title, artist, genre, split and subset.
"""

from __future__ import annotations

import io
import logging
import posixpath
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
    remove_archive,
    unpack_in_place,
)
from fmaprep.acquire.dest import Destination, open_destination
from fmaprep.acquire.fetchrecord import FetchRecord, Member, read_record, record_key, write_record
from fmaprep.acquire.http import FetchError, HttpClient, Throttle
from fmaprep.acquire.members import (
    MP3_MEMBER,
    Limits,
    check_directory,
    check_sha1,
    check_tracks_csv,
    metadata_key,
    read_checksums,
    read_tracks_csv,
)
from fmaprep.acquire.rangezip import Remote, Spans, probe
from fmaprep.acquire.tracklog import TrackLog
from fmaprep.model import METADATA_KEYS, track_path
from fmaprep.progress import Progress
from fmaprep.storage.clients import StoreSettings
from fmaprep.tracks import make_line

log = logging.getLogger(__name__)

ARCHIVE_BASE_URL = "https://os.unil.cloud.switch.ch/fma/"
METADATA_DIR = "_fma_metadata"


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

STAGING_DIR = "_fetch_staging"  # members read in place wait here until the sha1 is proven
_NO_SHA1 = "0" * 40
Metadata = dict[int, dict[str, str | None]]
# what unpacking decided for one member: its record entry, and the _tracks.jsonl line to write
# once it is published (None for a metadata file)
Outcome = tuple[Member, dict[str, Any] | None]


def staging_key(key: str) -> str:
    return f"{STAGING_DIR}/{key.replace('/', '-')}.staged"


@dataclass
class _Run:
    """One fetch-dataset run: what it fetches, where to, and what it has done."""

    name: str
    url: str
    sha1: str
    dest: Destination
    tracks_csv: Path | None
    limits: Limits
    summary: DatasetSummary
    progress: Progress

    _probed: tuple[Remote | None, int | None] | None = None

    def probe(self, client: HttpClient) -> tuple[Remote | None, int | None]:
        """(the archive when its server answers Range, its size): asked once per run."""
        if self._probed is None:
            try:
                self._probed = probe(client, self.url)
            except FetchError as exc:
                raise DatasetError(f"{self.url}: {exc}") from exc
        return self._probed

    def line(self, track_id: int, meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
        return make_line(track_id, urls={"archive": self.url}, source=self.name, **meta, **fields)


def fetch_dataset(
    name: str,
    dest_uri: str,
    *,
    url: str | None = None,
    sha1: str | None = None,
    tracks_csv: Path | None = None,
    client: HttpClient | None = None,
    keep_archive: bool = False,
    limits: Limits | None = None,
    progress: Progress | None = None,
    s3_endpoint: str | None = None,
) -> DatasetSummary:
    """Fetch, verify and extract one FMA archive into ``dest_uri``; see the module docstring."""
    known = ARCHIVES.get(name)
    if known is None and (url is None or sha1 is None):
        raise DatasetError(
            f"unknown archive {name!r}; known: {', '.join(ARCHIVES)} "
            "(another name needs --url and --sha1)"
        )
    # every argument is checked before a byte is downloaded
    expected_sha1 = check_sha1(sha1) if sha1 is not None else known.sha1 if known else ""
    if tracks_csv is not None:
        check_tracks_csv(str(tracks_csv))
    url = url or (known.url if known else "")
    dest = open_destination(dest_uri, StoreSettings.from_env(endpoint=s3_endpoint))
    dest.cleanup()
    _drop_staged(dest)
    client = client or HttpClient(Throttle(0.0, 1 << 30, 0.0), retries=5)
    run = _Run(name, url, expected_sha1, dest, tracks_csv, limits or Limits(),
               DatasetSummary(name), progress or Progress(None))  # fmt: skip
    try:
        record = read_record(dest, name)
        if record is None or record.sha1 != expected_sha1 or not _from_record(run, record, client):
            _from_archive(run, client, keep_archive)
    finally:
        run.progress.close()
    return run.summary


def _from_archive(run: _Run, client: HttpClient, keep_archive: bool) -> None:
    local_tmp = run.dest.local_tmp_dir()
    # The archive and its partial download live where a rerun finds them (the destination's
    # clean-up keeps them): beside the destination's staging files, or for S3 and HDFS in a
    # directory of $TMPDIR named after the archive's sha1.
    own = Path(tempfile.gettempdir()) / f"fmaprep-dataset-{run.name}-{run.sha1[:12]}"
    staging = local_tmp / "datasets" if local_tmp is not None else own
    if local_tmp is None and not keep_archive:
        # S3 or HDFS: read the archive in place on the server when it answers Range; members
        # are staged and published once the whole archive's sha1 is proven
        remote, size = run.probe(client)
        if remote is not None:
            try:
                staged = unpack_in_place(
                    client, remote, run.sha1, run.summary,
                    lambda stream, nbytes: _unpack(run, stream, nbytes, staged=True),
                )  # fmt: skip
            except DatasetError:
                _drop_staged(run.dest)
                raise
            _publish(run, staged, remote.size)
            return
        check_room(staging, size, run.url)
    zip_path = fetch_archive(client, run.url, staging / f"{run.name}.zip", run.sha1,
                             summary=run.summary, progress=run.progress)  # fmt: skip
    try:
        nbytes = zip_path.stat().st_size
        outcomes = _unpack(run, zip_path, nbytes, staged=False)
        members = tuple(m for m, _ in outcomes)
        write_record(run.dest, FetchRecord(run.name, run.sha1, nbytes, members))
    except BaseException:
        log.info("kept %s for the rerun: it continues from there", zip_path)
        raise
    # only once every member is done is the archive not needed (unless kept)
    if not keep_archive:
        remove_archive(zip_path)
        if local_tmp is None:  # the directory of $TMPDIR is this archive's own
            shutil.rmtree(zip_path.parent, ignore_errors=True)


def _drop_staged(dest: Destination) -> None:
    """What an earlier run staged and never published (fmaprep's own staging names only)."""
    for key in dest.list_keys(STAGING_DIR + "/"):
        if key.endswith(".staged"):
            dest.delete(key)


def _publish(run: _Run, outcomes: list[Outcome], archive_bytes: int) -> None:
    """The archive's sha1 is proven: staged members go to their keys, their lines are written,
    and the fetch record remembers it all (written first: it is about the archive, and a rerun
    after a crash here fetches what is missing by Range)."""
    write_record(run.dest, FetchRecord(run.name, run.sha1, archive_bytes,
                                       tuple(m for m, _ in outcomes)))  # fmt: skip
    with TrackLog(run.dest) as log_file:
        for member, line in outcomes:
            if member.error is None:
                run.dest.publish(staging_key(member.key), member.key)
            if line is not None:
                log_file.append(line)


# ---------------------------------------------------------------- the archive, member by member
def _unpack(run: _Run, archive_file: Path | IO[bytes], archive_bytes: int, *,
            staged: bool) -> list[Outcome]:  # fmt: skip
    """Every member's outcome. ``staged``: members go to staging names and their lines are
    returned (the archive is not verified yet); else (a verified local archive) they go to
    their keys, with their lines, as they come, and complete ones are skipped."""
    with TrackLog(run.dest) as log_file, zipfile.ZipFile(archive_file) as archive:
        # in offset order: an archive read in place over HTTP is then read front to back
        infos = sorted((i for i in archive.infolist() if not i.is_dir()),
                       key=lambda info: info.header_offset)  # fmt: skip
        check_directory(infos, archive_bytes, run.limits)
        checks = read_checksums(archive, infos, run.limits)
        audio = [
            (info, int(m.group(1)))
            for info in infos
            if (m := MP3_MEMBER.match(posixpath.basename(info.filename))) and int(m.group(1)) > 0
        ]
        if not audio:
            return _copy_metadata_files(run, archive, infos, checks, staged=staged)
        metadata = _load_metadata(run, archive)
        run.progress.total = len(audio)
        outcomes: list[Outcome] = []
        unlisted = 0
        for info, track_id in audio:
            expected = checks.get(posixpath.normpath(info.filename))
            meta: dict[str, Any] = dict(metadata.get(track_id, {}))
            run.summary.with_metadata += bool(meta)
            previous = log_file.latest.get(f"{track_id:06d}")
            if (
                not staged
                and previous is not None
                and (expected is None or previous.get("sha1") == expected)
                and log_file.is_complete(track_id, rehash=expected is None)
            ):
                run.summary.skipped += 1
                run.progress.add(skipped=1)
                outcomes.append((_member(info, track_path(track_id), track_id,
                                         str(previous.get("sha1"))), None))  # fmt: skip
                continue
            limit = run.limits.member_bytes
            if expected is None:
                unlisted += 1
                run.summary.unverified += 1
                log.warning("%s is not in the archive's checksums", info.filename)
                limit = run.limits.unlisted_bytes if checks else limit
            over_count = bool(checks) and unlisted > run.limits.unlisted_count
            outcome = _extract_track(run, archive, info, track_id, expected, limit=limit,
                                     meta=meta, staged=staged, over_count=over_count)  # fmt: skip
            if not staged and outcome[1] is not None:
                log_file.append(outcome[1])
            outcomes.append(outcome)
        return outcomes


def _member(info: zipfile.ZipInfo, key: str, track_id: int | None, sha1: str,
            error: str | None = None) -> Member:  # fmt: skip
    return Member(info.filename, key, track_id, info.header_offset, info.compress_size,
                  info.file_size, info.compress_type, sha1, error)  # fmt: skip


def _extract_track(
    run: _Run,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    track_id: int,
    expected: str | None,
    *,
    limit: int,
    meta: dict[str, Any],
    staged: bool,
    over_count: bool,
) -> Outcome:
    key = track_path(track_id)
    try:
        if over_count:
            raise ValueError(f"not_in_checksums: more than {run.limits.unlisted_count} audio "
                             "members the checksums file does not name")  # fmt: skip
        nbytes, digest = _extract(archive, info, run.dest, staging_key(key) if staged else key,
                                  expected=expected, limit=limit)  # fmt: skip
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        reason = (
            str(exc) if str(exc).startswith(("checksum", "not_in")) else f"corrupt_member: {exc}"
        )
        log.error("%s: %s", info.filename, reason)
        run.summary.failures.append((info.filename, reason))
        run.progress.add(failed=1)
        line = run.line(track_id, meta, status="error", error=reason)
        return _member(info, key, track_id, expected or _NO_SHA1, reason), line
    run.summary.extracted += 1
    run.progress.add(tracks=1, nbytes=nbytes)
    return _member(info, key, track_id, digest), run.line(
        track_id, meta, bytes=nbytes, sha1=digest, status="ok"
    )


def _extract(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    dest: Destination,
    key: str,
    *,
    expected: str | None,
    limit: int,
) -> tuple[int, str]:
    if info.file_size > limit:
        raise ValueError(f"member is {info.file_size} bytes, more than {limit}")
    with dest.writer(key) as writer, archive.open(info) as member:
        for block in iter(lambda: member.read(1 << 20), b""):
            writer.write(block)
            if writer.size > limit:
                raise ValueError(f"member is more than {limit} bytes")
        if expected is not None and writer.sha1 != expected:
            raise ValueError(f"checksum_mismatch: expected sha1 {expected}, got {writer.sha1}")
        writer.commit()
        return writer.size, writer.sha1


def _copy_metadata_files(
    run: _Run,
    archive: zipfile.ZipFile,
    infos: Iterable[zipfile.ZipInfo],
    checks: dict[str, str],
    *,
    staged: bool,
) -> list[Outcome]:
    """The archive's ``.csv``/``.txt`` files into ``_fma_metadata/`` (bounded in number and
    size; a name is made of safe characters: ``my file.csv`` becomes ``my_file.csv``)."""
    outcomes: list[Outcome] = []
    for info in infos:
        name = metadata_key(info.filename)
        if name is None:
            continue
        key = f"{METADATA_DIR}/{name}"
        expected = checks.get(posixpath.normpath(info.filename))
        try:
            if len(outcomes) >= run.limits.metadata_count:
                raise ValueError(f"more than {run.limits.metadata_count} metadata files")
            _, digest = _extract(archive, info, run.dest, staging_key(key) if staged else key,
                                 expected=expected, limit=run.limits.metadata_bytes)  # fmt: skip
        except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            reason = str(exc) if str(exc).startswith("checksum") else f"corrupt_member: {exc}"
            log.error("%s: %s", info.filename, reason)
            run.summary.failures.append((info.filename, reason))
            outcomes.append((_member(info, key, None, expected or _NO_SHA1, reason), None))
            continue
        if name != posixpath.basename(info.filename):
            log.warning("%s is stored as %s", info.filename, key)
        run.summary.metadata_files += 1
        outcomes.append((_member(info, key, None, digest), None))
    return outcomes


def _load_metadata(run: _Run, archive: zipfile.ZipFile | None) -> Metadata:
    """tracks.csv from the archive, else --tracks-csv, else the destination's _fma_metadata/."""
    for info in archive.infolist() if archive is not None else ():
        if posixpath.basename(info.filename) == "tracks.csv":
            if info.file_size > run.limits.metadata_bytes:
                log.warning("%s is over %d bytes: not read", info.filename,
                            run.limits.metadata_bytes)  # fmt: skip
                continue
            with archive.open(info) as raw:  # type: ignore[union-attr]
                return read_tracks_csv(_text(raw), info.filename)
    if run.tracks_csv is not None:
        with open(run.tracks_csv, "rb") as raw:
            return read_tracks_csv(_text(raw), str(run.tracks_csv))
    key = f"{METADATA_DIR}/tracks.csv"
    if run.dest.size(key) is not None:
        with run.dest.open_read(key) as raw:
            return read_tracks_csv(_text(raw), f"{run.dest.uri}/{key}")
    log.warning("no tracks.csv (in the archive, --tracks-csv or %s/): no metadata", METADATA_DIR)
    return {}


def _text(raw: IO[bytes]) -> IO[str]:
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


# ---------------------------------------------------------------- a rerun, from the fetch record
def _from_record(run: _Run, record: FetchRecord, client: HttpClient) -> bool:
    """Check the destination against what an earlier run verified; fetch what is missing, by
    Range, member by member. False (nothing done) when members are missing and the server does
    not answer Range for the same archive: the archive is then read once, from the start."""
    summary = run.summary
    with TrackLog(run.dest) as log_file:
        todo = [m for m in record.members if m.error is None and not _present(run, log_file, m)]
        spans = None
        if todo:
            remote, _ = run.probe(client)
            if remote is None or remote.size != record.size:
                log.warning("%s: %d members missing and the server does not answer Range for "
                            "the archive: it is read again", run.url, len(todo))  # fmt: skip
                return False
            spans = Spans(client, remote)
        summary.sha1 = f"{record.sha1} (verified by an earlier run: {record_key(run.name)})"
        summary.archive_bytes = record.size
        for m in record.members:
            if m.error is not None:
                summary.failures.append((m.name, m.error))
        missing = {id(m) for m in todo}
        summary.skipped = sum(
            m.track_id is not None and m.error is None and id(m) not in missing
            for m in record.members
        )
        run.progress.total = len(todo)
        try:
            if spans is not None:
                _refetch_all(run, spans, todo, log_file)
        except FetchError as exc:
            raise DatasetError(f"reading {run.url} failed: {exc}") from exc
        finally:
            summary.downloaded_bytes = spans.received if spans is not None else 0
    return True


def _refetch_all(run: _Run, spans: Spans, todo: list[Member], log_file: TrackLog) -> None:
    """The missing members, each with the metadata its last line had (else tracks.csv's)."""
    metadata: Metadata | None = None
    for m in todo:
        meta: dict[str, Any] = {}
        if m.track_id is not None:
            previous = log_file.latest.get(f"{m.track_id:06d}") or {}
            meta = {k: previous[k] for k in METADATA_KEYS if previous.get(k) is not None}
            if not meta:
                metadata = _load_metadata(run, None) if metadata is None else metadata
                meta = dict(metadata.get(m.track_id, {}))
        line = _refetch(run, spans, m, meta)
        if line is not None:
            log_file.append(line)


def _present(run: _Run, log_file: TrackLog, m: Member) -> bool:
    if m.track_id is None:
        return run.dest.size(m.key) == m.usize
    line = log_file.latest.get(f"{m.track_id:06d}")
    return (
        line is not None
        and line.get("sha1") == m.sha1
        and line.get("bytes") == m.usize
        and log_file.is_complete(m.track_id, rehash=False)
    )


def _refetch(run: _Run, spans: Spans, m: Member, meta: dict[str, Any]) -> dict[str, Any] | None:
    """One member read back by Range; published only if it hashes to the recorded sha1."""
    error = None
    with run.dest.writer(m.key) as writer:
        try:
            for piece in spans.member(m.offset, m.csize, m.method, m.name):
                writer.write(piece)
                if writer.size > m.usize:
                    break
        except zlib.error as exc:
            error = f"corrupt_member: {exc}"
        if error is None and (writer.size, writer.sha1) != (m.usize, m.sha1):
            error = (f"checksum_mismatch: the server's copy of {m.name} is not the member "
                     f"the verified archive held (sha1 {m.sha1})")  # fmt: skip
        if error is None:
            writer.commit()
    if error is not None:
        log.error("%s: %s", m.name, error)
        run.summary.failures.append((m.name, error))
        run.progress.add(failed=1)
        return run.line(m.track_id, meta, status="error", error=error) if m.track_id else None
    run.progress.add(tracks=1, nbytes=m.usize)
    if m.track_id is None:
        run.summary.metadata_files += 1
        return None
    run.summary.extracted += 1
    return run.line(m.track_id, meta, bytes=m.usize, sha1=m.sha1, status="ok")
