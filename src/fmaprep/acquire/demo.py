"""The demo corpus: real mp3 bytes encoded from synthetic music, in FMA's layout with a
``_tracks.jsonl``, so the main command shows real work on a machine with no network."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fmaprep.atomic_file import atomic_path
from fmaprep.audio.encode import write_mp3
from fmaprep.audio.synth import music
from fmaprep.model import track_path
from fmaprep.tracks import TRACKS_FILE, dumps_line

log = logging.getLogger(__name__)

GENRES = ("Electronic", "Rock", "Folk", "Hip-Hop", "Experimental", "Instrumental", "Pop", "Jazz")
ARTISTS = ("The Sine Waves", "Square Root", "Nyquist & Co", "Aliasing", "Low Pass", "Mu Law")


def _song(seconds: float, sample_rate: int, seed: int, stereo: bool) -> Any:
    """A piece of ``seconds``; long songs repeat a 32 s piece, which costs the same to decode
    and keeps making a 3-hour corpus quick."""
    import numpy as np

    piece = music(min(seconds, 32.0), sample_rate, seed=seed, stereo=stereo)
    n = int(seconds * sample_rate)
    return np.resize(piece, (n, piece.shape[1])) if n > len(piece) else piece


def make_demo_corpus(
    dest: Path, n_tracks: int = 24, seconds: float = 30.0, seed: int = 0, encoder: str = "soundfile"
) -> list[Path]:
    """Write ``n_tracks`` mp3s (mostly 44.1 kHz stereo; some 48 kHz, some 22.05 kHz mono).

    Existing tracks are kept, so a rerun costs nothing.
    """
    lines = []
    paths = []
    for i in range(n_tracks):
        track_id = 2 + 997 * i  # spreads tracks over several <id[:3]> directories, like FMA
        sample_rate, stereo = 44100, True
        if i % 6 == 5:
            sample_rate = 48000
        if i % 8 == 7:
            sample_rate, stereo = 22050, False
        path = dest / track_path(track_id)
        if not path.exists():
            write_mp3(path, _song(seconds, sample_rate, seed + i, stereo), sample_rate, encoder)
        paths.append(path)
        lines.append(
            {
                "id": f"{track_id:06d}",
                "title": f"Demo Track {i + 1}",
                "artist": ARTISTS[i % len(ARTISTS)],
                "album": "fmaprep demo",
                "genre": GENRES[i % len(GENRES)],
                "status": "ok",
            }
        )
    with atomic_path(dest / TRACKS_FILE) as tmp:
        Path(tmp).write_text("".join(dumps_line(line) for line in lines), encoding="utf-8")
    log.info("demo corpus: %d tracks in %s", n_tracks, dest)
    return paths
