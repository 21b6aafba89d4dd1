"""Export an OUTPUT to training-friendly layouts. ``memmap``: one flat ``codes.u8`` file holding
every track's codes back to back, plus ``index.jsonl`` (one line per track: ``track_id``,
``offset``, ``length`` in bytes = samples, and the record's other fields), so a training loop
takes any window with one slice of ``numpy.memmap`` and no decoding.

Streaming: records are read one at a time and appended. Atomic: everything is written into a
hidden sibling of DEST, which is renamed into place at the end (an existing DEST is kept unless
``overwrite``, then swapped out and removed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

from fmaprep.storage.uris import check_apart, is_local, resolve_uri, sibling

log = logging.getLogger(__name__)

CODES_FILE = "codes.u8"
INDEX_FILE = "index.jsonl"
_NOT_METADATA = frozenset({"codes", "track_id", "offset", "length"})


@dataclass(frozen=True)
class ExportResult:
    dest: str
    tracks: int
    samples: int


def json_value(value: Any) -> Any:
    """``json.dumps``'s ``default`` for record metadata: numpy scalars as Python numbers."""
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def index_line(record: dict[str, Any], offset: int) -> tuple[Any, str]:
    """A record's codes (1-D uint8, checked) and its index line, its codes at ``offset`` in the
    codes file: one home for the export's format, written locally and to a store alike."""
    codes = record["codes"]
    if codes.dtype.itemsize != 1 or codes.ndim != 1:
        raise ValueError(f"track {record['track_id']}: codes are not 1-D uint8")
    line = {"track_id": record["track_id"], "offset": offset, "length": codes.size}
    line.update({k: v for k, v in record.items() if k not in _NOT_METADATA})
    return codes, json.dumps(line, default=json_value) + "\n"


def read_index(text: str, where: str, size: int) -> list[dict[str, Any]]:
    """The index lines of an export whose codes file has ``size`` bytes, checked: contiguous,
    and covering the codes file exactly."""
    tracks: list[dict[str, Any]] = [json.loads(x) for x in text.splitlines() if x.strip()]
    end = 0
    for line in tracks:
        if line["offset"] != end or line["length"] < 0:
            raise ValueError(f"{where}: index line of {line['track_id']} is not contiguous")
        end += line["length"]
    if end != size:
        raise ValueError(f"{where}: index covers {end} bytes, {CODES_FILE} has {size}")
    return tracks


def check_dest(output: str, dest: str, *, overwrite: bool) -> None:
    """Refuse a DEST that is OUTPUT, lies inside it or contains it, a DEST that is a file, and a
    DEST holding anything but an export's two files (even with ``overwrite``: an overwrite
    deletes only what an export wrote)."""
    if is_local(output):
        check_apart(resolve_uri(output), resolve_uri(dest), what="DEST", source="OUTPUT")
    if not os.path.lexists(dest):
        return
    if not os.path.isdir(dest) or os.path.islink(dest):
        raise FileExistsError(f"{dest} exists and is not an export directory; nothing was done")
    foreign = sorted(set(os.listdir(dest)) - {CODES_FILE, INDEX_FILE})
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise FileExistsError(
            f"{dest} holds files an export did not write ({shown}); nothing was done, and "
            "--overwrite never deletes them: choose an empty or new DEST"
        )
    if not overwrite:
        raise FileExistsError(f"{dest} exists (use --overwrite to replace it)")


def export_memmap(
    output: str,
    dest: str,
    *,
    overwrite: bool = False,
    track_ids: Any = None,
    genres: Any = None,
    splits: Any = None,
) -> ExportResult:
    """Write ``dest/codes.u8`` and ``dest/index.jsonl`` from the records of ``output`` (in
    ``read_records`` order, filtered the same way)."""
    from fmaprep.formats.records import read_records

    dest = os.path.abspath(dest)
    check_dest(output, dest, overwrite=overwrite)
    records = read_records(output, track_ids=track_ids, genres=genres, splits=splits)
    staging = sibling(os.path.abspath(dest), "export")
    os.makedirs(staging)
    tracks = offset = 0
    try:
        with (
            open(os.path.join(staging, CODES_FILE), "wb") as codes_file,
            open(os.path.join(staging, INDEX_FILE), "w", encoding="utf-8") as index_file,
        ):
            for record in records:
                codes, line = index_line(record, offset)
                codes_file.write(memoryview(codes).cast("B"))
                index_file.write(line)
                offset += codes.size
                tracks += 1
            codes_file.flush()
            os.fsync(codes_file.fileno())
        if os.path.exists(dest):  # overwrite: swap, then drop the old export
            old = sibling(os.path.abspath(dest), "old")
            os.rename(dest, old)
            os.rename(staging, dest)
            for name in (CODES_FILE, INDEX_FILE):  # only what an export wrote, then the folder
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(old, name))
            os.rmdir(old)
        else:
            os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %d tracks (%d samples) to %s", tracks, offset, dest)
    return ExportResult(dest, tracks, offset)
