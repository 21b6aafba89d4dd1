"""``fmaprep inspect``: counts, hours of audio, failures by reason and the first records."""

from __future__ import annotations

from itertools import islice
from typing import TextIO

from fmaprep.formats.manifest import (
    failure_lines,
    summarize,
)
from fmaprep.storage.uris import is_local, local_path, resolve_uri
from fmaprep.tracks import shown


def inspect_output(output: str, out: TextIO, n_records: int = 3) -> None:
    """Counts, hours of audio, failures by reason, and the first records of an OUTPUT (local,
    ``s3://`` or ``hdfs://``: read in place, through its commit)."""
    from fmaprep.formats.records import read_output_info, read_records

    path = _location(output)
    info = read_output_info(path)
    lines, stats, parts = info.lines, info.stats, info.parts
    counts = summarize(lines)
    out.write(f"{path}\n")
    out.write(
        f"  inputs {counts['inputs']}, ok {counts['ok']}, failed {counts['failed']}, "
        f"duplicates {counts['duplicates']}\n"
    )
    out.write(
        f"  audio {counts['audio_seconds'] / 3600:.3f} h, {counts['output_samples']:,} samples, "
        f"{len(parts)} partitions\n"
    )
    if stats:
        pipeline = stats.get("config", {}).get("pipeline", {})
        out.write(
            f"  made in {stats.get('wall_seconds', '?')} s on {stats.get('master', '?')} with "
            + ", ".join(f"{k}={v}" for k, v in sorted(pipeline.items()))
            + "\n"
        )
    for reason, count in counts["failed_by_reason"].items():
        out.write(f"  failed ({reason}): {count}\n")
    out.writelines(failure_lines([line for line in lines if line["status"] == "error"]))
    for record in islice(read_records(path), n_records):
        codes, rate = record["codes"], record["sample_rate"]
        meta = ", ".join(
            f"{k}={shown(record[k])}" for k in ("title", "artist", "genre") if k in record
        )
        out.write(
            f"  record {record['track_id']}: {codes.size} codes @ {rate} Hz "
            f"({codes.size / rate:.1f} s), codes {int(codes.min())}..{int(codes.max())}"
            + (f", {meta}" if meta else "")
            + "\n"
        )


__all__ = ["inspect_output"]


def _location(output: str) -> str:
    """A local OUTPUT as an absolute path; a remote one as its URI."""
    uri = resolve_uri(output)
    return local_path(uri) if is_local(uri) else uri
