"""Read fmaprep OUTPUT without Spark or a JVM (contract 5).

``read_records`` reads both output formats: ``part-*.parquet`` files through
:mod:`fmaprep.formats.parquet` (pyarrow), every other ``part-*`` file as the pickle format below.

The pickle format is the SequenceFile of :mod:`fmaprep.formats.sequencefile` holding pickled
batches (lists of records), loaded as data only: :mod:`fmaprep.formats.safepickle` refuses any
pickle that names a callable other than numpy's array constructors (``UnsafePickleError``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from fmaprep.formats import safepickle
from fmaprep.formats.commit import SUCCESS_FILE, Commit, Part, parse_commit
from fmaprep.formats.manifest import MANIFEST_FILE, STATS_FILE, parse_manifest, parse_shard
from fmaprep.formats.safepickle import UnsafePickleError, trusted_from_env
from fmaprep.formats.sequencefile import iter_sequence_file, parse_byte_arrays
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.uris import is_local, local_path

__all__ = [
    "DamagedOutputError",
    "OutputChangedError",
    "OutputInfo",
    "UnsafePickleError",
    "read_commit",
    "read_output_info",
    "read_partition",
    "read_records",
]


def read_partition(
    path: str | os.PathLike[str] | IO[bytes],
    dir_fd: int | None = None,
    name: str | None = None,
    *,
    trusted: bool | None = None,
) -> Iterator[Any]:
    """Yield the Python objects of one ``part-*`` file (a path or an open stream), in order.

    Pickles are loaded as data (:mod:`fmaprep.formats.safepickle`): a global outside the
    allowlist raises :class:`UnsafePickleError` before it is called. ``trusted`` True lifts
    that; None means ``$FMAPREP_TRUSTED_PICKLES``.
    """
    label = name or (os.fspath(path) if isinstance(path, (str, os.PathLike)) else "part")
    trust = trusted_from_env() if trusted is None else trusted
    for value in iter_sequence_file(path, dir_fd, name=label):
        try:
            blobs = parse_byte_arrays(value)
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from e
        for blob in blobs:
            if blob is None:
                raise ValueError(f"{label}: null element in a saved object array")
            batch = safepickle.loads(blob, label, trusted=trust)
            # PySpark pickles batches as lists; tolerate a bare object as a batch of one.
            yield from batch if isinstance(batch, list) else [batch]


def _natural_key(name: str) -> list[Any]:
    # Name order, but part-99999 before part-100000 (Spark pads to 5 digits only).
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _matches(value: Any, allowed: frozenset[Any] | None) -> bool:
    try:
        return allowed is None or value in allowed
    except TypeError:  # an unhashable field value is in no filter set
        return False


class _Output:
    """An OUTPUT's files by name: a local directory opened once (parts are opened relative to
    it), or a remote one through the store client."""

    def __init__(self, output: str, settings: StoreSettings | None) -> None:
        self.label = output
        self.dir_fd: int | None = None
        if is_local(output):
            root = local_path(output)
            if not os.path.isdir(root):
                raise FileNotFoundError(f"{output}: no such output directory")
            self.dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        else:
            self.uri = output.rstrip("/")
            self.store = open_store(self.uri, settings or StoreSettings.from_env())

    def read(self, name: str) -> bytes:
        if self.dir_fd is not None:
            with open(os.open(name, os.O_RDONLY, dir_fd=self.dir_fd), "rb") as f:
                return f.read()
        return self.store.read_bytes(f"{self.uri}/{name}")

    def open(self, name: str) -> IO[bytes]:
        if self.dir_fd is not None:
            return open(os.open(name, os.O_RDONLY, dir_fd=self.dir_fd), "rb")
        return self.store.open_read(f"{self.uri}/{name}")

    def size(self, name: str, stream: IO[bytes]) -> int | None:
        if self.dir_fd is not None:
            return os.fstat(stream.fileno()).st_size
        entry = self.store.stat(f"{self.uri}/{name}")
        return None if entry is None else entry.size

    def part_names(self) -> list[str]:
        """Every ``part-*`` at the top (Spark's own outputs: no commit names them)."""
        if self.dir_fd is not None:
            names = [n for n in os.listdir(self.dir_fd) if n.startswith("part-")]
        else:
            prefix = self.uri + "/"
            rels = (e.uri[len(prefix) :] for e in self.store.list_files(self.uri))
            names = [n for n in rels if n.startswith("part-") and "/" not in n]
        return sorted(names, key=_natural_key)

    def close(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)


def read_commit(output: str, settings: StoreSettings | None = None) -> Commit | None:
    """The commit of a finished OUTPUT (None for Spark's empty ``_SUCCESS``)."""
    out = _Output(output, settings)
    try:
        return _commit_of(out)
    finally:
        out.close()


def _commit_of(out: _Output) -> Commit | None:
    try:
        data = out.read(SUCCESS_FILE)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{out.label}: no {SUCCESS_FILE}, the job did not finish (or still runs)"
        ) from e
    return parse_commit(data, f"{out.label}/{SUCCESS_FILE}")


@dataclass(frozen=True)
class OutputInfo:
    """What an OUTPUT says about itself: its manifest lines, its stats, its part names, and the
    ``_task`` headers of its manifest shards (per-part statistics, e.g. ``code_counts``)."""

    lines: list[dict[str, Any]]
    stats: dict[str, Any]
    parts: list[str]
    tasks: list[dict[str, Any]] = field(default_factory=list)


def read_output_info(output: str, settings: StoreSettings | None = None) -> OutputInfo:
    """The committed generation's manifest (the shards its commit names), stats and parts;
    for outputs without a fmaprep commit, ``_manifest.jsonl``/``_stats.json`` and every part."""
    out = _Output(output, settings)
    try:
        commit = _commit_of(out)
        if commit is None:
            lines = parse_manifest(out.read(MANIFEST_FILE))
            try:
                stats = json.loads(out.read(STATS_FILE))
            except FileNotFoundError:
                stats = {}
            return OutputInfo(lines, stats, out.part_names())
        lines, tasks = [], []
        for name, _ in commit.manifest:
            task, shard_lines = parse_shard(out.read(name))
            lines += shard_lines
            if task:
                tasks.append(task)
        return OutputInfo(lines, dict(commit.stats), [p.name for p in commit.parts], tasks)
    finally:
        out.close()


def read_records(
    output: str,
    *,
    track_ids: Collection[str] | None = None,
    genres: Collection[str] | None = None,
    splits: Collection[str] | None = None,
    settings: StoreSettings | None = None,
    trusted: bool | None = None,
    parts: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the records of a finished OUTPUT (a local path, ``file://``, ``s3://``, ``s3a://``
    or ``hdfs://``), part by part: exactly the parts its commit (``_SUCCESS``) names, without
    the records a resume replaced; for Spark's own outputs every ``part-*``. Each part must
    have the bytes and the record count its commit recorded, else :class:`DamagedOutputError`
    names the part and what is wrong.

    Each filter given keeps records whose ``track_id`` / ``genre`` / ``split`` is in it.
    ``settings`` says how to reach S3/HDFS (default: the environment, as the job's).
    Pickle parts are loaded as data only (see :func:`read_partition`; ``trusted`` as there).
    ``parts`` (names, as the manifest lines' ``part``) reads only those of the output's parts.
    """
    out = _Output(output, settings)
    try:
        commit = _commit_of(out)
        names: list[tuple[str, frozenset[str], Part | None]] = (
            [(p.name, frozenset(p.exclude), p) for p in commit.parts]
            if commit is not None
            else [(n, frozenset(), None) for n in out.part_names()]
        )
        if parts is not None:
            names = [entry for entry in names if entry[0] in parts]
        filters = {
            key: None if v is None else frozenset([v] if isinstance(v, str) else v)
            for key, v in (("track_id", track_ids), ("genre", genres), ("split", splits))
        }
        for name, exclude, expect in names:
            try:
                with out.open(name) as stream:
                    if expect is not None:
                        _check_size(out, name, stream, expect)
                    records = _part_records(
                        name, stream, filters, trusted, exclude=exclude, expect=expect
                    )
                    yield from (r for r in records if r.get("source") not in exclude)
            except FileNotFoundError as e:
                raise OutputChangedError(
                    f"{output} was replaced while it was being read ({name} is gone); read it again"
                ) from e
    finally:
        out.close()


def read_superseded(
    output: str, part: Part, settings: StoreSettings | None = None, trusted: bool | None = None
) -> Iterator[dict[str, Any]]:
    """The records of a committed ``part`` that its commit excludes (``part.exclude``: inputs a
    resume processed again; :func:`read_records` skips them). Only those records are decoded
    into the caller's hands; the part is read through once."""
    if not part.exclude:
        return
    out = _Output(output, settings)
    try:
        with out.open(part.name) as stream:
            _check_size(out, part.name, stream, part)
            yield from _part_records(
                part.name, stream, {"source": frozenset(part.exclude)}, trusted
            )
    finally:
        out.close()


def _check_size(out: _Output, name: str, stream: IO[bytes], expect: Part) -> None:
    """Before a record is read: the part has the bytes the commit recorded."""
    size = out.size(name, stream)
    if size is None:
        raise FileNotFoundError(f"{out.label}/{name}")
    if size != expect.bytes:
        raise DamagedOutputError(
            f"{out.label}/{name}: {size} bytes, but {SUCCESS_FILE} records {expect.bytes} "
            f"({'cut short' if size < expect.bytes else 'grown'} since the commit)"
        )


def _part_records(
    name: str,
    stream: IO[bytes],
    filters: dict[str, frozenset[Any] | None],
    trusted: bool | None,
    *,
    exclude: frozenset[str] = frozenset(),
    expect: Part | None = None,
) -> Iterator[dict[str, Any]]:
    """The part's records that pass ``filters``; with ``expect`` (the commit's entry), the
    part must hold exactly the records the commit counted (those it excludes aside)."""
    if name.endswith(".parquet"):  # --format parquet (a resumed output may hold both)
        from fmaprep.formats.parquet import parquet_rows, read_parquet_part

        # parquet readers seek (the footer first): every store's reader can (remote ones by
        # reopening with a Range)
        if expect is not None:
            _check_count(name, parquet_rows(stream, name), expect, parquet=True)
            stream.seek(0)
        yield from read_parquet_part(stream, filters, _matches, name=name)
        return
    counted = 0
    for record in read_partition(stream, name=name, trusted=trusted):
        if not isinstance(record, dict):
            raise ValueError(f"{name}: record is a {type(record).__name__}, not a dict")
        counted += record.get("source") not in exclude
        if all(_matches(record.get(k), allowed) for k, allowed in filters.items()):
            yield record
    if expect is not None:
        _check_count(name, counted, expect, parquet=False)


def _check_count(name: str, counted: int, expect: Part, *, parquet: bool) -> None:
    # a parquet footer counts every row, the excluded ones too
    low, high = expect.records, expect.records + (len(expect.exclude) if parquet else 0)
    if not low <= counted <= high:
        raise DamagedOutputError(
            f"{name}: {counted} records, but {SUCCESS_FILE} records {expect.records}"
            f"{' (cut short at a record boundary?)' if counted < low else ''}"
        )


class DamagedOutputError(ValueError):
    """A part is not what the commit recorded (bytes or record count): the output is damaged."""


class OutputChangedError(RuntimeError):
    """The output directory was replaced or deleted during a read."""
