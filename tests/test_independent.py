"""The job's codes against a second, independent implementation: ffmpeg's decoder called here
directly, soxr, and mu-law transcribed from torchaudio. At least 99% of codes within +-1."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
import soxr

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import read_records
from fmaprep.job.run import run_preprocess

from conftest import write_audio

pytestmark = pytest.mark.slow


def independent_codes(path: str, sr_out: int = 8000, mu: int = 255) -> np.ndarray:
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", path],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    sr_in = int(probe.split(" Hz")[0].rsplit(" ", 1)[-1])
    raw = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            path,
            "-f",
            "f32le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    channels = 1 if ", mono," in probe else 2
    left = np.frombuffer(raw, dtype="<f4").reshape(-1, channels)[:, 0].astype(np.float64)
    y = soxr.resample(left, sr_in, sr_out, quality="HQ")
    y = y / np.max(np.abs(y))
    x_mu = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    return ((x_mu + 1) / 2 * mu + 0.5).astype(np.int64)


def test_codes_match_an_independent_implementation(spark: Any, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for i in range(12):
        sr = (44100, 48000, 22050)[i % 3]
        write_audio(root / f"{i:06d}.mp3", music(4.0, sr, seed=100 + i, stereo=i % 4 != 3), sr)
    out = tmp_path / "out"
    run_preprocess(str(root), str(out), load_config(), spark)
    total = close = 0
    for record in read_records(str(out)):
        ours = record["codes"].astype(np.int64)
        theirs = independent_codes(record["source"])
        assert abs(len(ours) - len(theirs)) <= 2, record["track_id"]
        n = min(len(ours), len(theirs))
        diff = np.abs(ours[:n] - theirs[:n])
        total += n
        close += int(np.count_nonzero(diff <= 1))
    assert total > 12 * 3 * 8000
    assert close / total >= 0.99
