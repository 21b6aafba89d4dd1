"""Read fmaprep OUTPUT without Spark or a JVM (contract 5).

``read_records`` reads both output formats: ``part-*.parquet`` files through
:mod:`fmaprep.formats.parquet` (pyarrow), every other ``part-*`` file as the pickle format below.

The pickle format is the SequenceFile of :mod:`fmaprep.formats.sequencefile` holding pickled
batches (lists of records). Pickle runs code on load: read only outputs your own pipeline wrote.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Collection, Iterator
from typing import Any
from urllib.parse import urlparse

from fmaprep.formats.sequencefile import iter_sequence_file, parse_byte_arrays

__all__ = ["OutputChangedError", "read_partition", "read_records"]


def read_partition(path: str | os.PathLike[str], dir_fd: int | None = None) -> Iterator[Any]:
    """Yield the Python objects of one ``part-*`` file, in write order."""
    for value in iter_sequence_file(path, dir_fd):
        try:
            blobs = parse_byte_arrays(value)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from e
        for blob in blobs:
            if blob is None:
                raise ValueError(f"{os.fspath(path)}: null element in a saved object array")
            batch = pickle.loads(blob)
            # PySpark pickles batches as lists; tolerate a bare object as a batch of one.
            yield from batch if isinstance(batch, list) else [batch]


def _local_dir(output: str) -> str:
    parsed = urlparse(output)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{output}: file:// URIs with a host are not supported")
        return parsed.path
    if len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise ValueError(f"{output}: only local paths and file:// URIs are read, copy it first")
    return output


def _natural_key(name: str) -> list[Any]:
    # Name order, but part-99999 before part-100000 (Spark pads to 5 digits only).
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _matches(value: Any, allowed: frozenset[Any] | None) -> bool:
    try:
        return allowed is None or value in allowed
    except TypeError:  # an unhashable field value is in no filter set
        return False


def read_records(
    output: str,
    *,
    track_ids: Collection[str] | None = None,
    genres: Collection[str] | None = None,
    splits: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the records of a finished OUTPUT, partition by partition in part-name order.

    Each filter given keeps records whose ``track_id`` / ``genre`` / ``split`` is in it.
    """
    root = _local_dir(output)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{output}: no such output directory")
    if not os.path.exists(os.path.join(root, "_SUCCESS")):
        raise FileNotFoundError(f"{output}: no _SUCCESS, the job did not finish (or still runs)")
    # The directory is opened once and every part is opened relative to it: if the output is
    # replaced meanwhile (--mode overwrite renames the old one away, then deletes it), this
    # reader keeps reading the old generation or fails loudly, and never mixes the two.
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # part-* only: skips _SUCCESS/_manifest.jsonl/_stats.json and Hadoop's .crc files.
        names = sorted((n for n in os.listdir(dir_fd) if n.startswith("part-")), key=_natural_key)
        filters = {
            key: None if v is None else frozenset([v] if isinstance(v, str) else v)
            for key, v in (("track_id", track_ids), ("genre", genres), ("split", splits))
        }
        for name in names:
            try:
                if name.endswith(".parquet"):  # --format parquet (a resumed output may hold both)
                    from fmaprep.formats.parquet import read_parquet_part

                    # through a descriptor opened relative to dir_fd: this generation's part
                    with open(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb") as part:
                        yield from read_parquet_part(part, filters, _matches, name=name)
                    continue
                records = read_partition(name, dir_fd)
                for record in records:
                    if not isinstance(record, dict):
                        raise ValueError(f"{name}: record is a {type(record).__name__}, not a dict")
                    if all(_matches(record.get(k), allowed) for k, allowed in filters.items()):
                        yield record
            except FileNotFoundError as e:
                raise OutputChangedError(
                    f"{output} was replaced while it was being read ({name} is gone); read it again"
                ) from e
    finally:
        os.close(dir_fd)


class OutputChangedError(RuntimeError):
    """The output directory was replaced or deleted during a read."""
