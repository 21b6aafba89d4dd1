"""What the rest of the package talks about: an input file, its track id, and how it failed.

The bottom room: it imports nothing from fmaprep, and every other room may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# metadata carried from acquisition (_tracks.jsonl) into records and the manifest
METADATA_KEYS = ("title", "artist", "album", "genre", "split", "subset")

# Reason codes that start a manifest line's `error` field ("<reason>: <message>").
REASONS = (
    "empty",
    "not_audio",
    "truncated",
    "unsupported",
    "too_short",
    "silent",
    "decode_failed",
    "timeout",
    "crashed",
    "read_failed",
)


@dataclass(frozen=True)
class InputFile:
    """One input as the driver found it: where it is, how big, and what acquisition knew."""

    source: str  # absolute local path or URI, as the manifest reports it
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    mtime: float | None = None
    etag: str | None = None  # S3's ETag, as listed: with the size, what identifies the content

    def identity(self) -> list[object]:
        """What --mode resume compares to tell an unchanged input from a replaced one: the
        ETag and size on S3, else the size and modification time (docs/reliability.md,
        "Reruns and resume")."""
        return ["etag", self.etag, self.size] if self.etag else ["mtime", self.size, self.mtime]

    @property
    def track_id(self) -> str:
        return track_id_for(self.source)


def track_id_for(source: str) -> str:
    """The input file's stem: FMA's ``000/000002.mp3`` is ``"000002"``."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    stem, _, _ = name.rpartition(".")
    return stem or name


def track_path(track_id: int) -> str:
    """``<id[:3]>/<id>.mp3`` for an integer id, zero-padded to 6 digits (design contract 9)."""
    if isinstance(track_id, bool) or not isinstance(track_id, int) or track_id <= 0:
        raise ValueError(f"track id must be a positive integer, not {track_id!r}")
    name = f"{track_id:06d}"
    return f"{name[:3]}/{name}.mp3"


class TrackError(Exception):
    """A single input could not become a record; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def manifest_text(self) -> str:
        """One line, no newlines, bounded length: what the manifest's `error` field holds."""
        text = f"{self.reason}: {' '.join(self.message.split())}"
        return text if len(text) <= 300 else text[:297] + "..."
