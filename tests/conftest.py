"""Shared fixtures: real audio files made from closed-form signals, and one local Spark session.

Nothing is downloaded: mp3 bytes are encoded here with libsndfile (LAME) from synthetic signals.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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


# the column layout the job writes for --format parquet (fmaprep.formats.parquet.PARQUET_COLUMNS,
# restated; metadata columns beyond genre/split/title are left out, as a file may)
PARQUET_SCHEMA_FIELDS = (
    ("track_id", "string", False),
    ("source", "string", False),
    ("sample_rate", "int32", True),
    ("mu", "int32", True),
    ("title", "string", True),
    ("genre", "string", True),
    ("split", "string", True),
    ("codes", "binary", False),
)


def _parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [pa.field(n, getattr(pa, t)(), nullable=null) for n, t, null in PARQUET_SCHEMA_FIELDS]
    )


PARQUET_SCHEMA = _parquet_schema()


def write_parquet_output(root: Path, parts: list[list[dict[str, Any]]], **kw: Any) -> Path:
    """An OUTPUT directory of parquet parts written with pyarrow (not Spark) from record dicts,
    with ``_SUCCESS`` and a manifest line per record; ``kw`` goes to ``pq.write_table`` (and
    ``schema=`` replaces PARQUET_SCHEMA)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = kw.pop("schema", PARQUET_SCHEMA)
    root.mkdir(parents=True)
    lines = []
    for n, records in enumerate(parts):
        columns = {f.name: [r.get(f.name) for r in records] for f in schema if f.name != "codes"}
        columns["codes"] = [r["codes"].tobytes() for r in records]
        pq.write_table(
            pa.table(columns, schema=schema), root / f"part-{n:05d}-0a1b-c000.snappy.parquet", **kw
        )
        for r in records:
            line = {"track_id": r["track_id"], "source": r["source"], "status": "ok"}
            line.update(duration_s=r["codes"].size / 8000, n_samples=int(r["codes"].size))
            line.update({k: r[k] for k in ("genre", "split") if k in r})
            lines.append(line)
    (root / "_SUCCESS").touch()
    (root / "_manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


@dataclass(frozen=True)
class Decoded:
    """A whole decoded file (the job streams; tests look at all of it)."""

    frames: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.frames.shape[1])


def decode_whole(path: str | Path, decoder: str = "soundfile") -> Decoded:
    """Every block of a decoder's stream, joined."""
    from fmaprep.audio.decode import OPENERS

    stream = OPENERS[decoder](str(path))
    blocks = list(stream.blocks)
    frames = np.concatenate(blocks) if blocks else np.zeros((0, stream.channels), np.float32)
    return Decoded(frames.astype(np.float32, copy=False), stream.sample_rate)


def reference_codes(path: str | Path, cfg: Any) -> tuple[np.ndarray, float]:
    """(codes, gain) of one file by the pure functions applied to the whole signal at once:
    what the streaming job must give on the same decoded samples."""
    from fmaprep.audio.resample import get_resampler
    from fmaprep.audio.signal import apply_gain, mu_law_encode, peak_gain, pick_channel

    decoded = decode_whole(path, cfg.decoder)
    x = get_resampler(cfg.resampler)(
        pick_channel(decoded.frames, cfg.channel), decoded.sample_rate, cfg.sample_rate
    )
    gain = peak_gain(float(np.max(np.abs(x)))) if cfg.normalize == "peak" else 1.0
    return mu_law_encode(apply_gain(x, gain), cfg.mu), gain


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] SparkSession for the whole test run (a JVM start costs seconds)."""
    from fmaprep.spark.session import build_session, stop_session

    os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/fmaprep-numba-cache")
    session = build_session("local[2]", app_name="fmaprep-tests")
    yield session
    stop_session(session)


TRAINING_GENRES = ("Rock", "Jazz", "Folk")


@pytest.fixture(scope="session")
def job_outputs(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real OUTPUT per format (pickle, parquet): ``fmaprep.job.run.run_preprocess`` on generated
    mp3s of assorted lengths, rates and genres (one track without metadata), plus one bad file."""
    import json

    from fmaprep.audio.synth import music
    from fmaprep.config import load_config
    from fmaprep.job.run import run_preprocess

    root = tmp_path_factory.mktemp("train-corpus")
    tracks = []
    for i in range(6):
        tid = f"{200 + i:06d}"
        sr = (44100, 22050, 48000)[i % 3]
        write_audio(root / tid[:3] / f"{tid}.mp3", music(1.0 + 0.5 * i, sr, seed=10 + i), sr)
        if i < 5:
            genre, split = TRAINING_GENRES[i % 3], ("train", "valid")[i % 2]
            tracks.append({"id": int(tid), "title": f"T{i}", "genre": genre, "split": split})
    (root / "_tracks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tracks))
    (root / "000" / "000299.mp3").write_bytes(b"\x00" * 64)  # fails: not audio
    outputs = {}
    for fmt in ("pickle", "parquet"):
        out = tmp_path_factory.mktemp(f"train-{fmt}") / "out"
        config = load_config(job_overrides={"format": fmt, "max_error_rate": 0.5})
        result = run_preprocess(str(root), str(out), config, spark)
        assert result.counts == {**result.counts, "inputs": 7, "ok": 6, "failed": 1}
        outputs[fmt] = out
    return outputs


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


CRASHPOINTS = Path(__file__).resolve().parent / "job" / "crashpoints"


def crash_env(env: dict[str, str], step: str | None) -> dict[str, str]:
    """``env`` for a driver that dies at ``step`` (tests/job/crashpoints/sitecustomize.py on its
    PYTHONPATH), or, with None, one that runs through."""
    env = {k: v for k, v in env.items() if k != "FMAPREP_TEST_CRASH_AT"}
    if step is None:
        return env
    path = os.pathsep.join(p for p in (str(CRASHPOINTS), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "FMAPREP_TEST_CRASH_AT": step}
