"""The one exception a track can fail with, carrying a reason code for the manifest."""

from __future__ import annotations

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
    "read_failed",
)


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
