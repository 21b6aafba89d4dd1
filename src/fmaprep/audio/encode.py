"""Encoding mp3: the demo corpus, the warm-up job and the tests make real mp3 bytes with this."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from fmaprep.atomic_file import atomic_path
from fmaprep.audio.decode import ffmpeg_exe


def write_mp3(path: Path, frames: Any, sample_rate: int, encoder: str = "soundfile") -> None:
    """Encode to mp3 under a temporary name, then rename: no partial file is ever visible.

    ``soundfile`` is libsndfile's LAME in-process; ``ffmpeg`` is ffmpeg's libmp3lame at VBR
    quality 2, the way many real mp3s (and FMA's) were made.
    """
    import soundfile as sf

    with atomic_path(path) as tmp:
        if encoder == "soundfile":
            sf.write(tmp, frames, sample_rate, format="MP3", subtype="MPEG_LAYER_III")
            return
        wav = path.with_name(f".{path.name}.wav")
        sf.write(wav, frames, sample_rate, subtype="FLOAT")
        try:
            subprocess.run(
                [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(wav),
                 "-c:a", "libmp3lame", "-q:a", "2", "-f", "mp3", tmp],
                check=True,
            )  # fmt: skip
        finally:
            wav.unlink(missing_ok=True)
