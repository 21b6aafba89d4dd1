"""The demo corpus: real mp3 bytes encoded from synthetic music, in FMA's layout with a
``_tracks.jsonl``, so the main command shows real work on a machine with no network."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from fmaprep.synth import music

log = logging.getLogger(__name__)

GENRES = ("Electronic", "Rock", "Folk", "Hip-Hop", "Experimental", "Instrumental", "Pop", "Jazz")
ARTISTS = ("The Sine Waves", "Square Root", "Nyquist & Co", "Aliasing", "Low Pass", "Mu Law")


def fma_path(dest: Path, track_id: int) -> Path:
    """FMA's layout: ``<dest>/<id[:3]>/<id>.mp3`` with the id zero-padded to 6 digits."""
    tid = f"{track_id:06d}"
    return dest / tid[:3] / f"{tid}.mp3"


def write_mp3(path: Path, frames: object, sample_rate: int) -> None:
    """Encode to mp3 under a temporary name, then rename: no partial file is ever visible."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, frames, sample_rate, format="MP3", subtype="MPEG_LAYER_III")
    os.replace(tmp, path)


def make_demo_corpus(
    dest: Path, n_tracks: int = 24, seconds: float = 30.0, seed: int = 0
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
        path = fma_path(dest, track_id)
        if not path.exists():
            write_mp3(path, music(seconds, sample_rate, seed=seed + i, stereo=stereo), sample_rate)
        paths.append(path)
        lines.append(
            {
                "id": track_id,
                "title": f"Demo Track {i + 1}",
                "artist": ARTISTS[i % len(ARTISTS)],
                "album": "fmaprep demo",
                "genre": GENRES[i % len(GENRES)],
                "status": "ok",
            }
        )
    tracks = dest / "_tracks.jsonl"
    tmp = tracks.with_name("._tracks.jsonl.tmp")
    tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.replace(tmp, tracks)
    log.info("demo corpus: %d tracks in %s", n_tracks, dest)
    return paths
