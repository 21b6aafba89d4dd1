"""Shared fixtures: real audio files made from closed-form signals, and one local Spark session.

Nothing is downloaded: mp3 bytes are encoded here with libsndfile (LAME) from synthetic signals.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf


def write_audio(
    path: Path, frames: np.ndarray, sample_rate: int, fmt: str = "MP3", subtype: str | None = None
) -> Path:
    """Encode ``frames`` (n,) or (n, ch) in [-1, 1] to ``path`` (MP3 by default, or WAV/FLAC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "MP3":
        subtype = "MPEG_LAYER_III"
    sf.write(path, frames, sample_rate, format=fmt, subtype=subtype)
    return path


def write_mp3_lame(path: Path, frames: np.ndarray, sample_rate: int, vbr_quality: int = 2) -> Path:
    """Encode with ffmpeg's libmp3lame in VBR mode (-q:a), as many real-world mp3s are made.

    libsndfile's own encoder writes a different kind of file; FMA's mp3s come from LAME.
    """
    import subprocess

    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".src.wav")
    sf.write(wav, frames, sample_rate, subtype="FLOAT")
    try:
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(wav),
             "-c:a", "libmp3lame", "-q:a", str(vbr_quality), str(path)],
            check=True,
        )  # fmt: skip
    finally:
        wav.unlink()
    return path


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] SparkSession for the whole test run (a JVM start costs seconds)."""
    from fmaprep.spark import build_session

    os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/fmaprep-numba-cache")
    session = build_session("local[2]", app_name="fmaprep-tests")
    yield session
    session.stop()


ROOT = Path(__file__).resolve().parents[1]


def script_env(script: str) -> dict[str, str]:
    """The NAME=VALUE lines that ``scripts/<script> env`` prints (quotes stripped)."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / script), "env"], check=True, capture_output=True, text=True
    ).stdout
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return {k: v.strip("'\"") for k, v in (p for p in pairs if len(p) == 2)}


@pytest.fixture(scope="session")
def env_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`fmaprep package-env` as the README runs it, linked to the local cluster workers' python3.11
    (shared by the standalone and YARN tests: building it takes about half a minute)."""
    prefix = script_env("local-cluster.sh")["FMAPREP_WORKER_PYTHON_PREFIX"]
    out = tmp_path_factory.mktemp("env") / "fmaprep-env.tar.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "fmaprep", "package-env", str(out), "--python-prefix", prefix],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"workers need Python 3.11 at {prefix}/bin/python3.11" in proc.stdout
    return out


def local_reference(corpus: Path, out: Path) -> None:
    """The same job in local[2], in its own process (``fmaprep preprocess``): the reference the
    cluster outputs must equal. (Not the shared ``spark`` fixture: a module-scoped session
    elsewhere may have stopped it by the time a cluster test runs.)"""
    job = [sys.executable, "-m", "fmaprep", "preprocess", str(corpus), str(out)]
    proc = subprocess.run(
        [*job, "--master", "local[2]", "--max-error-rate", "0.5"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
