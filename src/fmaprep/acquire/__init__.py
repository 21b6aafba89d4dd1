"""Acquisition: the throttled FMA website scraper and the FMA dataset-archive importer.

Both write FMA's layout (design contract 9): ``<dest>/<id[:3]>/<id>.mp3`` with the id zero-padded
to 6 digits, and ``<dest>/_tracks.jsonl`` with one metadata line per track (see
:mod:`fmaprep.acquire.tracks`).
"""

from __future__ import annotations

from fmaprep.acquire.destination import Destination, open_destination, track_path
from fmaprep.acquire.tracks import TRACKS_FILE, TrackLog, track_metadata

__all__ = [
    "TRACKS_FILE",
    "Destination",
    "TrackLog",
    "open_destination",
    "track_metadata",
    "track_path",
]
