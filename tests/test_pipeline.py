"""One file through the whole pipeline, checked against closed-form expectations."""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.audio.signal import mu_law_decode
from fmaprep.config import PipelineConfig
from fmaprep.model import InputFile, track_id_for
from fmaprep.pipeline import process_file

from conftest import tone, write_audio


def _spectrum_level(x: np.ndarray, freq: float, sr: int) -> float:
    """Magnitude of ``freq`` in ``x`` relative to full scale, in dB (Hann window, edges trimmed)."""
    x = x[sr // 4 : -sr // 4]
    win = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * win)) / (win.sum() / 2)
    bins = np.fft.rfftfreq(len(x), 1 / sr)
    band = (bins > freq - 20) & (bins < freq + 20)
    return float(20 * np.log10(spec[band].max() + 1e-12))


@pytest.mark.parametrize("channel", ["left", "right"])
def test_channel_really_is_the_channel_asked_for(tmp_path: Path, channel: str) -> None:
    """Left holds only 500 Hz, right only 1500 Hz: the output must hold only its side's tone."""
    sr = 44100
    frames = np.stack([tone(500, 2, sr, 0.5), tone(1500, 2, sr, 0.5)], axis=1)
    path = write_audio(tmp_path / "000" / "000123.mp3", frames, sr)
    record, line = process_file(
        InputFile(str(path), path.stat().st_size), PipelineConfig(channel=channel)
    )  # type: ignore[arg-type]
    assert record is not None and line["status"] == "ok"
    x = mu_law_decode(record["codes"])
    wanted, other = (500, 1500) if channel == "left" else (1500, 500)
    assert _spectrum_level(x, wanted, 8000) > -3.0  # peak-normalized tone: near 0 dBFS
    assert _spectrum_level(x, other, 8000) < _spectrum_level(x, wanted, 8000) - 40.0
    assert record["track_id"] == "000123"
    assert line["source_channels"] == 2 and line["source_sample_rate"] == sr


def test_mix_holds_both(tmp_path: Path) -> None:
    sr = 44100
    frames = np.stack([tone(500, 2, sr, 0.5), tone(1500, 2, sr, 0.5)], axis=1)
    path = write_audio(tmp_path / "m.mp3", frames, sr)
    record, _ = process_file(InputFile(str(path), 1), PipelineConfig(channel="mix"))
    assert record is not None
    x = mu_law_decode(record["codes"])
    assert abs(_spectrum_level(x, 500, 8000) - _spectrum_level(x, 1500, 8000)) < 1.0


def test_record_and_manifest_fields(tmp_path: Path) -> None:
    sr = 22050
    path = write_audio(tmp_path / "7.wav", tone(440, 3, sr, 0.25), sr, "WAV", "PCM_16")
    item = InputFile(str(path), path.stat().st_size, {"genre": "Rock", "title": "T"})
    record, line = process_file(item, PipelineConfig())
    assert record is not None
    assert record["codes"].dtype == np.uint8 and record["codes"].ndim == 1
    assert record["sample_rate"] == 8000 and record["genre"] == "Rock" and record["title"] == "T"
    assert (
        len(record["codes"]) == round(3 * sr * 8000 / sr) or abs(len(record["codes"]) - 24000) <= 1
    )
    assert line["n_samples"] == len(record["codes"])
    assert line["duration_s"] == pytest.approx(3.0, abs=1e-3)
    assert line["gain"] == pytest.approx(4.0, rel=0.01)  # peak 0.25 -> 1.0
    assert record["codes"].max() == 255 or record["codes"].min() == 0  # peak reached after gain


def test_normalize_none_keeps_level(tmp_path: Path) -> None:
    sr = 16000
    path = write_audio(tmp_path / "q.wav", tone(200, 1, sr, 0.25), sr, "WAV", "FLOAT")
    record, line = process_file(InputFile(str(path), 1), PipelineConfig(normalize="none"))
    assert record is not None and line["gain"] == 1.0
    assert np.max(np.abs(mu_law_decode(record["codes"]))) == pytest.approx(0.25, rel=0.03)


def test_bad_file_becomes_an_error_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp3"
    path.write_bytes(b"<html>not found</html>")
    record, line = process_file(InputFile(str(path), 22), PipelineConfig())
    assert record is None
    assert line["status"] == "error" and line["error"].startswith("not_audio: ")
    missing, line2 = process_file(InputFile(str(tmp_path / "gone.mp3"), 0), PipelineConfig())
    assert missing is None and line2["error"].startswith("read_failed: ")


def test_track_id_is_the_stem() -> None:
    assert track_id_for("/data/fma_small/000/000002.mp3") == "000002"
    assert track_id_for("s3a://bucket/raw/155/155066.mp3") == "155066"
    assert track_id_for("song.name.wav") == "song.name"


class _LibraryOwnError(Exception):
    """An exception class no one in fmaprep knows about, as a decoder library might raise."""


@pytest.mark.parametrize(
    "exc",
    [struct.error("unpack requires a buffer of 4 bytes"), TypeError("'NoneType' object is not "
     "subscriptable"), IndexError("list index out of range"), _LibraryOwnError("bad frame")],
)  # fmt: skip
def test_any_exception_a_file_causes_is_its_manifest_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    """A decoder that raises something unclassified: one decode_failed line naming it, and the
    next file decodes (the real decoder, unchanged)."""
    from fmaprep.audio import decode

    real = decode.OPENERS["soundfile"]
    bad = write_audio(tmp_path / "000001.wav", tone(440, 1, 8000), 8000, "WAV", "PCM_16")
    good = write_audio(tmp_path / "000002.wav", tone(440, 1, 8000), 8000, "WAV", "PCM_16")

    def opener(path: str) -> Any:
        if path == str(bad):
            raise exc
        return real(path)

    monkeypatch.setitem(decode.OPENERS, "soundfile", opener)
    record, line = process_file(InputFile(str(bad), 1), PipelineConfig())
    assert record is None and line["status"] == "error"
    assert line["error"] == f"decode_failed: {type(exc).__name__}: {exc}"
    record, line = process_file(InputFile(str(good), 1), PipelineConfig())
    assert record is not None and line["status"] == "ok"


def test_a_deliberate_interrupt_is_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmaprep.audio import decode

    def opener(path: str) -> Any:
        raise KeyboardInterrupt

    path = write_audio(tmp_path / "000001.wav", tone(440, 1, 8000), 8000, "WAV", "PCM_16")
    monkeypatch.setitem(decode.OPENERS, "soundfile", opener)
    with pytest.raises(KeyboardInterrupt):
        process_file(InputFile(str(path), 1), PipelineConfig())


def _noisy_ffmpeg(tmp_path: Path, then: str) -> str:
    """An ffmpeg that first writes 10 MB to stderr (a damaged mp3's error flood), then ``then``."""
    from fmaprep.audio.decode import ffmpeg_exe

    script = tmp_path / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        "head -c 10000000 /dev/zero | tr '\\0' 'e' >&2\n"
        "printf '\\n[mp3 @ 0x1] Header missing\\n' >&2\n"
        + (f'exec "{ffmpeg_exe()}" "$@"\n' if then == "decode" else
           "printf 'x.mp3: Invalid data found when processing input\\n' >&2\nexit 1\n")
    )  # fmt: skip
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("then", ["fail", "decode"])
def test_ffmpeg_flooding_stderr_neither_hangs_nor_loses_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    """With stderr on a pipe nobody reads, ffmpeg blocks after 64 KiB and the task hangs for
    ever; here the file either decodes or fails with ffmpeg's last line, within seconds."""
    monkeypatch.setenv("FMAPREP_FFMPEG", _noisy_ffmpeg(tmp_path, then))
    path = write_audio(tmp_path / "000001.wav", tone(440, 2, 44100), 44100, "WAV", "PCM_16")
    done: list[tuple[Any, dict[str, Any]]] = []
    worker = threading.Thread(
        target=lambda: done.append(process_file(InputFile(str(path), 1),
                                                PipelineConfig(decoder="ffmpeg"))),
        daemon=True,
    )  # fmt: skip
    worker.start()
    worker.join(timeout=60)
    assert done, "process_file hung on ffmpeg's stderr"
    record, line = done[0]
    if then == "decode":
        assert record is not None and line["status"] == "ok" and line["n_samples"] == 16000
    else:
        assert record is None
        assert line["error"] == "not_audio: ffmpeg: x.mp3: Invalid data found when processing input"
