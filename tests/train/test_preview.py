"""fmaprep preview: the wav's samples are the mu-law decode of the track's codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from fmaprep.cli import main
from fmaprep.formats.records import read_records
from fmaprep.train.export import export_memmap

from conftest import write_parquet_output


def expected_pcm(codes: np.ndarray, mu: int = 255) -> np.ndarray:
    """Contract 6's decoding, restated: y = 2k/mu - 1, x = sign(y) ((1 + mu)^|y| - 1) / mu;
    then the documented conversion round(x * 32767) (numpy rounds halves to even)."""
    y = 2.0 * codes.astype(np.float64) / mu - 1.0
    x = np.sign(y) * (np.power(1.0 + mu, np.abs(y)) - 1.0) / mu
    return np.rint(x * 32767).astype(np.int16)


def read_wav(path: Path) -> tuple[np.ndarray, Any]:
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    info = sf.info(path)
    assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
    return data[:, 0], rate


def test_preview_wav_equals_the_decode_of_every_code(tmp_path: Path) -> None:
    codes = np.concatenate([np.arange(256), np.arange(255, -1, -1), [128] * 10]).astype(np.uint8)
    record = {"track_id": "000042", "source": "/m/42.mp3", "sample_rate": 8000, "mu": 255}
    out = write_parquet_output(tmp_path / "o", [[{**record, "codes": codes}]])
    wav = tmp_path / "x.wav"
    assert main(["-q", "preview", str(out), "--track", "000042", "--out", str(wav)]) == 0
    samples, rate = read_wav(wav)
    assert rate == 8000
    np.testing.assert_array_equal(samples, expected_pcm(codes))
    assert samples[0] == -32767 and samples[255] == 32767 and samples.min() == -32767
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_preview_uses_the_record_rate_and_mu(tmp_path: Path) -> None:
    codes = (np.arange(100) % 16).astype(np.uint8)
    record = {"track_id": "a", "source": "/a", "sample_rate": 16000, "mu": 15, "codes": codes}
    out = write_parquet_output(tmp_path / "o", [[record]])
    assert main(["-q", "preview", str(out), "--track", "a", "--out", str(tmp_path / "a.wav")]) == 0
    samples, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000
    np.testing.assert_array_equal(samples, expected_pcm(codes, mu=15))


def test_preview_of_a_memmap_export_and_unknown_tracks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    records = [
        {
            "track_id": t,
            "source": f"/{t}",
            "sample_rate": 8000,
            "mu": 255,
            "codes": rng.integers(0, 256, 500).astype(np.uint8),
        }
        for t in ("a", "b")
    ]
    out = write_parquet_output(tmp_path / "o", [records])
    export_memmap(str(out), str(tmp_path / "mm"))
    assert (
        main(
            [
                "-q",
                "preview",
                str(tmp_path / "mm"),
                "--track",
                "b",
                "--out",
                str(tmp_path / "b.wav"),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        read_wav(tmp_path / "b.wav")[0], expected_pcm(records[1]["codes"])
    )
    assert main(["preview", str(out), "--track", "zzz", "--out", str(tmp_path / "z.wav")]) == 2
    assert "track 'zzz' is not in" in capsys.readouterr().err
    assert not (tmp_path / "z.wav").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pickle", "parquet"])
def test_preview_of_a_real_output(job_outputs: dict[str, Path], fmt: str, tmp_path: Path) -> None:
    record = next(read_records(str(job_outputs["pickle"]), track_ids=["000203"]))
    wav = tmp_path / "t.wav"
    assert (
        main(["-q", "preview", str(job_outputs[fmt]), "--track", "000203", "--out", str(wav)]) == 0
    )
    samples, rate = read_wav(wav)
    assert rate == 8000 and samples.size == record["codes"].size
    np.testing.assert_array_equal(samples, expected_pcm(record["codes"]))
