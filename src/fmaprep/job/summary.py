"""What a finished job reports: its counts and failures, and the closing lines it prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from fmaprep.formats.manifest import failure_lines


@dataclass(frozen=True)
class JobResult:
    output: str
    counts: dict[str, Any]
    wall_seconds: float
    failures: list[dict[str, Any]]
    error_rate_exceeded: bool


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
    out.writelines(failure_lines(result.failures))
    if result.error_rate_exceeded:
        out.write(f"fmaprep preprocess: too many failures ({c['failed']} of {c['inputs']})\n")
