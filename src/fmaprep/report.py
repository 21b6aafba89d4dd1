"""Human-readable summaries: the job's closing lines and ``fmaprep inspect``."""

from __future__ import annotations

import json
import os
from itertools import islice
from typing import TYPE_CHECKING, Any, TextIO

from fmaprep.outputs import MANIFEST_FILE, STATS_FILE, error_reason, parse_manifest, summarize
from fmaprep.storage import local_path, resolve_uri

if TYPE_CHECKING:
    from fmaprep.job import JobResult

MAX_FAILURES_SHOWN = 10


def _failures(failures: list[dict[str, Any]], out: TextIO) -> None:
    for line in failures[:MAX_FAILURES_SHOWN]:
        out.write(f"  failed: {line['source']}: {line.get('error', '?')}\n")
    if len(failures) > MAX_FAILURES_SHOWN:
        out.write(f"  ... and {len(failures) - MAX_FAILURES_SHOWN} more (see {MANIFEST_FILE})\n")


def print_summary(result: JobResult, out: TextIO) -> None:
    c = result.counts
    speed = c["audio_seconds"] / result.wall_seconds if result.wall_seconds else 0.0
    out.write(
        f"fmaprep preprocess: {c['inputs']} inputs, {c['ok']} ok, {c['failed']} failed"
        + (f", {c['duplicates']} duplicates" if c.get("duplicates") else "")
        + "; "
        f"{c['audio_seconds'] / 3600:.2f} h of audio in {result.wall_seconds:.1f} s "
        f"({speed:.0f}x real time) -> {result.output}\n"
    )
    _failures(result.failures, out)
    if result.error_rate_exceeded:
        out.write(f"fmaprep preprocess: too many failures ({c['failed']} of {c['inputs']})\n")


def inspect_output(output: str, out: TextIO, n_records: int = 3) -> None:
    """Counts, hours of audio, failures by reason, and the first records of a local OUTPUT."""
    from fmaprep.reader import read_records

    path = local_path(resolve_uri(output))
    with open(os.path.join(path, MANIFEST_FILE), "rb") as f:
        lines = parse_manifest(f.read())
    counts = summarize(lines)
    stats: dict[str, Any] = {}
    if os.path.isfile(os.path.join(path, STATS_FILE)):
        with open(os.path.join(path, STATS_FILE)) as f:
            stats = json.load(f)
    parts = sorted(n for n in os.listdir(path) if n.startswith("part-"))
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
    _failures([line for line in lines if line["status"] == "error"], out)
    for record in islice(read_records(path), n_records):
        codes, rate = record["codes"], record["sample_rate"]
        meta = ", ".join(f"{k}={record[k]!r}" for k in ("title", "artist", "genre") if k in record)
        out.write(
            f"  record {record['track_id']}: {codes.size} codes @ {rate} Hz "
            f"({codes.size / rate:.1f} s), codes {int(codes.min())}..{int(codes.max())}"
            + (f", {meta}" if meta else "")
            + "\n"
        )


__all__ = ["error_reason", "inspect_output", "print_summary"]
